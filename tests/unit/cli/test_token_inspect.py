"""``sts token inspect`` (sts.cli.token_inspect): output and exit codes. Decryption and verification themselves
are tested on the library in tests/unit/client/test_inspection.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sts import ns
from sts.cli import main as sts_main
from sts.crypto.keystore import fingerprint
from sts.crypto.signer import AssertionSigner
from tests.inspect_samples import (
    EMAIL,
    GIVEN,
    RP,
    Keys,
    encrypted_saml2,
    key_files,
    saml2_assertion,
    saml11_assertion,
    signed_saml2,
    write,
)


def test_encrypted_saml2(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    files = key_files(tmp_path, keys)
    token = write(tmp_path, "token.xml", encrypted_saml2(keys))
    args = ["token", "inspect", str(token), "--rp-key", str(files.rp_key), "--sts-cert", str(files.sts_cert)]
    assert sts_main(args) == 0
    assert capsys.readouterr().out == (
        f"encrypted: yes (decrypted with {files.rp_key})\n"
        f"signature: valid (pinned STS certificate {fingerprint(keys.sts_cert)})\n"
        "SAML version:       2.0\n"
        "ID:                 _abc123\n"
        "issuer:             https://sts.example.com/\n"
        "issue instant:      2026-01-01T12:00:00Z\n"
        "subject:            alice\n"
        "subject format:     urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified\n"
        "confirmation:       urn:oasis:names:tc:SAML:2.0:cm:bearer\n"
        f"recipient:          {RP}\n"
        "confirmation until: 2026-01-01T12:30:00Z\n"
        f"audience:           {RP}\n"
        "not before:         2026-01-01T12:00:00Z\n"
        "not on or after:    2026-01-01T12:30:00Z\n"
        "validity:           EXPIRED\n"
        "authn context:      urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport\n"
        "authn instant:      2026-01-01T12:00:00Z\n"
        f"attribute:          {EMAIL} = alice@example.com\n"
        f"attribute:          {GIVEN} = Alice\n"
        f"attribute:          {GIVEN} = Ally\n"
    )


def test_values_are_escaped(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    files = key_files(tmp_path, keys)
    assertion = saml2_assertion()
    issuer = assertion.find(f"{{{ns.SAML2}}}Issuer")
    assert issuer is not None
    issuer.text = "evil\u202egnp\u200b"
    token = write(tmp_path, "token.xml", signed_saml2(keys, assertion))
    assert sts_main(["token", "inspect", str(token), "--sts-cert", str(files.sts_cert)]) == 0
    out = capsys.readouterr().out
    assert "issuer:             evil\\u202egnp\\u200b\n" in out and "\u202e" not in out


def test_invalid_signature_exits_1(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    files = key_files(tmp_path, keys)
    token = write(tmp_path, "token.xml", encrypted_saml2(keys))
    args = ["token", "inspect", str(token), "--rp-key", str(files.rp_key), "--sts-cert", str(files.other_cert)]
    assert sts_main(args) == 1
    assert capsys.readouterr().out == (
        f"encrypted: yes (decrypted with {files.rp_key})\n"
        "signature: INVALID (no trusted certificate verifies the signature)\n"
    )


def test_encrypted_without_rp_key(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    files = key_files(tmp_path, keys)
    token = write(tmp_path, "token.xml", encrypted_saml2(keys))
    assert sts_main(["token", "inspect", str(token), "--sts-cert", str(files.sts_cert)]) == 1
    assert capsys.readouterr().err == (
        "sts: error: the token is encrypted: give the relying party's private key with --rp-key KEY\n"
    )


def test_saml11_with_the_instance_certificate(
    tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_files(tmp_path, keys)
    for name in [name for name in os.environ if name.startswith("STS_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "sts.toml"
    config.write_text('[issuer]\nsigning_cert = "sts.crt.pem"\n')
    signed = AssertionSigner(keys.sts_key, keys.sts_cert).sign_saml11(saml11_assertion())
    path = write(tmp_path, "token.xml", signed)
    assert sts_main(["--config", str(config), "token", "inspect", str(path)]) == 0
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    for expected in (
        "encrypted: no",
        f"signature: valid (pinned STS certificate {fingerprint(keys.sts_cert)})",
        "SAML version: 1.1",
        "ID: _s11",
        "subject: bob",
        "confirmation: urn:oasis:names:tc:SAML:1.0:cm:bearer",
        f"audience: {RP}",
        "attribute: http://wso2.org/claims/emailaddress = bob@example.com",
    ):
        assert expected in lines, (expected, lines)


def test_not_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's problem is said before any configuration is looked for."""
    monkeypatch.setenv("STS_CONFIG", str(tmp_path / "no-such.toml"))
    path = tmp_path / "x.xml"
    path.write_bytes(b"<a><b/></a>")
    assert sts_main(["token", "inspect", str(path)]) == 1
    assert capsys.readouterr().err == f"sts: error: {path}: no Assertion, EncryptedAssertion or EncryptedData found\n"
    path.write_bytes(b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>')
    assert sts_main(["token", "inspect", str(path)]) == 1
    assert "not well-formed XML" in capsys.readouterr().err


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(tmp_path: Path, keys: Keys) -> None:
    """`sts token inspect … | head -1`: the output went into a closed pipe, and Python printed a BrokenPipeError
    traceback (and another one as it flushed stdout at exit)."""
    import subprocess
    import sys

    files = key_files(tmp_path, keys)
    token = write(tmp_path, "token.xml", encrypted_saml2(keys))
    argv = [sys.executable, "-m", "sts", "token", "inspect", str(token), "--rp-key", str(files.rp_key),
            "--sts-cert", str(files.sts_cert)]
    read, written = os.pipe()
    with subprocess.Popen(argv, stdout=written, stderr=subprocess.PIPE, text=True) as inspect:
        os.close(written)
        os.close(read)  # the reader is gone before the command writes anything
        _, errors = inspect.communicate(timeout=120)
    assert (inspect.returncode, errors) == (141, "")
