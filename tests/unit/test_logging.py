"""Tests for sts.logging: redaction of secrets and the JSON-lines formatter (catalogue A13, O10)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from sts import ns
from sts.logging import JsonFormatter, RedactionFilter, TextFormatter, configure_logging, redact

CANARY = "CANARY-PW-7f3a"


# --- redact() ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "element",
    [
        f'<wsse:Password Type="{ns.PASSWORD_TEXT}">{CANARY}</wsse:Password>',
        f"<Password>{CANARY}</Password>",
        f'<wsse:Nonce EncodingType="{ns.BASE64_BINARY}">{CANARY}</wsse:Nonce>',
        f"<wst:BinarySecret>{CANARY}</wst:BinarySecret>",
        f"<xenc:CipherValue>{CANARY}</xenc:CipherValue>",
        f"<ds:SignatureValue>{CANARY}</ds:SignatureValue>",
        f"<wsse:Password>\n  {CANARY}\n</wsse:Password>",
    ],
)
def test_secret_element_text_masked(element: str) -> None:
    out = redact(f"before {element} after")
    assert CANARY not in out
    assert "[redacted]" in out
    assert out.startswith("before <") and out.endswith("> after")


def test_every_secret_element_masked_not_just_the_first() -> None:
    out = redact(f"<Password>{CANARY}</Password><Nonce>{CANARY}2</Nonce><Password>{CANARY}3</Password>")
    assert CANARY not in out
    assert out.count("[redacted]") == 3


def test_username_is_not_masked() -> None:
    assert redact("<wsse:Username>alice</wsse:Username>") == "<wsse:Username>alice</wsse:Username>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"password={CANARY}", "password=[redacted]"),
        (f"login failed password = {CANARY} for alice", "login failed password = [redacted] for alice"),
        (f"Password: {CANARY}", "Password: [redacted]"),
        (f"PASSPHRASE={CANARY}", "PASSPHRASE=[redacted]"),
        (f"nonce={CANARY}", "nonce=[redacted]"),
        (f"secret: {CANARY}", "secret: [redacted]"),
        (f"digest={CANARY}", "digest=[redacted]"),
        (f"PaSsWoRd={CANARY}", "PaSsWoRd=[redacted]"),
        # Non-ASCII text takes the case-insensitive regex, whose folding matches the long s to "s".
        (f"pa\u017f\u017fword={CANARY} caf\u00e9", "pa\u017f\u017fword=[redacted] caf\u00e9"),
    ],
)
def test_key_value_pairs_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [f"{{'password': '{CANARY}'}}", f'{{"password": "{CANARY}"}}'])
def test_quoted_key_value_pairs_masked(text: str) -> None:
    assert CANARY not in redact(text)


@pytest.mark.parametrize("kind", ["PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])
def test_pem_private_key_masked(kind: str) -> None:
    pem = f"-----BEGIN {kind}-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC{CANARY}\nabc\n-----END {kind}-----"
    out = redact(f"loaded {pem} ok")
    assert out == "loaded [redacted private key] ok"


def test_certificate_is_not_masked() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redact(pem) == pem


@pytest.mark.parametrize("prefix", ["soap:", "s12:", ""])
def test_whole_envelope_masked(prefix: str) -> None:
    envelope = (
        f'<{prefix}Envelope xmlns{":" + prefix[:-1] if prefix else ""}="{ns.S11}"><{prefix}Body>'
        f"<wst:RST>{CANARY}</wst:RST></{prefix}Body></{prefix}Envelope>"
    )
    out = redact(f"request body: {envelope}")
    assert out == "request body: [redacted envelope]"


def test_plain_text_unchanged() -> None:
    text = "issued token _abc for alice to https://rp.example.com/ in 12 ms"
    assert redact(text) == text


# --- RedactionFilter + JsonFormatter ----------------------------------------------------------------------------


@contextlib.contextmanager
def _capturing(formatter: logging.Formatter, name: str) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """The logger ``name`` writing (redacted, formatted by ``formatter``) into a string only, while in the block."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


