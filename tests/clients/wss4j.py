"""Apache WSS4J (Debian ``libwss4j-java``) as an independent WS-Security client for the STS's tests.

The STS's own client (``sts request --cert``) proves nothing about interoperability: requests signed and encrypted
by a real, independent implementation do. ``Wss4jClient.java`` (next to this file) is compiled once with ``javac``
(cached by source hash under the temp directory) and run once per :meth:`Wss4j.generate` call, for many messages at
a time: a JVM start costs about a second, so a test session builds every vector it needs in one call.

Message shapes (WSO2 scenario numbers): :func:`sig_only` (2), :func:`sig_encr` (5), :func:`sgn_encr_username` (8),
:func:`certificate_mixed` (AD FS ``certificatemixed``); :func:`standard_set` lists one of each with the variants.
:meth:`Wss4j.verify_responses` lets WSS4J's ``WSSecurityEngine`` check the STS's signed/encrypted responses.

Each message carries a fresh Timestamp (``ttl``, 300 s by default) and the STS refuses replays: build the messages
in the fixture of the module that sends them, and send each once. The ``wss4j`` fixture (registered from
tests/conftest.py) fails, never skips, when the JDK or WSS4J is missing.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from lxml import etree

from tests.support import S11, WSA, WSSE, WST, WSU

SOURCE = Path(__file__).with_name("wss4j") / "Wss4jClient.java"
JARS = ("wss4j", "xmlsec", "commons-logging", "slf4j-api", "slf4j-nop")  # Debian's /usr/share/java names
JAVA_DIR = Path("/usr/share/java")
INSTALL_HINT = "run `make install-test` (Debian packages default-jdk-headless and libwss4j-java)"
JVM_TIMEOUT = 120  # seconds; a run of ~15 messages takes about 1 s on an idle core

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"

TIMESTAMP = f"{{{WSU}}}Timestamp"
USERNAME_TOKEN = f"{{{WSSE}}}UsernameToken"
WSA_TO = f"{{{WSA}}}To"
KEY_IDS = ("bst", "issuer_serial", "ski", "thumbprint", "x509_key_identifier")


class Wss4jUnavailable(RuntimeError):
    """The JDK or Debian's WSS4J jars are missing."""


@dataclass(frozen=True)
class ClientKey:
    """The client's X.509 identity: an unencrypted PKCS#8 PEM key and its PEM certificate."""

    key_pem: bytes
    cert_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes, password: bytes | None = None) -> ClientKey:
        """From any PEM private key (PKCS#1, PKCS#8, encrypted with ``password``) and a PEM certificate."""
        key = serialization.load_pem_private_key(key_pem, password)
        pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        return cls(pkcs8, cert_pem)

    @classmethod
    def from_pkcs12(cls, data: bytes, password: bytes | None) -> ClientKey:
        """From a PKCS#12 file (e.g. ``keytool -genkeypair -storetype PKCS12`` or ``openssl pkcs12 -export``)."""
        key, cert, _ = pkcs12.load_key_and_certificates(data, password)
        assert key is not None and cert is not None, "the PKCS#12 file holds no key entry"
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return cls(pem, cert.public_bytes(serialization.Encoding.PEM))

    @classmethod
    def generate(cls, common_name: str, *, days: int = 2, printable: bool = False) -> ClientKey:
        """A self-signed RSA-2048 client certificate (digitalSignature + keyEncipherment, with an SKI);
        ``printable``: its names in PrintableString, as Java's keytool writes them (else UTF8String)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kind = {"_type": _ASN1Type.PrintableString} if printable else {}
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sts tests", **kind),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name, **kind)])
        now = datetime.datetime.now(datetime.UTC)
        usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return cls(pem, cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class Message:
    """What WSS4J does to one unsigned envelope; see the scenario functions below rather than building this."""

    name: str
    envelope: bytes
    kind: str = "asymmetric"  # or "symmetric" (scenario 8)
    key_id: str = "bst"  # signature key reference (asymmetric): one of KEY_IDS
    sign: tuple[str, ...] = ()  # Clark names of the signed parts
    signature: str = RSA_SHA256
    digest: str = SHA256
    cipher: str = ""  # data encryption algorithm; "" = no encryption
    encrypt: tuple[str, ...] = ()  # Clark names + ":Content" / ":Element"
    encrypt_key_id: str = "thumbprint"  # how the EncryptedKey names the STS certificate
    username: str = ""
    password: str = field(default="", repr=False)
    ttl: int = 300  # Timestamp lifetime in seconds (WSS4J's default)


@dataclass(frozen=True)
class Generated:
    """A secured request: its bytes, its ``ds:SignatureValue`` and the symmetric key K (scenarios 5 and 8)."""

    xml: bytes
    signature_value: bytes
    key: bytes | None


@dataclass(frozen=True)
class Verified:
    """WSSecurityEngine's verdict on a response: ``results`` has one line per processed element, e.g.
    ``signature method=…#rsa-sha256 {ns}Body#_body=…#rsa-sha256,…#sha256``; ``document`` is the processed
    (decrypted) envelope."""

    ok: bool
    error: str
    results: tuple[str, ...]
    document: bytes


def body_of(envelope: bytes) -> str:
    """The Clark name of the envelope's Body (SOAP 1.1 or 1.2)."""
    return f"{{{etree.QName(etree.fromstring(envelope)).namespace}}}Body"


