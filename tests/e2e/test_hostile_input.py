"""Issue 13: no tenant request may stall the server for everyone else.

A real server, a `/healthz` poller on a thread of its own, and the hostile inputs of the issue
(thousands of topics, long wildcard topics, 1 MB filters on 20 destinations then publishes, JSON
nested 400,000 levels, metrics buckets at the ends of the calendar). Each is refused with a clear
4xx or answered within its bound, and the poller's worst poll during it stays within 50 ms of its
poll time at rest. The hostile requests are each sent once; a probe that shows more lag is tried
once more, because this machine is shared and one descheduling of the server is not the code's
doing, while a stall the code causes repeats every time.
"""

from __future__ import annotations

import pytest
from support.lag import HealthPoller, Outcome, hostile_probes, run_probe
from support.server import ServerProcess

SERVER_ENV = {"TOPICS": "", "TOPICS_ALLOW_WILDCARDS": "true"}
LAG_LIMIT_SECONDS = 0.050

# Per probe: the statuses its requests may answer (the tenant's own requests either refused with
# a 4xx or served; never a 500, never a timeout).
EXPECTED = {
    "4,000 topics on one destination": {422},
    "two 12 KB wildcard topics": {422},
    "20 destinations with ~1 MB filters, then 5 publishes": {413, 202},  # refused unread
    "JSON nested 400,000 levels (publish, destination, tenant)": {413, 422},
    "metrics buckets near year 1 and 9999": {200, 400},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_hostile_request_is_bounded_and_does_not_stall_healthz(
    server: ServerProcess, name: str
) -> None:
    probe = dict(hostile_probes(full=False))[name]
    assert server.pid is not None
    with server.http(timeout=30) as client, HealthPoller("127.0.0.1", server.port) as poller:
        outcomes: list[Outcome] = []
        for attempt in range(2):
            tenant = f"hostile-{abs(hash(name)) % 10_000}-{attempt}"
            outcome = run_probe(poller, client, server.pid, name, probe, tenant)
            outcomes.append(outcome)
            assert set(outcome.statuses) <= EXPECTED[name], outcome
            if outcome.lag_seconds < LAG_LIMIT_SECONDS:
                break
    assert min(o.lag_seconds for o in outcomes) < LAG_LIMIT_SECONDS, outcomes
