"""Tests for sts.ldapfilter: RFC 4515 §3 escaping and WSO2-style ``?`` filter templates.

Escaping is checked twice: as text (every special byte becomes ``\\XX``) and against the real slapd, where an escaped
name must match exactly the entry of that name, and ``*`` must never turn into a presence filter.
"""

from __future__ import annotations

import re

import ldap
import pytest

from sts.ldapfilter import FilterTemplate, FilterTemplateError, check_filter, escape_value
from tests.servers.directory_data import BOB_GUID, dn_key
from tests.servers.slapd import SlapdServer

USER_FILTER = FilterTemplate("(&(objectClass=person)(uid=?))")


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("alice", "alice"),
        ("*", "\\2a"),
        ("(", "\\28"),
        (")", "\\29"),
        ("\\", "\\5c"),
        ("\x00", "\\00"),
        ("admin)(uid=*", "admin\\29\\28uid=\\2a"),
        ("back\\slash", "back\\5cslash"),
        ("a\x00b", "a\\00b"),
        ("jürgen", "j\\c3\\bcrgen"),  # UTF-8, byte by byte (never Latin-1 code points)
        ("€", "\\e2\\82\\ac"),
        ("tab\there", "tab\\09here"),  # control characters too
        ("del\x7f", "del\\7f"),
    ],
)
def test_escape_value(value: str, escaped: str) -> None:
    assert escape_value(value) == escaped


def test_escape_value_of_bytes_escapes_every_special_byte() -> None:
    assert escape_value(BOB_GUID) == "\\00\\2a\\28\\29\\5c\\00\\ff\\10\\a1\\b2\\c3\\d4\\e5\\f6\\07\\18"


def test_template_fills_every_placeholder_with_the_escaped_value() -> None:
    template = FilterTemplate("(|(sAMAccountName=?)(userPrincipalName=?))")
    assert template.fill("a*)(b") == "(|(sAMAccountName=a\\2a\\29\\28b)(userPrincipalName=a\\2a\\29\\28b))"
    assert template.text == "(|(sAMAccountName=?)(userPrincipalName=?))"


def test_template_text_is_trimmed() -> None:
    assert FilterTemplate("  (uid=?)\n").fill("x") == "(uid=x)"


def test_a_value_never_changes_the_filter_structure() -> None:
    """Whatever is filled in, the result still parses as one filter with the template's shape."""
    for value in ("*", "admin)(uid=*", ")(|(objectClass=*", "\\", "\x00", "((((", "\\2a"):
        filled = USER_FILTER.fill(value)
        check_filter(filled)
        assert filled.count("(") == filled.count(")") == 3


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("(uid=alice)", "must contain '?'"),
        ("uid=?", "expected '('"),
        ("(uid=?", "expected ')'"),
        ("(uid=?))", "unexpected text"),
        ("(uid=?)(cn=x)", "unexpected text"),
        ("(&?)", "need at least one filter"),
        ("(&(uid=?)", "expected ')'"),
        ("(=?)", "is not an attribute assertion"),
        ("(uid?)", "is not an attribute assertion"),
        ("(uid=\\zz?)", "bad escape"),
        ("(uid=?\\2)", "bad escape"),
        ("", "must contain '?'"),
    ],
)
def test_bad_templates_refused(template: str, message: str) -> None:
    with pytest.raises(FilterTemplateError, match=re.escape(message)):
        FilterTemplate(template)


@pytest.mark.parametrize(
    "template",
    [
        "(uid=?)",
        "(&(objectClass=person)(uid=?))",
        "(&(objectClass=user)(!(objectClass=computer))(|(sAMAccountName=?)(userPrincipalName=?)))",
        "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2))(sAMAccountName=?))",
        "(cn~=?)",
        "(uid=\\2a?)",
    ],
)
def test_good_templates_accepted(template: str) -> None:
    assert FilterTemplate(template).text == template


def test_a_template_without_placeholder_when_none_is_needed() -> None:
    assert FilterTemplate("(objectClass=groupOfNames)", needs_placeholder=False).fill("x") == (
        "(objectClass=groupOfNames)"
    )
    with pytest.raises(FilterTemplateError, match="expected"):
        FilterTemplate("objectClass=group", needs_placeholder=False)


# --- against the real directory -----------------------------------------------------------------------------------


def _found(slapd: SlapdServer, name: str) -> list[str]:
    tree = slapd.openldap
    conn = slapd.connect()
    try:
        conn.simple_bind_s(tree.service_dn, tree.service_password)
        results = conn.search_s(tree.user_search_base, ldap.SCOPE_SUBTREE, USER_FILTER.fill(name), ["uid"])
    finally:
        conn.unbind_s()
    return [dn for dn, _ in results if dn is not None]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["*", "admin)(uid=*", "back\\slash", "jürgen", "alice"])
def test_escaped_names_match_exactly_their_own_entry(slapd: SlapdServer, name: str) -> None:
    assert [dn_key(dn) for dn in _found(slapd, name)] == [dn_key(slapd.openldap.users[name].dn)]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["a\x00b", "alice*", "*)(objectClass=*", "admin", "back", "j\\c3\\bcrgen"])
def test_escaped_near_misses_match_nothing(slapd: SlapdServer, name: str) -> None:
    assert _found(slapd, name) == []


@pytest.mark.integration
def test_star_does_not_match_everyone(slapd: SlapdServer) -> None:
    """The control: the same template filled without escaping is a presence filter that matches every user."""
    tree = slapd.openldap
    conn = slapd.connect()
    try:
        conn.simple_bind_s(tree.service_dn, tree.service_password)
        unescaped = USER_FILTER.text.replace("?", "*")
        everyone = conn.search_s(tree.user_search_base, ldap.SCOPE_SUBTREE, unescaped, ["uid"])
    finally:
        conn.unbind_s()
    assert len(everyone) == len(tree.users) > 1
    assert len(_found(slapd, "*")) == 1
