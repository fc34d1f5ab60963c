"""TrustVersion: every URI that differs between WS-Trust 1.3 and February 2005, spelled out literally."""

from __future__ import annotations

import pytest

from sts import ns
from sts.wstrust.actions import Operation
from sts.wstrust.tokentypes import KeyKind
from sts.wstrust.version import TrustVersion

T13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
T05 = "http://schemas.xmlsoap.org/ws/2005/02/trust"
NO_PROOF_KEY = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"


def test_versions_are_the_namespaces_of_sts_ns() -> None:
    assert [v.namespace for v in TrustVersion] == [ns.WST, ns.WST05] == [T13, T05]
    assert TrustVersion.of_namespace(T13) is TrustVersion.TRUST13
    assert TrustVersion.of_namespace(T05) is TrustVersion.FEB2005
    # WS-Trust 1.4 only adds extension elements to the 1.3 namespace: no request is written in its namespace.
    for other in (ns.WST14, T13 + "/", "", None):
        assert TrustVersion.of_namespace(other) is None


@pytest.mark.parametrize(
    ("trust", "base", "issue_answer", "renew_answer"),
    [
        (TrustVersion.TRUST13, T13, f"{T13}/RSTRC/IssueFinal", f"{T13}/RSTR/RenewFinal"),
        (TrustVersion.FEB2005, T05, f"{T05}/RSTR/Issue", f"{T05}/RSTR/Renew"),
    ],
)
def test_request_types_and_actions(trust: TrustVersion, base: str, issue_answer: str, renew_answer: str) -> None:
    assert trust.qn("RequestSecurityToken") == f"{{{base}}}RequestSecurityToken"
    assert trust.request_type(Operation.VALIDATE) == f"{base}/Validate"
    assert trust.request_action(Operation.CANCEL) == f"{base}/RST/Cancel"
    assert trust.response_action(Operation.ISSUE) == issue_answer
    assert trust.response_action(Operation.RENEW) == renew_answer
    for operation in Operation:
        assert trust.operation_of_request_type(f"{base}/{operation.value}") is operation
        assert trust.operation_of_action(f"{base}/RST/{operation.value}") is operation
    other = T05 if base == T13 else T13
    assert trust.operation_of_request_type(f"{other}/Issue") is None  # the other version's URI
    assert trust.operation_of_action(f"{other}/RST/Issue") is None
    assert trust.operation_of_action(f"{base}/RSTR/Issue") is None  # an answer's action, not a request's
    assert trust.operation_of_request_type(f"{base}/issue") is None  # URIs compare exactly


@pytest.mark.parametrize(("trust", "base"), [(TrustVersion.TRUST13, T13), (TrustVersion.FEB2005, T05)])
def test_key_types_and_secrets(trust: TrustVersion, base: str) -> None:
    assert trust.bearer == f"{base}/Bearer"
    assert trust.key_type(KeyKind.SYMMETRIC) == f"{base}/SymmetricKey"
    assert trust.key_type(KeyKind.PUBLIC) == f"{base}/PublicKey"
    for kind in KeyKind:
        assert trust.key_kind_of(trust.key_type(kind)) is kind
    assert trust.psha1 == f"{base}/CK/PSHA1"
    assert trust.nonce == f"{base}/Nonce"
    assert trust.symmetric_key == f"{base}/SymmetricKey"


def test_no_proof_key_is_a_bearer_spelling_of_feb_2005_only() -> None:
    assert TrustVersion.FEB2005.key_kind_of(NO_PROOF_KEY) is KeyKind.BEARER
    assert TrustVersion.TRUST13.key_kind_of(NO_PROOF_KEY) is None
    assert TrustVersion.TRUST13.key_kind_of(f"{T05}/Bearer") is None


@pytest.mark.parametrize(("trust", "base"), [(TrustVersion.TRUST13, T13), (TrustVersion.FEB2005, T05)])
def test_validate_status(trust: TrustVersion, base: str) -> None:
    assert trust.status_token_type == f"{base}/RSTR/Status"
    assert trust.status_code(True) == f"{base}/status/valid"
    assert trust.status_code(False) == f"{base}/status/invalid"


def test_only_trust_13_answers_issue_with_a_collection() -> None:
    assert TrustVersion.TRUST13.issue_answer_is_collection
    assert not TrustVersion.FEB2005.issue_answer_is_collection
