"""Event-loop lag under the hostile requests of issue 13: what a concurrent `/healthz` sees.

    .venv/bin/python bench/lag.py            # the probes the e2e test runs
    .venv/bin/python bench/lag.py --full     # plus 90,000 topics (minutes before the fix)

Starts one embedded `waypost serve` (tests/support's harness, TOPICS unset, wildcards allowed),
polls `/healthz` back to back from a thread, and runs each probe on a tenant of its own. Per
probe: the answers' statuses, the slowest request, the lag (slowest overlapping poll minus the
median poll at rest) and the API process's RSS afterwards. Run it under `flock /tmp/bench.lock`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.lag import HealthPoller, hostile_probes, rss_mb, run_probe
from support.server import ServerProcess

SERVER_ENV = {"TOPICS": "", "TOPICS_ALLOW_WILDCARDS": "true", "LOG_LEVEL": "warn"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="add the 90,000-topic probe")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as workdir,
        ServerProcess(SERVER_ENV, workdir=Path(workdir)) as server,
    ):
        assert server.pid is not None
        print(f"server RSS at start: {rss_mb(server.pid):.0f} MB")
        print(f"{'probe':58} {'statuses':28} {'request':>9} {'lag':>9} {'RSS':>7}")
        with (
            server.http(timeout=args.timeout) as client,
            HealthPoller("127.0.0.1", server.port) as poller,
        ):
            for index, (name, probe) in enumerate(hostile_probes(full=args.full)):
                out = run_probe(poller, client, server.pid, name, probe, f"lag-{index}")
                statuses = ",".join(sorted({str(s) for s in out.statuses}))
                print(
                    f"{out.name:58} {statuses:28} {out.request_seconds * 1000:7.0f}ms"
                    f" {out.lag_seconds * 1000:7.0f}ms {out.rss_mb:5.0f}MB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
