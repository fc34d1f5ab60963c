"""The Makefile's virtual environment: `make run PYTHON=...` never silently runs on another interpreter."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _checkout(tmp_path: Path, venv_version: str) -> Path:
    """A copy of the Makefile beside the files it names, and a .venv whose python says it is `venv_version`."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for name in ("pyproject.toml", "setup.py", "requirements/run.lock", "requirements/tools.lock",
                 "requirements/build.lock"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\necho {venv_version}\n")
    python.chmod(0o755)
    return tmp_path


def _make(checkout: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *argv], cwd=checkout, capture_output=True, text=True, timeout=60, check=False
    )


def test_make_run_with_another_python_than_the_venvs_stops_and_says_so(tmp_path: Path) -> None:
    """README: `make run PYTHON=python3.11` chooses the interpreter; with a .venv of 3.12 already there, make kept
    it and served on 3.12 without a word."""
    checkout = _checkout(tmp_path, "3.12")
    other = tmp_path / "python3.11"
    other.write_text("#!/bin/sh\necho 3.11\n")
    other.chmod(0o755)
    ran = _make(checkout, "run", f"PYTHON={other}")
    assert ran.returncode != 0
    assert f".venv has Python 3.12, not 3.11 (PYTHON={other})" in ran.stderr


def test_a_venv_whose_python_no_longer_runs_is_named(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, "3.11")
    (checkout / ".venv" / "bin" / "python").write_text("#!/bin/sh\nexit 127\n")
    ran = _make(checkout, "run")
    assert ran.returncode != 0
    assert ".venv's Python no longer runs" in ran.stderr


def test_without_python_given_the_existing_venv_is_kept(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, "3.12")
    assert _make(checkout, "venv-matches").returncode == 0
