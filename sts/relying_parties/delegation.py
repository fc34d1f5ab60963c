"""A relying party's delegation policy: who may ask for its tokens on behalf of someone else, deny by default.

WS-Trust 1.3 §9.1 ``OnBehalfOf`` and WS-Trust 1.4 ``ActAs`` let a caller obtain a token naming another identity.
Nothing is allowed until an operator lists callers for the relying party (as AD FS's delegation and impersonation
authorization rules, and CXF's empty list of delegation handlers): ``sts rp update ADDR --allow-delegation CALLER``.

A caller entry is one of ``user:DOMAIN/name`` (a user, domain-qualified, compared without case), ``role:NAME``
(a role the caller holds, matched like ``[security] allowed_roles``) or ``cert:HEX`` (the SHA-256 fingerprint of
the certificate an X.509 caller proved possession of; a caller authenticated otherwise never matches it).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import StrEnum

from sts.auth.users import Principal, UserStoreError, canonical, split_qualified

MAX_DEPTH = 8  # a longer chain of services is a configuration mistake, not a deployment


class DelegationError(ValueError):
    """A delegation setting that cannot be used, with a message fit for the command line."""


class DelegationMode(StrEnum):
    """Which request element a relying party accepts: OnBehalfOf (impersonation), ActAs (recorded delegation)."""

    ON_BEHALF_OF = "onbehalfof"
    ACT_AS = "actas"
    BOTH = "both"

    def allows(self, act_as: bool) -> bool:
        """Whether a request with ActAs (``act_as``) or OnBehalfOf is allowed by this mode."""
        if self is DelegationMode.BOTH:
            return True
        return (self is DelegationMode.ACT_AS) == act_as


def normalize_caller(text: str) -> str:
    """A ``--allow-delegation`` value in its stored form: ``user:DOMAIN/name``, ``role:NAME`` or ``cert:HEX``.

    A bare name is a user (``PRIMARY`` when unqualified); a fingerprint may be written with colons and in any case.
    """
    kind, sep, value = text.strip().partition(":")
    if sep and kind.lower() == "role":
        role = value.strip()
        if not role or any(ch.isspace() for ch in role):
            raise DelegationError("role:NAME needs a role name without spaces")
        return f"role:{role}"
    if sep and kind.lower() == "cert":
        digits = value.strip().lower()
        if digits.startswith("sha256:"):
            digits = digits[len("sha256:") :]
        hex_digits = digits.replace(":", "")
        if len(hex_digits) != 64 or any(ch not in string.hexdigits for ch in hex_digits):
            raise DelegationError("cert:FINGERPRINT needs the certificate's SHA-256 fingerprint (64 hex digits)")
        return f"cert:{hex_digits}"
    name = value if sep and kind.lower() == "user" else text
    try:
        domain, user = split_qualified(name.strip())
    except UserStoreError as exc:
        raise DelegationError(f"invalid caller {text!r}: {exc}") from None
    return f"user:{domain}/{user}"


def parse_subjects(text: str) -> str:
    """``any``, ``same-domain`` or ``role:NAME``: which identities may be delegated."""
    value = text.strip()
    if value in ("any", "same-domain"):
        return value
    kind, sep, role = value.partition(":")
    if sep and kind == "role" and role.strip() and not any(ch.isspace() for ch in role.strip()):
        return f"role:{role.strip()}"
    raise DelegationError("--delegation-subjects must be any, same-domain or role:NAME")


def check_depth(depth: int) -> int:
    """A maximum chain depth: 1 (one service acting for the user) to :data:`MAX_DEPTH`."""
    if not 1 <= depth <= MAX_DEPTH:
        raise DelegationError(f"--max-delegation-depth must be between 1 and {MAX_DEPTH}")
    return depth


@dataclass(frozen=True, slots=True)
class DelegationPolicy:
    """The delegation settings of one relying party, as the operations apply them."""

    callers: tuple[str, ...] = ()
    mode: DelegationMode = DelegationMode.BOTH
    subjects: str = "same-domain"
    max_depth: int = 1

    @property
    def enabled(self) -> bool:
        """No caller listed: no delegation at all (deny by default)."""
        return bool(self.callers)

    def allows_caller(self, caller: Principal, fingerprint: str | None) -> bool:
        """Whether some entry names the caller (user), one of its roles, or the certificate it proved."""
        qualified = f"{caller.domain}/{canonical(caller.name)}".casefold()
        for entry in self.callers:
            kind, _, value = entry.partition(":")
            if kind == "user" and value.casefold() == qualified:
                return True
            if kind == "role" and caller.holds_any_role(frozenset({value.casefold()})):
                return True
            if kind == "cert" and fingerprint is not None and fingerprint.replace(":", "").lower() == value:
                return True
        return False

    def allows_subject(self, caller: Principal, subject: Principal) -> bool:
        """``any``; ``same-domain``: the subject's domain is the caller's; ``role:NAME``: the subject holds it."""
        if self.subjects == "any":
            return True
        if self.subjects == "same-domain":
            return subject.domain.casefold() == caller.domain.casefold()
        role = self.subjects.partition(":")[2]
        return subject.holds_any_role(frozenset({role.casefold()}))

    def describe(self) -> str:
        """One line for ``sts rp show``."""
        if not self.enabled:
            return "denied (no callers allowed)"
        return (
            f"{self.mode.value} by {', '.join(self.callers)} for {self.subjects}, depth <= {self.max_depth}"
        )
