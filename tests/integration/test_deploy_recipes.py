"""The production recipes under deploy/, run through the tools that will run them, as far as this
machine allows.

- systemd: `systemd-analyze verify` on each unit and `systemd-analyze security --offline` for its
  exposure score; the sysusers and tmpfiles files applied inside a scratch root. The units name
  /opt/outpost/bin/outpost, which verify requires to exist: it checks a copy whose ExecStart
  names this environment's console script, the rest of the unit unchanged. No systemd runs as
  PID 1 here, so the hardening options are not exercised at run time.
- Every recipe's environment (compose with its env.example, the systemd env file with the unit's
  Environment=, the Kubernetes ConfigMap and Secret with the container's env) passes
  `outpost config --check`, with each variable recognised as a setting.
- A delivery process started with the systemd unit's command and environment (on the local
  PostgreSQL) is healthy and exits 0 on SIGTERM well within the unit's TimeoutStopSec.
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
from support import postgres, recipes
from support.server import free_port
from support.waiting import poll_until

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
CONSOLE_SCRIPT = Path(sys.executable).parent / recipes.PROGRAM
UNITS = ("outpost-api.service", "outpost-delivery.service")
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
    for kind, source in (("sysusers.d", "outpost.sysusers"), ("tmpfiles.d", "outpost.tmpfiles")):
        (root / "etc" / kind).mkdir(parents=True)
        shutil.copy(recipes.SYSTEMD / source, root / "etc" / kind / "outpost.conf")
    for command in (["systemd-sysusers"], ["systemd-tmpfiles", "--create"]):
        done = subprocess.run(
            [*command, f"--root={root}", "outpost.conf"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    [entry] = [
        line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
        if line.startswith("outpost:")
    ]
    assert entry[5:] == ["/var/lib/outpost", "/usr/sbin/nologin"]
    data = (root / "var/lib/outpost").stat()
    assert (data.st_uid, data.st_mode & 0o777) == (int(entry[2]), 0o700)


# every recipe's settings -----------------------------------------------------------------------


def compose_environment(service: str) -> dict[str, str]:
    example = recipes.read_env_file(recipes.COMPOSE_ENV_EXAMPLE)
    raw = recipes.compose_environment(service)
    return {k: recipes.interpolate(v, example) for k, v in raw.items()}


def systemd_environment(service: str) -> dict[str, str]:
    options = unit_options(f"outpost-{service}.service")
    assigned = [item.split("=", 1) for v in options["Environment"] for item in shlex.split(v)]
    # EnvironmentFile= wins over Environment= in systemd
    return {**dict(assigned), **recipes.read_env_file(recipes.SYSTEMD / "outpost.env.example")}


def kubernetes_environment(service: str) -> dict[str, str]:
    documents: dict[str, Any] = {}
    for path in sorted(recipes.KUBERNETES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            documents[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    [container] = documents[f"Deployment/outpost-{service}"]["spec"]["template"]["spec"][
        "containers"
    ]
    values = {
        **documents["ConfigMap/outpost"]["data"],
        **documents["Secret/outpost"]["stringData"],
    }
    return {**values, **{e["name"]: e["value"] for e in container["env"]}}


def checked(environment: dict[str, str], service: str, folder: Path) -> str:
    """`outpost config --check` in a clean environment (a folder without a settings file), as
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


# a process as the unit runs it -------------------------------------------------------------------


@pytest.fixture
def database() -> Iterator[str]:
    postgres.ensure_running()
    name, url = postgres.create_database("outpost_unit")
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.mark.e2e  # starts a real server process
def test_delivery_process_as_the_unit_starts_it_stops_on_sigterm_in_time(
    database: str, tmp_path: Path
) -> None:
    options = unit_options("outpost-delivery.service")
    command = shlex.split(options["ExecStart"][-1])
    environment = systemd_environment("delivery")
    port = free_port()
    # this machine's database and a free port instead of the example's; the rest as written
    environment |= {"POSTGRES_URL": database, "PORT": str(port)}
    environment["OUTPOST_DATA_DIR"] = str(tmp_path / "data")
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), *command[1:]],
        env={"PATH": os.environ["PATH"], **environment},
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        poll_until(healthy, timeout=30, what="the delivery process healthy")
        stop_limit = int(options["TimeoutStopSec"][-1])
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=stop_limit)
        took = time.monotonic() - began
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
    output = (tmp_path / "server.log").read_text()
    print(f"\nstopped by SIGTERM in {took:.2f}s (TimeoutStopSec={stop_limit})")
    assert code == 0, output
    banner = json.loads(output.splitlines()[0])  # LOG_FORMAT=json, as the env file sets
    assert (banner["service"], banner["store"]) == ("delivery", "postgres"), banner
