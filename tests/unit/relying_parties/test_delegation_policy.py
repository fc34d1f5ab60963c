"""The per-RP delegation policy: caller entries, their normal form, matching, subjects, depth, storage."""

from __future__ import annotations

import pytest

from sts.auth.users import Principal
from sts.relying_parties.delegation import (
    DelegationError,
    DelegationMode,
    DelegationPolicy,
    check_depth,
    normalize_caller,
    parse_subjects,
)
from sts.relying_parties.model import RelyingParty

FINGERPRINT = "AB:" * 31 + "CD"


def principal(name: str = "svc-front", domain: str = "PRIMARY", roles: tuple[str, ...] = ()) -> Principal:
    return Principal(domain, name, frozenset(roles))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("svc-front", "user:PRIMARY/svc-front"),
        ("corp/svc", "user:CORP/svc"),
        ("user:CORP/svc", "user:CORP/svc"),
        ("role:frontends", "role:frontends"),
        (f"cert:{FINGERPRINT}", "cert:" + "ab" * 31 + "cd"),
        (f"cert:sha256:{'AB' * 31}CD", "cert:" + "ab" * 31 + "cd"),
    ],
)
def test_callers_are_stored_in_one_form(given: str, stored: str) -> None:
    assert normalize_caller(given) == stored


@pytest.mark.parametrize("given", ["cert:abcd", "cert:" + "zz" * 32, "role:", "role:two words", ""])
def test_unusable_callers_are_refused(given: str) -> None:
    with pytest.raises(DelegationError):
        normalize_caller(given)


def test_deny_by_default() -> None:
    policy = RelyingParty(address="https://rp.test/", encrypt=False).delegation
    assert not policy.enabled
    assert not policy.allows_caller(principal(), None)
    assert policy.describe() == "denied (no callers allowed)"


def test_caller_matching() -> None:
    policy = DelegationPolicy(("user:PRIMARY/svc-front", "role:frontends", "cert:" + "ab" * 31 + "cd"))
    assert policy.allows_caller(principal("SVC-Front"), None)  # names compare without case
    assert policy.allows_caller(principal("other", roles=("Frontends",)), None)
    assert not policy.allows_caller(principal("other"), None)
    assert not policy.allows_caller(principal("svc-front", domain="CORP"), None)
    assert policy.allows_caller(principal("other"), FINGERPRINT)  # a caller that proved that certificate
    assert not policy.allows_caller(principal("other"), "00:" * 31 + "00")


def test_modes() -> None:
    assert DelegationMode.BOTH.allows(True) and DelegationMode.BOTH.allows(False)
    assert DelegationMode.ACT_AS.allows(True) and not DelegationMode.ACT_AS.allows(False)
    assert DelegationMode.ON_BEHALF_OF.allows(False) and not DelegationMode.ON_BEHALF_OF.allows(True)


def test_subject_rules() -> None:
    caller = principal()
    assert DelegationPolicy(("role:x",), subjects="any").allows_subject(caller, principal("u", domain="CORP"))
    same = DelegationPolicy(("role:x",))
    assert same.allows_subject(caller, principal("u")) and not same.allows_subject(caller, principal("u", "CORP"))
    staff = DelegationPolicy(("role:x",), subjects=parse_subjects("role:staff"))
    assert staff.allows_subject(caller, principal("u", roles=("staff",)))
    assert not staff.allows_subject(caller, principal("u"))


@pytest.mark.parametrize("bad", ["all", "role:", "domain"])
def test_bad_subject_rules(bad: str) -> None:
    with pytest.raises(DelegationError):
        parse_subjects(bad)


@pytest.mark.parametrize("depth", [0, 9, -1])
def test_depth_bounds(depth: int) -> None:
    with pytest.raises(DelegationError):
        check_depth(depth)


def test_policy_survives_the_database_round_trip() -> None:
    rp = RelyingParty(
        address="https://rp.test/", encrypt=False, delegation_callers=("user:PRIMARY/a",),
        delegation_mode=DelegationMode.ACT_AS, max_delegation_depth=2,
        delegation_audiences=("https://front.test/",),
    )
    assert RelyingParty.from_json(rp.to_json()) == rp
    # rows written before delegation existed read as deny-by-default
    legacy = RelyingParty.from_json('{"address": "https://rp.test/", "encrypt": false}')
    assert not legacy.delegation.enabled and legacy.delegation_mode is DelegationMode.BOTH
