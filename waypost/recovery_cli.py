"""The operator's recovery commands: they talk to a running server over HTTP with the admin key,
so they work alike in every mode (embedded, PostgreSQL, split services).

`waypost undelivered`, `waypost recover` (with a progress bar, or `--dry-run` for the count),
`waypost recoveries list|watch|cancel`, `waypost send-test`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:3333"
WATCH_SECONDS = 0.5
BAR_WIDTH = 30


class CommandError(Exception):
    """What the operator is told, on one line, before exit status 1."""


class Client:
    def __init__(self, url: str, api_key: str, timeout: float = 30.0) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CommandError(f"--url must be an http:// or https:// URL, not {url!r}")
        self._base = url.rstrip("/") + "/api/v1"
        self._key = api_key
        self._timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = self._base + urllib.parse.quote(path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        sent = {"Authorization": f"Bearer {self._key}", **(headers or {})}
        if data is not None:
            sent["Content-Type"] = "application/json"
        # The scheme is checked in __init__: http(s) only.
        request = urllib.request.Request(url, data=data, method=method, headers=sent)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise CommandError(_http_error(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(f"cannot reach the server at {self._base}: {reason}") from None


def _http_error(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        detail = body.get("data")
        extra = f" ({json.dumps(detail)})" if detail else ""
        hint = " (check API_KEY or --api-key)" if exc.code == 401 else ""
        return f"{exc.code}: {body['message']}{extra}{hint}"
    return f"{exc.code}: {exc.reason}"


def _client(args: argparse.Namespace) -> Client:
    key = args.api_key or os.environ.get("API_KEY", "")
    if not key:
        raise CommandError("no API key: set API_KEY or pass --api-key")
    return Client(args.url, key)


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"status": args.status}
    if args.destination:
        body["destination_id"] = args.destination
    if args.topic:
        body["topics"] = args.topic
    if args.since:
        body["since"] = args.since
    if args.until:
        body["until"] = args.until
    return body


def _undelivered(args: argparse.Namespace, out: TextIO) -> int:
    client = _client(args)
    query: list[tuple[str, str]] = [("status", args.status), ("limit", str(min(args.limit, 1000)))]
    if args.destination:
        query.append(("destination_id", args.destination))
    query += [("topic", t) for t in args.topic or ()]
    if args.since:
        query.append(("time[gte]", args.since))
    if args.until:
        query.append(("time[lt]", args.until))
    shown = 0
    cursor: str | None = None
    while shown < args.limit:
        page = client.call(
            "GET",
            f"/tenants/{args.tenant}/undelivered",
            query=query + ([("next", cursor)] if cursor else []),
        )
        for item in page["models"][: args.limit - shown]:
            event = item["event"]
            where = ", ".join(
                f"{d['destination_id']}: {d['status']} ({d['attempts']} attempts)"
                for d in item["destinations"]
            )
            print(
                f"{event['time']}  {event['id']}  {event['topic']}  {where or 'no destination'}",
                file=out,
            )
            shown += 1
        cursor = page["pagination"]["next"]
        if not cursor:
            break
    print(f"{shown} undelivered event(s)" + (" (more: raise --limit)" if cursor else ""), file=out)
    return 0


def _recover(args: argparse.Namespace, out: TextIO) -> int:
    client = _client(args)
    body = _selection(args)
    path = f"/tenants/{args.tenant}/recoveries"
    if args.dry_run:
        counted = client.call("POST", path, body={**body, "dry_run": True})
        print(f"{counted['matched']} deliveries would be sent", file=out)
        return 0
    headers = {"Idempotency-Key": args.key} if args.key else None
    job = client.call("POST", path, body=body, headers=headers)
    print(f"recovery {job['id']} started", file=out)
    if args.no_wait:
        return 0
    return _watch(client, args.tenant, job["id"], out)


def progress_line(job: dict[str, Any]) -> str:
    total = job["matched"]
    done = job["delivered"] + job["failed"]
    if total is None:
        return f"{job['id']}: counting…"
    filled = BAR_WIDTH if total == 0 else min(BAR_WIDTH, BAR_WIDTH * done // total)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (
        f"[{bar}] {done}/{total}  queued {job['enqueued']}  delivered {job['delivered']}  "
        f"failed {job['failed']}  {job['state']}"
    )


def _watch(
    client: Client,
    tenant: str,
    job_id: str,
    out: TextIO,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show the job's progress until it ends: updated in place on a terminal, else a line per
    change. Exit status 0 when completed, 1 when cancelled."""
    tty = out.isatty()
    last = ""
    while True:
        job = client.call("GET", f"/tenants/{tenant}/recoveries/{job_id}")
        line = progress_line(job)
        if line != last:
            if tty:
                out.write("\r\x1b[2K" + line)
            else:
                out.write(line + "\n")
            out.flush()
            last = line
        if job["state"] != "running":
            if tty:
                out.write("\n")
            print(f"recovery {job_id} {job['state']}", file=out)
            return 0 if job["state"] == "completed" else 1
        sleep(WATCH_SECONDS)


