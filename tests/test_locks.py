"""The lock files pin everything a fresh clone installs: the dependencies, pip itself and the build backend.

A new pip or setuptools release must not change what `make run` installs: pip comes from ``tools.lock`` and
setuptools (for python-ldap's sdist and the editable install) from ``build.lock``, both exact and hashed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) \\$")


def _pins(lock: Path) -> dict[str, tuple[Version, int]]:
    """Each locked name, its version and how many hashes follow it."""
    pins: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in lock.read_text().splitlines():
        if found := _PIN.match(line):
            name = found[1].lower()
            pins[name] = (Version(found[2]), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


@pytest.mark.parametrize("lock", ["run.lock", "test.lock", "tools.lock", "build.lock"])
def test_every_locked_package_is_exact_and_hashed(lock: str) -> None:
    pins = _pins(LOCKS / lock)
    assert pins
    assert all(hashes > 0 for _, hashes in pins.values()), pins


def test_pip_is_locked_new_enough_for_build_constraints() -> None:
    assert set(_pins(LOCKS / "tools.lock")) == {"pip"}
    assert _pins(LOCKS / "tools.lock")["pip"][0] >= Version("25.3")  # pip's --build-constraint


def test_the_locked_backend_satisfies_the_projects_build_requirements() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    locked = _pins(LOCKS / "build.lock")
    for text in pyproject["build-system"]["requires"]:
        requirement = Requirement(text)
        assert requirement.specifier.contains(locked[requirement.name.lower()][0]), text


def test_every_pip_install_of_make_is_locked() -> None:
    """Outside `make lock` (a maintainer's tool), no pip install takes an unpinned version from the index."""
    recipes = re.split(r"\n(?=\S)", (ROOT / "Makefile").read_text())
    installs = [
        line
        for recipe in recipes
        if not recipe.startswith("lock:")
        for line in recipe.splitlines()
        if "pip install" in line or line.startswith("PIP_LOCKED")
    ]
    assert installs
    for line in installs:
        assert "--build-constraint" in line or "$(PIP_LOCKED)" in line or "-r $(TOOLS_LOCK)" in line, line
        assert "--upgrade" not in line, line
