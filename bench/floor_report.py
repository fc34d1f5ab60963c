"""The floor (bench/floor.py) in the targets' units: how low a served token could go with the product's libraries.

bench/floor.py measures, in one process, the product's headline request and a minimal framework-free pipeline
with the same signxml and python-xmlsec calls. A served request costs the HTTP front end (the run's /static
reference) plus its application work, and the run measured the served headline: the floor's served estimate
keeps the HTTP part and scales the rest by the in-process floor-to-headline ratio::

    floor x RSA = static x RSA + (floor ms / headline ms, in-process) * (headline x RSA - static x RSA)

The same for signed only (the floor without its encryption) and for the work outside the signxml ``sign`` and
xmlsec ``encrypt_xml`` calls; :func:`estimates` says how throughput and the cache-disabled target follow. The
floor leaves checks out (bench/floor.py says which), so these are lower bounds: a target below its floor cannot be
met by removing product overhead, only by doing less than a token needs or with other libraries.
"""

from __future__ import annotations

from typing import Any

from scenarios import RSA, STATIC

# target id in results["targets"] -> the floor's in-process ms for it, from the floor's measurement
_PARTS = {
    "headline_cpu": lambda f: f["floor_cpu_ms_per_token"],
    "signed_only_cpu": lambda f: f["floor_cpu_ms_per_token"] - f["floor_encryption_ms"],  # without encryption
    "outside_libraries_cpu": lambda f: (f["floor_cpu_ms_per_token"] - f["floor_sign_call_ms"]
                                        - f["floor_encrypt_xml_call_ms"]),
}


def estimates(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target the floor speaks to: its limit, the product's value and the floor's estimate.

    Besides the CPU ratios: headline throughput, which follows the CPU per token on the cores wrk shares (the
    floor's is the headline's scaled by headline CPU / floor CPU), and the credential cache disabled, whose limit is
    one password verify plus 2.0x (the floor's is that verify plus the floor's headline)."""
    floor = results.get("floor_inprocess")
    scenarios = results["scenarios"]
    targets = {t["id"]: t for t in results["targets"]}
    if not floor or STATIC not in scenarios or RSA not in scenarios or "headline_cpu" not in targets:
        return []
    static_x = scenarios[STATIC]["cpu_ms_per_request"] / scenarios[RSA]["cpu_ms_per_request"]
    headline_x = results["headline"]["cpu_ratio_to_rsa"]
    values = {target_id: static_x + part(floor) / floor["headline_cpu_ms_per_token"] * (headline_x - static_x)
              for target_id, part in _PARTS.items()}
    if "headline_rps" in targets:
        values["headline_rps"] = results["headline"]["rps_ratio_to_rsa"] * headline_x / values["headline_cpu"]
    if targets.get("cache_disabled_cpu", {}).get("limit"):
        values["cache_disabled_cpu"] = targets["cache_disabled_cpu"]["limit"] - 2.0 + values["headline_cpu"]
    rows = []
    for target_id, value in values.items():
        if target_id not in targets:
            continue
        target = targets[target_id]
        meets = value >= target["limit"] if target_id == "headline_rps" else value <= target["limit"]
        rows.append({"id": target_id, "target": target["target"], "limit": target["limit"],
                     "product": target["value"], "floor": round(value, 2), "floor_meets": meets})
    return rows


def section(results: dict[str, Any], level: str = "##") -> list[str]:
    """Markdown: the floor's measurement and its estimates next to the targets."""
    floor, rows = results.get("floor_inprocess"), estimates(results)
    if not floor or not rows:
        return []
    share = floor["floor_cpu_ms_per_token"] / floor["headline_cpu_ms_per_token"]
    return [
        f"{level} The floor: a minimal pipeline with the same libraries",
        "",
        f"In one process, {floor['requests']} requests each in alternating blocks: the product's headline request "
        f"{floor['headline_cpu_ms_per_token']:.3f} ms, a minimal framework-free pipeline doing the least a token "
        f"needs with the same signxml and python-xmlsec calls (bench/floor.py) {floor['floor_cpu_ms_per_token']:.3f}"
        f" ms ({share:.0%} of the product's): its signxml sign call {floor['floor_sign_call_ms']:.3f} ms, its "
        f"encryption {floor['floor_encryption_ms']:.3f} ms (encrypt_xml {floor['floor_encrypt_xml_call_ms']:.3f} "
        f"ms). RSA reference in-process: {floor['rsa_reference_cpu_ms']:.3f} ms. Served estimates keep this "
        "run's HTTP cost (the /static reference) and scale the rest by the in-process ratio; the floor leaves "
        "checks out, so they are lower bounds (for throughput, an upper bound).",
        "",
        "| target | product | floor (estimate) | can the floor meet it? |",
        "|---|---|---|---|",
        *(f"| {row['target']} | {row['product']:.2f} x RSA | {row['floor']:.2f} x RSA | "
          f"{'yes' if row['floor_meets'] else '**no**'} |" for row in rows),
        "",
    ]
