"""WS-Trust 1.3 / 1.4 / February 2005 vocabulary: the version enum and its URIs (:mod:`~sts.wstrust.version`), the
bindings, token and key types, request parsing, response writing and proof keys."""
