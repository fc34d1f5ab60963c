"""A real OpenLDAP ``slapd`` for the tests, on 127.0.0.1 with TLS, users, groups and ``memberOf`` back-links.

:func:`running_slapd` (and the session fixture :func:`slapd`) writes everything into one temporary directory: a
``slapd.conf``, a test CA and server certificate (:mod:`tests.servers.certs`), the AD-shaped schema and the LDIF of
:mod:`tests.servers.directory_data`; it starts Debian's ``/usr/sbin/slapd`` in the foreground (``-d``) as a child of
the test process, listening only on ``ldap://127.0.0.1:<free port>`` (plain and StartTLS, RFC 4513 §3) and
``ldaps://127.0.0.1:<free port>``. Nothing in /etc/ldap is read except the schema files the package ships
(``/etc/ldap/schema/*.schema``, read-only), and a system slapd on port 389, if the package started one, plays no part.

Two databases: ``dc=example,dc=org`` (OpenLDAP-shaped) and ``dc=corp,dc=example`` (Active-Directory-shaped), each
with the ``memberof`` overlay (groups write ``memberOf`` onto their members, users and nested groups alike; direct
membership only, as AD's ``memberOf``) and ``refint`` (deleting or renaming an entry updates ``member``). The
overlay only acts on online writes, so the data is added over LDAP after the first start (``slapadd`` would leave
``memberOf`` empty), member DNs that do not exist yet being added by a later modify. OpenLDAP 2.5 calls
``memberof`` deprecated in favour of ``dynlist``; ``memberof`` is kept because it stores real back-links, as AD does
and as many OpenLDAP deployments are configured, so nested roles must be found by recursion or ``member`` searches.

``allow bind_anon_dn`` makes a simple bind with a DN and an empty password succeed as an anonymous
("unauthenticated", RFC 4513 §5.1.2) bind, as Active Directory does by default; slapd's default would refuse it.
The product must refuse empty passwords before binding; the tests show why.

Why not a real Samba AD DC: Samba 4.17 (Debian 12) provisions a DC non-interactively on 127.0.0.1 in about 7 s
(about 15 s with start and test data), which would fit ``make test``; but its LDAP server binds the ports
389/636/3268/3269, fixed in its source, and Kerberos 88/464, so only one DC fits a network namespace, and test
runs on one machine (CI, parallel work trees, a system slapd on 389) would collide; it needs a fixture of its own
in its own network namespace. The AD-shaped tree here covers login by ``sAMAccountName`` or ``userPrincipalName``,
``userAccountControl`` (and the bitwise-AND rule 1.2.840.113556.1.4.803), ``pwdLastSet``, ``accountExpires``,
binary ``objectGUID`` and ``memberOf``. It cannot show what only AD computes: the in-chain rule
1.2.840.113556.1.4.1941 (slapd answers such a filter with no entries and no error), bind ``data`` sub-codes,
``tokenGroups``, primary groups, computed lockout and expiry (``msDS-User-Account-Control-Computed`` is stored
here), AD's refusal of simple binds without TLS (strongerAuthRequired). A test that needs a directory refusing them
starts a slapd of its own with ``running_slapd(..., global_config="security simple_bind=128")``, which answers
confidentialityRequired instead (tests/unit/auth/test_directory_requires_tls.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ldap
import ldif
import pytest

from tests.servers._process import die_with_parent
from tests.servers.certs import TlsFiles, write_server_tls
from tests.servers.directory_data import AD_SCHEMA, DirectoryTree, active_directory_tree, openldap_tree, ssha

SLAPD = Path("/usr/sbin/slapd")
WHO_AM_I = "1.3.6.1.4.1.4203.1.11.3"  # RFC 4532
SCHEMA_DIR = Path("/etc/ldap/schema")  # shipped by the slapd package; read, never written
MODULE_DIR = Path("/usr/lib/ldap")
START_DEADLINE = 10.0  # seconds; a healthy start takes about 0.1 s
STOP_DEADLINE = 5.0

def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is in the stopped state (proc(5): field 3 of /proc/PID/task/TID/stat)."""
    try:
        states = [
            (task / "stat").read_text().rpartition(")")[2].split()[0] for task in Path(f"/proc/{pid}/task").iterdir()
        ]
    except (OSError, IndexError):
        return True  # gone, or a thread that just ended: nothing left to answer
    return all(state in ("T", "t") for state in states)


