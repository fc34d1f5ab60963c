"""Load ``sts.toml`` + ``STS_<TABLE>_<KEY>`` environment overrides into :class:`Settings`.

Every problem (syntax, unknown key, wrong type, out-of-range value) is collected and reported together in one
:class:`~sts.errors.ConfigError`; a bad file fails the boot, never a request.

The environment is shared with other software, so only variables that name one of our tables are read as
settings: ``STS_<TABLE>_<KEY>`` with a known table but an unknown key, or a bad value, is a problem (a typo in
a setting must not be ignored); any other ``STS_*`` name is not ours and is ignored
(:func:`foreign_environment` lists them, for ``sts check-config`` to warn about).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sts.config.settings import CACHE_PASSWORD_ENV, SECTIONS, Settings
from sts.config.table_reader import shown_value
from sts.config.trusted_issuers import parse_trusted_issuers
from sts.config.user_stores import env_is_ours, parse_user_stores
from sts.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("var/sts.toml")
ENV_PREFIX = "STS_"
# Variables of ours that are not settings: the config path, the key passphrase, gunicorn's pid file, the password
# of the [cache] server (read by the cache backend, never a setting that could be printed), the HSM PIN.
_NOT_SETTINGS = frozenset(
    {"STS_CONFIG", "STS_SIGNING_KEY_PASSPHRASE", "STS_PIDFILE", CACHE_PASSWORD_ENV, "STS_PKCS11_PIN"}
)
USER_STORES = "user_stores"  # the one array of tables: [[user_stores]], one per user-store domain
TRUSTED_ISSUERS = "trusted_issuers"  # [[trusted_issuers]], one per identity provider (sts.config.trusted_issuers)
# Keys an earlier `sts init` wrote that this release no longer reads: (table, key) -> (the value that changes
# nothing today, what to do instead). With that value the key is ignored with a check-config warning, so an old
# instance keeps starting; any other value is a problem naming the replacement, never silently dropped.
_RETIRED: dict[tuple[str, str], tuple[object, str]] = {
    ("tokens", "default_token_type"): (
        "saml20",
        "replaced by [tokens] profile (the default \"strict\" issues SAML 2.0 when a request names no token type):"
        " remove it; for SAML 1.1 set profile = \"wso2\" or register each relying party with"
        " `sts rp update ADDRESS --token-type saml11`",
    ),
}


def config_path_from_env(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file: the explicit path, else ``$STS_CONFIG``, else ``./var/sts.toml``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("STS_CONFIG")
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and freeze the configuration, or raise :class:`ConfigError` listing every problem."""
    config_path = config_path_from_env(path).resolve()
    environ = os.environ if env is None else env
    problems: list[str] = []
    raw = _read_toml(config_path, problems)
    for name in raw:
        if name not in SECTIONS and name not in (USER_STORES, TRUSTED_ISSUERS):
            problems.append(f"{config_path}: unknown table [{name}]")
    overrides = _env_overrides(environ, problems)
    sections: dict[str, Any] = {}
    notices: list[str] = []
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{config_path}: [{name}] must be a table")
            table = {}
        table = _drop_retired(name, table, config_path, problems, notices)
        sections[name] = _build_section(name, cls, table, overrides.get(name, {}), config_path, problems)
    user_stores = parse_user_stores(raw.get(USER_STORES), config_path.parent, environ, problems)
    issuers = parse_trusted_issuers(raw.get(TRUSTED_ISSUERS), config_path.parent, problems)
    if problems:
        raise ConfigError(problems)
    return Settings(
        config_path=config_path, user_stores=user_stores, trusted_issuers=issuers, notices=tuple(notices), **sections
    )


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        problems.append(f"{path}: config file not found (run `sts init` first, or pass --config)")
    except PermissionError:
        problems.append(f"{path}: config file not readable")
    except IsADirectoryError:
        problems.append(f"{path}: is a directory, not a config file")
    except OSError as exc:
        problems.append(f"{path}: config file not readable ({exc.strerror or type(exc).__name__})")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (TOML 1.0.0, "Spec"); tomllib does not wrap this one
        problems.append(f"{path}: not valid TOML: not UTF-8 text (byte {exc.start + 1})")
    return {}


