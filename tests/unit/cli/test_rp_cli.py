"""Tests for ``sts rp``: register, list, show, update and remove relying parties (R30, R31, I03, I20, E01, E02).

Settings left out are stored empty and come from the compatibility profile (sts.relying_parties.profiles).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sts.cli import main
from sts.cli.common import CommandError
from sts.cli.rp_support import parse_claim_maps, parse_encryption
from sts.crypto import keygen
from sts.crypto.keystore import fingerprint
from sts.relying_parties.certificates import slug
from sts.relying_parties.matching import AddressIndex
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore

ADDRESS = "https://rp.example.com/app"
EMAIL = "http://wso2.org/claims/emailaddress"
GIVEN = "http://wso2.org/claims/givenname"
RP_MAIL = "urn:rp:mail"
RP_GIVEN = "urn:rp:given"
CBC_WARNING = ".NET Framework / WIF relying parties only"
PROFILE_CBC_WARNING = "selects AES-256-CBC for .NET Framework/WIF relying parties"


@dataclass(frozen=True)
class Certs:
    good: Path
    good_cert: x509.Certificate
    other: Path
    other_cert: x509.Certificate
    der: Path
    expired: Path
    future: Path
    weak: Path
    expiring: Path
    garbage: Path
    signing_only: Path  # KeyUsage digitalSignature only: no key transport (RFC 5280 §4.2.1.3)
    ca: Path  # BasicConstraints CA:TRUE, KeyUsage keyCertSign + cRLSign + keyEncipherment (RFC 5280 §4.2.1.9)


def _cert(
    key: rsa.RSAPrivateKey, name: str, before: dt.timedelta, after: dt.timedelta, *extensions: x509.ExtensionType
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + before)
        .not_valid_after(now + after)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(key, hashes.SHA256())


def _usage(**allowed: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{name: allowed.get(name, False) for name in names})


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    base = tmp_path_factory.mktemp("rp-certs")
    key = keygen.generate_rsa_key(2048)
    good_cert = keygen.self_signed_certificate(key, "rp one")
    keygen.write_certificate(base / "good.crt.pem", good_cert)
    other_cert = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "rp two")
    keygen.write_certificate(base / "other.crt.pem", other_cert)
    (base / "good.cer").write_bytes(good_cert.public_bytes(serialization.Encoding.DER))
    day = dt.timedelta(days=1)
    expired = _cert(key, "expired rp", -10 * day, -day)
    keygen.write_certificate(base / "expired.crt.pem", expired)
    future = _cert(key, "future rp", 2 * day, 400 * day)
    keygen.write_certificate(base / "future.crt.pem", future)
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    keygen.write_certificate(base / "weak.crt.pem", _cert(weak_key, "weak rp", -day, 400 * day))
    keygen.write_certificate(base / "expiring.crt.pem", _cert(key, "expiring rp", -day, 10 * day))
    (base / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    signing_only = _cert(key, "signing rp", -day, 400 * day, _usage(digital_signature=True))
    keygen.write_certificate(base / "signing-only.crt.pem", signing_only)
    ca = _cert(key, "rp ca", -day, 400 * day, x509.BasicConstraints(ca=True, path_length=None),
               _usage(key_cert_sign=True, crl_sign=True, key_encipherment=True))
    keygen.write_certificate(base / "ca.crt.pem", ca)
    return Certs(
        good=base / "good.crt.pem",
        good_cert=good_cert,
        other=base / "other.crt.pem",
        other_cert=other_cert,
        der=base / "good.cer",
        expired=base / "expired.crt.pem",
        future=base / "future.crt.pem",
        weak=base / "weak.crt.pem",
        expiring=base / "expiring.crt.pem",
        garbage=base / "garbage.pem",
        signing_only=base / "signing-only.crt.pem",
        ca=base / "ca.crt.pem",
    )


def _reaches(rp: RelyingParty, applies_to: str) -> bool:
    """Whether a request for ``applies_to`` is matched to the registered ``rp``."""
    return AddressIndex([rp]).match(applies_to) == rp


@dataclass(frozen=True)
class Instance:
    base: Path

    @property
    def truststore(self) -> Path:
        return self.base / "keystore" / "truststore"

    def sts(self, *args: str) -> int:
        return main(["--config", str(self.base / "sts.toml"), *args])

    def rps(self) -> list[RelyingParty]:
        db = Database(self.base / "sts.db")
        try:
            return RelyingPartyRegistry(SqliteRelyingPartyStore(db)).all()
        finally:
            db.close()

    def rp(self, address: str) -> RelyingParty:
        db = Database(self.base / "sts.db")
        try:
            return RelyingPartyRegistry(SqliteRelyingPartyStore(db)).get(address)
        finally:
            db.close()

    def files(self) -> list[str]:
        return sorted(p.name for p in self.truststore.iterdir())

    def set_tokens_profile(self, name: str) -> None:
        config = self.base / "sts.toml"
        text = config.read_text()
        assert text.count('profile = "strict"') == 1
        config.write_text(text.replace('profile = "strict"', f'profile = "{name}"'))


@pytest.fixture
def inst(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Instance:
    assert main(["init", "--key-size", "2048", str(tmp_path / "var")]) == 0
    capsys.readouterr()
    return Instance(tmp_path / "var")


# --- add ---------------------------------------------------------------------------------------------------------


def test_add_defaults_copies_certificate(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    out = capsys.readouterr().out
    assert f"registered relying party {ADDRESS} (exact, saml20, encrypted with aes256-gcm,rsa-oaep-mgf1p, " in out
    assert "profile strict)" in out
    assert fingerprint(certs.good_cert) in out
    rp = inst.rp(ADDRESS)
    # nothing concrete is stored: the profile decides (strict, the [tokens] default)
    assert (rp.match, rp.token_type, rp.encrypt) == ("exact", None, True)
    assert (rp.cipher, rp.key_transport) == (None, None)
    assert (rp.claims, rp.claim_mapping, rp.lifetime, rp.nameid) == ((), (), 0, "")
    assert (rp.profile, rp.applies_to_in_response, rp.identifier) == (None, True, "")
    assert re.fullmatch(r"https-rp-example-com-app-[0-9a-f]{8}\.crt\.pem", rp.cert_file)
    assert rp.cert_file == slug(ADDRESS) + ".crt.pem"
    copied = inst.truststore / rp.cert_file
    assert stat.S_IMODE(copied.stat().st_mode) == 0o644
    assert copied.read_bytes() == certs.good.read_bytes()
    assert inst.files() == [rp.cert_file]  # no temporary file left behind


def test_add_all_options(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--token-type", "saml11", "--encryption", "aes128-gcm,rsa-oaep", "--claim", EMAIL, "--claim", GIVEN]
    args += ["--claim", EMAIL, "--lifetime", "600", "--nameid", "email", "--profile", "wso2"]
    args += ["--no-applies-to-in-response", "--identifier", "urn:example:rp"]
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), *args) == 0
    rp = inst.rp(ADDRESS)
    assert (rp.token_type, rp.cipher, rp.key_transport) == ("saml11", "aes128-gcm", "rsa-oaep")
    assert rp.claims == (EMAIL, GIVEN)
    assert (rp.lifetime, rp.nameid, rp.profile, rp.applies_to_in_response) == (600, "email", "wso2", False)
    assert rp.identifier == "urn:example:rp"
    assert "warning" not in capsys.readouterr().err


def test_add_der_certificate_stored_as_pem(inst: Instance, certs: Certs) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.der)) == 0
    data = (inst.truststore / inst.rp(ADDRESS).cert_file).read_bytes()
    assert data.startswith(b"-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificate(data) == certs.good_cert


def test_add_creates_missing_truststore(inst: Instance, certs: Certs) -> None:
    inst.truststore.rmdir()
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    assert inst.files() == [inst.rp(ADDRESS).cert_file]


def test_address_is_normalised(inst: Instance, certs: Certs) -> None:
    assert inst.sts("rp", "add", "  HTTPS://RP.Example.COM:443/app  ", "--cert", str(certs.good)) == 0
    assert [rp.address for rp in inst.rps()] == [ADDRESS]


@pytest.mark.parametrize(
    "spelling", [ADDRESS, "HTTPS://RP.EXAMPLE.COM/app", "https://rp.example.com:443/app"]
)
def test_duplicate_refused(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str], spelling: str) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    before = {name: (inst.truststore / name).read_bytes() for name in inst.files()}
    capsys.readouterr()
    assert inst.sts("rp", "add", spelling, "--cert", str(certs.other)) == 1
    assert "already registered" in capsys.readouterr().err
    assert len(inst.rps()) == 1
    assert {name: (inst.truststore / name).read_bytes() for name in inst.files()} == before


def test_cert_required_unless_no_encrypt(inst: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS) == 1
    assert "--cert is required unless --no-encrypt" in capsys.readouterr().err
    assert inst.sts("rp", "add", ADDRESS, "--no-encrypt") == 0
    assert "will not be encrypted" in capsys.readouterr().err
    rp = inst.rp(ADDRESS)
    assert (rp.encrypt, rp.cert_file) == (False, "")
    assert inst.files() == []


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("expired", "certificate expired on"),
        ("future", "not valid before"),
        ("weak", "RSA key of 1024 bits; at least 2048 required"),
        ("garbage", "is not a PEM or DER X.509 certificate"),
        ("signing_only", "its KeyUsage does not allow keyEncipherment"),
        ("ca", "a CA certificate (BasicConstraints CA:TRUE"),
    ],
)
def test_bad_certificate_refused(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str], which: str, message: str
) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(getattr(certs, which))) == 1
    err = capsys.readouterr().err
    assert err.startswith("sts: error: ")
    assert message in err
    assert inst.rps() == []
    assert inst.files() == []


def test_missing_certificate_file(inst: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(tmp_path / "nope.pem")) == 1
    assert "not found" in capsys.readouterr().err


def test_expiring_certificate_warns(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.expiring)) == 0
    assert "sts: warning: " in capsys.readouterr().err
    assert len(inst.rps()) == 1


@pytest.mark.parametrize(
    "value",
    ["rsa-1_5", "tripledes-cbc", "3des", "aes128-cbc", "aes256-gcm,rsa-1_5", "aes256-gcm,", "aes256-gcm,rsa-oaep,x"],
)
def test_bad_encryption_refused(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), "--encryption", value) == 1
    assert "--encryption: unknown" in capsys.readouterr().err
    assert inst.rps() == []
    assert inst.files() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("aes256-gcm", ("aes256-gcm", None)),  # key transport left to the profile
        ("aes256-cbc,rsa-oaep-mgf1p", ("aes256-cbc", "rsa-oaep-mgf1p")),
        ("aes128-gcm,rsa-oaep", ("aes128-gcm", "rsa-oaep")),
    ],
)
def test_encryption_choices(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str], value: str, expected: tuple[str, str]
) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), "--encryption", value) == 0
    rp = inst.rp(ADDRESS)
    assert (rp.cipher, rp.key_transport) == expected
    warned = CBC_WARNING in capsys.readouterr().err
    assert warned == (expected[0] == "aes256-cbc")


def test_parse_encryption_default_key_transport() -> None:
    assert parse_encryption("AES256-GCM") == ("aes256-gcm", "")
    assert parse_encryption("aes256-gcm", "rsa-oaep") == ("aes256-gcm", "rsa-oaep")
    with pytest.raises(CommandError):
        parse_encryption("aes256-gcm,rsa-1_5")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--match", "glob", "--match must be one of"),
        ("--token-type", "saml2", "--token-type must be one of"),
        ("--nameid", "upn", "--nameid must be one of"),
        ("--nameid", "urn:a b", "--nameid must be one of"),
        ("--nameid", "http://wso2.org/claims/role", "nameid cannot be a role claim"),
        ("--nameid-format", "persistent", "--nameid-format expects an absolute URI"),
        ("--profile", "spring", "--profile must be one of"),
        ("--lifetime", "ten", "--lifetime expects a number"),
        ("--lifetime", "-1", "--lifetime must be between"),
        ("--lifetime", "43201", "--lifetime must be between"),
        ("--claim", "email address", "--claim expects an absolute claim URI"),
        ("--claim", "emailaddress", "--claim expects an absolute claim URI"),
        ("--identifier", "not a uri", "--identifier expects an absolute URI"),
        ("--claim-map", "no-equals-sign", "--claim-map expects LOCAL=REMOTE"),
        # XML 1.0 §2.2 [2] Char: every Issue for the RP would fail inside the server with these in the token.
        ("--identifier", "https://rp.example.com/\uffff", "--identifier expects an absolute URI"),
        ("--claim", "http://wso2.org/claims/\ufffe", "--claim expects an absolute claim URI"),
        ("--claim-map", f"{EMAIL}=urn:rp:\uffff", "--claim-map expects LOCAL=REMOTE"),
        ("--nameid", "urn:claim:\uffff", "--nameid must be one of"),
        ("--nameid-format", "urn:format:\uffff", "--nameid-format expects an absolute URI"),
    ],
)
def test_bad_option_values(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), option, value) == 1
    assert message in capsys.readouterr().err
    assert inst.rps() == []


def test_bad_addresses(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    bad = ("rp.example.com/app", "https://user@rp.example.com/", "https://rp example/", "https://rp:99999/",
           "https://rp.example.com/\uffff")
    for address in (*bad, "https://[a-z]+.example/"):
        assert inst.sts("rp", "add", address, "--cert", str(certs.good)) == 1
        assert "sts: error: " in capsys.readouterr().err
    assert inst.rps() == []
    assert inst.files() == []


# --- match kinds (I03) -----------------------------------------------------------------------------------------------


def test_prefix_needs_trailing_slash(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--match", "prefix", "--cert", str(certs.good)) == 1
    assert "prefix addresses must end with '/'" in capsys.readouterr().err
    assert inst.files() == []
    assert inst.sts("rp", "add", ADDRESS + "/", "--match", "prefix", "--cert", str(certs.good)) == 0
    rp = inst.rp(ADDRESS + "/")
    assert rp.match == "prefix"
    assert _reaches(rp, "https://rp.example.com/app/x")
    assert not _reaches(rp, "https://rp.example.com/application")


def test_regex(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = r"https://[a-z]+\.example\.org/app/"
    assert inst.sts("rp", "add", "https://(", "--match", "regex", "--identifier", "urn:rp", "--no-encrypt") == 1
    assert "invalid regular expression" in capsys.readouterr().err
    assert inst.sts("rp", "add", pattern, "--match", "regex", "--cert", str(certs.good)) == 1
    assert "needs an identifier" in capsys.readouterr().err
    assert inst.sts("rp", "add", pattern, "--match", "regex", "--identifier", "urn:rp", "--cert", str(certs.good)) == 0
    rp = inst.rp(pattern)  # stored as written, not normalised
    assert (rp.match, rp.identifier) == ("regex", "urn:rp")
    assert _reaches(rp, "https://a.example.org/app/")
    assert not _reaches(rp, "https://a.example.org/app/x")  # anchored: fullmatch
    assert not _reaches(rp, "https://a.example.org.evil/app/")
    assert (inst.truststore / rp.cert_file).is_file()
    capsys.readouterr()
    assert inst.sts("rp", "show", pattern) == 0
    assert f"address:                {pattern}" in capsys.readouterr().out


# --- list / show -------------------------------------------------------------------------------------------------


def test_list(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "list") == 0
    assert capsys.readouterr().out == ""
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), "--token-type", "saml11") == 0
    assert inst.sts("rp", "add", "https://other.example.com/", "--match", "prefix", "--no-encrypt") == 0
    capsys.readouterr()
    assert inst.sts("rp", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "https://other.example.com/\tprefix\tsaml20\tencrypt: no\t-\tprofile: strict",
        f"{ADDRESS}\texact\tsaml11\tencrypt: yes\taes256-gcm,rsa-oaep-mgf1p\tprofile: strict",
    ]


def test_list_shows_effective_settings(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), "--profile", "adfs") == 0
    assert inst.sts("rp", "add", "https://cxf.example.com/", "--cert", str(certs.good), "--profile", "cxf") == 0
    capsys.readouterr()
    assert inst.sts("rp", "list") == 0
    assert capsys.readouterr().out.splitlines() == [
        "https://cxf.example.com/\texact\tsaml20\tencrypt: yes\taes256-gcm,rsa-oaep\tprofile: cxf",
        f"{ADDRESS}\texact\tsaml11\tencrypt: yes\taes256-cbc,rsa-oaep-mgf1p\tprofile: adfs",
    ]


def test_show(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), "--claim", EMAIL, "--lifetime", "300") == 0
    capsys.readouterr()
    assert inst.sts("rp", "show", "HTTPS://rp.example.com:443/app") == 0  # un-normalised spelling accepted
    out = capsys.readouterr().out
    for expected in (
        f"address:                {ADDRESS}",
        "match:                  exact",
        "identifier:             (the address)",
        "token type:             saml20 (from profile strict)",
        "encrypt:                yes",
        "cipher:                 aes256-gcm (from profile strict)",
        "key transport:          rsa-oaep-mgf1p (from profile strict)",
        "nameid:                 username (from profile strict)",
        "nameid format:          urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified (default)",
        "lifetime:               300",
        "profile:                strict (from [tokens] profile)",
        "applies-to in response: yes",
        "claims:                 1",
        f"  claim:                {EMAIL}",
        "claim mappings:         -",
        "certificate subject:    CN=rp one",
        f"certificate expires:    {certs.good_cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
        f"certificate SHA-256:    {fingerprint(certs.good_cert)}",
        str(inst.truststore / slug(ADDRESS)),
    ):
        assert expected in out


def test_show_missing_certificate_file(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    (inst.truststore / inst.rp(ADDRESS).cert_file).unlink()
    capsys.readouterr()
    assert inst.sts("rp", "show", ADDRESS) == 0
    assert "unreadable" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["show", "update", "remove"])
def test_unknown(inst: Instance, capsys: pytest.CaptureFixture[str], action: str) -> None:
    assert inst.sts("rp", action, "https://nobody.example.com/") == 1
    assert "sts: error: no relying party https://nobody.example.com/" in capsys.readouterr().err


# --- update ------------------------------------------------------------------------------------------------------


def test_update_settings(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    add = ["--cert", str(certs.good), "--claim", EMAIL, "--encryption", "aes256-gcm,rsa-oaep"]
    assert inst.sts("rp", "add", ADDRESS, *add) == 0
    before = inst.rp(ADDRESS)
    capsys.readouterr()
    change = ["--encryption", "aes256-cbc", "--token-type", "saml11"]
    assert inst.sts("rp", "update", "HTTPS://RP.EXAMPLE.COM/app", *change) == 0
    captured = capsys.readouterr()
    assert f"updated relying party {ADDRESS}" in captured.out
    assert ".NET Framework / WIF" in captured.err
    rp = inst.rp(ADDRESS)
    assert (rp.cipher, rp.key_transport, rp.token_type) == ("aes256-cbc", "rsa-oaep", "saml11")  # transport kept
    assert (rp.claims, rp.cert_file) == ((EMAIL,), before.cert_file)  # untouched settings kept
    assert inst.sts("rp", "update", ADDRESS, "--claim", GIVEN, "--lifetime", "120", "--nameid", "email") == 0
    rp = inst.rp(ADDRESS)
    assert (rp.claims, rp.lifetime, rp.nameid) == ((GIVEN,), 120, "email")
    assert inst.sts("rp", "update", ADDRESS, "--clear-claims", "--no-applies-to-in-response", "--profile", "adfs") == 0
    rp = inst.rp(ADDRESS)
    assert (rp.claims, rp.applies_to_in_response, rp.profile) == ((), False, "adfs")
    capsys.readouterr()
    assert inst.sts("rp", "update", ADDRESS, "--claim", EMAIL, "--clear-claims") == 1
    assert "not both" in capsys.readouterr().err
    assert inst.sts("rp", "update", ADDRESS, "--encryption", "aes256-gcm,rsa-1_5") == 1
    assert inst.sts("rp", "update", ADDRESS, "--lifetime", "99999") == 1
    assert inst.rp(ADDRESS) == rp


def test_update_encrypt_toggle(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--no-encrypt") == 0
    capsys.readouterr()
    assert inst.sts("rp", "update", ADDRESS, "--encrypt") == 1
    assert "give --cert to encrypt" in capsys.readouterr().err
    assert inst.sts("rp", "update", ADDRESS, "--encrypt", "--cert", str(certs.good)) == 0
    rp = inst.rp(ADDRESS)
    assert rp.encrypt
    assert inst.files() == [rp.cert_file]
    assert inst.sts("rp", "update", ADDRESS, "--no-encrypt") == 0
    assert "will not be encrypted" in capsys.readouterr().err
    assert not inst.rp(ADDRESS).encrypt


def test_update_replaces_certificate(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    name = inst.rp(ADDRESS).cert_file
    assert inst.sts("rp", "update", ADDRESS, "--cert", str(certs.weak)) == 1
    assert "1024 bits" in capsys.readouterr().err
    assert (inst.truststore / name).read_bytes() == certs.good.read_bytes()
    assert inst.sts("rp", "update", ADDRESS, "--cert", str(certs.other)) == 0
    assert inst.rp(ADDRESS).cert_file == name
    assert inst.files() == [name]
    assert (inst.truststore / name).read_bytes() == certs.other.read_bytes()
    assert stat.S_IMODE((inst.truststore / name).stat().st_mode) == 0o644
    capsys.readouterr()
    assert inst.sts("rp", "show", ADDRESS) == 0
    out = capsys.readouterr().out
    assert fingerprint(certs.other_cert) in out
    assert "CN=rp two" in out


def test_update_match_kind(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS + "/", "--cert", str(certs.good)) == 0
    assert inst.sts("rp", "update", ADDRESS + "/", "--match", "prefix") == 0
    assert inst.rp(ADDRESS + "/").match == "prefix"
    assert inst.sts("rp", "update", ADDRESS + "/", "--match", "regex") == 1
    assert "needs an identifier" in capsys.readouterr().err
    pattern = "HTTPS://rp.example.com:443/app/"  # a regex that is also a URL
    assert inst.sts("rp", "add", pattern, "--match", "regex", "--identifier", "urn:x", "--no-encrypt") == 0
    # regex -> exact normalises the address: the entry is replaced in one transaction, unless that duplicates
    assert inst.sts("rp", "update", pattern, "--match", "exact") == 1
    assert "already registered" in capsys.readouterr().err
    assert inst.rp(pattern).match == "regex"
    assert len(inst.rps()) == 2
    assert inst.sts("rp", "remove", ADDRESS + "/") == 0
    assert inst.sts("rp", "update", pattern, "--match", "exact", "--identifier", "") == 0
    [rp] = inst.rps()
    assert (rp.address, rp.match, rp.identifier, rp.encrypt) == (ADDRESS + "/", "exact", "", False)


# --- compatibility profiles ---------------------------------------------------------------------------------------


def _show(inst: Instance, capsys: pytest.CaptureFixture[str], address: str = ADDRESS) -> str:
    capsys.readouterr()
    assert inst.sts("rp", "show", address) == 0
    return capsys.readouterr().out


def test_profile_adfs_gives_cbc(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), "--profile", "adfs") == 0
    captured = capsys.readouterr()
    assert "(exact, saml11, encrypted with aes256-cbc,rsa-oaep-mgf1p, profile adfs)" in captured.out
    assert f"sts: warning: profile adfs {PROFILE_CBC_WARNING}" in captured.err
    rp = inst.rp(ADDRESS)
    assert (rp.profile, rp.token_type, rp.cipher, rp.key_transport, rp.nameid) == ("adfs", None, None, None, "")
    out = _show(inst, capsys)
    for expected in (
        "token type:             saml11 (from profile adfs)\n",
        "cipher:                 aes256-cbc (from profile adfs)\n",
        "key transport:          rsa-oaep-mgf1p (from profile adfs)\n",
        "nameid:                 username (from profile adfs)\n",
        "profile:                adfs (set)\n",
    ):
        assert expected in out


def test_explicit_settings_beat_the_profile(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--profile", "adfs", "--encryption", "aes256-gcm", "--token-type", "saml20", "--nameid", "email"]
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), *args) == 0
    captured = capsys.readouterr()
    assert "(exact, saml20, encrypted with aes256-gcm,rsa-oaep-mgf1p, profile adfs)" in captured.out
    assert "AES-256-CBC" not in captured.err and "aes256-cbc" not in captured.err
    rp = inst.rp(ADDRESS)
    assert (rp.token_type, rp.cipher, rp.key_transport, rp.nameid) == ("saml20", "aes256-gcm", None, "email")
    out = _show(inst, capsys)
    for expected in (
        "token type:             saml20 (set)\n",
        "cipher:                 aes256-gcm (set)\n",
        "key transport:          rsa-oaep-mgf1p (from profile adfs)\n",  # only the cipher was given
        "nameid:                 email (set)\n",
        "profile:                adfs (set)\n",
    ):
        assert expected in out


def test_tokens_profile_is_the_default(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    inst.set_tokens_profile("adfs")
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    assert f"profile adfs (the [tokens] profile) {PROFILE_CBC_WARNING}" in capsys.readouterr().err
    assert inst.rp(ADDRESS).profile is None
    out = _show(inst, capsys)
    assert "cipher:                 aes256-cbc (from profile adfs)\n" in out
    assert "profile:                adfs (from [tokens] profile)\n" in out
    assert inst.sts("rp", "update", ADDRESS, "--profile", "strict") == 0
    assert "AES-256-CBC" not in capsys.readouterr().err
    assert "cipher:                 aes256-gcm (from profile strict)\n" in _show(inst, capsys)


def test_profile_cbc_warning_on_update(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    assert "AES-256-CBC" not in capsys.readouterr().err
    assert inst.sts("rp", "update", ADDRESS, "--profile", "adfs") == 0
    assert PROFILE_CBC_WARNING in capsys.readouterr().err
    assert inst.sts("rp", "update", ADDRESS, "--lifetime", "60") == 0  # nothing about encryption changed
    assert "AES-256-CBC" not in capsys.readouterr().err
    assert inst.sts("rp", "update", ADDRESS, "--no-encrypt") == 0
    assert inst.sts("rp", "update", ADDRESS, "--profile", "adfs") == 0
    assert "AES-256-CBC" not in capsys.readouterr().err  # not encrypted: no cipher to warn about


def test_update_returns_to_the_profile(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--profile", "wso2", "--encryption", "aes128-gcm,rsa-oaep", "--token-type", "saml20", "--nameid", "email"]
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), *args) == 0
    assert inst.sts("rp", "update", ADDRESS, "--encryption", "aes256-gcm") == 0
    rp = inst.rp(ADDRESS)
    assert (rp.cipher, rp.key_transport) == ("aes256-gcm", "rsa-oaep")  # CIPHER alone keeps the key transport
    reset = ["--encryption", "", "--token-type", "", "--nameid", "", "--profile", ""]
    assert inst.sts("rp", "update", ADDRESS, *reset) == 0
    rp = inst.rp(ADDRESS)
    assert (rp.profile, rp.token_type, rp.cipher, rp.key_transport, rp.nameid) == (None, None, None, None, "")
    out = _show(inst, capsys)
    assert "token type:             saml20 (from profile strict)\n" in out
    assert "profile:                strict (from [tokens] profile)\n" in out
    assert inst.sts("rp", "update", ADDRESS, "--match", "") == 1
    assert "--match must be one of" in capsys.readouterr().err


def test_encryption_cipher_only_leaves_key_transport_to_the_profile(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]
) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), "--encryption", "aes128-gcm") == 0
    assert inst.rp(ADDRESS).key_transport is None
    assert inst.sts("rp", "update", ADDRESS, "--encryption", "aes256-gcm", "--profile", "cxf") == 0
    rp = inst.rp(ADDRESS)
    assert (rp.cipher, rp.key_transport) == ("aes256-gcm", None)
    assert "key transport:          rsa-oaep (from profile cxf)\n" in _show(inst, capsys)


# --- claim maps ---------------------------------------------------------------------------------------------------


def test_claim_maps_round_trip(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    maps = ["--claim-map", f"{EMAIL}={RP_MAIL}", "--claim-map", f" {GIVEN} = {RP_GIVEN} "]
    maps += ["--claim-map", f"{EMAIL}={RP_MAIL}"]
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), "--claim", EMAIL, "--claim", GIVEN, *maps) == 0
    assert "warning" not in capsys.readouterr().err
    rp = inst.rp(ADDRESS)
    assert rp.claim_mapping == ((EMAIL, RP_MAIL), (GIVEN, RP_GIVEN))  # repeats dropped, order kept
    out = _show(inst, capsys)
    assert "claim mappings:         2\n" in out
    assert f"  claim map:            {EMAIL} -> {RP_MAIL}\n  claim map:            {GIVEN} -> {RP_GIVEN}\n" in out
    # update: --claim-map replaces the list, other settings stay
    assert inst.sts("rp", "update", ADDRESS, "--claim-map", f"{GIVEN}=urn:rp:first-name") == 0
    rp = inst.rp(ADDRESS)
    assert (rp.claim_mapping, rp.claims) == (((GIVEN, "urn:rp:first-name"),), (EMAIL, GIVEN))
    assert inst.sts("rp", "update", ADDRESS, "--lifetime", "60") == 0
    assert inst.rp(ADDRESS).claim_mapping == ((GIVEN, "urn:rp:first-name"),)
    capsys.readouterr()
    assert inst.sts("rp", "update", ADDRESS, "--claim-map", f"{EMAIL}={RP_MAIL}", "--clear-claim-maps") == 1
    assert "give either --claim-map or --clear-claim-maps, not both" in capsys.readouterr().err
    assert inst.sts("rp", "update", ADDRESS, "--clear-claim-maps") == 0
    assert inst.rp(ADDRESS).claim_mapping == ()
    assert "claim mappings:         -\n" in _show(inst, capsys)


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        ([EMAIL], "--claim-map expects LOCAL=REMOTE"),
        ([f"{EMAIL}="], "--claim-map expects LOCAL=REMOTE"),
        ([f"={RP_MAIL}"], "--claim-map expects LOCAL=REMOTE"),
        ([f"emailaddress={RP_MAIL}"], "--claim-map expects LOCAL=REMOTE"),
        ([f"{EMAIL}=rp mail"], "--claim-map expects LOCAL=REMOTE"),
        ([f"{EMAIL}=mail"], "--claim-map expects LOCAL=REMOTE"),
        ([f"{EMAIL}={RP_MAIL}", f"{EMAIL}=urn:rp:other"], f"{EMAIL} is mapped twice"),
        ([f"{EMAIL}={RP_MAIL}", f"{GIVEN}={RP_MAIL}"], f"more than one local claim maps to {RP_MAIL}"),
    ],
)
def test_invalid_claim_map_refused(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str], maps: list[str], message: str
) -> None:
    args = [arg for item in maps for arg in ("--claim-map", item)]
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), *args) == 1
    assert message in capsys.readouterr().err
    assert inst.rps() == []
    assert inst.files() == []
    assert inst.sts("rp", "add", ADDRESS, "--no-encrypt", "--claim-map", f"{EMAIL}={RP_MAIL}") == 0
    assert inst.sts("rp", "update", ADDRESS, *args) == 1
    assert message in capsys.readouterr().err
    assert inst.rp(ADDRESS).claim_mapping == ((EMAIL, RP_MAIL),)


def test_claim_map_for_a_claim_not_granted_warns(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--claim", EMAIL, "--claim-map", f"{GIVEN}={RP_GIVEN}"]
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good), *args) == 0
    assert f"claim map for {GIVEN}: not one of the relying party's claims" in capsys.readouterr().err
    assert inst.rp(ADDRESS).claim_mapping == ((GIVEN, RP_GIVEN),)
    identity_email = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
    assert inst.sts("rp", "update", ADDRESS, "--claim-map", f"{identity_email}={RP_MAIL}") == 0
    assert "claim map for" not in capsys.readouterr().err  # the dialect URI of a granted local claim


def test_parse_claim_maps() -> None:
    assert parse_claim_maps([]) == ()
    assert parse_claim_maps([f"{EMAIL}={RP_MAIL}", f"{GIVEN}=urn:x=y"]) == ((EMAIL, RP_MAIL), (GIVEN, "urn:x=y"))
    with pytest.raises(CommandError):
        parse_claim_maps([f"{EMAIL}"])


# --- remove ------------------------------------------------------------------------------------------------------


def test_remove_deletes_certificate(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    assert inst.sts("rp", "add", "https://two.example.com/", "--cert", str(certs.other)) == 0
    name = inst.rp(ADDRESS).cert_file
    capsys.readouterr()
    assert inst.sts("rp", "remove", "https://RP.example.com:443/app") == 0
    out = capsys.readouterr().out
    assert f"removed relying party {ADDRESS}" in out
    assert "deleted certificate" in out
    assert not (inst.truststore / name).exists()
    assert [rp.address for rp in inst.rps()] == ["https://two.example.com/"]
    assert inst.files() == [inst.rp("https://two.example.com/").cert_file]
    assert inst.sts("rp", "remove", ADDRESS) == 1


def test_remove_keeps_shared_certificate(inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    name = inst.rp(ADDRESS).cert_file
    db = Database(inst.base / "sts.db")
    try:
        registry = RelyingPartyRegistry(SqliteRelyingPartyStore(db))
        registry.add(RelyingParty(address="https://shared.example.com/", cert_file=name))
    finally:
        db.close()
    capsys.readouterr()
    assert inst.sts("rp", "remove", ADDRESS) == 0
    assert "deleted certificate" not in capsys.readouterr().out
    assert (inst.truststore / name).is_file()
    assert inst.sts("rp", "remove", "https://shared.example.com/") == 0
    assert inst.files() == []


def test_remove_no_certificate(inst: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--no-encrypt") == 0
    assert inst.sts("rp", "remove", ADDRESS) == 0
    assert inst.rps() == []


# --- misc --------------------------------------------------------------------------------------------------------


def test_slug() -> None:
    long = "https://very-long-host-name.example.com/" + "segment/" * 20
    stem = slug(long)
    readable, digest = stem.rsplit("-", 1)
    assert len(readable) <= 60
    assert not readable.endswith("-")
    assert digest == hashlib.sha256(long.encode()).hexdigest()[:8]
    assert slug(long + "x") != stem
    assert re.fullmatch(r"[a-z0-9-]+", slug("urn:Ex@mple:RP/ünïcode"))
    assert slug("https://a/")[: -9] == "https-a"


@pytest.mark.parametrize(
    "command", [["rp"], ["rp", "add"], ["rp", "list"], ["rp", "show"], ["rp", "update"], ["rp", "remove"]]
)
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: sts " + " ".join(command) in capsys.readouterr().out


# --- NameID from any claim, with a Format (Office 365 / Azure AD: the immutable ID, persistent) -------------------

IMMUTABLE_ID = "http://wso2.org/claims/immutableid"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def test_nameid_from_a_claim_with_a_format(inst: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--no-encrypt", "--nameid", IMMUTABLE_ID, "--nameid-format", PERSISTENT]
    assert inst.sts("rp", "add", ADDRESS, *args) == 0
    rp = inst.rp(ADDRESS)
    assert (rp.nameid, rp.nameid_format) == (IMMUTABLE_ID, PERSISTENT)
    out = _show(inst, capsys)
    assert f"nameid:                 {IMMUTABLE_ID} (set)\n" in out
    assert f"nameid format:          {PERSISTENT} (set)\n" in out
    assert inst.sts("rp", "update", ADDRESS, "--nameid", "email") == 0  # the Format is kept
    assert (inst.rp(ADDRESS).nameid, inst.rp(ADDRESS).nameid_format) == ("email", PERSISTENT)
    assert inst.sts("rp", "update", ADDRESS, "--nameid-format", "") == 0  # back to the source's default
    assert inst.rp(ADDRESS).nameid_format == ""
    out = _show(inst, capsys)
    assert "nameid format:          urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress (default)\n" in out


# --- transformation (Validate with a token type) -----------------------------------------------------------------


def test_transformation_policy_update_and_show(inst: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--no-encrypt") == 0
    capsys.readouterr()
    assert inst.sts("rp", "show", ADDRESS) == 0
    assert "transformation:         denied (no sources allowed)" in capsys.readouterr().out
    update = ("--allow-transformation-from", "self", "--allow-transformation-from", "https://idp.example.test")
    assert inst.sts("rp", "update", ADDRESS, *update) == 0
    assert inst.rp(ADDRESS).transform_from == ("self", "issuer:https://idp.example.test")
    assert inst.sts("rp", "update", ADDRESS, "--allow-transformation-from", "SELF") == 0  # no duplicate
    assert inst.rp(ADDRESS).transform_from == ("self", "issuer:https://idp.example.test")
    capsys.readouterr()
    assert inst.sts("rp", "show", ADDRESS) == 0
    out = capsys.readouterr().out
    assert "transformation:         from self, issuer:https://idp.example.test;" in out
    assert "  transform from:       issuer:https://idp.example.test" in out
    assert inst.sts("rp", "update", ADDRESS, "--clear-transformation") == 0
    assert inst.rp(ADDRESS).transform_from == ()


def test_transformation_from_an_issuer_not_trusted_is_a_warning(
    inst: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    """Validate refuses tokens of an issuer no [[trusted_issuers]] entry names: check-config says so."""
    sources = ("--allow-transformation-from", "self", "--allow-transformation-from", "https://idp.example.test")
    assert inst.sts("rp", "add", ADDRESS, "--no-encrypt") == 0
    assert inst.sts("rp", "update", ADDRESS, *sources) == 0
    capsys.readouterr()
    assert inst.sts("check-config") == 0
    warning = (f"warning: relying party {ADDRESS}: transformation from https://idp.example.test, which no"
               " [[trusted_issuers]] entry names (its tokens are refused)")
    out = capsys.readouterr().out
    assert warning in out
    assert out.count("transformation from") == 1  # self needs no entry
    with (inst.base / "sts.toml").open("a") as config:
        config.write('\n[[trusted_issuers]]\nentity_id = "https://idp.example.test"\n'
                     'certificates = ["keystore/sts-signing.crt.pem"]\n')
    assert inst.sts("check-config") == 0
    assert "transformation from" not in capsys.readouterr().out


def test_transformation_source_refused(inst: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--no-encrypt") == 0
    assert inst.sts("rp", "update", ADDRESS, "--allow-transformation-from", "idp") == 1
    assert "invalid transformation source 'idp'" in capsys.readouterr().err
    assert inst.rp(ADDRESS).transform_from == ()


# --- certificates that may not transport keys (RFC 5280 §4.2.1.3, §4.2.1.9) -----------------------------------------


@pytest.mark.parametrize("which", ["signing_only", "ca"])
def test_update_refuses_a_certificate_that_may_not_transport_keys(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    before = inst.files()
    capsys.readouterr()
    assert inst.sts("rp", "update", ADDRESS, "--cert", str(getattr(certs, which))) == 1
    assert capsys.readouterr().err.startswith("sts: error: refusing the certificate: ")
    assert inst.files() == before
    assert inst.rp(ADDRESS).cert_file == before[0]


@pytest.mark.parametrize(
    ("which", "message"),
    [("signing_only", "its KeyUsage does not allow keyEncipherment"), ("ca", "a CA certificate")],
)
def test_an_existing_registration_with_such_a_certificate_is_a_problem(
    inst: Instance, certs: Certs, capsys: pytest.CaptureFixture[str], which: str, message: str
) -> None:
    """Registered before add refused them: check-config fails and rp show says why."""
    assert inst.sts("rp", "add", ADDRESS, "--cert", str(certs.good)) == 0
    [name] = inst.files()
    (inst.truststore / name).write_bytes(getattr(certs, which).read_bytes())
    capsys.readouterr()
    assert inst.sts("check-config") == 1
    out = capsys.readouterr().out
    assert f"problem: relying party {ADDRESS}: {message}" in out
    assert f"; replace it: `sts rp update {ADDRESS} --cert FILE`" in out  # what the operator does about it
    assert inst.sts("rp", "show", ADDRESS) == 0
    shown = capsys.readouterr().out
    assert f"problem: certificate: {message}" in shown
    assert f"  replace it: sts rp update {ADDRESS} --cert FILE" in shown


# --- an address that names more than one registration ----------------------------------------------------------------


def test_show_update_remove_refuse_an_ambiguous_address(inst: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    for address in ("https://case.example/app/", "https://case.example/APP/"):
        assert inst.sts("rp", "add", address, "--no-encrypt") == 0
    before = inst.rps()
    capsys.readouterr()
    for action in (("show",), ("update", "--lifetime", "60"), ("remove",)):
        assert inst.sts("rp", action[0], "https://case.example/App/", *action[1:]) == 1
        assert capsys.readouterr().err == (
            "sts: error: https://case.example/App/ is ambiguous: it names https://case.example/APP/,"
            " https://case.example/app/ (give the address exactly)\n"
        )
    assert inst.rps() == before
