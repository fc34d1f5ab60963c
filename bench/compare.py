"""A run next to a previous one (``bench/run.py --previous``), and the missed targets with their evidence.

Both read only results files (``bench/results/<timestamp>.json``): the targets and scenarios by id and name, the
fixed costs of the headline (HTTP/gunicorn, the in-process stage buckets and the remainder) and the finer stages
by their name before its parenthesis, so a cost the bench words differently in a later run still lines up.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from analysis import AROUND_ENCRYPT_CALL, ENCRYPT_CALL, SIGN_CALL
from formatting import fmt, met, target_value, within_noise
from scenarios import METRICS_OFF, PASSWORD, STATIC

NONE = "—"  # a value the other run does not have


def cost_key(label: str) -> str:
    """A cost's name without its parenthesised detail: ``signing (the signxml sign call)`` -> ``signing``."""
    return label.split(" (", 1)[0]


SIGN, ENCRYPT_XML, AROUND_ENCRYPT = cost_key(SIGN_CALL), cost_key(ENCRYPT_CALL), cost_key(AROUND_ENCRYPT_CALL)


# --- targets and scenarios ------------------------------------------------------------------------------------


def previous_target(previous: dict[str, Any], ident: str) -> str:
    """The previous run's value for the target ``ident``, or a dash when that run did not have the target."""
    for target in previous["targets"]:
        if target["id"] == ident:
            return target_value(target)
    return NONE


def previous_ratios(previous: dict[str, Any], scenario: str) -> tuple[str, str]:
    """The previous run's CPU x RSA and req/s x RSA of ``scenario``; ``new`` twice for a scenario it did not run."""
    was = previous["scenarios"].get(scenario)
    if was is None:
        return "new", "new"
    return fmt(was["cpu_ratio_to_rsa"]), fmt(was["rps_ratio_to_rsa"])


# --- fixed costs before and after ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostRow:
    """One cost of both runs: the new run's label(s), the previous run's when worded differently, ms per request."""

    label: str
    was: str
    before: float | None
    after: float | None


def _groups(labels: list[str], other_keys: set[str]) -> dict[str, list[str]]:
    """Labels grouped by key. A key the other run lacks that extends one of its keys (``encryption around
    encrypt_xml`` when the other run only has ``encryption``) joins that group: the cost was split off it."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        key = cost_key(label)
        if key not in other_keys:
            parents = [other for other in other_keys if key.startswith(other + " ")]
            key = max(parents, key=len) if parents else key
        groups.setdefault(key, []).append(label)
    return groups


def match_costs(before: dict[str, float], after: dict[str, float]) -> list[CostRow]:
    """The costs of two runs side by side, in the new run's order, then those only the previous run had."""
    old = _groups(list(before), {cost_key(label) for label in after})
    new = _groups(list(after), {cost_key(label) for label in before})
    rows = []
    for key, labels in new.items():
        was = old.get(key, [])
        rows.append(CostRow(" + ".join(labels), " + ".join(was) if set(was) - set(labels) else "",
                            sum(before[label] for label in was) if was else None,
                            sum(after[label] for label in labels)))
    rows += [CostRow(" + ".join(labels), "", sum(before[label] for label in labels), None)
             for key, labels in old.items() if key not in new]
    return rows


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return NONE
    if not before:
        return f"{after - before:+.3f}"
    return f"{after - before:+.3f} ({(after - before) / before:+.0%})"


def _cost_table(rows: list[CostRow], rsa_before: float, rsa_after: float) -> list[str]:
    lines = ["| cost | previous ms | new ms | change ms | previous x RSA | new x RSA |", "|---|---|---|---|---|---|"]
    for row in rows:
        label = row.label + (f" *(was: {row.was})*" if row.was else "")
        lines.append(
            f"| {label} | {NONE if row.before is None else f'{row.before:.3f}'} | "
            f"{NONE if row.after is None else f'{row.after:.3f}'} | {_change(row.before, row.after)} | "
            f"{NONE if row.before is None else f'{row.before / rsa_before:.2f}'} | "
            f"{NONE if row.after is None else f'{row.after / rsa_after:.2f}'} |")
    return lines


