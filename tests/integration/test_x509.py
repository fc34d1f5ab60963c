"""Issue 16: X.509 client authentication over HTTP against a real gunicorn (TLS, 2 workers).

A client no one here wrote (zeep's ``BinarySignature`` over python-xmlsec, RSA-SHA256/SHA-256, plus a small plugin
adding the ``wsu:Timestamp`` zeep does not send) gets tokens through SigOnly and certificatemixed, and verifies
the STS's signed SigOnly answer with the STS certificate. Then the named negative cases (message-security §13:
XSW, unsigned Body, certificate trust, algorithms, replay, UseKey): each gets its exact fault and no token.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import xmlsec
import zeep
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from lxml import etree
from zeep.wsse.signature import BinarySignature, _verify_envelope_with_key
from zeep.wsse.utils import get_security_header

from sts.auth.passwords import PasswordHasher
from sts.auth.sqlite_users import SqliteUserStore
from sts.config import load_settings
from sts.stores.sqlite import Database
from sts.wstrust.tokentypes import SamlVersion
from tests.integration.test_operations import decrypted_token
from tests.support import (
    WSA,
    WSSE,
    WST,
    WSU,
    Instance,
    Server,
    audit_records,
    fault_qname,
    make_instance,
    rst_envelope,
    start_server,
)
from tests.x509_support import Client, make_cert, make_crl, rsa_key, signed_rst, undecodable_name_der, write_client

pytestmark = pytest.mark.integration

DS = "http://www.w3.org/2000/09/xmldsig#"
SAML2, SAML1 = "urn:oasis:names:tc:SAML:2.0:assertion", "urn:oasis:names:tc:SAML:1.0:assertion"
WSDL_NS = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/wsdl"
SIG_ONLY, MIXED = "/services/wso2carbon-sts/SigOnly", "/services/wso2carbon-sts/certificatemixed"
ADFS_MIXED = "/adfs/services/trust/13/certificatemixed"
SEC = f"{{{WSSE}}}Security"
FAILED_AUTH = (WSSE, "FailedAuthentication")
FAILED_CHECK = (WSSE, "FailedCheck")
INVALID_SECURITY = (WSSE, "InvalidSecurity")


@dataclass
class Pki:
    """The test instance's client material."""

    alice: Client  # registered to admin
    bob: Client  # registered to bob (another user)
    carol: Client  # registered to carol (disabled)
    stranger: Client  # self-signed, never registered
    ca_admin: Client  # issued by the client CA, CN=admin
    ca_revoked: Client  # issued by the client CA, CN=admin, listed in the CRL
    ca_expired: Client
    ca_encipher_only: Client  # KeyUsage keyEncipherment only
    expired_key: Client  # its (expired) certificate is registered to admin: the key alone must not count
    mapping_tricks: dict[str, Client]  # P05: CA-issued certificates whose subject must not map to admin


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


# P05 (MS30): subjects a careless CN rule (WSO2's "value of the first RDN") would map to admin, or to a user who
# must not pass; with client_cert_user = "cn" each is FailedAuthentication.
_P05_SUBJECTS = {
    "two_cn_rdns": _name((NameOID.COMMON_NAME, "admin"), (NameOID.COMMON_NAME, "x")),
    "escaped_comma": _name((NameOID.COMMON_NAME, "admin,x")),
    "fullwidth_admin": _name((NameOID.COMMON_NAME, "\uff41\uff44\uff4d\uff49\uff4e")),
    "email_first_rdn": _name((NameOID.EMAIL_ADDRESS, "admin"), (NameOID.COMMON_NAME, "nobody-here")),
    "role_less_user": _name((NameOID.COMMON_NAME, "norole")),
}


def _add_user(instance: Instance, name: str) -> None:
    with Database(load_settings(instance.config, env={}).store.database) as db:
        SqliteUserStore(db, PasswordHasher()).add_user("PRIMARY", name, "Not-used-1", roles=("admin",))


