"""``DOMAIN/name`` → the user store that owns ``DOMAIN``, as WSO2 routes a qualified name to its user store.

The router is itself a :class:`~sts.auth.users.UserStore`, so the authenticator and the Renew subject check talk
to one object whatever stores stand behind it. The built-in SQLite store owns every domain no ``[[user_stores]]``
directory owns (there, domains are labels on its users); a directory store owns its own domain. A domain no store
owns gets the same refusal as an unknown user (one generic fault), with its own audit reason.

An unqualified name goes to PRIMARY; with ``unqualified_login = "chain"`` it is tried on PRIMARY and then on each
further domain in configured order, as WSO2 does (``AbstractUserStoreManager`` tries its chained stores).

The router also knows the NetBIOS names of its Active Directory domains (``netbios_name``), so that a typed
down-level logon name ``NETBIOS\\sam`` is read as ``DOMAIN/sam`` by :meth:`UserStoreRouter.parse`, the one parser of
:func:`~sts.auth.users.parse_user_name` with this configuration's names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sts.auth.users import (
    UNKNOWN_DOMAIN,
    DigestSecret,
    LockCheck,
    Principal,
    Refusal,
    UserName,
    UserStore,
    normalize_domain,
    parse_user_name,
)
from sts.errors import ServiceUnavailable

_NO_STORE = Refusal(UNKNOWN_DOMAIN, "no user store for the domain")


class UserStoreRouter:
    """Routes each call to the store owning the name's domain; ``fallback`` owns every domain not listed."""

    def __init__(
        self,
        stores: Mapping[str, UserStore],
        fallback: UserStore | None = None,
        chain: Iterable[str] = (),
        down_level: Mapping[str, str] | None = None,
    ) -> None:
        self._stores = {normalize_domain(domain): store for domain, store in stores.items()}
        self._fallback = fallback
        self.chain = tuple(normalize_domain(domain) for domain in chain)
        self._down_level = {netbios.casefold(): normalize_domain(d) for netbios, d in (down_level or {}).items()}
        if not set(self._down_level.values()) <= set(self._stores):
            # A NetBIOS name is a directory's: one naming a domain of the built-in store would let a typed
            # backslash reach a store that never had down-level names.
            raise ValueError("a NetBIOS name must belong to a directory domain of the router")

    def parse(self, text: str) -> UserName:
        """A typed user name split into its domain and name: ``DOMAIN/name``, ``NETBIOS\\name`` of a directory with
        that ``netbios_name``, or a bare name of PRIMARY (:func:`~sts.auth.users.parse_user_name`)."""
        return parse_user_name(text, down_level=self._down_level)

    @classmethod
    def single(cls, store: UserStore) -> UserStoreRouter:
        """Every domain to one store (the built-in store holds users of any domain)."""
        return cls({}, fallback=store)

    @property
    def directories(self) -> Mapping[str, UserStore]:
        """The stores that own a domain of their own, by domain."""
        return dict(self._stores)

    def store_for(self, domain: str) -> UserStore | None:
        """The store owning ``domain`` (a normalised domain), or None."""
        return self._stores.get(domain, self._fallback)

    def authenticate(
        self, domain: str, name: str, password: str, *, locked: LockCheck | None = None
    ) -> Principal | Refusal:
        """Check a PasswordText password with the domain's store (``locked``: see :data:`~sts.auth.users.LockCheck`)."""
        store = self.store_for(domain)
        return _NO_STORE if store is None else store.authenticate(domain, name, password, locked=locked)

    def digest_secret(self, domain: str, name: str) -> DigestSecret | Refusal:
        """The PasswordDigest secret from the domain's store."""
        store = self.store_for(domain)
        return _NO_STORE if store is None else store.digest_secret(domain, name)

    def lookup(self, domain: str, name: str) -> Principal | None:
        """The user from the domain's store; None for a domain no store owns."""
        store = self.store_for(domain)
        return None if store is None else store.lookup(domain, name)

    def authenticate_chain(
        self, domains: Iterable[str], name: str, password: str, *, locked: LockCheck | None = None
    ) -> Principal | Refusal:
        """An unqualified name tried on each of ``domains`` in order; the first store that accepts it wins.

        When none does, the answer is a wrong password if any store checked one (it counts towards the lockout of
        every account whose password was wrong), else the first refusal; a store that could not answer fails the
        login only if no later store accepts.
        """
        refusals: list[Refusal] = []
        unavailable: ServiceUnavailable | None = None
        for domain in domains:
            try:
                verdict = self.authenticate(domain, name, password, locked=locked)
            except ServiceUnavailable as exc:
                unavailable = unavailable or exc
                continue
            if isinstance(verdict, Principal):
                return verdict
            refusals.append(verdict)
        if unavailable is not None:
            raise unavailable
        wrong = [refusal for refusal in refusals if refusal.wrong_password]
        if wrong or refusals:
            first = (wrong or refusals)[0]
            accounts = tuple(account for refusal in wrong for account in refusal.accounts)
            # The audit names one account only when one is meant: not when wrong passwords hit several.
            account = first.account if len(accounts) <= 1 else ""
            return Refusal(first.reason, first.detail, any(r.password_checked for r in refusals), accounts, account)
        return _NO_STORE

    def close(self) -> None:
        """Release the connections of the stores that hold any (directories)."""
        for store in self._stores.values():
            close = getattr(store, "close", None)
            if callable(close):
                close()
