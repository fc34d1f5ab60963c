"""The lockout counters of one login, whatever spelling of the name it typed.

A name as typed is not always the account it reaches: a directory matches ``alice@corp.example`` (a UPN) and
``alice`` to one entry, and compares names more loosely than our case-folding (Active Directory ignores width,
so a fullwidth ``ａｌｉｃｅ`` finds ``alice``); a chained unqualified login may reach another domain's account. The
authenticator checks the typed name's key before any store is asked (a locked account costs no round trip);
the store asks :meth:`AccountLocks.locked` for the key of the account it found before it checks a password, and
names that account in a wrong password's refusal, so failures count on the account and no spelling gets a fresh
run of guesses (OWASP Authentication Cheat Sheet, "Account Lockout"; README "Lockout").
"""

from __future__ import annotations

import logging

from sts import telemetry
from sts.auth.users import Principal, account_key
from sts.stores.base import LockoutStore, LockState

_LOG = logging.getLogger("sts.auth")


class AccountLocks:
    """The lock states one login reads and the failures it records; ``typed`` is the key of the name as typed,
    whose state (``typed_state``) the authenticator read already."""

    def __init__(self, lockout: LockoutStore, now: float, typed: str, typed_state: LockState | None) -> None:
        self._lockout = lockout
        self._now = now
        self._states: dict[str, LockState | None] = {typed: typed_state}
        self.typed = typed

    def locked(self, key: str) -> bool:
        """Whether the account of ``key`` is locked now (a :data:`~sts.auth.users.LockCheck`); each key read once."""
        if key not in self._states:
            self._states[key] = self._lockout.state(key)
        state = self._states[key]
        return state is not None and state.locked_until > self._now

    def locked_meanwhile(self, principal: Principal) -> bool:
        """Whether the account (or the typed name's key) is locked now, read again after its password was checked:
        guesses sent together each pass the lock check before any of them records its failure, so one that is
        right may finish after the others have locked the account. Refused then, like every request from the
        moment the account locks (and a success never clears a lock it did not see)."""
        for key in dict.fromkeys((self.typed, account_key(principal.domain, principal.name))):
            state = self._lockout.state(key)
            self._states[key] = state
            if state is not None and state.locked_until > self._now:
                return True
        return False

    def record_failures(self, accounts: tuple[str, ...]) -> None:
        """A wrong password: one failure for each account whose password was checked (the typed name's key when
        the store named none)."""
        for key in accounts or (self.typed,):
            was_locked = self.locked(key)  # read before the failure, if the store did not ask
            state = self._lockout.record_failure(key, self._now)
            if state.locked_until > self._now and not was_locked:
                telemetry.note("account_locked")
                _LOG.warning("account locked", extra={"user": key, "locked_until": state.locked_until})

    def reset(self, principal: Principal) -> None:
        """A success: the run of consecutive failures ends, for the typed key and the account's own (of the keys
        this login read, those with a counter: usually none, and then nothing is written)."""
        if all(state is None for state in self._states.values()):
            return
        for key in dict.fromkeys((self.typed, account_key(principal.domain, principal.name))):
            if self._states.get(key) is not None:
                self._lockout.reset(key)
