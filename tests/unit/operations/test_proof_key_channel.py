"""A symmetric proof key is handed out only on a confidential channel (WS-Trust 1.3 §4.4.3, §5).

The requestor's proof key travels in the RSTR in clear: as ``RequestedProofToken/BinarySecret``, or as the issuer
``Entropy`` of a computed key whose requestor entropy came in the (unencrypted) request. Over plain HTTP on an
endpoint whose answer is not encrypted (SigOnly, a PasswordDigest UsernameToken) anyone on the path would read the
key and could use the holder-of-key token as its holder: the key is refused there, for Issue and for the fresh key
of a Renew. TLS (or a trusted proxy saying so), an encrypted answer (SigEncr, SgnEncrUsername) or the operator's
``allow_insecure_transport`` (loopback tests) lets it out.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sts.auth.router import UserStoreRouter
from sts.auth.subjects import SubjectAuthorizer
from sts.crypto.keygen import generate_rsa_key, self_signed_certificate
from sts.errors import InvalidRequest, UnableToRenew
from sts.operations.call import TrustCall
from sts.operations.issue import IssueOperation
from sts.operations.minting import TokenMinter
from sts.operations.records import TokenLedger
from sts.operations.renew import RenewalPolicy, RenewOperation
from sts.operations.targets import TargetResolver
from sts.wstrust.actions import Operation
from tests.unit.operations.harness import AFTER, MAX_AGE, RP, SAML2, SKEW, WST, Env, assertion_id, reference

HOK_RP = "https://hok.example.com/app/"
ENTROPY = "<wst:Entropy><wst:BinarySecret>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</wst:BinarySecret></wst:Entropy>"


def issue_inner(key_type: str, extra: str = "") -> str:
    return (
        f"<wst:TokenType>{SAML2}</wst:TokenType>"
        '<wsp:AppliesTo xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy">'
        '<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        f"<wsa:Address>{HOK_RP}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
        f'<wst:KeyType>{WST}/{key_type}</wst:KeyType><wst:Renewing Allow="true"/>{extra}'
    )


def over_plain_http(call: TrustCall) -> TrustCall:
    """The same call arriving over plain HTTP, its answer not encrypted (SigOnly, PasswordDigest)."""
    request = call.request
    return replace(call, request=replace(request, info=replace(request.info, secure_transport=False)))


@pytest.fixture
def hok(env: Env, tmp_path: Path) -> Env:
    """The environment with a relying party that has a certificate (symmetric proof keys are wrapped for it)."""
    cert = self_signed_certificate(generate_rsa_key(2048), "hok-rp")
    env.add_rp(HOK_RP, cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode())
    env.add_user("bob", "admin")
    return env


@pytest.mark.parametrize("extra", ["", ENTROPY], ids=["binary_secret", "computed_key"])
def test_a_symmetric_proof_key_is_not_issued_over_plain_http(hok: Env, extra: str) -> None:
    call = over_plain_http(hok.call_for("bob", Operation.ISSUE, issue_inner("SymmetricKey", extra)))
    with pytest.raises(InvalidRequest) as caught:
        hok.issue_op(call)
    assert caught.value.reason == "proof_key_not_confidential"
    # Over TLS the same request gets its key.
    reply = hok.issue_op(hok.call_for("bob", Operation.ISSUE, issue_inner("SymmetricKey", extra)))
    assert reply.body.find(f".//{{{WST}}}RequestedProofToken") is not None


def test_bearer_tokens_are_still_issued_over_plain_http(hok: Env) -> None:
    """Only the proof key is refused: the rules for bearer tokens over plain HTTP are the authenticators'."""
    reply = hok.issue_op(over_plain_http(hok.call_for("bob", Operation.ISSUE, issue_inner("Bearer"))))
    assert assertion_id(reply)


def test_an_encrypted_answer_may_carry_the_proof_key(hok: Env) -> None:
    """SigEncr / SgnEncrUsername: the answer's Body is encrypted for the caller, so the key is not in clear."""
    call = over_plain_http(hok.call_for("bob", Operation.ISSUE, issue_inner("SymmetricKey")))
    opened = object()  # the operations only ask whether the request was opened (and its answer is protected)
    call = replace(call, request=replace(call.request, opened=opened))  # type: ignore[arg-type]
    reply = hok.issue_op(call)
    assert reply.body.find(f".//{{{WST}}}RequestedProofToken/{{{WST}}}BinarySecret") is not None


def test_the_fresh_key_of_a_renewed_symmetric_token_is_not_sent_over_plain_http(hok: Env) -> None:
    token = assertion_id(hok.issue_op(hok.call_for("bob", Operation.ISSUE, issue_inner("SymmetricKey"))))
    target = f"<wst:RenewTarget>{reference(token)}</wst:RenewTarget>"
    with pytest.raises(UnableToRenew) as caught:
        hok.renew_op(over_plain_http(hok.call_for("bob", Operation.RENEW, target)))
    assert caught.value.reason == "proof_key_not_confidential"
    assert hok.status("bob", token) == "valid"  # the refusal left the token live
    renewed = hok.renew_op(hok.call_for("bob", Operation.RENEW, target))
    assert renewed.body.find(f".//{{{WST}}}RequestedProofToken/{{{WST}}}BinarySecret") is not None


def test_allow_insecure_transport_lets_the_key_out(hok: Env) -> None:
    """The operator's loopback-test switch for passwords over plain HTTP covers proof keys too."""
    minter = TokenMinter(hok.provider, hok.directory, TokenLedger(hok.store, SKEW, AFTER))
    issue = IssueOperation(hok.directory, minter, hok.clock, hok.client_keys, allow_insecure_transport=True)
    token = assertion_id(issue(over_plain_http(hok.call_for("bob", Operation.ISSUE, issue_inner("SymmetricKey")))))
    renew = RenewOperation(
        TargetResolver(hok.store, tuple), hok.directory, minter,
        SubjectAuthorizer(UserStoreRouter.single(hok.users), hok.policy), hok.clock,
        RenewalPolicy(SKEW, AFTER, MAX_AGE), hok.client_keys, allow_insecure_transport=True,
    )
    target = f"<wst:RenewTarget>{reference(token)}</wst:RenewTarget>"
    renewed = renew(over_plain_http(hok.call_for("bob", Operation.RENEW, target)))
    assert renewed.body.find(f".//{{{WST}}}RequestedProofToken/{{{WST}}}BinarySecret") is not None


def test_bearer_renewal_over_plain_http_is_unchanged(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob", RP)
    target = f"<wst:RenewTarget>{reference(token)}</wst:RenewTarget>"
    assert assertion_id(env.renew_op(over_plain_http(env.call_for("bob", Operation.RENEW, target))))


def test_a_public_key_token_of_an_ec_signing_key_renews_signed_with_that_key(env: Env) -> None:
    """SigOnly accepts ECDSA P-256 signatures and binds a PublicKey token to the signing certificate; Renew signed
    with that same key must renew it (the key was proven at Issue and is proven again), not refuse it as not RSA."""
    env.add_user("bob", "admin")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    env.proofs["bob"] = self_signed_certificate(ec_key, "ec-client")  # type: ignore[arg-type]
    token = assertion_id(env.issue_reply("bob", key_type="PublicKey"))
    renewed = env.renew("bob", token)
    assert renewed != token and env.status("bob", renewed) == "valid"