def sig_only(name: str, envelope: bytes, *, key_id: str = "bst", **options: Any) -> Message:
    """Scenario 2 (SigOnly): Timestamp, BST (or another key reference) and an RSA-SHA256 signature over Timestamp
    and Body."""
    return Message(name, envelope, key_id=key_id, sign=(TIMESTAMP, body_of(envelope)), **options)


def sig_encr(name: str, envelope: bytes, *, cipher: str = AES256_GCM, key_id: str = "bst",
             **options: Any) -> Message:
    """Scenario 5 (SigEncr): as 2, then the Body content encrypted under a fresh key wrapped with RSA-OAEP for the
    STS certificate (EncryptedKey names it by thumbprint)."""
    body = body_of(envelope)
    return Message(name, envelope, key_id=key_id, sign=(TIMESTAMP, body), cipher=cipher,
                   encrypt=(f"{body}:Content",), **options)


def sgn_encr_username(name: str, envelope: bytes, username: str, password: str, *, cipher: str = AES256_GCM,
                      encrypt_ut: bool = True, **options: Any) -> Message:
    """Scenario 8 (SgnEncrUsername): UsernameToken, EncryptedKey for the STS certificate, HMAC-SHA256 keyed with the
    ephemeral key over Timestamp, Body and UT, then Body content (and the UT unless ``encrypt_ut=False``, WSO2's
    plain-UT shape) encrypted with that key."""
    body = body_of(envelope)
    encrypt = (f"{body}:Content", f"{USERNAME_TOKEN}:Element") if encrypt_ut else (f"{body}:Content",)
    options.setdefault("signature", HMAC_SHA256)
    return Message(name, envelope, kind="symmetric", sign=(TIMESTAMP, body, USERNAME_TOKEN), cipher=cipher,
                   encrypt=encrypt, username=username, password=password, **options)


def certificate_mixed(name: str, envelope: bytes, *, sign_body: bool = True, **options: Any) -> Message:
    """AD FS ``certificatemixed``: as 2 plus a signed ``wsa:To`` (the envelope must carry one, see
    :func:`envelope`); ``sign_body=False`` gives WCF's shape (Timestamp and ``wsa:To`` only)."""
    parts = (TIMESTAMP, body_of(envelope), WSA_TO) if sign_body else (TIMESTAMP, WSA_TO)
    return Message(name, envelope, sign=parts, **options)


def standard_set(envelope: bytes, *, username: str, password: str, to: str | None = None) -> list[Message]:
    """One message per scenario and variant: 2 with each key reference, 5 with GCM and CBC, 8 with an encrypted and
    a plain UT (and CBC), certificatemixed (when ``to`` is given, the envelope gets ``wsa:To``)."""
    messages = [sig_only(f"s2-{key_id.replace('_', '-')}", envelope, key_id=key_id) for key_id in KEY_IDS[:4]]
    messages += [
        sig_encr("s5-gcm", envelope),
        sig_encr("s5-cbc", envelope, cipher=AES256_CBC),
        sgn_encr_username("s8-gcm", envelope, username, password),
        sgn_encr_username("s8-cbc", envelope, username, password, cipher=AES256_CBC),
        sgn_encr_username("s8-plain-ut", envelope, username, password, encrypt_ut=False),
    ]
    if to is not None:
        addressed = with_addressing(envelope, to)
        messages.append(certificate_mixed("certificatemixed", addressed))
        messages.append(certificate_mixed("certificatemixed-wcf", addressed, sign_body=False))
    return messages


