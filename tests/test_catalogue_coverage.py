"""Every row of the security catalogue is a test (mentioning its row id) or listed, with a reason, in
tests/vectors/invalid/README.md. A new row in the catalogue must be added here and covered."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
README = TESTS / "vectors" / "invalid" / "README.md"
GROUPS = {"T": 12, "X": 23, "S": 14, "W": 29, "G": 20, "V": 14, "A": 13, "I": 20, "E": 6, "J": 7, "O": 12}
ROWS = [f"{group}{number:02d}" for group, count in GROUPS.items() for number in range(1, count + 1)]


def _mentioned(row: str, text: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){row}(?![0-9])", text, re.IGNORECASE) is not None


def test_every_catalogue_row_is_covered_or_explained() -> None:
    sources = [
        path.read_text(errors="replace")
        for path in TESTS.rglob("*")
        if path.is_file() and path.suffix in (".py", ".xml") and path.name != Path(__file__).name
    ]
    listed = README.read_text().split("## Where the other catalogue rows are tested", 1)[1]
    covered = {row for row in ROWS if any(_mentioned(row, text) for text in sources) or _mentioned(row, listed)}
    missing = [row for row in ROWS if row not in covered]
    assert missing == []
    assert len(ROWS) == 170