class SlapdError(RuntimeError):
    """slapd did not start or stop; the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database(tree: DirectoryTree, directory: Path, group_class: str) -> str:
    (directory / tree.kind).mkdir(exist_ok=True)
    # Active Directory answers at most MaxPageSize (1000) entries to a search, and any number page by page (RFC
    # 2696); slapd's default (500 in all, paged or not) stays on the OpenLDAP-shaped tree.
    limits = f'limits dn.exact="{tree.service_dn}" size=1000 size.prtotal=unlimited' if group_class == "group" else ""
    # Samba's AD DC (4.17, measured) does not implement "Who am I?" (RFC 4532): it answers protocolError,
    # "Extended Operation(1.3.6.1.4.1.4203.1.11.3) not supported". Refused here too (unwillingToPerform) for
    # whoever is bound in the AD-shaped tree, so nothing the product sends to AD can rely on it.
    if group_class == "group":
        limits += f"\nrestrict extended={WHO_AM_I}"
    return f"""
database mdb
suffix "{tree.base_dn}"
rootdn "{tree.admin_dn}"
rootpw {ssha(tree.admin_password).decode()}
directory {directory / tree.kind}
maxsize 33554432
dbnosync
{limits}
index objectClass eq
index cn,member eq
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="{tree.service_dn}" read
  by self read
  by * none
