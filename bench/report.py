"""Markdown for bench/results/<timestamp>.md, the console summary and README's Performance section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import compare
import floor_report
from formatting import fmt as _fmt
from formatting import met as _met
from formatting import target_value as _target_value
from formatting import within_noise
from scenarios import HEADLINE, RSA


def machine_line(machine: dict[str, Any]) -> str:
    return (f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, {machine['os']}, "
            f"kernel {machine['kernel']}, Python {machine['python']}, {machine['wrk']}, "
            f"load average at start {', '.join(str(x) for x in machine['load_average_at_start'])}"
            + (f", at end {', '.join(str(x) for x in machine['load_average_at_end'])}"
               if machine.get("load_average_at_end") else ""))


def code_words(results: dict[str, Any]) -> str:
    """`` of commit <hash>`` (and its uncommitted changes) for a run that recorded its code; empty for older runs."""
    code = results.get("code") or {}
    if not code.get("commit"):
        return ""
    changed = code.get("changed_files") or []
    dirty = f" with uncommitted changes ({', '.join(changed)})" if code.get("uncommitted_changes") else ""
    return f" of commit `{code['commit'][:12]}`{dirty}"


def targets_table(results: dict[str, Any], previous: dict[str, Any] | None = None) -> list[str]:
    """Every target with its value and verdict; with ``previous``, that run's value for the same target id."""
    if previous:
        lines = ["| target | previous | value | result |", "|---|---|---|---|"]
    else:
        lines = ["| target | value | result |", "|---|---|---|"]
    for target in results["targets"]:
        limit = target["limit"]
        text = target["target"]
        if target["id"] == "cache_disabled_cpu":
            text += f": limit {limit:.2f}x RSA"
        was = f" {compare.previous_target(previous, target['id'])} |" if previous else ""
        lines.append(f"| {text} |{was} {_target_value(target)} | {_met(target)} |")
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
        f"headline under load.{_load_words(split)}",
        "",
    ]


def _load_words(split: dict[str, Any]) -> str:
    """How much more the headline cost under load than the in-process run saw: that part of the two calls counts
    as outside them (runs before this was recorded print nothing)."""
    if not split.get("in_process_ms") or split.get("static_ms") is None:
        return ""
    served = split["headline_ms"] - split["static_ms"]
    return (f" Beyond HTTP (the /static reference, {split['static_ms']:.3f} ms) the headline cost {served:.3f} ms "
            f"under load against {split['in_process_ms']:.3f} ms in-process ({served / split['in_process_ms'] - 1:+.0%}"
            "); what load adds to the two calls is counted outside them.")


def scenarios_table(results: dict[str, Any], previous: dict[str, Any] | None = None) -> list[str]:
    """One row per scenario; with ``previous``, that run's CPU x RSA and req/s x RSA left of the new ones (``new``
    for a scenario it did not run)."""
    cpu_was, rps_was = (" previous CPU x RSA |", " previous req/s x RSA |") if previous else ("", "")
    lines = [f"| scenario | CPU ms/req |{cpu_was} CPU x RSA (range) | req/s |{rps_was} req/s x RSA | p50 ms | p99 ms "
             "| RSS MiB | errors | rounds | wrk CPU ms/req |", "|---" * (13 if previous else 11) + "|"]
    for name, s in results["scenarios"].items():
        span = s["cpu_ratio_range"]
        ratio = f"{_fmt(s['cpu_ratio_to_rsa'])} ({_fmt(span[0])}-{_fmt(span[1])})" if span else "n/a"
        label = f"**{name}**" if name == HEADLINE else name
        if previous:
            cpu, rps = compare.previous_ratios(previous, name)
            cpu_was, rps_was = f" {cpu} |", f" {rps} |"
        lines.append(f"| {label} | {_fmt(s['cpu_ms_per_request'], 3)} |{cpu_was} {ratio} | {_fmt(s['rps'], 0)} |"
                     f"{rps_was} {_fmt(s['rps_ratio_to_rsa'])} | {_fmt(s['p50_ms'], 1)} | {_fmt(s['p99_ms'], 1)} | "
                     f"{_fmt(s['rss_mib'], 1)} | {s['errors']} | {s['rounds']} ({s['block']}) | "
                     f"{_fmt(s.get('wrk_cpu_ms_per_request'), 3)} |")
        baseline = results.get("secondary_headline")
        if name == HEADLINE and baseline:  # the row the secondary scenarios compare with
            if previous:
                was = previous.get("secondary_headline")
                cpu_was, rps_was = ((f" {_fmt(was['cpu_ratio_to_rsa'])} |", f" {_fmt(was['rps_ratio_to_rsa'])} |")
                                    if was else (f" {compare.NONE} |", f" {compare.NONE} |"))
            span = baseline["cpu_ratio_range"]
            ratio = f"{_fmt(baseline['cpu_ratio_to_rsa'])} ({_fmt(span[0])}-{_fmt(span[1])})" if span else "n/a"
            lines.append(
                f"| {SECONDARY_HEADLINE_LABEL} | {_fmt(baseline['cpu_ms_per_request'], 3)} |{cpu_was} {ratio} | "
                f"{_fmt(baseline['rps'], 0)} |{rps_was} {_fmt(baseline['rps_ratio_to_rsa'])} | "
                f"{_fmt(baseline['p50_ms'], 1)} | {_fmt(baseline['p99_ms'], 1)} | n/a | {baseline['errors']} | "
                f"{baseline['rounds']} (secondary) | {_fmt(baseline.get('wrk_cpu_ms_per_request'), 3)} |")
    if results.get("secondary_headline"):
        lines += ["", f"The secondary scenarios ran in the secondary rounds, with those rounds' RSA reference: "
                  f"compare them with *{HEADLINE}, secondary rounds*, not with the headline of the primary rounds."]
    return lines + paired_rows_note(results)


