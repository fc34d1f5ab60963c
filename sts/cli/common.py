"""Helpers shared by the command modules: errors, loading settings, opening the database, reading secrets, and
the connection options and token output of the sample client's commands (``request``, ``validate``, ``renew``,
``cancel``)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from sts import ns
from sts.client import ClientError, Connection, IssuedToken, ProofKey, clean, load_certificate_file
from sts.client.options import DEFAULT_TIMEOUT, SigningCredential
from sts.client.response import MAX_TOKEN_ID_CHARS
from sts.client.tokenfile import read_token_file
from sts.clock import SystemClock
from sts.config import load_settings
from sts.config.settings import Settings
from sts.crypto.secretbox import SecretBoxError
from sts.crypto.wss_sign import load_signing_key
from sts.errors import ConfigError, ServiceUnavailable
from sts.stores.factory import Stores, build_stores
from sts.tokens.validation import saml_version
from sts.wstrust.tokentypes import DEFAULT_SPELLING, SamlVersion, version_of
from sts.xmlutil import serialize

SubParsers = Any  # argparse's _SubParsersAction is private
SOAP_VERSIONS: dict[str, str] = {"1.1": ns.S11, "1.2": ns.S12}
TRUST_VERSIONS: dict[str, str] = {"1.3": ns.WST, "2005": ns.WST05}
CERT_SCENARIOS = ["SigOnly", "certificatemixed", "certificatetransport"]


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit code 1 (or as given)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def settings_from(args: argparse.Namespace) -> Settings:
    """Load the configuration named by ``--config`` (or the default), turning problems into a CommandError."""
    try:
        return load_settings(args.config)
    except ConfigError as exc:
        raise CommandError("invalid configuration:\n  " + "\n  ".join(exc.problems)) from None


@contextlib.contextmanager
def open_stores(settings: Settings) -> Iterator[Stores]:
    """The stores of the configured backend (SQLite file or PostgreSQL), schema checked, closed afterwards; a
    database that cannot be reached or used is a command error."""
    try:
        stores = build_stores(settings, SystemClock())
    except ConfigError as exc:
        raise CommandError("\n  ".join(exc.problems)) from None
    except SecretBoxError as exc:
        raise CommandError(str(exc)) from None
    try:
        yield stores
    except ServiceUnavailable as exc:
        raise CommandError(f"a store is unavailable ({exc})") from None
    finally:
        stores.close()


def read_secret(prompt: str, from_stdin: bool, confirm: bool = False) -> str:
    """A password from stdin (first line) or an interactive prompt; never from the command line."""
    if from_stdin:
        try:
            line = sys.stdin.readline()
            line.encode("utf-8")  # lone surrogates: bytes the locale's codec escaped (PEP 383)
        except UnicodeError:
            raise CommandError("the password on stdin is not UTF-8 text") from None
        secret = line[:-1] if line.endswith("\n") else line
        if secret.endswith("\r"):
            secret = secret[:-1]
    else:
        if not sys.stdin.isatty():
            raise CommandError("no terminal to prompt on: use --password-stdin")
        secret = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat: ") != secret:
            raise CommandError("the passwords do not match")
    if not secret:
        raise CommandError("empty password")
    return secret


# --- the sample client's commands -----------------------------------------------------------------------------------


def add_connection_options(parser: argparse.ArgumentParser, *, token_login: bool = False) -> None:
    """URL, authentication and transport options shared by ``request``, ``validate``, ``renew`` and ``cancel``;
    ``token_login``: ``--token FILE`` may replace ``--username`` and the password (issued-token authentication)."""
    parser.add_argument("url", metavar="URL", help="STS endpoint, e.g. https://host:9443/services/wso2carbon-sts")
    parser.add_argument(
        "--username", default="", help="user name (DOMAIN/NAME for a secondary store); not with --cert or --token"
    )
    if token_login:
        parser.add_argument(
            "--token",
            dest="login_token",  # validate/renew/cancel have a --token of their own: the target
            type=Path,
            metavar="TOKEN_FILE",
            help="authenticate with this SAML assertion of a trusted issuer instead of a password "
            "(the STS's IssuedTokenOverTransport endpoint)",
        )
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin (first line)")
    parser.add_argument("--cafile", type=Path, metavar="FILE", help="CA certificates (PEM) to verify the server with")
    parser.add_argument("--digest", action="store_true", help="send a PasswordDigest instead of PasswordText")
    parser.add_argument("--soap", choices=sorted(SOAP_VERSIONS), default="1.1", help="SOAP version (default 1.1)")
    parser.add_argument("--trust", choices=sorted(TRUST_VERSIONS), default="1.3", help="WS-Trust version (default 1.3)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="network timeout (default 30)"
    )
    x509_group = parser.add_argument_group("X.509 client certificate (instead of --username)")
    x509_group.add_argument("--cert", type=Path, metavar="FILE", help="client certificate (PEM)")
    x509_group.add_argument("--key", type=Path, metavar="FILE", help="its private key (PEM, not encrypted)")
    x509_group.add_argument(
        "--scenario", choices=CERT_SCENARIOS, help="how the certificate authenticates: SigOnly (default: signs the"
        " Timestamp and Body), certificatemixed (also signs wsa:To; HTTPS), certificatetransport (TLS client"
        " certificate; HTTPS); URL must be that scenario's endpoint"
    )


def connection_from(args: argparse.Namespace) -> Connection:
    """The connection options, checked (credential, URL, then timeout) before the password is asked for."""
    token = getattr(args, "login_token", None)
    signing, tls = _certificate_credential(args, token is not None)
    try:
        connection = Connection(
            url=args.url,
            username=args.username or "",
            token=read_token_file(token) if token is not None else None,
            digest=args.digest,
            soap_ns=SOAP_VERSIONS[args.soap],
            trust_ns=TRUST_VERSIONS[args.trust],
            cafile=args.cafile,
            timeout=args.timeout,
            signing=signing,
            tls_cert=tls[0] if tls else None,
            tls_key=tls[1] if tls else None,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.timeout <= 0:
        raise CommandError("--timeout must be positive")
    return connection


def _certificate_credential(
    args: argparse.Namespace, token_login: bool = False
) -> tuple[SigningCredential | None, tuple[Path, Path] | None]:
    """``--cert``/``--key``/``--scenario`` as a signing credential or a TLS client certificate (one of them);
    ``token_login``: ``--token`` was given (issued-token authentication)."""
    cert_file: Path | None = getattr(args, "cert", None)
    key_file: Path | None = getattr(args, "key", None)
    scenario: str | None = getattr(args, "scenario", None)
    if cert_file is None and key_file is None:
        if scenario is not None:
            raise CommandError("--scenario needs --cert and --key")
        if not args.username and not token_login:
            raise CommandError("give --username (or --cert and --key, or --token)")
        return None, None
    if cert_file is None or key_file is None:
        raise CommandError("--cert and --key go together")
    if args.username or args.password_stdin or args.digest or token_login:
        raise CommandError(
            "--cert authenticates the caller: no --username, --token, --password-stdin or --digest with it"
        )
    if scenario == "certificatetransport":
        return None, (cert_file, key_file)
    try:
        certificate = load_certificate_file(cert_file)
        key = load_signing_key(key_file.read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except (ValueError, TypeError, ClientError) as exc:  # TypeError: an encrypted key
        raise CommandError(f"unusable certificate or key: {exc}") from None
    return SigningCredential(certificate, key, sign_to=scenario == "certificatemixed"), None


def read_password(args: argparse.Namespace) -> str:
    """The user's password, from stdin (``--password-stdin``) or a prompt; none when a certificate authenticates."""
    if not args.username:
        return ""
    return read_secret(f"Password for {args.username}: ", args.password_stdin)


