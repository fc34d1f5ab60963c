"""``[[trusted_issuers]]``: identity providers whose signed SAML assertions the STS accepts, one table each.

An assertion counts as an entry's only when its Issuer names the entry's ``entity_id`` and its signature verifies
with one of the entry's pinned certificates (never a certificate the assertion carries). Such assertions may be
delegated (OnBehalfOf / ActAs, still subject to each relying party's delegation policy) and, with
``callers = true``, authenticate callers on the issued-token endpoint. Users are mapped from the NameID (or
``subject_attribute``) into ``map_to_domain`` and must exist there: roles always come from the user store, never
from the assertion.

```toml
[[trusted_issuers]]
entity_id = "https://idp.example.test"
certificates = ["keystore/trusted-issuers/idp.pem"]
map_to_domain = "PRIMARY"
subject_attribute = ""        # empty: the NameID; else an attribute name, e.g. the UPN claim URI
max_token_age = 28800         # seconds an assertion may live (NotOnOrAfter - NotBefore)
single_use = false            # true: each assertion ID is accepted once (as OneTimeUse)
callers = false               # true: its assertions authenticate callers on the issued-token endpoint
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRIMARY = "PRIMARY"  # the built-in user store's domain (sts.auth.users)
_KEYS = frozenset(
    {"entity_id", "certificates", "map_to_domain", "subject_attribute", "max_token_age", "single_use", "callers"}
)


@dataclass(frozen=True, slots=True)
class TrustedIssuerSettings:
    """One ``[[trusted_issuers]]`` table."""

    entity_id: str
    certificates: tuple[Path, ...]
    map_to_domain: str = PRIMARY
    subject_attribute: str = ""
    max_token_age: int = 28800
    single_use: bool = False
    callers: bool = False


def parse_trusted_issuers(raw: Any, base: Path, problems: list[str]) -> tuple[TrustedIssuerSettings, ...]:
    """The ``[[trusted_issuers]]`` tables, checked; problems are appended to ``problems``."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(table, dict) for table in raw):
        problems.append("[[trusted_issuers]] must be an array of tables")
        return ()
    issuers: list[TrustedIssuerSettings] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        label = f"trusted_issuers[{index}]"
        issuer = _one(table, base, label, problems)
        if issuer is None:
            continue
        if issuer.entity_id in seen:
            problems.append(f"{label}: entity_id {issuer.entity_id!r} is listed twice")
            continue
        seen.add(issuer.entity_id)
        issuers.append(issuer)
    return tuple(issuers)


def _one(table: dict[str, Any], base: Path, label: str, problems: list[str]) -> TrustedIssuerSettings | None:
    before = len(problems)
    problems += [f"{label}: unknown key {key!r}" for key in table if key not in _KEYS]
    entity_id = table.get("entity_id")
    if not isinstance(entity_id, str) or not entity_id.strip():
        problems.append(f"{label}: entity_id must be a non-empty string")
    certificates = table.get("certificates")
    if not isinstance(certificates, list) or not certificates or not all(isinstance(c, str) for c in certificates):
        problems.append(f"{label}: certificates must be a non-empty list of file names")
        certificates = []
    domain = str(table.get("map_to_domain", PRIMARY)).strip().upper()  # domains are upper-cased, as WSO2 writes
    if not domain or "/" in domain or any(ch.isspace() for ch in domain):
        problems.append(f"{label}: map_to_domain must be a user-store domain name")
    age = table.get("max_token_age", 28800)
    if not isinstance(age, int) or isinstance(age, bool) or not 60 <= age <= 7 * 86400:
        problems.append(f"{label}: max_token_age must be between 60 and 604800 seconds")
    flags = {key: table.get(key, False) for key in ("single_use", "callers")}
    problems += [f"{label}: {key} must be true or false" for key, v in flags.items() if not isinstance(v, bool)]
    attribute = table.get("subject_attribute", "")
    if not isinstance(attribute, str):
        problems.append(f"{label}: subject_attribute must be a string")
    if len(problems) > before:
        return None
    return TrustedIssuerSettings(
        entity_id=str(entity_id).strip(),
        certificates=tuple(base / name for name in certificates),
        map_to_domain=domain,
        subject_attribute=str(attribute).strip(),
        max_token_age=int(age),
        single_use=bool(flags["single_use"]),
        callers=bool(flags["callers"]),
    )
