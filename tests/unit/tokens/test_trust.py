"""This STS's own issuer entry believes the certificates in force at each verification (a key promoted while the
worker runs), other issuers their pinned certificates only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from sts.clock import FrozenClock
from sts.config.settings import IssuerSettings, Settings, TokenSettings
from sts.crypto.keygen import generate_rsa_key, self_signed_certificate
from sts.crypto.signer import AssertionSigner
from sts.tokens.trust import SELF, IssuerTrust, IssuerTrustList
from sts.tokens.validation import AssertionRejected
from sts.wstrust.tokentypes import SamlVersion
from tests.xsw import build_signed, make_content

ISSUER = "https://sts.example/"  # the issuer tests.xsw writes


def _signer(name: str) -> tuple[AssertionSigner, x509.Certificate]:
    key = generate_rsa_key(2048)
    cert = self_signed_certificate(key, name)
    return AssertionSigner(key, cert), cert


def test_own_tokens_verify_with_the_certificates_in_force_now() -> None:
    (old_signer, old), (new_signer, new) = _signer("old"), _signer("new")
    in_force: list[tuple[x509.Certificate, ...]] = [(old,)]
    trust = IssuerTrustList((IssuerTrust(ISSUER, (old,), SELF),), 60, lambda: in_force[0])
    now = dt.datetime.now(dt.UTC)
    promoted = build_signed(new_signer, SamlVersion.SAML20, make_content())
    with pytest.raises(AssertionRejected):
        trust.verify(promoted, now)
    in_force[0] = (new, old)  # promoted: the new key signs, the old certificate is still accepted
    assert trust.verify(promoted, now).issuer.source == SELF
    assert trust.verify(build_signed(old_signer, SamlVersion.SAML20, make_content()), now).issuer.source == SELF


def test_another_issuer_keeps_its_pinned_certificates() -> None:
    (signer, cert), (_, ours) = _signer("idp"), _signer("sts")
    trust = IssuerTrustList((IssuerTrust(ISSUER, (cert,), ISSUER),), 60, lambda: (ours,))
    token = build_signed(signer, SamlVersion.SAML20, make_content())
    assert trust.verify(token, dt.datetime.now(dt.UTC)).issuer.entity_id == ISSUER


@pytest.mark.parametrize(("max_lifetime", "skew"), [(43200, 60), (43200, 600), (3600, 0)])
def test_own_tokens_of_the_longest_lifetime_are_believed(tmp_path: Path, max_lifetime: int, skew: int) -> None:
    """``sts.app.callers.issuer_trust``: this STS's token may span ``[tokens] max_lifetime`` plus the clock skew
    NotBefore is backdated by (was: the trusted-issuer default of 8 h); one second more is still too long."""
    from sts.app.callers import issuer_trust

    signer, cert = _signer("sts")
    tokens = TokenSettings(lifetime=300, max_lifetime=max_lifetime, clock_skew=skew)
    settings = Settings(tmp_path / "sts.toml", issuer=IssuerSettings(name=ISSUER), tokens=tokens)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    trust = issuer_trust(settings, lambda: (cert,), FrozenClock(now))

    def token(seconds: int) -> etree._Element:
        start = now - dt.timedelta(seconds=skew)  # as the token provider backdates NotBefore
        content = make_content(now=now, not_before=start, not_on_or_after=start + dt.timedelta(seconds=seconds))
        return build_signed(signer, SamlVersion.SAML20, content)

    assert trust.verify(token(max_lifetime + skew), now).issuer.source == SELF
    with pytest.raises(AssertionRejected) as too_long:
        trust.verify(token(max_lifetime + skew + 1), now)
    assert too_long.value.reason == "token_lifetime_too_long"


def test_a_saml11_assertion_whose_statements_name_different_subjects_names_no_one() -> None:
    """SAML 1.1 core §2.4: each statement has its own Subject. An issuer's assertion whose AttributeStatement is about
    ``admin`` and whose AuthenticationStatement is about ``alice`` does not say who authenticated in a way the STS
    may read off the first NameIdentifier in document order: it is refused, not taken as ``admin``."""
    from tests.xsw import build, sign

    signer, cert = _signer("idp")
    trust = IssuerTrustList((IssuerTrust(ISSUER, (cert,), ISSUER),), 60)
    now = dt.datetime.now(dt.UTC)
    unsigned = build(SamlVersion.SAML11, make_content(name_id="alice", now=now))
    saml1 = "urn:oasis:names:tc:SAML:1.0:assertion"
    conditions, authentication, attributes = unsigned
    authentication.addprevious(attributes)  # the attribute statement first, as SAML 1.1 allows
    attributes.find(f"{{{saml1}}}Subject/{{{saml1}}}NameIdentifier").text = "admin"  # type: ignore[union-attr]
    with pytest.raises(AssertionRejected) as refused:
        trust.verify(sign(signer, unsigned), now)
    assert refused.value.reason == "ambiguous_subject"
    consistent = build(SamlVersion.SAML11, make_content(name_id="alice", now=now))
    assert trust.verify(sign(signer, consistent), now).verified.subject == "alice"


@pytest.mark.parametrize("fraction", ["1234567", "123456789", "5"])
def test_an_issuers_times_with_any_fractional_precision_are_read(fraction: str) -> None:
    """SAML 2.0 core §1.3.3 only says not to *rely* on more than milliseconds: an IdP writing .NET's seven digits
    (the "o" format) or Java's/Go's nine must have its token read, not refused as ``bad_conditions`` (was: at most
    three digits, the WS-Security Timestamp rule, applied to SAML too). The digits are cut to microseconds, and
    NotOnOrAfter stays exclusive at that precision."""
    from tests.xsw import build, sign

    signer, cert = _signer("idp")
    trust = IssuerTrustList((IssuerTrust(ISSUER, (cert,), ISSUER),), 0)
    now = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    unsigned = build(SamlVersion.SAML20, make_content(now=now))
    saml2 = "urn:oasis:names:tc:SAML:2.0:assertion"
    conditions = unsigned.find(f"{{{saml2}}}Conditions")
    data = unsigned.find(f"{{{saml2}}}Subject/{{{saml2}}}SubjectConfirmation/{{{saml2}}}SubjectConfirmationData")
    assert conditions is not None and data is not None
    conditions.set("NotBefore", f"2026-03-01T11:59:00.{fraction}Z")
    conditions.set("NotOnOrAfter", f"2026-03-01T12:05:00.{fraction}Z")
    data.set("NotOnOrAfter", f"2026-03-01T12:05:00.{fraction}Z")
    token = sign(signer, unsigned)
    cut = int(fraction[:6].ljust(6, "0"))
    verified = trust.verify(token, now).verified
    assert verified.not_before == dt.datetime(2026, 3, 1, 11, 59, 0, cut, tzinfo=dt.UTC)
    assert verified.not_on_or_after == dt.datetime(2026, 3, 1, 12, 5, 0, cut, tzinfo=dt.UTC)
    assert verified.confirmation_windows == ((None, verified.not_on_or_after),)
    with pytest.raises(AssertionRejected) as expired:
        trust.verify(token, verified.not_on_or_after)  # type: ignore[arg-type]
    assert expired.value.reason == "token_expired"


@pytest.mark.parametrize(
    "value", ["2026-03-01T12:05:00.1234567", "2026-03-01T12:05:00.1234567+01:00", "2026-03-01T12:05:60Z",
              "2026-03-01T24:00:00Z", "2026-03-01T12:05:00." + "1" * 60 + "Z"],
)
def test_an_issuers_time_without_utc_is_still_refused(value: str) -> None:
    """SAML 2.0 core §1.3.3: UTC only. Zone-less, offset, leap-second, 24:00 and oversized values stay refused."""
    from tests.xsw import build, sign

    signer, cert = _signer("idp")
    trust = IssuerTrustList((IssuerTrust(ISSUER, (cert,), ISSUER),), 60)
    now = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    unsigned = build(SamlVersion.SAML20, make_content(now=now))
    conditions = unsigned.find("{urn:oasis:names:tc:SAML:2.0:assertion}Conditions")
    assert conditions is not None
    conditions.set("NotOnOrAfter", value)
    with pytest.raises(AssertionRejected) as refused:
        trust.verify(sign(signer, unsigned), now)
    assert refused.value.reason == "bad_conditions"
