"""Structured logging: one JSON object a line, with a redaction filter (OWASP Logging Cheat Sheet).

Passwords, digests, nonces, keys and whole envelopes never reach a log: messages carry only fields we chose,
and the filter below masks anything that looks like a secret in case a library logs more than it should.
Spyne logs every fault with a traceback at ERROR and can log whole envelopes at DEBUG: its loggers are capped.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

_SECRET_PATTERNS = (
    re.compile(r"(?is)(<(?:\w+:)?(?:Password|Nonce|BinarySecret|CipherValue|SignatureValue)\b[^>]*>)(.*?)(</)"),
    re.compile(r"(?i)\b(password|passphrase|nonce|secret|digest)(['\"]?\s*[=:]\s*)(['\"][^'\"]*['\"]|\S+)"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"(?is)<(?:\w+:)?Envelope\b.*"),
    re.compile(r"(?is)<(?:\w+:)?(?:Assertion|EncryptedAssertion|EncryptedData)\b.*"),
)
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


_SUSPECT = re.compile(r"(?i)<|password|passphrase|nonce|secret|digest|-----BEGIN")
_SUSPECT_MARKS = ("<", "-----begin")
_SUSPECT_WORDS = ("password", "passphrase", "nonce", "secret", "digest")


def _suspect(text: str) -> bool:
    """Whether ``text`` may hold something :func:`redact` masks: the regex above, or for ASCII text (nearly all)
    substring checks of the lower-cased text, several times faster than a case-insensitive alternation (for
    ASCII, lower-casing is exactly the regex's case folding). For ASCII, a secret word counts only where the
    keyword pattern could match it: followed by ``=`` or ``:`` (after an optional quote and blanks), so an audit
    value such as ``password-text`` does not send every field of the record through the regular expressions."""
    if not text.isascii():
        return _SUSPECT.search(text) is not None
    lowered = text.lower()
    if any(mark in lowered for mark in _SUSPECT_MARKS):
        return True
    return any(_assigned(lowered, word) for word in _SUSPECT_WORDS if word in lowered)


def _assigned(lowered: str, word: str) -> bool:
    """Whether some occurrence of ``word`` is followed by an optional quote, blanks and ``=`` or ``:``."""
    start = lowered.find(word)
    while start >= 0:
        rest = lowered[start + len(word) :].lstrip("'\"").lstrip()
        if rest[:1] in ("=", ":"):
            return True
        start = lowered.find(word, start + 1)
    return False


def redact(text: str) -> str:
    """Mask secrets in free text (one cheap test first: most log text holds nothing to mask)."""
    if not _suspect(text):
        return text
    text = _SECRET_PATTERNS[0].sub(r"\1[redacted]\3", text)
    text = _SECRET_PATTERNS[1].sub(r"\1\2[redacted]", text)
    text = _SECRET_PATTERNS[2].sub("[redacted private key]", text)
    text = _SECRET_PATTERNS[3].sub("[redacted envelope]", text)
    return _SECRET_PATTERNS[4].sub("[redacted token]", text)


class RedactionFilter(logging.Filter):
    """Rewrites every record's message (and string extras) through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drops a record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None and record.name.startswith("spyne"):
            record.exc_info = None  # Spyne's fault tracebacks carry request content
        attributes = vars(record)
        extras = [(key, value) for key in attributes.keys() - _STANDARD_ATTRS
                  if isinstance(value := attributes[key], str)]
        # One search over the message and all string extras first (NUL-joined, so no match spans two values;
        # a text with nothing to mask joins into one with nothing to mask): an audit record carries a dozen
        # fields, and almost never anything to mask.
        if _suspect("\0".join([message, *(value for _, value in extras)])):
            message = redact(message)
            for key, value in extras:
                setattr(record, key, redact(value))
        record.msg, record.args = message, None
        return True


# json.dumps would build an encoder per record. No circularity check: a record's fields are scalars (anything
# else goes through ``default=str``), and the check's bookkeeping was a fifth of the encoding time.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False, check_circular=False)
# What ensure_ascii=False leaves raw and yet breaks a line for many readers (Python's str.splitlines, log viewers):
# the C1 controls (NEL, U+0085, among them) and the Unicode line and paragraph separators. JSON allows them raw
# in a string (RFC 8259 §7); escaped, a client-supplied value cannot split its record in two.
_JSON_LINE_BREAKING = {code: f"\\u{code:04x}" for code in (*range(0x80, 0xA0), 0x2028, 0x2029)}


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    """The date and time of day of ``second`` (seconds since the epoch), UTC, ISO 8601 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _utc_time(record: logging.LogRecord) -> str:
    """The record's time as ``datetime.isoformat(timespec="milliseconds")`` writes it in UTC, from the seconds
    and milliseconds the record itself computed: the date part is formatted once a second, not per record."""
    return f"{_utc_second(int(record.created))}.{int(record.msecs):03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialize one record."""
        payload: dict[str, Any] = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        line = _ENCODER.encode(payload)
        return line if line.isascii() else line.translate(_JSON_LINE_BREAKING)


# Characters that would end or disguise a text log line: C0 and C1 controls (CR, LF, ESC, 8-bit CSI) and the
# Unicode line and paragraph separators. They come from clients (a token reference, an AppliesTo) and must
# never start a forged line or drive the operator's terminal.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BARE_VALUE = re.compile(r'[^\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029]+')


def escape_controls(text: str) -> str:
    """``text`` with every line-breaking or control character written as a ``\\xNN``/``\\uNNNN`` escape."""
    return _LINE_BREAKING.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def text_field(value: object) -> str:
    """A field's value in a text line: bare when it is one plain word, else double-quoted with ``\\``, ``"``
    and control characters escaped, so a value can neither end the line nor pass for another field. Redacted
    before it is quoted (a pass over the quoted text would take the closing quote for part of a secret)."""
    text = redact(str(value))
    if _BARE_VALUE.fullmatch(text):
        return text
    return '"' + escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


class TextFormatter(logging.Formatter):
    """``[logging] format = "text"``: one line per record, then its traceback and stack, if any.

    The line carries the message and every ``extra`` field as ``key=value`` (an audit record's correlation id,
    reason code, fault and user: without them a text log could not answer which refusal a fault's correlation
    id names); control characters in the message and the values are escaped, so a client-supplied value cannot
    write a line of its own. Everything is redacted, the traceback and stack too (the redaction filter sees the
    message and its arguments, not the exception text a formatter adds)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one redacted line (and its traceback)."""
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        fields = "".join(
            f" {key}={text_field(value)}" for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        )
        message = escape_controls(redact(record.message))
        text = f"{record.asctime} {record.levelname} {record.name}: {message}{fields}"
        if record.exc_info:
            text += "\n" + redact(self.formatException(record.exc_info))
        if record.stack_info:
            text += "\n" + redact(self.formatStack(record.stack_info))
        return text


def create_log_file(file: Path) -> None:
    """Create ``file`` readable by its owner only (0600 whatever the umask) unless it exists: the log names users
    and client addresses. An existing file keeps its mode (the operator's, or logrotate's ``create``). A file that
    cannot be created is left to the handler opening it, which reports why."""
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))
    except OSError:
        pass


