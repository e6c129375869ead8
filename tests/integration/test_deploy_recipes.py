"""The production recipes under deploy/, run through the tools that will run them, as far as this
machine allows.

- systemd: `systemd-analyze verify` on each unit and `systemd-analyze security --offline` for its
  exposure score; the sysusers and tmpfiles files applied inside a scratch root. The units name
  /opt/waypost/bin/waypost, which verify requires to exist: it checks a copy whose ExecStart
  names this environment's console script, the rest of the unit unchanged. No systemd runs as
  PID 1 here, so the hardening options are not exercised at run time.
- Every recipe's environment (compose with its env.example, the systemd env file with the unit's
  Environment=, the Kubernetes ConfigMap and Secret with the container's env) passes
  `waypost config --check`, with each variable recognised as a setting.
- The compose file's api and delivery services run as processes with their commands and whole
  environment (this machine's PostgreSQL and RabbitMQ in place of the compose network's) deliver
  an event through the broker.
- Both units' commands and environments, on the local PostgreSQL, deliver an event; a SIGTERM
  to the delivery process mid-delivery lets the delivery finish and be recorded, and the process
  exits 0 well within the unit's TimeoutStopSec.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support import postgres, rabbitmq, recipes
from support.receiver import Receiver
from support.server import free_port
from support.waiting import poll_until

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
CONSOLE_SCRIPT = Path(sys.executable).parent / recipes.PROGRAM
UNITS = ("waypost-api.service", "waypost-delivery.service")
EXPOSURE_LIMIT = 2.0  # systemd-analyze security: up to 1.9 is "OK", 10 is "UNSAFE"

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd)"
)


def unit_options(name: str) -> dict[str, list[str]]:
    """The [Service] options of a unit: option → every value given, in order."""
    options: dict[str, list[str]] = {}
    section = ""
    for line in (recipes.SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            options.setdefault(key, []).append(value)
    return options


def runnable_copy(name: str, folder: Path) -> Path:
    """The unit with ExecStart naming this environment's console script, nothing else changed."""
    text = (recipes.SYSTEMD / name).read_text()
    text, count = re.subn(r"^ExecStart=\S+", f"ExecStart={CONSOLE_SCRIPT}", text, flags=re.M)
    assert count == 1 and CONSOLE_SCRIPT.exists(), (count, CONSOLE_SCRIPT)
    copy = folder / name
    copy.write_text(text)
    return copy


# systemd ---------------------------------------------------------------------------------------


