"""Which claims an issued token carries (WS-Trust 1.3 Issuance Binding, ``wst:Claims``).

The relying party's configured claims are both the default set and the ceiling: a caller can never pull an
attribute the RP was not granted. With no configured claims, the RP receives what the request's ``wst:Claims``
asks for among the user's attributes. Claim URIs of the identity dialect are mapped to WSO2's local claims
(as WSO2's claim mappings do) and emitted under the URI the request used. A required (``Optional="false"``)
claim that cannot be supplied fails the request with ``wst:RequestFailed``.

Role claims come from role membership only: a value stored under a role URI (or a claim mapped onto one) is
never issued, so revoking a role is what an RP sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sts.errors import RequestFailed
from sts.tokens.base import Attribute
from sts.wstrust.model import RequestedClaims
from sts.xmlutil import is_xml_text

WSO2 = "http://wso2.org/claims/"
IDENTITY = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
ROLE_CLAIMS = frozenset({WSO2 + "role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})
# Identity-dialect (and Microsoft) claim URIs → the WSO2 local claim holding the value.
DIALECT_MAP: Mapping[str, str] = {
    IDENTITY + "emailaddress": WSO2 + "emailaddress",
    IDENTITY + "givenname": WSO2 + "givenname",
    IDENTITY + "surname": WSO2 + "lastname",
    IDENTITY + "name": WSO2 + "username",
    IDENTITY + "upn": WSO2 + "emailaddress",
    IDENTITY + "mobilephone": WSO2 + "mobile",
    IDENTITY + "country": WSO2 + "country",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role": WSO2 + "role",
}


def local_claim(uri: str) -> str:
    """The user-store claim behind a requested URI."""
    return DIALECT_MAP.get(uri, uri)


def is_role_claim(uri: str) -> bool:
    """Whether a claim URI (in any dialect) names the user's roles."""
    return uri in ROLE_CLAIMS or local_claim(uri) in ROLE_CLAIMS


def stored_values(uri: str, claims: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A user's stored values for a claim URI, looked up under its local claim first, then as written."""
    return claims.get(local_claim(uri)) or claims.get(uri) or ()


def claim_values(uri: str, claims: Mapping[str, tuple[str, ...]], roles: frozenset[str]) -> tuple[str, ...]:
    """A user's values for a claim URI; role claims are the role membership, whatever is stored under them."""
    if is_role_claim(uri):
        return tuple(sorted(roles))
    return stored_values(uri, claims)


def check_xml_values(values: Iterable[str]) -> None:
    """Refuse the request (``wst:RequestFailed``, audit reason ``claim_not_xml_text``) when a value to be issued is
    not XML 1.0 text (§2.2 [2] Char: U+FFFE, U+FFFF, C0 controls), as a directory attribute or a value stored
    before provisioning checked it may be. Fail closed: dropping the value would issue a token that says less
    than the user store does, without the relying party knowing."""
    if not all(is_xml_text(value) for value in values):
        raise RequestFailed("a claim value is not XML text", reason="claim_not_xml_text")


def select_claims(
    requested: RequestedClaims | None,
    permitted: tuple[str, ...],
    claims: Mapping[str, tuple[str, ...]],
    roles: frozenset[str],
    mapping: Mapping[str, str] | None = None,
) -> tuple[Attribute, ...]:
    """The attributes to issue for this request, relying party (``permitted``, ``mapping``) and user.

    ``mapping`` is the RP's claim mapping, local claim URI → the URI the RP expects (WSO2's claim mappings):
    by default the RP receives its permitted claims under the URIs it expects, and a request may ask for
    either spelling.
    """
    return ClaimPolicy.of(permitted, mapping).select(requested, claims, roles)


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    """A relying party's claims (``permitted``) and claim mapping, worked out for issuing. Made once per
    registration (:class:`~sts.relying_parties.directory.RelyingPartyDirectory`), not at every request."""

    to_remote: Mapping[str, str]  # local claim URI → the URI the relying party expects
    to_local: Mapping[str, str]  # the reverse
    ceiling: frozenset[str]  # the permitted claims, as written and as local claims; empty: no ceiling
    defaults: tuple[tuple[str, bool], ...]  # what a request without wst:Claims gets: (URI, optional)

    @classmethod
    def of(cls, permitted: tuple[str, ...], mapping: Mapping[str, str] | None = None) -> ClaimPolicy:
        """The policy of a relying party's ``claims`` and ``claim_mapping`` (see :func:`select_claims`)."""
        to_remote = dict(mapping or {})
        return cls(
            to_remote=to_remote,
            to_local={remote: local for local, remote in to_remote.items()},
            ceiling=frozenset(permitted) | {local_claim(uri) for uri in permitted},
            defaults=tuple((to_remote.get(uri, uri), True) for uri in permitted),
        )

    def select(
        self, requested: RequestedClaims | None, claims: Mapping[str, tuple[str, ...]], roles: frozenset[str]
    ) -> tuple[Attribute, ...]:
        """The attributes to issue for this request and user (see :func:`select_claims`)."""
        if requested is None or not requested.claims:
            chosen: Iterable[tuple[str, bool]] = self.defaults
        else:
            chosen = [(claim.uri, claim.optional) for claim in requested.claims]
        ceiling = self.ceiling
        attributes: list[Attribute] = []
        seen: set[str] = set()
        for uri, optional in chosen:
            if uri in seen:
                continue
            seen.add(uri)
            local = self.to_local.get(uri, uri)
            # Issued under a role URI (even through a claim mapping): membership, never stored values.
            source = uri if is_role_claim(uri) else local
            if not ceiling or local in ceiling:
                values = claim_values(source, claims, roles)
            elif local_claim(local) in ceiling:
                # Permitted only as the user-store claim it maps to (…/identity/claims/upn as WSO2's
                # emailaddress): that claim's values, never what is stored under the requested URI itself.
                values = claim_values(uri if is_role_claim(uri) else local_claim(local), claims, roles)
            else:
                values = ()
            check_xml_values(values)
            if not values:
                if not optional:
                    raise RequestFailed("required claim unavailable", reason="required_claim_unavailable")
                continue
            attributes.append(Attribute(uri, values))
        return tuple(attributes)
