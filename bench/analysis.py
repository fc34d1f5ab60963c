"""From slices to results: same-round ratios to the RSA reference, medians over rounds, the paired targets
(bench/paired.py), targets, cost shares."""

from __future__ import annotations

import statistics
from typing import Any

import paired
from loadgen import Slice
from scenarios import HEADLINE, PAIRED, PASSWORD, PRIMARY, RSA, SCENARIOS, STATIC

# Buckets of bench/inprocess_profile.py: the two library calls the product is built on, and the work around them.
SIGN_CALL, ENCRYPT_CALL = "signing (the signxml sign call)", "encryption (the xmlsec encrypt_xml call)"
AROUND_ENCRYPT_CALL = "encryption around encrypt_xml"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _spread(values: list[float]) -> float:
    """(max - min) / median; 0 with fewer than two values."""
    if len(values) < 2 or not statistics.median(values):
        return 0.0
    return (max(values) - min(values)) / statistics.median(values)


def rsa_spread(slices: list[Slice]) -> dict[str, Any]:
    rsa = [s for s in slices if s.scenario == RSA and s.in_window]
    cpu, rps = [s.cpu_ms_per_request for s in rsa], [s.rps for s in rsa]
    return {"cpu": round(_spread(cpu), 4), "rps": round(_spread(rps), 4),
            "rsa_cpu_ms_per_round": [round(v, 4) for v in cpu], "rsa_rps_per_round": [round(v, 1) for v in rps]}


def by_round(slices: list[Slice]) -> dict[int, dict[str, Slice]]:
    rounds: dict[int, dict[str, Slice]] = {}
    for s in slices:
        rounds.setdefault(s.round, {})[s.scenario] = s
    return rounds


def per_round(slices: list[Slice], scenario: str, reference: str = RSA) -> list[tuple[float, float]]:
    """(CPU ratio, requests/s ratio) of ``scenario`` to ``reference`` in every round where both completed."""
    out = []
    for members in by_round(slices).values():
        s, ref = members.get(scenario), members.get(reference)
        if s and ref and s.in_window and ref.in_window and ref.cpu_ms_per_request and ref.rps:
            out.append((s.cpu_ms_per_request / ref.cpu_ms_per_request, s.rps / ref.rps))
    return out


def summarize(name: str, slices: list[Slice], block: str, rss: list[float]) -> dict[str, Any]:
    mine = [s for s in slices if s.scenario == name]
    ratios = per_round(slices, name)
    usable = [s for s in mine if s.in_window]
    p50 = [s.p50_ms for s in mine]
    p99 = [s.p99_ms for s in mine]

    def rounded(value: float | None, digits: int = 3) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "description": SCENARIOS[name].description,
        "block": block,
        "rounds": len(mine),
        "cpu_ratio_to_rsa": rounded(_median([c for c, _ in ratios])),
        "rps_ratio_to_rsa": rounded(_median([r for _, r in ratios])),
        "cpu_ratio_range": [rounded(min(c for c, _ in ratios)), rounded(max(c for c, _ in ratios))] if ratios else None,
        "cpu_ms_per_request": rounded(_median([s.cpu_ms_per_request for s in usable]), 4),
        "rps": rounded(_median([s.rps for s in usable]), 1),
        "p50_ms": rounded(_median(p50), 2),
        "p99_ms": rounded(_median(p99), 2),
        "p99_over_p50": rounded(_median([s.p99_ms / s.p50_ms for s in mine if s.p50_ms]), 2),
        "rss_mib": rounded(max(rss) if rss else None, 1),
        "errors": sum(s.errors for s in mine),
        "requests_in_windows": sum(s.in_window for s in mine),
        "wrk_cpu_ms_per_request": rounded(_median([s.client_cpu_ms_per_request for s in usable]), 4),
    }


def secondary_headline(secondary: list[Slice]) -> dict[str, Any] | None:
    """The headline as measured in the secondary rounds: the baseline of every secondary scenario (each of their
    ratios is to the RSA reference of those rounds, which may differ from the primary rounds')."""
    if not any(s.scenario == HEADLINE for s in secondary):
        return None
    return summarize(HEADLINE, secondary, "secondary", [])


