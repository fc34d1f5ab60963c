"""Cancel (WS-Trust 1.3 §6): the caller's own token is cancelled, with the rest of its renewal chain.

The token, the tokens it was renewed from and the one that replaced it are all cancelled: none validates or
renews any more.
"""

from __future__ import annotations

from sts.errors import InvalidRequest, STSError
from sts.operations.call import TrustCall, TrustReply
from sts.operations.events import audit
from sts.operations.targets import TargetResolver, owned_record
from sts.stores.base import TokenStore
from sts.wstrust.rst import parse_rst
from sts.wstrust.rstr import cancelled_answer


class CancelOperation:
    """``RequestType …/Cancel`` → RSTR with ``RequestedTokenCancelled``; the token's renewal chain ends."""

    def __init__(self, resolver: TargetResolver, store: TokenStore) -> None:
        self._resolver = resolver
        self._store = store

    def __call__(self, call: TrustCall) -> TrustReply:
        """Cancel the caller's own token and the rest of its renewal chain."""
        request = call.request
        rst = parse_rst(request.rst, request.trust, request.operation)
        target = self._resolver.resolve(rst.target)
        try:
            record = owned_record(call, target, InvalidRequest)
            self._store.cancel(record.token_id)
        except STSError as error:
            audit(call, "cancel", "failure", token_id=target.token_id, reason=error.reason)
            raise
        audit(call, "cancel", "success", token_id=record.token_id, reason="cancelled")
        return TrustReply(cancelled_answer(request.trust, rst.context), request.operation, request.trust)
