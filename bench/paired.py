"""Paired slices: the scenarios a target compares with the headline, each measured between two headline slices.

The targets that compare a scenario with the headline (10,000 RPs, 100,000 users, the cost of metrics, each extra
claim, two nodes) ask about a few percent, less than this machine drifts between slices a minute apart. So these
scenarios are not judged from rounds: the bench measures one chain, headline, scenario, headline, scenario, ...,
headline, on the same server settings, and divides each scenario slice's CPU per request by the mean of the two
headline slices next to it. A drift that is linear over those three slices cancels in that ratio (the mean of the
neighbours is the headline at the scenario's moment), and a stall spoils one pair instead of the whole comparison.

A target is judged on the median of its pairs, and the pairs' range says whether one run can tell: ``met`` when
every pair meets the limit, ``missed`` when none does, ``within noise`` when they fall on both sides of it or are
fewer than three. The
lowest and highest of n independent pairs bracket the median with a probability of 1 - 2 / 2^n whatever the
noise's shape (87.5 % for 4 pairs, 99 % for 8), so a verdict other than ``within noise`` is one the noise is
unlikely to flip. All functions here are pure: bench/run.py measures, bench/analysis.py builds the results from them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from loadgen import Slice
from scenarios import HEADLINE, METRICS_OFF, rotated

MET, MISSED, WITHIN_NOISE = "met", "missed", "within noise"
# Fewer pairs cannot tell: the lowest and highest of 2 bracket the median only half the time (--quick's 2 rounds).
MIN_PAIRS = 3
CLAIMS_SCENARIO, EXTRA_CLAIMS = "saml20_claims_50", 45
TWO_NODES = ("saml20_two_nodes_node_a", "saml20_two_nodes_node_b")


def chain(scenarios: list[str], rounds: int) -> list[tuple[str, int]]:
    """The measuring order as (scenario, round): the headline first, then each scenario followed by the headline.
    Every round measures each scenario once, in an order rotated by one per round, so no two pairs of one scenario
    share a headline slice (their noise stays independent); a headline slice has the round of the slice before."""
    order = [(HEADLINE, 0)]
    for index in range(rounds):
        for name in rotated(scenarios, index):
            order += [(name, index), (HEADLINE, index)]
    return order


@dataclass(frozen=True)
class Pair:
    """One scenario slice against the mean of its two neighbouring headline slices."""

    scenario: str
    round: int
    cpu_ratio: float  # scenario CPU per request / mean of the neighbours' CPU per request
    rps_ratio: float  # the same for requests per second
    cpu_ms: float
    headline_cpu_ms: float  # mean of the neighbours'

    def as_dict(self) -> dict[str, Any]:
        """For the results file."""
        return {k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _usable(piece: Slice) -> bool:
    return piece.in_window > 0 and piece.cpu_ms_per_request > 0 and piece.rps > 0


def pairs(slices: list[Slice]) -> list[Pair]:
    """Every scenario slice of the chain (in measuring order) with its neighbouring headline slices. A neighbour
    that completed no request in its window is left out of the mean; with neither, the slice gives no pair."""
    out = []
    for index, piece in enumerate(slices):
        if piece.scenario == HEADLINE or not _usable(piece):
            continue
        around = [slices[i] for i in (index - 1, index + 1) if 0 <= i < len(slices)]
        heads = [s for s in around if s.scenario == HEADLINE and _usable(s)]
        if not heads:
            continue
        head_cpu = statistics.fmean(s.cpu_ms_per_request for s in heads)
        head_rps = statistics.fmean(s.rps for s in heads)
        out.append(Pair(piece.scenario, piece.round, piece.cpu_ms_per_request / head_cpu, piece.rps / head_rps,
                        piece.cpu_ms_per_request, head_cpu))
    return out


@dataclass(frozen=True)
class Spread:
    """Order statistics of a target's per-pair values."""

    values: tuple[float, ...]
    low: float
    q1: float
    median: float
    q3: float
    high: float

    @property
    def n(self) -> int:
        """How many pairs."""
        return len(self.values)

    def as_dict(self) -> dict[str, Any]:
        """For the results file (``pairs`` of a target)."""
        return {"n": self.n, "min": round(self.low, 5), "q1": round(self.q1, 5), "median": round(self.median, 5),
                "q3": round(self.q3, 5), "max": round(self.high, 5), "values": [round(v, 5) for v in self.values]}


