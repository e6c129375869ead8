"""The packaging tests' receiver, and their measured times and sizes in the summary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.receiver import Receiver

# Filled by test_wheel.py's fixtures; printed at the end of the run.
TIMINGS: dict[str, float] = {}
SIZES: dict[str, int] = {}


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS or SIZES:
        times = ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items())
        sizes = ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in SIZES.items())
        terminalreporter.write_line(f"package: {times}; {sizes}")
