"""The Redis cache backend (``[cache] backend = "redis"``): hot, expiring state shared by several nodes.

:mod:`~sts.stores.redis.client` holds the connection (per worker process, bounded timeouts, never retried) and
:mod:`~sts.stores.redis.stores` the replay cache, lockout and throttle counters and credential versions on it.
Only these modules import redis-py, and :mod:`sts.stores.factory` imports them only when the backend is configured,
so a single host on SQLite never loads it. This ``__init__`` imports nothing.
"""