def envelope(rst: str, *, soap12: bool = False) -> bytes:
    """An unsigned SOAP envelope (empty Header) around an RST, e.g. ``tests.support.rst_body(...)``."""
    ns = "http://www.w3.org/2003/05/soap-envelope" if soap12 else S11
    return f'<s:Envelope xmlns:s="{ns}"><s:Header/><s:Body>{rst}</s:Body></s:Envelope>'.encode()


def with_addressing(unsigned: bytes, to: str, action: str = f"{WST}/RST/Issue") -> bytes:
    """The envelope with WS-Addressing 1.0 headers as WCF sends them: Action, MessageID, ReplyTo, To."""
    root = etree.fromstring(unsigned)
    soap = etree.QName(root).namespace
    header = root.find(f"{{{soap}}}Header")
    assert header is not None
    for local, text in (("Action", action), ("MessageID", f"urn:uuid:{uuid.uuid4()}"), ("ReplyTo", None), ("To", to)):
        element = etree.SubElement(header, f"{{{WSA}}}{local}", nsmap={"wsa": WSA})
        if text is None:
            etree.SubElement(element, f"{{{WSA}}}Address").text = f"{WSA}/anonymous"
        else:
            element.text = text
    header[-1].set(f"{{{soap}}}mustUnderstand", "1")
    return etree.tostring(root)


class Wss4j:
    """The compiled client; each call runs one JVM for all the messages (or responses) given."""

    def __init__(self, classes: Path, workdir: Path) -> None:
        self.classes = classes
        self.workdir = workdir

    def generate(self, messages: Sequence[Message], client: ClientKey, sts_cert: bytes) -> dict[str, Generated]:
        """Secure each message (names must be unique); ``sts_cert`` is PEM or DER."""
        assert len({m.name for m in messages}) == len(messages), "message names must be unique"
        specs = {m.name: _options(m) for m in messages}
        out = self._run("generate", specs, {m.name: m.envelope for m in messages}, client, sts_cert)
        return {
            m.name: Generated(
                (out / f"{m.name}.xml").read_bytes(),
                _b64((out / f"{m.name}.signature_value").read_text()),
                _b64((out / f"{m.name}.key").read_text()) if (out / f"{m.name}.key").exists() else None,
            )
            for m in messages
        }

    def messages(self, messages: Sequence[Message], client: ClientKey, sts_cert: bytes) -> dict[str, bytes]:
        """As :meth:`generate`, only the bytes of each message."""
        return {name: g.xml for name, g in self.generate(messages, client, sts_cert).items()}

    def verify_responses(self, responses: Mapping[str, bytes], client: ClientKey, sts_cert: bytes,
                         keys: Mapping[str, bytes] | None = None) -> dict[str, Verified]:
        """WSSecurityEngine processes each response: signatures trusted only with ``sts_cert``, decryption with the
        client's key, or with the request's key K from ``keys[name]`` (scenario 8 responses name K by
        EncryptedKeySHA1)."""
        specs = {name: {"key": _b64s((keys or {}).get(name, b""))} for name in responses}
        out = self._run("verify", specs, dict(responses), client, sts_cert)
        return {name: _verified(out, name) for name in responses}

    def verify_response(self, response: bytes, sts_cert: bytes, client: ClientKey,
                        key: bytes | None = None) -> Verified:
        """:meth:`verify_responses` for one response."""
        return self.verify_responses({"response": response}, client, sts_cert,
                                     {"response": key} if key else None)["response"]

    def _run(self, mode: str, specs: Mapping[str, Mapping[str, str]], documents: Mapping[str, bytes],
             client: ClientKey, sts_cert: bytes) -> Path:
        run = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=self.workdir))
        files = {"client.key": client.key_pem, "client.cert": client.cert_pem, "sts.cert": sts_cert}
        props = {key: str(_write(run / key, data)) for key, data in files.items()}
        props["names"] = " ".join(specs)
        for name, options in specs.items():
            props[f"{name}.file"] = str(_write(run / f"in-{name}.xml", documents[name]))
            props.update({f"{name}.{key}": value for key, value in options.items()})
        _write(run / "spec.properties", "".join(f"{_escape(k)}={_escape(v)}\n" for k, v in props.items()).encode())
        out = run / "out"
        out.mkdir()
        command = [java_binary(), "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", classpath(self.classes),
                   "Wss4jClient", mode, str(run / "spec.properties"), str(out)]
        result = subprocess.run(command, capture_output=True, timeout=JVM_TIMEOUT, check=False)
        assert result.returncode == 0, f"WSS4J {mode} failed: {result.stderr.decode(errors='replace')}"
        return out


