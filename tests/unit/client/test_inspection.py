"""Token inspection (sts.client.inspection): decrypt with the RP key, verify with the STS's own Validate
verifier against a pinned certificate, read only what is signed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import ns
from sts.client import ClientError, DecryptionKeyNeeded, InspectOptions, inspect_token, load_certificate_file
from sts.client.tokenfile import MAX_TOKEN_FILE_BYTES
from sts.crypto.signer import AssertionSigner
from sts.wstrust.tokentypes import SamlVersion
from tests.fake_sts import token_answer
from tests.inspect_samples import (
    EMAIL,
    GIVEN,
    RP,
    KeyFiles,
    Keys,
    encrypted_saml2,
    key_files,
    saml2_assertion,
    saml11_assertion,
    signed_saml2,
    write,
)

NO_SIGNATURE = "no trusted certificate verifies the signature"


@pytest.fixture
def files(tmp_path: Path, keys: Keys) -> KeyFiles:
    return key_files(tmp_path, keys)


def _options(token: Path, files: KeyFiles, **kwargs: object) -> InspectOptions:
    return InspectOptions(token_file=token, sts_certificate=kwargs.pop("cert", files.sts_cert), **kwargs)  # type: ignore[arg-type]


def test_encrypted_saml2(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    token = write(tmp_path, "token.xml", encrypted_saml2(keys))
    assert b"alice@example.com" not in token.read_bytes()
    inspection = inspect_token(_options(token, files, rp_key=files.rp_key))
    assert inspection.encrypted and inspection.valid and inspection.rejection == ""
    assert inspection.certificate == keys.sts_cert
    assert inspection.assertion is not None
    assert (inspection.assertion.version, inspection.assertion.subject) == (SamlVersion.SAML20, "alice")
    assert inspection.rows == (
        ("SAML version", "2.0"),
        ("ID", "_abc123"),
        ("issuer", "https://sts.example.com/"),
        ("issue instant", "2026-01-01T12:00:00Z"),
        ("subject", "alice"),
        ("subject format", "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
        ("confirmation", "urn:oasis:names:tc:SAML:2.0:cm:bearer"),
        ("recipient", RP),
        ("confirmation until", "2026-01-01T12:30:00Z"),
        ("audience", RP),
        ("not before", "2026-01-01T12:00:00Z"),
        ("not on or after", "2026-01-01T12:30:00Z"),
        ("validity", "EXPIRED"),
        ("authn context", "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"),
        ("authn instant", "2026-01-01T12:00:00Z"),
        ("attribute", f"{EMAIL} = alice@example.com"),
        ("attribute", f"{GIVEN} = Alice"),
        ("attribute", f"{GIVEN} = Ally"),
    )


def test_whole_response(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    answer = etree.fromstring(token_answer())
    holder = answer.find(f".//{{{ns.WST}}}RequestedSecurityToken")
    assert holder is not None
    holder.remove(holder[0])
    holder.append(encrypted_saml2(keys))
    inspection = inspect_token(_options(write(tmp_path, "answer.xml", answer), files, rp_key=files.rp_key))
    assert inspection.valid and ("attribute", f"{EMAIL} = alice@example.com") in inspection.rows


def test_saml11(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    signed = AssertionSigner(keys.sts_key, keys.sts_cert).sign_saml11(saml11_assertion())
    inspection = inspect_token(_options(write(tmp_path, "token.xml", signed), files))
    assert not inspection.encrypted and inspection.valid
    rows = dict(inspection.rows)
    assert rows["SAML version"] == "1.1" and rows["ID"] == "_s11" and rows["subject"] == "bob"
    assert rows["confirmation"] == "urn:oasis:names:tc:SAML:1.0:cm:bearer" and rows["audience"] == RP
    assert rows["attribute"] == "http://wso2.org/claims/emailaddress = bob@example.com"


def test_wrong_certificate(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    token = write(tmp_path, "token.xml", encrypted_saml2(keys))
    inspection = inspect_token(_options(token, files, rp_key=files.rp_key, cert=files.other_cert))
    assert inspection.encrypted and not inspection.valid
    assert (inspection.assertion, inspection.rows, inspection.rejection) == (None, (), NO_SIGNATURE)


def test_tampered_and_unsigned(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    tampered = copy.deepcopy(signed_saml2(keys))
    name_id = tampered.find(f".//{{{ns.SAML2}}}NameID")
    assert name_id is not None
    name_id.text = "mallory"
    for token in (tampered, saml2_assertion()):
        inspection = inspect_token(_options(write(tmp_path, "token.xml", token), files))
        assert (inspection.valid, inspection.rows, inspection.rejection) == (False, (), NO_SIGNATURE)


def test_nested_assertion_refused(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    """The STS's Validate verifier, not a weaker one: a signed assertion carrying another assertion (in Advice,
    the XSW3/4 shape) is refused although its signature verifies."""
    outer = saml2_assertion()
    advice = etree.Element(f"{{{ns.SAML2}}}Advice")
    inner = saml2_assertion()
    inner.set("ID", "_inner")
    advice.append(inner)
    outer.find(f"{{{ns.SAML2}}}Issuer").addnext(advice)  # type: ignore[union-attr]
    inspection = inspect_token(_options(write(tmp_path, "token.xml", signed_saml2(keys, outer)), files))
    assert (inspection.valid, inspection.rejection) == (False, "the assertion holds another assertion")


def test_unreadable_conditions_refused(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    """As Validate: a window that cannot be read makes the token invalid."""
    assertion = saml2_assertion()
    assertion.find(f"{{{ns.SAML2}}}Conditions").set("NotBefore", "yesterday")  # type: ignore[union-attr]
    inspection = inspect_token(_options(write(tmp_path, "token.xml", signed_saml2(keys, assertion)), files))
    assert (inspection.valid, inspection.rejection) == (False, "unreadable NotBefore/NotOnOrAfter")


def test_validity_rows(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    cases = {
        ("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"): "within NotBefore/NotOnOrAfter",
        ("2999-01-01T00:00:00Z", "2999-01-02T00:00:00Z"): "NOT YET VALID",
        ("2000-01-01T00:00:00Z", "2000-01-02T00:00:00Z"): "EXPIRED",
    }
    for (not_before, not_after), expected in cases.items():
        assertion = saml2_assertion()
        conditions = assertion.find(f"{{{ns.SAML2}}}Conditions")
        assert conditions is not None
        conditions.set("NotBefore", not_before)
        conditions.set("NotOnOrAfter", not_after)
        inspection = inspect_token(_options(write(tmp_path, "token.xml", signed_saml2(keys, assertion)), files))
        assert dict(inspection.rows)["validity"] == expected
    assertion = saml2_assertion()
    assertion.remove(assertion.find(f"{{{ns.SAML2}}}Conditions"))  # type: ignore[arg-type]
    inspection = inspect_token(_options(write(tmp_path, "token.xml", signed_saml2(keys, assertion)), files))
    assert dict(inspection.rows)["validity"] == "no Conditions" and dict(inspection.rows)["audience"] == "-"


def test_decryption_problems(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    token = write(tmp_path, "token.xml", encrypted_saml2(keys))
    with pytest.raises(DecryptionKeyNeeded, match="^the token is encrypted: the relying party's private key"):
        inspect_token(_options(token, files))
    wrong = tmp_path / "wrong.key.pem"
    wrong.write_bytes(
        keys.sts_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ClientError, match=f"^cannot decrypt the token with {wrong}: "):
        inspect_token(_options(token, files, rp_key=wrong))
    with pytest.raises(ClientError, match=f"^cannot read {tmp_path / 'missing.pem'}: "):
        inspect_token(_options(token, files, rp_key=tmp_path / "missing.pem"))
    empty = write(tmp_path, "empty.xml", etree.Element(f"{{{ns.SAML2}}}EncryptedAssertion"))
    with pytest.raises(ClientError, match="^EncryptedAssertion without xenc:EncryptedData$"):
        inspect_token(_options(empty, files, rp_key=files.rp_key))


def test_encrypted_rp_key_asks_for_its_passphrase(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    locked = tmp_path / "locked.key.pem"
    locked.write_bytes(
        keys.rp_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    token = write(tmp_path, "token.xml", encrypted_saml2(keys))
    asked: list[Path] = []

    def passphrase(path: Path) -> str:
        asked.append(path)
        return "open sesame"

    assert inspect_token(_options(token, files, rp_key=locked, passphrase=passphrase)).valid
    assert asked == [locked]
    with pytest.raises(ClientError, match=f"^{locked}: the key is encrypted and no passphrase was given$"):
        inspect_token(_options(token, files, rp_key=locked))
    with pytest.raises(ClientError, match=f"^{locked}: not a usable RSA private key"):
        inspect_token(_options(token, files, rp_key=locked, passphrase=lambda path: "wrong"))


def test_token_file_problems(tmp_path: Path, files: KeyFiles) -> None:
    path = tmp_path / "x.xml"
    cases = {
        b"<a><b/></a>": f"{path}: no Assertion, EncryptedAssertion or EncryptedData found",
        b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>': f"{path}: not well-formed XML (or exceeds the parser limits)",
        b" " * (MAX_TOKEN_FILE_BYTES + 1): f"{path}: larger than {MAX_TOKEN_FILE_BYTES} bytes",
    }
    looked_up: list[int] = []

    def certificate() -> Path:
        looked_up.append(1)
        return files.sts_cert

    for data, message in cases.items():
        path.write_bytes(data)
        with pytest.raises(ClientError) as raised:
            inspect_token(InspectOptions(token_file=path, sts_certificate=certificate))
        assert str(raised.value) == message
    with pytest.raises(ClientError, match=f"^cannot read {tmp_path / 'missing.xml'}: "):
        inspect_token(InspectOptions(token_file=tmp_path / "missing.xml", sts_certificate=certificate))
    assert looked_up == []  # the certificate is looked up only for a token


def test_certificate_lookup_and_files(tmp_path: Path, keys: Keys, files: KeyFiles) -> None:
    token = write(tmp_path, "token.xml", signed_saml2(keys))
    assert inspect_token(InspectOptions(token_file=token, sts_certificate=lambda: files.sts_cert)).valid
    assert load_certificate_file(files.sts_cert) == keys.sts_cert
    with pytest.raises(ClientError, match=f"^cannot read {tmp_path / 'none.pem'}: "):
        load_certificate_file(tmp_path / "none.pem")
    with pytest.raises(ClientError, match=f"^{token}: not a PEM or DER certificate$"):
        load_certificate_file(token)