def paired_rows_note(results: dict[str, Any]) -> list[str]:
    """How the rows of paired scenarios were measured (runs before paired slices have none)."""
    if not any(s.get("block") == "paired" for s in results["scenarios"].values()):
        return []
    return ["", "The *paired* scenarios ran between headline slices instead (rounds: their pairs): their CPU and req/s "
            "x RSA are the medians of their ratios to the neighbouring headline slices times the headline's x RSA "
            "above (range: the lowest and highest pair), and the targets comparing them with the headline are "
            "judged on those pairs (bench/README.md, *Paired slices*)."]


def paired_section(results: dict[str, Any]) -> list[str]:
    """Each paired scenario's CPU per request against its neighbouring headline slices, pair by pair."""
    found = results.get("paired") or {}
    ratios = found.get("cpu_ratio_to_headline") or {}
    if not ratios:
        return []
    lines = [
        "## Paired with the headline",
        "",
        f"{found['rounds']} paired rounds of {found['slice_s']:g} s slices: headline, scenario, headline, ... on the "
        "servers of the scenarios table; each scenario slice's CPU per request over the mean of the two headline "
        "slices next to it. The headline's own slices in the chain varied "
        f"{found['headline_cpu_drift']:.0%} ((max - min) / median): the drift the pairs cancel.",
        "",
        "| scenario | pairs | CPU x headline, median | lowest | highest | per pair, in measuring order |",
        "|---|---|---|---|---|---|",
    ]
    for name, spread in ratios.items():
        values = ", ".join(f"{v:.3f}" for v in spread["values"])
        lines.append(f"| {name} | {spread['n']} | {spread['median']:.3f} | {spread['min']:.3f} | "
                     f"{spread['max']:.3f} | {values} |")
    return [*lines, ""]


def secondary_spread(noise: dict[str, Any]) -> str:
    """The RSA reference's spread between the secondary rounds (never repeated), for runs that recorded it."""
    spread = noise.get("secondary")
    if not spread:
        return ""
    return f" Secondary rounds (never repeated): CPU {spread['cpu']:.0%}, req/s {spread['rps']:.0%}."


SECONDARY_HEADLINE_LABEL = f"*{HEADLINE}, secondary rounds*"


def paired_words(rounds: dict[str, Any]) -> str:
    """The paired rounds in the method sentence; empty for runs before them."""
    found = rounds.get("paired")
    if not found or not found.get("rounds"):
        return ""
    return (f", {found['rounds']} paired rounds of {found['slice_s']:g} s slices (headline, scenario, headline, ... "
            f"for the scenarios a target compares with the headline: {', '.join(found['scenarios'])})")


