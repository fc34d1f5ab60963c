"""Import boundaries: every foreign library sits behind its one module, the packages import only downwards in the
layer order of docs/architecture.md, and importing the package has no side effects beyond defining names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sts"

# foreign module prefix -> the only sts modules (dotted) allowed to import it
BOUNDARIES: dict[str, tuple[str, ...]] = {
    "spyne": ("sts.soap.spyne_app",),
    "signxml": ("sts.crypto.",),
    "xmlsec": ("sts.crypto.",),
    "cryptography.hazmat": ("sts.crypto.",),
    "passlib": ("sts.auth.passwords",),
    "ldap": ("sts.auth.ldap_client",),  # python-ldap, the optional extra wstrust-sts[ldap]
    # redis-py: the Redis cache backend only (its package __init__ imports nothing: loaded only when configured).
    "redis": ("sts.stores.redis.",),
    # PostgreSQL: the connection module (pools, deadlines, migrations); the stores use its sessions.
    "psycopg": ("sts.stores.postgres",),
    "psycopg_pool": ("sts.stores.postgres",),
    # gunicorn: its settings file, the worker class and the access-log class it runs.
    "gunicorn": (
        "sts.gunicorn_conf", "sts.gunicorn_main", "sts.gunicorn_worker", "sts.gunicorn_conn", "sts.gunicorn_logging",
    ),
    # SQLite: the stores (the relying-party registry's included) and the built-in user store, in one database file.
    "sqlite3": ("sts.stores.", "sts.auth.sqlite_users"),
    # python-pkcs11 (the optional extra wstrust-sts[hsm]): the signing key in an HSM.
    "pkcs11": ("sts.crypto.pkcs11_key",),
    # Prometheus metrics: the one exposition module; the pipeline records into sts.telemetry traces.
    "prometheus_client": ("sts.metrics",),
}


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("library", sorted(BOUNDARIES))
def test_foreign_library_stays_behind_its_module(library: str) -> None:
    allowed = BOUNDARIES[library]
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if module.startswith(allowed) or module in allowed:
            continue
        for imported in _imports(path):
            if imported == library or imported.startswith(library + "."):
                offenders.append(f"{module} imports {imported}")
    assert offenders == []


def test_psycopg_is_imported_by_exactly_one_module() -> None:
    """The prefix match above would let ``sts.stores.postgres_stores`` import psycopg too: it must not."""
    importers = {
        _module_name(path)
        for path in PACKAGE.rglob("*.py")
        for imported in _imports(path)
        if imported.split(".")[0] in ("psycopg", "psycopg_pool")
    }
    assert importers == {"sts.stores.postgres"}


def test_core_does_not_import_the_soap_edge_or_the_cli() -> None:
    """Layers: sts.soap and sts.cli sit on top; nothing below imports them."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if module in ("sts.soap", "sts.cli") or module.startswith(
            ("sts.soap.", "sts.cli.", "sts.__main__", "sts.app", "sts.bootstrap", "sts.wsgi", "sts.gunicorn_conf")
        ):
            continue
        for imported in _imports(path):
            if imported in ("sts.soap", "sts.cli") or imported.startswith(("sts.soap.", "sts.cli.")):
                offenders.append(f"{module} imports {imported}")
    assert offenders == []


def test_crypto_imports_neither_configuration_nor_relying_parties() -> None:
    """sts.crypto sits below both: it takes what it needs as arguments (protocols), never from the layers above."""
    offenders = []
    for path in (PACKAGE / "crypto").rglob("*.py"):
        for imported in _imports(path):
            if imported.startswith(("sts.config", "sts.relying_parties")):
                offenders.append(f"{_module_name(path)} imports {imported}")
    assert offenders == []


def test_configuration_is_settings_and_loader_only() -> None:
    """sts.config holds the settings (the ``[[user_stores]]`` and ``[[trusted_issuers]]`` tables among them) and
    their loader (with its table reader), and reads nothing of the layers that read it."""
    assert sorted(path.stem for path in (PACKAGE / "config").glob("*.py")) == [
        "__init__", "loader", "settings", "table_reader", "trusted_issuers", "user_stores"
    ]
    above = ("sts.relying_parties", "sts.crypto", "sts.stores", "sts.auth", "sts.tokens")
    offenders = [
        f"{_module_name(path)} imports {name}"
        for path in (PACKAGE / "config").glob("*.py")
        for name in _imports(path)
        if name.startswith(above)
    ]
    assert offenders == []


