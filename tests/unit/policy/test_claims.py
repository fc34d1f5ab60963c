"""Claims selection: the RP's claims are default and ceiling; required claims; dialect mapping."""

from __future__ import annotations

import pytest

from sts import errors
from sts.policy.claims import select_claims
from sts.tokens.base import Attribute
from sts.wstrust.model import ClaimRequest, RequestedClaims

EMAIL = "http://wso2.org/claims/emailaddress"
GIVEN = "http://wso2.org/claims/givenname"
PHONE = "http://wso2.org/claims/telephone"
ROLE = "http://wso2.org/claims/role"
ID_EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
USER = {EMAIL: ("a@example.com",), GIVEN: ("Ann",), PHONE: ("1", "2")}


def req(*claims: ClaimRequest) -> RequestedClaims:
    return RequestedClaims("http://wso2.org/claims", claims)


def test_rp_claims_are_the_default() -> None:
    assert select_claims(None, (EMAIL, GIVEN), USER, frozenset()) == (
        Attribute(EMAIL, ("a@example.com",)),
        Attribute(GIVEN, ("Ann",)),
    )


def test_rp_claims_are_the_ceiling() -> None:
    chosen = select_claims(req(ClaimRequest(EMAIL), ClaimRequest(PHONE)), (EMAIL,), USER, frozenset())
    assert chosen == (Attribute(EMAIL, ("a@example.com",)),)


def test_required_claim_outside_the_ceiling_fails() -> None:
    with pytest.raises(errors.RequestFailed):
        select_claims(req(ClaimRequest(PHONE, optional=False)), (EMAIL,), USER, frozenset())


def test_required_claim_the_user_lacks_fails() -> None:
    with pytest.raises(errors.RequestFailed):
        select_claims(req(ClaimRequest("http://wso2.org/claims/country", optional=False)), (), USER, frozenset())


def test_without_rp_claims_the_request_decides() -> None:
    chosen = select_claims(req(ClaimRequest(PHONE)), (), USER, frozenset())
    assert chosen == (Attribute(PHONE, ("1", "2")),)
    assert select_claims(None, (), USER, frozenset()) == ()


def test_identity_dialect_maps_to_local_claims_and_keeps_the_requested_uri() -> None:
    assert select_claims(req(ClaimRequest(ID_EMAIL)), (EMAIL,), USER, frozenset()) == (
        Attribute(ID_EMAIL, ("a@example.com",)),
    )


def test_a_uri_permitted_only_through_its_local_claim_gets_that_claims_values_only() -> None:
    """…/identity/claims/upn maps to WSO2's emailaddress: an RP permitted emailaddress gets the e-mail under the
    upn URI, never a value stored under the upn URI itself, which the RP is not permitted."""
    upn = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
    stored = {upn: ("secret-upn@corp.example",), GIVEN: ("Ann",)}
    assert select_claims(req(ClaimRequest(upn)), (GIVEN, EMAIL), stored, frozenset()) == ()
    with pytest.raises(errors.RequestFailed):
        select_claims(req(ClaimRequest(upn, optional=False)), (GIVEN, EMAIL), stored, frozenset())
    with_email = {**stored, EMAIL: ("a@example.com",)}
    assert select_claims(req(ClaimRequest(upn)), (GIVEN, EMAIL), with_email, frozenset()) == (
        Attribute(upn, ("a@example.com",)),
    )


def test_roles_come_from_membership() -> None:
    assert select_claims(req(ClaimRequest(ROLE)), (), USER, frozenset({"b", "a"})) == (Attribute(ROLE, ("a", "b")),)


def test_duplicates_are_emitted_once() -> None:
    assert len(select_claims(req(ClaimRequest(EMAIL), ClaimRequest(EMAIL)), (), USER, frozenset())) == 1


def test_rp_claim_mapping_renames_and_accepts_either_spelling() -> None:
    mapping = {EMAIL: "urn:rp:mail"}
    assert select_claims(None, (EMAIL,), USER, frozenset(), mapping) == (Attribute("urn:rp:mail", ("a@example.com",)),)
    asked = req(ClaimRequest("urn:rp:mail", optional=False))
    assert select_claims(asked, (EMAIL,), USER, frozenset(), mapping) == (Attribute("urn:rp:mail", ("a@example.com",)),)
    assert select_claims(req(ClaimRequest(EMAIL)), (EMAIL,), USER, frozenset(), mapping) == (
        Attribute(EMAIL, ("a@example.com",)),
    )
    with pytest.raises(errors.RequestFailed):
        select_claims(req(ClaimRequest("urn:rp:other", optional=False)), (EMAIL,), USER, frozenset(), mapping)


MS_ROLE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


@pytest.mark.parametrize("uri", [ROLE, MS_ROLE])
def test_stored_role_values_never_override_membership(uri: str) -> None:
    """A value stored under a role URI (e.g. left from before ``sts user revoke``) is never issued."""
    stored = {**USER, ROLE: ("admin",), MS_ROLE: ("admin",)}
    assert select_claims(req(ClaimRequest(uri)), (), stored, frozenset({"users"})) == (Attribute(uri, ("users",)),)
    assert select_claims(req(ClaimRequest(uri)), (), stored, frozenset()) == ()
    with pytest.raises(errors.RequestFailed):
        select_claims(req(ClaimRequest(uri, optional=False)), (), stored, frozenset())


def test_a_claim_mapped_onto_a_role_uri_is_membership_too() -> None:
    mapping = {"urn:local:groups": ROLE}
    stored = {"urn:local:groups": ("admin",)}
    assert select_claims(None, ("urn:local:groups",), stored, frozenset({"users"}), mapping) == (
        Attribute(ROLE, ("users",)),
    )


@pytest.mark.parametrize("value", ["Car\uffffol", "Car\ufffeol", "a\x00b", "a\udc80b"], ids=repr)
def test_a_value_xml_cannot_carry_fails_the_request_closed(value: str) -> None:
    """XML 1.0 §2.2 [2] Char: lxml cannot write such a value; the request fails with its own reason, the value
    is not silently dropped."""
    user = {**USER, GIVEN: ("Ann", value)}
    with pytest.raises(errors.RequestFailed) as caught:
        select_claims(None, (EMAIL, GIVEN), user, frozenset())
    assert caught.value.reason == "claim_not_xml_text"
    assert select_claims(None, (EMAIL,), user, frozenset()) == (Attribute(EMAIL, ("a@example.com",)),)


def test_a_role_xml_cannot_carry_fails_the_request_closed() -> None:
    with pytest.raises(errors.RequestFailed) as caught:
        select_claims(req(ClaimRequest(ROLE)), (), USER, frozenset({"ops\uffff"}))
    assert caught.value.reason == "claim_not_xml_text"
