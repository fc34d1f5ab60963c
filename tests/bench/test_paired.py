"""bench/paired.py: the targets that compare a scenario with the headline, judged on paired slices (no servers).

The chain's order, each pair's ratio to its neighbouring headline slices, the spread and verdict of a target, and
how the results file, the Markdown and the console summary word a verdict that is within noise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))  # bench's modules import each other by bare name, as bench/run.py does

import analysis  # noqa: E402
import compare  # noqa: E402
import formatting  # noqa: E402
import paired  # noqa: E402
import report  # noqa: E402
from loadgen import Slice  # noqa: E402
from scenarios import HEADLINE, METRICS_OFF, PAIRED, PRIMARY, RSA  # noqa: E402

from tests.bench.test_report import assert_valid_tables  # noqa: E402

RPS10K, NODE_A, NODE_B = "saml20_rps_10k", "saml20_two_nodes_node_a", "saml20_two_nodes_node_b"


def _slice(scenario: str, cpu_ms: float, round_index: int = 0, rps: float = 1000.0, in_window: int = 1000) -> Slice:
    return Slice(scenario, "server", 16, 2.0, requests=2 * in_window, in_window=in_window, cpu_ms_per_request=cpu_ms,
                 rps=rps, p50_ms=10.0, p99_ms=20.0, round=round_index)


def _chain(values: list[tuple[str, float]]) -> list[Slice]:
    return [_slice(name, cpu) for name, cpu in values]


def test_the_chain_alternates_headline_and_scenarios_and_rotates_every_round() -> None:
    order = paired.chain(["a", "b", "c"], 2)
    assert order == [(HEADLINE, 0), ("a", 0), (HEADLINE, 0), ("b", 0), (HEADLINE, 0), ("c", 0), (HEADLINE, 0),
                     ("b", 1), (HEADLINE, 1), ("c", 1), (HEADLINE, 1), ("a", 1), (HEADLINE, 1)]
    # Two pairs of one scenario never share a headline slice: their noise stays independent.
    names = [name for name, _ in paired.chain(PAIRED, 4)]
    assert all(names[i - 1] != names[i + 1] for i in range(1, len(names) - 1) if names[i] == HEADLINE)
    assert len(names) == 2 * 4 * len(PAIRED) + 1


def test_a_pair_divides_by_the_mean_of_both_neighbours_so_a_linear_drift_cancels() -> None:
    # The machine slows by 10 % of the first slice every slice; the scenario costs 5 % more than the headline.
    drift = [2.0 * (1 + 0.1 * i) for i in range(5)]
    chain = _chain([(HEADLINE, drift[0]), (RPS10K, 1.05 * drift[1]), (HEADLINE, drift[2]),
                    (RPS10K, 1.05 * drift[3]), (HEADLINE, drift[4])])
    found = paired.pairs(chain)
    assert [p.cpu_ratio for p in found] == [pytest.approx(1.05), pytest.approx(1.05)]
    assert found[0].headline_cpu_ms == pytest.approx((drift[0] + drift[2]) / 2)
    assert found[0].cpu_ms == pytest.approx(1.05 * drift[1])
    # Against the headline slice before it alone, the drift would read as 10 % more.
    assert chain[1].cpu_ms_per_request / chain[0].cpu_ms_per_request == pytest.approx(1.155)


def test_a_headline_neighbour_without_requests_is_left_out_and_without_any_there_is_no_pair() -> None:
    chain = [_slice(HEADLINE, 2.0), _slice(RPS10K, 2.2), _slice(HEADLINE, 9.9, in_window=0), _slice(METRICS_OFF, 2.0),
             _slice(HEADLINE, 2.0, in_window=0)]
    found = paired.pairs(chain)
    assert [(p.scenario, round(p.cpu_ratio, 6)) for p in found] == [(RPS10K, 1.1)]
    assert paired.pairs([_slice(RPS10K, 2.0), _slice(RPS10K, 2.0)]) == []


def test_spread_quartiles_and_a_single_pair() -> None:
    found = paired.spread([0.04, -0.02, 0.01, 0.03])
    assert found is not None
    assert (found.n, found.low, found.high) == (4, -0.02, 0.04)
    assert [found.q1, found.median, found.q3] == pytest.approx([0.0025, 0.02, 0.0325])
    assert found.values == (0.04, -0.02, 0.01, 0.03)  # in measuring order
    one = paired.spread([0.5])
    assert one is not None and (one.low, one.q1, one.median, one.q3, one.high) == (0.5,) * 5
    assert paired.spread([]) is None


@pytest.mark.parametrize(("values", "expected"), [
    ([-0.03, 0.01, 0.05], paired.MET),  # at the limit is within it
    ([0.051, 0.08, 0.2], paired.MISSED),
    ([-0.03, 0.02, 0.06], paired.WITHIN_NOISE),  # the median meets it, one pair does not
    ([0.04, 0.07, 0.09], paired.WITHIN_NOISE),  # the median misses it, one pair does not
])
def test_verdict_needs_every_pair_on_one_side_of_the_limit(values: list[float], expected: str) -> None:
    found = paired.spread(values)
    assert found is not None
    assert paired.verdict(found, 0.05) == expected


@pytest.mark.parametrize("values", [[0.01], [0.01, 0.02], [0.2, 0.3]])
def test_fewer_than_three_pairs_cannot_tell(values: list[float]) -> None:
    found = paired.spread(values)
    assert found is not None
    assert paired.verdict(found, 0.05) == paired.WITHIN_NOISE


def _target(ident: str) -> paired.PairedTarget:
    return next(t for t in paired.TARGETS if t.ident == ident)


def _pair(scenario: str, ratio: float) -> paired.Pair:
    return paired.Pair(scenario, 0, ratio, 1 / ratio, 2.0 * ratio, 2.0)


def test_each_target_turns_a_pair_ratio_into_its_own_value() -> None:
    pairs = [_pair(METRICS_OFF, 0.98), _pair("saml20_claims_50", 1.2), _pair(NODE_A, 1.1), _pair(NODE_B, 1.3),
             _pair(RPS10K, 1.04)]
    # Metrics: the scenario is the headline without them, so the cost is the headline's extra over it.
    assert paired.target_values(_target("metrics_cost"), pairs, 4.5) == [pytest.approx(1 / 0.98 - 1)]
    # Per claim: (50-claim - 5-claim) / RSA / 45, with the headline at 4.5x RSA.
    assert paired.target_values(_target("per_claim"), pairs, 4.5) == [pytest.approx(0.2 * 4.5 / 45)]
    assert paired.target_values(_target("per_claim"), pairs, None) == []
    # Two nodes: both nodes' pairs count.
    assert paired.target_values(_target("two_nodes"), pairs, 4.5) == [pytest.approx(0.1), pytest.approx(0.3)]
    assert paired.target_values(_target("scale_rps"), pairs, 4.5) == [pytest.approx(0.04)]


def test_judge_reports_the_median_the_pairs_and_within_noise_as_neither_met_nor_missed() -> None:
    pairs = [_pair(RPS10K, r) for r in (1.01, 1.03, 1.07, 0.99)]
    target = paired.judge(_target("scale_rps"), pairs, 4.5)
    assert (target["value"], target["verdict"], target["met"], target["median_met"]) == (
        0.02, paired.WITHIN_NOISE, None, True)
    assert (target["pairs"]["n"], target["pairs"]["min"], target["pairs"]["max"]) == (4, -0.01, 0.07)
    met = paired.judge(_target("scale_rps"), [_pair(RPS10K, r) for r in (1.01, 1.03, 0.97)], 4.5)
    assert (met["verdict"], met["met"]) == (paired.MET, True)
    missed = paired.judge(_target("scale_users"), [_pair("saml20_users_100k", r) for r in (1.1, 1.2, 1.06)], 4.5)
    assert (missed["verdict"], missed["met"]) == (paired.MISSED, False)
    none = paired.judge(_target("two_nodes"), [], 4.5)
    assert (none["value"], none["met"], "verdict" in none) == (None, None, False)


def test_verdict_wording_in_the_tables_and_the_summary() -> None:
    pairs = [_pair(RPS10K, r) for r in (1.01, 1.03, 1.07, 0.99)]
    noisy = paired.judge(_target("scale_rps"), pairs, 4.5)
    assert formatting.met(noisy) == "within noise (median within the limit)"
    assert formatting.target_value(noisy) == "+2.0% (median of 4 pairs; range -1.0% to +7.0%)"
    leaning_out = paired.judge(_target("scale_rps"), [_pair(RPS10K, r) for r in (1.04, 1.07, 1.09)], 4.5)
    assert formatting.met(leaning_out) == "within noise (median beyond the limit)"
    claims = paired.judge(_target("per_claim"), [_pair("saml20_claims_50", r) for r in (1.1, 1.28)], 4.5)
    assert formatting.target_value(claims) == "0.019 x RSA (median of 2 pairs; range 0.01 to 0.028)"
    assert formatting.met(claims) == "within noise (2 pairs, too few to tell; median within the limit)"
    single = paired.judge(_target("scale_rps"), [_pair(RPS10K, 1.01)], 4.5)
    assert (formatting.target_value(single), formatting.met(single)) == (
        "+1.0% (one pair)", "within noise (one pair, too few to tell; median within the limit)")
    # Targets of older results files have no verdict or pairs: worded as before.
    old = {"value": 0.0195, "unit": "x RSA", "met": True, "moonshot": None, "moonshot_met": None}
    assert (formatting.target_value(old), formatting.met(old)) == ("0.0195 x RSA", "met")


def _results() -> dict[str, Any]:
    """A run built from made-up slices: two primary rounds, no secondary rounds, a three-round chain."""
    primary = [_slice(name, cpu, r) for r in range(2) for name, cpu in
               zip(PRIMARY, (0.2, 0.5, 20.0, 2.25, 2.0), strict=True)]
    ratios = {METRICS_OFF: (0.99, 0.97, 1.0), "saml20_claims_50": (1.2, 1.3, 1.25), RPS10K: (1.02, 1.03, 1.0),
              "saml20_users_100k": (1.1, 1.2, 1.15), NODE_A: (1.05, 1.25, 1.1), NODE_B: (1.1, 1.12, 1.14)}
    chain = []
    for name, index in paired.chain(PAIRED, 3):
        cpu = 2.0 if name == HEADLINE else 2.0 * ratios[name][index]
        chain.append(_slice(name, cpu, index))
    profile = {"buckets_ms_per_request": {}, "stages_ms_per_request": {}, "cpu_ms_per_request": 1.5,
               "requests": 10, "non_200": 0, "top_cumulative": [], "top_tottime": []}
    args = {"rounds": 2, "slice": 3.0, "secondary_rounds": 0, "secondary_slice": 2.0, "paired_rounds": 3,
            "paired_slice": 2.0, "connections": 16, "key_size": 2048}
    machine = json.loads((BENCH / "results" / "20261206T202953Z.json").read_text())["machine"]
    return analysis.build_results(
        stamp="T", machine=machine, args=args, primary=primary, attempts=[{"cpu": 0.0, "rps": 0.0, "kept": True}],
        secondary=[], latency=[], soak=[], memory={}, rss={}, profile=profile, notes=[], runtime_s=1.0,
        noise_limit=0.25, chain=chain)


def test_results_judge_the_paired_targets_and_scale_the_paired_rows() -> None:
    results = _results()
    targets = {t["id"]: t for t in results["targets"]}
    assert (targets["scale_rps"]["verdict"], targets["scale_rps"]["value"]) == (paired.MET, 0.02)
    assert (targets["scale_users"]["verdict"], targets["scale_users"]["value"]) == (paired.MISSED, 0.15)
    assert targets["two_nodes"]["pairs"]["n"] == 6
    assert targets["two_nodes"]["verdict"] == paired.WITHIN_NOISE
    assert targets["per_claim"]["value"] == pytest.approx(0.25 * 4.5 / 45, abs=1e-4)  # headline 2.25 / RSA 0.5
    row = results["scenarios"][RPS10K]
    assert (row["block"], row["rounds"], row["cpu_ratio_to_rsa"], row["cpu_ratio_range"]) == (
        "paired", 3, pytest.approx(1.02 * 4.5, abs=1e-3), [pytest.approx(1.0 * 4.5), pytest.approx(1.03 * 4.5)])
    assert results["paired"]["cpu_ratio_to_headline"][NODE_A]["values"] == [1.05, 1.25, 1.1]
    assert results["method"]["rounds"]["paired"]["rounds"] == 3
    assert len(results["paired"]["pairs"]) == 18


def test_the_markdown_says_which_verdicts_are_within_noise() -> None:
    results = _results()
    text = report.markdown(results)
    assert_valid_tables(text)
    assert "## Paired with the headline" in text
    assert "| saml20_rps_10k | 3 | 1.020 | 1.000 | 1.030 | 1.020, 1.030, 1.000 |" in text
    assert "3 paired rounds of 2 s slices (headline, scenario, headline, ..." in text
    assert "| 3 (paired) |" in text
    two_nodes = next(line for line in text.splitlines() if line.startswith("| two nodes on PostgreSQL"))
    assert two_nodes.endswith("| +11.0% (median of 6 pairs; range +5.0% to +25.0%) | "
                              "within noise (median within the limit) |")
    misses = "\n".join(compare.misses(results))
    assert "- 100,000 users" in misses and "against 2.000 ms with 1,000 (medians of the paired slices" in misses
    missed, noisy = misses.split("Within noise (the pairs fall on both sides of the limit")
    assert "- two nodes" not in missed  # within noise is not a miss ...
    # ... and is said so, with what the pairs measured
    assert noisy.count("\n- ") == sum(t.get("verdict") == paired.WITHIN_NOISE for t in results["targets"])
    assert ("- two nodes on PostgreSQL + Redis: a node at most 15 % more CPU per token than the headline: **+11.0% "
            "(median of 6 pairs; range +5.0% to +25.0%)**, within noise (median within the limit). A node on "
            "PostgreSQL + Redis costs 2.220 ms a token against 2.000 ms on SQLite") in noisy
    assert "  noise two nodes on PostgreSQL + Redis" in report.summary(results)


def test_a_previous_run_without_paired_slices_still_compares() -> None:
    results = _results()
    previous = json.loads((BENCH / "results" / "20261206T202953Z.json").read_text())
    text = report.markdown(results, previous)
    assert_valid_tables(text)
    assert compare.previous_target(previous, "scale_rps") == "-6.4%"
    assert compare.previous_target(previous, "two_nodes") == compare.NONE
    # And the other way round: an old run's report is unchanged by the paired code (no paired words or section).
    old = report.markdown(previous)
    assert "paired" not in old
    assert RSA in old
