"""``application`` for WSGI servers: ``gunicorn sts.wsgi:application`` with ``STS_CONFIG`` set."""

from __future__ import annotations

from sts.bootstrap import boot

application = boot()
