"""The subject of an issued token: SAML 1.1 ``Subject/NameIdentifier`` and SAML 2.0 ``Subject/NameID``.

Per relying party, the NameID comes from a *source* and carries a *Format* (SAML 2.0 core §8.3; SAML 1.1 core
§2.4.2.2 takes the same URIs):

* ``username``: the user name, ``DOMAIN/`` prefixed unless the domain is PRIMARY (WSO2's form);
* ``email``: the ``http://wso2.org/claims/emailaddress`` claim;
* any claim URI: that claim of the user, looked up like an issued claim (identity-dialect URIs map to WSO2's
  local claims). Office 365 / Azure AD federation uses this for the per-user immutable ID.

The value is the claim's first value (in the order it was stored). Role claims are never a source: they are
role membership, not an identifier. A user without a usable value gets ``wst:RequestFailed`` ("The specified
request failed", WS-Trust 1.3 §11): the request is well formed and the caller authenticated, but the STS cannot
make the token this relying party requires; the audit reason is ``nameid_unavailable``.
"""

from __future__ import annotations

from sts.auth.users import PRIMARY, Principal
from sts.errors import RequestFailed
from sts.policy.claims import check_xml_values, is_role_claim, stored_values
from sts.tokens.base import NAMEID_EMAIL, NAMEID_UNSPECIFIED

USERNAME = "username"
EMAIL = "email"
NAMED_SOURCES = (USERNAME, EMAIL)
EMAIL_CLAIM = "http://wso2.org/claims/emailaddress"


def default_format(source: str) -> str:
    """The NameID Format when a relying party names none: emailAddress for ``email``, else unspecified."""
    return NAMEID_EMAIL if source == EMAIL else NAMEID_UNSPECIFIED


def claim_source(source: str) -> str | None:
    """The claim URI a source reads (None: the user name)."""
    if source == USERNAME:
        return None
    return EMAIL_CLAIM if source == EMAIL else source


def subject_of(principal: Principal, source: str, name_format: str) -> tuple[str, str]:
    """``(NameID value, Format)`` for this principal, the NameID read from ``source`` (a relying party's
    effective ``nameid`` setting: ``username``, ``email`` or a claim URI) with the Format ``name_format``."""
    claim = claim_source(source)
    if claim is None:
        name = principal.name if principal.domain == PRIMARY else principal.qualified_name
        return name, name_format
    values = () if is_role_claim(claim) else stored_values(claim, principal.claims)
    if not values or not values[0].strip():
        raise RequestFailed("user has no value for the NameID claim", reason="nameid_unavailable")
    check_xml_values(values[:1])
    return values[0], name_format
