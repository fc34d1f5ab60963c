"""The WS-Trust versions the STS speaks, with every URI that differs between them.

A request's version is the namespace of its Body child; everything the answer says is then spelled in that
version: element names, RequestType and action URIs, key types (WS-Trust 1.3 §9.2), the P_SHA1 computed-key
algorithm (§4.4.4), ``BinarySecret`` types (§3.3), and the Validate status codes (§7). WS-Trust 1.4 shares the
1.3 namespace and adds only extension elements, so it is not a version of its own here.
"""

from __future__ import annotations

from enum import Enum

from sts import ns
from sts.wstrust.actions import Operation
from sts.wstrust.tokentypes import NO_PROOF_KEY, KeyKind


class TrustVersion(Enum):
    """WS-Trust 1.3 (OASIS, 2007) or the February 2005 submission; the value is the namespace URI."""

    TRUST13 = ns.WST
    FEB2005 = ns.WST05

    @property
    def namespace(self) -> str:
        """The namespace URI of the version's elements."""
        return self.value

    @classmethod
    def of_namespace(cls, namespace: str | None) -> TrustVersion | None:
        """The version whose namespace this is, or None."""
        for version in cls:
            if version.value == namespace:
                return version
        return None

    def qn(self, local: str) -> str:
        """The Clark name of an element of this version: ``{namespace}local``."""
        return ns.qn(self.value, local)

    def request_type(self, operation: Operation) -> str:
        """The RequestType URI of an operation: ``{ns}/Issue`` etc. (WS-Trust 1.3 §3.1)."""
        return f"{self.value}/{operation.value}"

    def request_action(self, operation: Operation) -> str:
        """The action a request for ``operation`` carries: ``{ns}/RST/Issue`` etc."""
        return f"{self.value}/RST/{operation.value}"

    def response_action(self, operation: Operation) -> str:
        """The action of the answer: ``{wst}/RSTRC/IssueFinal``, ``{wst}/RSTR/RenewFinal``, ``{wst05}/RSTR/Issue``."""
        if self is TrustVersion.FEB2005:
            return f"{self.value}/RSTR/{operation.value}"
        if operation is Operation.ISSUE:
            return f"{self.value}/RSTRC/IssueFinal"
        return f"{self.value}/RSTR/{operation.value}Final"

    def operation_of_request_type(self, uri: str) -> Operation | None:
        """The operation a RequestType URI names in this version, or None."""
        return _REQUEST_TYPES[self].get(uri)

    def operation_of_action(self, action: str) -> Operation | None:
        """The operation a request action names in this version, or None."""
        return _REQUEST_ACTIONS[self].get(action)

    def key_type(self, kind: KeyKind) -> str:
        """The KeyType URI of a key kind (WS-Trust 1.3 §9.2): ``{ns}/Bearer``, ``{ns}/SymmetricKey``…"""
        return f"{self.value}/{kind.value}"

    @property
    def bearer(self) -> str:
        """The Bearer KeyType URI, what the STS answers when no KeyType was asked for."""
        return self.key_type(KeyKind.BEARER)

    def key_kind_of(self, uri: str) -> KeyKind | None:
        """The key kind a KeyType URI names in this version, or None; February 2005 clients (WIF) also spell
        Bearer ``wsid:NoProofKey``."""
        if self is TrustVersion.FEB2005 and uri == NO_PROOF_KEY:
            return KeyKind.BEARER
        return _KEY_KINDS[self].get(uri)

    @property
    def psha1(self) -> str:
        """The computed-key algorithm ``{ns}/CK/PSHA1`` (WS-Trust 1.3 §4.4.4)."""
        return f"{self.value}/CK/PSHA1"

    @property
    def nonce(self) -> str:
        """The ``BinarySecret`` type of entropy: ``{ns}/Nonce`` (WS-Trust 1.3 §3.3)."""
        return f"{self.value}/Nonce"

    @property
    def symmetric_key(self) -> str:
        """The ``BinarySecret`` type of a symmetric key: ``{ns}/SymmetricKey`` (WS-Trust 1.3 §3.3)."""
        return f"{self.value}/SymmetricKey"

    @property
    def status_token_type(self) -> str:
        """The TokenType of a Validate answer that carries only a Status: ``{ns}/RSTR/Status`` (WS-Trust 1.3 §7)."""
        return f"{self.value}/RSTR/Status"

    def status_code(self, valid: bool) -> str:
        """The Validate ``Status/Code``: ``{ns}/status/valid`` or ``{ns}/status/invalid`` (WS-Trust 1.3 §7)."""
        return f"{self.value}/status/{'valid' if valid else 'invalid'}"

    @property
    def issue_answer_is_collection(self) -> bool:
        """WS-Trust 1.3 answers Issue with an RSTRC holding one RSTR (§4.3); February 2005 with a bare RSTR."""
        return self is TrustVersion.TRUST13


# What key_type, request_type and request_action write, read back per version: made once, since every request
# looks its RequestType and action up, and every Issue its KeyType.
_KEY_KINDS = {version: {version.key_type(kind): kind for kind in KeyKind} for version in TrustVersion}
_REQUEST_TYPES = {version: {version.request_type(op): op for op in Operation} for version in TrustVersion}
_REQUEST_ACTIONS = {version: {version.request_action(op): op for op in Operation} for version in TrustVersion}
