"""``sts init [DIR]``: write a new instance (config, keystore, TLS certificate, truststore, database).

Folders are created 0700 and secret files 0600 whatever the umask (an existing secret file is brought to 0600);
nothing is written through a symbolic link (sts.files).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import tomllib
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from sts.auth.builtin_users import BuiltinUserStore
from sts.auth.users import PRIMARY, UserStoreError
from sts.cli.common import CommandError, SubParsers, open_stores, settings_from
from sts.cli.config_template import TEMPLATE
from sts.config.settings import Settings
from sts.crypto import keygen
from sts.crypto.keystore import MIN_RSA_BITS, check_certificate, load_certificate, same_public_key
from sts.crypto.secretbox import generate_key_file
from sts.files import SECRET_FILE, UnsafePath, refuse_link, secure_dir, write_file
from sts.netaddr import is_host_port
from sts.relying_parties.certificates import inline_pem
from sts.relying_parties.model import RelyingParty, RelyingPartyError
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.factory import upgrade_schema
from sts.stores.migrations import DatabaseError
from sts.stores.sqlite import initialize
from sts.xmlutil import is_xml_text

DEMO_APPLIES_TO = "https://localhost:8443/demo-rp/"
DEMO_USER = "admin"
DEMO_PASSWORD_FILE = "demo-admin-password.txt"  # noqa: S105 - a file name
_TOML_CONTROL = re.compile("[\x00-\x1f\x7f]")  # TOML 1.0: control characters a basic string cannot hold bare
KEYSTORE_FILES = ("sts-signing.key.pem", "sts-signing.crt.pem", "tls.key.pem", "tls.crt.pem", "credentials.key")


def register(commands: SubParsers) -> None:
    """Add the ``init`` command."""
    parser = commands.add_parser("init", help="create a new STS instance directory", description=__doc__)
    parser.add_argument("directory", nargs="?", default="var", help="instance directory (default: ./var)")
    parser.add_argument("--force", action="store_true", help="overwrite existing keys and configuration")
    parser.add_argument("--demo", action="store_true", help="also create a demo admin user and relying party")
    parser.add_argument("--issuer", help="issuer name written into assertions (default: the endpoint URL)")
    parser.add_argument("--bind", default="127.0.0.1:9443", help="HOST:PORT to serve on (default: %(default)s)")
    parser.add_argument("--key-size", type=int, default=keygen.DEFAULT_BITS, help="RSA bits for new keys")
    parser.add_argument("--signing-key", type=Path, help="use this PEM private key instead of generating one")
    parser.add_argument("--signing-cert", type=Path, help="certificate of --signing-key (PEM or DER)")
    parser.add_argument("--signing-pkcs12", type=Path, help="use the key and certificate of this PKCS#12 file")
    parser.add_argument(
        "--passphrase-env", metavar="VAR", help="environment variable holding the passphrase of --signing-key/-pkcs12"
    )
    parser.add_argument(
        "--store-url", metavar="URL", help="keep the state in this PostgreSQL database (libpq URL, no password)"
    )
    parser.add_argument("--store-password-file", type=Path, metavar="FILE", help="file holding its password")
    parser.add_argument("--store-ca-file", type=Path, metavar="FILE", help="CA certificate of the PostgreSQL server")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Create the instance."""
    if args.key_size < MIN_RSA_BITS:
        raise CommandError(f"--key-size must be at least {MIN_RSA_BITS}")
    base = Path(args.directory)
    keystore = base / "keystore"
    signing_key_path, tls_key_path = keystore / "sts-signing.key.pem", keystore / "tls.key.pem"
    existing = [p for p in (signing_key_path, tls_key_path, base / "sts.toml") if os.path.lexists(p)]
    if existing and not args.force:
        raise CommandError(f"{existing[0]} already exists; use --force to overwrite keys and configuration")
    key, cert = _signing_material(args)
    if not is_host_port(args.bind):
        raise CommandError("--bind must be HOST:PORT (a port from 1 to 65535; IPv6 as [ADDRESS]:PORT)")
    host, _, port = args.bind.rpartition(":")
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host  # noqa: S104 - a comparison
    url = f"https://{shown}:{port}/services/wso2carbon-sts"
    config = _config_text(args, url)  # checked before anything is written
    try:
        _prepare(base, args.demo)
        _write_instance(base, args, key, cert, config)
    except UnsafePath as exc:
        raise CommandError(str(exc)) from None
    settings = settings_from(argparse.Namespace(config=base / "sts.toml"))
    try:
        upgrade_schema(settings.store)
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    with open_stores(settings) as stores:
        try:
            stores.builtin.add_role("admin")
        except UserStoreError:
            pass  # a shared database another node's `sts init` prepared already
        print(f"Created STS instance in {base}/")
        print(f"  configuration:       {base / 'sts.toml'}")
        print(f"  signing certificate: {keystore / 'sts-signing.crt.pem'}  (give this to relying parties)")
        print(f"  TLS CA file:         {keystore / 'tls.crt.pem'}")
        print(f"  database:            {_where(settings)}")
        if args.demo:
            try:
                registry = RelyingPartyRegistry(stores.relying_parties)
                _demo(base, stores.builtin, registry, args.key_size, settings.store.backend == "postgresql")
            except UnsafePath as exc:
                raise CommandError(str(exc)) from None
            except (UserStoreError, RelyingPartyError) as exc:
                raise CommandError(f"demo: {exc}") from None
    return 0