overlay memberof
memberof-group-oc {group_class}
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay refint
refint_attributes member
"""


def write_config(
    directory: Path, tls: TlsFiles, trees: tuple[DirectoryTree, DirectoryTree], global_config: str = ""
) -> Path:
    """Write ``slapd.conf`` (and the AD-shaped schema it includes) into ``directory``; ``global_config``: more
    global directives (slapd.conf(5)), e.g. ``security simple_bind=128``."""
    schema = directory / "ad-shaped.schema"
    schema.write_text(AD_SCHEMA)
    includes = "".join(f"include {SCHEMA_DIR / name}.schema\n" for name in ("core", "cosine", "inetorgperson"))
    openldap, active_directory = trees
    config = f"""{includes}include {schema}
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload memberof
moduleload refint
pidfile {directory / 'slapd.pid'}
argsfile {directory / 'slapd.args'}
allow bind_anon_dn
TLSCACertificateFile {tls.ca_file}
TLSCertificateFile {tls.cert_file}
TLSCertificateKeyFile {tls.key_file}
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
{global_config}
{_database(openldap, directory, "groupOfNames")}{_database(active_directory, directory, "group")}"""
    path = directory / "slapd.conf"
    path.write_text(config)
    return path


@dataclass
class SlapdServer:
    """A slapd child process; :meth:`stop`/:meth:`start` keep the ports and data, :meth:`pause` freezes it."""

    directory: Path
    tls: TlsFiles
    openldap: DirectoryTree
    active_directory: DirectoryTree
    ldap_port: int = 0
    ldaps_port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _paused: bool = False

    @property
    def ldap_url(self) -> str:
        """Plain LDAP; use StartTLS on it (``start_tls_s``) unless a test means to go without TLS."""
        return f"ldap://127.0.0.1:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        """LDAP over TLS from the first byte."""
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ca_file(self) -> Path:
        """PEM of the CA that issued the server certificate (SANs IP:127.0.0.1, DNS:localhost)."""
        return self.tls.ca_file

    @property
    def log_file(self) -> Path:
        return self.directory / "slapd.log"

    @property
    def pid(self) -> int | None:
        """The slapd process id while it runs."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def connect(
        self, url: str | None = None, *, ca_file: Path | None = None, start_tls: bool = False, timeout: float = 2.0
    ) -> ldap.ldapobject.LDAPObject:
        """A python-ldap connection with the settings the product needs: TLS verified against ``ca_file``
        (default: the test CA), referrals off, connect and per-operation timeouts. Not yet bound."""
        conn = ldap.initialize(url or self.ldaps_url)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, timeout)  # TCP connect only
        conn.set_option(ldap.OPT_TIMEOUT, timeout)  # each synchronous operation (bind, search, StartTLS)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(ca_file or self.ca_file))
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # libldap applies the TLS options above only now
        if start_tls:
            conn.start_tls_s()
        return conn

    def start(self, deadline: float = START_DEADLINE) -> None:
        """Start slapd on this server's ports and wait until an LDAPS bind succeeds; raise :class:`SlapdError`."""
        if self.pid is not None:
            return
        urls = f"{self.ldap_url}/ {self.ldaps_url}/"
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                # -d: stay in the foreground as our child and log to stderr (level "stats": one line per operation).
                [str(SLAPD), "-f", str(self.directory / "slapd.conf"), "-h", urls, "-d", "stats"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        self._paused = False
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self._process.poll() is not None:
                raise SlapdError(f"slapd exited with {self._process.returncode}\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise SlapdError(f"slapd did not answer within {deadline} s\n{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            conn = self.connect(timeout=0.5)
            try:
                conn.simple_bind_s(self.openldap.admin_dn, self.openldap.admin_password)
            finally:
                conn.unbind_s()
        except ldap.LDAPError:
            return False
        return True

    def stop(self) -> None:
        """Stop slapd (SIGTERM, then SIGKILL after a deadline) with its whole process group; data stays."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_DEADLINE)
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP slapd: connections are still accepted by the kernel, but nothing answers (a hung directory)."""
        if self.pid is None:
            raise SlapdError("slapd is not running")
        os.killpg(self.pid, signal.SIGSTOP)
        self._paused = True
        # SIGSTOP takes effect when each thread next reaches the kernel: on a busy machine a running slapd thread
        # could still answer a request sent right after kill(). Return once every thread is stopped.
        deadline = time.monotonic() + 2.0
        while not _all_threads_stopped(self.pid) and time.monotonic() < deadline:
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.pid is not None and self._paused:
            os.killpg(self.pid, signal.SIGCONT)
        self._paused = False

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """A directory that is down for the block, back on the same ports afterwards."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """A directory that hangs for the block and answers again afterwards."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of slapd's log, for failure messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no slapd log)"
        return "--- slapd log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def load(self, tree: DirectoryTree) -> None:
        """Add ``tree``'s LDIF over LDAP as its rootdn; a ``member`` naming an entry not added yet is added later,
        so that the memberof overlay writes every back-link."""
        records = ldif.LDIFRecordList(io.StringIO(tree.ldif()))
        records.parse()
        added: set[str] = set()
        later: list[tuple[str, list[bytes]]] = []
        conn = self.connect(self.ldap_url, start_tls=True)
        try:
            conn.simple_bind_s(tree.admin_dn, tree.admin_password)
            for dn, attrs in records.all_records:
                forward = [m for m in attrs.get("member", []) if m.decode().lower() not in added]
                if forward:
                    attrs = {**attrs, "member": [m for m in attrs["member"] if m not in forward]}
                    later.append((dn, forward))
                conn.add_s(dn, list(attrs.items()))
                added.add(dn.lower())
            for dn, members in later:
                conn.modify_s(dn, [(ldap.MOD_ADD, "member", members)])
        finally:
            conn.unbind_s()


def _start_on_free_ports(server: SlapdServer, attempts: int = 3) -> None:
    """Pick two free ports and start; another process may take a port between the pick and slapd's bind."""
    for attempt in range(attempts):
        server.ldap_port, server.ldaps_port = free_port(), free_port()
        try:
            server.start()
            return
        except SlapdError:
            if attempt == attempts - 1:
                raise


@contextlib.contextmanager
def running_slapd(
    directory: Path, trees: tuple[DirectoryTree, DirectoryTree] | None = None, global_config: str = ""
) -> Iterator[SlapdServer]:
    """Configure, start and fill a slapd in ``directory`` (empty or new); stop it when the block ends.

    ``trees``: the OpenLDAP-shaped and the AD-shaped tree to load (default: the test data; the benchmark loads
    its own). ``global_config``: global slapd.conf directives for a server of the test's own (the session's
    :func:`slapd` has none); the server must still take the TLS binds that start and fill it."""
    if not SLAPD.exists():
        raise SlapdError(f"{SLAPD} is missing: install the Debian packages slapd and ldap-utils (make install-test)")
    directory.mkdir(parents=True, exist_ok=True)
    trees = trees or (openldap_tree(), active_directory_tree())
    tls = write_server_tls(directory)
    write_config(directory, tls, trees, global_config)
    for tree in trees:
        (directory / f"{tree.kind}.ldif").write_text(tree.ldif())  # for ldapadd/ldapsearch when debugging
    server = SlapdServer(directory, tls, *trees)
    try:
        _start_on_free_ports(server)
        for tree in trees:
            server.load(tree)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """The session's slapd (started on first use). Tests that stop or pause it use ``stopped()``/``paused()``."""
    with running_slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server
