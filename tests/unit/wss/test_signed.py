"""Tests for sts.wss.signed: the Security header inventory of a signed request, the one ID index and where a
signature's referents may sit (message-security reference MS2, MS3, MS5; rows G23, G24, G26, G32)."""

from __future__ import annotations

import copy

import pytest
from lxml import etree

from sts import errors, ns
from sts.wss.signed import (
    BODY_KIND,
    TIMESTAMP_KIND,
    TOKEN_KIND,
    WSA_TO_KIND,
    check_coverage,
    covered,
    index_ids,
    read_signed_header,
    resolve_referents,
)
from tests.x509_support import Client, make_cert, rsa_key, signed_rst

URL = "http://127.0.0.1:9/services/wso2carbon-sts/SigOnly"
WSU_ID = ns.qn(ns.WSU, "Id")


@pytest.fixture(scope="module")
def client() -> Client:
    key = rsa_key()
    return Client(make_cert("alice", key), key, None, None)  # type: ignore[arg-type]


@pytest.fixture
def envelope(client: Client) -> etree._Element:
    return signed_rst(URL, client, sign_to=True)


def _security(envelope: etree._Element) -> etree._Element:
    security = envelope[0].find(ns.qn(ns.WSSE, "Security"))
    assert security is not None
    return security


def _child(envelope: etree._Element, namespace: str, local: str) -> etree._Element:
    found = _security(envelope).find(ns.qn(namespace, local))
    assert found is not None
    return found


def test_a_signed_header_sorts_into_signature_timestamp_and_token(envelope: etree._Element) -> None:
    header = read_signed_header(_security(envelope))
    assert header.signature.tag == ns.qn(ns.DS, "Signature")
    assert header.timestamp.tag == ns.qn(ns.WSU, "Timestamp")
    assert header.token is not None and header.token.tag == ns.qn(ns.WSSE, "BinarySecurityToken")
    token = header.token
    token.getparent().remove(token)  # type: ignore[union-attr]
    assert read_signed_header(_security(envelope)).token is None  # a registered certificate may be named instead


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("username_token", "header_extra"),
        ("second_signature", "signature_count"),
        ("no_signature", "signature_count"),
        ("no_timestamp", "no_timestamp"),
        ("second_timestamp", "duplicate_timestamp"),
        ("second_token", "token_count"),
        ("encrypted_key", "header_extra"),
    ],
    ids=["UT", "G32_two_signatures", "none", "no_timestamp", "two_timestamps", "two_tokens", "encrypted_key"],
)
def test_the_inventory_allows_one_of_each_and_nothing_else(
    envelope: etree._Element, change: str, reason: str
) -> None:
    security = _security(envelope)
    signature = _child(envelope, ns.DS, "Signature")
    timestamp = _child(envelope, ns.WSU, "Timestamp")
    token = _child(envelope, ns.WSSE, "BinarySecurityToken")
    if change == "username_token":
        etree.SubElement(security, ns.qn(ns.WSSE, "UsernameToken"))
    elif change == "second_signature":
        security.append(copy.deepcopy(signature))
    elif change == "no_signature":
        security.remove(signature)
    elif change == "no_timestamp":
        security.remove(timestamp)
    elif change == "second_timestamp":
        security.append(copy.deepcopy(timestamp))
    elif change == "second_token":
        security.append(copy.deepcopy(token))
    else:
        etree.SubElement(security, ns.qn(ns.XENC, "EncryptedKey"))
    with pytest.raises(errors.InvalidSecurity) as caught:
        read_signed_header(security)
    assert caught.value.reason == reason


def test_the_id_index_knows_wsu_id_and_plain_id(envelope: etree._Element) -> None:
    body = envelope[-1]
    body_id = body.get(WSU_ID)
    signature = _child(envelope, ns.DS, "Signature")
    signature.set("Id", "SIG-1")
    index = index_ids(envelope)
    assert index[str(body_id)] == (body, ns.WSU)
    assert index["SIG-1"] == (signature, None)


@pytest.mark.parametrize(
    "attribute",
    ["Id", "ID", "id", "AssertionID", ns.qn(ns.XML, "id"), WSU_ID],
    ids=["G23_Id", "G23_ID", "G23_id", "G23_AssertionID", "G23_xml_id", "G22_wsu_Id"],
)
def test_g23_one_value_under_any_two_id_attributes_is_refused(envelope: etree._Element, attribute: str) -> None:
    body_id = str(envelope[-1].get(WSU_ID))
    _child(envelope, ns.DS, "Signature").set(attribute, f" {body_id} ")  # whitespace does not make it different
    with pytest.raises(errors.InvalidSecurity) as caught:
        index_ids(envelope)
    assert caught.value.reason == "duplicate_id"


