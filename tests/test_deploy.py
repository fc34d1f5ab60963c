"""``deploy/sts.service``: a unit systemd accepts, hardened, writing only to the instance directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "sts.service"


def _settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    sts = Path(sys.executable).with_name("sts")  # verify checks that ExecStart's program exists
    unit = tmp_path / "sts.service"
    unit.write_text(UNIT.read_text().replace("/opt/sts/bin/sts", str(sts)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)  # noqa: S603
    assert (result.returncode, result.stderr) == (0, "")  # unknown keys are only warnings on stderr


def test_the_unit_is_hardened_and_writes_only_the_instance_directory() -> None:
    unit = _settings()
    assert unit["DynamicUser"] == ["yes"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"] and unit["ReadWritePaths"] == ["/var/lib/sts"]
    assert unit["StateDirectory"] == ["sts"]  # /var/lib/sts, owned by the dynamic user
    assert unit["Environment"] == ["STS_CONFIG=/var/lib/sts/sts.toml", "STS_PIDFILE=/run/sts/sts.pid"]
    assert unit["RuntimeDirectory"] == ["sts"]  # /run/sts, where the pid file is written
    assert unit["ExecReload"] == ["/opt/sts/bin/sts reload"]  # systemctl reload: checked, then SIGHUP
    assert unit["CapabilityBoundingSet"] == [""] and unit["PrivateTmp"] == ["yes"]
    assert unit["ExecStart"] == ["/opt/sts/bin/sts serve"]
