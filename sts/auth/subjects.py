"""The subject of a token as the user store has it now, and whether a fresh Issue would still serve it.

A renewal mints a new token for a subject that authenticated earlier; between the two the operator may have
disabled or removed the user, taken a role away or changed claim values. The authenticator's verified-credential
cache may still hold the principal as it was, so this looks the user up again, bypassing that cache, and applies
the same rules the authenticator applies to an Issue caller (domain, enabled, role). A refusal is the same
``wsse:FailedAuthentication`` a fresh Issue would get (WSS 1.1 §12), with the real reason in the audit log only.
"""

from __future__ import annotations

from sts.auth.router import UserStoreRouter
from sts.auth.users import Principal, UserStoreError, split_qualified
from sts.auth.validators import AuthPolicy
from sts.config.settings import ALL_DOMAINS
from sts.errors import FailedAuthentication


class SubjectAuthorizer:
    """Re-reads a subject from the user store and checks the Issue rules of ``[security]`` against it."""

    def __init__(self, users: UserStoreRouter, policy: AuthPolicy) -> None:
        self._users = users
        self._domains = policy.allowed_domains
        self._roles = frozenset(role.casefold() for role in policy.allowed_roles)

    def authorize(self, qualified_name: str, also_roles: frozenset[str] | None = None) -> Principal:
        """The current principal for ``DOMAIN/name``; ``also_roles``: a second set of which it must hold one."""
        try:
            # A subject is a name this STS wrote (DOMAIN/name; a PRIMARY user bare) or DOMAIN/ + a mapped name, never
            # a typed one: no down-level reading, or the PRIMARY user named TEST\\bob would become CORP/bob.
            domain, name = split_qualified(qualified_name)
        except UserStoreError:
            raise FailedAuthentication("malformed subject", reason="bad_username") from None
        if ALL_DOMAINS not in self._domains and domain not in self._domains:
            raise FailedAuthentication("domain not allowed", reason="domain_denied")
        principal = self._users.lookup(domain, name)
        if principal is None:
            raise FailedAuthentication("unknown user", reason="unknown_user")
        if not principal.enabled:
            raise FailedAuthentication("user disabled", reason="user_disabled")
        if not principal.holds_any_role(self._roles):
            raise FailedAuthentication("subject holds none of the allowed roles", reason="role_denied")
        if also_roles is not None and not principal.holds_any_role(frozenset(r.casefold() for r in also_roles)):
            raise FailedAuthentication("subject holds none of the lifecycle roles", reason="role_denied")
        return principal
