"""The LDAP wire: python-ldap connections to one directory, pooled per worker process (the only ``ldap`` import).

Every connection is made the same way (RFC 4511; RFC 4513 for TLS): LDAPv3, referrals never chased (libldap would
follow them anonymously), the server certificate verified against the store's ``ca_file`` (LDAPS, or StartTLS,
RFC 4513 §3, on ``ldap://``), a connect timeout and a timeout on every operation. The connect timeout must bound the
TLS handshake too, or an LDAPS server that accepts the TCP connection and then says nothing holds the worker for
good: libldap 2.5 (Debian 12, GnuTLS, built without non-blocking TLS) applies it there only with
``OPT_CONNECT_ASYNC``; libldap 2.6 (Debian 13, OpenSSL) applies it by itself and, given ``OPT_CONNECT_ASYNC``, waits in
that handshake for good, so the option is set on libldap 2.5 only (docs/decisions/ldap-client.md, rule 2).

Connections are opened lazily in the process that uses them (a python-ldap connection that crossed ``fork()``
is shared by every worker and mixes their answers), one pool per use: *service* connections stay bound as the
store's service account and only search; *authentication* connections re-bind as each user who logs in (a bind
changes a connection's identity, so users never bind on a searching connection). The URLs are tried in order; a
URL that failed is skipped for ``connection_retry_delay`` seconds while another one answers, and tried again when
none does, so a directory that comes back is used again without a restart.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap
import ldap.dn
from ldap.controls import SimplePagedResultsControl

from sts.auth.users import DIRECTORY_REQUIRES_TLS, DIRECTORY_REQUIRES_TLS_FIX
from sts.config.user_stores import UserStoreSettings

_LOG = logging.getLogger("sts.auth.ldap")
PAGE_SIZE = 500  # entries per page: within Active Directory's MaxPageSize (1000) and slapd's default limit (500)
MAX_ENTRIES = 5000  # a bound on what one unlimited search may pull (group expansion stops at 2000 already)
_T = TypeVar("_T")
# Whether OPT_CONNECT_ASYNC is what makes OPT_NETWORK_TIMEOUT bound the TLS handshake (libldap 2.5, built without
# non-blocking TLS), or what makes the handshake wait for good (libldap 2.6): see the module docstring.
_CONNECT_ASYNC_BOUNDS_TLS = ldap.VENDOR_VERSION < 20600
# Errors that mean "this connection or server is gone": discard the connection, fail closed.
_DOWN = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.UNAVAILABLE, ldap.BUSY)
# Active Directory puts a sub-code in the diagnostic message of invalidCredentials (49): "... data 52e, v1db1".
_AD_DATA = re.compile(r"\bdata ([0-9a-f]{3})\b", re.IGNORECASE)
# A failed TLS handshake in libldap's diagnostic message: GnuTLS reports a certificate that does not verify against
# ca_file only as "(unknown error code)" (SERVER_DOWN for LDAPS, CONNECT_ERROR for StartTLS); other handshake
# failures name TLS. A refused or hung TCP connection says "Error in the push function." / "Connection timed out".
_TLS_FAILURE = re.compile(r"TLS|certificate|\(unknown error code\)", re.IGNORECASE)
# A directory that wants the connection encrypted before it takes a simple bind (RFC 4511 §4.1.9): Active Directory
# and Samba answer strongerAuthRequired (8; Samba: "BindSimple: Transport encryption required."), OpenLDAP with
# `security simple_bind=...` confidentialityRequired (13).
_NEEDS_ENCRYPTION = (ldap.STRONG_AUTH_REQUIRED, ldap.CONFIDENTIALITY_REQUIRED)
# When every URL fails, the reason reported is the one an operator can act on first: a setting to change (TLS
# required, a certificate refused) before an error, a timeout or a server that is simply down.
_REASON_ORDER = (
    DIRECTORY_REQUIRES_TLS, "directory_tls_failure", "directory_error", "directory_timeout", "directory_down"
)


class TooManyEntries(Exception):
    """A search matched more entries than its size limit (an ambiguous user name)."""


class DirectoryUnavailable(Exception):
    """The directory did not answer (down, hung, TLS failure, refused the service account): fail closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Entry:
    """A search result: its DN and attribute values (names case-folded, values as the server sent them)."""

    dn: str
    attributes: Mapping[str, tuple[bytes, ...]]

    def values(self, attribute: str) -> tuple[bytes, ...]:
        """Every value of ``attribute`` (case-insensitive name; ``()`` when absent)."""
        return self.attributes.get(attribute.casefold(), ())

    def text(self, attribute: str) -> str:
        """The first value as UTF-8 text, or ``""``."""
        values = self.values(attribute)
        return values[0].decode("utf-8", "replace") if values else ""


