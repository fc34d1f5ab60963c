"""``sts key`` after ``[issuer] promote_at`` has passed (review): the files follow what signs, nothing is destroyed."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from sts.cli import main
from sts.config import load_settings
from sts.crypto.keystore import fingerprint, load_certificate


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)


def test_rotate_replace_after_promote_at_keeps_the_signing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    instance = tmp_path / "instance"
    assert main(["init", str(instance), "--key-size", "2048"]) == 0
    key = ["--config", str(instance / "sts.toml"), "key"]
    issuer = load_settings(instance / "sts.toml", env={}).issuer
    k1 = fingerprint(load_certificate(issuer.signing_cert))
    assert main([*key, "rotate"]) == 0
    k2_cert = load_certificate(issuer.next_signing_cert)
    k2 = fingerprint(k2_cert)
    # promote_at at K2's notBefore: passed already, and K2 was made no later than it, so K2 signs everywhere.
    monkeypatch.setenv("STS_ISSUER_PROMOTE_AT", k2_cert.not_valid_before_utc.isoformat())
    capsys.readouterr()
    assert main([*key, "status"]) == 0
    status = capsys.readouterr().out
    assert status.startswith(f"current   {k2}") and "promote_at promoted it" in status

    while dt.datetime.now(dt.UTC).replace(microsecond=0) <= k2_cert.not_valid_before_utc:
        time.sleep(0.05)  # rotate refuses within promote_at's second (certificate dates have whole seconds)
    assert main([*key, "rotate", "--replace"]) == 0  # the advice the old refusal gave
    out = capsys.readouterr().out
    assert "promote_at made the next key the signing key" in out
    assert fingerprint(load_certificate(issuer.signing_cert)) == k2
    k3 = fingerprint(load_certificate(issuer.next_signing_cert))
    assert main([*key, "status"]) == 0
    roles = [line.split()[:2] for line in capsys.readouterr().out.splitlines()]
    assert roles == [["current", k2], ["next", k3], ["previous", k1]]


def _encrypt_signing_key(instance: Path, passphrase: bytes) -> None:
    from cryptography.hazmat.primitives import serialization

    from sts.crypto.keygen import load_private_key

    path = instance / "keystore" / "sts-signing.key.pem"
    key = load_private_key(path, None)
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    ))


def test_rotate_without_the_passphrase_of_an_encrypted_signing_key_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server has $STS_SIGNING_KEY_PASSPHRASE, the operator's shell not: rotate wrote the next key in clear,
    which the server (given a passphrase) cannot load, so it was never published, and once promoted the signing
    key no longer loaded at the next start. Now rotate refuses and writes nothing."""
    from sts.crypto.keyring import load_material

    instance = tmp_path / "instance"
    assert main(["init", str(instance), "--key-size", "2048"]) == 0
    _encrypt_signing_key(instance, b"s3cret-pass")
    key = ["--config", str(instance / "sts.toml"), "key"]
    issuer = load_settings(instance / "sts.toml", env={}).issuer
    capsys.readouterr()

    assert main([*key, "rotate"]) == 1
    err = capsys.readouterr().err
    assert "passphrase" in err and "s3cret" not in err
    assert not issuer.next_signing_key.exists() and not issuer.next_signing_cert.exists()

    monkeypatch.setenv("STS_SIGNING_KEY_PASSPHRASE", "s3cret-pass")
    assert main([*key, "rotate"]) == 0  # with it: the next key is encrypted like the current one
    material = load_material(load_settings(instance / "sts.toml"))  # what a worker loads
    assert material.next_cert is not None


@pytest.mark.parametrize("broken", ["signing_cert", "passphrase_file"])
def test_rotate_with_unreadable_key_files_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], broken: str
) -> None:
    instance = tmp_path / "instance"
    assert main(["init", str(instance), "--key-size", "2048"]) == 0
    if broken == "signing_cert":
        (instance / "keystore" / "sts-signing.crt.pem").unlink()
    else:
        monkeypatch.setenv("STS_ISSUER_SIGNING_KEY_PASSPHRASE_FILE", str(tmp_path / "missing-passphrase"))
    capsys.readouterr()
    assert main(["--config", str(instance / "sts.toml"), "key", "rotate"]) == 1
    assert "nothing changed" in capsys.readouterr().err
    assert not (instance / "keystore" / "sts-signing-next.key.pem").exists()
