"""Spyne 2.14.0 on Python 3.11-3.13: the six-moves finder and the pinned release it was written for."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

import pytest

import sts.soap.spyne_app  # noqa: F401  (installs the finder, imports Spyne)
from sts.soap import spyne_compat


def test_spyne_is_the_release_the_shim_was_written_for() -> None:
    # A new Spyne release may ship a newer six (or none): revisit spyne_compat.py, then move this pin.
    assert importlib.metadata.version("spyne") == spyne_compat.SPYNE_VERSION


def test_vendored_six_moves_import() -> None:
    moves = importlib.import_module("spyne.util.six.moves.collections_abc")
    parse = importlib.import_module("spyne.util.six.moves.urllib.parse")
    assert moves.MutableSet is not None
    assert parse.quote("a b") == "a%20b"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Python 3.11 still calls find_module")
def test_finder_is_installed_once_on_312_and_later() -> None:
    spyne_compat.install()
    assert sum(isinstance(f, spyne_compat.SixMovesFinder) for f in sys.meta_path) == 1


def test_finder_answers_only_for_known_vendored_moves() -> None:
    finder = spyne_compat.SixMovesFinder()
    assert finder.find_spec("json") is None
    assert finder.find_spec("spyne.util.six.moves.no_such_module") is None
    spec = finder.find_spec("spyne.util.six.moves.collections_abc")
    assert spec is not None and spec.loader is finder


def test_cgi_is_importable() -> None:
    # Removed from the standard library in 3.13 (PEP 594); legacy-cgi provides it there.
    assert importlib.import_module("cgi").parse_header("text/xml; charset=utf-8") == ("text/xml", {"charset": "utf-8"})
