"""One STS in-process for the operation tests: the four operations over the real stores with a frozen clock.

Every operation runs against a real SQLite database, user store, relying-party registry, signer and token store;
only the clock is frozen and the caller is handed in already authenticated (the authenticator has its own tests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from sts import ns
from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import PRIMARY, Principal
from sts.auth.validators import AuthenticatedCaller, AuthPolicy, KeyProof
from sts.clock import FrozenClock
from sts.config.settings import ALL_DOMAINS
from sts.crypto.keywrap import TrustedClientKeys
from sts.crypto.signer import AssertionSigner
from sts.errors import STSError
from sts.operations.call import RequestInfo, TrustCall, TrustReply, TrustRequest
from sts.operations.cancel import CancelOperation
from sts.operations.issue import IssueOperation
from sts.operations.minting import TokenMinter
from sts.operations.records import TokenLedger
from sts.operations.renew import RenewalPolicy, RenewOperation
from sts.operations.targets import TargetResolver
from sts.operations.validate import ValidateOperation
from sts.relying_parties.directory import RelyingPartyDirectory
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.soapenv import SoapVersion
from sts.stores.base import TokenStore
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_certificates import SqliteCertificateStore
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from sts.stores.sqlite_stores import SqliteTokenStore
from sts.tokens.provider import IssuerIdentity, TokenProvider
from sts.wstrust.actions import Operation
from sts.wstrust.version import TrustVersion

WST = ns.WST
SAML2 = ns.SAML2
RP = "https://rp.example.com/app/"
ROLE = "http://wso2.org/claims/role"
EMAIL = "http://wso2.org/claims/emailaddress"
LIFETIME, SKEW, AFTER, MAX_AGE = 300, 60, 1800, 86400
SAMLID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"


@dataclass
class Keys:
    signer: AssertionSigner


class Env:
    """One STS over a fresh database: issue, renew, validate and cancel as users of it."""

    def __init__(self, base: Path, keys: Keys, *, default_rp: str = "", lifecycle_roles: frozenset[str] | None = None):
        initialize(base / "sts.db")
        self.db = Database(base / "sts.db")
        self.users = SqliteUserStore(self.db, PasswordHasher(HashPolicy(memory_kib=1024, time_cost=1)))
        for role in ("admin", "staff", "renewer"):
            self.users.add_role(role)
        self.rps = RelyingPartyRegistry(SqliteRelyingPartyStore(self.db))
        # Frozen at the test's own start: certificates made during the test (valid from 5 minutes before the real
        # time) must be valid at it, however long after collection the test runs.
        self.clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
        self.store = SqliteTokenStore(self.db)
        (base / "truststore").mkdir()
        self.clients = base / "clients"
        self.clients.mkdir()
        self.directory = RelyingPartyDirectory(self.rps, base / "truststore", default_rp, recheck_seconds=0)
        identity = IssuerIdentity("https://sts.example/", LIFETIME, 43200, SKEW)
        self.provider = TokenProvider(identity, keys.signer, self.clock)
        minter = TokenMinter(self.provider, self.directory, TokenLedger(self.store, SKEW, AFTER))
        self.policy = AuthPolicy(allowed_roles=frozenset({"admin", "staff"}), allowed_domains=frozenset({ALL_DOMAINS}))
        self.lifecycle_roles = lifecycle_roles
        self.client_keys = TrustedClientKeys(self.clients)
        resolver = TargetResolver(self.store, tuple)
        self.certificates = SqliteCertificateStore(self.db)
        # Certificates whose key a user's calls prove (as a verified request signature would): user -> cert.
        self.proofs: dict[str, x509.Certificate] = {}
        self.issue_op = IssueOperation(
            self.directory, minter, self.clock, self.client_keys,
            self._registered,
        )
        self.renew_op = self.renew_operation(self.store)
        self.validate_op = ValidateOperation(resolver, self.clock, SKEW)
        self.cancel_op = CancelOperation(resolver, self.store)

    def _registered(self, principal: Principal) -> list[x509.Certificate]:
        ders = self.certificates.of_name(principal.domain, principal.name.casefold())
        return [x509.load_der_x509_certificate(der) for der in ders]

    def renew_operation(self, store: TokenStore) -> RenewOperation:
        """A Renew operation over ``store`` (another worker's view of the same database, for races)."""
        return RenewOperation(
            TargetResolver(store, tuple),
            self.directory,
            TokenMinter(self.provider, self.directory, TokenLedger(store, SKEW, AFTER)),
            SubjectAuthorizer(UserStoreRouter.single(self.users), self.policy),
            self.clock,
            RenewalPolicy(SKEW, AFTER, MAX_AGE, self.lifecycle_roles),
            self.client_keys,
        )

    def add_rp(self, address: str = RP, **kwargs: object) -> None:
        kwargs.setdefault("claims", (ROLE, EMAIL))
        self.rps.add(RelyingParty(address=address, encrypt=False, **kwargs))  # type: ignore[arg-type]

    def add_user(self, name: str, *roles: str, email: str = "") -> None:
        claims = {EMAIL: [email or f"{name}@example.com"]}
        self.users.add_user(PRIMARY, name, "Pass-word-1", roles=roles, claims=claims)

    def call(
        self, user: str, operation: Operation, inner: str, trust: TrustVersion = TrustVersion.TRUST13
    ) -> TrustReply:
        handler = {
            Operation.ISSUE: self.issue_op,
            Operation.RENEW: self.renew_op,
            Operation.VALIDATE: self.validate_op,
            Operation.CANCEL: self.cancel_op,
        }[operation]
        return handler(self.call_for(user, operation, inner, trust))

    def call_for(
        self, user: str, operation: Operation, inner: str, trust: TrustVersion = TrustVersion.TRUST13
    ) -> TrustCall:
        """The call an authenticated ``user`` makes with an RST of ``inner`` children."""
        stored = self.users.find(PRIMARY, user)
        assert stored is not None
        rst = etree.fromstring(
            f'<wst:RequestSecurityToken xmlns:wst="{trust.namespace}"><wst:RequestType>{trust.namespace}/'
            f"{operation.value}</wst:RequestType>{inner}</wst:RequestSecurityToken>"
        )
        info = RequestInfo("cid", "127.0.0.1", True)
        proof = KeyProof(self.proofs[user]) if user in self.proofs else None
        caller = AuthenticatedCaller(stored.principal, "x509" if proof else "password-text", proof)
        return TrustCall(TrustRequest(SoapVersion.SOAP11, (), rst, trust, operation, info), caller)

    def issue_reply(
        self,
        user: str,
        applies_to: str = RP,
        extra: str = '<wst:Renewing Allow="true"/>',
        key_type: str = "Bearer",
        trust: TrustVersion = TrustVersion.TRUST13,
    ) -> TrustReply:
        inner = (
            f"<wst:TokenType>{SAML2}</wst:TokenType>"
            f'<wsp:AppliesTo xmlns:wsp="{ns.WSP}"><wsa:EndpointReference xmlns:wsa="{ns.WSA}">'
            f"<wsa:Address>{applies_to}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
            f"<wst:KeyType>{trust.namespace}/{key_type}</wst:KeyType>{extra}"
        )
        return self.call(user, Operation.ISSUE, inner, trust)

    def issue(self, user: str, applies_to: str = RP, extra: str = '<wst:Renewing Allow="true"/>') -> str:
        return assertion_id(self.issue_reply(user, applies_to, extra))

    def renew(self, user: str, token_id: str) -> str:
        return assertion_id(renew_reply(self, user, token_id))

    def status(self, user: str, token_id: str) -> str:
        reply = self.call(user, Operation.VALIDATE, f"<wst:ValidateTarget>{reference(token_id)}</wst:ValidateTarget>")
        code = reply.body.findtext(f".//{{{WST}}}Status/{{{WST}}}Code")
        assert code is not None
        return code.rsplit("/", 1)[-1]

    def cancel(self, user: str, token_id: str) -> None:
        self.call(user, Operation.CANCEL, f"<wst:CancelTarget>{reference(token_id)}</wst:CancelTarget>")

    def refused(self, user: str, token_id: str) -> STSError:
        with pytest.raises(STSError) as caught:
            self.renew(user, token_id)
        return caught.value


def reference(token_id: str) -> str:
    return (
        f'<wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}"><wsse:KeyIdentifier ValueType="{SAMLID}">'
        f"{token_id}</wsse:KeyIdentifier></wsse:SecurityTokenReference>"
    )


def assertion_of(reply: TrustReply) -> etree._Element:
    assertion = reply.body.find(f".//{{{SAML2}}}Assertion")
    assert assertion is not None
    return assertion


def assertion_id(reply: TrustReply) -> str:
    return str(assertion_of(reply).get("ID"))


def claims_of(reply: TrustReply) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for attribute in assertion_of(reply).iter(f"{{{SAML2}}}Attribute"):
        values[str(attribute.get("Name"))] = [v.text or "" for v in attribute.iter(f"{{{SAML2}}}AttributeValue")]
    return values


def renew_reply(env: Env, user: str, token_id: str) -> TrustReply:
    return env.call(user, Operation.RENEW, f"<wst:RenewTarget>{reference(token_id)}</wst:RenewTarget>")
