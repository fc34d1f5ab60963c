"""One wrk run against one server ("a slice"), with the server's CPU time sampled over a measurement window.

wrk runs for the slice's duration (and stops a connection's thread at ``max_requests`` responses); the Lua
side counts the responses completed inside ``[start + lead, end - tail]`` while this side reads the server's
user + system time from /proc at exactly those two instants. CPU per request = CPU in the window / responses
in the window, requests/s = responses in the window / window length: both exclude connection ramp-up and the
requests wrk abandons at its end (which the workers still process after wrk has gone; bench/run.py waits for
the server to go idle before the next slice).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from servers import BENCH_DIR, Server

LUA_DIR = BENCH_DIR / "wrk"


@dataclass(frozen=True)
class Load:
    """What to send: a Lua script (``issue.lua`` with a template, or ``fixed.lua`` with a body) and headers."""

    path: str
    headers: dict[str, str]
    script: str  # "issue" | "fixed"
    payload: Path  # template (issue) or body (fixed)
    users: tuple[str, ...] = ()


@dataclass
class Slice:
    """What one wrk run measured."""

    scenario: str
    server: str
    connections: int
    duration_s: float
    requests: int = 0
    window_s: float = 0.0
    in_window: int = 0
    cpu_s: float = 0.0
    cpu_ms_per_request: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    errors: int = 0
    error_detail: dict[str, int] = field(default_factory=dict)
    capped: bool = False
    client_cpu_ms_per_request: float = 0.0  # wrk's own CPU (it shares the cores with the servers)
    delay_ms: float = 0.0
    round: int = -1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk not found: `apt-get install -y wrk` (make bench installs it)")
    return path


def wrk_version() -> str:
    out = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip()


def run_slice(
    server: Server, load: Load, scenario: str, *, connections: int, duration: float, max_requests: int,
    delay_ms: float = 0.0, lead: float = 0.5, tail: float = 0.25,
) -> Slice:
    """Run wrk once and measure; the server must be idle otherwise. wrk takes whole seconds only."""
    duration = float(max(1, round(duration)))
    result = Slice(scenario, server.name, connections, duration, delay_ms=delay_ms)
    with tempfile.TemporaryDirectory(prefix="sts-bench-wrk-") as tmp:
        out = Path(tmp) / "result.json"
        started = time.time()
        window_start, window_end = started + lead, started + duration - tail
        env = dict(os.environ) | {
            "BENCH_LUA_DIR": str(LUA_DIR),
            "BENCH_RESULT": str(out),
            "BENCH_WINDOW_START": f"{window_start:.6f}",
            "BENCH_WINDOW_END": f"{window_end:.6f}",
            "BENCH_MAX_REQUESTS": str(max_requests),
            "BENCH_DELAY_MS": str(delay_ms),
            "BENCH_TEMPLATE" if load.script == "issue" else "BENCH_BODY": str(load.payload),
            "BENCH_USERS": ",".join(load.users),
        }
        argv = [wrk_binary(), "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "10s",
                "-s", str(LUA_DIR / f"{load.script}.lua")]
        for name, value in load.headers.items():
            argv += ["-H", f"{name}: {value}"]
        argv.append(server.url(load.path))
        client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
        _sleep_until(window_start)
        cpu_start, t_start = server.cpu_seconds(), time.time()
        _sleep_until(window_end)
        cpu_end, t_end = server.cpu_seconds(), time.time()
        output, _ = process.communicate(timeout=duration + 30)
        client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if process.returncode != 0 or not out.is_file():
            raise RuntimeError(f"wrk failed ({process.returncode}):\n{output.decode(errors='replace')}")
        data = json.loads(out.read_text())
    errors = data["errors"]
    result.requests = int(data["requests"])
    result.in_window = int(data["in_window"])
    result.window_s = t_end - t_start
    result.cpu_s = cpu_end - cpu_start
    if result.in_window:
        result.cpu_ms_per_request = 1000 * result.cpu_s / result.in_window
        result.rps = result.in_window / (window_end - window_start)
    latency = data["latency_us"]
    result.p50_ms, result.p90_ms, result.p99_ms = (latency[k] / 1000 for k in ("p50", "p90", "p99"))
    result.mean_ms = latency["mean"] / 1000
    result.error_detail = {k: int(v) for k, v in errors.items() if k != "status"} | {
        "non_200": int(data["bad_status"])
    }
    result.errors = sum(result.error_detail.values())
    result.capped = bool(data["capped"])
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    if result.requests:
        result.client_cpu_ms_per_request = 1000 * client_cpu / result.requests
    server.served += result.requests
    return result


def _sleep_until(instant: float) -> None:
    delay = instant - time.time()
    if delay > 0:
        time.sleep(delay)