def costs_before_after(results: dict[str, Any], previous: dict[str, Any], level: str = "##") -> list[str]:
    """The headline's fixed costs and in-process stages of both runs, in ms per request and in x RSA, with the
    difference; empty when either run has no cost shares."""
    new, old = results.get("cost_shares"), previous.get("cost_shares")
    if not new or not old:
        return []
    rsa_after = results["headline"]["rsa_cpu_ms_per_request"]
    rsa_before = previous["headline"]["rsa_cpu_ms_per_request"]
    buckets = match_costs({r["cost"]: r["ms"] for r in old["rows"]}, {r["cost"]: r["ms"] for r in new["rows"]})
    buckets.append(CostRow("**headline, server CPU in all**", "", old["headline_cpu_ms_per_request"],
                           new["headline_cpu_ms_per_request"]))
    stages = match_costs(old["stages_ms_per_request"], new["stages_ms_per_request"])
    stages.append(CostRow("**in-process, in all**", "", old["in_process_cpu_ms_per_request"],
                          new["in_process_cpu_ms_per_request"]))
    out = [
        f"{level} Fixed costs of the headline, before and after",
        "",
        f"Previous run {previous['timestamp']}, new run {results['timestamp']}. Milliseconds are each run's own "
        "(the machine and its load may differ between runs); x RSA divides by each run's RSA reference (previous "
        f"{rsa_before:.3f} ms, new {rsa_after:.3f} ms), so it is the column to compare. The total's x RSA divides "
        "medians, and differs a little from the headline ratio above, a median of per-round ratios.",
        "",
        *_cost_table(buckets, rsa_before, rsa_after),
        "",
    ]
    if any(row.was or " + " in row.label for row in buckets + stages):
        out += ["Costs are matched by their name before the parenthesis; *was* gives the previous run's name where "
                "it differs (the stage's extent may have changed with it), and a cost the new run splits off under a "
                "longer name (`encryption around encrypt_xml` from `encryption`) is compared as the sum of its parts.",
                ""]
    out += [
        "<details><summary>stages (in-process, exclusive, ms/request), before and after</summary>",
        "",
        *_cost_table(stages, rsa_before, rsa_after),
        "",
        f"{NONE}: the run's stage timers did not see the stage (not called, or no longer where the timer wraps it: "
        "its time then counts in the stage that calls it).",
        "",
        "</details>",
        "",
    ]
    return out


# --- misses --------------------------------------------------------------------------------------------------


def _largest(results: dict[str, Any], count: int = 4, skip: tuple[str, ...] = ()) -> str:
    """The largest fixed costs of the headline (the remainder included), in ms, x RSA and share."""
    rsa = results["headline"]["rsa_cpu_ms_per_request"]
    rows = sorted((r for r in results["cost_shares"]["rows"] if cost_key(r["cost"]) not in skip),
                  key=lambda r: -float(r["ms"]))[:count]
    return "; ".join(f"{_short(r['cost'])} {r['ms']:.3f} ms ({r['ms'] / rsa:.2f}x RSA, {r['share']:.0%})"
                     for r in rows)


def _short(label: str) -> str:
    key = cost_key(label)
    return "remainder under load (not seen in-process)" if key == "remainder" else key


def _scenario_ms(results: dict[str, Any], name: str) -> float | None:
    value = results["scenarios"].get(name, {}).get("cpu_ms_per_request")
    return None if value is None else float(value)


def _paired_ms(results: dict[str, Any], names: tuple[str, ...]) -> tuple[float, float] | None:
    """Medians of the CPU ms per request of ``names``' paired slices and of their neighbouring headline slices'
    means; None for a run without paired slices."""
    found = [p for p in (results.get("paired") or {}).get("pairs", []) if p["scenario"] in names]
    if not found:
        return None
    return (statistics.median(p["cpu_ms"] for p in found), statistics.median(p["headline_cpu_ms"] for p in found))


