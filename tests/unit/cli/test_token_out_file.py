"""The token file ``--out`` writes (``sts request``, ``sts renew``, ``sts validate --applies-to``) holds a credential:
a bearer assertion is presented to its relying party as it is, and ``sts request --token`` logs in with one. It is
written like the proof key: mode 0600 whatever the umask (also over an existing file), never through a symbolic
link."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from sts.cli import main as sts_main
from tests.fake_sts import FakeSts, saml2_assertion, token_answer

RP = "https://rp.example.com/app/"
PASSWORD = "s3cret-pw"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _run(monkeypatch: pytest.MonkeyPatch, command: str, url: str, *extra: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    return sts_main([command, url, "--username", "alice", "--password-stdin", *extra])


def _commands(tmp_path: Path) -> dict[str, tuple[str, ...]]:
    target = tmp_path / "target.xml"
    target.write_bytes(etree.tostring(saml2_assertion("_target")))
    return {
        "request": ("request", "--applies-to", RP),
        "renew": ("renew", "--id", "_old"),
        "validate": ("validate", "--token", str(target), "--applies-to", RP, "--token-type", "saml20"),
    }


def _answer(command: str) -> bytes:
    if command != "validate":
        return token_answer(assertion_id="_out")
    # a valid status and the new token in one RSTR
    from sts import ns  # noqa: PLC0415 - only this answer needs it

    body = etree.fromstring(token_answer(assertion_id="_out"))
    rstr = body.find(f".//{{{ns.WST}}}RequestSecurityTokenResponse")
    assert rstr is not None
    status = etree.SubElement(rstr, f"{{{ns.WST}}}Status")
    etree.SubElement(status, f"{{{ns.WST}}}Code").text = f"{ns.WST}/status/valid"
    return etree.tostring(body)


@pytest.mark.parametrize("command", ["request", "renew", "validate"])
def test_token_file_is_private(
    command: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loose_umask: None
) -> None:
    fake_sts.body = _answer(command)
    name, *args = _commands(tmp_path)[command]
    out = tmp_path / "token.xml"
    assert _run(monkeypatch, name, fake_sts.url, *args, "--out", str(out)) == 0
    assert etree.fromstring(out.read_bytes()).get("ID") == "_out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_existing_token_file_is_made_private(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loose_umask: None
) -> None:
    fake_sts.body = _answer("request")
    out = tmp_path / "token.xml"
    out.write_bytes(b"old")
    out.chmod(0o644)
    assert _run(monkeypatch, "request", fake_sts.url, "--applies-to", RP, "--out", str(out)) == 0
    assert etree.fromstring(out.read_bytes()).get("ID") == "_out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_token_file_never_written_through_a_link(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_sts.body = _answer("request")
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"untouched")
    out = tmp_path / "token.xml"
    out.symlink_to(elsewhere)
    assert _run(monkeypatch, "request", fake_sts.url, "--applies-to", RP, "--out", str(out)) == 1
    assert elsewhere.read_bytes() == b"untouched"
    assert capsys.readouterr().err.startswith(f"sts: error: cannot write {out}: ")
