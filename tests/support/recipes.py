"""The production recipes under deploy/, read the way the tools that run them read them.

One source of truth: the production tests start their API and delivery processes with the
commands deploy/compose.yaml gives those services (`serve_args`), and check that they pass every
variable the compose file sets (`compose_environment`); tests/unit/test_deploy_manifests.py checks
the files against the Compose and Kubernetes schemas and against each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
COMPOSE_ENV_EXAMPLE = DEPLOY / "env.example"
SYSTEMD = DEPLOY / "systemd"
KUBERNETES = DEPLOY / "kubernetes"

# The services that run the server, and the console script their commands start.
OUTPOST_SERVICES = ("api", "delivery")
PROGRAM = "waypost"

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    """deploy/compose.yaml as Compose reads it (YAML merge keys resolved), not interpolated."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"][name]
    return service


def serve_args(service: str) -> list[str]:
    """The arguments after the console script that the compose file runs `service` with, e.g.
    `["serve", "--service", "api"]`: `python -m waypost` takes the same ones."""
    command = compose_service(service)["command"]
    assert isinstance(command, list) and command[0] == PROGRAM, command
    return [str(part) for part in command[1:]]


def compose_environment(service: str) -> dict[str, str]:
    """The variables the compose file sets for `service`, not interpolated."""
    environment = compose_service(service).get("environment") or {}
    assert isinstance(environment, dict), "environment: a mapping, so that anchors merge"
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}


def read_env_file(path: Path) -> dict[str, str]:
    """A KEY=VALUE file (comments and blank lines skipped), as compose and systemd read ours."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}` and
    `${NAME?error}`; a required variable that is missing raises KeyError with its message."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value = variables.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if not unset:
            return str(value)
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return _VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")
