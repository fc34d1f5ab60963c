"""PasswordDigest checking fails closed on an incomplete credential (UsernameToken Profile 1.1 §4).

The parser already refuses a digest token without Nonce or Created; :func:`digest_matches` must still answer
``False`` for such a credential built any other way, even when the digest it carries is the right one for the
missing value. The digest itself is recomputed here from the profile's formula
``Base64(SHA-1(nonce + created + password))``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib

import pytest

from sts.wss.username import UsernameCredential, digest_matches

NONCE = b"0123456789abcdef"
CREATED = "2026-01-01T12:00:00Z"
PASSWORD = "s3cret"
DIGEST = base64.b64encode(hashlib.sha1(NONCE + CREATED.encode() + PASSWORD.encode()).digest()).decode()  # noqa: S324


def _credential(**changes: object) -> UsernameCredential:
    complete = UsernameCredential(
        username="alice",
        password=DIGEST,
        password_type="digest",
        nonce=NONCE,
        nonce_text=base64.b64encode(NONCE).decode(),
        created_text=CREATED,
        created=dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC),
    )
    return dataclasses.replace(complete, **changes)  # type: ignore[arg-type]


def test_the_complete_credential_matches() -> None:
    assert DIGEST == "ML6Ts/2teq/W5EXcu4lKivgslgM="  # the UT Profile formula, as in test_username's vector
    assert digest_matches(_credential(), PASSWORD) is True


@pytest.mark.parametrize(
    "changes",
    [
        {"nonce": None, "nonce_text": None},
        {"created_text": None, "created": None},
        {"password": None},
        {"password_type": "text", "password": PASSWORD},
    ],
    ids=["no_nonce", "no_created", "no_password", "text_password"],
)
def test_incomplete_or_other_credentials_never_match(changes: dict[str, object]) -> None:
    assert digest_matches(_credential(**changes), PASSWORD) is False
