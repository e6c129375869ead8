"""What the group commits of both databases share: answering each caller once its commit ends."""

from __future__ import annotations

import asyncio
from typing import Any

# A caller's future, with its write's result or error (None: it succeeded).
Answer = tuple[asyncio.Future[Any], Any, BaseException | None]


def settle(answers: list[Answer]) -> None:
    """Resolve each future with its result or error; skip one already done (its caller stopped
    waiting: cancelled, or timed out)."""
    for future, result, error in answers:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
