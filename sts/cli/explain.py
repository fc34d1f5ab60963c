"""``sts explain REQUEST.xml``: run a saved request through the server's own pipeline as a dry run and print
each check it passed and the first that failed, with the reason the client is never told.

The request goes through the same endpoint, service, authenticator and operations as on the wire, on the
instance's configuration, keys and stores, but with stores that write nothing (:mod:`sts.stores.dryrun`): no
nonce is recorded, no failure counts towards a lockout or throttle, and a token that would be issued is built
and signed in memory, then discarded. The password in the request is checked against the user store for real
(a directory counts a wrong one in its own lockout policy). By default the clock stands at the request's
``wsu:Timestamp``/``Created``, so a request saved a while ago is judged as when it was sent; ``--now`` judges
it at the current time, ``--at`` at any instant.

The server never logs request bodies (they carry passwords), so a correlation id alone cannot be replayed:
``sts explain --correlation-id ID`` prints what the audit log says about that request instead ([logging] file,
or ``--log FILE``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path

from sts import ns
from sts.app import build_service
from sts.app.callers import parser_limits
from sts.auth.passwords import PasswordHasher
from sts.cli.common import CommandError, SubParsers, settings_from
from sts.clock import Clock, FrozenClock, SystemClock
from sts.crypto.keystore import KeyStoreError, load_keystore
from sts.errors import ConfigError
from sts.logging import escape_controls, text_field
from sts.soap.endpoint import SoapEndpoint, SoapRequest
from sts.soap.transport import WSO2_PATH, scenario_paths
from sts.soapenv import SoapVersion
from sts.stores.dryrun import dry_run
from sts.stores.factory import build_stores
from sts.telemetry import RequestTrace, Step
from sts.wss.timestamp import parse_xsd_datetime
from sts.xmlutil import ParserLimits, parse_untrusted

# What each stage and check established, in an operator's words.
CHECKS = {
    "parse": "well-formed XML within the [limits] caps (no DTD, no entities)",
    "envelope": "a SOAP envelope of the expected version; every mustUnderstand header understood",
    "action": "the SOAPAction / wsa:Action agree with the RST's RequestType",
    "security header": "exactly one wsse:Security header for this STS",
    "timestamp": "wsu:Timestamp present (when the policy requires it) and within its validity and clock skew",
    "username token": "the UsernameToken is well-formed and its Created is fresh",
    "client throttle": "the client address is not throttled for too many failures ([security] client_failure_*)",
    "transport": "PasswordText came over TLS (or allow_insecure_transport)",
    "domain": "the user's domain is in [security] allowed_domains",
    "lockout": "the account is not locked ([lockout])",
    "password": "the user store knows the user, the account is enabled and the password is right",
    "role": "the user holds one of the allowed roles",
    "nonce": "nonce accepted (dry run: not recorded and not checked against the replay cache)",
    "authentication": "the caller is authenticated and authorized",
    "request": "the RequestSecurityToken parses (token type, key type, lifetime, claims)",
    "relying party": "AppliesTo names a registered relying party (or default_relying_party applies)",
    "token plan": "token type, key type, subject and claims decided for this relying party",
    "build": "assertion built",
    "sign": "assertion signed with the STS signing key",
    "encrypt": "assertion encrypted for the relying party's certificate",
    "store": "token would be recorded in the token store (dry run: not recorded)",
}


def register(commands: SubParsers) -> None:
    """Add the ``explain`` command."""
    parser = commands.add_parser(
        "explain", help="dry-run a saved request and say why it would be refused", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("request", nargs="?", type=Path, help="the saved SOAP request (the HTTP body)")
    parser.add_argument("--correlation-id", metavar="ID", help="print the audit log's records of this request")
    parser.add_argument("--log", type=Path, metavar="FILE", help="log file to search (default: [logging] file)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--now", action="store_true", help="judge the request at the current time")
    when.add_argument("--at", metavar="INSTANT", help="judge it at this ISO 8601 instant (UTC if no offset)")
    parser.add_argument("--soap-action", default="", help="the HTTP SOAPAction it was sent with, if any")
    parser.add_argument("--path", default=WSO2_PATH, help="the endpoint path it was sent to (its security scenario)")
    parser.add_argument("--client", default="127.0.0.1", metavar="ADDRESS", help="the client address it came from")
    parser.add_argument("--plain-http", action="store_true", help="it came over plain HTTP, not TLS")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Explain one request; exit 0 when it would succeed, 2 when it would be refused."""
    settings = settings_from(args)
    if args.correlation_id:
        return _from_audit_log(args.correlation_id, args.log or settings.logging.file)
    if args.request is None:
        raise CommandError("give REQUEST.xml or --correlation-id ID")
    body = _read(args.request)
    soap = _soap_version(body)
    scenario = scenario_paths(settings.security.enabled_scenarios).get(args.path)
    if scenario is None:
        raise CommandError(f"--path: no endpoint of this instance at {args.path}")
    clock, said = _clock(args, body)
    try:
        keystore = load_keystore(settings)
        stores = build_stores(settings, SystemClock())
    except KeyStoreError as exc:
        raise CommandError("cannot load keys:\n  " + "\n  ".join(exc.problems)) from None
    except ConfigError as exc:
        raise CommandError("\n  ".join(exc.problems)) from None
    trace = RequestTrace(detailed=True)
    audit = logging.getLogger("sts.audit")
    audit.disabled = True  # a dry run is not a request: it leaves no audit record
    try:
        service = build_service(settings, keystore, dry_run(stores), clock, PasswordHasher())
        endpoint = SoapEndpoint(service, parser_limits(settings), settings.server.soap12_sender_status)
        request = SoapRequest(
            body, soap, args.soap_action, args.client, not args.plain_http, scenario=scenario, path=args.path
        )
        response = endpoint.handle(request, trace)
    finally:
        audit.disabled = False
        stores.close()
    print(f"explaining {args.request} at {clock.now():%Y-%m-%dT%H:%M:%SZ} ({said})")
    _print_steps(trace.steps)
    return _verdict(trace, response.status)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from None