@pytest.fixture
def logger_and_stream() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    with _capturing(JsonFormatter(), "sts.test.logging") as captured:
        yield captured


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_one_json_object_per_line_with_extra_fields(logger_and_stream: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logger_and_stream
    logger.info("issued %s", "token", extra={"correlation_id": "abc123", "duration_ms": 12.5, "user": "alice"})
    logger.warning("second\nline", extra={"reason": "x"})
    records = _lines(stream)
    assert len(records) == 2
    first = records[0]
    assert first["message"] == "issued token"
    assert first["level"] == "INFO"
    assert first["logger"] == "sts.test.logging"
    assert first["correlation_id"] == "abc123"
    assert first["duration_ms"] == 12.5
    assert first["user"] == "alice"
    assert str(first["time"]).endswith("+00:00")
    assert records[1]["message"] == "second\nline"
    assert records[1]["level"] == "WARNING"
    for standard in ("args", "msg", "levelno", "pathname", "exc_info"):
        assert standard not in first


def _freeze_clock(monkeypatch: pytest.MonkeyPatch, instant_ns: int) -> None:
    """The time a new LogRecord takes: Python 3.13 reads ``time.time_ns()``, 3.11 and 3.12 ``time.time()``."""
    monkeypatch.setattr(logging.time, "time_ns", lambda: instant_ns)
    monkeypatch.setattr(logging.time, "time", lambda: instant_ns / 1e9)


@pytest.mark.parametrize(
    "instants_ns",
    [
        # Seconds in and out of order (the date part is cached per second), a new day, a new year, the first and
        # last millisecond of a second, one nanosecond short of a millisecond, and a time that a float rounds up
        # to the next second.
        [1_765_000_000_123_456_789, 1_765_000_001_000_000_000, 1_765_000_000_999_000_000, 1_765_065_599_999_400_000],
        [1_767_225_599_998_000_000, 1_767_225_600_000_999_999, 1_677_903_920_999_999_900],
    ],
)
def test_the_time_field_is_iso_8601_utc_to_the_millisecond(
    monkeypatch: pytest.MonkeyPatch, instants_ns: list[int]
) -> None:
    """The time field is the record's time in UTC as logging's own Formatter writes it (whole milliseconds, not
    rounded up), with the offset."""
    formatter = JsonFormatter()
    oracle = logging.Formatter()
    oracle.converter = time.gmtime
    oracle.default_time_format, oracle.default_msec_format = "%Y-%m-%dT%H:%M:%S", "%s.%03d"
    for instant in instants_ns:
        _freeze_clock(monkeypatch, instant)
        record = logging.LogRecord("sts.test", logging.INFO, __file__, 1, "m", None, None)
        assert json.loads(formatter.format(record))["time"] == oracle.formatTime(record) + "+00:00"


def test_the_time_field_example(monkeypatch: pytest.MonkeyPatch) -> None:
    _freeze_clock(monkeypatch, 1_765_000_000_123_956_789)
    record = logging.LogRecord("sts.test", logging.INFO, __file__, 1, "m", None, None)
    assert json.loads(JsonFormatter().format(record))["time"] == "2025-12-06T05:46:40.123+00:00"


def test_message_and_args_redacted(logger_and_stream: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logger_and_stream
    logger.info("got %s", f"<wsse:Password>{CANARY}</wsse:Password>")
    logger.info("password=%s", CANARY)
    assert CANARY not in stream.getvalue()
    records = _lines(stream)
    assert records[0]["message"] == "got <wsse:Password>[redacted]</wsse:Password>"
    assert records[1]["message"] == "password=[redacted]"


def test_string_extras_redacted(logger_and_stream: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logger_and_stream
    logger.info("request", extra={"body": f'<s:Envelope xmlns:s="{ns.S11}">{CANARY}</s:Envelope>', "count": 3})
    [record] = _lines(stream)
    assert record["body"] == "[redacted envelope]"
    assert record["count"] == 3
    assert CANARY not in stream.getvalue()


def test_one_suspect_extra_among_many_is_redacted(logger_and_stream: tuple[logging.Logger, io.StringIO]) -> None:
    """The filter tests all string extras at once first: a secret in any one of them is still masked."""
    logger, stream = logger_and_stream
    fields = {f"field{i}": f"value {i}" for i in range(12)}
    logger.info("audit", extra={**fields, "field7": f"Nonce: {CANARY}"})
    [record] = _lines(stream)
    assert record["field7"] == "Nonce: [redacted]"
    assert record["field6"] == "value 6" and record["field8"] == "value 8"
    assert CANARY not in stream.getvalue()


def test_filter_never_drops_records() -> None:
    record = logging.makeLogRecord({"msg": "password=%s", "args": (CANARY,), "name": "x"})
    assert RedactionFilter().filter(record) is True
    assert record.getMessage() == "password=[redacted]"


def test_bad_format_args_do_not_break_the_filter() -> None:
    record = logging.makeLogRecord({"msg": "%d items", "args": ("not-a-number",), "name": "x"})
    assert RedactionFilter().filter(record) is True
    assert record.getMessage() == "%d items"


def test_spyne_tracebacks_dropped_ours_kept(logger_and_stream: tuple[logging.Logger, io.StringIO]) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    spyne = logging.makeLogRecord({"msg": "fault", "name": "spyne.application", "exc_info": exc_info})
    ours = logging.makeLogRecord({"msg": "fault", "name": "sts.soap", "exc_info": exc_info})
    RedactionFilter().filter(spyne)
    RedactionFilter().filter(ours)
    assert spyne.exc_info is None
    assert ours.exc_info is exc_info
    assert "RuntimeError: boom" in JsonFormatter().format(ours)


def test_exception_text_redacted(logger_and_stream: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logger_and_stream
    try:
        raise ValueError(f"password={CANARY}")
    except ValueError:
        logger.exception("unexpected error")
    assert CANARY not in stream.getvalue()


def test_the_text_format_redacts_tracebacks_too() -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(TextFormatter())
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger("test.text_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"password={CANARY}")
        except ValueError:
            logger.exception("unexpected error")
        logger.warning("where", stack_info=True, extra={})
    finally:
        logger.removeHandler(handler)
    written = handler.stream.getvalue()  # type: ignore[attr-defined]
    assert "ValueError" in written and CANARY not in written


def test_configure_logging_is_idempotent_and_quiets_spyne() -> None:
    root = logging.getLogger()
    before_handlers, before_level = list(root.handlers), root.level
    try:
        configure_logging("WARNING", "json")
        configure_logging("INFO", "text")
        ours = [h for h in root.handlers if getattr(h, "_sts_handler", False)]
        assert len(ours) == 1
        assert root.level == logging.INFO
        assert not isinstance(ours[0].formatter, JsonFormatter)
        assert any(isinstance(f, RedactionFilter) for f in ours[0].filters)
        assert logging.getLogger("spyne.protocol.xml").level == logging.CRITICAL
    finally:
        for handler in list(root.handlers):
            if handler not in before_handlers:
                root.removeHandler(handler)
        root.setLevel(before_level)


_SUSPECT_CASES = [
    "password=hunter2", "PASSWORD: hunter2", "password '  = x", "password\t\t\t" + " " * 60 + "= x", "nonce:abc",
    "my secret=1", "digest =x", "passphrase\"=x", "<wsse:Password>x</wsse:Password>", "-----BEGIN PRIVATE KEY-----",
    "password-text", "password-digest", "the password is long", "digest", "nonce_replayed", "secret santa",
    "x password y = z", "Pässword=x", "pässwort: x", "über password=x",
]


@pytest.mark.parametrize("text", _SUSPECT_CASES)
def test_the_cheap_pre_test_never_misses_what_redaction_masks(text: str) -> None:
    from sts.logging import _suspect

    assert redact(text) == text or _suspect(text)


@pytest.mark.parametrize("text", ["password-text", "password-digest", "nonce_replayed", "digest_not_supported"])
def test_audit_values_naming_a_secret_word_are_not_suspect(text: str) -> None:
    from sts.logging import _suspect

    assert not _suspect(text)
    assert redact(text) == text


# --- TextFormatter: fields, and no forged lines -------------------------------------------------------------------


def _text_lines(emit: Callable[[logging.Logger], None]) -> str:
    with _capturing(TextFormatter(), "sts.test.text_fields") as (logger, stream):
        emit(logger)
    return stream.getvalue()


def test_the_text_format_writes_the_extra_fields() -> None:
    written = _text_lines(lambda logger: logger.warning("request failure", extra={
        "audit_event": "request", "correlation_id": "3f2c", "fault": "FailedAuthentication",
        "reason": "wrong_password", "user": "Alice Smith", "duration_ms": 12.5,
    }))
    assert written.endswith(
        " WARNING sts.test.text_fields: request failure audit_event=request correlation_id=3f2c"
        ' fault=FailedAuthentication reason=wrong_password user="Alice Smith" duration_ms=12.5\n'
    )


@pytest.mark.parametrize("breaking", ["\n", "\r", "\x1b[2J", "\x85", "\u2028", "\x0b", "\x1c"])
def test_no_value_or_message_starts_a_line_of_its_own(breaking: str) -> None:
    forged = f"x{breaking}2026-01-01 00:00:00,000 INFO sts.audit: issue success"
    written = _text_lines(lambda logger: logger.info(forged, extra={"token_id": forged, "quoted": 'a" b=\\'}))
    assert len(written.splitlines()) == 1  # splitlines breaks at every character a log viewer might
    assert breaking not in written.removesuffix("\n")
    assert 'quoted="a\\" b=\\\\"' in written


def test_the_text_format_redacts_fields_and_keeps_their_quotes() -> None:
    written = _text_lines(lambda logger: logger.info("x", extra={"detail": f"password={CANARY}", "next": "1"}))
    assert CANARY not in written
    assert written.rstrip("\n").endswith(' detail="password=[redacted]" next=1')


@pytest.mark.parametrize("breaking", ["\x85", "\u2028", "\u2029", "\x9b"])
def test_a_json_record_is_one_line_to_every_reader(
    logger_and_stream: tuple[logging.Logger, io.StringIO], breaking: str
) -> None:
    """JSON allows these raw in a string, and ensure_ascii=False left them so: str.splitlines (sts explain's
    reader was one) and log viewers broke the record in two, hiding it; escaped, the value reads back the same."""
    logger, stream = logger_and_stream
    logger.warning("validate invalid", extra={"token_id": f"_a{breaking}b", "user": "José"})
    assert len(stream.getvalue().splitlines()) == 1
    assert breaking not in stream.getvalue()  # not even an 8-bit CSI for a terminal that tails the log
    (record,) = _lines(stream)
    assert (record["token_id"], record["user"]) == (f"_a{breaking}b", "José")
