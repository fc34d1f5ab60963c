"""Issue 18: signing-key rotation without downtime, against gunicorn with 2 workers under a bounded request loop.

``sts key rotate`` publishes the next certificate in the metadata; ``sts key promote`` makes it the signing key,
picked up by the running workers without a restart; no request is lost and every token verifies (signxml, pinned)
with exactly one certificate the metadata had published before the token arrived; the replaced certificate stays
accepted by Validate.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lxml import etree

from tests.load_loop import WST, XENC, LoadLoop, signing_cert_of
from tests.support import Instance, Server, make_instance, rst_envelope, start_server
from tests.token_checks import decrypt_with_python_xmlsec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rot_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("rotation") / "var")


@pytest.fixture(scope="module")
def rot_server(rot_instance: Instance) -> Iterator[Server]:
    server = start_server(rot_instance, workers=2)
    yield server
    server.stop()


def _validate(server: Server, instance: Instance, assertion: etree._Element) -> str:
    extra = f"<wst:ValidateTarget>{etree.tostring(assertion).decode()}</wst:ValidateTarget>"
    body = rst_envelope("admin", instance.demo_password, token_type=f"{WST}/RSTR/Status", extra_rst=extra,
                        request_type=f"{WST}/Validate")
    response = server.post(body, action=f"{WST}/RST/Validate")
    assert response.status_code == 200, response.content[:1000]
    code = etree.fromstring(response.content).findtext(f".//{{{WST}}}Status/{{{WST}}}Code")
    assert code is not None
    return code.rsplit("/", 1)[-1]


def _plain(body: bytes, instance: Instance) -> etree._Element:
    holder = etree.fromstring(body).find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None
    encrypted = holder[0] if holder[0].tag == f"{{{XENC}}}EncryptedData" else holder[0][0]
    return etree.fromstring(decrypt_with_python_xmlsec(encrypted, instance.rp_key))


def test_rotate_then_promote_under_load(rot_server: Server, rot_instance: Instance) -> None:
    loop = LoadLoop(rot_server, rot_instance, clients=2, max_requests=300)
    loop.start()
    try:
        old = loop.current_cert()
        assert old is not None and loop.published_in_role("next") == []
        loop.wait_for(lambda: loop.count() >= 10)
        assert rot_instance.cli("key", "rotate") == 0
        loop.wait_for(lambda: len(loop.published_in_role("next")) == 1)  # every worker within ~1 s
        new = loop.published_in_role("next")[0]
        issued_before_promotion = loop.count()
        loop.wait_for(lambda: loop.count() >= issued_before_promotion + 10)
        assert rot_instance.cli("key", "promote") == 0
        loop.wait_for(lambda: loop.current_cert() == new)
        after = loop.count()
        loop.wait_for(lambda: loop.count() >= after + 20)
    finally:
        loop.stop()
    assert [a.status for a in loop.answers if a.status != 200] == []
    assert loop.roles[old] == "previous"  # the replaced certificate is still published, and accepted
    signers = [signing_cert_of(answer, rot_instance, loop.first_published) for answer in loop.answers]
    assert signers[0] == old and signers[-1] == new
    assert set(signers) == {old, new}
    old_token = _plain(loop.answers[0].body, rot_instance)
    assert _validate(rot_server, rot_instance, old_token) == "valid"
    new_token = _plain(loop.answers[-1].body, rot_instance)
    assert _validate(rot_server, rot_instance, new_token) == "valid"
