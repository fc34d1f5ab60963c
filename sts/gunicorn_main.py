"""gunicorn's own command line as ``sts serve`` runs it, with nothing of the working directory on ``sys.path``.

``python -m gunicorn`` puts the directory it is started from first on ``sys.path`` twice: ``-m`` itself, and
gunicorn's ``chdir`` setting (default: that same directory), which inserts the directory it changes to. A folder
named ``sts`` there (a source checkout, where README's own ``pip install dist/...whl`` is typed) was then imported by
the server instead of the installed release, while every other ``sts`` command used the installed one; a folder or
module named like a dependency (``lxml``, ``redis``, ...) was imported likewise. ``sts serve`` runs this module
with ``python -P -m`` (no path prepended for ``-m``), and this application changes directory as gunicorn does but
adds nothing to ``sys.path``; an explicit ``--pythonpath`` (``GUNICORN_CMD_ARGS``) is still honoured.
"""

from __future__ import annotations

import os

from gunicorn.app.wsgiapp import WSGIApplication


class Application(WSGIApplication):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's command-line application, minus the working directory on the import path."""

    def chdir(self) -> None:
        os.chdir(self.cfg.chdir)


def main() -> None:
    """Run gunicorn's command line (``-c``, ``GUNICORN_CMD_ARGS``, signals and reloads as ``gunicorn`` itself)."""
    Application("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn").run()


if __name__ == "__main__":
    main()