@pytest.fixture(scope="module")
def x509_instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Instance, Pki]:
    instance = make_instance(tmp_path_factory.mktemp("x509") / "var")
    clients = instance.base / "clients"
    ca_key = rsa_key()
    ca_cert = make_cert("Client CA", ca_key, ca=True, extended=None, key_usage="none", days=(-1, 365))
    (instance.base / "client-ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca = (ca_cert, ca_key)

    def client(name: str, cn: str | None = None, **kwargs: Any) -> Client:
        key = rsa_key()
        return write_client(clients, name, make_cert(cn or name, key, **kwargs), key)

    pki = Pki(
        alice=client("alice"),
        bob=client("bob"),
        carol=client("carol"),
        stranger=client("stranger", "admin"),
        ca_admin=client("ca-admin", "admin", issuer=ca),
        ca_revoked=client("ca-revoked", "admin", issuer=ca),
        ca_expired=client("ca-expired", "admin", issuer=ca, days=(-30, -1)),
        ca_encipher_only=client("ca-encipher", "admin", issuer=ca, key_usage="keyEncipherment"),
        expired_key=client("expired-key", days=(-30, -1)),
        mapping_tricks={
            name: client(f"p05-{name}", "x", issuer=ca, subject=subject) for name, subject in _P05_SUBJECTS.items()
        },
    )
    (instance.base / "client-ca.crl").write_bytes(make_crl(ca, [pki.ca_revoked.cert.serial_number]))
    for user in ("bob", "carol"):
        _add_user(instance, user)
    with Database(load_settings(instance.config, env={}).store.database) as db:
        SqliteUserStore(db, PasswordHasher()).add_user("PRIMARY", "norole", "Not-used-1", roles=())
    assert instance.cli("user", "add-cert", "admin", str(pki.alice.cert_file)) == 0
    assert instance.cli("user", "add-cert", "bob", str(pki.bob.cert_file)) == 0
    assert instance.cli("user", "add-cert", "carol", str(pki.carol.cert_file)) == 0
    assert instance.cli("user", "disable", "carol") == 0
    # An expired certificate cannot be registered with the CLI; one registered while valid expires the same way.
    with Database(load_settings(instance.config, env={}).store.database) as db:
        SqliteUserStore(db, PasswordHasher()).add_certificate(
            "PRIMARY", "admin", pki.expired_key.cert.public_bytes(serialization.Encoding.DER)
        )
    return instance, pki


@pytest.fixture(scope="module")
def x509_server(x509_instance: tuple[Instance, Pki]) -> Iterator[Server]:
    instance, _ = x509_instance
    env = {
        "STS_SECURITY_SCENARIOS": "UTOverTransport,SigOnly,certificatemixed",
        "STS_SECURITY_CLIENT_CA_FILE": str(instance.base / "client-ca.pem"),
        "STS_SECURITY_CLIENT_CRL_FILE": str(instance.base / "client-ca.crl"),
        "STS_SECURITY_CLIENT_CERT_USER": "cn",
    }
    server = start_server(instance, workers=2, tls=True, env=env)
    yield server
    server.stop()


def _origin(server: Server) -> str:
    return server.url.replace("/services/wso2carbon-sts", "")


def _post(server: Server, path: str, body: bytes) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"'}
    return requests.post(_origin(server) + path, data=body, headers=headers, verify=server.verify, timeout=30)


def _issued(response: requests.Response) -> bool:
    return response.status_code == 200 and b"RequestSecurityTokenResponse" in response.content


def _signed(server: Server, path: str, client: Client, **kwargs: Any) -> etree._Element:
    return signed_rst(_origin(server) + path, client, **kwargs)


def _refused(server: Server, path: str, envelope: etree._Element | bytes, fault: tuple[str, str]) -> None:
    body = envelope if isinstance(envelope, bytes) else etree.tostring(envelope)
    response = _post(server, path, body)
    assert not _issued(response)
    assert b"Assertion" not in response.content
    assert fault_qname(response.content) == fault, response.content[:600]


# --- real clients ----------------------------------------------------------------------------------------------


class _Timestamp:
    """zeep sends no wsu:Timestamp; the policies require one (sp:IncludeTimestamp), signed."""

    def apply(self, envelope: etree._Element, headers: Any) -> tuple[etree._Element, Any]:
        import datetime as dt

        now = dt.datetime.now(dt.UTC)
        security = get_security_header(envelope)
        timestamp = etree.SubElement(security, f"{{{WSU}}}Timestamp", nsmap={"wsu": WSU})
        timestamp.set(f"{{{WSU}}}Id", "TS-zeep")
        etree.SubElement(timestamp, f"{{{WSU}}}Created").text = f"{now:%Y-%m-%dT%H:%M:%SZ}"
        etree.SubElement(timestamp, f"{{{WSU}}}Expires").text = f"{now + dt.timedelta(minutes=5):%Y-%m-%dT%H:%M:%SZ}"
        return envelope, headers

    def verify(self, envelope: etree._Element) -> etree._Element:
        return envelope


class _StsVerified(BinarySignature):  # type: ignore[misc]
    """zeep's verify() checks answers with the client's own certificate (M17): check them with the STS's instead,
    or accept none that is unsigned."""

    sts_cert: Path | None

    def apply(self, envelope: etree._Element, headers: Any) -> Any:
        _Timestamp().apply(envelope, headers)  # the Timestamp first, so that the signature covers it
        return super().apply(envelope, headers)

    def verify(self, envelope: etree._Element) -> etree._Element:
        if self.sts_cert is None:
            return envelope
        _verify_envelope_with_key(envelope, xmlsec.Key.from_file(str(self.sts_cert), xmlsec.KeyFormat.CERT_PEM))
        return envelope


def _zeep_issue(server: Server, tmp_path: Path, client: Client, binding: str, path: str, sts_cert: Path | None) -> Any:
    session = requests.Session()
    session.verify = server.verify
    session.trust_env = False
    wsdl = tmp_path / "sts.wsdl"
    wsdl.write_bytes(requests.get(_origin(server) + path + "?wsdl", verify=server.verify, timeout=30).content)
    signature = _StsVerified(
        str(client.key_file), str(client.cert_file),
        signature_method=xmlsec.Transform.RSA_SHA256, digest_method=xmlsec.Transform.SHA256,
    )
    signature.sts_cert = sts_cert
    zclient = zeep.Client(str(wsdl), wsse=signature, transport=zeep.Transport(session=session))
    service = zclient.create_service(f"{{{WSDL_NS}}}{binding}", _origin(server) + path)
    request_type = etree.Element(f"{{{WST}}}RequestType")
    request_type.text = f"{WST}/Issue"
    applies = etree.fromstring(
        '<wsp:AppliesTo xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy"><wsa:EndpointReference '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>https://localhost:8443/demo-rp/'
        "</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
    )
    return service.Issue(_value_1=[request_type, applies])


def test_zeep_binary_signature_gets_a_token_through_sig_only(
    x509_server: Server, x509_instance: tuple[Instance, Pki], tmp_path: Path
) -> None:
    instance, pki = x509_instance
    result = _zeep_issue(x509_server, tmp_path, pki.alice, "SigOnlySoap11Binding", SIG_ONLY, instance.signing_cert)
    (rstr,) = result.RequestSecurityTokenResponse  # zeep verified the STS's signature with the STS certificate
    token = rstr._value_1[1][0]
    assert etree.QName(token).localname in ("EncryptedAssertion", "Assertion", "EncryptedData")


def test_zeep_gets_a_token_through_certificatemixed_on_both_paths(
    x509_server: Server, x509_instance: tuple[Instance, Pki], tmp_path: Path
) -> None:
    _, pki = x509_instance
    for binding, path in (("certificatemixedSoap11Binding", MIXED), ("certificatemixedSoap12Binding", ADFS_MIXED)):
        result = _zeep_issue(x509_server, tmp_path, pki.alice, binding, path, None)
        assert len(result.RequestSecurityTokenResponse) == 1


def test_a_ca_issued_certificate_maps_its_cn_to_the_user(
    x509_server: Server, x509_instance: tuple[Instance, Pki]
) -> None:
    _, pki = x509_instance
    assert _issued(_post(x509_server, SIG_ONLY, etree.tostring(_signed(x509_server, SIG_ONLY, pki.ca_admin))))


@pytest.mark.parametrize(
    ("version", "path", "stated"),
    [
        (SamlVersion.SAML20, f"{{{SAML2}}}AuthnStatement/{{{SAML2}}}AuthnContext/{{{SAML2}}}AuthnContextClassRef",
         "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"),
        (SamlVersion.SAML11, f"{{{SAML1}}}AuthenticationStatement[@AuthenticationMethod]",
         "urn:oasis:names:tc:SAML:1.0:am:X509-PKI"),
    ],
)
def test_a_signed_request_states_x509_authentication_in_the_token(
    x509_server: Server, x509_instance: tuple[Instance, Pki], version: SamlVersion, path: str, stated: str
) -> None:
    """SAML 2.0 Authentication Context §3.4.25 / SAML 1.1 core §7.1: the caller proved a key, not a password."""
    instance, pki = x509_instance
    envelope = _signed(x509_server, SIG_ONLY, pki.alice, token_type=version)
    response = _post(x509_server, SIG_ONLY, etree.tostring(envelope))
    assert _issued(response), response.content[:600]
    (found,) = decrypted_token(response.content, instance).findall(path)
    assert (found.text if version is SamlVersion.SAML20 else found.get("AuthenticationMethod")) == stated


def test_the_sts_client_library_signs_the_wcf_shape_with_wsa_to(
    x509_server: Server, x509_instance: tuple[Instance, Pki]
) -> None:
    _, pki = x509_instance
    envelope = _signed(x509_server, ADFS_MIXED, pki.alice, sign_to=True)
    assert _issued(_post(x509_server, ADFS_MIXED, etree.tostring(envelope)))


def test_wsdl_lists_every_enabled_endpoint_with_its_policy(x509_server: Server) -> None:
    wsdl = etree.fromstring(requests.get(x509_server.url + "?wsdl", verify=x509_server.verify, timeout=30).content)
    ids = {p.get(f"{{{WSU}}}Id") for p in wsdl.iter("{http://schemas.xmlsoap.org/ws/2004/09/policy}Policy")}
    assert {"UTOverTransport", "SigOnly", "certificatemixed"} <= ids
    addresses = {a.get("location") for a in wsdl.iter("{http://schemas.xmlsoap.org/wsdl/soap12/}address")}
    assert any(a.endswith(ADFS_MIXED) for a in addresses) and any(a.endswith(SIG_ONLY) for a in addresses)


# --- negative corpus (message-security reference §13) ------------------------------------------------------------


def _body_and_header(envelope: etree._Element) -> tuple[etree._Element, etree._Element]:
    return envelope[0], envelope[-1]


def _xsw_body_moved_into_header(env: etree._Element) -> etree._Element:
    header, body = _body_and_header(env)
    wrapper = etree.SubElement(header, "{urn:evil}Wrapper")
    evil = copy.deepcopy(body)
    evil.set(f"{{{WSU}}}Id", "evil-body")
    wrapper.append(body)
    env.append(evil)
    return env


def _xsw_duplicate_id(env: etree._Element) -> etree._Element:
    header, body = _body_and_header(env)
    wrapper = etree.SubElement(header, "{urn:evil}Wrapper")
    wrapper.append(copy.deepcopy(body))  # same wsu:Id twice
    return env


def _unsigned_body(env: etree._Element) -> etree._Element:
    sig = env.find(f".//{{{DS}}}Signature")
    assert sig is not None
    body_id = env[-1].get(f"{{{WSU}}}Id")
    for ref in sig.iter(f"{{{DS}}}Reference"):
        if ref.get("URI") == f"#{body_id}":
            ref.getparent().remove(ref)  # type: ignore[union-attr]
    return env


def _algorithm(uri: str, tag: str) -> Callable[[etree._Element], etree._Element]:
    def change(env: etree._Element) -> etree._Element:
        for element in env.iter(f"{{{DS}}}{tag}"):
            element.set("Algorithm", uri)
        return env

    return change


def _rsa15_encrypted_key(env: etree._Element) -> etree._Element:
    security = env[0].find(SEC)
    assert security is not None
    etree.SubElement(etree.SubElement(security, "{http://www.w3.org/2001/04/xmlenc#}EncryptedKey"),
                     "{http://www.w3.org/2001/04/xmlenc#}EncryptionMethod",
                     Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5")
    return env


def _timestamp_only(env: etree._Element) -> etree._Element:
    """certificatemixed signature over the Timestamp alone (G35): the Body (and To) references removed."""
    return _unsigned_body(env)


def _signature_of(env: etree._Element) -> etree._Element:
    sig = env.find(f".//{{{DS}}}Signature")
    assert sig is not None
    return sig


def _g23_signature_id_beside_body_id(env: etree._Element) -> etree._Element:
    _signature_of(env).set("Id", str(env[-1].get(f"{{{WSU}}}Id")))
    return env


def _g23_xml_id_beside_body_id(env: etree._Element) -> etree._Element:
    _signature_of(env).set("{http://www.w3.org/XML/1998/namespace}id", str(env[-1].get(f"{{{WSU}}}Id")))
    return env


def _g24_timestamp_wrapped(env: etree._Element) -> etree._Element:
    """The signed Timestamp moved into a wrapper header, a fresh unsigned one in Security."""
    header = env[0]
    security = header.find(SEC)
    assert security is not None
    timestamp = security.find(f"{{{WSU}}}Timestamp")
    assert timestamp is not None
    etree.SubElement(header, "{urn:evil}Wrapper").append(copy.deepcopy(timestamp))
    timestamp.set(f"{{{WSU}}}Id", "TS-fresh")
    return env


def _g26_partial_header(env: etree._Element) -> etree._Element:
    """A Reference re-pointed at wsa:ReplyTo/wsa:Address, a part of a header block."""
    address = env[0].find("{http://www.w3.org/2005/08/addressing}ReplyTo/{http://www.w3.org/2005/08/addressing}Address")
    assert address is not None
    address.set(f"{{{WSU}}}Id", "address-1")
    _signature_of(env).find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference").set("URI", "#address-1")  # type: ignore[union-attr]
    return env


def _uri(value: str) -> Callable[[etree._Element], etree._Element]:
    def change(env: etree._Element) -> etree._Element:
        _signature_of(env).find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference").set("URI", value)  # type: ignore[union-attr]
        return env

    return change


def _g29_key_value(beside: bool) -> Callable[[etree._Element], etree._Element]:
    def change(env: etree._Element) -> etree._Element:
        key_info = _signature_of(env).find(f"{{{DS}}}KeyInfo")
        assert key_info is not None
        if not beside:
            key_info.remove(key_info[0])
        etree.SubElement(etree.SubElement(key_info, f"{{{DS}}}KeyValue"), f"{{{DS}}}RSAKeyValue")
        return env

    return change


def _g31_token_in_foreign_header(env: etree._Element) -> etree._Element:
    """The BST moved into a second Security header addressed to another actor; the STR still points at it."""
    security = env[0].find(SEC)
    assert security is not None
    token = security.find(f"{{{WSSE}}}BinarySecurityToken")
    assert token is not None
    other = etree.SubElement(env[0], SEC)
    other.set("{http://schemas.xmlsoap.org/soap/envelope/}actor", "urn:someone-else")
    other.append(token)
    return env


def _g32_two_signatures(env: etree._Element) -> etree._Element:
    security = env[0].find(SEC)
    assert security is not None
    security.append(copy.deepcopy(_signature_of(env)))
    return env


def _g34_prefix_list_flood(env: etree._Element) -> etree._Element:
    c14n = _signature_of(env).find(f"{{{DS}}}SignedInfo/{{{DS}}}CanonicalizationMethod")
    assert c14n is not None
    etree.SubElement(c14n, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
                     PrefixList=" ".join(f"p{i}" for i in range(10000)))
    return env


XSW_CASES = {
    "G23_signature_Id_equals_body_wsu_Id": (SIG_ONLY, _g23_signature_id_beside_body_id, INVALID_SECURITY),
    "G23_xml_id_equals_body_wsu_Id": (SIG_ONLY, _g23_xml_id_beside_body_id, INVALID_SECURITY),
    "G24_signed_timestamp_wrapped": (SIG_ONLY, _g24_timestamp_wrapped, FAILED_CHECK),
    "G26_partial_header_signed": (SIG_ONLY, _g26_partial_header, FAILED_CHECK),
    "G27_empty_uri": (SIG_ONLY, _uri(""), INVALID_SECURITY),
    "G27_http_uri": (SIG_ONLY, _uri("http://127.0.0.1:9/x"), INVALID_SECURITY),
    "G27_cid_uri": (SIG_ONLY, _uri("cid:part-1"), INVALID_SECURITY),
    "G27_xpointer": (SIG_ONLY, _uri("#xpointer(/)"), INVALID_SECURITY),
    "G29_key_value_instead_of_str": (SIG_ONLY, _g29_key_value(beside=False), INVALID_SECURITY),
    "G29_key_value_beside_str": (SIG_ONLY, _g29_key_value(beside=True), INVALID_SECURITY),
    "G31_token_in_another_actors_header": (SIG_ONLY, _g31_token_in_foreign_header, (WSSE, "SecurityTokenUnavailable")),
    "G32_two_signatures": (SIG_ONLY, _g32_two_signatures, INVALID_SECURITY),
    "G34_prefix_list_flood": (SIG_ONLY, _g34_prefix_list_flood, INVALID_SECURITY),
    "G21_signed_body_moved_into_header": (SIG_ONLY, _xsw_body_moved_into_header, FAILED_CHECK),
    "G22_duplicate_wsu_id": (SIG_ONLY, _xsw_duplicate_id, INVALID_SECURITY),
    "W31_unsigned_body_under_sig_only": (SIG_ONLY, _unsigned_body, FAILED_CHECK),
    "G33_rsa_sha1_without_legacy_switch": (
        SIG_ONLY, _algorithm("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "SignatureMethod"),
        (WSSE, "UnsupportedAlgorithm"),
    ),
    "G33_sha1_digest_without_legacy_switch": (
        SIG_ONLY, _algorithm("http://www.w3.org/2000/09/xmldsig#sha1", "DigestMethod"), (WSSE, "UnsupportedAlgorithm")
    ),
    "G28_xslt_transform": (
        SIG_ONLY, _algorithm("http://www.w3.org/TR/1999/REC-xslt-19991116", "Transform"), (WSSE, "UnsupportedAlgorithm")
    ),
    "E07_rsa15_encrypted_key_under_sig_only": (SIG_ONLY, _rsa15_encrypted_key, INVALID_SECURITY),
    "G35_certificatemixed_timestamp_only": (MIXED, _timestamp_only, FAILED_CHECK),
}


@pytest.mark.parametrize("case", sorted(XSW_CASES))
def test_tampered_signed_request_is_refused(
    x509_server: Server, x509_instance: tuple[Instance, Pki], case: str
) -> None:
    _, pki = x509_instance
    path, tamper, fault = XSW_CASES[case]
    _refused(x509_server, path, tamper(_signed(x509_server, path, pki.alice)), fault)


def test_g25_signature_over_a_copy_of_the_rst_in_a_header(
    x509_server: Server, x509_instance: tuple[Instance, Pki]
) -> None:
    """The signature covers a header block holding a copy of the RST, not the Body: FailedCheck (coverage)."""
    _, pki = x509_instance
    env = _signed(x509_server, SIG_ONLY, pki.alice)
    header, body = _body_and_header(env)
    sig = env.find(f".//{{{DS}}}Signature")
    assert sig is not None
    sig.getparent().remove(sig)  # type: ignore[union-attr]
    copy_block = etree.SubElement(header, "{urn:evil}Copy")
    copy_block.set(f"{{{WSU}}}Id", "copy-1")
    copy_block.append(copy.deepcopy(body[0]))
    del body.attrib[f"{{{WSU}}}Id"]
    from sts.crypto.wss_sign import WssSigner, direct_reference

    security = header.find(SEC)
    assert security is not None
    token = security.find(f"{{{WSSE}}}BinarySecurityToken")
    timestamp = security.find(f"{{{WSU}}}Timestamp")
    assert token is not None and timestamp is not None
    WssSigner(pki.alice.key).sign(security, [timestamp, copy_block], direct_reference(token.get(f"{{{WSU}}}Id", "")))
    _refused(x509_server, SIG_ONLY, env, FAILED_CHECK)


@pytest.mark.parametrize(
    "who", ["stranger", "ca_expired", "ca_revoked", "ca_encipher_only", "carol", "expired_key"],
    ids=["P01_self_signed_unregistered", "P02_expired", "P03_revoked", "P04_key_usage", "P05_disabled_user",
         "P02_registered_but_expired"],
)
def test_untrusted_certificate_is_refused(x509_server: Server, x509_instance: tuple[Instance, Pki], who: str) -> None:
    _, pki = x509_instance
    _refused(x509_server, SIG_ONLY, _signed(x509_server, SIG_ONLY, getattr(pki, who)), FAILED_AUTH)


def test_a_token_certificate_whose_issuer_does_not_decode_is_an_invalid_token(
    x509_server: Server, x509_instance: tuple[Instance, Pki]
) -> None:
    """With the client CA configured, a BinarySecurityToken whose issuer name does not decode: InvalidSecurityToken
    (WSS 1.1 §12) and an audit event, not wst:RequestFailed from an unexpected error."""
    _, pki = x509_instance
    env = _signed(x509_server, SIG_ONLY, pki.alice)
    token = env.find(f".//{{{WSSE}}}BinarySecurityToken")
    assert token is not None
    token.text = base64.b64encode(undecodable_name_der(make_cert("zzqqx", pki.alice.key))).decode()
    _refused(x509_server, SIG_ONLY, env, (WSSE, "InvalidSecurityToken"))
    assert audit_records(x509_server.log)[-1]["reason"] == "bad_certificate"
    assert "unexpected error" not in x509_server.log.read_text()


def test_a_request_signed_for_another_endpoint_is_refused(
    x509_server: Server, x509_instance: tuple[Instance, Pki]
) -> None:
    """Timestamp, Body and wsa:To signed for certificatemixed, posted to SigOnly: the signed To names another
    endpoint (WS-Addressing 1.0 Core §3.2), even though the Body is signed."""
    _, pki = x509_instance
    _refused(x509_server, SIG_ONLY, _signed(x509_server, MIXED, pki.alice, sign_to=True), FAILED_CHECK)
    assert audit_records(x509_server.log)[-1]["reason"] == "to_mismatch"
    assert _issued(_post(x509_server, SIG_ONLY, etree.tostring(_signed(x509_server, SIG_ONLY, pki.alice,
                                                                       sign_to=True))))


def test_a_signed_to_may_name_the_published_address_behind_a_prefixing_proxy(
    x509_instance: tuple[Instance, Pki]
) -> None:
    """[server] public_url says a proxy mounts the STS below /sts: a client that signs the published address as
    wsa:To (Body signed or not) is served on the path the proxy forwards to; another endpoint's address is not."""
    instance, pki = x509_instance
    env = {"STS_SECURITY_SCENARIOS": "UTOverTransport,SigOnly,certificatemixed",
           "STS_SERVER_PUBLIC_URL": "https://gateway.example.test/sts/services/wso2carbon-sts"}
    server = start_server(instance, workers=1, tls=True, env=env)
    try:
        for sign_body in (True, False):
            envelope = signed_rst("https://gateway.example.test/sts" + ADFS_MIXED, pki.alice, sign_to=True)
            if not sign_body:
                _sign_timestamp_and_to(envelope, pki.alice)
            assert _issued(_post(server, ADFS_MIXED, etree.tostring(envelope))), sign_body
        elsewhere = signed_rst("https://gateway.example.test/sts" + SIG_ONLY, pki.alice, sign_to=True)
        _refused(server, ADFS_MIXED, elsewhere, FAILED_CHECK)
    finally:
        server.stop()


def _sign_timestamp_and_to(envelope: etree._Element, client: Client) -> None:
    """Sign again over the Timestamp and wsa:To only (WCF's certificatemixed shape)."""
    from sts.crypto.wss_sign import WssSigner, direct_reference

    security = envelope.find(f".//{SEC}")
    assert security is not None
    security.remove(security.find(f"{{{DS}}}Signature"))  # type: ignore[arg-type]
    token = security.find(f"{{{WSSE}}}BinarySecurityToken")
    targets = [security.find(f"{{{WSU}}}Timestamp"), envelope[0].find(f"{{{WSA}}}To")]
    assert token is not None and all(target is not None for target in targets)
    WssSigner(client.key).sign(security, targets, direct_reference(token.get(f"{{{WSU}}}Id", "")))  # type: ignore[arg-type]


def test_w30_replayed_signed_message_is_refused(x509_server: Server, x509_instance: tuple[Instance, Pki]) -> None:
    _, pki = x509_instance
    body = etree.tostring(_signed(x509_server, SIG_ONLY, pki.alice))
    assert _issued(_post(x509_server, SIG_ONLY, body))
    _refused(x509_server, SIG_ONLY, body, INVALID_SECURITY)


@pytest.mark.parametrize("how", ["comment", "spare_bits"])
def test_w30_a_replay_with_the_signature_value_respelled_is_refused(
    x509_server: Server, x509_instance: tuple[Instance, Pki], how: str
) -> None:
    """The same signature written another way (a comment inside the value, an unused Base64 bit flipped) still
    verifies: the replay cache must know it by what was signed, not by the value as sent."""
    _, pki = x509_instance
    envelope = _signed(x509_server, SIG_ONLY, pki.alice)
    assert _issued(_post(x509_server, SIG_ONLY, etree.tostring(envelope)))
    value = envelope.find(f".//{{{DS}}}SignatureValue")
    assert value is not None
    text = "".join(str(value.text).split())
    if how == "comment":
        value.text, comment = text[:17], etree.Comment("replay")
        comment.tail = text[17:]
        value.append(comment)
    else:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        value.text = text[:-3] + alphabet[alphabet.index(text[-3]) ^ 1] + "=="  # RSA-2048: "...X=="
    _refused(x509_server, SIG_ONLY, etree.tostring(envelope), INVALID_SECURITY)


def test_i21_another_users_certificate_in_use_key_is_refused(
    x509_server: Server, x509_instance: tuple[Instance, Pki]
) -> None:
    _, pki = x509_instance
    env = _signed(x509_server, SIG_ONLY, pki.alice, use_key=pki.bob.cert)
    _refused(x509_server, SIG_ONLY, env, (WST, "InvalidRequest"))
    own = _signed(x509_server, SIG_ONLY, pki.alice, use_key=pki.alice.cert)
    assert _issued(_post(x509_server, SIG_ONLY, etree.tostring(own)))  # its own signing key: bound


def test_bare_rsa_key_value_of_a_registered_key_whose_certificate_expired_is_refused(
    x509_server: Server, x509_instance: tuple[Instance, Pki]
) -> None:
    """Unsigned (UsernameToken) PublicKey request: the key of admin's expired registered certificate (I22/I23)."""
    instance, pki = x509_instance
    numbers = pki.expired_key.key.public_key().public_numbers()
    modulus = base64.b64encode(numbers.n.to_bytes(256, "big")).decode()
    use_key = (
        f'<wst:UseKey><ds:KeyInfo xmlns:ds="{DS}"><ds:KeyValue><ds:RSAKeyValue><ds:Modulus>{modulus}</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue></ds:KeyInfo></wst:UseKey>"
    )
    body = rst_envelope("admin", instance.demo_password, extra_rst=use_key).replace(
        f"{WST}/Bearer</wst:KeyType>".encode(), f"{WST}/PublicKey</wst:KeyType>".encode()
    )
    response = requests.post(x509_server.url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"},
                             verify=x509_server.verify, timeout=30)
    assert fault_qname(response.content) == (WST, "InvalidRequest")


def test_a_signature_on_the_username_token_endpoint_is_still_refused(
    x509_server: Server, x509_instance: tuple[Instance, Pki]
) -> None:
    """One policy per endpoint: the UTOverTransport paths take no signature (MS1)."""
    _, pki = x509_instance
    env = _signed(x509_server, "/services/wso2carbon-sts", pki.alice)
    _refused(x509_server, "/services/wso2carbon-sts", env, (WSSE, "UnsupportedSecurityToken"))


@pytest.mark.parametrize("trick", sorted(_P05_SUBJECTS))
def test_p05_mapping_tricks_are_refused(x509_server: Server, x509_instance: tuple[Instance, Pki], trick: str) -> None:
    _, pki = x509_instance
    _refused(x509_server, SIG_ONLY, _signed(x509_server, SIG_ONLY, pki.mapping_tricks[trick]), FAILED_AUTH)


def _issuer_serial_signed(server: Server, client: Client, issuer: str, serial: str) -> etree._Element:
    """A SigOnly request whose signature names the (registered) certificate by X509IssuerSerial, no BST."""
    from sts.crypto.wss_sign import WssSigner

    env = _signed(server, SIG_ONLY, client)
    security = env[0].find(SEC)
    assert security is not None
    for child in (_signature_of(env), security.find(f"{{{WSSE}}}BinarySecurityToken")):
        security.remove(child)  # type: ignore[arg-type]
    reference = etree.fromstring(
        f'<wsse:SecurityTokenReference xmlns:wsse="{WSSE}" xmlns:ds="{DS}"><ds:X509Data><ds:X509IssuerSerial>'
        f"<ds:X509IssuerName>{issuer}</ds:X509IssuerName><ds:X509SerialNumber>{serial}</ds:X509SerialNumber>"
        "</ds:X509IssuerSerial></ds:X509Data></wsse:SecurityTokenReference>"
    )
    timestamp = security.find(f"{{{WSU}}}Timestamp")
    assert timestamp is not None
    WssSigner(client.key).sign(security, [timestamp, env[-1]], reference)
    return env


def test_p06_issuer_serial_spellings(x509_server: Server, x509_instance: tuple[Instance, Pki]) -> None:
    """The registered certificate named by issuer and serial: RFC 4514 or with ", " between RDNs (as .NET and Java
    write it) resolves; the RDNs in another order name another issuer (nothing registered: FailedAuthentication);
    a serial in hex is a malformed reference."""
    _, pki = x509_instance
    serial = str(pki.alice.cert.serial_number)
    for issuer in ("CN=alice,O=sts tests", "CN=alice, O=sts tests"):
        env = _issuer_serial_signed(x509_server, pki.alice, issuer, serial)
        assert _issued(_post(x509_server, SIG_ONLY, etree.tostring(env))), issuer
    other_order = _issuer_serial_signed(x509_server, pki.alice, "O=sts tests,CN=alice", serial)
    _refused(x509_server, SIG_ONLY, other_order, FAILED_AUTH)
    hex_serial = _issuer_serial_signed(x509_server, pki.alice, "CN=alice,O=sts tests", hex(int(serial)))
    _refused(x509_server, SIG_ONLY, hex_serial, (WSSE, "InvalidSecurityToken"))
