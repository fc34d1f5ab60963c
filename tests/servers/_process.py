"""What the test servers share: a process group per server, signals, bounded waits, TLS files, the log on failure."""

from __future__ import annotations

import ctypes
import datetime as dt
import ipaddress
import os
import pwd
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
STOP_DEADLINE = 10.0  # seconds a server gets to shut down cleanly before SIGKILL
LOG_TAIL = 6000  # characters of the server log put into an error
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork: the child only calls it


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when the thread that started it ends: a
    server must not outlive a test run that was killed (SIGKILL runs no fixture teardown).

    The signal follows the starting *thread* (prctl(2), PR_SET_PDEATHSIG), so it is armed only for servers started
    on the main thread: a helper thread's end must not kill a server the tests still use. It survives the switch
    to an unprivileged account, which ``subprocess`` makes before it calls ``preexec_fn``.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def arm() -> None:
        _prctl(PR_SET_PDEATHSIG, sig)

    return arm


class ServerError(RuntimeError):
    """A test server did not start, stop or answer in time; the message ends with its log."""


@dataclass(frozen=True)
class Account:
    """The unprivileged system account a server runs as when the tests run as root."""

    name: str
    uid: int
    gid: int

    @classmethod
    def for_root(cls, name: str) -> Account | None:
        """``name``'s account when we are root (servers such as PostgreSQL refuse root); None = run as ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ServerError(f"running as root needs the system user {name!r} (make system-test-deps)") from None
        return cls(name, entry.pw_uid, entry.pw_gid)

    def own(self, *paths: Path) -> None:
        """Give ``paths`` to this account (the server must write its directory and read its key)."""
        for path in paths:
            os.chown(path, self.uid, self.gid)


def log_tail(log: Path) -> str:
    """The end of a server log, for an error message."""
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(no log {log}: {exc})"
    return f"--- {log} ---\n{text[-LOG_TAIL:]}"


def _processes() -> dict[int, tuple[str, int]]:
    """PID -> (state, parent PID) of every process, from /proc (Linux)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After the parenthesised command (which may hold spaces): state ppid pgrp ...
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (fields[0], int(fields[1]))
    return table


def descendants(pid: int) -> set[int]:
    """Live (not zombie) children of ``pid``, their children, and so on.

    By the process tree, not the process group: PostgreSQL backends call setsid(), so a group signal reaches only
    the postmaster.
    """
    table = _processes()
    children: dict[int, list[int]] = {}
    for child, (state, parent) in table.items():
        if state != "Z":
            children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that are still running (not zombies)."""
    table = _processes()
    return {pid for pid in pids if pid in table and table[pid][0] != "Z"}


def _signal(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class ServerProcess:
    """One server process and the processes it forks (signalled together, waited for together)."""

    def __init__(self, name: str, log: Path, account: Account | None) -> None:
        self.name = name
        self.log = log
        self.account = account
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def pid(self) -> int:
        """PID of the server's main process."""
        if self.process is None:
            raise ServerError(f"{self.name} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        """True while the main process lives (also when paused)."""
        return self.process is not None and self.process.poll() is None

    def spawn(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        """Start ``argv`` in a new session with stdout and stderr appended to the log."""
        if self.running:
            raise ServerError(f"{self.name} is already running")
        extra: dict[str, object] = {}
        if self.account is not None:
            extra = {"user": self.account.uid, "group": self.account.gid, "extra_groups": []}
        # SIGKILL: the data lives in a temporary folder; PostgreSQL's backends exit when their postmaster dies.
        extra["preexec_fn"] = die_with_parent(signal.SIGKILL)
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(  # type: ignore[call-overload]
                list(argv), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cwd, start_new_session=True, **extra,
            )
        self.paused = False

    def wait_ready(self, probe: Callable[[], object], deadline: float) -> None:
        """Call ``probe`` until it returns without raising; the server dying or ``deadline`` passing is an error."""
        end = time.monotonic() + deadline
        last: BaseException | None = None
        while time.monotonic() < end:
            if not self.running:
                code = self.process.returncode if self.process else None
                raise ServerError(f"{self.name} exited with {code}\n" + log_tail(self.log))
            try:
                probe()
                return
            except Exception as exc:  # any failure means "not yet"
                last = exc
                time.sleep(0.05)
        self.kill()
        raise ServerError(f"{self.name} did not accept an authenticated connection within {deadline} s "
                          f"(last error: {last!r})\n" + log_tail(self.log))

    def _freeze(self) -> set[int]:
        """SIGSTOP the main process (so it forks no more), then its descendants; returns them all."""
        _signal({self.pid}, signal.SIGSTOP)
        frozen: set[int] = set()
        for _ in range(5):  # a fork that was under way when the parent stopped shows up on the next pass
            found = descendants(self.pid) - frozen
            if not found:
                break
            _signal(found, signal.SIGSTOP)
            frozen |= found
        return frozen | {self.pid}

    def pause(self) -> None:
        """SIGSTOP the server and its children: sockets stay open but nothing answers (a hung host)."""
        if not self.running:
            raise ServerError(f"{self.name} is not running")
        self._freeze()
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.running:
            _signal({self.pid} | descendants(self.pid), signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL the server and its children at once (a crash); returns when none of them is left."""
        if not self.running:
            return
        assert self.process is not None
        victims = self._freeze()
        _signal(victims, signal.SIGKILL)
        self.process.wait(timeout=STOP_DEADLINE)
        self._wait_gone(victims)
        self.paused = False

    def terminate(self, sig: signal.Signals) -> None:
        """Ask for a clean shutdown with ``sig``; SIGKILL (and an error with the log) if it takes too long."""
        if not self.running:
            return
        assert self.process is not None
        self.resume()
        children = descendants(self.pid)
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerError(f"{self.name} ignored {sig.name} for {STOP_DEADLINE} s\n" + log_tail(self.log)) from None
        self._wait_gone(children)

    def _wait_gone(self, pids: set[int]) -> None:
        end = time.monotonic() + STOP_DEADLINE
        while left := alive(pids):
            if time.monotonic() > end:
                _signal(left, signal.SIGKILL)
                raise ServerError(f"children {sorted(left)} of {self.name} outlived it\n" + log_tail(self.log))
            time.sleep(0.02)


@dataclass(frozen=True)
class TlsFiles:
    """A private CA and a server certificate for 127.0.0.1 / localhost signed by it (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path, owner: Account | None) -> TlsFiles:
    """Write a fresh CA and server certificate; the key is 0600 and owned by the server's account."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own, so that another run's CA is "unknown issuer", not a look-alike with a bad signature.
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sts test CA {secrets.token_hex(4)}")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        # Python 3.13's default context verifies with VERIFY_X509_STRICT: key identifiers are required (RFC 5280).
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.crt", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    if owner is not None:
        owner.own(files.key)
    return files
