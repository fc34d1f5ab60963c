"""Token files (sts/client/tokenfile.py): the user's token for OnBehalfOf and ActAs must be sent decrypted."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from sts.cli import main
from sts.client.errors import ClientError
from sts.client.tokenfile import read_delegation_token

ASSERTION = (
    f'<saml2:Assertion xmlns:saml2="{ns.SAML2}" ID="_a" Version="2.0"><saml2:Issuer>x</saml2:Issuer></saml2:Assertion>'
)
ENCRYPTED_DATA = f'<xenc:EncryptedData xmlns:xenc="{ns.XENC}"><xenc:CipherData/></xenc:EncryptedData>'
# What `xmlsec1 --decrypt --privkey-pem RP.key.pem token.xml` writes for a SAML 2.0 token of `sts request --out`.
XMLSEC1_DECRYPTED = (
    f'<?xml version="1.0"?>\n<saml2:EncryptedAssertion xmlns:saml2="{ns.SAML2}" xmlns:wst="{ns.WST}">'
    f"{ASSERTION}</saml2:EncryptedAssertion>\n"
)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "token.xml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text", [ASSERTION, XMLSEC1_DECRYPTED])
def test_a_decrypted_assertion_is_sent_bare(tmp_path: Path, text: str) -> None:
    token = read_delegation_token(_file(tmp_path, text))
    assert token.tag == ns.qn(ns.SAML2, "Assertion")
    assert token.get("ID") == "_a"


def test_a_username_token_is_sent_as_it_is(tmp_path: Path) -> None:
    text = f'<wsse:UsernameToken xmlns:wsse="{ns.WSSE}"><wsse:Username>alice</wsse:Username></wsse:UsernameToken>'
    assert etree.QName(read_delegation_token(_file(tmp_path, text))).localname == "UsernameToken"


@pytest.mark.parametrize("text", [
    ENCRYPTED_DATA,
    f'<saml2:EncryptedAssertion xmlns:saml2="{ns.SAML2}">{ENCRYPTED_DATA}</saml2:EncryptedAssertion>',
])
def test_a_token_still_encrypted_is_refused_with_what_to_do(tmp_path: Path, text: str) -> None:
    with pytest.raises(ClientError, match=r"still encrypted .* xmlsec1 --decrypt"):
        read_delegation_token(_file(tmp_path, text))


def test_sts_request_act_as_refuses_it_before_sending(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the STS answered wst:BadRequest, with nothing saying the file had to be decrypted first."""
    encrypted = f'<saml2:EncryptedAssertion xmlns:saml2="{ns.SAML2}">{ENCRYPTED_DATA}</saml2:EncryptedAssertion>'
    path = _file(tmp_path, encrypted)
    code = main(["request", "https://127.0.0.1:9/services/wso2carbon-sts", "--username", "svc-front",
                 "--applies-to", "https://backend.example.test/", "--act-as", str(path)])
    assert code == 1
    assert "still encrypted" in capsys.readouterr().err
