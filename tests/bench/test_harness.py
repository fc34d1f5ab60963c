"""bench/ measurement logic that runs without servers: the in-process stage timers, the targets from slices."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))  # bench's modules import each other by bare name, as bench/run.py does

import analysis  # noqa: E402
import inprocess_profile as ip  # noqa: E402
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