def make_handler(formatter: logging.Formatter, file: Path | None = None) -> logging.Handler:
    """A handler writing to ``file`` (appending; created 0600) or stderr, with the redaction filter."""
    if file:
        create_log_file(file)
    handler: logging.Handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactionFilter())
    return handler


class RootLogging:
    """The root logger's handlers and level as they are now: :meth:`restore` puts them back when what changed them
    since failed (a refused reload keeps the running configuration's log file and level); :meth:`release` closes
    the handlers replaced since, when the change stands (a log file replaced on every reload kept its descriptor)."""

    def __init__(self) -> None:
        root = logging.getLogger()
        self._handlers, self._level = list(root.handlers), root.level

    def restore(self) -> None:
        """Back to the handlers and level of :meth:`__init__`; the handlers added since are closed."""
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in self._handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in self._handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(self._level)

    def release(self) -> None:
        """Close the handlers of :meth:`__init__` that are no longer installed."""
        installed = logging.getLogger().handlers
        for handler in self._handlers:
            if handler not in installed:
                handler.close()


def configure_logging(level: str = "INFO", fmt: str = "json", file: Path | None = None) -> None:
    """Install one handler on the root logger (idempotent), with redaction, and quiet Spyne."""
    handler = make_handler(
        JsonFormatter() if fmt == "json" else TextFormatter(),
        file,
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_sts_handler", False):
            root.removeHandler(old)
    handler._sts_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("spyne", "spyne.protocol.xml", "spyne.application", "spyne.server.wsgi"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    # signxml logs every canonicalized (plaintext) assertion at DEBUG: never let that reach a handler.
    logging.getLogger("signxml").setLevel(logging.WARNING)