PAIRED_SCENARIOS = {"scale_rps": ("saml20_rps_10k",), "scale_users": ("saml20_users_100k",),
                    "metrics_cost": (METRICS_OFF,), "per_claim": ("saml20_claims_50",),
                    "two_nodes": ("saml20_two_nodes_node_a", "saml20_two_nodes_node_b")}
PAIRED_WORDS = {"scale_rps": "With 10,000 RPs a token costs {mine:.3f} ms of CPU against {head:.3f} ms with 10",
                "scale_users": "With 100,000 users a token costs {mine:.3f} ms of CPU against {head:.3f} ms with "
                               "1,000",
                "metrics_cost": "The headline costs {head:.3f} ms with metrics and {mine:.3f} ms without",
                "per_claim": "50 claims cost {mine:.3f} ms against {head:.3f} ms for 5",
                "two_nodes": "A node on PostgreSQL + Redis costs {mine:.3f} ms a token against {head:.3f} ms on "
                             "SQLite"}


def _paired_reason(ident: str, results: dict[str, Any]) -> str:
    """What the pairs of a paired target measured, in ms; empty for other targets and for older runs."""
    names = PAIRED_SCENARIOS.get(ident)
    measured = _paired_ms(results, names) if names else None
    if measured is None:
        return ""
    mine, head = measured
    return (PAIRED_WORDS[ident].format(mine=mine, head=head) + " (medians of the paired slices and of their "
            "neighbouring headline slices; the target's value is the median of the per-pair ratios).")


def _profile_reason(ident: str, results: dict[str, Any]) -> str:
    """What the new run's profile and scenarios say about a missed CPU target."""
    paired = _paired_reason(ident, results)
    if paired:  # a paired target of a run with paired slices: what its pairs measured
        return paired
    head, split = results["headline"], results.get("library_split") or {}
    rsa, head_ms = head["rsa_cpu_ms_per_request"], head["cpu_ms_per_request"]
    # The secondary scenarios' own baseline: the headline in the same (secondary) rounds, when the run recorded it.
    baseline = results.get("secondary_headline") or {}
    base_ms = baseline.get("cpu_ms_per_request") or head_ms
    same = " in the same rounds" if baseline else ""
    if ident in ("headline_cpu", "headline_rps"):
        lead = "Throughput follows the CPU per token on the cores wrk shares. " if ident == "headline_rps" else ""
        return f"{lead}Largest costs of the headline: {_largest(results)}."
    if ident == "signed_only_cpu":
        signed = _scenario_ms(results, "saml20_signed_only")
        return (f"{fmt(signed, 3)} ms against the headline's {head_ms:.3f} ms; without encryption the largest costs "
                f"are: {_largest(results, skip=(ENCRYPT_XML, AROUND_ENCRYPT))}.")
    if ident == "outside_libraries_cpu" and split:
        return (f"{split['outside_ms']:.3f} ms outside the two calls, where 0.8x RSA allows {0.8 * rsa:.3f} ms; the "
                f"largest: {_largest(results, skip=(SIGN, ENCRYPT_XML))}.")
    if ident == "encryption_cpu" and split:
        around = split["encryption_ms"] - split["encrypt_xml_call_ms"]
        return (f"The encrypt_xml call {split['encrypt_xml_call_ms']:.3f} ms ({split['encrypt_xml_call_x_rsa']:.2f}x "
                f"RSA), the work around it {around:.3f} ms ({around / rsa:.2f}x RSA).")
    if ident == "cache_disabled_cpu":
        verify = (_scenario_ms(results, PASSWORD) or 0.0) - (_scenario_ms(results, STATIC) or 0.0)
        return (f"One password verify (password reference - static reference) is about {verify / rsa:.1f}x RSA; "
                f"beyond it the token pays the headline's pipeline ({head['cpu_ratio_to_rsa']:.2f}x RSA).")
    if ident == "scale_rps" and _scenario_ms(results, "saml20_rps_10k"):
        directory = [r["ms"] for r in results["cost_shares"]["rows"] if cost_key(r["cost"]) == "RP directory"]
        return (f"With 10,000 RPs a token costs {_scenario_ms(results, 'saml20_rps_10k'):.2f} ms of CPU against "
                f"{base_ms:.2f} ms with 10{same}. The profile runs the 10-RP instance, so it does not split the extra; "
                "the cost that grows with the number of RPs is the RP directory's (refresh check and reload, "
                f"encrypter rebuild), {fmt(directory[0] if directory else None, 3)} ms there.")
    if ident == "scale_users" and _scenario_ms(results, "saml20_users_100k"):
        return (f"With 100,000 users a token costs {_scenario_ms(results, 'saml20_users_100k'):.2f} ms of CPU "
                f"against {base_ms:.2f} ms with 1,000{same}.")
    if ident == "metrics_cost" and _scenario_ms(results, METRICS_OFF):
        rounds = "medians of the secondary rounds" if baseline else "medians of different rounds"
        return (f"The headline costs {base_ms:.3f} ms with metrics and {_scenario_ms(results, METRICS_OFF):.3f} ms "
                f"without ({rounds}; the target's value is per round).")
    if ident == "per_claim" and _scenario_ms(results, "saml20_claims_50"):
        return (f"50 claims cost {_scenario_ms(results, 'saml20_claims_50'):.2f} ms against {base_ms:.2f} ms for 5"
                f"{same}: "
                "the extra attributes are built, canonicalized and digested, encrypted, and copied into the "
                "token-store record.")
    if ident == "latency_p99":
        return f"Headline p50 {fmt(head['p50_ms'], 1)} ms, p99 {fmt(head['p99_ms'], 1)} ms at 16 connections."
    return ""