@needs_systemd_analyze
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify_accepts_the_unit(name: str, tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    unit = runnable_copy(name, tmp_path)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and name not in done.stderr, done.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_security_rates_the_unit_ok(name: str, tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    unit = runnable_copy(name, tmp_path)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr
    print(f"\n{name}: exposure {found[1]} {found[2]}")
    assert float(found[1]) < EXPOSURE_LIMIT, done.stdout


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers / systemd-tmpfiles are not installed (Debian package: systemd)",
)
@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles --root chowns: needs root")
def test_sysusers_and_tmpfiles_create_the_user_and_a_private_data_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for kind, source in (("sysusers.d", "waypost.sysusers"), ("tmpfiles.d", "waypost.tmpfiles")):
        (root / "etc" / kind).mkdir(parents=True)
        shutil.copy(recipes.SYSTEMD / source, root / "etc" / kind / "waypost.conf")
    for command in (["systemd-sysusers"], ["systemd-tmpfiles", "--create"]):
        done = subprocess.run(
            [*command, f"--root={root}", "waypost.conf"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    [entry] = [
        line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
        if line.startswith("waypost:")
    ]
    assert entry[5:] == ["/var/lib/waypost", "/usr/sbin/nologin"]
    data = (root / "var/lib/waypost").stat()
    assert (data.st_uid, data.st_mode & 0o777) == (int(entry[2]), 0o700)


# every recipe's settings -----------------------------------------------------------------------


def compose_environment(service: str) -> dict[str, str]:
    example = recipes.read_env_file(recipes.COMPOSE_ENV_EXAMPLE)
    raw = recipes.compose_environment(service)
    return {k: recipes.interpolate(v, example) for k, v in raw.items()}


def systemd_environment(service: str) -> dict[str, str]:
    options = unit_options(f"waypost-{service}.service")
    assigned = [item.split("=", 1) for v in options["Environment"] for item in shlex.split(v)]
    # EnvironmentFile= wins over Environment= in systemd
    return {**dict(assigned), **recipes.read_env_file(recipes.SYSTEMD / "waypost.env.example")}


def kubernetes_environment(service: str) -> dict[str, str]:
    documents: dict[str, Any] = {}
    for path in sorted(recipes.KUBERNETES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            documents[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    [container] = documents[f"Deployment/waypost-{service}"]["spec"]["template"]["spec"][
        "containers"
    ]
    values = {
        **documents["ConfigMap/waypost"]["data"],
        **documents["Secret/waypost"]["stringData"],
    }
    return {**values, **{e["name"]: e["value"] for e in container["env"]}}


def checked(environment: dict[str, str], service: str, folder: Path) -> str:
    """`waypost config --check` in a clean environment (a folder without a settings file), as
    `serve --service` would load it."""
    env = {"PATH": os.environ["PATH"], **environment, "SERVICE": service}
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "config", "--check"],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.endswith("ok\n"), done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("recipe", ["compose", "systemd", "kubernetes"])
@pytest.mark.parametrize("service", recipes.OUTPOST_SERVICES)
def test_each_recipes_settings_pass_config_check(recipe: str, service: str, tmp_path: Path) -> None:
    environment = {
        "compose": compose_environment,
        "systemd": systemd_environment,
        "kubernetes": kubernetes_environment,
    }[recipe](service)
    report = checked(environment, service, tmp_path)
    sources = dict(re.findall(r"^([A-Z0-9_]+)=.*  # (\w+)$", report, flags=re.M))
    aliases = {"PORT": "API_PORT"}
    unread = [n for n in environment if sources.get(aliases.get(n, n)) != "environment"]
    assert unread == [], f"not read as settings: {unread}"
    assert sources["POSTGRES_URL"] == "environment"


# the two units, as on one machine --------------------------------------------------------------


@pytest.fixture
def database() -> Iterator[str]:
    postgres.ensure_running()
    name, url = postgres.create_database("outpost_unit")
    try:
        yield url
    finally:
        postgres.drop_database(name)


class RecipeProcess:
    """`waypost ARGS` (this environment's console script) with a recipe's environment."""

    def __init__(self, label: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.label = label
        self.environment = env
        self.port = int(env["PORT"])
        self.log_path = folder / f"{label}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(CONSOLE_SCRIPT), *args],
                env={"PATH": os.environ["PATH"], **env},
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        poll_until(self.healthy, timeout=30, what=f"{label} healthy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/healthz", timeout=2).json()
        return body

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.log()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def unit_process(service: str, changes: dict[str, str], folder: Path) -> RecipeProcess:
    """The unit's ExecStart with its environment: Environment=, then the env file, then
    `changes` (this machine's database, free ports)."""
    command = shlex.split(unit_options(f"waypost-{service}.service")["ExecStart"][-1])
    env = systemd_environment(service) | changes
    return RecipeProcess(f"waypost-{service}.service", command[1:], env, folder)


def api_client(api: RecipeProcess) -> httpx.Client:
    return httpx.Client(
        base_url=f"{api.url}/api/v1",
        headers={"Authorization": f"Bearer {api.environment['API_KEY']}"},
        timeout=10,
    )


def publish_to(client: httpx.Client, url: str) -> str:
    """A tenant with one webhook destination at `url`, and one event published: its id."""
    assert client.put("/tenants/acme").status_code in (200, 201)
    created = client.post(
        "/tenants/acme/destinations",
        json={"type": "webhook", "topics": "*", "config": {"url": url}},
    )
    assert created.status_code == 201, created.text
    published = client.post(
        "/publish", json={"tenant_id": "acme", "topic": "user.created", "data": {}}
    )
    assert published.status_code == 202, published.text
    event_id: str = published.json()["id"]
    return event_id


def recorded_attempt(client: httpx.Client) -> dict[str, Any]:
    def attempts() -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = client.get("/attempts", params={"tenant_id": "acme"}).json()[
            "models"
        ]
        return models

    [attempt] = poll_until(attempts, timeout=10, what="the attempt recorded")
    return attempt


@pytest.mark.e2e  # starts real server processes
def test_units_deliver_and_a_sigterm_lets_the_delivery_in_flight_finish(
    database: str, tmp_path: Path
) -> None:
    """Both units' commands and environments on one machine (this one's database and free ports
    instead of the example's): an event is delivered, and a SIGTERM to the delivery process while
    a delivery is in flight lets it finish and be recorded, with exit status 0 well within
    TimeoutStopSec."""
    started: list[RecipeProcess] = []
    with Receiver() as receiver:
        slow = receiver.new_path("slow")
        hook = receiver.configure(slow, delay=2.0)  # under DELIVERY_TIMEOUT_SECONDS (5 s)
        try:
            for service in recipes.OUTPOST_SERVICES:
                changes = {
                    "POSTGRES_URL": database,
                    "PORT": str(free_port()),
                    "OUTPOST_DATA_DIR": str(tmp_path / f"{service}-data"),
                    "DESTINATIONS_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver
                }
                started.append(unit_process(service, changes, tmp_path))
            api, delivery = started
            with api_client(api) as client:
                event_id = publish_to(client, hook)
                receiver.wait_for(1, path=slow, timeout=15)  # in flight: answered in 2 s
                limit = int(unit_options("waypost-delivery.service")["TimeoutStopSec"][-1])
                began = time.monotonic()
                delivery.process.send_signal(signal.SIGTERM)
                code = delivery.process.wait(timeout=limit)
                took = time.monotonic() - began
                print(f"\ndelivery process: SIGTERM mid-delivery, exited {code} in {took:.2f}s")
                assert code == 0, delivery.log()
                [request] = receiver.requests_for(slow)
                assert request.response_sent and request.event_id == event_id
                assert recorded_attempt(client)["status"] == "success"
        finally:
            for process in started:
                process.close()
    banner = json.loads(delivery.log().splitlines()[0])  # LOG_FORMAT=json, from the env file
    assert (banner["service"], banner["store"]) == ("delivery", "postgres"), banner


@pytest.fixture
def broker(database: str) -> Iterator[dict[str, str]]:
    """RabbitMQ settings of a queue of this test's own (the local broker is shared)."""
    rabbitmq.ensure_running()
    name = database.rsplit("/", 1)[-1]
    try:
        yield rabbitmq.settings_for(name)
    finally:
        rabbitmq.delete(name)


@pytest.mark.e2e  # starts real server processes
def test_compose_services_as_processes_deliver_through_rabbitmq(
    database: str, broker: dict[str, str], tmp_path: Path
) -> None:
    """The compose file's api and delivery services as processes: their commands and their
    whole environment (interpolated with env.example), with this machine's PostgreSQL and
    RabbitMQ in place of the compose network's and loopback ports in place of the containers'.
    An event goes through the broker to a receiver."""
    started: list[RecipeProcess] = []
    with Receiver() as receiver:
        path = receiver.new_path("compose")
        hook = receiver.configure(path)
        try:
            for service in recipes.OUTPOST_SERVICES:
                env = compose_environment(service) | broker
                env |= {
                    "POSTGRES_URL": database,
                    "HOST": "127.0.0.1",
                    "PORT": str(free_port()),
                    "OUTPOST_DATA_DIR": str(tmp_path / f"{service}-data"),
                    "DESTINATIONS_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver
                }
                args = recipes.serve_args(service)
                started.append(RecipeProcess(f"compose-{service}", args, env, tmp_path))
            api = started[0]
            for process in started:
                assert process.health()["workers"]["rabbitmq"]["status"] == "healthy"
            with api_client(api) as client:
                event_id = publish_to(client, hook)
                # within 15 s: through the broker (a database claim would wait for the
                # 30 s RABBITMQ_HOLD_SECONDS)
                [request] = receiver.wait_for(1, path=path, timeout=15)
                assert request.event_id == event_id
                assert recorded_attempt(client)["status"] == "success"
            for process in started:
                process.process.send_signal(signal.SIGTERM)
                assert process.process.wait(timeout=30) == 0, process.log()
        finally:
            for process in started:
                process.close()
    lines = [json.loads(line) for line in api.log().splitlines() if line.startswith("{")]
    assert lines and lines[0]["service"] == "api", "LOG_FORMAT=json, from the compose file"
