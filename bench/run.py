"""``make bench``: a self-contained benchmark of the STS against reference endpoints, a few minutes on 2 cores.

Everything runs on 127.0.0.1 over plain HTTP: fresh instances (``sts init`` + generated users and relying
parties), the STS under its production gunicorn settings, the reference endpoints (bench/reference_app.py) under
the same settings, wrk as load generator, interleaved rounds, an in-process profile of the headline request.
Writes ``bench/results/<timestamp>.{md,json}`` and ``<timestamp>-profile.txt``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(REPO))  # the repository: sts, tests/servers (slapd)

import analysis  # noqa: E402
import directory  # noqa: E402
import loadgen  # noqa: E402
import paired  # noqa: E402
import report  # noqa: E402
import servers as sv  # noqa: E402
import setup_instance as si  # noqa: E402
import shared_state  # noqa: E402
from scenarios import HEADLINE, METRICS_OFF, PAIRED, PRIMARY, RSA, SCENARIOS, SECONDARY, STATIC, rotated  # noqa: E402

from sts.auth.passwords import PasswordHasher  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ENDPOINT = "/services/wso2carbon-sts"
MAX_REQUESTS = 200_000  # per slice: a bound no round reaches (a capped slice is flagged in the JSON)
# Warm-up: one slice per server and relying party (per-worker caches: credentials, encrypters, RP directory).
WARM_UP = [RSA, HEADLINE, "saml20_signed_only", "saml20_claims_50", "saml20_no_nonce", "saml20_cache_disabled",
           "saml20_rps_10k", "saml20_users_100k", METRICS_OFF, "saml20_sync_workers", "ref_static_sync_workers",
           "saml20_directory_user", "saml20_directory_cache_disabled", "saml20_two_nodes_node_a",
           "saml20_two_nodes_node_b", "saml20_client_not_exempt"]
MEMORY_CHECKPOINT = 10_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="primary rounds (default %(default)s)")
    parser.add_argument("--slice", type=float, default=3.0, help="primary slice seconds (default %(default)s)")
    parser.add_argument("--secondary-rounds", type=int, default=2, help="secondary rounds (default %(default)s)")
    parser.add_argument("--secondary-slice", type=float, default=2.0, help="secondary slice seconds")
    parser.add_argument("--paired-rounds", type=int, default=4, help="paired rounds: pairs per scenario that a "
                        "target compares with the headline (default %(default)s)")
    parser.add_argument("--paired-slice", type=float, default=2.0, help="paired slice seconds")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections in the rounds")
    parser.add_argument("--soak", type=int, default=50_000, help="requests the headline server has served "
                        "when memory is read the last time (default %(default)s)")
    parser.add_argument("--key-size", type=int, default=2048, help="RSA bits of the STS, RP and reference keys")
    parser.add_argument("--profile-requests", type=int, default=300)
    parser.add_argument("--noise-limit", type=float, default=0.25, help="max RSA spread between rounds")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--keep", action="store_true", help="keep the temporary instances and server logs")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 short rounds, 3k-request soak")
    parser.add_argument("--update-readme", type=Path, metavar="README",
                        help="also replace the '## Performance' section of this README with the new table")
    parser.add_argument("--readme-from", type=Path, metavar="RESULTS.json",
                        help="with --update-readme: take the table from this earlier run instead of running")
    parser.add_argument("--previous", type=Path, metavar="RESULTS.json",
                        help="an earlier run's results: the new .md and README section show it next to the new "
                        "numbers (with --readme-from, that run's .md is rewritten with the comparison)")
    args = parser.parse_args()
    if args.readme_from and not args.update_readme:
        parser.error("--readme-from goes with --update-readme")
    if args.previous:  # read now, not after a five-minute run
        try:
            args.previous_results = json.loads(args.previous.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--previous: {exc}")
        if not {"timestamp", "headline", "targets", "scenarios"} <= set(args.previous_results):
            parser.error(f"--previous: {args.previous} is not a bench results file")
    else:
        args.previous_results = None
    if args.quick:
        args.rounds, args.secondary_rounds, args.slice, args.secondary_slice = 2, 1, 2.0, 2.0
        args.paired_rounds = 2
        args.soak, args.profile_requests = 3000, 60
    return args


class Bench:
    """Instances, servers, loads, and the slices measured so far."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.started = time.monotonic()
        self.instances: dict[str, si.Instance] = {}
        self.servers: dict[str, sv.Server] = {}
        self.server_instance: dict[str, str] = {}
        self.rss: dict[str, list[float]] = {}
        self.memory: dict[str, Any] = {}
        self.log: list[str] = []
        self.resources = contextlib.ExitStack()  # the benchmark's directory server
        self.notes: list[str] = []

    def say(self, message: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f}s] {message}"
        self.log.append(line)
        print(line, flush=True)

    # --- set-up ---------------------------------------------------------------------------------------

    def setup(self) -> None:
        key_size = self.args.key_size
        hasher = PasswordHasher()
        shared_hash = hasher.hash("filler users share this hash and never log in")
        rp_cert = si.make_rp_certificate(self.work, key_size)
        for name, users, rps in (("std", 1_000, 10), ("rps10k", 1_000, 10_000), ("users100k", 100_000, 10)):
            self.instances[name] = si.create_instance(
                name, self.work / name, users=users, rps=rps, key_size=key_size, rp_cert=rp_cert, hasher=hasher,
                shared_hash=shared_hash)
            self.say(f"instance {name}: {users:,} users, {rps:,} relying parties")
        std = self.instances["std"]
        self.servers["reference"] = sv.start_reference(std.config, std.signing_key, self.work)
        self.servers["std"] = sv.start_sts("std", std.config, self.work)
        self.servers["nocache"] = sv.start_sts("nocache", std.config, self.work,
                                               {"STS_SECURITY_CREDENTIAL_CACHE_TTL": "0"})
        self.servers["rps10k"] = sv.start_sts("rps10k", self.instances["rps10k"].config, self.work)
        self.servers["users100k"] = sv.start_sts("users100k", self.instances["users100k"].config, self.work)
        self.servers["sync"] = sv.start_sts("sync", std.config, self.work, sv.SYNC_WORKERS)
        self.servers["nometrics"] = sv.start_sts("nometrics", std.config, self.work, {"STS_METRICS_ENABLED": "false"})
        # wrk connects from loopback, which `client_failure_exempt` exempts from throttling by default: this server
        # exempts nobody, so each token pays the per-client failure-count read, as a production client does.
        self.servers["throttled"] = sv.start_sts("throttled", std.config, self.work,
                                                 {"STS_SECURITY_CLIENT_FAILURE_EXEMPT": ""})
        self.servers["reference_sync"] = sv.start_reference(
            std.config, std.signing_key, self.work, sv.SYNC_WORKERS, "reference_sync")
        self.server_instance = {"reference": "std", "std": "std", "nocache": "std", "rps10k": "rps10k",
                                "users100k": "users100k", "sync": "std", "reference_sync": "std",
                                "nometrics": "std", "throttled": "std"}
        self._setup_directory(key_size, rp_cert, hasher, shared_hash)
        self._setup_shared_state(key_size, rp_cert, hasher, shared_hash)
        self.say(f"servers up: {', '.join(f'{k}={s.port}' for k, s in self.servers.items())}")
        self._write_requests()

    def _setup_directory(self, key_size: int, rp_cert: Path, hasher: PasswordHasher, shared_hash: str) -> None:
        """An instance whose login users live in an LDAP directory (slapd, LDAPS), served with and without the
        credential cache; the directory's own round trips are measured in-process."""
        instance = si.create_instance("ldap", self.work / "ldap", users=10, rps=10, key_size=key_size,
                                      rp_cert=rp_cert, hasher=hasher, shared_hash=shared_hash)
        logins = [f"bench{i:04d}" for i in range(si.LOGIN_USERS)]
        server = self.resources.enter_context(directory.running_directory(self.work, logins, instance.password))
        with instance.config.open("a") as config:
            config.write(directory.store_toml(server))
        instance.login_users = [f"{directory.DOMAIN}/{name}" for name in logins]
        self.instances["ldap"] = instance
        env = {"STS_USER_STORE_LDAP_PASSWORD": directory.SERVICE_PASSWORD}
        self.servers["ldap"] = sv.start_sts("ldap", instance.config, self.work, env)
        self.servers["ldap_nocache"] = sv.start_sts("ldap_nocache", instance.config, self.work,
                                                    env | {"STS_SECURITY_CREDENTIAL_CACHE_TTL": "0"})
        self.server_instance |= {"ldap": "ldap", "ldap_nocache": "ldap"}
        trips = directory.round_trips(instance.config, logins, instance.password)
        self.notes.append(
            f"directory login without the credential cache (search + bind + group search, LDAPS on loopback, "
            f"pooled connections, in-process): p50 {trips['p50_ms']:.2f} ms, p99 {trips['p99_ms']:.2f} ms over "
            f"{trips['logins']:.0f} logins")
        self.say(self.notes[-1])

    def _setup_shared_state(self, key_size: int, rp_cert: Path, hasher: PasswordHasher, shared_hash: str) -> None:
        """An instance like ``std`` moved to PostgreSQL + Redis with ``sts db copy`` (as README's move from one host
        to several nodes), served by two nodes: each its own gunicorn master, the same instance directory."""
        instance = si.create_instance("shared", self.work / "shared", users=1_000, rps=10, key_size=key_size,
                                      rp_cert=rp_cert, hasher=hasher, shared_hash=shared_hash)
        state = self.resources.enter_context(shared_state.running_shared_state())
        shared_state.move_instance(si.STS_BIN, instance.config, state)
        self.instances["shared"] = instance
        self.shared = state
        for node in ("node_a", "node_b"):
            self.servers[node] = sv.start_sts(node, instance.config, self.work, state.env())
            self.server_instance[node] = "shared"
        self.say("two nodes on PostgreSQL + Redis: " + ", ".join(
            f"{n}={self.servers[n].port}" for n in ("node_a", "node_b")))

    def shared_round_trips(self) -> None:
        """Transactions and Redis commands per token on the PostgreSQL + Redis nodes (alternating)."""
        load = self.requests[("shared", "issue")]
        template = si.RequestTemplate(load.payload.read_bytes(), load.headers)
        users = list(load.users)
        nodes = [self.servers["node_a"], self.servers["node_b"]]
        count = iter(range(10**9))

        def send() -> bool:
            index = next(count)
            node = nodes[index % 2]
            return shared_state.poster(node.url(ENDPOINT), lambda: si.fill(template, users[index % len(users)]),
                                       load.headers)()

        trips = shared_state.round_trips(self.shared, send)
        self.notes.append(
            f"two nodes on PostgreSQL + Redis, per token (warm credential cache): "
            f"{trips['postgresql_transactions']:.2f} PostgreSQL transactions, {trips['redis_scripts']:.2f} Redis "
            f"script calls ({trips['redis_commands']:.2f} Redis commands in all, those inside scripts included), "
            f"over {trips['tokens']:.0f} tokens alternating between the nodes")
        self.say(self.notes[-1])

    def _write_requests(self) -> None:
        """Request templates per instance (the password is the instance's), and the fixed body."""
        self.requests: dict[tuple[str, str], loadgen.Load] = {}
        variants = {
            "issue": {}, "issue_signed": {"applies_to": si.RP_SIGNED}, "issue_saml11": {"token_type": "saml11"},
            "issue_claims50": {"applies_to": si.RP_CLAIMS50}, "issue_soap12": {"soap": "1.2"},
            "issue_hok": {"key_type": "symmetric"},
        }
        for name, instance in self.instances.items():
            url = f"http://127.0.0.1:9443{ENDPOINT}"
            for request, options in variants.items():
                template = si.issue_template(url, instance.password, **options)
                path = instance.base / f"bench-{request}.xml"
                path.write_bytes(template.body)
                self.requests[(name, request)] = loadgen.Load(
                    ENDPOINT, template.headers, "issue", path, tuple(instance.login_users))
        std = self.instances["std"]
        no_nonce = si.no_nonce_template(f"http://127.0.0.1:9443{ENDPOINT}", std.password)
        path = std.base / "bench-no-nonce.xml"
        path.write_bytes(no_nonce.body)
        self.requests[("std", "no_nonce")] = loadgen.Load(
            ENDPOINT, no_nonce.headers, "issue", path, (std.login_users[0],))
        reference_body = std.base / "bench-reference.xml"
        reference_body.write_bytes(si.fill(no_nonce, std.login_users[0]))
        for ref in ("static", "rsa", "password"):  # reference requests carry a request-sized body, which is read
            self.requests[("std", ref)] = loadgen.Load(f"/{ref}", {"Content-Type": "text/xml; charset=utf-8"},
                                                       "fixed", reference_body)

    def load_for(self, scenario: str) -> tuple[sv.Server, loadgen.Load]:
        spec = SCENARIOS[scenario]
        return self.servers[spec.server], self.requests[(self.server_instance[spec.server], spec.request)]

    # --- measuring -----------------------------------------------------------------------------------

    def sanity_check(self) -> None:
        """One request per scenario: HTTP 200 and the expected element, before anything is measured."""
        for name, spec in SCENARIOS.items():
            server, load = self.load_for(name)
            body = load.payload.read_bytes()
            if load.script == "issue":
                body = si.fill(si.RequestTemplate(body, load.headers), load.users[0])
            request = urllib.request.Request(server.url(load.path), data=body, headers=load.headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - http://127.0.0.1
                    data, status = reply.read(), reply.status
            except urllib.error.HTTPError as exc:
                data, status = exc.read(), exc.code
            if status != 200 or spec.expect not in data:
                raise SystemExit(f"sanity check failed for {name}: HTTP {status}\n{data[:1500]!r}")
        self.say(f"sanity check: {len(SCENARIOS)} scenarios answer HTTP 200 with the expected token")

    def drain(self, server: sv.Server, timeout: float = 20.0) -> None:
        """Wait until the server is idle: the workers still process the requests wrk abandoned."""
        deadline = time.monotonic() + timeout
        last = server.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = server.cpu_seconds()
            if now - last < 0.015:
                return
            last = now
        server.notes.append("did not go idle within 20 s after a slice")

    def measure(self, scenario: str, *, connections: int, duration: float, round_index: int = -1,
                delay_ms: float = 0.0, max_requests: int = MAX_REQUESTS) -> loadgen.Slice:
        server, load = self.load_for(scenario)
        result = loadgen.run_slice(server, load, scenario, connections=connections, duration=duration,
                                   max_requests=max_requests, delay_ms=delay_ms)
        result.round = round_index
        self.drain(server)
        self.rss.setdefault(scenario, []).append(max(w["rss_mib"] for w in server.worker_memory()))
        if server.name == "std" and "after_10k" not in self.memory and server.served >= MEMORY_CHECKPOINT:
            self.memory["after_10k"] = {"served": server.served, "workers": server.worker_memory()}
        return result

    def warm_up(self) -> None:
        for name in WARM_UP:
            self.measure(name, connections=4, duration=1.0)
        std = self.servers["std"]
        self.memory["after_warmup"] = {"served": std.served, "workers": std.worker_memory()}
        self.say(f"warm-up done (headline server has served {std.served:,} requests)")

    def rounds(self, names: list[str], count: int, duration: float, label: str) -> list[loadgen.Slice]:
        slices = []
        for index in range(count):
            for name in rotated(names, index):
                slices.append(self.measure(name, connections=self.args.connections, duration=duration,
                                           round_index=index))
            rsa = [s for s in slices if s.scenario == RSA and s.round == index][0]
            head = [s for s in slices if s.scenario == HEADLINE and s.round == index][0]
            self.say(f"{label} round {index + 1}/{count}: RSA {rsa.cpu_ms_per_request:.3f} ms CPU/req, "
                     f"{rsa.rps:.0f} req/s; headline {head.cpu_ms_per_request:.3f} ms, {head.rps:.0f} req/s "
                     f"(CPU {head.cpu_ms_per_request / rsa.cpu_ms_per_request:.2f}x RSA)")
        return slices

    def paired_rounds(self) -> list[loadgen.Slice]:
        """The chain of bench/paired.py (headline, scenario, headline, ...), in measuring order."""
        rounds = self.args.paired_rounds
        order = paired.chain(PAIRED, rounds) if rounds > 0 else []
        slices: list[loadgen.Slice] = []
        for position, (name, index) in enumerate(order):
            slices.append(self.measure(name, connections=self.args.connections, duration=self.args.paired_slice,
                                       round_index=index))
            if position + 1 == len(order) or order[position + 1][1] != index:  # the headline closing a round
                done = [p for p in paired.pairs(slices) if p.round == index]
                self.say(f"paired round {index + 1}/{rounds}, CPU per request x the neighbouring headline slices': "
                         + ", ".join(f"{p.scenario} {p.cpu_ratio:.3f}" for p in done))
        return slices

    def latency(self, saturation_rps: dict[str, float]) -> list[loadgen.Slice]:
        """1 connection, and paced at about half of saturation (4 connections with a per-request delay)."""
        out = []
        for name in (HEADLINE, RSA, STATIC):
            out.append(self.measure(name, connections=1, duration=3.0))
        for name in (HEADLINE, RSA):
            single = [s for s in out if s.scenario == name][0]
            target = 0.5 * saturation_rps[name]
            delay = max(0.0, 1000 * 4 / target - single.p50_ms)
            out.append(self.measure(name, connections=4, duration=4.0, delay_ms=round(delay, 2)))
        self.say("latency at 1 connection and paced: done")
        return out

    def soak(self, rps: float) -> list[loadgen.Slice]:
        """Top the headline server up to --soak requests, reading worker memory at 10k and at the end."""
        std, out = self.servers["std"], []
        while std.served < self.args.soak:
            need = self.args.soak - std.served
            out.append(self.measure(HEADLINE, connections=self.args.connections,
                                    duration=max(2, min(30, round(need / max(rps, 50.0)))),
                                    max_requests=need))
        self.memory["after_soak"] = {"served": std.served, "workers": std.worker_memory()}
        self.say(f"soak: headline server has served {std.served:,} requests")
        return out

    def _in_process(self, script: str, log: Path, *extra: str) -> dict[str, Any]:
        """Run one of bench/'s in-process measurements on the headline request of ``std``; its JSON answer."""
        std = self.instances["std"]
        load = self.requests[("std", "issue")]
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(BENCH_DIR / script), "--config", str(std.config),
                "--template", str(load.payload), "--headers", json.dumps(load.headers),
                "--users", ",".join(load.users), "--requests", str(self.args.profile_requests),
                "--log", str(log), *extra]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - our own script
        if done.returncode != 0:
            raise RuntimeError(f"{script} failed:\n{done.stderr[-3000:]}")
        return dict(json.loads(done.stdout))

    def profile(self, results_prefix: Path) -> dict[str, Any]:
        """The headline's stage timers and cProfile, in-process (bench/inprocess_profile.py)."""
        out = self._in_process("inprocess_profile.py", self.work / "profile.log", "--prefix", str(results_prefix))
        self.say("in-process profile written")
        return out

    def signed_profile(self) -> dict[str, Any]:
        """Scenario 2 (SigOnly) CPU per token in-process against the RSA reference (bench/signed_inprocess.py says
        why in-process: each signed request may be sent once)."""
        out = self._in_process("signed_inprocess.py", self.work / "signed.log")
        self.say("in-process SigOnly measurement done")
        return out

    def floor_profile(self) -> dict[str, Any]:
        """The product's headline against a minimal pipeline with the same libraries, in-process (bench/floor.py;
        its database and log go next to the log)."""
        out = self._in_process("floor.py", self.work / "floor" / "app.log")
        self.say("in-process floor measurement done")
        return out

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.resources.close()