@dataclass(frozen=True, slots=True)
class BindResult:
    """A user bind: accepted, or refused with the server's result name and Active Directory's sub-code."""

    accepted: bool
    result: str = ""  # e.g. "invalidCredentials"
    ad_code: str = ""  # e.g. "52e", "533", "775"


class DirectoryClient:
    """Searches and user binds against one directory, with pooled connections and URL failover."""

    def __init__(self, settings: UserStoreSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._idle: dict[str, list[Any]] = {"service": [], "auth": []}
        self._inherited: list[Any] = []  # connections of the parent process: never used, never unbound here
        self._down_until: dict[str, float] = {}
        self._local = threading.local()  # each request thread's deadline (see deadline())

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Bound every operation of the block together to ``seconds``: each operation's timeout is what is left.

        A login is several round trips (search, bind, a search per level of group nesting); a directory answering
        each just within ``read_timeout`` would otherwise hold the request for their sum, past gunicorn's worker
        timeout. An inner deadline never extends an outer one."""
        outer: float | None = getattr(self._local, "deadline", None)
        ends = self._clock() + seconds
        self._local.deadline = ends if outer is None else min(outer, ends)
        try:
            yield
        finally:
            self._local.deadline = outer

    def _operation_timeout(self) -> float:
        """One operation's timeout: ``read_timeout``, or what is left of the deadline."""
        return self._time_left(self._settings.read_timeout / 1000)

    def _time_left(self, limit: float) -> float:
        """``limit`` seconds, or less when the current deadline is nearer; none left fails closed."""
        ends: float | None = getattr(self._local, "deadline", None)
        if ends is None:
            return limit
        left = ends - self._clock()
        if left <= 0:
            raise DirectoryUnavailable("directory_timeout")
        return min(limit, left)

    # --- operations -------------------------------------------------------------------------------------

    def search(
        self, base: str, filterstr: str, attributes: tuple[str, ...], size_limit: int = 0
    ) -> list[Entry]:
        """A subtree search with the service connection; continuation references are dropped (never chased).

        More entries than ``size_limit`` (when set) raises :class:`TooManyEntries`; a base that does not exist
        answers no entries. Without a ``size_limit`` the answer comes in pages (RFC 2696 Simple Paged Results), so
        a server's limit on one answer (Active Directory's MaxPageSize, 1000) does not cut it short; more than
        :data:`MAX_ENTRIES`, or more than the server will page through, raises :class:`TooManyEntries`.
        """
        def run(conn: Any) -> list[Entry] | None:
            try:
                if size_limit:
                    results = conn.search_ext_s(
                        base, ldap.SCOPE_SUBTREE, filterstr, list(attributes) or ["1.1"], sizelimit=size_limit
                    )
                else:
                    results = _paged(conn, base, filterstr, list(attributes) or ["1.1"], self._operation_timeout)
            except ldap.SIZELIMIT_EXCEEDED:
                return None
            except ldap.NO_SUCH_OBJECT:
                _LOG.warning("search base does not exist", extra={"domain": self._settings.domain_name})
                return []
            if results is None:
                return None
            return [_entry(dn, attrs) for dn, attrs in results if dn is not None]

        entries = self._with("service", run)
        if entries is None:
            raise TooManyEntries(filterstr)
        return entries

    def bind(self, dn: str, password: str) -> BindResult:
        """A simple bind as ``dn`` on an authentication connection (never with an empty password: RFC 4513
        §5.1.2 makes that an unauthenticated bind that many servers accept)."""
        if not password:
            raise ValueError("refusing an unauthenticated bind (empty password)")

        def run(conn: Any) -> BindResult:
            try:
                conn.simple_bind_s(dn, password)
            except ldap.INVALID_CREDENTIALS as exc:
                return BindResult(False, "invalidCredentials", _ad_code(exc))
            except (ldap.UNWILLING_TO_PERFORM, ldap.INAPPROPRIATE_AUTH) as exc:
                return BindResult(False, type(exc).__name__, _ad_code(exc))
            return BindResult(True)

        return self._with("auth", run)

    def service_bind(self) -> str:
        """Open (or reuse) a service connection; the URL it talks to. For ``sts user-store test``."""
        return self._with("service", lambda conn: str(conn.get_option(ldap.OPT_URI)))

    def ping(self) -> None:
        """One round trip on a service connection, for the readiness probe: a pooled connection alone proves
        nothing, the server may have gone since; :class:`DirectoryUnavailable` if none. The round trip reads the
        root DSE (RFC 4512 §5.1, which every LDAPv3 server answers), not "Who am I?" (RFC 4532), which Samba's AD
        DC does not implement (protocolError)."""
        self._with("service", lambda conn: conn.search_ext_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"]))

    def close(self) -> None:
        """Unbind this process's idle connections (tools and tests; a worker's die with it)."""
        with self._lock:
            idle = [conn for pool in self._idle.values() for conn in pool] if self._pid == os.getpid() else []
            self._idle = {"service": [], "auth": []}
        for conn in idle:
            _unbind(conn)

    # --- pooling ------------------------------------------------------------------------------------------

    def _with(self, kind: str, run: Callable[[Any], _T]) -> _T:
        """Run ``run`` on a pooled connection; a reused connection the server dropped (a restarted directory)
        is replaced once, a new connection that fails makes the call fail closed."""
        for reused in (True, False):
            conn, was_idle = self._take(kind, reuse=reused)
            try:
                conn.set_option(ldap.OPT_TIMEOUT, self._operation_timeout())
                result = run(conn)
            except ldap.SERVER_DOWN:
                _unbind(conn)
                if was_idle:
                    continue  # a stale pooled connection: try once more on a fresh one
                raise DirectoryUnavailable("directory_down") from None
            except _DOWN as exc:
                _unbind(conn)  # a timed-out request may still be outstanding on it
                raise DirectoryUnavailable(_reason(exc)) from None
            except DirectoryUnavailable:  # the deadline passed before the operation began
                self._give_back(kind, conn)
                raise
            except ldap.LDAPError as exc:
                url = _uri(conn)
                _unbind(conn)
                raise DirectoryUnavailable(self._failed(url, exc, "directory operation failed")) from None
            self._give_back(kind, conn)
            return result
        raise DirectoryUnavailable("directory_down")

    def _take(self, kind: str, reuse: bool) -> tuple[Any, bool]:
        with self._lock:
            if self._pid != os.getpid():
                self._inherited.extend(conn for pool in self._idle.values() for conn in pool)
                self._idle, self._pid, self._down_until = {"service": [], "auth": []}, os.getpid(), {}
            if reuse and self._idle[kind]:
                return self._idle[kind].pop(), True
        return self._connect(), False

    def _give_back(self, kind: str, conn: Any) -> None:
        with self._lock:
            if self._pid == os.getpid() and len(self._idle[kind]) < 16:
                self._idle[kind].append(conn)
                return
        _unbind(conn)

    def _connect(self) -> Any:
        """A new connection bound as the service account, on the first URL that answers."""
        reason = "directory_down"
        for url in self._urls_in_order():
            try:
                conn = self._open(url)
            except _DOWN as exc:
                failed = _reason(exc)
            except ldap.INVALID_CREDENTIALS:
                _LOG.error("the directory refused the service account", extra={"domain": self._settings.domain_name})
                raise DirectoryUnavailable("service_bind_refused") from None
            except ldap.LDAPError as exc:
                failed = self._failed(url, exc, "cannot connect to the directory")
            else:
                self._down_until.pop(url, None)
                return conn
            self._down_until[url] = self._clock() + self._settings.connection_retry_delay
            _LOG.warning("directory URL failed", extra={"domain": self._settings.domain_name, "url": url,
                                                        "reason": failed})
            reason = min(reason, failed, key=_REASON_ORDER.index)
        raise DirectoryUnavailable(reason)

    def _plain(self, url: str) -> bool:
        """Whether a connection to ``url`` carries simple binds unencrypted (``ldap://`` without StartTLS)."""
        return url.lower().startswith("ldap://") and not self._settings.start_tls

    def _failed(self, url: str, exc: ldap.LDAPError, message: str) -> str:
        """The reason of an LDAP error on ``url`` (:func:`failure_reason`), logged with ``message``, or with the fix
        when the directory wants TLS. The URL and the result's name only: never the bind DN's password (the
        server's text is not logged either)."""
        reason = failure_reason(exc, self._plain(url))
        if reason == DIRECTORY_REQUIRES_TLS:
            message = f"the directory refuses simple binds without TLS: {DIRECTORY_REQUIRES_TLS_FIX}"
        _LOG.error(message, extra={"domain": self._settings.domain_name, "url": url, "ldap_error": type(exc).__name__})
        return reason

    def _urls_in_order(self) -> list[str]:
        """Answering URLs first in configured order, then those that failed recently (none may be up yet)."""
        now = self._clock()
        urls = self._settings.connection_url
        return [u for u in urls if self._down_until.get(u, 0) <= now] + [
            u for u in urls if self._down_until.get(u, 0) > now
        ]

    def _open(self, url: str) -> Any:
        settings = self._settings
        conn = ldap.initialize(url)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        if _CONNECT_ASYNC_BOUNDS_TLS:
            conn.set_option(ldap.OPT_CONNECT_ASYNC, 1)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self._time_left(settings.ldap_connection_timeout / 1000))
        conn.set_option(ldap.OPT_TIMEOUT, self._time_left(settings.read_timeout / 1000))
        if settings.ca_file is not None:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(settings.ca_file))
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # libldap applies the TLS options above only now
        try:
            if settings.start_tls and url.lower().startswith("ldap://"):
                conn.start_tls_s()
            conn.simple_bind_s(settings.connection_name, settings.connection_password)
        # Not on BaseException: an interrupt or a signal's exception may have left python-ldap's own lock of this
        # connection held, and the unbind would wait on it for good. The object is then dropped unbound.
        except Exception:
            _unbind(conn)
            raise
        return conn