def misses(results: dict[str, Any], previous: dict[str, Any] | None = None, level: str = "##",
           results_dir: str = "") -> list[str]:
    """Each missed target with its value (and the previous run's), next to what the profile says about it;
    ``results_dir`` prefixes the profile's file name (for a link from outside bench/results/)."""
    missed = [t for t in results["targets"] if t["met"] is False]
    if not missed:
        return [f"{level} Misses", "", "None: every target was met" + (
            " or is within noise." if noise_lines(results) else "."), "", *noise_lines(results)]
    has_profile = bool(results.get("cost_shares"))
    out = [f"{level} Misses and what the profile says", ""]
    for target in missed:
        was = f" (previous run: {previous_target(previous, target['id'])})" if previous else ""
        reason = _profile_reason(target["id"], results) if has_profile else ""
        out.append(f"- {target['target']}: **{target_value(target)}**{was}. {reason}".rstrip())
    if has_profile:
        shares = results["cost_shares"]
        stages = sorted(shares["stages_ms_per_request"].items(), key=lambda item: -item[1])[:5]
        out += ["", "Largest in-process stages: " + "; ".join(
            f"{name} {ms:.3f} ms ({ms / shares['headline_cpu_ms_per_request']:.0%})" for name, ms in stages) + "."]
    out += ["", f"Full profile: `{results_dir}{results['profile']['file']}`.", "", *noise_lines(results)]
    return out


def noise_lines(results: dict[str, Any]) -> list[str]:
    """The targets whose pairs fell on both sides of the limit: neither met nor missed in this run."""
    noisy = [t for t in results["targets"] if within_noise(t)]
    if not noisy:
        return []
    return ["Within noise (the pairs fall on both sides of the limit, or are too few: this run cannot tell either "
            "way; the median's side is a lean, not a verdict):", "",
            *(f"- {t['target']}: **{target_value(t)}**, {met(t)}. {_paired_reason(t['id'], results)}".rstrip()
              for t in noisy), ""]