def use_this_checkout() -> None:
    """Every process the bench starts (``sts init``, the servers, the in-process profiles) imports ``sts`` from this
    checkout, as the orchestrator does: the virtualenv's editable install may point at another worktree, whose code
    would otherwise be served and profiled under this one's name."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])


def code_info() -> dict[str, Any]:
    """What was measured: the commit of this checkout, whether tracked files differed from it, and where ``sts``
    was imported from."""
    import sts

    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False)  # noqa: S603, S607
        # Only trailing whitespace: a porcelain status line starts with a space (" M path") when only the work tree
        # changed, and stripping the first one would cut a letter off its path.
        return done.stdout.rstrip() if done.returncode == 0 else ""

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD") or None, "uncommitted_changes": bool(status),
            "changed_files": [line[3:] for line in status.splitlines()], "sts": str(Path(sts.__file__).parent)}


def machine_info() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    versions = {}
    for module in ("gunicorn", "lxml", "xmlsec", "signxml", "cryptography", "spyne", "argon2"):
        try:
            from importlib.metadata import version

            versions[module] = version({"argon2": "argon2-cffi"}.get(module, module))
        except Exception:  # noqa: BLE001 - informative only
            versions[module] = "?"
    return {
        "cpu": model, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / 1024 / 1024, 1), "kernel": platform.release(),
        "os": _os_name(), "python": platform.python_version(), "wrk": loadgen.wrk_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "versions": versions,
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def main() -> int:
    args = parse_args()
    previous = args.previous_results
    if args.readme_from:
        results = json.loads(args.readme_from.read_text())
        md_path = args.readme_from.with_suffix(".md")
        report.update_readme(args.update_readme, results, md_path, previous)
        print(f"updated {args.update_readme} from {args.readme_from}")
        if previous:  # the README links to the .md: both carry the comparison
            md_path.write_text(report.markdown(results, previous))
            print(f"rewrote {md_path} with the comparison with {args.previous}")
        return 0
    use_this_checkout()
    code = code_info()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sts-bench-"))
    bench = Bench(args, work)
    machine = machine_info()
    bench.say(f"work directory {work}; {machine['cores']} cores, {machine['cpu']}; wrk {machine['wrk']}")
    try:
        bench.setup()
        bench.sanity_check()
        bench.warm_up()
        primary = bench.rounds(PRIMARY, args.rounds, args.slice, "primary")
        spread = analysis.rsa_spread(primary)
        attempts: list[tuple[dict[str, Any], list[loadgen.Slice]]] = [(spread, primary)]
        if spread["cpu"] > args.noise_limit:
            bench.say(f"RSA reference varied {spread['cpu']:.0%} between rounds: noisy, repeating the rounds")
            again = bench.rounds(PRIMARY, args.rounds, args.slice, "primary (repeat)")
            attempts.append((analysis.rsa_spread(again), again))
        chosen_spread, chosen = min(attempts, key=lambda attempt: float(attempt[0]["cpu"]))
        chosen_spread["kept"] = True
        # The in-process profiles right after the primary rounds (the servers idle meanwhile), so that the stage
        # table and the headline see the same machine: on a shared host, minutes apart can differ by a third.
        profile = bench.profile(args.out / stamp)
        signed = bench.signed_profile()
        floor = bench.floor_profile()
        secondary = bench.rounds(SECONDARY, args.secondary_rounds, args.secondary_slice, "secondary")
        chain = bench.paired_rounds()
        saturation = {name: statistics.median(s.rps for s in chosen if s.scenario == name)
                      for name in (HEADLINE, RSA)}
        bench.shared_round_trips()
        latency = bench.latency(saturation)
        soak = bench.soak(saturation[HEADLINE])
    finally:
        bench.stop()
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results = analysis.build_results(
        stamp=stamp, machine=machine, args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                         if k != "previous_results"},
        primary=chosen, attempts=[spread for spread, _ in attempts], secondary=secondary,
        latency=latency, soak=soak, memory=bench.memory, rss=bench.rss, profile=profile,
        notes=bench.notes + [f"{s.name}: {n}" for s in bench.servers.values() for n in s.notes] + [
            f"{s.scenario} on {s.server} stopped at its request cap after {s.requests} requests"
            for s in chosen + secondary + chain + latency if s.capped],
        runtime_s=time.monotonic() - bench.started, noise_limit=args.noise_limit,
        discarded=[s for _, attempt in attempts if attempt is not chosen for s in attempt], chain=chain,
    )
    results["sigonly_inprocess"] = signed
    results["floor_inprocess"] = floor
    results["code"] = code
    json_path = args.out / f"{stamp}.json"
    md_path = args.out / f"{stamp}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(report.markdown(results, previous))
    if args.update_readme:
        report.update_readme(args.update_readme, results, md_path, previous)
    if args.keep:
        bench.say(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    bench.say(f"wrote {md_path}, {json_path} and {args.out / (stamp + '-profile.txt')}")
    print(report.summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