def _verified(out: Path, name: str) -> Verified:
    def text(field: str) -> str:
        path = out / f"{name}.{field}"
        return path.read_text() if path.exists() else ""

    status = text("status")
    return Verified(status == "ok", text("error") or ("" if status == "ok" else status),
                    tuple(line for line in text("results").split("\n") if line), (out / f"{name}.xml").read_bytes())


def _options(message: Message) -> dict[str, str]:
    assert message.key_id in KEY_IDS and message.encrypt_key_id in KEY_IDS
    return {
        "kind": message.kind, "key_id": message.key_id, "sign": " ".join(message.sign),
        "signature": message.signature, "digest": message.digest, "cipher": message.cipher,
        "encrypt": " ".join(message.encrypt), "encrypt_key_id": message.encrypt_key_id,
        "username": message.username, "password": message.password, "ttl": str(message.ttl),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _escape(text: str) -> str:
    """java.util.Properties escaping (ISO 8859-1 file: everything else as \\uXXXX)."""
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")
    return "".join(c if 0x20 <= ord(c) < 0x7F else f"\\u{ord(c):04x}" for c in escaped)


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def _b64s(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


# --- compiling and finding the JDK --------------------------------------------------------------------------------


def java_binary(name: str = "java") -> str:
    """``java`` or ``javac`` from PATH (the Debian alternatives), else :class:`Wss4jUnavailable`."""
    found = shutil.which(name)
    if found is None:
        raise Wss4jUnavailable(f"`{name}` not found: {INSTALL_HINT}")
    return found


def classpath(classes: Path | None = None) -> str:
    """Debian's jars (``libwss4j-java`` and its dependencies), then the compiled client."""
    jars = [JAVA_DIR / f"{jar}.jar" for jar in JARS]
    missing = [str(jar) for jar in jars if not jar.exists()]
    if missing:
        raise Wss4jUnavailable(f"missing {', '.join(missing)}: {INSTALL_HINT}")
    return os.pathsep.join([*map(str, jars), *([str(classes)] if classes else [])])


def compile_client(cache_root: Path | None = None) -> Path:
    """Compile Wss4jClient.java once per source (and classpath) hash; later sessions reuse the classes."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + classpath().encode()).hexdigest()[:16]
    root = cache_root or Path(tempfile.gettempdir()) / f"sts-tests-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    assert root.stat().st_uid == os.getuid(), f"{root} belongs to another user"  # classes we load must be ours
    target = root / f"wss4j-{digest}"
    if (target / "Wss4jClient.class").exists():
        return target
    building = Path(tempfile.mkdtemp(prefix="wss4j-build-", dir=root))
    result = subprocess.run([java_binary("javac"), "-encoding", "UTF-8", "-cp", classpath(), "-d", str(building),
                             str(SOURCE)], capture_output=True, timeout=JVM_TIMEOUT, check=False)
    assert result.returncode == 0, f"javac failed: {result.stderr.decode(errors='replace')}"
    try:
        building.rename(target)  # atomic: a parallel session may have won the race, its classes are identical
    except OSError:
        shutil.rmtree(building)
    return target


@pytest.fixture(scope="session")
def wss4j(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wss4j]:
    """The compiled WSS4J client (fails with the install hint when the JDK or WSS4J is missing)."""
    try:
        classes = compile_client()
    except Wss4jUnavailable as missing:
        pytest.fail(str(missing), pytrace=False)
    yield Wss4j(classes, tmp_path_factory.mktemp("wss4j"))


