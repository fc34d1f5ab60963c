"""bench/floor.py and bench/floor_report.py: the floor is a real token, and its estimates follow the formula.

The floor is only evidence if it does a token's work: its answer is decrypted with the relying party's key and its
signature verified with the STS certificate by independent tools, and a replayed nonce is refused.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import ns
from sts.crypto import keygen
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.signer import AssertionSigner
from tests.token_checks import decrypt_with_xmlsec1, verify_with_both

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))  # bench's modules import each other by bare name, as bench/run.py does

import floor  # noqa: E402
import floor_report  # noqa: E402
import report  # noqa: E402
import setup_instance  # noqa: E402

RESULTS = BENCH / "results" / "20261206T202953Z.json"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[floor.FloorPipeline, Path, Path]]:
    work = tmp_path_factory.mktemp("floor")
    sts_key, rp_key = keygen.generate_rsa_key(2048), keygen.generate_rsa_key(2048)
    sts_cert = keygen.self_signed_certificate(sts_key, "floor sts")
    rp_cert = keygen.self_signed_certificate(rp_key, "floor rp")
    keygen.write_private_key(work / "rp.key.pem", rp_key)
    (work / "sts.crt.pem").write_bytes(sts_cert.public_bytes(serialization.Encoding.PEM))
    encrypter = TokenEncrypter(rp_cert, EncryptionPolicy())
    made = floor.FloorPipeline(AssertionSigner(sts_key, sts_cert), encrypter, setup_instance.RP_HEADLINE, work)
    yield made, work / "rp.key.pem", work / "sts.crt.pem"
    made.close()


def _body() -> bytes:
    template = setup_instance.issue_template("http://127.0.0.1:9443/services/wso2carbon-sts", "secret")
    return setup_instance.fill(template, "alice")


def test_the_floor_answers_with_an_encrypted_signed_assertion(pipeline: Any) -> None:
    made, rp_key, sts_cert = pipeline
    answer = etree.fromstring(made.issue(_body()))
    encrypted = answer.find(f".//{{{ns.SAML2}}}EncryptedAssertion/{{{ns.XENC}}}EncryptedData")
    assert encrypted is not None
    plaintext = decrypt_with_xmlsec1(etree.tostring(encrypted), rp_key)
    assertion = verify_with_both(plaintext, sts_cert, saml11=False)
    assert assertion.findtext(f"{{{ns.SAML2}}}Subject/{{{ns.SAML2}}}NameID") == "alice"
    audience = assertion.findtext(f".//{{{ns.SAML2}}}Audience")
    assert audience == setup_instance.RP_HEADLINE


def test_the_floor_refuses_a_replayed_nonce_and_a_wrong_password(pipeline: Any) -> None:
    made = pipeline[0]
    body = _body()
    made.issue(body)
    with pytest.raises(ValueError, match="replayed nonce"):
        made.issue(body)
    made.issue(_body())  # the credential cache now holds alice's password
    with pytest.raises(ValueError, match="wrong password"):
        made.issue(_body().replace(b">secret<", b">other<"))


def _results(floor_ms: float, encryption_ms: float = 0.15) -> dict[str, Any]:
    results = copy.deepcopy(json.loads(RESULTS.read_text()))
    results["floor_inprocess"] = {
        "requests": 300, "rsa_reference_cpu_ms": 0.25, "headline_cpu_ms_per_token": 1.8,
        "floor_cpu_ms_per_token": floor_ms, "floor_sign_call_ms": 0.5, "floor_encrypt_xml_call_ms": 0.08,
        "floor_encryption_ms": encryption_ms,
    }
    return results


def test_estimates_keep_the_http_cost_and_scale_the_rest() -> None:
    results = _results(0.9)
    static_x = results["scenarios"]["ref_static"]["cpu_ms_per_request"] / results["scenarios"]["ref_rsa"][
        "cpu_ms_per_request"]
    headline_x = results["headline"]["cpu_ratio_to_rsa"]
    rows = {row["id"]: row for row in floor_report.estimates(results)}
    assert rows["headline_cpu"]["floor"] == round(static_x + 0.5 * (headline_x - static_x), 2)
    assert rows["signed_only_cpu"]["floor"] == round(static_x + 0.75 / 1.8 * (headline_x - static_x), 2)
    assert rows["outside_libraries_cpu"]["floor"] == round(static_x + 0.32 / 1.8 * (headline_x - static_x), 2)
    assert rows["headline_cpu"]["floor_meets"] is (rows["headline_cpu"]["floor"] <= 2.5)
    headline_floor = static_x + 0.5 * (headline_x - static_x)
    rps = results["headline"]["rps_ratio_to_rsa"] * headline_x / headline_floor
    assert rows["headline_rps"]["floor"] == round(rps, 2)
    assert rows["headline_rps"]["floor_meets"] is (rps >= 0.35)  # throughput: more is better
    cache_limit = next(t["limit"] for t in results["targets"] if t["id"] == "cache_disabled_cpu")
    assert rows["cache_disabled_cpu"]["floor"] == round(cache_limit - 2.0 + headline_floor, 2)
    assert rows["headline_cpu"]["product"] == results["headline"]["cpu_ratio_to_rsa"]


def test_the_report_says_whether_the_floor_can_meet_each_target() -> None:
    high, low = _results(1.2), _results(0.9)
    assert "| headline CPU per token <= 2.5x RSA (moonshot 2.0x) | 4.51 x RSA | 3.13 x RSA | **no** |" in (
        "\n".join(floor_report.section(high)))
    assert "| 4.51 x RSA | 2.44 x RSA | yes |" in "\n".join(floor_report.section(low))
    assert "## The floor" in report.markdown(high, None)
    assert "### The floor" in report.readme_section(high, RESULTS.with_suffix(".md"))
    without = copy.deepcopy(high)
    del without["floor_inprocess"]
    assert floor_report.section(without) == []
    assert "The floor" not in report.markdown(without, None)
