"""Tests for sts.auth.subjects: a subject checked again against the user store and the Issue rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import PRIMARY
from sts.auth.validators import AuthPolicy
from sts.config.settings import ALL_DOMAINS
from sts.errors import FailedAuthentication
from sts.stores.sqlite import Database, initialize


@pytest.fixture
def users(tmp_path: Path) -> Iterator[SqliteUserStore]:
    initialize(tmp_path / "sts.db")
    db = Database(tmp_path / "sts.db")
    store = SqliteUserStore(db, PasswordHasher(HashPolicy(memory_kib=1024, time_cost=1)))
    for role in ("admin", "renewer"):
        store.add_role(role)
    store.add_user(PRIMARY, "bob", "Pass-word-1", roles=["Admin"], claims={"urn:c": ["v"]})
    store.add_user("PARTNER", "eve", "Pass-word-1", roles=["admin"])
    yield store
    db.close()


def policy(domains: frozenset[str] = frozenset({ALL_DOMAINS})) -> AuthPolicy:
    return AuthPolicy(allowed_roles=frozenset({"ADMIN"}), allowed_domains=domains)


def test_the_current_principal_is_returned(users: SqliteUserStore) -> None:
    principal = SubjectAuthorizer(UserStoreRouter.single(users), policy()).authorize("primary/BOB")
    assert (principal.qualified_name, dict(principal.claims)) == ("PRIMARY/bob", {"urn:c": ("v",)})


def test_roles_compare_case_insensitively_and_also_roles_must_be_held(users: SqliteUserStore) -> None:
    authorizer = SubjectAuthorizer(UserStoreRouter.single(users), policy())
    assert authorizer.authorize("PRIMARY/bob", frozenset({"ADMIN"})).name == "bob"
    with pytest.raises(FailedAuthentication) as caught:
        authorizer.authorize("PRIMARY/bob", frozenset({"renewer"}))
    assert caught.value.reason == "role_denied"


@pytest.mark.parametrize(
    ("subject", "reason"),
    [("PARTNER/eve", "domain_denied"), ("PRIMARY/nobody", "unknown_user"), ("PRIMARY/\x00", "bad_username")],
)
def test_refusals_are_the_issue_fault(users: SqliteUserStore, subject: str, reason: str) -> None:
    with pytest.raises(FailedAuthentication) as caught:
        SubjectAuthorizer(UserStoreRouter.single(users), policy(frozenset({PRIMARY}))).authorize(subject)
    assert caught.value.reason == reason
