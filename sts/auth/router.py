"""``DOMAIN/name`` → the user store that owns ``DOMAIN``, as WSO2 routes a qualified name to its user store.

The router is itself a :class:`~sts.auth.users.UserStore`, so the authenticator and the Renew subject check talk
to one object whatever stores stand behind it. Today every domain goes to the built-in SQLite store (domains are
labels on its users); a directory store joins by owning a domain of its own. A domain no store owns gets the same
refusal as an unknown user (one generic fault), with its own audit reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from sts.auth.users import UNKNOWN_DOMAIN, DigestSecret, Principal, Refusal, UserStore, normalize_domain

_NO_STORE = Refusal(UNKNOWN_DOMAIN, "no user store for the domain")


class UserStoreRouter:
    """Routes each call to the store owning the name's domain; ``fallback`` owns every domain not listed."""

    def __init__(self, stores: Mapping[str, UserStore], fallback: UserStore | None = None) -> None:
        self._stores = {normalize_domain(domain): store for domain, store in stores.items()}
        self._fallback = fallback

    @classmethod
    def single(cls, store: UserStore) -> UserStoreRouter:
        """Every domain to one store (the built-in store holds users of any domain)."""
        return cls({}, fallback=store)

    def store_for(self, domain: str) -> UserStore | None:
        """The store owning ``domain`` (a normalised domain), or None."""
        return self._stores.get(domain, self._fallback)

    def authenticate(self, domain: str, name: str, password: str) -> Principal | Refusal:
        """Check a PasswordText password with the domain's store."""
        store = self.store_for(domain)
        return _NO_STORE if store is None else store.authenticate(domain, name, password)

    def digest_secret(self, domain: str, name: str) -> DigestSecret | Refusal:
        """The PasswordDigest secret from the domain's store."""
        store = self.store_for(domain)
        return _NO_STORE if store is None else store.digest_secret(domain, name)

    def lookup(self, domain: str, name: str) -> Principal | None:
        """The user from the domain's store; None for a domain no store owns."""
        store = self.store_for(domain)
        return None if store is None else store.lookup(domain, name)
