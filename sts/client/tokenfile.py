"""Token files: what ``sts request --out`` writes (the bare token) and what ``sts token inspect`` reads (a token
or a whole response). They are untrusted input too: bounded in size and parsed by the hardened parser."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from sts import ns
from sts.client.errors import ClientError, clean
from sts.client.options import TARGET_TOKENS
from sts.client.response import ENCRYPTED_ASSERTION, ENCRYPTED_TOKENS, RESPONSE_LIMITS
from sts.errors import MalformedMessage
from sts.xmlutil import parse_untrusted

MAX_TOKEN_FILE_BYTES = 8 << 20


def read_token_file(path: Path) -> etree._Element:
    """The root element of a token file (bounded in size, through the hardened parser)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ClientError(f"{path}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
    try:
        return parse_untrusted(data, RESPONSE_LIMITS)
    except MalformedMessage:
        raise ClientError(f"{path}: not well-formed XML (or exceeds the parser limits)") from None


def read_target_token(path: Path) -> etree._Element:
    """The token stored in ``path`` for Validate, Renew or Cancel: its root, an assertion or an encrypted one."""
    root = read_token_file(path)
    if root.tag not in TARGET_TOKENS:
        raise ClientError(
            f"{path}: the first element is {clean(etree.QName(root).localname)}, "
            "not an Assertion, EncryptedAssertion or EncryptedData"
        )
    return root


def read_delegation_token(path: Path) -> etree._Element:
    """The user's token in ``path`` for OnBehalfOf or ActAs, as the front-end holds it: decrypted (the STS reads
    who issued it and for whom). ``xmlsec1 --decrypt`` leaves a SAML 2.0 assertion inside its EncryptedAssertion:
    that assertion is taken; a token still encrypted is refused here rather than by the STS's ``wst:BadRequest``."""
    root = read_token_file(path)
    if root.tag == ENCRYPTED_ASSERTION:
        children = [child for child in root if isinstance(child.tag, str)]
        if len(children) == 1 and children[0].tag == ns.qn(ns.SAML2, "Assertion"):
            return children[0]
    if root.tag in ENCRYPTED_TOKENS:
        raise ClientError(
            f"{path}: the token is still encrypted for its relying party; decrypt it with that relying party's key"
            f" first (e.g. xmlsec1 --decrypt --privkey-pem RP.key.pem {path})"
        )
    return root


__all__ = ["MAX_TOKEN_FILE_BYTES", "read_delegation_token", "read_target_token", "read_token_file"]
