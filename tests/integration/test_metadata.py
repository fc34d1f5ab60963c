"""Issue 12 (metadata): what ``?wsdl`` and ``/mex`` publish is what the running server enforces, and Microsoft's
own client code (the real ``msal`` package) discovers the WS-Trust endpoints from mex and gets a token through them.

Two real servers: the session one (default ``strict`` profile) and one whose instance profile is ``adfs`` with an
unencrypted relying party ``urn:federation:MicrosoftOnline`` (the audience MSAL asks AD FS for). MSAL posts the
assertion it receives on to Azure AD; the test stops where MSAL's WS-Trust client hands the token back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from lxml import etree
from msal import mex as msal_mex
from msal import wstrust_request as msal_wstrust

from sts.config.settings import PROFILE_NAMES
from sts.errors import InvalidSecurity
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.profiles import timestamp_required
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from tests import token_checks as checks
from tests.support import (
    WSSE,
    Instance,
    Server,
    audit_records,
    fault_qname,
    fault_string,
    make_instance,
    rst_envelope,
    start_server,
)

pytestmark = pytest.mark.integration

AUDIENCE = "urn:federation:MicrosoftOnline"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
SP12 = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
SP11 = "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy"
MEX_PATHS = ("/mex", "/services/wso2carbon-sts/mex", "/adfs/services/trust/mex")


@pytest.fixture(scope="module")
def adfs_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    instance = make_instance(tmp_path_factory.mktemp("metadata") / "var")
    db = Database(instance.base / "sts.db")
    registry = RelyingPartyRegistry(SqliteRelyingPartyStore(db))
    registry.add(RelyingParty(address=AUDIENCE, encrypt=False))  # Azure AD reads plain assertions
    db.close()
    return instance


@pytest.fixture(scope="module")
def adfs_server(adfs_instance: Instance) -> Iterator[Server]:
    server = start_server(adfs_instance, workers=2, tls=True, env={"STS_TOKENS_PROFILE": "adfs"})
    yield server
    server.stop()


def _session(server: Server) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the test CA
    session.verify = server.verify
    return session


def _origin(server: Server) -> str:
    return server.url.removesuffix("/services/wso2carbon-sts")


def _include_timestamp_count(document: bytes) -> tuple[int, int]:
    """(wsp:Policy documents, sp:IncludeTimestamp assertions in them) of a WSDL."""
    root = etree.fromstring(document)
    policies = root.findall(f"{{{WSP}}}Policy")
    found = [e for p in policies for e in p.iter(f"{{{SP12}}}IncludeTimestamp", f"{{{SP11}}}IncludeTimestamp")]
    return len(policies), len(found)


# --- item 10: the published policy is the enforced one ---------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_published_include_timestamp_is_enforced(
    profile: str, request: pytest.FixtureRequest, instance: Instance, adfs_instance: Instance
) -> None:
    """Per instance profile: every policy in ``?wsdl`` and mex carries sp:IncludeTimestamp exactly when a request
    without a Timestamp is refused (every profile requires one today, as its ecosystem's servers do)."""
    if profile == "strict":
        _check_timestamp_rule(request.getfixturevalue("server"), instance, timestamp_required(profile))
    elif profile == "adfs":
        _check_timestamp_rule(request.getfixturevalue("adfs_server"), adfs_instance, timestamp_required(profile))
    else:
        server = start_server(adfs_instance, workers=1, tls=True, env={"STS_TOKENS_PROFILE": profile})
        try:
            _check_timestamp_rule(server, adfs_instance, timestamp_required(profile))
        finally:
            server.stop()


def _check_timestamp_rule(server: Server, owner: Instance, required: bool) -> None:
    session = _session(server)
    for url in (server.url + "?wsdl", *(_origin(server) + path for path in MEX_PATHS)):
        assert _include_timestamp_count(session.get(url, timeout=30).content) == (2, 2 if required else 0), url
    for soap12 in (False, True):
        answer = server.post(rst_envelope("admin", owner.demo_password, soap12=soap12, timestamp=False), soap12=soap12)
        if not required:
            assert answer.status_code == 200, answer.content[:500]
            continue
        assert answer.status_code == (400 if soap12 else 500)
        assert fault_qname(answer.content) == (WSSE, InvalidSecurity.fault_local)
        assert fault_string(answer.content) == InvalidSecurity.fault_string
        assert b"RequestSecurityTokenResponse" not in answer.content
        accepted = server.post(rst_envelope("admin", owner.demo_password, soap12=soap12), soap12=soap12)
        assert accepted.status_code == 200, accepted.content[:500]


def test_request_without_timestamp_is_audited_as_such(server: Server, instance: Instance) -> None:
    refused = server.post(rst_envelope("admin", instance.demo_password, timestamp=False))
    assert fault_qname(refused.content) == (WSSE, "InvalidSecurity")
    reasons = [r.get("reason") for r in audit_records(server.log) if r.get("audit_event") == "authentication"]
    assert reasons[-1] == "no_timestamp"


# --- item 11: MSAL discovers the endpoints from mex and gets a token -------------------------------------------------


@pytest.mark.parametrize("path", MEX_PATHS)
def test_msal_mex_finds_the_trust13_and_feb2005_endpoints(adfs_server: Server, path: str) -> None:
    session = _session(adfs_server)
    origin = _origin(adfs_server)
    soap12_endpoint = adfs_server.url + ".wso2carbon-stsHttpsSoap12Endpoint"
    found = msal_mex.send_request(origin + path, session)  # MSAL's own discovery call
    assert found == {"address": soap12_endpoint, "action": msal_mex.Mex.ACTION_13}
    # Every endpoint MSAL's parser accepts, not only the one it prefers (WS-Trust 1.3 first).
    parsed = msal_mex.Mex(session.get(origin + path, timeout=30).text)
    endpoints = parsed._get_endpoints(parsed._get_bindings(), parsed._get_username_password_policy_ids())
    assert {(e["address"], e["action"]) for e in endpoints} == {
        (soap12_endpoint, msal_mex.Mex.ACTION_13),
        (origin + "/adfs/services/trust/13/usernamemixed", msal_mex.Mex.ACTION_13),
        (origin + "/adfs/services/trust/2005/usernamemixed", msal_mex.Mex.ACTION_2005),
    }


@pytest.mark.parametrize("alias", ["13", "2005"], ids=["trust13", "feb2005"])
def test_msal_wstrust_client_gets_a_token_from_the_endpoint_it_found(
    adfs_server: Server, adfs_instance: Instance, alias: str
) -> None:
    session = _session(adfs_server)
    parsed = msal_mex.Mex(session.get(_origin(adfs_server) + "/adfs/services/trust/mex", timeout=30).text)
    endpoints = parsed._get_endpoints(parsed._get_bindings(), parsed._get_username_password_policy_ids())
    (endpoint,) = [e for e in endpoints if f"/trust/{alias}/usernamemixed" in e["address"]]

    token = msal_wstrust.send_request(
        "admin", adfs_instance.demo_password, AUDIENCE, endpoint["address"], endpoint["action"], session
    )

    # The adfs profile issues SAML 1.1, the type MSAL turns into the saml1_1-bearer grant for Azure AD.
    assert token["type"] == "urn:oasis:names:tc:SAML:1.0:assertion"
    # MSAL cuts the assertion out of the RSTR as raw text and forwards it: it must stand alone and verify.
    assertion = checks.verify_with_signxml(token["token"], adfs_instance.signing_cert.read_bytes(), saml11=True)
    audiences = assertion.findall(f".//{{{checks.SAML1}}}Audience")
    assert [a.text for a in audiences] == [AUDIENCE]
