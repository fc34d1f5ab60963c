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


def met(target: dict[str, Any]) -> str:
    """A target's verdict: met, **missed**, or n/a when the run could not measure it."""
    if target["met"] is None:
        return "n/a"
    text = "met" if target["met"] else "**missed**"
    if target.get("moonshot") is not None and target["moonshot_met"]:
        text += " (moonshot met)"
    return text


def target_value(target: dict[str, Any]) -> str:
    """A target's measured value with its unit (fractions as signed percentages)."""
    value, unit = target["value"], target["unit"]
    if value is None:
        return "n/a"
    if unit == "fraction":
        return f"{value:+.1%}"
    return f"{value:.3g} {unit}".strip()
