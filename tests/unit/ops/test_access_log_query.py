"""The access log's view of a query string (sts.gunicorn_logging.loggable_query): names, never values."""

from __future__ import annotations

import pytest

from sts.gunicorn_logging import loggable_query


@pytest.mark.parametrize(("query", "logged"), [
    ("", ""),
    ("wsdl", "wsdl"),
    ("WSDL", "WSDL"),
    ("wsdl=", "wsdl="),
    ("user=alice&password=hunter2", "user=[redacted]&password=[redacted]"),
    ("access_token=eyJhbGciOi.x.y", "access_token=[redacted]"),
    ("eyJhbGciOi.SECRET", "[redacted]"),  # a bare parameter may be the credential itself
    ("pass%77ord=zz&x=", "[redacted]&x=[redacted]"),  # an encoded name is masked whole
    ("a=1;b", "a=[redacted];[redacted]"),
    ("wsdl&token=t", "[redacted]&token=[redacted]"),  # only a query of "wsdl" alone is the WSDL request
    ("&&", "&&"),
])
def test_query_values_never_logged(query: str, logged: str) -> None:
    assert loggable_query(query) == logged
