"""The benchmark's scenarios: which server, which request, which group of interleaved rounds."""

from __future__ import annotations

from dataclasses import dataclass

HEADLINE = "saml20_signed_encrypted"
RSA = "ref_rsa"
STATIC = "ref_static"
PASSWORD = "ref_password"  # noqa: S105 - a scenario name
METRICS_OFF = "saml20_metrics_off"


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # key of the servers dict in run.py
    request: str  # key of the loads dict in run.py
    description: str
    expect: bytes = b""  # a marker the response must contain (sanity check before measuring)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario(STATIC, "reference", "static", "reference: fixed 3 KB XML (HTTP + gunicorn + WSGI)", b"ref:pad"),
    Scenario(RSA, "reference", "rsa", "reference: one RSA PKCS#1 v1.5 SHA-256 signature (STS key size)",
             b"ref:signature"),
    Scenario(PASSWORD, "reference", "password", "reference: one argon2id verify (STS parameters)", b"ref:pad"),
    Scenario(HEADLINE, "std", "issue", "SAML 2.0 bearer, signed + encrypted, Nonce, warm credential cache, "
             "5 claims, 10 RPs, 1,000 users, SOAP 1.1 (headline)", b"EncryptedAssertion"),
    Scenario("saml20_signed_only", "std", "issue_signed", "SAML 2.0 bearer, signed only (RP with --no-encrypt)",
             b"saml2:Assertion"),
    Scenario("saml11_signed_encrypted", "std", "issue_saml11", "SAML 1.1 bearer, signed + encrypted",
             b"EncryptedData"),
    Scenario("saml20_no_nonce", "std", "no_nonce", "headline without Nonce/Created in the UsernameToken (Timestamp "
             "only, as Microsoft's client code sends it): no replay-store write", b"EncryptedAssertion"),
    Scenario("saml20_cache_disabled", "nocache", "issue", "headline with credential_cache_ttl = 0 (one argon2id "
             "verify per request)", b"EncryptedAssertion"),
    Scenario("saml20_claims_50", "std", "issue_claims50", "headline with 50 claims instead of 5",
             b"EncryptedAssertion"),
    Scenario("saml20_rps_10k", "rps10k", "issue", "headline with 10,000 registered RPs", b"EncryptedAssertion"),
    Scenario("saml20_users_100k", "users100k", "issue", "headline with 100,000 users", b"EncryptedAssertion"),
    Scenario(METRICS_OFF, "nometrics", "issue", "headline with [metrics] enabled = false (the cost of recording "
             "metrics: the headline records them)", b"EncryptedAssertion"),
    Scenario("saml20_soap12", "std", "issue_soap12", "headline over SOAP 1.2", b"EncryptedAssertion"),
    Scenario("saml20_hok_symmetric", "std", "issue_hok", "SAML 2.0 holder-of-key SymmetricKey (random proof key "
             "wrapped for the RP), signed + encrypted", b"RequestedProofToken"),
    # The serving model's cost: the same requests under gunicorn's sync workers (the model before issue 12,
    # which idle connections could stop), against the production worker (event-loop reads, threads).
    Scenario("saml20_sync_workers", "sync", "issue", "headline under gunicorn's sync workers (serving-model "
             "comparison)", b"EncryptedAssertion"),
    Scenario("saml20_directory_user", "ldap", "issue", "headline for an LDAP directory user (slapd over LDAPS, "
             "warm credential cache, roles from groups, claims from attributes)", b"EncryptedAssertion"),
    Scenario("saml20_directory_cache_disabled", "ldap_nocache", "issue", "directory user with credential_cache_ttl "
             "= 0 (search + bind + group search per request)", b"EncryptedAssertion"),
    # Several nodes: the headline on each of two nodes sharing one PostgreSQL and one Redis (the round trips per
    # token are in the notes). Each node is measured alone: both nodes on one 2-core machine would only share it.
    Scenario("saml20_two_nodes_node_a", "node_a", "issue", "headline on node A of two nodes on PostgreSQL + Redis",
             b"EncryptedAssertion"),
    Scenario("saml20_two_nodes_node_b", "node_b", "issue", "headline on node B of two nodes on PostgreSQL + Redis",
             b"EncryptedAssertion"),
    Scenario("saml20_client_not_exempt", "throttled", "issue", "headline from a client that is not exempt from "
             "throttling (the bench's loopback clients are, by default): one more store read per token, the "
             "client's failure count", b"EncryptedAssertion"),
    Scenario("ref_static_sync_workers", "reference_sync", "static", "ref_static under gunicorn's sync workers "
             "(serving-model comparison)", b"ref:pad"),
)}

# Primary rounds: the headline targets. Secondary rounds: everything else, shorter and fewer, each round with
# its own RSA reference and headline so every comparison is within one round. Paired rounds: the scenarios that a
# target compares with the headline (a few percent apart, less than the secondary rounds' spread), each slice
# measured between two headline slices (bench/paired.py).
PRIMARY = [STATIC, RSA, PASSWORD, HEADLINE, "saml20_signed_only"]
PAIRED = [METRICS_OFF, "saml20_claims_50", "saml20_rps_10k", "saml20_users_100k", "saml20_two_nodes_node_a",
          "saml20_two_nodes_node_b"]
SECONDARY = [RSA, HEADLINE, STATIC, PASSWORD, "saml11_signed_encrypted", "saml20_no_nonce", "saml20_cache_disabled",
             "saml20_soap12", "saml20_hok_symmetric", "saml20_sync_workers", "ref_static_sync_workers",
             "saml20_directory_user", "saml20_directory_cache_disabled", "saml20_client_not_exempt"]


def rotated(names: list[str], round_index: int) -> list[str]:
    """The round's order: rotated by one each round so slow drift hits every scenario alike."""
    shift = round_index % len(names)
    return names[shift:] + names[:shift]
