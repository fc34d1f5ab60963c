"""Make Spyne 2.14.0 (its last release) import on Python 3.12 and 3.13.

Spyne vendors ``six`` 1.14 as ``spyne.util.six``. That copy registers a meta-path importer for its
``spyne.util.six.moves.*`` names with only the PEP 302 ``find_module``/``load_module`` hooks, which the import
system stopped calling in Python 3.12 (PEP 451 ``find_spec`` only), so ``from spyne.util.six.moves… import …``
fails there. :class:`SixMovesFinder` is a ``find_spec`` front for that importer: it answers for exactly the names
the vendored importer knows and lets the vendored importer build the module, as six 1.16 does itself.

Spyne's SOAP and WSGI modules also ``import cgi``, a module removed in Python 3.13 (PEP 594); there the
``legacy-cgi`` distribution (a dependency marked for 3.13+) provides it.

:func:`install` runs before the first Spyne import (``sts.soap.spyne_app``); ``tests/unit/soap`` pins the Spyne
version so this shim is revisited when Spyne changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Final

__all__ = ["SPYNE_VERSION", "SixMovesFinder", "install"]

SPYNE_VERSION: Final = "2.14.0"
"""The Spyne release this shim was written and tested for."""

_MOVES_PREFIX: Final = "spyne.util.six.moves"


class SixMovesFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A PEP 451 finder and loader for the ``spyne.util.six.moves.*`` modules of Spyne's vendored six.

    It must be in place before ``spyne`` itself is imported (``spyne/__init__`` already imports from
    ``spyne.util.six.moves``), so it finds the vendored importer when asked: by then the import system has
    imported the parent ``spyne.util.six``, which created it.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """Return a spec for a name the vendored importer knows, else ``None`` (other finders go on)."""
        if not fullname.startswith(_MOVES_PREFIX):
            return None
        importer = _vendored_importer()
        if importer is None or fullname not in importer.known_modules:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=importer.is_package(fullname))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        """Let the vendored importer resolve the (lazily moved) module, as it did under PEP 302."""
        module: ModuleType = _vendored_importer().load_module(spec.name)
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to execute: :meth:`create_module` returned a complete module."""


def install() -> None:
    """Put a :class:`SixMovesFinder` in front of ``sys.meta_path`` once (a no-op before Python 3.12)."""
    if sys.version_info < (3, 12):
        return
    if not any(isinstance(finder, SixMovesFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SixMovesFinder())


def _vendored_importer() -> Any:
    """The ``_SixMetaPathImporter`` of ``spyne.util.six`` once that module is imported, else ``None``."""
    vendored_six = sys.modules.get("spyne.util.six")
    return getattr(vendored_six, "_importer", None)
