"""Cross-setting checks of sts/config/settings.py that the loader leaves to check-config, reload and serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from sts.cli import main
from sts.config.loader import load_settings
from sts.config.settings import hsm_scenario_problems

HSM = '[issuer]\npkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"\n'


@pytest.mark.parametrize(("scenarios", "named"), [
    ('["UTOverTransport", "SigOnly"]', "SigOnly"),
    ('["SigEncr", "SgnEncrUsername", "certificatemixed"]', "SigEncr, SgnEncrUsername"),
])
def test_scenarios_that_need_the_key_itself_are_a_problem_with_an_hsm(tmp_path: Path, scenarios: str,
                                                                      named: str) -> None:
    path = tmp_path / "sts.toml"
    path.write_text(f"{HSM}[security]\nscenarios = {scenarios}\n")
    (problem,) = hsm_scenario_problems(load_settings(path, env={}))
    assert f"security.scenarios: {named} sign or decrypt" in problem


@pytest.mark.parametrize("text", [
    f'{HSM}[security]\nscenarios = ["UTOverTransport", "certificatemixed", "certificatetransport"]\n',
    '[security]\nscenarios = ["SigOnly", "SigEncr"]\n',
])
def test_no_problem_without_the_combination(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sts.toml"
    path.write_text(text)
    assert hsm_scenario_problems(load_settings(path, env={})) == []


def test_check_config_and_reload_report_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`sts serve` refused such an instance with gunicorn's traceback after check-config had said OK."""
    directory = tmp_path / "instance"
    assert main(["init", "--key-size", "2048", str(directory)]) == 0
    monkeypatch.setenv("STS_ISSUER_PKCS11_MODULE", str(tmp_path / "libvendor.so"))
    monkeypatch.setenv("STS_SECURITY_SCENARIOS", "UTOverTransport,SigEncr")
    capsys.readouterr()
    assert main(["--config", str(directory / "sts.toml"), "check-config"]) == 1
    assert "problem: security.scenarios: SigEncr sign or decrypt" in capsys.readouterr().out
    assert main(["--config", str(directory / "sts.toml"), "reload", "--pid-file", str(tmp_path / "none.pid")]) == 1
    assert "security.scenarios: SigEncr sign or decrypt" in capsys.readouterr().err
    assert main(["--config", str(directory / "sts.toml"), "serve"]) == 1
    assert "security.scenarios: SigEncr sign or decrypt" in capsys.readouterr().err