def test_an_overlong_id_is_refused(envelope: etree._Element) -> None:
    envelope[-1][0].set(WSU_ID, "x" * 257)
    with pytest.raises(errors.InvalidSecurity):
        index_ids(envelope)


def test_referents_are_sorted_by_position(envelope: etree._Element) -> None:
    header = read_signed_header(_security(envelope))
    to = envelope[0].find(ns.qn(ns.WSA, "To"))
    assert to is not None and header.token is not None
    action = envelope[0].find(ns.qn(ns.WSA, "Action"))
    assert action is not None
    action.set(WSU_ID, "action-1")
    header.token.set(WSU_ID, str(header.token.get(WSU_ID)))
    ids = (str(envelope[-1].get(WSU_ID)), str(header.timestamp.get(WSU_ID)), str(to.get(WSU_ID)),
           str(header.token.get(WSU_ID)), "action-1")
    referents = resolve_referents(ids, header, index_ids(envelope))
    assert [r.kind for r in referents.values()] == [BODY_KIND, TIMESTAMP_KIND, WSA_TO_KIND, TOKEN_KIND, "header"]
    assert covered(referents, BODY_KIND) is envelope[-1]
    assert covered(referents, "absent") is None
    check_coverage(referents, (frozenset({BODY_KIND}), frozenset({TIMESTAMP_KIND})))
    with pytest.raises(errors.FailedCheck) as caught:
        check_coverage({k: v for k, v in referents.items() if v.kind != BODY_KIND}, (frozenset({BODY_KIND}),))
    assert caught.value.reason == "coverage"


def test_an_unknown_id_is_invalid_security(envelope: etree._Element) -> None:
    header = read_signed_header(_security(envelope))
    with pytest.raises(errors.InvalidSecurity) as caught:
        resolve_referents(("nowhere",), header, index_ids(envelope))
    assert caught.value.reason == "reference_unresolved"


def _place(envelope: etree._Element, case: str) -> str:
    """Give an element in a place no referent may be an Id; return that Id."""
    header, body = envelope[0], envelope[-1]
    if case == "G26_part_of_a_header":
        reply_to = header.find(ns.qn(ns.WSA, "ReplyTo"))
        assert reply_to is not None
        reply_to[0].set(WSU_ID, "address-1")
        return "address-1"
    if case == "G24_timestamp_moved_into_a_wrapper":
        timestamp = _child(envelope, ns.WSU, "Timestamp")
        wrapper = etree.SubElement(header, "{urn:evil}Wrapper")
        wrapper.append(copy.deepcopy(timestamp))  # the signed one, in a wrapper ...
        timestamp.set(WSU_ID, "fresh-ts")  # ... and a fresh unsigned one in Security
        return str(wrapper[0].get(WSU_ID))
    if case == "inside_the_body":
        body[0].set(WSU_ID, "rst-1")
        return "rst-1"
    if case == "the_security_header":
        _security(envelope).set(WSU_ID, "sec-1")
        return "sec-1"
    if case == "the_signature":
        _child(envelope, ns.DS, "Signature").set(WSU_ID, "sig-1")
        return "sig-1"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["G26_part_of_a_header", "G24_timestamp_moved_into_a_wrapper", "inside_the_body", "the_security_header",
     "the_signature"],
)
def test_referents_outside_the_allowed_places_fail_the_check(envelope: etree._Element, case: str) -> None:
    identifier = _place(envelope, case)
    header = read_signed_header(_security(envelope))
    with pytest.raises(errors.FailedCheck) as caught:
        resolve_referents((identifier,), header, index_ids(envelope))
    assert caught.value.reason == "referent_place"


def test_the_same_referent_twice_fails_the_check(envelope: etree._Element) -> None:
    header = read_signed_header(_security(envelope))
    body_id = str(envelope[-1].get(WSU_ID))
    with pytest.raises(errors.FailedCheck) as caught:
        resolve_referents((body_id, body_id), header, index_ids(envelope))
    assert caught.value.reason == "referent_twice"