def foreign_environment(env: Mapping[str, str] | None = None) -> list[str]:
    """``STS_*`` variables that are neither settings nor ours, which :func:`load_settings` ignores."""
    environ = os.environ if env is None else env
    return sorted(
        key
        for key in environ
        if key.startswith(ENV_PREFIX) and key not in _NOT_SETTINGS and _table_of(key) is None and not env_is_ours(key)
    )


def _table_of(key: str) -> str | None:
    """The table an ``STS_<TABLE>_<KEY>`` variable names, if it names one of ours."""
    if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS:
        return None
    table = key[len(ENV_PREFIX) :].partition("_")[0].lower()
    return table if table in SECTIONS else None


def _env_overrides(environ: Mapping[str, str], problems: list[str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        table = _table_of(key)
        if table is None:
            continue  # not a setting: another program's variable, or one of _NOT_SETTINGS
        name = key[len(ENV_PREFIX) + len(table) + 1 :]
        if not name:
            problems.append(f"environment: {key} names no setting")
            continue
        overrides.setdefault(table, {})[name.lower()] = value
    return overrides


def _drop_retired(
    name: str, table: dict[str, Any], config_path: Path, problems: list[str], notices: list[str]
) -> dict[str, Any]:
    """``table`` without the keys of :data:`_RETIRED`: a harmless value becomes a notice, another a problem."""
    kept = dict(table)
    for (section, key), (harmless, advice) in _RETIRED.items():
        if section != name or key not in kept:
            continue
        value = kept.pop(key)
        message = f"{config_path}: [{name}] {key} = {value!r} is no longer read; {advice}"
        (notices if value == harmless else problems).append(message)
    return kept


def _build_section(
    name: str, cls: type, table: dict[str, Any], env: dict[str, str], config_path: Path, problems: list[str]
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key in table:
        if key not in known:
            problems.append(f"{config_path}: [{name}] unknown key {key!r}")
    for key in env:
        if key not in known:
            problems.append(f"environment: STS_{name.upper()}_{key.upper()} names no setting")
    for key, fld in known.items():
        if key in env:
            origin, raw, from_env = f"environment STS_{name.upper()}_{key.upper()}", env[key], True
        elif key in table:
            origin, raw, from_env = f"{config_path}: [{name}] {key}", table[key], False
        else:
            continue
        try:
            if from_env:
                raw = _from_env(raw, hints[key])
            value = _coerce(raw, hints[key], config_path.parent)
        except (TypeError, ValueError) as exc:
            problems.append(f"{origin}: {exc}")
            continue
        check = fld.metadata.get("check")
        if check is not None and value is not None and not check[0](value):
            problems.append(f"{origin}: {check[1]} (got {shown_value(value)})")
            continue
        values[key] = value
    for key, fld in known.items():
        # Defaults are relative to the config file too, not to the working directory.
        if key not in values and isinstance(fld.default, Path) and not fld.default.is_absolute():
            values[key] = config_path.parent / fld.default
    return cls(**values)


def _from_env(text: str, hint: Any) -> Any:
    """Environment values are strings: split lists on commas, leave the rest to :func:`_coerce`."""
    if typing.get_origin(hint) is tuple:
        return [item.strip() for item in text.split(",") if item.strip()]
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    return text


def _coerce(value: Any, hint: Any, base: Path) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        if value in ("", None):
            return None
        return _coerce(value, members[0], base)
    if origin is tuple:
        if not isinstance(value, list):
            raise TypeError("expected a list")
        (item_hint, _ellipsis) = typing.get_args(hint)
        return tuple(_coerce(item, item_hint, base) for item in value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise TypeError("expected a path string")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path)
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an integer")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    if hint is dt.datetime:
        return _datetime(value)
    raise TypeError(f"unsupported setting type {hint!r}")


def _datetime(value: Any) -> dt.datetime:
    """A TOML offset date-time (RFC 3339), or the same written as a string (environment variables)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected a date-time such as 2030-01-31T12:00:00Z, got {value!r}") from None
    if not isinstance(value, dt.datetime):
        raise TypeError("expected a date-time such as 2030-01-31T12:00:00Z")
    return value
