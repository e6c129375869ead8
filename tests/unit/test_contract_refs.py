"""Every `§` the code, the tests and the docs cite names a section of docs/contract.md.

The contract is the project's own document; a reference that resolves nowhere (a renumbered
section, a typo, a number from someone else's document) fails here, naming where it is.
Sections of other specifications are cited with their name before the sign (`RFC 9110 §…`,
`AMQP 0-9-1 §…`) and are not ours to resolve.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
HEADING = re.compile(r"^#{1,6}\s+(?P<number>\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
REFERENCE = re.compile(r"(?P<spec>(?:RFC\s+\d+|AMQP\s+[\d-]+)\s+)?§\s?(?P<number>\d+(?:\.\d+)*)")


def _sections() -> list[str]:
    return [m["number"] for m in HEADING.finditer(CONTRACT.read_text())]


def _citing_files() -> list[Path]:
    files = [*sorted((ROOT / "waypost").rglob("*.py")), *sorted((ROOT / "tests").rglob("*.py"))]
    files += [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    return files


def _references() -> list[tuple[str, str]]:
    """(file:line, number) of each contract reference."""
    found = []
    for path in _citing_files():
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            for match in REFERENCE.finditer(line):
                if match["spec"] is None:
                    found.append((f"{path.relative_to(ROOT)}:{lineno}", match["number"]))
    return found


def test_every_cited_section_is_a_heading_of_the_contract() -> None:
    sections = set(_sections())
    missing = [f"{where}: §{number}" for where, number in _references() if number not in sections]
    assert not missing, "not a section of docs/contract.md:\n" + "\n".join(missing)


def test_the_contract_numbers_each_section_once() -> None:
    twice = [number for number, count in Counter(_sections()).items() if count > 1]
    assert not twice, f"docs/contract.md numbers these sections twice: {twice}"


def test_references_are_found() -> None:
    """The scan sees the code's citations (a broken pattern would make the first test vacuous),
    and leaves other specifications' sections alone."""
    numbers = {number for _, number in _references()}
    assert {"1.6.19", "4.3", "0.1"} <= numbers
    assert [m["number"] for m in REFERENCE.finditer("RFC 9110 §10.2.3")] == ["10.2.3"]
    assert REFERENCE.search("RFC 9110 §10.2.3")["spec"] is not None  # type: ignore[index]
