"""A delegation test bed: an instance with a front-end, a middle tier and a back-end relying party, service users,
an independent identity provider (its own key, signing with signxml) listed in ``[[trusted_issuers]]``, and
the client calls the tests make against the real gunicorn."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from sts import ns
from sts.client.errors import FaultReceived
from sts.client.operations import request_token
from sts.client.options import Connection, IssueOptions
from sts.client.response import IssuedToken
from sts.wstrust.tokentypes import SamlVersion
from tests.support import Instance, Server

FRONTEND = "https://frontend.example.test/"
MIDDLE = "https://middle.example.test/"
BACKEND = "https://backend.example.test/"
IDP = "https://idp.example.test"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test password
USERS = {  # name → roles
    "alice": ("admin", "staff"),
    "carol": ("admin",),
    "svc-front": ("admin", "frontends"),
    "svc-middle": ("admin",),
    "mallory": ("admin",),
}


@dataclass
class IdentityProvider:
    """An identity provider independent of the STS: its own RSA key and self-signed certificate."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str = "test idp") -> IdentityProvider:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def assertion(
        self,
        name_id: str,
        *,
        issuer: str = IDP,
        audience: str = FRONTEND,
        not_before: float = -60,
        not_after: float = 600,
        one_time_use: bool = False,
        restrictions: tuple[tuple[str, ...], ...] = (),
        confirmation_not_after: float | None = None,
    ) -> etree._Element:
        """A SAML 2.0 bearer assertion signed by this IdP with signxml (exclusive c14n, RSA-SHA256), addressed to
        ``audience``, or with ``restrictions``: one AudienceRestriction of these audiences each;
        ``confirmation_not_after``: the SubjectConfirmationData NotOnOrAfter offset (default: ``not_after``)."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)

        def instant(offset: float) -> str:
            return (now + dt.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")

        saml = ns.SAML2
        assertion = etree.Element(
            f"{{{saml}}}Assertion",
            {"ID": "_" + uuid.uuid4().hex, "IssueInstant": instant(0), "Version": "2.0"},
            nsmap={"saml2": saml},
        )
        etree.SubElement(assertion, f"{{{saml}}}Issuer").text = issuer
        subject = etree.SubElement(assertion, f"{{{saml}}}Subject")
        etree.SubElement(subject, f"{{{saml}}}NameID").text = name_id
        bearer = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
        confirmation = etree.SubElement(subject, f"{{{saml}}}SubjectConfirmation", Method=bearer)
        etree.SubElement(
            confirmation, f"{{{saml}}}SubjectConfirmationData",
            NotOnOrAfter=instant(not_after if confirmation_not_after is None else confirmation_not_after),
        )
        conditions = etree.SubElement(
            assertion, f"{{{saml}}}Conditions", NotBefore=instant(not_before), NotOnOrAfter=instant(not_after)
        )
        for audiences in restrictions or ((audience,),):
            restriction = etree.SubElement(conditions, f"{{{saml}}}AudienceRestriction")
            for name in audiences:
                etree.SubElement(restriction, f"{{{saml}}}Audience").text = name
        if one_time_use:
            etree.SubElement(conditions, f"{{{saml}}}OneTimeUse")
        authn = etree.SubElement(assertion, f"{{{saml}}}AuthnStatement", AuthnInstant=instant(0))
        etree.SubElement(etree.SubElement(authn, f"{{{saml}}}AuthnContext"), f"{{{saml}}}AuthnContextClassRef").text = (
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
        )
        signer = XMLSigner(
            method=methods.enveloped,
            signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        signed = signer.sign(assertion, key=self.key, cert=[self.cert], reference_uri=assertion.get("ID"))
        # SAML 2.0 core §2.3.3: the Signature follows the Issuer.
        signature = signed.find(f"{{{ns.DS}}}Signature")
        assert signature is not None
        signed.find(f"{{{saml}}}Issuer").addnext(signature)  # type: ignore[union-attr]
        return signed


def setup_bed(instance: Instance, idp: IdentityProvider, *, callers: bool = True) -> None:
    """Users, relying parties and the trusted issuer of the test bed (before the server starts)."""
    idp_file = instance.base / "keystore" / "idp.crt.pem"
    idp_file.write_bytes(idp.pem())
    with instance.config.open("a") as config:
        config.write(
            f'\n[[trusted_issuers]]\nentity_id = "{IDP}"\ncertificates = ["{idp_file}"]\n'
            f'map_to_domain = "PRIMARY"\ncallers = {"true" if callers else "false"}\n'
        )
    for role in ("staff", "frontends"):
        assert instance.cli("role", "add", role) == 0
    for name, roles in USERS.items():
        args = [arg for role in roles for arg in ("--role", role)]
        _cli_with_stdin(instance, PASSWORD, "user", "add", name, "--password-stdin", *args)
    for address in (FRONTEND, MIDDLE, BACKEND):
        assert instance.cli("rp", "add", address, "--no-encrypt") == 0


def _cli_with_stdin(instance: Instance, text: str, *args: str) -> None:
    import io
    import sys

    saved = sys.stdin
    sys.stdin = io.StringIO(text + "\n")
    try:
        assert instance.cli(*args) == 0
    finally:
        sys.stdin = saved


def issue(
    server: Server,
    user: str,
    applies_to: str,
    *,
    password: str = PASSWORD,
    on_behalf_of: etree._Element | None = None,
    act_as: etree._Element | None = None,
    token: etree._Element | None = None,
    url: str | None = None,
    version: SamlVersion | None = SamlVersion.SAML20,
) -> IssuedToken:
    """An Issue request through the client library."""
    connection = Connection(url=url or server.url, username=user, cafile=server.instance.ca_file, token=token)
    options = IssueOptions(connection, applies_to, token_type=version, on_behalf_of=on_behalf_of, act_as=act_as)
    return request_token(options, password)


def fault_of(call: object, *args: object, **kwargs: object) -> tuple[str, str]:
    """The (namespace, local name) of the fault a call gets."""
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except FaultReceived as received:
        return received.fault.namespace, received.fault.code.rpartition(":")[2]
    raise AssertionError("no fault")


def write_token(path: Path, element: etree._Element) -> Path:
    path.write_bytes(etree.tostring(element))
    return path
