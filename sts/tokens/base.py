"""What an assertion says, independent of the SAML version (SAML 1.1 core §2, SAML 2.0 core §2)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from lxml import etree

NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def new_assertion_id() -> str:
    """``_`` + 160 random bits in hex: an NCName with collision probability ≤ 2^-160 (SAML 2.0 core §1.3.4)."""
    return "_" + secrets.token_hex(20)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One claim: its URI and its values (one AttributeValue each: WIF reads one value per element)."""

    uri: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Delegate:
    """One service in a delegation chain (SAML V2.0 Condition for Delegation Restriction, ``del:Delegate``):
    who acted, how it proved itself to the issuer (a SAML 2.0 confirmation method URI) and when."""

    name: str
    confirmation_method: str
    instant: dt.datetime


@dataclass(frozen=True, slots=True)
class AssertionContent:
    """Everything an issued assertion states; built by the issuance policy, rendered per SAML version."""

    assertion_id: str
    issuer: str
    issue_instant: dt.datetime
    not_before: dt.datetime
    not_on_or_after: dt.datetime
    audience: str
    recipient: str
    name_id: str
    name_id_format: str
    authn_instant: dt.datetime
    attributes: tuple[Attribute, ...]
    # Holder-of-key: the ds:KeyInfo the subject must prove (EncryptedKey or X509Data); None: bearer.
    key_info: etree._Element | None = None
    # ActAs (WS-Trust 1.4): the services acting for the subject, oldest first; empty for a direct token.
    delegates: tuple[Delegate, ...] = ()