@contextmanager
def open_client(settings: UserStoreSettings) -> Iterator[DirectoryClient]:
    """A client closed when the block ends (command-line tools)."""
    client = DirectoryClient(settings)
    try:
        yield client
    finally:
        client.close()


DnKey = tuple[tuple[tuple[str, str], ...], ...]


def dn_key(dn: str) -> DnKey:
    """A DN for comparison (RFC 4514 parsed, case-folded): servers may spell one DN several ways."""
    try:
        rdns = ldap.dn.str2dn(dn)
    except ldap.DECODING_ERROR:
        return (((dn.casefold(), ""),),)
    return tuple(tuple((attr.casefold(), value.casefold()) for attr, value, _ in rdn) for rdn in rdns)


def _entry(dn: str, attrs: Mapping[str, list[bytes]]) -> Entry:
    return Entry(dn, {name.casefold(): tuple(values) for name, values in attrs.items()})


def _ad_code(exc: ldap.LDAPError) -> str:
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    match = _AD_DATA.search(str(details.get("info", "")))
    return match.group(1).lower() if match else ""


def failure_reason(exc: ldap.LDAPError, plain: bool) -> str:
    """The audit reason of an LDAP error that is neither a wrong password nor a directory that is gone.

    ``plain``: the connection was not encrypted (``ldap://`` without StartTLS). A directory that then answers
    strongerAuthRequired (8) or confidentialityRequired (13) wants TLS before it takes the password:
    ``directory_requires_tls``, which the operator fixes in the store's settings. On an encrypted connection the
    same codes ask for something else (a stronger cipher, SASL) and stay ``directory_error``, as every other
    error does."""
    if plain and isinstance(exc, _NEEDS_ENCRYPTION):
        return DIRECTORY_REQUIRES_TLS
    return "directory_error"