def _imported_modules(path: Path) -> set[str]:
    """Every module an import may load: ``from a.b import c`` counts as ``a.b`` and ``a.b.c``."""
    names = set(_imports(path))
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def test_client_library_does_not_import_the_cli_or_the_server_edge() -> None:
    """sts.client is the library the CLI sits on: it imports neither the CLI nor the server's SOAP edge and app."""
    forbidden = ("sts.cli", "sts.soap", "sts.app", "sts.bootstrap", "sts.wsgi", "sts.__main__")
    offenders = [
        f"{_module_name(path)} imports {imported}"
        for path in (PACKAGE / "client").rglob("*.py")
        for imported in sorted(_imported_modules(path))
        if _within(imported, forbidden)
    ]
    assert offenders == []


def test_cli_command_modules_are_leaves() -> None:
    """Each command module parses arguments and calls the library; none imports another command module (shared
    argument helpers live in sts.cli.common, which registers no command)."""
    commands = {
        _module_name(path)
        for path in (PACKAGE / "cli").glob("*.py")
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "register" for node in ast.parse(path.read_text()).body
        )
    }
    assert {"sts.cli.request", "sts.cli.lifecycle_cmds", "sts.cli.token_inspect"} <= commands
    assert "sts.cli.common" not in commands
    offenders = [
        f"{_module_name(path)} imports {imported}"
        for path in (PACKAGE / "cli").glob("*.py")
        if _module_name(path) != "sts.cli"  # the package assembles the parser from every command module
        for imported in sorted(_imported_modules(path) & commands)
    ]
    assert offenders == []


def test_importing_sts_has_no_side_effects() -> None:
    code = "import sys, sts; print(sorted(m for m in sys.modules if m.startswith(('spyne', 'xmlsec', 'signxml'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


# The pipeline, top to bottom (docs/architecture.md). A module may import its own package and any package of a
# LOWER layer; never one of its own layer (sideways) or above (upwards). Composition roots wire the layers together
# and may import anything below them. The entry points and the foundation are pools of independent leaf modules:
# imports among their members are allowed (wsgi -> bootstrap, xmlutil -> errors).
LAYERS: tuple[tuple[str, ...], ...] = (
    # entry points
    (
        "sts.__main__", "sts.cli", "sts.wsgi", "sts.gunicorn_conf", "sts.gunicorn_main", "sts.gunicorn_reload",
        "sts.bootstrap",
    ),
    ("sts.app", "sts.client"),  # the server's composition root; the client library
    ("sts.metrics",),  # Prometheus exposition of the request traces
    ("sts.soap",),  # transport and SOAP edge
    ("sts.service",),  # WS-Trust dispatch and authentication of the caller
    ("sts.operations",),  # Issue, Validate, Renew, Cancel
    ("sts.relying_parties",),  # relying parties: registry, matching, certificates, encrypters
    ("sts.policy",),  # claims and NameID for a principal
    ("sts.tokens", "sts.auth"),  # token provider and verifier; authentication and user stores
    ("sts.wstrust",),  # WS-Trust messages
    ("sts.wss",),  # WS-Security headers
    ("sts.certificates",),  # the configured certificates' expiry
    ("sts.crypto",),  # signxml, xmlsec, cryptography
    ("sts.stores",),  # shared state
    (  # foundation: settings, errors, XML, time, logging
        "sts.config", "sts.errors", "sts.ns", "sts.soapenv", "sts.xmlutil", "sts.xmlencoding", "sts.clock",
        "sts.audit", "sts.logging", "sts.files", "sts.netaddr", "sts.ldapfilter", "sts.http_framing",
        "sts.gunicorn_worker", "sts.gunicorn_conn", "sts.gunicorn_logging", "sts.telemetry", "sts.readiness",
    ),
)
POOLS = (0, len(LAYERS) - 1)
COMPOSITION_ROOTS = ("sts.stores.factory",)  # builds every store, the user stores included, from [store]


def _layer_of(module: str) -> tuple[int, str]:
    for index, packages in enumerate(LAYERS):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return index, package
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def test_packages_import_only_downwards_in_the_layer_order() -> None:
    """transport → SOAP → service → operations → relying parties → policy → tokens/auth → WS-Trust → WS-Security
    → crypto → stores → foundation: no upward and no sideways arrows."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if module == "sts" or module in COMPOSITION_ROOTS:
            continue
        layer, package = _layer_of(module)
        for imported in _imports(path):
            if not imported.startswith("sts.") or imported.startswith(package + ".") or imported == package:
                continue
            target, _ = _layer_of(imported)
            if target < layer or (target == layer and layer not in POOLS):
                offenders.append(f"{module} (layer {layer}) imports {imported} (layer {target})")
    assert offenders == []
