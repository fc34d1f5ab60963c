"""Markdown for bench/results/<timestamp>.md, the console summary and README's Performance section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from scenarios import HEADLINE, RSA


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _met(target: dict[str, Any]) -> str:
    if target["met"] is None:
        return "n/a"
    text = "met" if target["met"] else "**missed**"
    if target.get("moonshot") is not None and target["moonshot_met"]:
        text += " (moonshot met)"
    return text


def _target_value(target: dict[str, Any]) -> str:
    value, unit = target["value"], target["unit"]
    if value is None:
        return "n/a"
    if unit == "fraction":
        return f"{value:+.1%}"
    return f"{value:.3g} {unit}".strip()


def machine_line(machine: dict[str, Any]) -> str:
    return (f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, {machine['os']}, "
            f"kernel {machine['kernel']}, Python {machine['python']}, {machine['wrk']}, "
            f"load average at start {', '.join(str(x) for x in machine['load_average_at_start'])}")


def targets_table(results: dict[str, Any]) -> list[str]:
    lines = ["| target | value | result |", "|---|---|---|"]
    for target in results["targets"]:
        limit = target["limit"]
        text = target["target"]
        if target["id"] == "cache_disabled_cpu":
            text += f": limit {limit:.2f}x RSA"
        lines.append(f"| {text} | {_target_value(target)} | {_met(target)} |")
    return lines


def split_line(results: dict[str, Any]) -> list[str]:
    """The headline's CPU: the two library calls, and everything outside them (what the product adds)."""
    split = results.get("library_split")
    if not split:
        return []
    return [
        f"Headline CPU {_fmt(split['headline_ms'], 3)} ms: the signxml `sign` call {_fmt(split['sign_call_ms'], 3)} "
        f"ms ({_fmt(split['sign_call_x_rsa'])}x RSA), the xmlsec `encrypt_xml` call "
        f"{_fmt(split['encrypt_xml_call_ms'], 3)} ms ({_fmt(split['encrypt_xml_call_x_rsa'])}x RSA), **everything "
        f"outside the two calls {_fmt(split['outside_ms'], 3)} ms ({_fmt(split['outside_x_rsa'])}x RSA)**; "
        f"encryption with the work around `encrypt_xml` {_fmt(split['encryption_ms'], 3)} ms "
        f"({_fmt(split['encryption_x_rsa'])}x RSA). The library calls are timed in-process (thread CPU), the "
        "headline under load.",
        "",
    ]