def _uri(conn: Any) -> str:
    try:
        return str(conn.get_option(ldap.OPT_URI))
    except ldap.LDAPError:
        return ""


def _reason(exc: ldap.LDAPError) -> str:
    if isinstance(exc, ldap.TIMEOUT):
        return "directory_timeout"
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    if isinstance(exc, ldap.CONNECT_ERROR) or _TLS_FAILURE.search(str(details.get("info", ""))):
        return "directory_tls_failure"
    return "directory_down"


def _paged(
    conn: Any, base: str, filterstr: str, attributes: list[str], timeout: Callable[[], float]
) -> list[tuple[Any, Any]] | None:
    """Every result of a subtree search, page by page (RFC 2696); None past :data:`MAX_ENTRIES`.

    Each page is a round trip of its own, so each gets the operation ``timeout()`` anew: what is left of the
    login's deadline (:class:`DirectoryUnavailable` once none is), not a whole ``read_timeout`` per page."""
    control = SimplePagedResultsControl(True, size=PAGE_SIZE, cookie="")
    results: list[tuple[Any, Any]] = []
    while True:
        conn.set_option(ldap.OPT_TIMEOUT, timeout())
        message = conn.search_ext(base, ldap.SCOPE_SUBTREE, filterstr, attributes, serverctrls=[control])
        _, page, _, controls = conn.result3(message, all=1, timeout=conn.timeout)
        results += page
        if len(results) > MAX_ENTRIES:
            return None
        cookies = [c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType]
        if not cookies or not cookies[0]:
            return results
        control.cookie = cookies[0]


def _unbind(conn: Any) -> None:
    try:
        conn.unbind_ext_s()
    except ldap.LDAPError:
        pass  # already gone: nothing to release on the server
