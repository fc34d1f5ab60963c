"""Inbound credential validation: the WS-Security UsernameToken scenario ("UTOverTransport", WSO2 scenario 1).

Order of checks (each failure is one of the fixed WS-Security faults; every authentication or authorization
failure is the same ``wsse:FailedAuthentication`` bytes and costs one password check, a hash or a directory's
bind, so neither content nor timing tells unknown users apart: OWASP Authentication Cheat Sheet, "Authentication
and Error Messages"):

1. the one ``wsse:Security`` header for us; its ``wsu:Timestamp`` (required unless the policy relaxes it, as the
   published ``sp:IncludeTimestamp`` says; freshness, BSP structure);
2. the UsernameToken (BSP rules), its ``Created`` freshness even without a Timestamp;
3. transport: PasswordText only over TLS (or from a trusted TLS-terminating proxy, or when explicitly allowed);
4. domain allowed, account not locked, then the user store owning the domain (through
   :class:`~sts.auth.router.UserStoreRouter`): user known and enabled, password (the store checks a PasswordText
   password itself; a PasswordDigest is checked here against the secret the store keeps), then role;
5. the nonce, once per window across all workers (atomic ``check_and_add``; replays are not password failures).

Only consecutive failed password checks count towards lockout; a success resets them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from sts import telemetry
from sts.audit import login
from sts.auth.account_locks import AccountLocks
from sts.auth.credential_cache import VerifiedCredentialCache
from sts.auth.passwords import PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.users import (
    WRONG_PASSWORD,
    Principal,
    Refusal,
    UserStoreError,
    account_key,
    canonical,
)
from sts.clock import Clock
from sts.config.settings import ALL_DOMAINS
from sts.errors import FailedAuthentication, InvalidSecurity, STSError
from sts.soapenv import SoapVersion
from sts.stores.base import (
    AccountReader,
    ClientThrottle,
    LocalCredentialVersions,
    LockoutStore,
    ReplayCache,
    SeparateAccountReader,
)
from sts.wss.header import find_security_header, read_security_header
from sts.wss.timestamp import FreshnessPolicy, check_timestamp
from sts.wss.username import UsernameCredential, check_created, digest_matches, parse_username_token

_LOG = logging.getLogger("sts.auth")
NONCE_NAMESPACE = "wsse-nonce"

# AuthenticatedCaller.method of a caller proven by an X.509-signed request (WSS X.509 Token Profile 1.1).
X509_SIGNATURE = "x509"


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """The ``[security]`` rules for callers."""

    allowed_roles: frozenset[str]
    allowed_domains: frozenset[str]
    freshness: FreshnessPolicy = FreshnessPolicy()
    min_nonce_bytes: int = 16
    bsp_strict: bool = False
    max_password_bytes: int = 1024
    allow_insecure_transport: bool = False
    # WS-SecurityPolicy 1.2 §7.3 sp:IncludeTimestamp: the published policy carries it exactly when this is true.
    require_timestamp: bool = True


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """Transport facts the authenticator needs."""

    correlation_id: str
    client_address: str
    secure_transport: bool


@dataclass(frozen=True, slots=True)
class KeyProof:
    """What a verified request signature proves: the caller holds ``certificate``'s private key.

    ``token_id`` is the ``wsu:Id`` of the BinarySecurityToken that carried the certificate (None when the
    signature named a registered certificate by thumbprint, SKI or issuer and serial); ``signature_id`` the
    verified ``ds:Signature``'s ``Id`` (WS-Trust 1.3 §9.2 ``UseKey/@Sig`` may name it).
    """

    certificate: x509.Certificate
    token_id: str | None = None
    signature_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuthenticatedCaller:
    """The outcome of a successful authentication; ``proof`` when a signature proved a key (X.509 scenarios)."""

    principal: Principal
    method: str  # "password-text" | "password-digest" | X509_SIGNATURE | a TLS client certificate | an issued token
    proof: KeyProof | None = None


class UsernameTokenAuthenticator:
    """Authenticates and authorizes the caller of one request from its WS-Security header.

    ``hasher`` spends the cost of one password check on failures that did not (the user stores' own hasher).
    ``accounts`` reads an account's lock state with its credential version (which the cache entries are checked
    against); by default from ``lockout``, with no shared versions (entries expire by their TTL).
    """

    def __init__(
        self,
        users: UserStoreRouter,
        hasher: PasswordHasher,
        lockout: LockoutStore,
        replay: ReplayCache,
        cache: VerifiedCredentialCache,
        policy: AuthPolicy,
        clock: Clock,
        throttle: ClientThrottle | None = None,
        accounts: AccountReader | None = None,
    ) -> None:
        self._throttle = throttle
        self._accounts = accounts or SeparateAccountReader(lockout, LocalCredentialVersions())
        self._users = users
        self._hasher = hasher
        self._lockout = lockout
        self._replay = replay
        self._cache = cache
        self._policy = policy
        self._clock = clock
        self._roles = frozenset(role.casefold() for role in policy.allowed_roles)

    def authenticate(
        self,
        headers: tuple[etree._Element, ...],
        version: SoapVersion,
        info: CallerInfo,
        roles: frozenset[str] | None = None,
    ) -> AuthenticatedCaller:
        """Return the authenticated caller or raise the WS-Security fault; audits both outcomes.

        ``roles`` replaces the policy's allowed roles for this call (the lifecycle bindings may have their own).
        """
        return self._run(info, roles, lambda attempt, allowed: self._authenticate(headers, version, attempt, allowed))

    def authenticate_token(
        self, token: etree._Element, info: CallerInfo, roles: frozenset[str] | None = None, *, confidential: bool
    ) -> AuthenticatedCaller:
        """Authenticate a UsernameToken another binding has already verified (WS-SecurityPolicy 1.2 §8.3 signed
        supporting token: scenario 8), with the same checks, lockout, throttle and audit as the header path.

        ``confidential``: the token arrived encrypted, so PasswordText is safe without TLS. The caller checked the
        message's Timestamp.
        """
        return self._run(
            info, roles, lambda attempt, allowed: self._authenticate_token(token, attempt, allowed, confidential)
        )

    def _run(
        self,
        info: CallerInfo,
        roles: frozenset[str] | None,
        body: Callable[[_Attempt, frozenset[str]], AuthenticatedCaller],
    ) -> AuthenticatedCaller:
        attempt = _Attempt(info)
        allowed = self._roles if roles is None else frozenset(role.casefold() for role in roles)
        try:
            caller = body(attempt, allowed)
        except STSError as error:
            if isinstance(error, FailedAuthentication) and error.reason != "client_throttled":
                if not attempt.hash_spent:
                    self._hasher.dummy_verify()  # equal cost for every failure: no timing oracle
                if self._throttle is not None and info.client_address:
                    self._throttle.record_failure(info.client_address, self._clock.now().timestamp())
            attempt.audit("failure", error.reason)
            raise
        attempt.audit("success", caller.method)
        return caller

    def authenticate_delegated(self, token: etree._Element, info: CallerInfo) -> Principal:
        """Check a UsernameToken handed in as the identity to delegate (WS-Trust 1.3 §9.1 OnBehalfOf, 1.4 ActAs)
        exactly as a login of that user: transport, domain, lockout, the user store, the password (a failure
        counts towards **that user's** lockout), the allowed roles and the nonce. Raises the login's
        WS-Security fault (the operation turns it into its own), audited as ``delegated_authentication``.
        """
        attempt = _Attempt(info, "delegated_authentication")
        try:
            credential = self._credential(token)
            check_created(credential, self._clock, self._policy.freshness)
            secure = info.secure_transport or self._policy.allow_insecure_transport
            if not credential.is_digest and not secure:
                raise FailedAuthentication("PasswordText over plain HTTP", reason="insecure_transport")
            principal, _method = self._verify(credential, attempt)
            if not principal.holds_any_role(self._roles):
                raise FailedAuthentication("user holds none of the allowed roles", reason="role_denied")
            self._check_nonce(credential)
        except STSError as error:
            if isinstance(error, FailedAuthentication) and not attempt.hash_spent:
                self._hasher.dummy_verify()  # equal cost for every failure, as for logins
            attempt.audit("failure", error.reason)
            raise
        attempt.audit("success", "password")
        return principal

    def _authenticate(
        self, headers: tuple[etree._Element, ...], version: SoapVersion, attempt: _Attempt, roles: frozenset[str]
    ) -> AuthenticatedCaller:
        header = read_security_header(find_security_header(headers, version))
        telemetry.passed("security header")
        if header.timestamp is not None:
            check_timestamp(header.timestamp, self._clock, self._policy.freshness)
        elif self._policy.require_timestamp:
            raise InvalidSecurity("policy requires a wsu:Timestamp", reason="no_timestamp")
        telemetry.passed("timestamp")
        return self._authenticate_token(header.username_tokens[0], attempt, roles, False)

    def _credential(self, token: etree._Element) -> UsernameCredential:
        """The UsernameToken read under this policy's profile rules (BSP, nonce and password sizes)."""
        return parse_username_token(
            token,
            bsp_strict=self._policy.bsp_strict,
            min_nonce_bytes=self._policy.min_nonce_bytes,
            max_password_bytes=self._policy.max_password_bytes,
        )

    def _authenticate_token(
        self, token: etree._Element, attempt: _Attempt, roles: frozenset[str], confidential: bool
    ) -> AuthenticatedCaller:
        credential = self._credential(token)
        check_created(credential, self._clock, self._policy.freshness)
        telemetry.passed("username token")
        client = attempt.info.client_address
        if self._throttle is not None and client and self._throttle.throttled(client, self._clock.now().timestamp()):
            # Per-client throttling against password spraying: refuse without spending a password hash on it.
            telemetry.note("client_throttled")
            raise FailedAuthentication("too many failures from this client", reason="client_throttled")
        telemetry.passed("client throttle")
        secure = confidential or attempt.info.secure_transport or self._policy.allow_insecure_transport
        if not credential.is_digest and not secure:
            raise FailedAuthentication("PasswordText over plain HTTP", reason="insecure_transport")
        telemetry.passed("transport")
        principal, method = self._verify(credential, attempt)
        telemetry.passed("password")
        if not principal.holds_any_role(roles):
            raise FailedAuthentication("caller holds none of the allowed roles", reason="role_denied")
        telemetry.passed("role")
        self._check_nonce(credential)
        telemetry.passed("nonce")
        return AuthenticatedCaller(principal, method)

    def _verify(self, credential: UsernameCredential, attempt: _Attempt) -> tuple[Principal, str]:
        try:
            # DOMAIN/name, NETBIOS\\name or a bare name: from here on the lock key, the cache key and the audit are
            # those of DOMAIN/name, whichever spelling was typed.
            domain, name, qualified = self._users.parse(credential.username)
        except UserStoreError:
            raise FailedAuthentication("malformed user name", reason="bad_username") from None
        attempt.user, attempt.domain = name, domain
        chain = self._chain(credential, qualified)
        if chain is not None:
            attempt.chain = tuple(d for d in chain if self._domain_allowed(d))
            if not attempt.chain:
                raise FailedAuthentication("domain not allowed", reason="domain_denied")
        elif not self._domain_allowed(domain):
            raise FailedAuthentication("domain not allowed", reason="domain_denied")
        telemetry.passed("domain")
        folded = canonical(name)  # the cache key's name part
        lock_key = account_key(domain, name)
        # The version is read before the store is asked: a change racing this check leaves the entry stale.
        account = self._accounts.read(lock_key)
        locks = AccountLocks(self._lockout, self._clock.now().timestamp(), lock_key, account.lock)
        if locks.locked(lock_key):
            attempt.account = lock_key
            raise FailedAuthentication("account locked", reason="account_locked")
        telemetry.passed("lockout")
        password = credential.plain_password
        cached = None if password is None else self._cache.get(domain, folded, password, account.version)
        if cached is not None and locks.locked(account_key(cached.domain, cached.name)):
            # Cached under another spelling (a UPN, a chained unqualified name) of an account locked since: the
            # store would have refused it, so the cache must too.
            attempt.account = account_key(cached.domain, cached.name)
            raise FailedAuthentication("account locked", reason="account_locked")
        result = cached if cached is not None else self._ask_store(credential, domain, name, attempt, locks)
        if isinstance(result, Refusal):
            if result.wrong_password:
                locks.record_failures(result.accounts)
            attempt.account = result.account
            raise FailedAuthentication(result.detail, reason=result.reason)
        attempt.account = account_key(result.domain, result.name)
        if cached is None and locks.locked_meanwhile(result):
            raise FailedAuthentication("account locked", reason="account_locked")
        locks.reset(result)  # a success ends the run of consecutive failures
        if password is None:
            return result, "password-digest"
        if cached is None:
            self._cache.put(domain, folded, password, result, account.version)
        return result, "password-text"

    def _domain_allowed(self, domain: str) -> bool:
        return ALL_DOMAINS in self._policy.allowed_domains or domain in self._policy.allowed_domains

    def _chain(self, credential: UsernameCredential, qualified: bool) -> tuple[str, ...] | None:
        """The domains an unqualified PasswordText login is tried on, when logins are chained (else None)."""
        if not self._users.chain or qualified or credential.plain_password is None:
            return None
        return self._users.chain

    def _ask_store(
        self, credential: UsernameCredential, domain: str, name: str, attempt: _Attempt, locks: AccountLocks
    ) -> Principal | Refusal:
        """The user store checks a PasswordText password itself (an argon2id hash in the built-in store, a bind
        in a directory); a PasswordDigest is computed here over the secret the store keeps (UsernameToken Profile
        1.1 §3.1)."""
        password = credential.plain_password
        if password is not None:
            if attempt.chain:
                verdict = self._users.authenticate_chain(attempt.chain, name, password, locked=locks.locked)
            else:
                verdict = self._users.authenticate(domain, name, password, locked=locks.locked)
            attempt.hash_spent = not isinstance(verdict, Refusal) or verdict.password_checked
            return verdict
        secret = self._users.digest_secret(domain, name)
        if isinstance(secret, Refusal):
            return secret
        if not digest_matches(credential, secret.secret):
            account = account_key(secret.principal.domain, secret.principal.name)
            return Refusal(WRONG_PASSWORD, "wrong password", accounts=(account,), account=account)
        return secret.principal

    def _check_nonce(self, credential: UsernameCredential) -> None:
        """A nonce is accepted once, for as long as its Created could still be accepted (its replay window)."""
        if credential.nonce is None:
            return
        created = credential.created or self._clock.now()
        window = self._policy.freshness.replay_window
        key = hashlib.sha256(credential.nonce).digest()
        if not self._replay.check_and_add(NONCE_NAMESPACE, key, created.timestamp() + window, created.timestamp()):
            raise InvalidSecurity("nonce replayed", reason="nonce_replayed")


class _Attempt:
    """Mutable facts gathered while authenticating one request, for the audit event."""

    def __init__(self, info: CallerInfo, event: str = "authentication") -> None:
        self.info = info
        self.event = event
        self.user = ""
        self.domain = ""
        self.account = ""  # the account the store named, refused or accepted (audit ``account``)
        self.hash_spent = False
        self.chain: tuple[str, ...] = ()  # domains of a chained unqualified login

    def audit(self, outcome: str, reason: str) -> None:
        login(self.info, outcome, reason, user=self.user, domain=self.domain, event=self.event,
              account=self.account)
