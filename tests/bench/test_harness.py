"""bench/ measurement logic that runs without servers: the in-process stage timers, the targets from slices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))  # bench's modules import each other by bare name, as bench/run.py does

import analysis  # noqa: E402
import inprocess_profile as ip  # noqa: E402
from loadgen import Slice  # noqa: E402
from scenarios import HEADLINE, RSA  # noqa: E402


def _timer_that_saw(stages: set[str]) -> ip.StageTimer:
    timer = ip.StageTimer()
    timer.on[0] = True
    for stage in stages:
        timer.wrap(lambda: None, stage)()
    return timer


def test_a_stage_never_called_is_reported_and_gives_no_library_split() -> None:
    every = {stage for _, _, stage in ip.STAGES} - ip.NOT_ON_HEADLINE
    timer = _timer_that_saw(every - {ip.SIGN_CALL})
    assert ip.never_called(timer) == [f"{ip.SIGN_CALL} (never called)"]
    assert ip.never_called(_timer_that_saw(every)) == []

    stages = {stage: 0.1 for stage in timer.exclusive}
    buckets = ip.bucket_totals(stages)
    assert analysis.SIGN_CALL not in buckets  # not a sign call that took 0 ms
    assert buckets["token store"] == 0.2
    scenarios: dict[str, Any] = {HEADLINE: {"cpu_ms_per_request": 2.0}, RSA: {"cpu_ms_per_request": 0.5}}
    assert analysis.library_split(scenarios, {"buckets_ms_per_request": buckets}) == {}
    assert analysis.library_split(scenarios, {"buckets_ms_per_request": ip.bucket_totals(
        {stage: 0.1 for stage in every})})["outside_ms"] == 1.8


def test_nested_stages_are_exclusive() -> None:
    timer = ip.StageTimer()
    timer.on[0] = True
    inner = timer.wrap(lambda: sum(range(300_000)), "inner")
    outer = timer.wrap(lambda: (inner(), sum(range(300_000))), "outer")
    root = timer.wrap(outer, "root")
    started = time.thread_time()
    root()
    elapsed = time.thread_time() - started
    assert timer.exclusive["inner"] > 0.3 * timer.exclusive["outer"]
    assert timer.exclusive["root"] < 0.2 * timer.exclusive["inner"]
    assert sum(timer.exclusive.values()) <= elapsed  # nothing counted twice


def _workers(rss: float) -> list[dict[str, float]]:
    return [{"pid": 11, "rss_mib": rss, "pss_mib": rss / 2}, {"pid": 12, "rss_mib": rss - 1, "pss_mib": rss / 2}]


def test_memory_growth_needs_requests_between_the_readings() -> None:
    # --quick: the soak (3,000) ends before the 10k reading, so both readings are the same moment.
    same = {"served": 10_549, "workers": _workers(81.8)}
    assert analysis._growth({"after_10k": same, "after_soak": dict(same)}) is None
    grown = {"after_10k": {"served": 12_255, "workers": _workers(80.0)},
             "after_soak": {"served": 66_786, "workers": _workers(82.0)}}
    assert analysis._growth(grown) == (81.0 - 79.0) / 79.0  # the worker that grew most


def test_the_bench_processes_import_sts_from_this_checkout(monkeypatch: Any) -> None:
    import run

    monkeypatch.delenv("PYTHONPATH", raising=False)
    run.use_this_checkout()
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(BENCH.parent)
    # A child started elsewhere (as the servers start in the work directory) finds this checkout's sts first, even
    # when the virtualenv's editable install points at another worktree.
    done = subprocess.run([sys.executable, "-c", "import sts; print(sts.__file__)"], capture_output=True, text=True,
                          cwd="/", check=True)
    assert Path(done.stdout.strip()).parent == BENCH.parent / "sts"


def test_results_name_the_commit_measured() -> None:
    import report
    import run

    code = run.code_info()
    assert code["commit"] and len(code["commit"]) == 40
    assert Path(code["sts"]).parent == BENCH.parent
    results = json.loads((BENCH / "results" / "20261206T202953Z.json").read_text())
    assert report.code_words(results) == ""  # older runs did not record it: their README text is unchanged
    results["code"] = {"commit": "0123456789abcdef" * 2 + "01234567", "uncommitted_changes": True,
                       "changed_files": ["sts/crypto/signer.py"], "sts": "/x/sts"}
    results["machine"]["load_average_at_end"] = [1.5, 1.0, 0.5]
    section = report.readme_section(results, BENCH / "results" / "20261206T202953Z.md")
    assert "of commit `0123456789ab` with uncommitted changes (sts/crypto/signer.py), on 2 cores" in section
    assert "load average at start 0.09, 0.22, 0.32, at end 1.5, 1.0, 0.5" in section


def _slice(scenario: str, round_index: int, cpu_ms: float, rps: float = 1000.0) -> Slice:
    return Slice(scenario, "server", 16, 2.0, requests=int(rps * 2), in_window=int(rps), cpu_ms_per_request=cpu_ms,
                 rps=rps, p50_ms=10.0, p99_ms=20.0, round=round_index)


def test_secondary_scenarios_are_shown_next_to_the_headline_of_their_own_rounds() -> None:
    import compare
    import report

    # The secondary rounds' RSA reference was slower than the primary rounds': the headline reads 4.0x there.
    secondary = [_slice(RSA, r, 0.6) for r in range(3)] + [_slice(HEADLINE, r, 2.4) for r in range(3)] + [
        _slice("saml20_claims_50", r, 2.94) for r in range(3)]
    baseline = analysis.secondary_headline(secondary)
    assert baseline is not None
    assert (baseline["cpu_ratio_to_rsa"], baseline["cpu_ms_per_request"], baseline["rounds"]) == (4.0, 2.4, 3)
    assert analysis.secondary_headline([_slice(RSA, 0, 0.6)]) is None

    results = json.loads((BENCH / "results" / "20261206T202953Z.json").read_text())
    results["secondary_headline"] = baseline
    table = report.scenarios_table(results)
    rows = [line for line in table if line.startswith("|")]
    head = next(i for i, line in enumerate(rows) if line.startswith(f"| **{HEADLINE}**"))
    assert rows[head + 1].startswith(f"| {report.SECONDARY_HEADLINE_LABEL} | 2.400 | 4.00 (4.00-4.00) |")
    assert len({line.count("|") for line in rows}) == 1
    assert any("compare them with" in line for line in table)
    # The per-claim miss compares the 50-claim scenario with the headline of the same rounds, not the primary one.
    reason = compare._profile_reason("per_claim", results)
    assert "against 2.40 ms for 5 in the same rounds" in reason


def test_every_server_is_warmed_up_before_it_is_measured() -> None:
    import run
    from scenarios import SCENARIOS

    assert {SCENARIOS[name].server for name in run.WARM_UP} == {s.server for s in SCENARIOS.values()}


def test_errors_of_the_discarded_noisy_rounds_still_count() -> None:
    kept = [_slice(RSA, r, 0.5) for r in range(2)] + [_slice(HEADLINE, r, 2.0) for r in range(2)]
    noisy = [_slice(RSA, r, 0.5) for r in range(2)] + [_slice(HEADLINE, r, 2.0) for r in range(2)]
    noisy[3].errors, noisy[3].error_detail = 7, {"timeout": 7}
    profile = {"buckets_ms_per_request": {}, "stages_ms_per_request": {}, "cpu_ms_per_request": 1.5,
               "requests": 10, "non_200": 0, "top_cumulative": [], "top_tottime": []}
    args = {"rounds": 2, "slice": 3.0, "secondary_rounds": 1, "secondary_slice": 2.0, "connections": 16,
            "key_size": 2048}
    machine = {"load_average_at_start": [0.0, 0.0, 0.0]}
    results = analysis.build_results(
        stamp="T", machine=machine, args=args, primary=kept, attempts=[{"cpu": 0.4}, {"cpu": 0.1, "kept": True}],
        secondary=[], latency=[], soak=[], memory={}, rss={}, profile=profile, notes=[], runtime_s=1.0,
        noise_limit=0.25, discarded=noisy)
    errors = next(t for t in results["targets"] if t["id"] == "errors")
    assert (errors["value"], errors["met"]) == (7.0, False)


def test_the_split_says_what_load_added_beyond_the_in_process_run() -> None:
    import report

    scenarios: dict[str, Any] = {HEADLINE: {"cpu_ms_per_request": 2.05}, RSA: {"cpu_ms_per_request": 0.455},
                                 "ref_static": {"cpu_ms_per_request": 0.163}}
    profile = {"cpu_ms_per_request": 1.692, "buckets_ms_per_request": {
        analysis.SIGN_CALL: 0.471, analysis.ENCRYPT_CALL: 0.076}}
    line = report.split_line({"library_split": analysis.library_split(scenarios, profile)})[0]
    assert "the headline cost 1.887 ms under load against 1.692 ms in-process (+12%)" in line
    assert "counted outside them" in line


def test_the_changed_files_keep_their_names(tmp_path: Path, monkeypatch: Any) -> None:
    import run

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "analysis.py").write_text("a\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
                   check=True)
    (tmp_path / "bench" / "analysis.py").write_text("b\n")  # changed in the work tree only: " M bench/analysis.py"
    monkeypatch.setattr(run, "REPO", tmp_path)
    assert run.code_info()["changed_files"] == ["bench/analysis.py"]
