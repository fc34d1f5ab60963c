"""A WS-Trust client library: the requestor's side of the four bindings, and token inspection.

``sts request``, ``sts validate|renew|cancel`` and ``sts token inspect`` are a thin layer over it::

    from sts.client import Connection, IssueOptions, request_token

    connection = Connection(url="https://sts.example.com/services/wso2carbon-sts", username="alice")
    issued = request_token(IssueOptions(connection, applies_to="https://rp.example.com/"), password)

Modules: :mod:`~sts.client.options` (what a call asks for), :mod:`~sts.client.rst` (the request envelopes),
:mod:`~sts.client.transport` (the HTTP POST), :mod:`~sts.client.response` (reading the answer),
:mod:`~sts.client.operations` (one call per binding), :mod:`~sts.client.inspection` (decrypt and verify a token
as its relying party would), :mod:`~sts.client.tokenfile` (token files). Failures are a
:class:`~sts.client.errors.ClientError`, or its :class:`~sts.client.errors.FaultReceived` for a SOAP fault.
"""

from __future__ import annotations

from sts.client.errors import ClientError, Fault, FaultReceived, clean
from sts.client.inspection import DecryptionKeyNeeded, Inspection, inspect_token, load_certificate_file
from sts.client.operations import (
    cancel_token,
    new_client_entropy,
    renew_token,
    request_token,
    validate_token,
)
from sts.client.options import (
    Connection,
    InspectOptions,
    IssueOptions,
    PublicKey,
    SymmetricKey,
    TargetOptions,
)
from sts.client.response import IssuedToken, ProofKey, ValidationStatus
from sts.client.tokenfile import read_target_token

__all__ = [
    "ClientError",
    "Connection",
    "DecryptionKeyNeeded",
    "Fault",
    "FaultReceived",
    "InspectOptions",
    "Inspection",
    "IssueOptions",
    "IssuedToken",
    "ProofKey",
    "PublicKey",
    "SymmetricKey",
    "TargetOptions",
    "ValidationStatus",
    "cancel_token",
    "clean",
    "inspect_token",
    "load_certificate_file",
    "new_client_entropy",
    "read_target_token",
    "renew_token",
    "request_token",
    "validate_token",
]
