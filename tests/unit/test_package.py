"""The package's own metadata (sts/__init__.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import sts
from sts.cli import main

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_version_is_the_distribution_version() -> None:
    with PYPROJECT.open("rb") as handle:
        assert sts.__version__ == tomllib.load(handle)["project"]["version"]


def test_sts_version_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"sts {sts.__version__}\n"
