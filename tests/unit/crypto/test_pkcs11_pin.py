"""The PKCS#11 user PIN (sts.crypto.pkcs11_key.pin_from): from $STS_PKCS11_PIN or the first line of a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sts.crypto.pkcs11_key import PIN_ENV, Pkcs11Error, pin_from


def test_the_first_line_of_the_file_unless_the_variable_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PIN_ENV, raising=False)
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234 \nsecond line\n")
    assert pin_from(pin_file) == "1234"
    monkeypatch.setenv(PIN_ENV, "5678")
    assert pin_from(pin_file) == "5678"


def test_a_pin_file_that_is_not_utf8_is_refused_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A UnicodeDecodeError (a traceback in gunicorn's master) before."""
    monkeypatch.delenv(PIN_ENV, raising=False)
    pin_file = tmp_path / "pin"
    pin_file.write_bytes(b"\xff12\xe934\n")
    with pytest.raises(Pkcs11Error) as caught:
        pin_from(pin_file)
    assert str(caught.value) == f"issuer.pkcs11_pin_file: {pin_file} is not UTF-8 text"