def markdown(results: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """bench/results/<timestamp>.md; with ``previous`` (an earlier run's results), the comparison with it."""
    head, machine, method = results["headline"], results["machine"], results["method"]
    rounds = method["rounds"]
    noise = results["noise"]
    out = [
        f"# STS benchmark {results['timestamp']}",
        "",
        f"Machine: {machine_line(machine)}.",
        *([f"Code: the run{code_words(results)}, `sts` imported from {results['code']['sts']}.", ""]
          if code_words(results) else []),
        "",
        f"Method: {method['transport']}. {method['gunicorn']}. {rounds['primary']['rounds']} primary rounds of "
        f"{rounds['primary']['slice_s']:g} s slices ({', '.join(rounds['primary']['scenarios'])}), "
        f"{rounds['secondary']['rounds']} secondary rounds of {rounds['secondary']['slice_s']:g} s slices (the "
        "remaining scenarios, each round with its own RSA reference and headline)"
        f"{paired_words(rounds)}; order rotated every round; "
        f"{method['connections']} connections; RSA-{method['key_size']} for the STS, RP and reference keys. "
        f"CPU: {method['cpu']}. Ratios are per round, then the median over rounds. Total run time "
        f"{results['runtime_s']:.0f} s.",
        "",
        "RSA reference spread between primary rounds ((max - min) / median): " + "; ".join(
            f"{'kept: ' if a.get('kept') else 'discarded: '}CPU {a['cpu']:.0%}, req/s {a['rps']:.0%}"
            for a in noise["attempts"]) + f" (limit {noise['limit']:.0%} on CPU; repeated: {noise['repeated']}; "
        f"noisy: {noise['noisy']})." + secondary_spread(noise),
        "",
        "## Headline",
        "",
        f"SAML 2.0 bearer, signed + encrypted, warm credential cache: **{_fmt(head['cpu_ratio_to_rsa'])}x** the "
        f"CPU of one RSA signature request ({_fmt(head['cpu_ms_per_request'], 3)} ms vs "
        f"{_fmt(head['rsa_cpu_ms_per_request'], 3)} ms), **{_fmt(head['rps_ratio_to_rsa'])}x** its throughput "
        f"({_fmt(head['rps'], 0)} vs {_fmt(head['rsa_rps'], 0)} req/s).{previous_headline(previous)}",
        "",
        *previous_line(previous, ""),
        *targets_table(results, previous),
        "",
        *split_line(results),
        "## Scenarios",
        "",
        "CPU = server CPU time per request (master + workers); p50/p99 at "
        f"{method['connections']} connections (closed loop, so they include queueing behind the 2 "
        "workers); RSS = largest worker after the scenario's slices.",
        "",
        *scenarios_table(results, previous),
        "",
        *paired_section(results),
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
    out += compare.misses(results, previous)
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
    if previous:
        out += compare.costs_before_after(results, previous)
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
    out += floor_report.section(results)
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


def previous_headline(previous: dict[str, Any] | None) -> str:
    """The previous run's headline ratios, as a sentence to follow the new ones."""
    if not previous:
        return ""
    head = previous["headline"]
    return (f" Previous run: {_fmt(head['cpu_ratio_to_rsa'])}x the CPU, {_fmt(head['rps_ratio_to_rsa'])}x the "
            "throughput.")


def previous_line(previous: dict[str, Any] | None, results_dir: str) -> list[str]:
    """Which earlier run the "previous" columns come from, linked (``results_dir`` is the link's directory)."""
    if not previous:
        return []
    name = f"{previous['timestamp']}.md"
    return [f"The \"previous\" columns are the run [{results_dir}{name}]({results_dir}{name}), on "
            f"{machine_line(previous['machine'])}.", ""]


def readme_section(results: dict[str, Any], md_path: Path, previous: dict[str, Any] | None = None) -> str:
    """README's ``## Performance`` section; with ``previous``, the comparison with that run and the misses."""
    head = results["headline"]
    lines = [
        "## Performance",
        "",
        f"`make bench` (about {results['runtime_s'] / 60:.0f} minutes; see [bench/README.md](bench/README.md)) "
        "measures server CPU per request against reference endpoints served by the same gunicorn settings in "
        f"the same run. Latest run, [bench/results/{md_path.name}](bench/results/{md_path.name})"
        f"{code_words(results)}, on "
        f"{machine_line(results['machine'])}:",
        "",
        f"Headline (SAML 2.0 bearer, signed + encrypted, warm credential cache): "
        f"{_fmt(head['cpu_ratio_to_rsa'])}x the CPU of an RSA-{results['method']['key_size']} signature request, "
        f"{_fmt(head['rps_ratio_to_rsa'])}x its throughput ({_fmt(head['rps'], 0)} tokens/s)."
        f"{previous_headline(previous)}",
        "",
        *previous_line(previous, "bench/results/"),
        *targets_table(results, previous),
        "",
        *split_line(results),
        *scenarios_table(results, previous),
        "",
    ]
    if previous:
        lines += compare.costs_before_after(results, previous, level="###")
        lines += compare.misses(results, previous, level="###", results_dir="bench/results/")
    lines += floor_report.section(results, level="###")
    return "\n".join(lines)


def update_readme(readme: Path, results: dict[str, Any], md_path: Path,
                  previous: dict[str, Any] | None = None) -> None:
    """Replace the ``## Performance`` section (up to the next ``## ``), or insert it before ``## Development``."""
    text = readme.read_text()
    section = readme_section(results, md_path, previous)
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
        mark = ("noise" if within_noise(target) else "n/a  " if target["met"] is None
                else "ok   " if target["met"] else "MISS ")
        lines.append(f"  {mark} {target['target']}: {_target_value(target)}")
    lines += [f"  floor {row['target']}: {'at most' if row['id'] == 'headline_rps' else 'at least'} "
              f"{row['floor']:.2f} x RSA with the same libraries"
              for row in floor_report.estimates(results)]
    return "\n".join(lines)