def _soap_version(body: bytes) -> SoapVersion:
    """The version the envelope's namespace names (HTTP would have said it in the Content-Type)."""
    return SoapVersion.SOAP12 if ns.S12.encode() in body[:4096] else SoapVersion.SOAP11


def _clock(args: argparse.Namespace, body: bytes) -> tuple[Clock, str]:
    """The instant to judge the request at, and how it was chosen."""
    if args.now:
        return SystemClock(), "the current time"
    if args.at:
        try:
            at = dt.datetime.fromisoformat(args.at)
        except ValueError:
            raise CommandError(f"--at: not an ISO 8601 instant: {args.at}") from None
        # The Clock tells UTC (sts.clock): an instant given with an offset is the same instant in UTC.
        return FrozenClock(at.astimezone(dt.UTC) if at.tzinfo else at.replace(tzinfo=dt.UTC)), "--at"
    created = _timestamp_created(body)
    if created is None:
        return SystemClock(), "the current time: the request has no wsu:Timestamp Created the STS would accept"
    return FrozenClock(created), "the request's wsu:Timestamp Created; --now to judge it as of now"


def _timestamp_created(body: bytes) -> dt.datetime | None:
    try:
        root = parse_untrusted(body, ParserLimits())  # the pipeline parses it again, under the configured caps
    except Exception:  # the pipeline itself will say what is wrong with it
        return None
    text = root.findtext(f".//{{{ns.WSSE}}}Security/{{{ns.WSU}}}Timestamp/{{{ns.WSU}}}Created")
    try:  # the pipeline's own parser: a Created it refuses sets no clock (a zone-less one names no instant)
        return parse_xsd_datetime(text) if text else None
    except Exception:
        return None


def _print_steps(steps: list[Step]) -> None:
    for step in steps:
        mark = "ok  " if step.ok else "FAIL"
        print(f"  {mark}  {step.name}: {CHECKS.get(step.name, step.name)}")


def _verdict(trace: RequestTrace, status: int) -> int:
    if status == 200:
        what = f"{trace.token_type} token for {trace.relying_party}" if trace.token_type else "an answer"
        print(f"result: it would succeed ({trace.operation}: {what}); nothing was issued or recorded")
        return 0
    print(f"  FAIL  {trace.detail or trace.reason}")
    print(f"result: refused with {trace.fault} (reason code: {trace.reason}); the client saw only the fault")
    return 2


def _from_audit_log(correlation_id: str, log: Path | None) -> int:
    if log is None:
        raise CommandError("no [logging] file configured: pass --log FILE (the JSON log the server writes)")
    try:
        lines = log.read_text(errors="replace").split("\n")  # one record a line, ended by LF and nothing else
    except OSError as exc:
        raise CommandError(f"{log}: {exc.strerror}") from None
    found = 0
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("correlation_id") == correlation_id:
            found += 1
            # Values come from clients (a token reference, an AppliesTo): written as the text log writes them, so
            # a line break or a terminal escape sequence in one neither forges a line nor drives the terminal.
            fields = ", ".join(f"{escape_controls(str(k))}={text_field(v)}" for k, v in record.items()
                               if k not in ("correlation_id", "message"))
            print(f"{escape_controls(str(record.get('message', '')))}: {fields}")
    if not found:
        raise CommandError(f"no record of correlation id {correlation_id} in {log}")
    print("(request bodies are never logged: save the request and run `sts explain REQUEST.xml` to replay it)")
    return 0
