"""Tests for sts.wss.username: UsernameToken shape (rows W04-W15, W22, W26, A08, A09) and PasswordDigest (W13)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from sts import errors, ns
from sts.clock import FrozenClock
from sts.wss.timestamp import FreshnessPolicy
from sts.wss.username import (
    UsernameCredential,
    check_created,
    compute_password_digest,
    digest_matches,
    normalize_username,
    parse_username_token,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
KAT_NONCE = b"0123456789abcdef"
KAT_NONCE_B64 = "MDEyMzQ1Njc4OWFiY2RlZg=="
KAT_CREATED_PLUS = "2026-01-01T12:00:00+00:00"
KAT_CREATED_Z = "2026-01-01T12:00:00Z"
KAT_PLAINTEXT = "s3cret"
KAT_DIGEST_PLUS = "TA3ZljKIkji5+N2ua8MksLQIQgY="
KAT_DIGEST_Z = "ML6Ts/2teq/W5EXcu4lKivgslgM="
NSDECL = f'xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}" xmlns:wsse11="{ns.WSSE11}"'


def _ut(*children: str) -> etree._Element:
    return etree.fromstring(f'<wsse:UsernameToken {NSDECL} wsu:Id="UT-1">{"".join(children)}</wsse:UsernameToken>')


def _username(value: str = "alice") -> str:
    return f"<wsse:Username>{value}</wsse:Username>"


def _password(value: str = "secret", type_uri: str | None = ns.PASSWORD_TEXT, extra: str = "") -> str:
    type_attr = "" if type_uri is None else f' Type="{type_uri}"'
    return f"<wsse:Password{type_attr}{extra}>{value}</wsse:Password>"


def _nonce(value: str = KAT_NONCE_B64, encoding: str | None = ns.BASE64_BINARY) -> str:
    encoding_attr = "" if encoding is None else f' EncodingType="{encoding}"'
    return f"<wsse:Nonce{encoding_attr}>{value}</wsse:Nonce>"


def _created(value: str = KAT_CREATED_PLUS) -> str:
    return f"<wsu:Created>{value}</wsu:Created>"


def _parse(ut: etree._Element, *, bsp_strict: bool = False, min_nonce_bytes: int = 16) -> UsernameCredential:
    return parse_username_token(ut, bsp_strict=bsp_strict, min_nonce_bytes=min_nonce_bytes, max_password_bytes=1024)


def _digest_ut(digest: str = KAT_DIGEST_PLUS, created: str = KAT_CREATED_PLUS) -> etree._Element:
    return _ut(_username(), _password(digest, ns.PASSWORD_DIGEST), _nonce(), _created(created))


# --- accepted shapes ----------------------------------------------------------------------------------------


def test_password_text_token() -> None:
    credential = _parse(_ut(_username(), _password("secret")))
    assert (credential.username, credential.password, credential.password_type) == ("alice", "secret", "text")
    assert (credential.nonce, credential.nonce_text, credential.created_text, credential.created) == (None,) * 4


def test_password_digest_token() -> None:
    credential = _parse(_digest_ut())
    assert (credential.password_type, credential.password) == ("digest", KAT_DIGEST_PLUS)
    assert credential.nonce == KAT_NONCE
    assert credential.nonce_text == KAT_NONCE_B64
    assert credential.created_text == KAT_CREATED_PLUS
    assert credential.created == NOW


def test_text_token_with_nonce_and_created() -> None:
    credential = _parse(_ut(_username(), _password("secret"), _nonce(), _created(KAT_CREATED_Z)))
    assert (credential.nonce, credential.created) == (KAT_NONCE, NOW)


def test_username_trimmed_password_not_trimmed() -> None:  # interop R17
    credential = _parse(_ut(_username("\n   alice \t"), _password("  secret \n")))
    assert (credential.username, credential.password) == ("alice", "  secret \n")


def test_default_namespace_and_other_prefixes_accepted() -> None:  # interop R20
    ut = etree.fromstring(
        f'<UsernameToken xmlns="{ns.WSSE}"><Username>alice</Username>'
        f'<p:Password xmlns:p="{ns.WSSE}" Type="{ns.PASSWORD_TEXT}">secret</p:Password></UsernameToken>'
    )
    assert _parse(ut).username == "alice"


def test_comment_inside_password_reads_full_text() -> None:  # finding M6
    credential = _parse(_ut(_username(), _password("sec<!-- x -->ret")))
    assert (credential.password_type, credential.password) == ("text", "secret")


def test_type_uri_whitespace_collapsed() -> None:  # interop R17
    credential = _parse(_ut(_username(), _password("secret", f" {ns.PASSWORD_TEXT}\n")))
    assert (credential.password_type, credential.password) == ("text", "secret")


def test_unknown_extension_child_ignored() -> None:
    ut = _ut(_username(), _password("secret"), '<x:Extra xmlns:x="urn:x">1</x:Extra>')
    assert _parse(ut).username == "alice"


def test_repr_hides_password_and_nonce() -> None:
    text = repr(_parse(_ut(_username(), _password("CANARY-PW-7f3a"), _nonce())))
    assert "CANARY-PW-7f3a" not in text
    assert KAT_NONCE_B64 not in text
    assert "0123456789abcdef" not in text
    assert "alice" in text


def test_credential_is_frozen() -> None:
    credential = _parse(_ut(_username(), _password()))
    with pytest.raises(AttributeError):
        credential.username = "admin"  # type: ignore[misc]


# --- W26: derived-key UsernameToken -------------------------------------------------------------------------


@pytest.mark.parametrize("iteration", ["1000", "-1", "999999999"])
def test_salt_and_iteration_unsupported(iteration: str) -> None:
    salt = "<wsse11:Salt>AAAAAAAAAAAAAAAAAAAAAA==</wsse11:Salt>"
    ut = _ut(_username(), salt, f"<wsse11:Iteration>{iteration}</wsse11:Iteration>")
    with pytest.raises(errors.UnsupportedSecurityToken):
        _parse(ut)


def test_salt_alone_unsupported() -> None:
    with pytest.raises(errors.UnsupportedSecurityToken):
        _parse(_ut(_username(), _password(), "<wsse11:Salt>AAAA</wsse11:Salt>"))


def test_iteration_alone_unsupported() -> None:
    with pytest.raises(errors.UnsupportedSecurityToken):
        _parse(_ut(_username(), "<wsse11:Iteration>1000</wsse11:Iteration>"))


# --- W04 / W05 / A09: Username --------------------------------------------------------------------------


def test_missing_username_invalid_token() -> None:  # W04
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_password()))


def test_username_in_wrong_namespace_is_missing() -> None:  # W04, Clark names only
    wrong = '<x:Username xmlns:x="urn:evil">alice</x:Username>'
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(wrong, _password()))


def test_two_usernames_invalid_token() -> None:
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username("alice"), _username("admin"), _password()))


@pytest.mark.parametrize("username", ["<wsse:Username/>", _username(""), _username("  \n\t ")])
def test_empty_username_failed_authentication(username: str) -> None:  # W05
    with pytest.raises(errors.FailedAuthentication):
        _parse(_ut(username, _password()))


def test_username_256_chars_accepted() -> None:
    assert _parse(_ut(_username("a" * 256), _password())).username == "a" * 256


def test_username_257_chars_failed_authentication() -> None:  # A09
    with pytest.raises(errors.FailedAuthentication):
        _parse(_ut(_username("a" * 257), _password()))


@pytest.mark.parametrize("username", ["ad\tmin", "ad\nmin", "admin\x7f", "admin\u0085", "a&#x9;b"])
def test_username_control_characters_failed_authentication(username: str) -> None:  # A09
    with pytest.raises(errors.FailedAuthentication):
        _parse(_ut(_username(username), _password()))


@pytest.mark.parametrize("username", ["a\u200bb", "a\u00a0b", "caf\u00e9", "\u05d0\u200fb"])
def test_username_non_printable_but_not_control_accepted(username: str) -> None:  # A09 refuses Cc only
    assert normalize_username(username) == username


def test_username_with_nul_failed_authentication() -> None:  # A09: XML cannot carry NUL, the checker refuses it
    with pytest.raises(errors.FailedAuthentication):
        normalize_username("admin\x00")


def test_username_injection_strings_pass_shape_check() -> None:  # A09: escaping is the user store's job
    assert normalize_username("*)(uid=*))(|(uid=*") == "*)(uid=*))(|(uid=*"


def test_username_with_element_content_invalid_token() -> None:
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username("ali<b>ce</b>"), _password()))


# --- W06 / W10: Password count ---------------------------------------------------------------------------------


def test_two_passwords_invalid_token() -> None:  # W06, BSP R4222
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password("wrong"), _password("right")))


def test_two_passwords_swapped_invalid_token() -> None:  # W06
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password("right"), _password("wrong")))


def test_no_password_failed_authentication() -> None:  # W10
    with pytest.raises(errors.FailedAuthentication) as caught:
        _parse(_ut(_username("admin")))
    assert caught.value.reason == "no_password"


# --- W07 / W08 / W09: Password Type --------------------------------------------------------------------------


def test_password_without_type_is_text_by_default() -> None:  # W07, interop R13
    credential = _parse(_ut(_username(), _password("secret", None)))
    assert (credential.password_type, credential.password) == ("text", "secret")


def test_password_without_type_rejected_in_bsp_strict() -> None:  # W07, BSP R4201
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password("secret", None)), bsp_strict=True)


def test_password_with_type_accepted_in_bsp_strict() -> None:
    credential = _parse(_ut(_username(), _password("secret")), bsp_strict=True)
    assert (credential.password_type, credential.password) == ("text", "secret")


def test_namespace_qualified_type_invalid_token() -> None:  # W08
    qualified = _password("secret", None, extra=f' wsse:Type="{ns.PASSWORD_TEXT}"')
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), qualified))


def test_namespace_qualified_type_next_to_plain_type_invalid_token() -> None:  # W08
    both = _password("secret", ns.PASSWORD_TEXT, extra=f' wsse:Type="{ns.PASSWORD_DIGEST}"')
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), both))


@pytest.mark.parametrize("type_uri", ["urn:custom#Cleartext", "", "PasswordText", ns.PASSWORD_TEXT.upper()])
def test_custom_type_failed_authentication(type_uri: str) -> None:  # W09
    with pytest.raises(errors.FailedAuthentication):
        _parse(_ut(_username(), _password("secret", type_uri)))


# --- W05 / A08: Password value --------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["<wsse:Password/>", _password("")])
def test_empty_password_failed_authentication(password: str) -> None:  # W05
    with pytest.raises(errors.FailedAuthentication):
        _parse(_ut(_username(), password))


def test_password_at_limit_accepted() -> None:
    assert _parse(_ut(_username(), _password("p" * 1024))).password == "p" * 1024


@pytest.mark.parametrize("password", ["p" * 1025, "p" * 100 * 1024, "\u00e9" * 513])
def test_long_password_failed_authentication(password: str) -> None:  # A08: limit counts UTF-8 bytes
    with pytest.raises(errors.FailedAuthentication) as caught:
        _parse(_ut(_username(), _password(password)))
    assert caught.value.reason == "password_too_long"


def test_password_with_element_content_invalid_token() -> None:
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password("se<x>cr</x>et")))


# --- W14: Nonce ------------------------------------------------------------------------------------------------


def test_two_nonces_invalid_token() -> None:  # BSP R4225
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(), _nonce(), _nonce()))


def test_nonce_without_encoding_type_invalid_token() -> None:  # BSP R4220
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(), _nonce(encoding=None)))


def test_nonce_hex_encoding_invalid_token() -> None:  # BSP R4221
    hex_binary = ns.BASE64_BINARY.replace("Base64Binary", "HexBinary")
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(), _nonce(KAT_NONCE.hex(), encoding=hex_binary)))


@pytest.mark.parametrize(
    "value", ["!!!", "MDEyMzQ1Njc4OWFiY2RlZg=", "MDEy\u00a0MzQ1Njc4OWFiY2RlZg==", "MDEy-MzQ1Njc4OWFiY2RlZg=="]
)
def test_nonce_bad_base64_invalid_token(value: str) -> None:
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(), _nonce(value)))


@pytest.mark.parametrize("value", ["", "AQ==", base64.b64encode(b"x" * 15).decode()])
def test_nonce_too_short_invalid_token(value: str) -> None:  # empty, 1 byte, 15 bytes
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(), _nonce(value)))


def test_nonce_minimum_is_configurable() -> None:
    assert _parse(_ut(_username(), _password(), _nonce("AQ==")), min_nonce_bytes=1).nonce == b"\x01"


def test_wrapped_nonce_accepted() -> None:
    credential = _parse(_ut(_username(), _password(), _nonce("\n  MDEyMzQ1Njc4\n  OWFiY2RlZg==\n")))
    assert credential.nonce == KAT_NONCE


def test_nonce_with_every_xml_whitespace_accepted_as_sent() -> None:
    sent = "\tMDEy&#13;MzQ1\nNjc4 OWFiY2RlZg==&#9;"
    credential = _parse(_ut(_username(), _password(), _nonce(sent)))
    assert credential.nonce == KAT_NONCE
    assert credential.nonce_text == "\tMDEy\rMzQ1\nNjc4 OWFiY2RlZg==\t"


# --- W15 / W22: Created ---------------------------------------------------------------------------------------


def test_two_created_invalid_token() -> None:  # BSP R4223
    old = _created("2025-01-01T00:00:00Z")
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(), old, _created(KAT_CREATED_Z)))


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-13-45T00:00:00Z",
        "2026-01-01T12:00:00",
        "2026-01-01T23:59:60Z",
        "2026-01-01T12:00:00.1234Z",
        "0000-01-01T00:00:00Z",
        "2026-01-01T12:00:00+14:00",
        "9" * 10_000,
    ],
)
def test_malformed_created_invalid_token(value: str) -> None:  # W22
    with pytest.raises(errors.InvalidSecurityToken) as caught:
        _parse(_ut(_username(), _password(), _created(value)))
    assert caught.value.reason == "bad_created"


def test_created_text_kept_exactly_as_sent() -> None:
    credential = _parse(_ut(_username(), _password(), _created(" 2026-01-01T12:00:00Z\n")))
    assert credential.created_text == " 2026-01-01T12:00:00Z\n"
    assert credential.created == NOW


# --- W11: PasswordDigest needs Nonce and Created ------------------------------------------------------------


def test_digest_without_nonce_invalid_token() -> None:
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(KAT_DIGEST_PLUS, ns.PASSWORD_DIGEST), _created()))


def test_digest_without_created_invalid_token() -> None:
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(KAT_DIGEST_PLUS, ns.PASSWORD_DIGEST), _nonce()))


def test_digest_without_nonce_and_created_invalid_token() -> None:
    with pytest.raises(errors.InvalidSecurityToken):
        _parse(_ut(_username(), _password(KAT_DIGEST_PLUS, ns.PASSWORD_DIGEST)))


# --- W13: PasswordDigest computation ---------------------------------------------------------------------------


def test_digest_kat_plus_zero() -> None:
    assert compute_password_digest(KAT_NONCE, KAT_CREATED_PLUS, KAT_PLAINTEXT) == KAT_DIGEST_PLUS


def test_digest_kat_z() -> None:
    assert compute_password_digest(KAT_NONCE, KAT_CREATED_Z, KAT_PLAINTEXT) == KAT_DIGEST_Z


def test_digest_matches_kat_token() -> None:
    assert digest_matches(_parse(_digest_ut()), KAT_PLAINTEXT)


def test_digest_matches_kat_token_with_z() -> None:
    assert digest_matches(_parse(_digest_ut(KAT_DIGEST_Z, KAT_CREATED_Z)), KAT_PLAINTEXT)


def test_digest_wrong_password_does_not_match() -> None:
    assert not digest_matches(_parse(_digest_ut()), "s3creT")


def test_digest_over_base64_nonce_text_does_not_match() -> None:
    variant = compute_password_digest(KAT_NONCE_B64.encode(), KAT_CREATED_PLUS, KAT_PLAINTEXT)
    assert not digest_matches(_parse(_digest_ut(variant)), KAT_PLAINTEXT)


def test_digest_with_reformatted_created_does_not_match() -> None:
    # The client hashed "+00:00" but the token says "Z" (or a server re-formats the instant): the text is hashed.
    assert not digest_matches(_parse(_digest_ut(KAT_DIGEST_PLUS, KAT_CREATED_Z)), KAT_PLAINTEXT)
    assert not digest_matches(_parse(_digest_ut(KAT_DIGEST_Z, KAT_CREATED_PLUS)), KAT_PLAINTEXT)


def test_digest_over_sha1_of_password_does_not_match() -> None:
    hashed_pw = hashlib.sha1(KAT_PLAINTEXT.encode()).digest()  # noqa: S324 - the client variant under test
    variant = base64.b64encode(hashlib.sha1(KAT_NONCE + KAT_CREATED_PLUS.encode() + hashed_pw).digest()).decode()  # noqa: S324
    assert not digest_matches(_parse(_digest_ut(variant)), KAT_PLAINTEXT)


def test_digest_hex_encoded_does_not_match() -> None:
    hex_digest = hashlib.sha1(KAT_NONCE + KAT_CREATED_PLUS.encode() + KAT_PLAINTEXT.encode()).hexdigest()  # noqa: S324
    assert not digest_matches(_parse(_digest_ut(hex_digest)), KAT_PLAINTEXT)


def test_digest_non_ascii_sent_value_does_not_match() -> None:
    # compare_digest on str would raise TypeError here; the comparison is on bytes.
    assert not digest_matches(_parse(_digest_ut("\u00e9" * 28)), KAT_PLAINTEXT)


def test_digest_wrapped_in_whitespace_matches() -> None:
    assert digest_matches(_parse(_digest_ut(f"\n   {KAT_DIGEST_PLUS}\n ")), KAT_PLAINTEXT)


def test_digest_matches_is_false_for_text_tokens() -> None:
    credential = _parse(_ut(_username(), _password(KAT_DIGEST_PLUS), _nonce(), _created()))
    assert not digest_matches(credential, KAT_PLAINTEXT)


# --- W19 / W20: freshness of the token's own Created --------------------------------------------------------


def _credential_created(instant: datetime) -> UsernameCredential:
    return _parse(_ut(_username(), _password(), _created(instant.strftime("%Y-%m-%dT%H:%M:%SZ"))))


@pytest.mark.parametrize("offset", [-299, -300, 0, 59, 60])
def test_check_created_inside_window(offset: int) -> None:
    check_created(_credential_created(NOW + timedelta(seconds=offset)), FrozenClock(NOW), FreshnessPolicy())


@pytest.mark.parametrize("offset", [-301, 61])
def test_check_created_outside_window_expired(offset: int) -> None:
    with pytest.raises(errors.MessageExpired):
        check_created(_credential_created(NOW + timedelta(seconds=offset)), FrozenClock(NOW), FreshnessPolicy())


def test_check_created_replay_after_expiry() -> None:  # W21: same token, clock moved on 301 s
    credential = _credential_created(NOW)
    clock = FrozenClock(NOW)
    check_created(credential, clock, FreshnessPolicy())
    clock.advance(301)
    with pytest.raises(errors.MessageExpired):
        check_created(credential, clock, FreshnessPolicy())


def test_check_created_without_created_is_a_no_op() -> None:
    check_created(_parse(_ut(_username(), _password())), FrozenClock(NOW), FreshnessPolicy())
