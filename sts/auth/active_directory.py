"""Active Directory account semantics: account state read from the user entry, and bind failure sub-codes.

The state is read with the user search and checked *before* binding, so a disabled, expired or locked account
does not collect bad-password counts in AD. Attributes (MS-ADTS §2.2.16 userAccountControl flags; MS-ADA1/3):
``userAccountControl`` (ACCOUNTDISABLE 0x2), ``msDS-User-Account-Control-Computed`` (LOCKOUT 0x10,
PASSWORD_EXPIRED 0x800000: AD computes those two, the stored value never carries them), ``pwdLastSet`` (0: must
change at next logon, unless the password never expires: [MS-SAMR] §3.1.5.14.4, MS-ADA3 pwdLastSet) and
``accountExpires`` (FILETIME, 100 ns since 1601-01-01 UTC; 0 and 2^63-1 mean never).

A refused bind carries a sub-code in its diagnostic message (``data 52e``); codes other than 52e/525 tell that the
password was right, so the caller still sees the one generic fault and only the audit log names the code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sts.auth.users import USER_DISABLED, WRONG_PASSWORD

UF_ACCOUNTDISABLE = 0x0002
UF_LOCKOUT = 0x0010
UF_DONT_EXPIRE_PASSWD = 0x10000
UF_SMARTCARD_REQUIRED = 0x40000
UF_PASSWORD_EXPIRED = 0x800000
FILETIME_NEVER = (0, 0x7FFFFFFFFFFFFFFF)
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)

ACCOUNT_EXPIRED = "account_expired"
PASSWORD_EXPIRED = "password_expired"  # noqa: S105 - a reason code
MUST_CHANGE_PASSWORD = "must_change_password"  # noqa: S105 - a reason code
DIRECTORY_LOCKED = "directory_locked"

# With either flag AD never asks for a new password, even with pwdLastSet 0 ([MS-SAMR] §3.1.5.14.4, "PasswordMustChange
# Generation"): Samba 4.17 accepts such an account's bind, so refusing it here would lock out a valid user.
_PASSWORD_NEVER_DUE = UF_DONT_EXPIRE_PASSWD | UF_SMARTCARD_REQUIRED

STATE_ATTRIBUTES = (
    "userAccountControl", "msDS-User-Account-Control-Computed", "pwdLastSet", "accountExpires",
)

# Bind sub-codes (the "data" field of AD's invalidCredentials message) → audit reason.
_BIND_CODES = {
    "525": "unknown_user",
    "52e": WRONG_PASSWORD,
    "530": "logon_hours",
    "531": "workstation_restricted",
    "532": PASSWORD_EXPIRED,
    "533": USER_DISABLED,
    "701": ACCOUNT_EXPIRED,
    "773": MUST_CHANGE_PASSWORD,
    "775": DIRECTORY_LOCKED,
}


def filetime(value: int) -> datetime | None:
    """A FILETIME as an aware datetime; None for "never" (0 or 2^63-1).

    Computed in whole microseconds (a float of seconds rounds .NET's ``DateTime.MaxValue``, 2650467743999999999,
    up into the year 10000). A moment past what :class:`datetime` holds (after 9999-12-31, which AD stores when a
    tool writes ``DateTime.MaxValue`` or any other far-future value) is :data:`datetime.max`: far in the future,
    not an error that would fail the user's every login."""
    if value in FILETIME_NEVER or value < 0:
        return None
    try:
        return _FILETIME_EPOCH + timedelta(microseconds=value // 10)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def account_refusal(
    account_control: int, computed: int, pwd_last_set: int | None, account_expires: int | None, now: datetime
) -> str | None:
    """Why the account may not log in now, or None. ``None`` attributes were absent from the entry."""
    if account_control & UF_ACCOUNTDISABLE:
        return USER_DISABLED
    if account_expires is not None:
        expires = filetime(account_expires)
        if expires is not None and expires <= now:
            return ACCOUNT_EXPIRED
    if computed & UF_LOCKOUT:
        return DIRECTORY_LOCKED
    if pwd_last_set == 0 and not account_control & _PASSWORD_NEVER_DUE:
        return MUST_CHANGE_PASSWORD
    if computed & UF_PASSWORD_EXPIRED:
        return PASSWORD_EXPIRED
    return None


def bind_refusal(ad_code: str) -> str:
    """The audit reason of a refused bind: AD's sub-code when there is one, else a wrong password."""
    return _BIND_CODES.get(ad_code, WRONG_PASSWORD)


_DC_RDN = re.compile(r"(?:^|,)\s*DC\s*=\s*([A-Za-z0-9-]+)\s*(?=,|$)", re.IGNORECASE)


def dns_domain_name(base_dn: str) -> str:
    """The DNS name of the domain a search base lies in: its ``DC=`` components, in order (an AD domain's naming
    context is the DC= form of its DNS name: ``CN=Users,DC=corp,DC=example,DC=com`` → ``corp.example.com``);
    empty when the base has none."""
    return ".".join(_DC_RDN.findall(base_dn)).lower()


def implicit_upn_account(typed: str, dns_domain: str) -> str | None:
    """The account name of an implicit UPN: ``alice@corp.example.com`` names the account ``alice`` of the domain
    ``corp.example.com``, whatever its ``userPrincipalName`` says (Microsoft, "User Name Formats": an implicit UPN,
    UserName@DNSDomainName, is always associated with the account, even if an explicit UPN is not defined). None
    when ``typed`` is no such name (no ``@``, another suffix, an empty account part, or no DNS name known)."""
    account, at, suffix = typed.rpartition("@")
    if not at or not account or not dns_domain or suffix.casefold() != dns_domain.casefold():
        return None
    return account
