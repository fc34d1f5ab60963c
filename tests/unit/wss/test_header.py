"""Tests for sts.wss.header: finding our Security header (W01, S08-S12) and sorting it (W02, W03, W27, R3227, G13)."""

from __future__ import annotations

import pytest
from lxml import etree

from sts import errors, ns
from sts.soapenv import SoapVersion
from sts.wss.header import SecurityHeader, check_unique_ids, find_security_header, read_security_header
from sts.xmlutil import ParserLimits, parse_untrusted

S11, S12 = SoapVersion.SOAP11, SoapVersion.SOAP12
UT = "<wsse:UsernameToken><wsse:Username>alice</wsse:Username><wsse:Password>pw</wsse:Password></wsse:UsernameToken>"
UT_ADMIN = UT.replace("alice", "admin").replace(">pw<", ">x<")
TS = "<wsu:Timestamp><wsu:Created>2026-01-01T12:00:00Z</wsu:Created></wsu:Timestamp>"
NSDECL = f'xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}" xmlns:ds="{ns.DS}" xmlns:xenc="{ns.XENC}"'


def _envelope(*headers: str, version: SoapVersion = S11, body: str = "<x:RST xmlns:x='urn:x'/>") -> etree._Element:
    env_ns = version.namespace
    xml = (
        f'<soap:Envelope xmlns:soap="{env_ns}" {NSDECL}>'
        f"<soap:Header>{''.join(headers)}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
    return etree.fromstring(xml)


def _headers(envelope: etree._Element) -> tuple[etree._Element, ...]:
    return tuple(child for child in envelope[0] if isinstance(child.tag, str))


def _security(*children: str, attrs: str = "") -> str:
    return f"<wsse:Security {attrs}>{''.join(children)}</wsse:Security>"


def _find(*headers: str, version: SoapVersion = S11) -> etree._Element:
    return find_security_header(_headers(_envelope(*headers, version=version)), version)


def _read(*children: str) -> SecurityHeader:
    envelope = _envelope(_security(*children))
    return read_security_header(find_security_header(_headers(envelope), S11))


# --- find_security_header ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [S11, S12])
def test_finds_the_security_header(version: SoapVersion) -> None:
    found = _find('<a:Action xmlns:a="urn:a">x</a:Action>', _security(UT), version=version)
    assert found.tag == ns.qn(ns.WSSE, "Security")


def test_no_header_at_all_invalid_security() -> None:  # W01
    with pytest.raises(errors.InvalidSecurity) as caught:
        find_security_header((), S11)
    assert caught.value.reason == "no_security_header"


def test_no_security_header_invalid_security() -> None:  # W01
    with pytest.raises(errors.InvalidSecurity) as caught:
        _find('<a:Action xmlns:a="urn:a">x</a:Action>')
    assert caught.value.reason == "no_security_header"


def test_security_for_other_actor_ignored_soap11() -> None:  # S08
    with pytest.raises(errors.InvalidSecurity) as caught:
        _find(_security(UT, attrs='soap:actor="http://other"'))
    assert caught.value.reason == "no_security_header"


def test_security_for_other_role_ignored_soap12() -> None:  # S08
    with pytest.raises(errors.InvalidSecurity):
        _find(_security(UT, attrs='soap:role="http://other"'), version=S12)


@pytest.mark.parametrize("actor", ["", "http://schemas.xmlsoap.org/soap/actor/next"])
def test_security_for_next_or_empty_actor_is_ours(actor: str) -> None:
    assert _find(_security(UT, attrs=f'soap:actor="{actor}"')) is not None


def test_ultimate_receiver_role_is_ours_soap12() -> None:
    role = "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"
    assert _find(_security(UT, attrs=f'soap:role="{role}"'), version=S12) is not None


def test_other_actor_header_skipped_ours_chosen() -> None:  # S09: two actors, process only ours
    found = _find(_security(UT_ADMIN, attrs='soap:actor="http://other"'), _security(UT))
    assert found.find(f".//{{{ns.WSSE}}}Username") is not None
    assert found.findtext(f".//{{{ns.WSSE}}}Username") == "alice"


@pytest.mark.parametrize("order", [(UT_ADMIN, UT), (UT, UT_ADMIN)])
def test_two_security_headers_invalid_security(order: tuple[str, str]) -> None:  # S09
    with pytest.raises(errors.InvalidSecurity) as caught:
        _find(_security(order[0]), _security(order[1]))
    assert caught.value.reason == "duplicate_security_header"


def test_two_security_headers_next_and_default_invalid_security() -> None:  # S09: both target us
    with pytest.raises(errors.InvalidSecurity):
        _find(_security(UT, attrs='soap:actor="http://schemas.xmlsoap.org/soap/actor/next"'), _security(UT))


@pytest.mark.parametrize(
    "security_ns",
    [
        "http://schemas.xmlsoap.org/ws/2002/07/secext",  # pre-OASIS
        f"{ns.WSSE}#",  # one character more
        ns.WSSE.upper(),  # namespace URIs compare case-sensitively
        ns.WSSE11,  # wsse11 namespace for Security
    ],
)
def test_look_alike_namespace_not_recognised(security_ns: str) -> None:  # S10
    look_alike = f'<sec:Security xmlns:sec="{security_ns}">{UT}</sec:Security>'
    with pytest.raises(errors.InvalidSecurity) as caught:
        _find(look_alike)
    assert caught.value.reason == "no_security_header"


def test_trailing_space_namespace_never_reaches_the_header_code() -> None:  # S10
    # libxml2 refuses a namespace URI with a trailing space, so the hardened parser answers F-PARSE first.
    data = f'<s:Envelope xmlns:s="{ns.S11}"><s:Header><w:Security xmlns:w="{ns.WSSE} "/></s:Header></s:Envelope>'
    with pytest.raises(errors.MalformedMessage):
        parse_untrusted(data.encode(), ParserLimits())


def test_rebound_prefix_not_recognised() -> None:  # S11: `wsse` is the real namespace on the Envelope
    rebound = f'<wsse:Security xmlns:wsse="urn:evil">{UT}</wsse:Security>'
    with pytest.raises(errors.InvalidSecurity):
        _find(rebound)


def test_default_namespace_security_accepted() -> None:  # S12
    unprefixed = (
        f'<Security xmlns="{ns.WSSE}"><UsernameToken><Username>alice</Username>'
        "<Password>pw</Password></UsernameToken></Security>"
    )
    found = _find(unprefixed)
    assert len(read_security_header(found).username_tokens) == 1


def test_mismatched_version_actor_attribute_does_not_apply() -> None:
    # A SOAP 1.1 `actor` on a SOAP 1.2 envelope is just a foreign attribute: the header is still ours.
    security = _security(UT, attrs='s11:actor="http://other"')
    envelope = etree.fromstring(
        f'<e:Envelope xmlns:e="{ns.S12}" xmlns:s11="{ns.S11}" {NSDECL}><e:Header>'
        f'{security}</e:Header><e:Body><x xmlns="urn:x"/></e:Body></e:Envelope>'
    )
    assert find_security_header(_headers(envelope), S12) is not None


# --- read_security_header ------------------------------------------------------------------------------------


def test_reads_timestamp_and_username_token() -> None:
    header = _read(TS, UT)
    assert header.timestamp is not None
    assert header.timestamp.tag == ns.qn(ns.WSU, "Timestamp")
    assert [ut.tag for ut in header.username_tokens] == [ns.qn(ns.WSSE, "UsernameToken")]
    assert header.other_tokens == ()


def test_username_token_without_timestamp() -> None:  # interop: Timestamp is optional for UT-over-TLS
    header = _read(UT)
    assert header.timestamp is None


def test_unknown_children_collected_as_other_tokens() -> None:
    header = _read("<!-- c -->", UT, '<x:Foo xmlns:x="urn:x"/>')
    assert [etree.QName(other).localname for other in header.other_tokens] == ["Foo"]


def test_security_header_is_frozen() -> None:
    header = _read(UT)
    with pytest.raises(AttributeError):
        header.timestamp = None  # type: ignore[misc]


def test_only_timestamp_failed_authentication() -> None:  # W02
    with pytest.raises(errors.FailedAuthentication) as caught:
        _read(TS)
    assert caught.value.reason == "no_credential"


def test_empty_security_header_failed_authentication() -> None:  # W02
    with pytest.raises(errors.FailedAuthentication):
        _read()


@pytest.mark.parametrize("order", [(UT, UT_ADMIN), (UT_ADMIN, UT)])
def test_two_username_tokens_invalid_security(order: tuple[str, str]) -> None:  # W03
    with pytest.raises(errors.InvalidSecurity) as caught:
        _read(*order)
    assert caught.value.reason == "duplicate_username_token"


def test_two_timestamps_invalid_security() -> None:  # BSP R3227
    with pytest.raises(errors.InvalidSecurity) as caught:
        _read(TS, TS, UT)
    assert caught.value.reason == "duplicate_timestamp"


@pytest.mark.parametrize(
    "encrypted",
    [
        '<xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5"/></xenc:EncryptedKey>',
        '<xenc:EncryptedData><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/></xenc:EncryptedData>',
        "<xenc:ReferenceList/>",
    ],
)
def test_encrypted_content_unsupported_algorithm(encrypted: str) -> None:  # W27
    with pytest.raises(errors.UnsupportedAlgorithm):
        _read(UT, encrypted)


def test_encrypted_content_wins_over_signature() -> None:  # W27 is decided before anything else is looked at
    with pytest.raises(errors.UnsupportedAlgorithm):
        _read("<ds:Signature/>", "<xenc:EncryptedKey/>")


def test_signature_unsupported_security_token() -> None:
    with pytest.raises(errors.UnsupportedSecurityToken) as caught:
        _read(TS, "<ds:Signature><ds:SignedInfo/></ds:Signature>", UT)
    assert caught.value.reason == "signature_unsupported"


def test_binary_security_token_unsupported_security_token() -> None:
    bst = f'<wsse:BinarySecurityToken EncodingType="{ns.BASE64_BINARY}">AAAA</wsse:BinarySecurityToken>'
    with pytest.raises(errors.UnsupportedSecurityToken) as caught:
        _read(bst, UT)
    assert caught.value.reason == "bst_unsupported"


# --- G13: duplicate identifiers anywhere in the envelope -------------------------------------------------------


def test_duplicate_wsu_id_between_header_and_body_invalid_security() -> None:
    ts = '<wsu:Timestamp wsu:Id="Body-1"><wsu:Created>2026-01-01T12:00:00Z</wsu:Created></wsu:Timestamp>'
    envelope = _envelope(_security(ts, UT), body='<x:RST xmlns:x="urn:x" wsu:Id="Body-1"/>')
    security = find_security_header(_headers(envelope), S11)
    with pytest.raises(errors.InvalidSecurity) as caught:
        read_security_header(security)
    assert caught.value.reason == "duplicate_id"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ('wsu:Id="_a1"', 'wsu:Id="_a1"'),
        ('ID="_a1"', 'Id="_a1"'),
        ('Id="_a1"', 'xml:id="_a1"'),
        ('id="_a1"', 'wsu:Id="_a1"'),
        ('xml:id="_a1"', 'ID="_a1"'),
        ('AssertionID="_a1"', 'ID="_a1"'),
        ('wsu:Id=" _a1 "', 'Id="_a1"'),
    ],
)
def test_cross_name_duplicate_ids_invalid_security(first: str, second: str) -> None:
    root = etree.fromstring(f"<r {NSDECL}><a {first}/><b><c {second}/></b></r>")
    with pytest.raises(errors.InvalidSecurity):
        check_unique_ids(root)


