"""bench/ reports: a run next to a previous one (``bench/run.py --previous``), from the results files in git.

The benchmark itself is not run here (``make bench`` takes minutes on an idle machine); these tests read the saved
runs of bench/results/ and check the Markdown the comparison produces: tables with one column count, the previous
run's values where it had them, and README's hand-written section kept.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))  # bench's modules import each other by bare name, as bench/run.py does

import compare  # noqa: E402
import report  # noqa: E402

NEW, OLD = "20261206T094448Z", "20261126T212159Z"
README = """# STS

## Performance

old generated text

## Performance: reading the misses

hand-written prose

## Development

make test
"""


def _load(stamp: str) -> dict[str, Any]:
    return dict(json.loads((BENCH / "results" / f"{stamp}.json").read_text()))


@pytest.fixture
def new() -> dict[str, Any]:
    return _load(NEW)


@pytest.fixture
def old() -> dict[str, Any]:
    return _load(OLD)


def tables(markdown: str) -> list[list[str]]:
    """Every Markdown table (a run of lines starting with '|')."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def cells(row: str) -> list[str]:
    assert row.startswith("|") and row.endswith("|"), row
    return [cell.strip() for cell in row[1:-1].split("|")]


def assert_valid_tables(markdown: str) -> int:
    """Each table: a header, a |---| separator of the same width, rows of the same width. Returns the count."""
    found = tables(markdown)
    for table in found:
        width = len(cells(table[0]))
        assert cells(table[1]) == ["---"] * width, table[:2]
        assert all(len(cells(row)) == width for row in table), table
    return len(found)


def row_of(markdown: str, first_cell: str) -> list[str]:
    rows = [cells(line) for table in tables(markdown) for line in table if cells(line)[0] == first_cell]
    assert len(rows) == 1, (first_cell, rows)
    return rows[0]


def test_readme_section_with_previous_has_valid_tables(new: dict[str, Any], old: dict[str, Any]) -> None:
    section = report.readme_section(new, BENCH / "results" / f"{NEW}.md", old)
    # targets, scenarios, fixed costs, stages
    assert assert_valid_tables(section) == 4
    assert "### Fixed costs of the headline, before and after" in section
    assert "### Misses and what the profile says" in section
    assert f"[bench/results/{OLD}.md](bench/results/{OLD}.md)" in section


def test_targets_table_shows_the_previous_value_or_a_dash(new: dict[str, Any], old: dict[str, Any]) -> None:
    table = "\n".join(report.targets_table(new, old))
    assert cells(table.splitlines()[0]) == ["target", "previous", "value", "result"]
    assert row_of(table, "headline CPU per token <= 2.5x RSA (moonshot 2.0x)")[1:] == [
        "5.69 x RSA", "5.51 x RSA", "**missed**"]
    # The previous run had no target for the CPU outside the two library calls.
    outside = row_of(table, "headline CPU outside the signxml sign and xmlsec encrypt_xml calls <= 0.8x RSA")
    assert outside[1] == compare.NONE


def test_scenarios_table_marks_new_scenarios_and_leaves_out_dropped_ones(
        new: dict[str, Any], old: dict[str, Any]) -> None:
    old = copy.deepcopy(old)
    old["scenarios"]["saml20_dropped_since"] = copy.deepcopy(old["scenarios"]["saml20_soap12"])
    table = "\n".join(report.scenarios_table(new, old))
    assert_valid_tables(table)
    header = cells(table.splitlines()[0])
    head = row_of(table, "**saml20_signed_encrypted**")
    assert head[header.index("previous CPU x RSA")] == "5.69"
    assert head[header.index("CPU x RSA (range)")] == "5.51 (5.01-7.36)"
    assert head[header.index("previous req/s x RSA")] == "0.18"
    metrics_off = row_of(table, "saml20_metrics_off")
    assert (metrics_off[header.index("previous CPU x RSA")], metrics_off[header.index("previous req/s x RSA")]) == (
        "new", "new")
    assert "saml20_dropped_since" not in table


def test_without_previous_the_tables_keep_their_columns(new: dict[str, Any]) -> None:
    text = report.markdown(new)
    assert_valid_tables(text)
    assert "| target | value | result |" in text
    assert "previous" not in text
    assert "before and after" not in text