def _where(settings: Settings) -> str:
    if settings.store.backend == "postgresql":
        from sts.stores.postgres import PostgresDatabase  # psycopg only when PostgreSQL is configured

        return PostgresDatabase(settings.store).target.describe()
    return str(settings.store.database)


def _store_settings(args: argparse.Namespace) -> dict[str, str]:
    """The ``[store]`` values of the new configuration (TOML strings)."""
    if args.store_url and (urlsplit(args.store_url).password or "password=" in args.store_url):
        raise CommandError("--store-url must not hold the password: use --store-password-file or $PGPASSWORD")
    if args.store_url is None and (args.store_password_file or args.store_ca_file):
        raise CommandError("--store-password-file and --store-ca-file go with --store-url")

    def text(value: object) -> str:
        return toml_string(str(value) if value else "")

    return {
        "store_backend": "postgresql" if args.store_url else "sqlite",
        "store_url": text(args.store_url),
        "store_password_file": text(args.store_password_file and args.store_password_file.resolve()),
        "store_ca_file": text(args.store_ca_file and args.store_ca_file.resolve()),
    }


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string (TOML 1.0 "String"): quote, backslash and the control characters TOML
    forbids in one (U+0000-U+001F, U+007F) escaped, everything else as it is. Not ``json.dumps``: its ``\\uD83D``
    surrogate-pair escapes of characters beyond U+FFFF are not TOML, and it leaves U+007F bare."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _TOML_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04X}", escaped) + '"'


def _config_text(args: argparse.Namespace, url: str) -> str:
    """The new ``sts.toml``, with every value given on the command line written as a TOML string and read back
    the same, so a quote or a backslash in ``--issuer`` never rewrites the file or leaves half an instance."""
    issuer = args.issuer or url  # --issuer '': the default, as before
    if not issuer.strip() or not is_xml_text(issuer) or any(unicodedata.category(ch) == "Cc" for ch in issuer):
        # The issuer is written into every assertion: XML 1.0 §2.2 [2] Char only, and no control character.
        raise CommandError("--issuer must be a non-empty name of characters XML can carry, without control characters")
    stores = _store_settings(args)
    config = TEMPLATE.format(bind=toml_string(args.bind), issuer=toml_string(issuer), **stores)
    try:
        parsed = tomllib.loads(config)
    except tomllib.TOMLDecodeError as exc:  # a defect of ours, not of the input: every value is escaped
        raise CommandError(f"the new configuration does not parse ({exc}); nothing was written") from None
    if (parsed["server"]["bind"], parsed["issuer"]["name"]) != (args.bind, issuer):
        raise CommandError("the new configuration does not read back as given; nothing was written")
    return config


def _prepare(base: Path, demo: bool) -> None:
    """Folders only their owner can write (0700 when created, whatever the umask), and no symbolic link where a
    file will be written: checked before anything is written, so a refusal leaves nothing half-made."""
    secure_dir(base, follow=True)  # the directory the operator named may itself be a link
    folders = [base / "keystore", base / "keystore" / "truststore", base / "keystore" / "clients"]
    files = [base / name for name in ("sts.toml", "sts.db", "sts.db-wal", "sts.db-shm")]
    files += [base / "keystore" / name for name in KEYSTORE_FILES]
    if demo:
        folders.append(base / "demo-rp")
        files += [base / name for name in ("demo.json", DEMO_PASSWORD_FILE, "demo-rp/rp.key.pem", "demo-rp/rp.crt.pem")]
        files.append(base / "keystore" / "truststore" / "demo-rp.crt.pem")
    for folder in folders:
        secure_dir(folder)
    for path in files:
        refuse_link(path)


def _write_instance(
    base: Path, args: argparse.Namespace, key: keygen.RSAPrivateKey, cert: x509.Certificate, config: str
) -> None:
    keystore = base / "keystore"
    keygen.write_private_key(keystore / "sts-signing.key.pem", key)
    keygen.write_certificate(keystore / "sts-signing.crt.pem", cert)
    tls_key = keygen.generate_rsa_key(args.key_size)
    tls_cert = keygen.self_signed_certificate(
        tls_key, "localhost", dns_names=("localhost",), ip_addresses=("127.0.0.1", "::1"), server_auth=True
    )
    keygen.write_private_key(keystore / "tls.key.pem", tls_key)
    keygen.write_certificate(keystore / "tls.crt.pem", tls_cert)
    generate_key_file(keystore / "credentials.key")
    # No secret in it, but it says which keys to trust: writable by its owner only.
    write_file(base / "sts.toml", config.encode(), SECRET_FILE)
    if args.force and (base / "sts.db").exists():
        (base / "sts.db").unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{base / 'sts.db'}{suffix}").unlink(missing_ok=True)
    if not args.store_url:
        initialize(base / "sts.db")