def test_same_element_two_id_names_with_same_value_invalid_security() -> None:
    root = etree.fromstring(f'<r {NSDECL}><a Id="x" wsu:Id="x"/></r>')
    with pytest.raises(errors.InvalidSecurity):
        check_unique_ids(root)


def test_non_ncname_ids_accepted_when_unique() -> None:  # interop R19
    root = etree.fromstring(
        f'<r {NSDECL}><a wsu:Id="Timestamp-2026-11-26T18:23:04Z"/><b wsu:Id="1 2"/><c Id="_0"/></r>'
    )
    check_unique_ids(root)


def test_non_ncname_duplicate_ids_invalid_security() -> None:  # interop R19: still rejected when repeated
    value = "Timestamp-2026-11-26T18:23:04Z"
    root = etree.fromstring(f'<r {NSDECL}><a wsu:Id="{value}"/><b Id="{value}"/></r>')
    with pytest.raises(errors.InvalidSecurity):
        check_unique_ids(root)


def test_other_attributes_are_not_ids() -> None:
    root = etree.fromstring('<r xmlns:o="urn:o"><a o:Id="x"/><b Ref="x"/><c name="x"/><d o:ID="x"/></r>')
    check_unique_ids(root)


def test_microsoft_shape_header_accepted() -> None:  # interop R23
    ts = (
        '<wsu:Timestamp wsu:Id="_0"><wsu:Created>2026-01-01T12:00:00Z</wsu:Created>'
        "<wsu:Expires>2026-01-01T12:10:00Z</wsu:Expires></wsu:Timestamp>"
    )
    ut = (
        '<wsse:UsernameToken wsu:Id="uuid-1"><wsse:Username>alice</wsse:Username>'
        "<wsse:Password>pw</wsse:Password></wsse:UsernameToken>"
    )
    header = _read(ts, ut)
    assert header.timestamp is not None
    assert len(header.username_tokens) == 1
