"""gunicorn servers on 127.0.0.1 and what /proc says about them (CPU time, RSS).

Every server is the STS's production gunicorn configuration (``sts/gunicorn_conf.py``: the production worker of
:mod:`sts.gunicorn_worker`, one per core, ``preload_app``; only ``--max-requests 0`` added, see :func:`base_env`;
the serving-model comparison adds ``--worker-class sync``, :data:`SYNC_WORKERS`): the STS through ``sts serve``
(which execs gunicorn, so the PID is the master), the reference endpoints through
``python -m gunicorn -c sts/gunicorn_conf.py reference_app:application``. Plain HTTP on loopback: TLS is
switched off with ``STS_SERVER_TLS_CERT=""``/``STS_SERVER_TLS_KEY=""`` and PasswordText allowed with
``STS_SERVER_ALLOW_INSECURE_TRANSPORT=true``; access log off.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import sts

BENCH_DIR = Path(__file__).resolve().parent
STS_BIN = Path(sys.executable).with_name("sts")
GUNICORN_CONF = Path(sts.__file__).resolve().parent / "gunicorn_conf.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from #3 (state) on


def children(pid: int, *, zombies: bool = False) -> list[int]:
    """Child processes of ``pid`` (the gunicorn workers of a master); exited, not yet reaped ones on request."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[1]) == pid and (zombies or fields[0] != "Z"):
                found.append(int(entry))
    return sorted(found)


def rss_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB; PSS splits pages shared with the master and the other workers."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


@dataclass
class Server:
    """One gunicorn master with its workers."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    served: int = 0  # requests completed by wrk against this server (plus warm-up)
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """user + system time of the master and all workers, including workers that exited since start.

        A worker that exits (``max_requests`` recycling, a crash) keeps its final times in /proc until the
        master reaps it, and then the kernel adds them to the master's ``cutime``/``cstime``; so counting
        zombies too, the sum never loses CPU between two samples.
        """
        total = 0
        master = _stat_fields(self.pid)
        if master is None:
            raise RuntimeError(f"{self.name}: gunicorn master is gone")
        total += sum(int(master[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        for worker in children(self.pid, zombies=True):
            fields = _stat_fields(worker)
            if fields is not None:
                total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def worker_memory(self) -> list[dict[str, float]]:
        """RSS and PSS (MiB) of every worker."""
        out = []
        for worker in children(self.pid):
            rss, pss = rss_kib(worker)
            out.append({"pid": worker, "rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1)})
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def base_env(config: Path, port: int) -> dict[str, str]:
    """The benchmark's overrides. Workers are not recycled (``--max-requests 0``; production: 20,000 ± 2,000)
    so that no worker is replaced inside a measurement window and memory growth up to 50k requests shows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STS_", "GUNICORN_"))}
    env.update({
        "GUNICORN_CMD_ARGS": "--max-requests 0",
        "STS_CONFIG": str(config),
        "STS_SERVER_BIND": f"127.0.0.1:{port}",
        "STS_SERVER_TLS_CERT": "",
        "STS_SERVER_TLS_KEY": "",
        "STS_SERVER_ALLOW_INSECURE_TRANSPORT": "true",
        "STS_LOGGING_ACCESS_LOG": "false",
    })
    return env


def start_sts(name: str, config: Path, logdir: Path, extra_env: dict[str, str] | None = None) -> Server:
    """``sts --config CONFIG serve`` with the benchmark's overrides."""
    port = free_port()
    env = base_env(config, port) | (extra_env or {})
    return _start(name, [str(STS_BIN), "--config", str(config), "serve"], env, port, logdir, "/healthz")


#: GUNICORN_CMD_ARGS of the serving-model comparison: gunicorn's sync workers instead of the production worker.
SYNC_WORKERS = {"GUNICORN_CMD_ARGS": "--max-requests 0 --worker-class sync --threads 1"}


def start_reference(
    config: Path, rsa_key: Path, logdir: Path, extra_env: dict[str, str] | None = None, name: str = "reference"
) -> Server:
    """The reference endpoints under the same gunicorn settings (same config file, same worker count)."""
    port = free_port()
    env = base_env(config, port) | {"BENCH_RSA_KEY": str(rsa_key)} | (extra_env or {})
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--pythonpath", str(BENCH_DIR),
            "reference_app:application"]
    return _start(name, argv, env, port, logdir, "/healthz")


def _start(name: str, argv: list[str], env: dict[str, str], port: int, logdir: Path, health: str) -> Server:
    log = logdir / f"{name}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=logdir)  # noqa: S603
    server = Server(name, port, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(server.url(health), timeout=2) as reply:  # noqa: S310 - loopback
                if reply.status == 200 and len(children(server.pid)) >= 1:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        server.stop()
        raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
    _wait_for_workers(server)
    return server


def _wait_for_workers(server: Server) -> None:
    """Until every worker of the configured count is up (preload: they fork within a second)."""
    expected = os.cpu_count() or 1  # [server] workers = 0: one per core, as sts/gunicorn_conf.py computes it
    deadline = time.monotonic() + 20
    while len(children(server.pid)) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
