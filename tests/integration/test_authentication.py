"""Issue 3: UsernameToken authentication against a real gunicorn with 2 workers: replay protection across
workers, a 50-way replay race, lockout across workers, and a real SOAP client (zeep) with text and digest."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import zeep
import zeep.exceptions
from lxml import etree
from zeep.wsse.username import UsernameToken

from tests.support import (
    WSSE,
    WST,
    Instance,
    Server,
    audit_records,
    fault_qname,
    make_instance,
    rst_envelope,
    start_server,
    wsu_timestamp,
)

pytestmark = pytest.mark.integration


def issued(response: requests.Response) -> bool:
    """Authentication passed and a token was issued."""
    return response.status_code == 200 and b"RequestSecurityTokenResponseCollection" in response.content


@pytest.fixture(scope="module")
def auth_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    instance = make_instance(tmp_path_factory.mktemp("auth") / "var")
    for name, extra in (("digester", ["--digest", "--role", "admin"]), ("victim", ["--role", "admin"]), ("norole", [])):
        stdin = io.StringIO("Correct-Horse-1\n")
        saved, os.sys.stdin = os.sys.stdin, stdin  # type: ignore[attr-defined]
        try:
            assert instance.cli("user", "add", name, "--password-stdin", *extra) == 0
        finally:
            os.sys.stdin = saved  # type: ignore[attr-defined]
    return instance


@pytest.fixture(scope="module")
def auth_server(auth_instance: Instance) -> Iterator[Server]:
    server = start_server(auth_instance, workers=2)
    yield server
    server.stop()


def test_valid_password_text_passes(auth_server: Server, auth_instance: Instance) -> None:
    response = auth_server.post(rst_envelope("admin", auth_instance.demo_password))
    assert issued(response), response.content


def test_wrong_password_fails(auth_server: Server) -> None:
    response = auth_server.post(rst_envelope("admin", "wrong"))
    assert response.status_code == 500
    assert fault_qname(response.content) == (WSSE, "FailedAuthentication")


def test_user_without_role_fails_with_the_same_bytes(auth_server: Server) -> None:
    no_role = auth_server.post(rst_envelope("norole", "Correct-Horse-1"))
    unknown = auth_server.post(rst_envelope("nobody-here", "Correct-Horse-1"))
    strip = lambda body: etree.tostring(_without_correlation(body))  # noqa: E731
    assert fault_qname(no_role.content) == (WSSE, "FailedAuthentication")
    assert strip(no_role.content) == strip(unknown.content)


def _without_correlation(body: bytes) -> etree._Element:
    root = etree.fromstring(body)
    for node in root.iter("{urn:python-sts:fault}CorrelationId"):
        node.text = ""
    return root


def test_replayed_nonce_rejected_by_every_worker(auth_server: Server, auth_instance: Instance) -> None:
    body = rst_envelope("admin", auth_instance.demo_password)
    first = auth_server.post(body)
    assert issued(first), first.content
    rejecting_pids: set[object] = set()
    for _ in range(10):  # concurrent rounds keep both workers busy, so both see the replay
        with ThreadPoolExecutor(max_workers=4) as pool:
            replays = list(pool.map(lambda _: auth_server.post(body), range(8)))
        assert all(fault_qname(r.content) == (WSSE, "InvalidSecurity") for r in replays)
        rejecting_pids = {r["pid"] for r in audit_records(auth_server.log) if r.get("reason") == "nonce_replayed"}
        if len(rejecting_pids) == 2:
            break
    assert len(rejecting_pids) == 2, "both workers must have rejected the replay"


def test_fifty_concurrent_copies_give_exactly_one_success(auth_server: Server, auth_instance: Instance) -> None:
    body = rst_envelope("admin", auth_instance.demo_password)
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda _: auth_server.post(body), range(50)))
    assert sum(issued(r) for r in responses) == 1
    assert sum(fault_qname(r.content) == (WSSE, "InvalidSecurity") for r in responses if not issued(r)) == 49


def test_lockout_across_workers(auth_server: Server) -> None:
    # Two at a time, so both workers count failures; the kernel decides which worker accepts a connection, so
    # keep sending (a bounded number) until both have refused the victim at least once.
    responses: list[requests.Response] = []
    wrong_pids: set[object] = set()
    with ThreadPoolExecutor(max_workers=2) as pool:
        while (len(wrong_pids) < 2 or len(responses) < 5) and len(responses) < 40:  # 5: [lockout] max_failures
            responses += pool.map(lambda _: auth_server.post(rst_envelope("victim", "bad")), range(2))
            wrong_pids = {r["pid"] for r in audit_records(auth_server.log) if r.get("user") == "victim"}
    assert all(fault_qname(r.content) == (WSSE, "FailedAuthentication") for r in responses)
    assert len(wrong_pids) == 2, "the failures must have been spread over both workers"
    locked = auth_server.post(rst_envelope("victim", "Correct-Horse-1"))
    assert fault_qname(locked.content) == (WSSE, "FailedAuthentication")
    assert audit_records(auth_server.log)[-1]["reason"] == "account_locked"


def _zeep_client(server: Server, tmp_path: Path, token: UsernameToken) -> zeep.Client:
    session = requests.Session()
    session.verify = server.verify
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace our CA file
    wsdl = tmp_path / "sts.wsdl"
    wsdl.write_bytes(requests.get(server.url + "?wsdl", verify=server.verify, timeout=30).content)
    return zeep.Client(str(wsdl), wsse=token, transport=zeep.Transport(session=session))


def _issue_with_zeep(client: zeep.Client) -> object:
    rst = client.get_element(f"{{{WST}}}RequestSecurityToken")
    request_type = etree.Element(f"{{{WST}}}RequestType")
    request_type.text = f"{WST}/Issue"
    applies = etree.fromstring(
        '<wsp:AppliesTo xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy"><wsa:EndpointReference '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>https://localhost:8443/demo-rp/'
        "</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
    )
    return client.service.Issue(_value_1=[request_type, applies], _soapheaders=[]) if rst is not None else None


@pytest.mark.parametrize("digest", [False, True], ids=["text", "digest"])
def test_zeep_username_token(auth_server: Server, auth_instance: Instance, tmp_path: Path, digest: bool) -> None:
    user, password = ("digester", "Correct-Horse-1") if digest else ("admin", auth_instance.demo_password)
    token = UsernameToken(user, password, use_digest=digest, timestamp_token=wsu_timestamp())
    client = _zeep_client(auth_server, tmp_path, token)
    result = _issue_with_zeep(client)
    (rstr,) = result.RequestSecurityTokenResponse  # zeep parsed the RSTRC with exactly one RSTR
    tags = [etree.QName(child).localname for child in rstr._value_1]
    assert tags[:2] == ["TokenType", "RequestedSecurityToken"]
    token = rstr._value_1[1][0]
    assert etree.QName(token).localname == "EncryptedAssertion"


@pytest.mark.parametrize("digest", [False, True], ids=["text", "digest"])
def test_zeep_wrong_password(auth_server: Server, tmp_path: Path, digest: bool) -> None:
    token = UsernameToken("digester", "nope", use_digest=digest, timestamp_token=wsu_timestamp())
    client = _zeep_client(auth_server, tmp_path, token)
    with pytest.raises(zeep.exceptions.Fault) as raised:
        _issue_with_zeep(client)
    assert raised.value.code.endswith("FailedAuthentication")


def test_digest_for_a_user_without_digest_secret_fails(auth_server: Server, auth_instance: Instance) -> None:
    response = auth_server.post(rst_envelope("admin", auth_instance.demo_password, digest=True))
    assert fault_qname(response.content) == (WSSE, "FailedAuthentication")


def test_password_text_refused_over_plain_http(auth_instance: Instance) -> None:
    server = start_server(auth_instance, workers=1, tls=False, env={"STS_SERVER_ALLOW_INSECURE_TRANSPORT": "false"})
    try:
        text = server.post(rst_envelope("admin", auth_instance.demo_password))
        assert fault_qname(text.content) == (WSSE, "FailedAuthentication")
        forged = requests.post(
            server.url,
            data=rst_envelope("admin", auth_instance.demo_password),
            headers={"Content-Type": "text/xml", "X-Forwarded-Proto": "https"},
            timeout=30,
        )
        assert fault_qname(forged.content) == (WSSE, "FailedAuthentication")
        digest = server.post(rst_envelope("digester", "Correct-Horse-1", digest=True))
        assert issued(digest), digest.content
    finally:
        server.stop()


def test_password_spraying_is_throttled_across_workers(auth_instance: Instance) -> None:
    server = start_server(
        auth_instance,
        workers=2,
        env={"STS_SECURITY_CLIENT_FAILURE_LIMIT": "4", "STS_SECURITY_CLIENT_FAILURE_EXEMPT": ""},
    )
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # spread over both workers
            sprayed = list(pool.map(lambda n: server.post(rst_envelope(f"spray-{n}", "Summer2026!")), range(4)))
        assert all(fault_qname(r.content) == (WSSE, "FailedAuthentication") for r in sprayed)
        refused = server.post(rst_envelope("admin", auth_instance.demo_password))
        assert fault_qname(refused.content) == (WSSE, "FailedAuthentication")
        assert audit_records(server.log)[-1]["reason"] == "client_throttled"
    finally:
        server.stop()
