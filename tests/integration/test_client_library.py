"""The client library (sts.client) against the real server: gunicorn with 2 workers over TLS on 127.0.0.1.

Issue (symmetric, PSHA1, renewable) → inspect as the relying party (the proof key it finds equals the client's)
→ Validate (inline) → Renew → Validate (by ID) → Cancel → Validate (invalid) → Renew refused, for WS-Trust 1.3 /
SOAP 1.1 / SAML 2.0 and Feb 2005 / SOAP 1.2 / SAML 1.1.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from sts.client import (
    Connection,
    FaultReceived,
    InspectOptions,
    IssueOptions,
    SymmetricKey,
    TargetOptions,
    cancel_token,
    inspect_token,
    new_client_entropy,
    renew_token,
    request_token,
    validate_token,
)
from sts.crypto.keygen import load_private_key
from sts.crypto.keywrap import unwrap_key
from sts.wstrust.model import Renewing
from sts.wstrust.tokentypes import SamlVersion
from tests.support import Instance, Server, audit_records

pytestmark = pytest.mark.integration

DEMO_RP = "https://localhost:8443/demo-rp/"


@pytest.mark.parametrize(
    ("trust_ns", "soap_ns", "version"),
    [(ns.WST, ns.S11, SamlVersion.SAML20), (ns.WST05, ns.S12, SamlVersion.SAML11)],
    ids=["wst13-soap11-saml20", "wst2005-soap12-saml11"],
)
def test_token_lifecycle(
    instance: Instance, server: Server, tmp_path: Path, trust_ns: str, soap_ns: str, version: SamlVersion
) -> None:
    password = instance.demo_password
    connection = Connection(
        url=server.url, username="admin", soap_ns=soap_ns, trust_ns=trust_ns, cafile=instance.ca_file
    )
    key = SymmetricKey(entropy=new_client_entropy())
    options = IssueOptions(connection, applies_to=DEMO_RP, token_type=version, key=key, renewing=Renewing())
    issued = request_token(options, password)
    assert issued.encrypted and issued.token_id
    assert issued.proof_key is not None and issued.proof_key.computed and issued.proof_key.bits == 256

    token_file = tmp_path / "token.xml"
    token_file.write_bytes(etree.tostring(issued.token))
    inspection = inspect_token(InspectOptions(token_file, instance.signing_cert, rp_key=instance.rp_key))
    assert inspection.valid and inspection.assertion is not None
    assert (inspection.assertion.version, inspection.assertion.subject) == (version, "admin")
    assert inspection.assertion.assertion_id == issued.token_id
    assert dict(inspection.rows)["validity"] == "within NotBefore/NotOnOrAfter"
    encrypted_key = inspection.assertion.signed.find(f".//{{{ns.DS}}}KeyInfo/{{{ns.XENC}}}EncryptedKey")
    assert encrypted_key is not None
    assert unwrap_key(encrypted_key, load_private_key(instance.rp_key, None)) == issued.proof_key.key

    inline = TargetOptions(connection, token=issued.token)
    assert validate_token(inline, password).valid
    renewed = renew_token(inline, password)
    assert renewed.token_id and renewed.token_id != issued.token_id
    assert renewed.proof_key_problem == ""
    by_id = TargetOptions(connection, token_id=renewed.token_id, id_version=version)
    assert validate_token(by_id, password).valid

    cancel_token(TargetOptions(connection, token=renewed.token), password)
    status = validate_token(by_id, password)
    assert not status.valid and status.reason
    with pytest.raises(FaultReceived) as raised:
        renew_token(TargetOptions(connection, token=renewed.token), password)
    assert (raised.value.fault.namespace, raised.value.fault.code.rpartition(":")[2]) == (trust_ns, "UnableToRenew")


def test_refusals_are_faults(instance: Instance, server: Server) -> None:
    connection = Connection(url=server.url, username="nobody", cafile=instance.ca_file)
    with pytest.raises(FaultReceived) as raised:
        request_token(IssueOptions(connection, applies_to=DEMO_RP), "not the password")
    assert (raised.value.fault.namespace, raised.value.fault.code.rpartition(":")[2]) == (
        ns.WSSE,
        "FailedAuthentication",
    )
    # The correlation id the fault carries is the key of the refusal's audit record, which names the reason.
    correlation = raised.value.fault.correlation_id
    assert re.fullmatch(r"[0-9a-f]{32}", correlation)
    assert str(raised.value).endswith(f"[correlation id {correlation}]")
    deadline = time.monotonic() + 5  # the worker may write the record just after answering
    while not (reasons := _reasons(server, correlation)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "unknown_user" in reasons


def _reasons(server: Server, correlation: str) -> list[object]:
    return [r.get("reason") for r in audit_records(server.log) if r.get("correlation_id") == correlation]
