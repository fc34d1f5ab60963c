"""gunicorn's access log, written where the application log goes (stderr or ``[logging] file``), as text or JSON.

gunicorn writes its access log to stdout when told ``-``; this logger class writes it through the same kind of
handler as the application log (:func:`sts.logging.make_handler`, with the redaction filter), one line per
request: client, request line, status, size and duration, never bodies or headers.

The STS reads one query string (``?wsdl``): any other is a client's mistake or a probe, and query strings are
where misconfigured clients put credentials (``?access_token=``, ``?password=``, a WS-Federation ``wresult``
token), which the redaction filter's keyword patterns do not all recognise. So the access log names a query's
parameters but never their values (:func:`loggable_query`), in both formats.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from gunicorn import glogging

from sts.logging import JsonFormatter, create_log_file, make_handler

TEXT_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'
# Query strings the STS answers (the WSDL), logged as they are.
_KNOWN_QUERIES = frozenset({"wsdl", "wsdl="})
# A parameter name worth showing; anything else (a bare token, an encoded blob) is masked whole.
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_QUERY_SEPARATORS = re.compile(r"([&;])")  # kept in the split, so the masked query keeps its shape
MASK = "[redacted]"


def loggable_query(query: str) -> str:
    """``query`` as the access log may show it: ``wsdl`` as it is; otherwise each ``name=value`` parameter as
    ``name=[redacted]``, and a parameter without ``=`` or with an unusual name masked whole (it may itself be a
    credential). The separators (``&``, ``;``) stay, so an operator still sees how many parameters came."""
    if not query or query.lower() in _KNOWN_QUERIES:
        return query
    shown = []
    for part in _QUERY_SEPARATORS.split(query):
        if part in ("&", ";", ""):
            shown.append(part)
            continue
        name, equals, _value = part.partition("=")
        shown.append(f"{name}={MASK}" if equals and _PARAMETER_NAME.fullmatch(name) else MASK)
    return "".join(shown)


# The user information of a request target in absolute form (RFC 9112 §3.2.2: http://user:password@host/path),
# up to its last "@" before the query.
_TARGET_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://).*@")


def _loggable_uri(uri: str) -> str:
    """A request target with its query string made :func:`loggable_query`, and the user information of an
    absolute-form target (credentials in the URL as much as a query's) masked."""
    path, question, query = uri.partition("?")
    path = _TARGET_USERINFO.sub(rf"\1{MASK}@", path)
    return f"{path}?{loggable_query(query)}" if question else path


class StsLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, with the log file created 0600 whenever gunicorn opens it again."""

    def reopen_files(self) -> None:
        """gunicorn's reopening (SIGUSR1, as logrotate sends after moving the file away; a reload), each file that
        is gone created 0600 first (:func:`sts.logging.create_log_file`): gunicorn's handlers would create it with
        the umask's mode, 0644 from a shell, although it names users and client addresses as the first one did."""
        for log in (*glogging.loggers(), logging.getLogger()):
            for handler in log.handlers:
                if isinstance(handler, logging.FileHandler):
                    create_log_file(Path(handler.baseFilename))
        super().reopen_files()
        # gunicorn reopens only its own loggers' files; the application's (the audit log with it) hangs on the
        # root logger and went on writing into the file logrotate had moved away.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                _reopen(handler)


def _reopen(handler: logging.FileHandler) -> None:
    """Close ``handler``'s file and open its path again (as gunicorn does for its own handlers)."""
    handler.acquire()
    try:
        if handler.stream:
            handler.stream.close()
            handler.stream = handler._open()
    finally:
        handler.release()


class AccessLogger(StsLogger):
    """gunicorn's logger with the access log on the STS's handler; JSON records carry one field per item."""

    #: ``json`` or ``text`` (set by :func:`access_logger_class`).
    access_format = "text"
    #: The log file, or None for stderr (set by :func:`access_logger_class`).
    log_file: Path | None = None

    def setup(self, cfg: Any) -> None:
        """gunicorn's setup (its own access handler stays off), then our handler; marked so a reload replaces it."""
        super().setup(cfg)
        formatter = JsonFormatter() if self.access_format == "json" else logging.Formatter("%(message)s")
        handler = make_handler(formatter, self.log_file)
        handler._gunicorn = True  # type: ignore[attr-defined]  # gunicorn drops marked handlers on reload
        self.access_log.addHandler(handler)

    def _compute_access_log_enabled(self) -> bool:
        return True

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: dt.timedelta) -> dict[str, Any]:
        """gunicorn's atoms for the text format, with the query string's values masked in the request line
        (``%(r)s``) and the query (``%(q)s``) (:func:`loggable_query`)."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["r"] = "{} {} {}".format(
            environ.get("REQUEST_METHOD", "-"), _loggable_uri(str(environ.get("RAW_URI", ""))),
            environ.get("SERVER_PROTOCOL", "-"),
        )
        atoms["q"] = loggable_query(str(environ.get("QUERY_STRING", "")))
        return atoms

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: dt.timedelta) -> None:
        """One line per request; as JSON, the items are fields rather than a formatted string."""
        if self.access_format != "json":
            super().access(resp, req, environ, request_time)
            return
        status = str(resp.status).split(None, 1)[0] if resp.status is not None else "-"
        sent = getattr(resp, "sent", None)
        record = {
            "client": environ.get("REMOTE_ADDR", "-"),
            "method": environ.get("REQUEST_METHOD", "-"),
            "path": environ.get("PATH_INFO", "-"),
            "query": loggable_query(str(environ.get("QUERY_STRING", ""))),
            "protocol": environ.get("SERVER_PROTOCOL", "-"),
            "status": int(status) if status.isdigit() else status,
            "bytes": sent,
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
        }
        self.access_log.info("%s %s %s", record["method"], record["path"], record["status"], extra=record)


def access_logger_class(access_format: str, log_file: Path | None) -> type[AccessLogger]:
    """The logger class for ``logger_class`` (gunicorn accepts a class), bound to the instance's settings."""
    attributes = {"access_format": access_format, "log_file": log_file, "__module__": __name__}
    return type("AccessLogger", (AccessLogger,), attributes)
