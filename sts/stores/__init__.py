"""Shared, atomic stores (replay cache, counters, tokens), the SQLite database behind them, and the factory that
builds every store of an instance (:mod:`sts.stores.factory`)."""
