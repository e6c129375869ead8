"""Run the real server as a separate process (`python -m waypost serve`) for black-box tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from outpost_sdk import Outpost

from support import rabbitmq
from support.postgres import create_database, drop_database

REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_API_KEY = "e2e-admin-key-0123456789"
DEFAULT_JWT_SECRET = "e2e-jwt-secret-0123456789abcdef"
ADMIN = "<admin key>"  # sentinel for ServerProcess.http()
DEFAULT_TOPICS = "user.created,user.updated,user.deleted"

# `OUTPOST_TEST_BACKEND=postgres` runs every server of the suite in PostgreSQL mode, each on a
# database of its own; `postgres+rabbitmq` adds RabbitMQ as the task queue (queues of its own);
# the default is the embedded SQLite store.
BACKEND = os.environ.get("OUTPOST_TEST_BACKEND", "sqlite")

# Only these variables of the test runner's environment reach the server; everything else the
# server reads comes from `base_env` below and the per-test overrides, so a developer's shell
# (a stray TOPICS or CONFIG) cannot change what a test sees.
_INHERITED = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
)


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DELIVERY_CONSUMERS = {"deliverymq-consumer", "retrymq-consumer"}


_Client = TypeVar("_Client", Outpost, httpx.Client)


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    """One server process with its own data directory.

    `restart()` (and `start()` after `stop()`/`kill()`) reuses the same port and data directory,
    so SDK clients built earlier keep working and persisted state must survive.

    `postgres_url`, when given, puts the process in PostgreSQL mode on that database whatever
    `OUTPOST_TEST_BACKEND` says, so that several processes can share it; the caller owns that
    database (it is neither created nor dropped here). Without it, PostgreSQL mode creates a
    database of the process's own and drops it on `close()`. Which services the process runs is
    the `SERVICE` variable of `env` (or `--service` in `args`, the arguments after
    `python -m waypost`); a `SERVICE=delivery` process still answers `/healthz`.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        workdir: Path | None = None,
        api_key: str = DEFAULT_API_KEY,
        jwt_secret: str = DEFAULT_JWT_SECRET,
        startup_timeout: float = 30.0,
        postgres_url: str | None = None,
        args: Sequence[str] = ("serve",),
        program: Sequence[str] = (sys.executable, "-m", "waypost"),
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.args = list(args)  # after `python -m waypost`, e.g. serve --service api
        # What runs, and where: an installed console script (tests/package) instead of the tree.
        self.program = list(program)
        self.cwd = cwd
        self._owns_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="outpost-e2e-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(mode=0o700, exist_ok=True)  # as outpost creates it
        self.log_path = self.workdir / "server.log"
        self.api_key = api_key
        self.jwt_secret = jwt_secret
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.overrides: dict[str, str] = dict(env or {})
        self._clients = contextlib.ExitStack()  # the clients handed out, closed by close()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self.starts = 0
        self.database: str | None = None
        self.postgres_url = postgres_url or ""
        if postgres_url is None and BACKEND in ("postgres", "postgres+rabbitmq"):
            self.database, self.postgres_url = create_database()

    # addresses ---------------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/v1"

    # environment -------------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        return {
            "PORT": str(self.port),
            "API_PORT": str(self.port),
            "OUTPOST_DATA_DIR": str(self.data_dir),
            "API_KEY": self.api_key,
            "API_JWT_SECRET": self.jwt_secret,
            "DESTINATIONS_ALLOWED_NETWORKS": "127.0.0.0/8",
            # The Service Bus stand-in is on loopback too; that type cannot be guarded.
            "DESTINATIONS_UNGUARDED_TYPES": "azure_servicebus",
            "TOPICS": DEFAULT_TOPICS,
            "RETRY_INTERVAL_SECONDS": "1",
            "MAX_RETRY_LIMIT": "3",
            "LOG_BATCH_THRESHOLD_SECONDS": "0",
            "LOG_LEVEL": "info",
            **(
                {"POSTGRES_URL": self.postgres_url, "AES_ENCRYPTION_SECRET": "e2e-aes-secret"}
                if self.postgres_url
                else {}
            ),
            **(
                rabbitmq.settings_for(self.database)
                if self._uses_rabbitmq and self.database
                else {}
            ),
        }

    @property
    def _uses_rabbitmq(self) -> bool:
        return BACKEND == "postgres+rabbitmq" and self.database is not None

    def health_workers(self) -> set[str]:
        """The workers `/healthz` reports for this process: its HTTP server, the consumers of its
        delivery worker (not in an `api` process), and each store it depends on."""
        consumers = set() if self.overrides.get("SERVICE") == "api" else DELIVERY_CONSUMERS
        return {"http-server", "database", *consumers} | (
            {"rabbitmq"} if self._uses_rabbitmq else set()
        )

    def environment(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        env.update(self.base_env())
        env.update(self.overrides)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # lifecycle ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has ended (negative: killed by that signal)."""
        return None if self._proc is None else self._proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> ServerProcess:
        if self.running:
            raise RuntimeError("server already running")
        self._close_log()
        self._log_file = self.log_path.open("ab")
        self.starts += 1
        self._log_file.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(
            [*self.program, *self.args],
            cwd=str(self.cwd),
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() takes any children along
        )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while True:
                proc = self._proc
                assert proc is not None
                code = proc.poll()
                if code is not None:
                    raise ServerStartError(
                        f"server exited with code {code} during startup\n{self.log_tail()}"
                    )
                try:
                    res = client.get(f"{self.root_url}/healthz")
                    if res.status_code == 200:
                        return
                    last = f"HTTP {res.status_code}: {res.text[:300]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                if time.monotonic() >= deadline:
                    self.kill()
                    raise ServerStartError(
                        f"server not healthy within {self.startup_timeout:.0f}s ({last})\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then wait for exit (SIGKILL the group if it overstays). Returns exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                proc.wait(timeout=10)
        self._reap_group()
        self._close_log()
        return proc.returncode

    def kill(self) -> None:
        """kill -9 the server (and anything it started), like a crash or an OOM kill."""
        proc = self._proc
        if proc is None:
            return
        self._kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        self._close_log()

    def restart(self, *, crash: bool = False) -> ServerProcess:
        """Stop (gracefully, or with SIGKILL when `crash`) and start again on the same data."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        self._clients.close()
        if self.database is not None:
            if self._uses_rabbitmq:
                rabbitmq.delete(self.database)
            drop_database(self.database)
            self.database = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_group(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def _reap_group(self) -> None:
        # workers left behind by the main process after a graceful stop are still ours to end
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # diagnostics -------------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()[-lines:]
        return "----- server output (tail) -----\n" + "\n".join(text)

    # clients (each is closed by `close()` at the latest, so one a test does not close leaks no
    # socket) ------------------------------------------------------------------------------------

    def admin_client(self, *, timeout_ms: int = 15000) -> Outpost:
        """An official-SDK client authenticated with the admin API key."""
        return self._handed_out(
            Outpost(api_key=self.api_key, server_url=self.base_url, timeout_ms=timeout_ms)
        )

    def tenant_client(self, token: str, *, timeout_ms: int = 15000) -> Outpost:
        """An official-SDK client authenticated with a tenant JWT.

        SDK 1.7.0 has a single bearer credential (`api_key`); a tenant JWT travels the same way.
        """
        return self._handed_out(
            Outpost(api_key=token, server_url=self.base_url, timeout_ms=timeout_ms)
        )

    def http(self, token: str | None = ADMIN, *, timeout: float = 15.0) -> httpx.Client:
        """A raw HTTP client on the API base URL (default: the admin key; None: no auth)."""
        headers: dict[str, str] = {}
        if token is ADMIN:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self._handed_out(
            httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        )

    def _handed_out(self, client: _Client) -> _Client:
        # A callback, not enter_context: the test may still use the client as a context manager.
        if isinstance(client, Outpost):
            self._clients.callback(client.__exit__, None, None, None)
        else:
            self._clients.callback(client.close)
        return client


MISSING_EXTRAS_PATH = str(Path(__file__).resolve().parent / "missing_extras")


def without_extras(*extras: str) -> dict[str, str]:
    """Server environment in which these extras' packages cannot be imported (see
    support/missing_extras/sitecustomize.py for how, and why not by uninstalling them)."""
    path = os.pathsep.join(p for p in (MISSING_EXTRAS_PATH, os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "TEST_MISSING_EXTRAS": ",".join(extras)}
