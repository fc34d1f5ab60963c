"""Number formats shared by the results file, README's Performance section and the comparison with a previous run."""

from __future__ import annotations

from typing import Any


def fmt(value: Any, digits: int = 2) -> str:
    """A float to ``digits`` decimals; None (not measured) as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


WITHIN_NOISE = "within noise"  # bench/paired.py's verdict when a target's pairs fall on both sides of its limit


def met(target: dict[str, Any]) -> str:
    """A target's verdict: met, **missed**, within noise (pairs on both sides of the limit, or too few of them; the
    median's side follows), or n/a when the run could not measure it."""
    if target.get("verdict") == WITHIN_NOISE:
        return f"{WITHIN_NOISE} ({_noise_words(target)})"
    if target["met"] is None:
        return "n/a"
    text = "met" if target["met"] else "**missed**"
    if target.get("moonshot") is not None and target["moonshot_met"]:
        text += " (moonshot met)"
    return text


def _noise_words(target: dict[str, Any]) -> str:
    """Why a paired target is within noise, when it is too few pairs, and the side of the limit its median is on."""
    count = target["pairs"]["n"]
    side = f"median {'within' if target.get('median_met') else 'beyond'} the limit"
    if count >= target.get("min_pairs", 0):
        return side
    return f"{'one pair' if count == 1 else f'{count} pairs'}, too few to tell; {side}"


def within_noise(target: dict[str, Any]) -> bool:
    """Whether a paired target's pairs fell on both sides of its limit (older results files have no verdict)."""
    return target.get("verdict") == WITHIN_NOISE


def _number(value: float, unit: str) -> str:
    if unit == "fraction":
        return f"{value:+.1%}"
    return f"{value:.3g}"


def target_value(target: dict[str, Any]) -> str:
    """A target's measured value with its unit (fractions as signed percentages); for a target judged on pairs,
    the median with the lowest and highest pair."""
    value, unit = target["value"], target["unit"]
    if value is None:
        return "n/a"
    text = _number(value, unit) if unit == "fraction" else f"{value:.3g} {unit}".strip()
    pairs = target.get("pairs")
    if pairs and pairs["n"] > 1:
        text += f" (median of {pairs['n']} pairs; range {_number(pairs['min'], unit)} to {_number(pairs['max'], unit)})"
    elif pairs:
        text += " (one pair)"
    return text
