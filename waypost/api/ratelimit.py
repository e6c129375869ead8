"""The optional API rate limit (`API_RATE_LIMIT`, off by default), per caller.

A caller is the admin key, or one tenant (all JWTs of a tenant share its budget). Windows are
fixed (`API_RATE_LIMIT_WINDOW_SECONDS`): the n-th request of a caller in a window is allowed
while n ≤ the limit. Every response of a limited route says where the caller stands, as
Outpost's managed API does: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`
(Unix seconds at which the window ends); over the limit the answer is 429 with `Retry-After`.

Counting is a `HitCounter`: in memory for the embedded server (one process), in PostgreSQL when
several API processes share one database (`storage/postgres/ratelimit.py`), so that they share
the budget. Requests that carry no valid credentials are not counted (they get their 401), and a
counter that fails lets the request through: the limit must not add a way to be down.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from waypost.api.auth import Authenticator, Unauthorized
from waypost.api.responses import error

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


class HitCounter(Protocol):
    async def hit(self, key: str, window_start: int, window_seconds: int) -> int:
        """Count one request of `key` in the window starting at `window_start`; the new total."""
        ...

    async def close(self) -> None: ...


class MemoryHitCounter:
    """One process's counts; windows that have ended are dropped as new ones begin."""

    def __init__(self) -> None:
        self._window = -1
        self._hits: dict[str, int] = {}

    async def hit(self, key: str, window_start: int, window_seconds: int) -> int:
        if window_start != self._window:
            self._window, self._hits = window_start, {}
        total = self._hits.get(key, 0) + 1
        self._hits[key] = total
        return total

    async def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix seconds: end of the window
    retry_after: int  # seconds until then, at least 1

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    def __init__(
        self,
        counter: HitCounter,
        limit: int,
        window_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counter = counter
        self.limit = limit
        self.window = window_seconds
        self._clock = clock

    async def check(self, key: str) -> Verdict:
        now = self._clock()
        start = int(now // self.window) * self.window
        hits = await self._counter.hit(key, start, self.window)
        reset = start + self.window
        return Verdict(
            allowed=hits <= self.limit,
            limit=self.limit,
            remaining=max(0, self.limit - hits),
            reset=reset,
            retry_after=max(1, math.ceil(reset - now)),
        )

    async def close(self) -> None:
        await self._counter.close()


def caller_key(authorization: str | None, auth: Authenticator) -> str | None:
    """Whose budget a request spends: `admin`, `tenant:<id>`, or None (no valid credentials)."""
    try:
        caller = auth.caller(authorization)
    except Unauthorized:
        return None
    return "admin" if caller.admin else f"tenant:{caller.tenant_id}"


def rate_limited(limiter: RateLimiter, auth: Authenticator, endpoint: Endpoint) -> Endpoint:
    """`endpoint` counted against its caller's budget, with the X-RateLimit-* headers."""

    async def run(request: Request) -> Response:
        key = caller_key(request.headers.get("authorization"), auth)
        if key is None:
            return await endpoint(request)
        try:
            verdict = await limiter.check(key)
        except Exception:
            log.warning("rate limit counter failed; request let through", exc_info=True)
            return await endpoint(request)
        if not verdict.allowed:
            headers = verdict.headers() | {"Retry-After": str(verdict.retry_after)}
            return error(429, "too many requests", headers=headers)
        response = await endpoint(request)
        response.headers.update(verdict.headers())
        return response

    return run
