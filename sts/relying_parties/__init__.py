"""Relying parties: the endpoints tokens are issued for, a domain of their own.

- :mod:`~sts.relying_parties.model`: a relying party and its settings, parsed once into string enums;
- :mod:`~sts.relying_parties.matching`: AppliesTo normalisation and matching (exact, prefix, anchored regex);
- :mod:`~sts.relying_parties.profiles`: compatibility profiles, which fill the settings a relying party leaves unset;
- :mod:`~sts.relying_parties.registry`: the registration rules, over a :class:`RelyingPartyStore` protocol
  (the SQLite implementation is :mod:`sts.stores.sqlite_relying_parties`);
- :mod:`~sts.relying_parties.caches`: certificates parsed once per file, encrypters built once per worker;
- :mod:`~sts.relying_parties.directory`: the run-time view, by AppliesTo or by registered identity;
- :mod:`~sts.relying_parties.certificates`: their certificates in the truststore (vetting, install with rollback);
- :mod:`~sts.relying_parties.registration`: one call per ``sts rp`` action.

Importing the package imports none of them: each caller names the module it needs.
"""