def spread(values: list[float]) -> Spread | None:
    """Lowest, quartiles, median and highest; None without values. Quartiles are inclusive (interpolated between
    the values), so they exist for a single pair too."""
    if not values:
        return None
    ordered = sorted(values)
    q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return Spread(tuple(values), ordered[0], q1, median, q3, ordered[-1])


def verdict(values: Spread, limit: float) -> str:
    """``met`` when every pair is at most ``limit``, ``missed`` when every pair is above it, else ``within noise``
    (one run cannot tell: the median's side of the limit is then a lean, not a result); ``within noise`` too with
    fewer than MIN_PAIRS pairs, whatever their values."""
    if values.n < MIN_PAIRS:
        return WITHIN_NOISE
    if values.high <= limit:
        return MET
    if values.low > limit:
        return MISSED
    return WITHIN_NOISE


@dataclass(frozen=True)
class PairedTarget:
    """A target judged on pairs: its scenarios and the target's value for one pair."""

    ident: str
    text: str
    scenarios: tuple[str, ...]
    limit: float
    unit: str
    # (CPU ratio of the pair, the headline's CPU x RSA) -> the target's value for that pair
    value: Callable[[float, float], float]


def _extra(ratio: float, _head_x_rsa: float) -> float:
    return ratio - 1


def _metrics_cost(ratio: float, _head_x_rsa: float) -> float:
    # The scenario is the headline without metrics: what recording them costs is the headline's extra over it.
    return 1 / ratio - 1


def _per_claim(ratio: float, head_x_rsa: float) -> float:
    # (50-claim CPU - 5-claim CPU) / RSA / 45 = (ratio - 1) x the headline's CPU in RSA references / 45.
    return (ratio - 1) * head_x_rsa / EXTRA_CLAIMS


TARGETS = (
    PairedTarget("scale_rps", "10,000 RPs: at most 5 % more CPU per token than the small case",
                 ("saml20_rps_10k",), 0.05, "fraction", _extra),
    PairedTarget("scale_users", "100,000 users: at most 5 % more CPU per token than the small case",
                 ("saml20_users_100k",), 0.05, "fraction", _extra),
    PairedTarget("metrics_cost", "recording metrics costs < 2 % of the headline's CPU per token",
                 (METRICS_OFF,), 0.02, "fraction", _metrics_cost),
    PairedTarget("per_claim", "each extra claim <= +0.02x RSA", (CLAIMS_SCENARIO,), 0.02, "x RSA", _per_claim),
    PairedTarget("two_nodes", "two nodes on PostgreSQL + Redis: a node at most 15 % more CPU per token than the "
                 "headline", TWO_NODES, 0.15, "fraction", _extra),
)


def target_values(target: PairedTarget, measured: list[Pair], head_x_rsa: float | None) -> list[float]:
    """The target's value for each of its pairs (none without the headline's x RSA, which per_claim needs)."""
    if head_x_rsa is None:
        return []
    return [target.value(p.cpu_ratio, head_x_rsa) for p in measured if p.scenario in target.scenarios]


def judge(target: PairedTarget, measured: list[Pair], head_x_rsa: float | None) -> dict[str, Any]:
    """The target as the results file carries it: the median as ``value``, ``verdict``, the ``pairs`` spread, and
    ``met`` (None when within noise, so that readers of ``met`` alone do not count it as met or missed)."""
    found = spread(target_values(target, measured, head_x_rsa))
    out: dict[str, Any] = {"id": target.ident, "target": target.text, "limit": target.limit, "moonshot": None,
                           "unit": target.unit, "moonshot_met": None}
    if found is None:
        return out | {"value": None, "met": None}
    said = verdict(found, target.limit)
    return out | {"value": round(found.median, 4), "met": None if said == WITHIN_NOISE else said == MET,
                  "verdict": said, "median_met": found.median <= target.limit, "pairs": found.as_dict(),
                  "min_pairs": MIN_PAIRS}


def scenario_ratios(measured: list[Pair], name: str) -> Spread | None:
    """The spread of ``name``'s CPU ratios to its neighbouring headline slices."""
    return spread([p.cpu_ratio for p in measured if p.scenario == name])


def headline_drift(slices: list[Slice]) -> float:
    """(max - min) / median of the chain's headline slices: the drift the pairs cancel; 0 with fewer than two."""
    cpu = [s.cpu_ms_per_request for s in slices if s.scenario == HEADLINE and _usable(s)]
    if len(cpu) < 2:
        return 0.0
    return (max(cpu) - min(cpu)) / statistics.median(cpu)