def _passphrase(args: argparse.Namespace) -> bytes | None:
    if not args.passphrase_env:
        return None
    value = os.environ.get(args.passphrase_env)
    if value is None:
        raise CommandError(f"environment variable {args.passphrase_env} is not set")
    return value.encode()


def _signing_material(args: argparse.Namespace) -> tuple[keygen.RSAPrivateKey, x509.Certificate]:
    """Generate a signing key and certificate, or import the ones given by flags (checked)."""
    try:
        if args.signing_pkcs12:
            key, cert = keygen.load_pkcs12(args.signing_pkcs12, _passphrase(args))
        elif args.signing_key or args.signing_cert:
            if not (args.signing_key and args.signing_cert):
                raise CommandError("--signing-key and --signing-cert go together")
            key = keygen.load_private_key(args.signing_key, _passphrase(args))
            cert = load_certificate(args.signing_cert)
        else:
            key = keygen.generate_rsa_key(args.key_size)
            return key, keygen.self_signed_certificate(key, "STS signing")
    except (OSError, ValueError, TypeError) as exc:
        raise CommandError(f"cannot read the signing key or certificate: {exc}") from None
    problems, _warnings = check_certificate(cert, "signing certificate", dt.datetime.now(dt.UTC))
    if key.key_size < MIN_RSA_BITS:
        problems.append(f"signing key has {key.key_size} bits; at least {MIN_RSA_BITS} required")
    if not same_public_key(cert, key):
        problems.append("the signing key does not match the certificate")
    if problems:
        raise CommandError("; ".join(problems))
    return key, cert


def _demo(base: Path, users: BuiltinUserStore, rps: RelyingPartyRegistry, bits: int, in_database: bool) -> None:
    """A demo admin with a generated password and a demo relying party with its own key pair (its certificate in
    the truststore, or in the database when that is shared: ``in_database``)."""
    if users.find(PRIMARY, DEMO_USER) is not None or DEMO_APPLIES_TO in {rp.address for rp in rps.all()}:
        # A shared database another node's (or an earlier) `sts init --demo` prepared: making half a demo would
        # leave a password or an RP key here that the database does not match.
        raise CommandError(
            f"demo: the database already has the user {DEMO_USER} or the relying party {DEMO_APPLIES_TO} (an "
            "earlier `sts init --demo` made them); no demo was added. Remove both to make a new demo."
        )
    password = secrets.token_urlsafe(18)
    users.add_user(
        PRIMARY,
        DEMO_USER,
        password,
        roles=["admin"],
        claims={
            "http://wso2.org/claims/emailaddress": ["admin@example.com"],
            "http://wso2.org/claims/givenname": ["Demo"],
            "http://wso2.org/claims/lastname": ["Administrator"],
        },  # no role claim: roles are granted (above), and issued from membership, never stored as claims
    )
    password_file = base / DEMO_PASSWORD_FILE
    write_file(password_file, (password + "\n").encode(), SECRET_FILE)
    rp_key = keygen.generate_rsa_key(bits)
    rp_cert = keygen.self_signed_certificate(rp_key, "demo relying party")
    keygen.write_private_key(base / "demo-rp" / "rp.key.pem", rp_key)
    keygen.write_certificate(base / "demo-rp" / "rp.crt.pem", rp_cert)
    claims = ("http://wso2.org/claims/emailaddress", "http://wso2.org/claims/givenname")
    if in_database:
        rps.add(RelyingParty(address=DEMO_APPLIES_TO, cert_pem=inline_pem(rp_cert), claims=claims))
    else:
        keygen.write_certificate(base / "keystore" / "truststore" / "demo-rp.crt.pem", rp_cert)
        rps.add(RelyingParty(address=DEMO_APPLIES_TO, cert_file="demo-rp.crt.pem", claims=claims))
    demo = {
        "applies_to": DEMO_APPLIES_TO,
        "username": DEMO_USER,
        "password_file": password_file.name,
        "rp_key": "demo-rp/rp.key.pem",
    }
    write_file(base / "demo.json", (json.dumps(demo, indent=2) + "\n").encode(), SECRET_FILE)
    print(f"  demo user:           {DEMO_USER}  password: {password}")
    print(f"                       (shown once; also in {password_file}, readable only by you)")
    print(f"  demo relying party:  {DEMO_APPLIES_TO}  (its key: {base / 'demo-rp' / 'rp.key.pem'})")
