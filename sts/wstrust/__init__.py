"""WS-Trust 1.3 / 1.4 / February 2005: request parsing, response writing, actions and proof keys."""