def _recoveries(args: argparse.Namespace, out: TextIO) -> int:
    client = _client(args)
    path = f"/tenants/{args.tenant}/recoveries"
    if args.action == "list":
        page = client.call("GET", path, query=[("limit", "100")])
        for job in page["models"]:
            target = job["destination_id"] or "every destination"
            print(
                f"{job['id']}  {job['created_at']}  {job['state']}  {target}  "
                f"{job['status']}  {progress_line(job)}",
                file=out,
            )
        if not page["models"]:
            print("no recovery jobs", file=out)
        return 0
    if not args.id:
        raise CommandError(f"recoveries {args.action} needs a recovery id")
    if args.action == "cancel":
        job = client.call("DELETE", f"{path}/{args.id}")
        print(f"recovery {job['id']} {job['state']}", file=out)
        return 0
    return _watch(client, args.tenant, args.id, out)


def _send_test(args: argparse.Namespace, out: TextIO) -> int:
    client = _client(args)
    body: dict[str, Any] = {}
    if args.topic:
        body["topic"] = args.topic
    sent = client.call(
        "POST", f"/tenants/{args.tenant}/destinations/{args.destination}/test", body=body
    )
    print(f"test event {sent['event_id']} ({sent['topic']}) queued", file=out)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        found = client.call(
            "GET",
            "/attempts",
            query=[("tenant_id", args.tenant), ("event_id", sent["event_id"])],
        )
        if found["models"]:
            attempt = found["models"][0]
            print(f"attempt {attempt['status']} (code {attempt.get('code') or '-'})", file=out)
            return 0 if attempt["status"] == "success" else 1
        time.sleep(WATCH_SECONDS)
    if args.wait:
        print("no attempt recorded yet", file=out)
        return 1
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("OUTPOST_URL", DEFAULT_URL),
        help=f"the server (default $OUTPOST_URL or {DEFAULT_URL})",
    )
    parser.add_argument("--api-key", help="the admin API key (default $API_KEY)")
    parser.add_argument("--tenant", required=True, help="the tenant")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", help="one destination (default: every destination)")
    parser.add_argument("--topic", action="append", help="a topic (repeat for more)")
    parser.add_argument("--since", help="events from this time (RFC 3339 or YYYY-MM-DD)")
    parser.add_argument("--until", help="events before this time (default: now)")
    parser.add_argument(
        "--status",
        choices=["failed", "never", "all"],
        default="all",
        help="failed: attempted, never successfully; never: never attempted; all: both",
    )


def register(commands: Any) -> None:
    """Add the recovery commands to `waypost`'s subcommands."""
    listing = commands.add_parser("undelivered", help="list events a destination never got")
    _common(listing)
    _filters(listing)
    listing.add_argument("--limit", type=int, default=100, help="events to show (default 100)")
    listing.set_defaults(run=_run(_undelivered))
    recover = commands.add_parser("recover", help="send undelivered events again (a job)")
    _common(recover)
    _filters(recover)
    recover.add_argument("--dry-run", action="store_true", help="print the count, send nothing")
    recover.add_argument("--key", help="idempotency key: the same key starts one job only")
    recover.add_argument("--no-wait", action="store_true", help="start the job and return")
    recover.set_defaults(run=_run(_recover))
    jobs = commands.add_parser("recoveries", help="list, watch or cancel recovery jobs")
    jobs.add_argument("action", choices=["list", "watch", "cancel"])
    jobs.add_argument("id", nargs="?", help="the recovery id (watch, cancel)")
    _common(jobs)
    jobs.set_defaults(run=_run(_recoveries))
    test = commands.add_parser("send-test", help="send a test event to a destination")
    _common(test)
    test.add_argument("--destination", required=True, help="the destination")
    test.add_argument("--topic", help="a topic the destination accepts (default: its first)")
    test.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for the attempt (0: none)"
    )
    test.set_defaults(run=_run(_send_test))


def _run(
    command: Callable[[argparse.Namespace, TextIO], int],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args, sys.stdout)
        except CommandError as exc:
            print(f"waypost: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(
                "\nwaypost: interrupted (a running job goes on; cancel it with "
                "`waypost recoveries cancel`)",
                file=sys.stderr,
            )
            return 130

    return run
