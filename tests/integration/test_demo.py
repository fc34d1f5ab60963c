"""The demo of ``make run`` end to end: ``sts request`` against the demo instance served by gunicorn (2 workers,
TLS), then ``sts token inspect`` with the demo RP's key; the token is also checked independently."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from tests import token_checks as checks
from tests.support import Instance, Server

pytestmark = pytest.mark.integration

STS = Path(sys.executable).with_name("sts")
DEMO_RP = "https://localhost:8443/demo-rp/"
SAML2 = checks.SAML2
XENC = checks.XENC


def _sts(instance: Instance, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STS), "--config", str(instance.config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _c14n(xml: bytes) -> bytes:
    return etree.tostring(etree.fromstring(xml), method="c14n", exclusive=True)


def _request(instance: Instance, server: Server, out: Path) -> subprocess.CompletedProcess[str]:
    return _sts(
        instance,
        "request",
        server.url,
        "--username",
        "admin",
        "--password-stdin",
        "--applies-to",
        DEMO_RP,
        "--cafile",
        str(instance.ca_file),
        "--out",
        str(out),
        stdin=instance.demo_password + "\n",
    )


def test_request_then_inspect(instance: Instance, server: Server, tmp_path: Path) -> None:
    token_file = tmp_path / "token.xml"
    requested = _request(instance, server, token_file)
    assert requested.returncode == 0, requested.stderr
    assert instance.demo_password not in requested.stdout + requested.stderr

    # The saved token is the EncryptedAssertion for the demo RP; check it without the STS's code.
    token = etree.fromstring(token_file.read_bytes())
    assert token.tag == f"{{{SAML2}}}EncryptedAssertion"
    encrypted = token.find(f"{{{XENC}}}EncryptedData")
    assert encrypted is not None
    plaintext = checks.decrypt_with_python_xmlsec(encrypted, instance.rp_key)
    by_cli = checks.decrypt_with_xmlsec1(etree.tostring(encrypted), instance.rp_key)
    assert _c14n(by_cli) == _c14n(plaintext)
    signed = checks.verify_with_both(plaintext, instance.signing_cert, saml11=False)
    assert [n.text for n in signed.iter(f"{{{SAML2}}}NameID")] == ["admin"]

    inspected = _sts(instance, "token", "inspect", str(token_file), "--rp-key", str(instance.rp_key))
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    output = inspected.stdout
    assert "signature: valid" in output
    assert re.search(r"(?m)\badmin\s*$", output), output  # the subject, not only inside the email address
    assert re.search(rf"(?m)\b{re.escape(DEMO_RP)}\s*$", output), output  # the audience
    assert "admin@example.com" in output


def test_inspect_rejects_a_tampered_token(instance: Instance, server: Server, tmp_path: Path) -> None:
    token_file = tmp_path / "token.xml"
    requested = _request(instance, server, token_file)
    assert requested.returncode == 0, requested.stderr
    token = etree.fromstring(token_file.read_bytes())
    cipher = token.find(f"{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    assert cipher is not None and cipher.text
    cipher.text = ("B" if cipher.text[0] != "B" else "C") + cipher.text[1:]  # one changed ciphertext character
    token_file.write_bytes(etree.tostring(token))
    inspected = _sts(instance, "token", "inspect", str(token_file), "--rp-key", str(instance.rp_key))
    assert inspected.returncode != 0
    assert "admin@example.com" not in inspected.stdout
