"""What /healthz says about each worker: healthy, degraded (impaired but serving) or failed.

A worker that is not healthy is in an *episode*, which the answer dates (`since`) and explains
(`reason`): `startup_failed` when this process has not yet seen it healthy, `recovery_failed`
when it had been and then stopped being (SDK 1.7.0's two reasons).

Degraded, not failed:
- `rabbitmq` unreachable: tasks are then claimed from the database once their hold
  (`RABBITMQ_HOLD_SECONDS`) ends, so deliveries go on, later.
- the delivery side behind: a task has been due for more than `BEHIND_MS` without being claimed
  (its `since` is when that task fell due).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from waypost.core.timefmt import format_ms

Status = Literal["healthy", "degraded", "failed"]
BEHIND_MS = 60_000  # how long a due task may wait for a worker before delivery is "behind"
DEGRADABLE = frozenset({"rabbitmq"})  # dependencies whose loss the database stands in for


@dataclass(slots=True)
class _Episode:
    since: int
    reason: str


class HealthBook:
    """Each worker's current episode; one per process (state across /healthz calls)."""

    def __init__(self) -> None:
        self._seen_healthy: set[str] = set()
        self._episodes: dict[str, _Episode] = {}

    def entry(
        self, name: str, status: Status, now: int, since: int | None = None
    ) -> dict[str, Any]:
        """The worker's JSON; `since`, when known, dates a new episode (else: now)."""
        if status == "healthy":
            self._seen_healthy.add(name)
            self._episodes.pop(name, None)
            return {"status": "healthy"}
        episode = self._episodes.get(name)
        if episode is None:
            reason = "recovery_failed" if name in self._seen_healthy else "startup_failed"
            episode = self._episodes[name] = _Episode(since if since is not None else now, reason)
        return {"status": status, "since": format_ms(episode.since), "reason": episode.reason}


def overall(statuses: list[Status]) -> Status:
    if "failed" in statuses:
        return "failed"
    return "degraded" if "degraded" in statuses else "healthy"