def emit_issued(issued: IssuedToken, *, out: Path | None, proof_key_out: Path | None) -> int:
    """Print or write the token of an Issue/Renew answer (and its proof key); the description goes to stderr."""
    proof = issued.proof_key
    if proof_key_out is not None and issued.proof_key_problem:
        raise CommandError(issued.proof_key_problem)
    if proof_key_out is not None and proof is None:
        raise CommandError("the response holds no RequestedProofToken: no proof key to write")
    token_bytes = serialize(issued.token)
    if out is not None:
        # The token is a credential (a bearer assertion is presented as it is; `--token` logs in with one).
        write_secret_file(out, token_bytes)
    else:
        sys.stdout.write(token_bytes.decode("ascii") + "\n")
        sys.stdout.flush()
    lines = _describe(issued, out)
    token_id, version = _token_id(issued)
    if token_id:
        hint = "--id" if version is not SamlVersion.SAML11 else "--id --token-type saml11"
        lines.append(f"token id:   {clean(token_id)} (for {hint})")
    if issued.proof_key_problem:
        lines.append(f"proof key:  unusable ({issued.proof_key_problem})")
    elif proof is not None and proof_key_out is not None:
        write_secret_file(proof_key_out, proof.key)
        lines.append(f"proof key:  {_describe_key(proof)}, written to {proof_key_out}")
    elif proof is not None:
        lines.append(f"proof key:  {_describe_key(proof)}, not saved (use --proof-key-out FILE)")
    print("\n".join(lines), file=sys.stderr)
    return 0


def _describe(issued: IssuedToken, out: Path | None) -> list[str]:
    """Token type, lifetime, whether encrypted and where it was written: lines safe for a terminal."""
    kind = etree.QName(issued.token).localname
    actual = saml_version(issued.token)
    if actual is not None and version_of(issued.token_type) is not actual:
        # The token itself says what it is (WSO2 answers #SAMLV2.0 whatever it issued, wso2/product-is#1415).
        said = f" (the RSTR says {clean(issued.token_type)})" if issued.token_type else ""
        lines = [f"token type: {DEFAULT_SPELLING[actual]}{said}"]
    else:
        lines = [f"token type: {clean(issued.token_type or kind)}"]
    if issued.created or issued.expires:
        lines.append(f"lifetime:   {clean(issued.created or '?')} .. {clean(issued.expires or '?')}")
    lines.append(f"encrypted:  {'yes (' + kind + ')' if issued.encrypted else 'no'}")
    if out is not None:
        lines.append(f"written to: {out}")
    return lines


def _token_id(issued: IssuedToken) -> tuple[str, SamlVersion | None]:
    """The ID to name the token by, and its SAML version: an assertion's own ``ID``/``AssertionID``; for an
    encrypted token, what the RSTR's reference and TokenType say (nothing else shows)."""
    actual = saml_version(issued.token)
    if actual is None:
        return issued.token_id, version_of(issued.token_type)
    own = issued.token.get("ID" if actual is SamlVersion.SAML20 else "AssertionID", "").strip()
    return (own[:MAX_TOKEN_ID_CHARS] or issued.token_id), actual


def _describe_key(proof: ProofKey) -> str:
    """Size and origin, never the key."""
    return f"{proof.bits} bits ({'computed with PSHA1' if proof.computed else 'BinarySecret'})"


def write_secret_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (also when the file existed); never through a symbolic link. For
    proof keys and token files: both are credentials."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
