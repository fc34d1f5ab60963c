"""Shared, atomic stores (replay cache, counters, tokens) and the SQLite database behind them."""
