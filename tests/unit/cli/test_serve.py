"""``sts serve``'s start-up banner (sts/cli/serve.py)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sts.cli import serve


def test_the_demo_command_names_this_installations_sts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo.json").write_text(json.dumps({
        "username": "admin", "applies_to": "https://localhost:8443/demo-rp/", "password_file": "demo-pw.txt",
    }))
    serve._announce(tmp_path, "https://127.0.0.1:9443/services/wso2carbon-sts", tmp_path / "tls.crt.pem")
    line = capsys.readouterr().out.splitlines()[-1].strip()
    command = shlex.split(line.partition(" < ")[0])
    assert not line.startswith(".venv/")  # not a path that only exists in a clone after `make run`
    program = command[:1] if command[1:3] != ["-m", "sts"] else command[:3]
    version = subprocess.run([*program, "--version"], capture_output=True, text=True, check=True)  # noqa: S603
    assert version.stdout.startswith("sts ")
    assert command[len(program):len(program) + 3] == ["--config", str(tmp_path / "sts.toml"), "request"]


def test_without_a_console_script_it_is_python_dash_m(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    assert serve.sts_command() == f"{tmp_path / 'python3'} -m sts"


@pytest.mark.parametrize("unset", ["STS_SERVER_TLS_KEY", "STS_SERVER_TLS_CERT"])
def test_serve_and_reload_refuse_half_a_tls_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], unset: str
) -> None:
    """With one of tls_cert and tls_key, gunicorn listens in plain HTTP while the WSDL, the metadata and the
    announcement say https; check-config called it a problem, serve started anyway."""
    from sts.cli import main
    from tests.support import make_instance

    instance = make_instance(tmp_path / "var")
    capsys.readouterr()
    monkeypatch.setenv(unset, "")  # an empty path is no path

    def no_exec(*_args: object) -> None:
        raise AssertionError("gunicorn started")

    monkeypatch.setattr(os, "execve", no_exec)
    signalled: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, _sig: signalled.append(pid))
    pid_file = tmp_path / "sts.pid"
    pid_file.write_text("999999\n")

    assert main(["--config", str(instance.config), "check-config"]) == 1
    assert "tls_cert and tls_key go together" in capsys.readouterr().out
    assert main(["--config", str(instance.config), "serve"]) == 1
    assert "tls_cert and tls_key go together" in capsys.readouterr().err
    assert main(["--config", str(instance.config), "reload", "--pid-file", str(pid_file)]) == 1
    assert "tls_cert and tls_key go together" in capsys.readouterr().err
    assert signalled == []
