"""The four WS-Trust bindings (WS-Trust 1.3 §3.1). Their RequestType and action URIs depend on the version:
:class:`sts.wstrust.version.TrustVersion`."""

from __future__ import annotations

from enum import Enum


class Operation(Enum):
    """The four WS-Trust bindings."""

    ISSUE = "Issue"
    RENEW = "Renew"
    VALIDATE = "Validate"
    CANCEL = "Cancel"