def summarize_paired(name: str, chain: list[Slice], pairs: list[paired.Pair], head: dict[str, Any],
                     rss: list[float]) -> dict[str, Any]:
    """A paired scenario's row: its slices' own numbers, and its ratios to the RSA reference as the median of its
    pair ratios (to the neighbouring headline slices) times the headline's ratios of the primary rounds; the range
    is that of its pairs."""
    row = summarize(name, chain, "paired", rss)
    mine = [p for p in pairs if p.scenario == name]
    cpu, rps = head.get("cpu_ratio_to_rsa"), head.get("rps_ratio_to_rsa")
    row["rounds"] = len(mine)
    if not mine or cpu is None or rps is None:
        return row
    ratios = [p.cpu_ratio * cpu for p in mine]
    row["cpu_ratio_to_rsa"] = round(statistics.median(ratios), 3)
    row["rps_ratio_to_rsa"] = round(statistics.median(p.rps_ratio * rps for p in mine), 3)
    row["cpu_ratio_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
    return row


def paired_summary(chain: list[Slice], pairs: list[paired.Pair], args: dict[str, Any]) -> dict[str, Any]:
    """The paired rounds in the results file: how they ran, every pair, and each scenario's spread of ratios."""
    spreads = {name: paired.scenario_ratios(pairs, name) for name in PAIRED}
    return {"rounds": args.get("paired_rounds"), "slice_s": args.get("paired_slice"), "scenarios": PAIRED,
            "headline_cpu_drift": round(paired.headline_drift(chain), 4), "pairs": [p.as_dict() for p in pairs],
            "cpu_ratio_to_headline": {name: found.as_dict() for name, found in spreads.items() if found}}


def _target(ident: str, text: str, value: float | None, limit: float, moonshot: float | None = None,
            lower_is_better: bool = True, unit: str = "") -> dict[str, Any]:
    def ok(bound: float | None) -> bool | None:
        if bound is None or value is None:
            return None
        return value <= bound if lower_is_better else value >= bound

    return {"id": ident, "target": text, "value": None if value is None else round(value, 4), "limit": limit,
            "moonshot": moonshot, "unit": unit, "met": ok(limit), "moonshot_met": ok(moonshot)}


def _growth(memory: dict[str, Any]) -> float | None:
    before, after = memory.get("after_10k"), memory.get("after_soak")
    if not before or not after or after["served"] <= before["served"]:
        return None  # no request served between the two readings (--quick): no growth measured, not 0 %
    old = {w["pid"]: w["rss_mib"] for w in before["workers"]}
    pairs = [(old[w["pid"]], w["rss_mib"]) for w in after["workers"] if w["pid"] in old]
    if not pairs:  # workers were replaced: compare the largest
        pairs = [(max(old.values()), max(w["rss_mib"] for w in after["workers"]))]
    return float(max((new - was) / was for was, new in pairs))


def library_split(scenarios: dict[str, dict[str, Any]], profile: dict[str, Any]) -> dict[str, Any]:
    """The headline's server CPU split into the signxml ``sign`` call, the xmlsec ``encrypt_xml`` call (both from
    the in-process stage timers) and everything else (the rest of the server CPU: what the product adds), in ms and
    in x RSA (the RSA reference's median CPU per request)."""
    head = scenarios[HEADLINE]["cpu_ms_per_request"]
    rsa = scenarios[RSA]["cpu_ms_per_request"]
    buckets = profile["buckets_ms_per_request"]
    if not head or not rsa or SIGN_CALL not in buckets or ENCRYPT_CALL not in buckets:
        return {}
    sign, encrypt_xml = buckets[SIGN_CALL], buckets[ENCRYPT_CALL]
    encryption = encrypt_xml + buckets.get(AROUND_ENCRYPT_CALL, 0.0)
    outside = head - sign - encrypt_xml
    return {"headline_ms": head, "rsa_ms": rsa, "sign_call_ms": round(sign, 4),
            "encrypt_xml_call_ms": round(encrypt_xml, 4), "encryption_ms": round(encryption, 4),
            "outside_ms": round(outside, 4), "sign_call_x_rsa": round(sign / rsa, 4),
            "encrypt_xml_call_x_rsa": round(encrypt_xml / rsa, 4), "encryption_x_rsa": round(encryption / rsa, 4),
            "outside_x_rsa": round(outside / rsa, 4), "in_process_ms": profile.get("cpu_ms_per_request"),
            "static_ms": scenarios.get(STATIC, {}).get("cpu_ms_per_request")}


def targets(scenarios: dict[str, dict[str, Any]], secondary: list[Slice], memory: dict[str, Any],
            all_slices: list[Slice], split: dict[str, Any] | None = None,
            pairs: list[paired.Pair] | None = None) -> list[dict[str, Any]]:
    """Every target, met or not; ``pairs`` are the paired rounds' (none: those targets are n/a)."""
    head = scenarios[HEADLINE]
    pairs = pairs or []
    split = split or {}
    out = [
        _target("headline_cpu", "headline CPU per token <= 2.5x RSA (moonshot 2.0x)", head["cpu_ratio_to_rsa"],
                2.5, 2.0, unit="x RSA"),
        _target("headline_rps", "headline throughput >= 0.35x RSA (moonshot 0.45x)", head["rps_ratio_to_rsa"],
                0.35, 0.45, lower_is_better=False, unit="x RSA"),
        _target("signed_only_cpu", "signed only <= 2.0x RSA (moonshot 1.7x)",
                scenarios["saml20_signed_only"]["cpu_ratio_to_rsa"], 2.0, 1.7, unit="x RSA"),
        _target("outside_libraries_cpu", "headline CPU outside the signxml sign and xmlsec encrypt_xml calls "
                "<= 0.8x RSA", split.get("outside_x_rsa"), 0.8, unit="x RSA"),
        _target("encryption_cpu", "encryption (encrypt_xml and the work around it) <= 0.45x RSA",
                split.get("encryption_x_rsa"), 0.45, unit="x RSA"),
    ]
    # Cache disabled: <= one password verify (password reference minus static reference) + 2.0x RSA, per round.
    margins = []
    for members in by_round(secondary).values():
        need = ("saml20_cache_disabled", RSA, PASSWORD, STATIC)
        if all(k in members and members[k].in_window for k in need):
            rsa = members[RSA].cpu_ms_per_request
            limit = (members[PASSWORD].cpu_ms_per_request - members[STATIC].cpu_ms_per_request) / rsa + 2.0
            margins.append((members["saml20_cache_disabled"].cpu_ms_per_request / rsa, limit))
    value = _median([v for v, _ in margins])
    allowed = _median([a for _, a in margins])
    target = _target("cache_disabled_cpu", "credential cache disabled <= one password verify + 2.0x RSA "
                     "(limit in x RSA, from the same rounds)", value, round(allowed, 3) if allowed else 0.0,
                     unit="x RSA")
    out.append(target)
    out.append(_target("latency_p99", "headline p99 <= 3x p50 at 16 connections", head["p99_over_p50"], 3.0,
                       unit="p99/p50"))
    out.append(_target("errors", "0 errors (every slice)", float(sum(s.errors for s in all_slices)), 0.0))
    warm = memory.get("after_warmup", {}).get("workers", [])
    out.append(_target("rss_warm", "RSS per worker after warm-up <= 80 MiB",
                       max((w["rss_mib"] for w in warm), default=None), 80.0, unit="MiB"))
    out.append(_target("rss_growth", "RSS growth per worker between 10k and 50k requests < 5 %", _growth(memory),
                       0.05, unit="fraction"))
    # Scenario against headline: judged on the pairs, not on rounds (bench/paired.py).
    out += [paired.judge(target, pairs, head["cpu_ratio_to_rsa"]) for target in paired.TARGETS]
    return out


def cost_shares(scenarios: dict[str, dict[str, Any]], profile: dict[str, Any]) -> dict[str, Any]:
    """Fixed costs of the headline token as shares of its server CPU: HTTP/gunicorn from the /static
    reference, the rest from the in-process stage timers; what neither explains is listed as the remainder."""
    head = scenarios[HEADLINE]["cpu_ms_per_request"]
    static = scenarios[STATIC]["cpu_ms_per_request"]
    if not head or not static:
        return {}
    rows = [{"cost": "HTTP/gunicorn (the /static reference: accept, parse, WSGI, respond)", "ms": static}]
    rows += [{"cost": bucket, "ms": ms} for bucket, ms in profile["buckets_ms_per_request"].items()]
    explained = sum(r["ms"] for r in rows)
    rows.append({"cost": "remainder (under load, not seen in-process: scheduling, cache misses, GC, "
                 "the other worker's SQLite locks)", "ms": head - explained})
    for row in rows:
        row["ms"] = round(row["ms"], 4)
        row["share"] = round(row["ms"] / head, 4)
    return {"headline_cpu_ms_per_request": head, "in_process_cpu_ms_per_request": profile["cpu_ms_per_request"],
            "rows": sorted(rows[:-1], key=lambda r: -r["ms"]) + rows[-1:],
            "stages_ms_per_request": profile["stages_ms_per_request"]}


def scenario_rows(primary: list[Slice], secondary: list[Slice], chain: list[Slice], pairs: list[paired.Pair],
                  rss: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """One summary per scenario, in SCENARIOS' order; the paired ones scaled by the primary headline's ratios."""
    head = summarize(HEADLINE, primary, "primary", rss.get(HEADLINE, []))
    rows = {}
    for name in SCENARIOS:
        if name in PAIRED:
            rows[name] = summarize_paired(name, chain, pairs, head, rss.get(name, []))
        else:
            block, slices = ("primary", primary) if name in PRIMARY else ("secondary", secondary)
            rows[name] = summarize(name, slices, block, rss.get(name, []))
    return rows


def build_results(*, stamp: str, machine: dict[str, Any], args: dict[str, Any], primary: list[Slice],
                  attempts: list[dict[str, Any]], secondary: list[Slice], latency: list[Slice], soak: list[Slice],
                  memory: dict[str, Any], rss: dict[str, list[float]], profile: dict[str, Any], notes: list[str],
                  runtime_s: float, noise_limit: float, discarded: list[Slice] | None = None,
                  chain: list[Slice] | None = None) -> dict[str, Any]:
    """``discarded``: the primary rounds not kept (a noisy first set); only their errors count. ``chain``: the
    paired rounds' slices in measuring order."""
    chain = chain or []
    pairs = paired.pairs(chain)
    scenarios = scenario_rows(primary, secondary, chain, pairs, rss)
    all_slices = primary + secondary + chain + latency + soak
    head = scenarios[HEADLINE]
    final_spread = min(a["cpu"] for a in attempts)
    latency_rows = []
    for s in latency:
        saturation = scenarios[s.scenario]["rps"] or 0
        latency_rows.append({"scenario": s.scenario, "connections": s.connections, "delay_ms": s.delay_ms,
                             "rps": round(s.rps, 1), "fraction_of_saturation": round(s.rps / saturation, 2)
                             if saturation else None, "p50_ms": round(s.p50_ms, 2), "p99_ms": round(s.p99_ms, 2),
                             "errors": s.errors})
    for name in (HEADLINE, RSA, STATIC):
        latency_rows.append({"scenario": name, "connections": args["connections"], "delay_ms": 0.0,
                             "rps": scenarios[name]["rps"], "fraction_of_saturation": 1.0,
                             "p50_ms": scenarios[name]["p50_ms"], "p99_ms": scenarios[name]["p99_ms"],
                             "errors": scenarios[name]["errors"]})
    split = library_split(scenarios, profile)
    return {
        "timestamp": stamp,
        "headline": {"scenario": HEADLINE, "cpu_ratio_to_rsa": head["cpu_ratio_to_rsa"],
                     "rps_ratio_to_rsa": head["rps_ratio_to_rsa"], "cpu_ms_per_request": head["cpu_ms_per_request"],
                     "rsa_cpu_ms_per_request": scenarios[RSA]["cpu_ms_per_request"], "rps": head["rps"],
                     "rsa_rps": scenarios[RSA]["rps"], "p50_ms": head["p50_ms"], "p99_ms": head["p99_ms"]},
        "scenarios": scenarios,
        "secondary_headline": secondary_headline(secondary),
        "targets": targets(scenarios, secondary, memory, all_slices + (discarded or []), split, pairs),
        "paired": paired_summary(chain, pairs, args),
        "library_split": split,
        "cost_shares": cost_shares(scenarios, profile),
        "latency": latency_rows,
        "memory": memory,
        "noise": {"limit": noise_limit, "attempts": attempts, "noisy": final_spread > noise_limit,
                  "repeated": len(attempts) > 1, "secondary": rsa_spread(secondary)},
        "profile": {"file": f"{stamp}-profile.txt", "requests": profile["requests"],
                    "non_200": profile["non_200"], "missing_stages": profile.get("missing_stages", []),
                    "stage_calls_per_request": profile.get("stage_calls_per_request", {}),
                    "in_process_cpu_ms_per_request": profile["cpu_ms_per_request"],
                    "top_cumulative": profile["top_cumulative"], "top_tottime": profile["top_tottime"]},
        "machine": machine,
        "method": {
            "transport": "plain HTTP on 127.0.0.1 (TLS off: STS_SERVER_TLS_CERT/KEY empty, "
                         "allow_insecure_transport=true); wrk and the servers share the machine's cores",
            "gunicorn": "sts/gunicorn_conf.py for every server, STS and reference: the production worker "
                        "(sts.gunicorn_worker: requests read and served in its event loop, threads = 1), one per "
                        "core, preload_app; access log off; the *_sync_workers scenarios run gunicorn's sync "
                        "workers for comparison; "
                        "--max-requests 0 (production recycles workers after "
                        "20,000 +- 2,000 requests) so no worker is replaced inside a measurement window and memory "
                        "growth to 50k requests shows",
            "rounds": {"primary": {"rounds": args["rounds"], "slice_s": args["slice"], "scenarios": PRIMARY},
                       "secondary": {"rounds": args["secondary_rounds"], "slice_s": args["secondary_slice"]},
                       "paired": {"rounds": args.get("paired_rounds"), "slice_s": args.get("paired_slice"),
                                  "scenarios": PAIRED}},
            "connections": args["connections"], "key_size": args["key_size"],
            "cpu": "user+system of the gunicorn master (with reaped workers) and live workers from /proc, over "
                   "a window inside each slice; divided by the responses wrk completed in that window",
        },
        "slices": [s.as_dict() for s in all_slices],
        "notes": notes + ([f"the in-process profile saw {profile['non_200']} non-200 responses"]
                          if profile["non_200"] else []) + [
            f"profile stage not timed (renamed, or never called: its time counts in its caller's stage): {m}"
            for m in profile.get("missing_stages", [])],
        "runtime_s": round(runtime_s, 1),
    }
