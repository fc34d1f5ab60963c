"""The product as an operator installs it: the wheel and sdist built from this checkout, the wheel installed
non-editable into a fresh virtual environment, every command run from a folder that is not the checkout.

Editable installs (what `make test` itself uses) hide a package the wheel forgot, so this is the test that sees
it: the wheel's file list is compared with the package tree, and the installed `sts` initialises an instance,
checks it, serves it with gunicorn and obtains a token with `sts request`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from tests import token_checks as checks
from tests.support import Instance, start_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEMO_RP = "https://localhost:8443/demo-rp/"
BUILD_LOCK = ROOT / "requirements" / "build.lock"


@dataclass(frozen=True)
class Built:
    """The distributions built from the checkout and a venv with the wheel installed."""

    wheel: Path
    sdist: Path
    bin: Path


def _run(
    argv: list[str], *, cwd: Path, stdin: str = "", timeout: float = 300, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STS_", "PYTHON"))} | (extra_env or {})
    return subprocess.run(
        argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    dist = tmp_path_factory.mktemp("dist")
    # Without --wheel/--sdist, build makes the sdist and then the wheel FROM the sdist: nothing outside it (a stale
    # build/ folder of the checkout, an untracked file) can reach the wheel. build installs the backend into its
    # isolated environment with a plain pip install: the locked setuptools reaches it as a constraint.
    build = _run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
        cwd=dist,
        extra_env={"PIP_CONSTRAINT": str(BUILD_LOCK)},
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("wstrust_sts-*.whl")
    (sdist,) = dist.glob("wstrust_sts-*.tar.gz")
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps"]
    # README's order: the locked pip first (ensurepip's may be older than --build-constraint), then the run lock,
    # whose python-ldap is built from its sdist with the locked setuptools.
    tools = _run([*pip, "--require-hashes", "-r", str(ROOT / "requirements" / "tools.lock")], cwd=env_dir)
    assert tools.returncode == 0, tools.stderr[-3000:]
    run_lock = str(ROOT / "requirements" / "run.lock")
    locked = _run([*pip, "--require-hashes", "--build-constraint", str(BUILD_LOCK), "-r", run_lock], cwd=env_dir)
    assert locked.returncode == 0, locked.stderr[-3000:]
    installed = _run([*pip, str(wheel)], cwd=env_dir)
    assert installed.returncode == 0, installed.stderr[-3000:]
    yield Built(wheel, sdist, env_dir / "bin")


def _package_tree() -> set[str]:
    """What the wheel must hold: every module below sts/, the policy files as sts/policies/, the data files."""
    expected = {str(p.relative_to(ROOT)) for p in (ROOT / "sts").rglob("*.py")}
    expected |= {str(p.relative_to(ROOT)) for p in (ROOT / "sts").rglob("*.wsdl")}
    expected |= {str(p.relative_to(ROOT)) for p in (ROOT / "sts").rglob("*.sql")}  # schema migrations
    expected.add("sts/py.typed")
    expected |= {f"sts/policies/{p.name}" for p in (ROOT / "policies").iterdir() if p.is_file()}
    return expected


def test_wheel_holds_exactly_the_package_tree(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = {name for name in wheel.namelist() if ".dist-info/" not in name}
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        headers = wheel.read(metadata).decode()
    assert names == _package_tree()
    assert "Name: wstrust-sts" in headers
    assert "Requires-Python: <3.14,>=3.11" in headers
    assert "Requires-Dist: legacy-cgi>=2.6; python_version >= \"3.13\"" in headers


def test_sdist_rebuilds_the_same_package(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"setup.py", "pyproject.toml", "LICENSE", "README.md"} <= names
    assert {name for name in _package_tree() if not name.startswith("sts/policies/")} <= names
    policies = {name.removeprefix("sts/") for name in _package_tree() if name.startswith("sts/policies/")}
    assert policies <= names


def test_installed_wheel_initialises_checks_serves_and_issues(built: Built, tmp_path: Path) -> None:
    sts = str(built.bin / "sts")
    elsewhere = tmp_path / "operator"
    elsewhere.mkdir()
    helped = _run([sts, "--help"], cwd=elsewhere)
    assert helped.returncode == 0 and "request" in helped.stdout, helped.stderr

    base = elsewhere / "instance"
    initialised = _run([sts, "init", "--demo", "--key-size", "2048", str(base)], cwd=elsewhere)
    assert initialised.returncode == 0, initialised.stderr
    instance = Instance(base)
    checked = _run([sts, "--config", str(instance.config), "check-config"], cwd=elsewhere)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    server = start_server(instance, command=[sts, "--config", str(instance.config), "serve"], cwd=elsewhere)
    try:
        fetch = [str(built.bin / "python"), "-c", _FETCH_WSDL, server.url + "?wsdl", str(instance.ca_file)]
        wsdl = _run(fetch, cwd=elsewhere)
        assert wsdl.returncode == 0 and "sp:IncludeTimestamp" in wsdl.stdout, wsdl.stderr  # policies/ installed
        token_file = tmp_path / "token.xml"
        requested = _run(
            [sts, "--config", str(instance.config), "request", server.url, "--username", "admin",
             "--password-stdin", "--applies-to", DEMO_RP, "--cafile", str(instance.ca_file),
             "--out", str(token_file)],
            cwd=elsewhere,
            stdin=instance.demo_password + "\n",
        )
        assert requested.returncode == 0, requested.stderr
    finally:
        server.stop()
    token = etree.fromstring(token_file.read_bytes())
    encrypted = token.find(f"{{{checks.XENC}}}EncryptedData")
    assert encrypted is not None
    plaintext = checks.decrypt_with_python_xmlsec(encrypted, instance.rp_key)
    checks.verify_with_both(plaintext, instance.signing_cert, saml11=False)


def test_serve_runs_the_installed_release_whatever_the_working_directory_holds(built: Built, tmp_path: Path) -> None:
    """`sts serve` exec'd `python -m gunicorn`, and both `-m` and gunicorn's `chdir` put the working directory first
    on sys.path: started from a source checkout (where README's `pip install dist/...whl` is typed) or any folder
    holding an `sts` or a dependency's package, the server imported that instead of the installed release."""
    sts = str(built.bin / "sts")
    checkout = tmp_path / "checkout"
    for shadow in ("sts", "gunicorn", "lxml"):
        (checkout / shadow).mkdir(parents=True)
        refusal = f'raise SystemExit("imported ./{shadow} of the working directory")\n'
        (checkout / shadow / "__init__.py").write_text(refusal)
    base = tmp_path / "instance"
    initialised = _run([sts, "init", "--key-size", "2048", str(base)], cwd=tmp_path)
    assert initialised.returncode == 0, initialised.stderr
    instance = Instance(base)
    assert _run([sts, "--config", str(instance.config), "check-config"], cwd=checkout).returncode == 0
    server = start_server(instance, command=[sts, "--config", str(instance.config), "serve"], cwd=checkout)
    server.stop()
    assert "of the working directory" not in server.log.read_text()


def test_source_checkout_beside_a_wheel_install_finds_the_policies(built: Built) -> None:
    """`python -m sts` from the checkout imports the source tree, which has no sts.policies package."""
    rendered = _run([str(built.bin / "python"), "-c", _RENDER_FROM_SOURCE], cwd=ROOT)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.split() == [str(ROOT / "sts" / "__init__.py"), "True"]
    helped = _run([str(built.bin / "python"), "-m", "sts", "--help"], cwd=ROOT)
    assert helped.returncode == 0, helped.stderr


_FETCH_WSDL = """
import sys, urllib.request, ssl
context = ssl.create_default_context(cafile=sys.argv[2])
print(urllib.request.urlopen(sys.argv[1], context=context, timeout=10).read().decode())
"""

_RENDER_FROM_SOURCE = """
import sts, sts.soap.wsdl_render as w
print(sts.__file__, b"IncludeTimestamp" in w.load_policy("UTOverTransport").trust13)
"""
