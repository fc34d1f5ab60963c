"""``sts check-config`` on the X.509 client settings: the client CA and its CRLs (readable, a CA, one complete CRL
per CA signed by it, between thisUpdate and nextUpdate), the TLS client-certificate bundle, and
certificatetransport's need for a way in."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sts.cli import main
from tests.x509_support import make_cert, make_crl, rsa_key

PEM = serialization.Encoding.PEM


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("clientca") / "instance"
    assert main(["init", "--demo", "--key-size", "2048", str(directory)]) == 0
    key = rsa_key()
    ca = make_cert("Client CA", key, ca=True, extended=None, key_usage="none", days=(-1, 365))
    (directory / "ca.pem").write_bytes(ca.public_bytes(PEM))
    (directory / "leaf.pem").write_bytes(make_cert("leaf", rsa_key()).public_bytes(PEM))
    (directory / "good.crl").write_bytes(make_crl((ca, key), []))  # type: ignore[arg-type]
    (directory / "stale.crl").write_bytes(make_crl((ca, key), [], next_update_days=0))  # type: ignore[arg-type]
    (directory / "foreign.crl").write_bytes(make_crl((ca, rsa_key()), []))  # type: ignore[arg-type]
    (directory / "delta.crl").write_bytes(make_crl((ca, key), [], extensions=[(x509.DeltaCRLIndicator(1), True)]))  # type: ignore[arg-type]
    (directory / "future.crl").write_bytes(make_crl((ca, key), [], this_update_hours=48))  # type: ignore[arg-type]
    other_key = rsa_key()
    other = make_cert("Other CA", other_key, ca=True, extended=None, key_usage="none", days=(-1, 365))
    (directory / "two-cas.pem").write_bytes(ca.public_bytes(PEM) + other.public_bytes(PEM))
    (directory / "bundle.crl").write_bytes(make_crl((ca, key), []) + make_crl((other, other_key), []))  # type: ignore[arg-type]
    for name, kwargs in (("expired-ca", {"days": (-400, -30)}), ("no-certsign-ca", {"key_cert_sign": False}),
                         ("expiring-ca", {"days": (-400, 10)})):
        unusable = make_cert("Client CA", rsa_key(), ca=True, extended=None, key_usage="none", **kwargs)  # type: ignore[arg-type]
        (directory / f"{name}.pem").write_bytes(unusable.public_bytes(PEM))
    return directory


def _check(directory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           **env: str) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(["--config", str(directory / "sts.toml"), "check-config"])
    return code, capsys.readouterr().out


def test_a_good_client_ca_and_crl_pass(demo: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(demo, monkeypatch, capsys, STS_SECURITY_CLIENT_CA_FILE=str(demo / "ca.pem"),
                       STS_SECURITY_CLIENT_CRL_FILE=str(demo / "good.crl"), STS_SECURITY_CLIENT_CERT_USER="cn")
    assert code == 0, out


def test_a_crl_bundle_with_one_crl_per_ca_passes(demo: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(demo, monkeypatch, capsys, STS_SECURITY_CLIENT_CA_FILE=str(demo / "two-cas.pem"),
                       STS_SECURITY_CLIENT_CRL_FILE=str(demo / "bundle.crl"), STS_SECURITY_CLIENT_CERT_USER="cn")
    assert code == 0, out


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"STS_SECURITY_CLIENT_CA_FILE": "leaf.pem", "STS_SECURITY_CLIENT_CERT_USER": "cn"}, "no CA certificate"),
        ({"STS_SECURITY_CLIENT_CA_FILE": "missing.pem", "STS_SECURITY_CLIENT_CERT_USER": "cn"}, "unreadable"),
        ({"STS_SECURITY_CLIENT_CA_FILE": "ca.pem"}, "client_cert_user: required"),
        ({"STS_SECURITY_CLIENT_CA_FILE": "ca.pem", "STS_SECURITY_CLIENT_CERT_USER": "cn",
          "STS_SECURITY_CLIENT_CRL_FILE": "foreign.crl"}, "not signed by a configured client CA"),
        ({"STS_SECURITY_CLIENT_CA_FILE": "ca.pem", "STS_SECURITY_CLIENT_CERT_USER": "cn",
          "STS_SECURITY_CLIENT_CRL_FILE": "delta.crl"}, "a delta CRL, not a complete one"),
        ({"STS_SECURITY_CLIENT_CA_FILE": "ca.pem", "STS_SECURITY_CLIENT_CERT_USER": "cn",
          "STS_SECURITY_CLIENT_CRL_FILE": "future.crl"}, "thisUpdate in the future"),
        ({"STS_SECURITY_CLIENT_CA_FILE": "two-cas.pem", "STS_SECURITY_CLIENT_CERT_USER": "cn",
          "STS_SECURITY_CLIENT_CRL_FILE": "good.crl"}, "CA CN=Other CA,O=sts tests: no CRL of this CA in the file"),
        ({"STS_SECURITY_CLIENT_CA_FILE": "expired-ca.pem", "STS_SECURITY_CLIENT_CERT_USER": "cn"},
         "certificate expired on"),
        ({"STS_SECURITY_CLIENT_CA_FILE": "no-certsign-ca.pem", "STS_SECURITY_CLIENT_CERT_USER": "cn"},
         "KeyUsage without keyCertSign; it vouches for no certificate"),
        ({"STS_SECURITY_CLIENT_CRL_FILE": "good.crl"}, "needs security.client_ca_file"),
        ({"STS_SERVER_TLS_CLIENT_CA_FILE": "missing.pem"}, "holds no PEM certificate"),
        ({"STS_SECURITY_SCENARIOS": "UTOverTransport,certificatetransport"}, "certificatetransport needs"),
    ],
    ids=["not_a_ca", "unreadable", "no_mapping_rule", "crl_of_another_key", "delta_crl", "crl_not_yet_valid",
         "ca_without_its_crl", "expired_ca", "ca_without_key_cert_sign",
         "crl_without_ca", "tls_bundle_missing", "transport_without_a_way_in"],
)
def test_client_certificate_settings_problems(demo: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], env: dict[str, str],
                                              problem: str) -> None:
    resolved = {k: str(demo / v) if v.endswith((".pem", ".crl")) else v for k, v in env.items()}
    code, out = _check(demo, monkeypatch, capsys, **resolved)
    assert code == 1 and problem in out, out


def test_an_expired_crl_is_a_problem(demo: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """P03: past nextUpdate every CA-issued certificate is refused, so check-config says so."""
    code, out = _check(demo, monkeypatch, capsys, STS_SECURITY_CLIENT_CA_FILE=str(demo / "ca.pem"),
                       STS_SECURITY_CLIENT_CRL_FILE=str(demo / "stale.crl"), STS_SECURITY_CLIENT_CERT_USER="cn")
    assert code == 1 and "past its nextUpdate" in out, out


def test_a_client_ca_expiring_soon_is_a_warning(demo: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(demo, monkeypatch, capsys, STS_SECURITY_CLIENT_CA_FILE=str(demo / "expiring-ca.pem"),
                       STS_SECURITY_CLIENT_CERT_USER="cn")
    assert code == 0 and "warning: security.client_ca_file:" in out and "certificate expires on" in out, out


def test_check_config_never_prints_a_password_from_a_refused_url(
    demo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Redis URL from the environment that check-config refuses is quoted with its password masked."""
    code, out = _check(demo, monkeypatch, capsys, STS_CACHE_BACKEND="redis",
                       STS_CACHE_URL="rediss+sentinel://:hunter2@cache.internal:6379/0")
    assert code == 1
    assert "hunter2" not in out + capsys.readouterr().err
    assert ("problem: environment STS_CACHE_URL: must be a redis:// or rediss:// URL"
            " (got 'rediss+sentinel://***@cache.internal:6379/0')") in out
