"""The container image's tests: a receiver, and the measured times and sizes in the summary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import container
from support.receiver import Receiver


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if container.TIMINGS.seconds or container.SIZES:
        sizes = ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in container.SIZES.items())
        terminalreporter.write_line(f"container: {container.TIMINGS.report()}; {sizes}")
