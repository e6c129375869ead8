"""What the suite's schemathesis drivers share: the cases one test function is parametrised over,
and running one operation's generated examples (deterministic, no example database, no deadline).

The drivers differ in what they send a case through and what they check (in process against
Outpost's document or ours, or over HTTP to a server process with three callers), so each passes
its own `send`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import pytest
from _pytest.mark import ParameterSet
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode


def cases(
    routes: Iterable[tuple[str, str]],
    examples: Mapping[GenerationMode, int],
    no_input: Collection[tuple[str, str]] = (),
) -> list[ParameterSet]:
    """(method, path, mode) for every route and generation mode; the operations in `no_input`
    take nothing a client could make invalid, so they get no negative mode."""
    return [
        pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
        for method, path in routes
        for mode in examples
        if not ((method, path) in no_input and mode == GenerationMode.NEGATIVE)
    ]


def run_examples(
    schema: Any,
    method: str,
    path: str,
    mode: GenerationMode,
    *,
    max_examples: int,
    pinned: Mapping[str, str],
    send: Callable[[Any], None],
    shrink: bool = True,
) -> None:
    """Generate `max_examples` cases of one operation and give each to `send`. Path parameters
    named in `pinned` keep their pinned values, so that cases reach the handlers."""
    operation = schema[path][method.lower()]
    fixed = {k: v for k, v in pinned.items() if "{" + k + "}" in path}
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]

    @given(case=strategy)
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        send(case)

    run()