def test_costs_are_matched_across_renames_and_splits() -> None:
    before = {"signing (signxml)": 0.8, "encryption (xmlsec)": 0.5, "token store (digest + insert)": 0.2,
              "replay store write": 0.06}
    after = {"signing (the sign call)": 0.6, "token store (insert)": 0.1, "encryption (the encrypt_xml call)": 0.18,
             "encryption around encrypt_xml (template)": 0.08, "token store (digest)": 0.04, "metrics": 0.01}
    rows = {row.label: row for row in compare.match_costs(before, after)}
    assert list(rows) == ["signing (the sign call)", "token store (insert) + token store (digest)",
                          "encryption (the encrypt_xml call) + encryption around encrypt_xml (template)",
                          "metrics", "replay store write"]
    assert rows["signing (the sign call)"].was == "signing (signxml)"
    split = rows["encryption (the encrypt_xml call) + encryption around encrypt_xml (template)"]
    assert (split.before, split.after, split.was) == (0.5, pytest.approx(0.26), "encryption (xmlsec)")
    assert (rows["metrics"].before, rows["metrics"].after) == (None, 0.01)
    assert (rows["replay store write"].before, rows["replay store write"].after) == (0.06, None)


def test_same_names_are_not_marked_as_renamed() -> None:
    rows = compare.match_costs({"Spyne": 0.12, "encryption (x)": 0.5, "encryption around encrypt_xml": 0.1},
                               {"Spyne": 0.11, "encryption (x)": 0.2, "encryption around encrypt_xml": 0.08})
    assert [(row.label, row.was, row.before, row.after) for row in rows] == [
        ("Spyne", "", 0.12, 0.11), ("encryption (x)", "", 0.5, 0.2),
        ("encryption around encrypt_xml", "", 0.1, 0.08)]


def test_costs_before_after_rows_and_total(new: dict[str, Any], old: dict[str, Any]) -> None:
    text = "\n".join(compare.costs_before_after(new, old))
    assert assert_valid_tables(text) == 2
    total = row_of(text, "**headline, server CPU in all**")
    assert total[1:4] == ["3.235", "3.310", "+0.075 (+2%)"]
    encryption = row_of(text, "encryption (the xmlsec encrypt_xml call) + encryption around encrypt_xml "
                              "*(was: encryption)*")
    assert encryption[1:3] == ["0.522", "0.263"]
    # x RSA divides by each run's own RSA reference.
    assert encryption[4:] == [f"{0.5222 / 0.5673:.2f}", f"{0.2626 / 0.6144:.2f}"]


def test_misses_name_each_missed_target_with_its_evidence(new: dict[str, Any], old: dict[str, Any]) -> None:
    text = "\n".join(compare.misses(new, old, level="###"))
    missed = [t for t in new["targets"] if t["met"] is False]
    bullets = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(bullets) == len(missed) == 8
    for target, bullet in zip(missed, bullets, strict=True):
        assert bullet.startswith(f"- {target['target']}: **")
    outside = bullets[[t["id"] for t in missed].index("outside_libraries_cpu")]
    assert "(previous run: —)" in outside
    assert "2.489 ms outside the two calls, where 0.8x RSA allows 0.492 ms" in outside
    assert "signing" not in outside.split("the largest:")[1]  # the library calls are not "outside"


def test_misses_when_every_target_is_met(new: dict[str, Any]) -> None:
    new = copy.deepcopy(new)
    for target in new["targets"]:
        target["met"] = True
    assert compare.misses(new) == ["## Misses", "", "None: every target was met.", ""]


def test_update_readme_replaces_the_generated_section_only(
        tmp_path: Path, new: dict[str, Any], old: dict[str, Any]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    report.update_readme(readme, new, BENCH / "results" / f"{NEW}.md", old)
    once = readme.read_text()
    report.update_readme(readme, new, BENCH / "results" / f"{NEW}.md", old)
    assert readme.read_text() == once
    assert "old generated text" not in once
    assert re.search(r"\n## Performance: reading the misses\n\nhand-written prose\n\n## Development\n", once)
    assert once.count("## Performance\n") == 1


def _run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / "run.py"), *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_run_readme_from_with_previous_rewrites_readme_and_results_md(tmp_path: Path) -> None:
    for stamp in (NEW, OLD):
        shutil.copy(BENCH / "results" / f"{stamp}.json", tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    done = _run_bench("--readme-from", str(tmp_path / f"{NEW}.json"), "--previous", str(tmp_path / f"{OLD}.json"),
                      "--update-readme", str(readme))
    assert done.returncode == 0, done.stderr
    assert "### Fixed costs of the headline, before and after" in readme.read_text()
    results_md = (tmp_path / f"{NEW}.md").read_text()
    assert "## Fixed costs of the headline, before and after" in results_md
    assert f"[{OLD}.md]({OLD}.md)" in results_md
    assert_valid_tables(results_md)


@pytest.mark.parametrize("content", [None, "not json", '{"timestamp": "x"}'])
def test_run_refuses_a_previous_that_is_not_a_results_file(tmp_path: Path, content: str | None) -> None:
    previous = tmp_path / "previous.json"
    if content is not None:
        previous.write_text(content)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    done = _run_bench("--readme-from", str(BENCH / "results" / f"{NEW}.json"), "--previous", str(previous),
                      "--update-readme", str(readme))
    assert done.returncode == 2
    assert "--previous:" in done.stderr
    assert readme.read_text() == README