def scenarios_table(results: dict[str, Any]) -> list[str]:
    lines = ["| scenario | CPU ms/req | CPU x RSA (range) | req/s | req/s x RSA | p50 ms | p99 ms | RSS MiB "
             "| errors | rounds | wrk CPU ms/req |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in results["scenarios"].items():
        span = s["cpu_ratio_range"]
        ratio = f"{_fmt(s['cpu_ratio_to_rsa'])} ({_fmt(span[0])}-{_fmt(span[1])})" if span else "n/a"
        label = f"**{name}**" if name == HEADLINE else name
        lines.append(f"| {label} | {_fmt(s['cpu_ms_per_request'], 3)} | {ratio} | {_fmt(s['rps'], 0)} | "
                     f"{_fmt(s['rps_ratio_to_rsa'])} | {_fmt(s['p50_ms'], 1)} | {_fmt(s['p99_ms'], 1)} | "
                     f"{_fmt(s['rss_mib'], 1)} | {s['errors']} | {s['rounds']} ({s['block']}) | "
                     f"{_fmt(s.get('wrk_cpu_ms_per_request'), 3)} |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    head, machine, method = results["headline"], results["machine"], results["method"]
    rounds = method["rounds"]
    noise = results["noise"]
    out = [
        f"# STS benchmark {results['timestamp']}",
        "",
        f"Machine: {machine_line(machine)}.",
        "",
        f"Method: {method['transport']}. {method['gunicorn']}. {rounds['primary']['rounds']} primary rounds of "
        f"{rounds['primary']['slice_s']:g} s slices ({', '.join(rounds['primary']['scenarios'])}), "
        f"{rounds['secondary']['rounds']} secondary rounds of {rounds['secondary']['slice_s']:g} s slices (every "
        f"other scenario, each round with its own RSA reference and headline); order rotated every round; "
        f"{method['connections']} connections; RSA-{method['key_size']} for the STS, RP and reference keys. "
        f"CPU: {method['cpu']}. Ratios are per round, then the median over rounds. Total run time "
        f"{results['runtime_s']:.0f} s.",
        "",
        "RSA reference spread between primary rounds ((max - min) / median): " + "; ".join(
            f"{'kept: ' if a.get('kept') else 'discarded: '}CPU {a['cpu']:.0%}, req/s {a['rps']:.0%}"
            for a in noise["attempts"]) + f" (limit {noise['limit']:.0%} on CPU; repeated: {noise['repeated']}; "
        f"noisy: {noise['noisy']}).",
        "",
        "## Headline",
        "",
        f"SAML 2.0 bearer, signed + encrypted, warm credential cache: **{_fmt(head['cpu_ratio_to_rsa'])}x** the "
        f"CPU of one RSA signature request ({_fmt(head['cpu_ms_per_request'], 3)} ms vs "
        f"{_fmt(head['rsa_cpu_ms_per_request'], 3)} ms), **{_fmt(head['rps_ratio_to_rsa'])}x** its throughput "
        f"({_fmt(head['rps'], 0)} vs {_fmt(head['rsa_rps'], 0)} req/s).",
        "",
        *targets_table(results),
        "",
        *split_line(results),
        "## Scenarios",
        "",
        "CPU = server CPU time per request (master + workers); p50/p99 at "
        f"{method['connections']} connections (closed loop, so they include queueing behind the 2 "
        "workers); RSS = largest worker after the scenario's slices.",
        "",
        *scenarios_table(results),
        "",
        "## Latency",
        "",
        "| scenario | connections | pacing delay ms | req/s | of saturation | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {r['scenario']} | {r['connections']} | {_fmt(r['delay_ms'], 1)} | {_fmt(r['rps'], 0)} | "
          f"{_fmt(r['fraction_of_saturation'])} | {_fmt(r['p50_ms'], 2)} | {_fmt(r['p99_ms'], 2)} | {r['errors']} |"
          for r in results["latency"]),
        "",
        "## Memory (headline server, per worker)",
        "",
        "| when | requests served | RSS MiB per worker | PSS MiB per worker |",
        "|---|---|---|---|",
        *(f"| {label} | {m['served']:,} | {', '.join(str(w['rss_mib']) for w in m['workers'])} | "
          f"{', '.join(str(w['pss_mib']) for w in m['workers'])} |"
          for label, m in ((k.replace("_", " "), results["memory"].get(k))
                           for k in ("after_warmup", "after_10k", "after_soak")) if m),
        "",
    ]
    out += misses(results)
    shares = results["cost_shares"]
    if shares:
        out += [
            "## Fixed costs of the headline token",
            "",
            f"Shares of the headline's server CPU ({_fmt(shares['headline_cpu_ms_per_request'], 3)} ms/request): "
            "HTTP/gunicorn from the /static reference, the rest from exclusive stage timers in the in-process run "
            f"({_fmt(shares['in_process_cpu_ms_per_request'], 3)} ms/request in-process).",
            "",
            "| cost | ms/request | share |",
            "|---|---|---|",
            *(f"| {r['cost']} | {r['ms']:.3f} | {r['share']:.1%} |" for r in shares["rows"]),
            "",
            "<details><summary>stages (in-process, exclusive, ms/request)</summary>",
            "",
            "| stage | ms |",
            "|---|---|",
            *(f"| {name} | {ms:.3f} |" for name, ms in shares["stages_ms_per_request"].items()),
            "",
            "</details>",
            "",
        ]
    profile = results["profile"]
    out += [
        "## Profile (in-process, headline)",
        "",
        f"`{profile['file']}`: cProfile of {profile['requests']} headline requests. Top 20 by own time:",
        "",
        "| function | calls/request | own ms/request | cumulative ms/request |",
        "|---|---|---|---|",
        *(f"| `{p['function']}` | {p['calls'] / profile['requests']:.1f} | {p['tottime_ms_per_request']:.3f} | "
          f"{p['cumtime_ms_per_request']:.3f} |" for p in profile["top_tottime"]),
        "",
    ]
    out += sigonly_section(results.get("sigonly_inprocess"))
    if results["notes"]:
        out += ["## Notes", "", *(f"- {n}" for n in results["notes"]), ""]
    return "\n".join(out)


def sigonly_section(signed: dict[str, Any] | None) -> list[str]:
    """Scenario 2 (SigOnly), measured in-process (bench/signed_inprocess.py), in RSA references."""
    if not signed:
        return []
    rsa = signed["rsa_reference_cpu_ms"]
    return [
        "## Scenario 2 (SigOnly), in-process",
        "",
        f"{signed['requests']} signed Issue requests (RSA-SHA256, 2048-bit registered client key), each sent once, "
        f"alternating with the headline; CPU time of the application calls only. RSA reference: {rsa:.3f} ms.",
        "",
        "| | CPU ms | RSA references |",
        "|---|---|---|",
        f"| SigOnly, per token | {_fmt(signed['sigonly_cpu_ms_per_token'], 3)} | "
        f"{_fmt(signed['sigonly_in_rsa_refs'])} |",
        f"| headline (UsernameToken), per token | {_fmt(signed['headline_cpu_ms_per_token'], 3)} | "
        f"{_fmt(signed['headline_in_rsa_refs'])} |",
        f"| SigOnly beyond the headline (incl. the signed answer) | "
        f"{_fmt(signed['sigonly_cpu_ms_per_token'] - signed['headline_cpu_ms_per_token'], 3)} | "
        f"{_fmt(signed['sigonly_beyond_headline_in_rsa_refs'])} |",
        f"| inbound verification (signed-request authenticator) | {_fmt(signed['sigonly_verification_cpu_ms'], 3)} | "
        f"{_fmt(signed['verification_in_rsa_refs'])} |",
        f"| headline authentication (UsernameToken, warm cache) | {_fmt(signed['headline_authentication_cpu_ms'], 3)} "
        f"| {_fmt(signed['headline_authentication_cpu_ms'] / rsa)} |",
        f"| **verification beyond the headline's authentication** (target ≤ {signed['target_in_rsa_refs']:g}) | "
        f"{_fmt(signed['sigonly_verification_cpu_ms'] - signed['headline_authentication_cpu_ms'], 3)} | "
        f"**{_fmt(signed['verification_beyond_headline_authentication_in_rsa_refs'])}** "
        f"({'met' if signed['target_met'] else 'missed'}) |",
        "",
    ]


def misses(results: dict[str, Any]) -> list[str]:
    """The missed targets next to the largest costs the profile names, so every miss comes with its evidence."""
    missed = [t for t in results["targets"] if t["met"] is False]
    shares = results["cost_shares"]
    if not missed:
        return ["## Misses", "", "None: every target was met.", ""]
    out = ["## Misses and what the profile says", ""]
    out += [f"- {t['target']}: {_target_value(t)}" for t in missed]
    if shares:
        rows = [r for r in shares["rows"] if not r["cost"].startswith("remainder")][:5]
        stages = list(shares["stages_ms_per_request"].items())[:5]
        head = shares["headline_cpu_ms_per_request"]
        out += ["", "Largest fixed costs of the headline token: " + "; ".join(
            f"{r['cost']} {r['ms']:.3f} ms ({r['share']:.0%})" for r in rows) + ".",
                "", "Largest in-process stages: " + "; ".join(
            f"{name} {ms:.3f} ms ({ms / head:.0%})" for name, ms in stages) + "."]
    scen = results["scenarios"]
    scale = scen.get("saml20_rps_10k", {})
    if scale.get("cpu_ms_per_request") and any(t["id"] == "scale_rps" for t in missed):
        out += ["", f"With 10,000 RPs a token costs {scale['cpu_ms_per_request']:.1f} ms of CPU against "
                f"{scen['saml20_signed_encrypted']['cpu_ms_per_request']:.2f} ms with 10: compare the stage "
                "'RP directory refresh check' above, whose cost grows with the number of RPs."]
    claims = scen.get("saml20_claims_50", {})
    if claims.get("cpu_ms_per_request") and any(t["id"] == "per_claim" for t in missed):
        out += ["", f"50 claims cost {claims['cpu_ms_per_request']:.2f} ms against "
                f"{scen['saml20_signed_encrypted']['cpu_ms_per_request']:.2f} ms for 5: the extra attributes are "
                "built, canonicalized and digested, encrypted, and copied into the token-store record."]
    out += ["", f"Full profile: `{results['profile']['file']}`.", ""]
    return out


def readme_section(results: dict[str, Any], md_path: Path) -> str:
    head = results["headline"]
    lines = [
        "## Performance",
        "",
        f"`make bench` (about {results['runtime_s'] / 60:.0f} minutes; see [bench/README.md](bench/README.md)) "
        "measures server CPU per request against reference endpoints served by the same gunicorn settings in "
        f"the same run. Latest run, [bench/results/{md_path.name}](bench/results/{md_path.name}), on "
        f"{machine_line(results['machine'])}:",
        "",
        f"Headline (SAML 2.0 bearer, signed + encrypted, warm credential cache): "
        f"{_fmt(head['cpu_ratio_to_rsa'])}x the CPU of an RSA-{results['method']['key_size']} signature request, "
        f"{_fmt(head['rps_ratio_to_rsa'])}x its throughput ({_fmt(head['rps'], 0)} tokens/s).",
        "",
        *targets_table(results),
        "",
        *split_line(results),
        *scenarios_table(results),
        "",
    ]
    return "\n".join(lines)


def update_readme(readme: Path, results: dict[str, Any], md_path: Path) -> None:
    """Replace the ``## Performance`` section (up to the next ``## ``), or insert it before ``## Development``."""
    text = readme.read_text()
    section = readme_section(results, md_path)
    pattern = re.compile(r"^## Performance\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    elif "\n## Development" in text:
        text = text.replace("\n## Development", "\n" + section + "\n## Development", 1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text)


def summary(results: dict[str, Any]) -> str:
    head = results["headline"]
    lines = [f"headline: CPU {_fmt(head['cpu_ratio_to_rsa'])}x RSA, throughput {_fmt(head['rps_ratio_to_rsa'])}x "
             f"RSA ({_fmt(head['cpu_ms_per_request'], 3)} ms vs {_fmt(head['rsa_cpu_ms_per_request'], 3)} ms; "
             f"{_fmt(head['rps'], 0)} vs {_fmt(results['scenarios'][RSA]['rps'], 0)} req/s)"]
    for target in results["targets"]:
        mark = "n/a " if target["met"] is None else "ok  " if target["met"] else "MISS"
        lines.append(f"  {mark} {target['target']}: {_target_value(target)}")
    return "\n".join(lines)
