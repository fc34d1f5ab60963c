"""The NameID of issued tokens: user name, e-mail claim or any claim, with a Format per relying party."""

from __future__ import annotations

import pytest

from sts import errors
from sts.auth.users import Principal
from sts.policy.nameid import subject_of
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.profiles import effective

UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EMAIL = "http://wso2.org/claims/emailaddress"
IMMUTABLE_ID = "http://wso2.org/claims/immutableid"
ID_EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
CLAIMS = {EMAIL: ("ann@example.com", "ann2@example.com"), IMMUTABLE_ID: ("AbC+12/x==",)}
ANN = Principal("PRIMARY", "ann", frozenset({"admin"}), CLAIMS)


def subject(principal: Principal, **rp: str) -> tuple[str, str]:
    settings = effective(RelyingParty("https://rp.example/", encrypt=False, **rp), "strict")
    return subject_of(principal, settings.nameid, settings.nameid_format)


def test_user_name_without_the_primary_domain() -> None:
    assert subject(ANN) == ("ann", UNSPECIFIED)
    assert subject(Principal("SECONDARY", "bob", frozenset())) == ("SECONDARY/bob", UNSPECIFIED)


def test_email_claim_first_value_as_email_address() -> None:
    assert subject(ANN, nameid="email") == ("ann@example.com", EMAIL_FORMAT)


def test_any_claim_with_a_chosen_format() -> None:
    assert subject(ANN, nameid=IMMUTABLE_ID, nameid_format=PERSISTENT) == ("AbC+12/x==", PERSISTENT)
    assert subject(ANN, nameid=IMMUTABLE_ID) == ("AbC+12/x==", UNSPECIFIED)  # default Format of a claim source
    assert subject(ANN, nameid="username", nameid_format=PERSISTENT) == ("ann", PERSISTENT)


def test_identity_dialect_claim_maps_to_the_local_claim() -> None:
    assert subject(ANN, nameid=ID_EMAIL) == ("ann@example.com", UNSPECIFIED)


@pytest.mark.parametrize(
    "claims", [{}, {IMMUTABLE_ID: ()}, {IMMUTABLE_ID: ("",)}, {IMMUTABLE_ID: ("  ",)}], ids=repr
)
def test_a_user_without_the_claim_gets_request_failed(claims: dict[str, tuple[str, ...]]) -> None:
    with pytest.raises(errors.RequestFailed) as caught:
        subject(Principal("PRIMARY", "ann", frozenset(), claims), nameid=IMMUTABLE_ID)
    assert caught.value.reason == "nameid_unavailable"


def test_a_role_claim_is_never_the_nameid() -> None:
    """Refused at registration; should one be stored anyway, the token is refused rather than naming a role."""
    principal = Principal("PRIMARY", "ann", frozenset({"admin"}), {"http://wso2.org/claims/role": ("admin",)})
    with pytest.raises(errors.RequestFailed):
        subject(principal, nameid="http://wso2.org/claims/role")


def test_a_nameid_value_xml_cannot_carry_fails_the_request_closed() -> None:
    principal = Principal("PRIMARY", "ann", frozenset(), {IMMUTABLE_ID: ("AbC\uffff",)})
    with pytest.raises(errors.RequestFailed) as caught:
        subject(principal, nameid=IMMUTABLE_ID)
    assert caught.value.reason == "claim_not_xml_text"
