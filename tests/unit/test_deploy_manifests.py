"""The production recipes under deploy/ against the tools' own schemas, and against each other.

- deploy/compose.yaml against the Compose Specification's JSON schema (the copy check-jsonschema
  vendors; `docker compose` itself is not installable here);
- deploy/kubernetes/ against the Kubernetes API schemas kubernetes-validate bundles, strict (an
  unknown field is an error), for the oldest and newest versions it carries that we claim;
- every recipe runs the same `waypost serve --service api|delivery` commands (the production
  tests run those of the compose file), names only settings the server knows, sets every secret
  a PostgreSQL deployment needs, and gives a delivery process more time to stop than one
  delivery may take.

Each schema check also shows it would catch a mistake (a misspelt key fails), so that a
validator that silently accepts everything cannot pass.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from support import recipes

from waypost.config import Config

# Kubernetes versions the manifests are checked against: the oldest still supported upstream
# when these were written, and the newest kubernetes-validate carries.
KUBERNETES_VERSIONS = ("1.32.0", kubernetes_validate.latest_version())

# A PostgreSQL deployment refuses to start without these (every process must share them).
SECRETS = ("POSTGRES_URL", "API_KEY", "API_JWT_SECRET", "AES_ENCRYPTION_SECRET")

DELIVERY_TIMEOUT_SECONDS = Config().delivery_timeout_seconds  # the default

KNOWN_SETTINGS = {
    name for f in fields(Config) for name in (f.metadata["env"], *f.metadata["aliases"])
}


# Compose ---------------------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendored / "compose-spec.json").read_text())
    return schema


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_matches_the_compose_specification() -> None:
    assert compose_errors(recipes.compose()) == []


def test_the_compose_schema_check_catches_a_misspelt_key() -> None:
    broken = copy.deepcopy(recipes.compose())
    broken["services"]["api"]["comand"] = broken["services"]["api"].pop("command")
    assert any("comand" in error for error in compose_errors(broken))


def test_compose_runs_each_service_with_outpost_serve() -> None:
    for service in recipes.OUTPOST_SERVICES:
        assert recipes.serve_args(service) == ["serve", "--service", service]
    assert set(recipes.compose()["services"]) == {"postgres", "rabbitmq", "api", "delivery"}


def test_compose_sets_every_secret_from_the_env_file_and_refuses_to_start_without_one() -> None:
    example = recipes.read_env_file(recipes.COMPOSE_ENV_EXAMPLE)
    for service in recipes.OUTPOST_SERVICES:
        raw = recipes.compose_environment(service)
        assert set(SECRETS) | {"RABBITMQ_SERVER_URL"} <= set(raw)
        assert set(raw) <= KNOWN_SETTINGS, set(raw) - KNOWN_SETTINGS
        resolved = {k: recipes.interpolate(v, example) for k, v in raw.items()}
        assert resolved["POSTGRES_URL"] == (
            f"postgresql://waypost:{example['POSTGRES_PASSWORD']}@postgres:5432/waypost"
        )
        assert resolved["API_KEY"] == example["API_KEY"]
        for secret in ("API_KEY", "AES_ENCRYPTION_SECRET", "POSTGRES_PASSWORD"):
            without = {k: v for k, v in example.items() if k != secret}
            with pytest.raises(KeyError, match=secret):
                {k: recipes.interpolate(v, without) for k, v in raw.items()}
    # every variable the file interpolates is in the example (or has a default)
    text = recipes.COMPOSE_FILE.read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert required <= set(example), required - set(example)
    assert (
        "POSTGRES_PASSWORD"
        in recipes.compose_service("postgres")["environment"]["POSTGRES_PASSWORD"]
    )


def test_compose_stops_gracefully_past_a_delivery_timeout() -> None:
    for service in recipes.OUTPOST_SERVICES:
        definition = recipes.compose_service(service)
        assert definition["stop_signal"] == "SIGTERM"
        grace = re.fullmatch(r"(\d+)s", definition["stop_grace_period"])
        assert grace and int(grace[1]) >= 2 * DELIVERY_TIMEOUT_SECONDS


# Kubernetes ------------------------------------------------------------------------------------


def kubernetes_documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(recipes.KUBERNETES.rglob("*.yaml")):
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def kubernetes_problem(document: dict[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'/'.join(map(str, exc.path))}: {exc.message}"
    return None


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_match_the_api_schemas(version: str) -> None:
    documents = kubernetes_documents()
    kinds = sorted(f"{doc['kind']}/{doc['metadata']['name']}" for _, doc in documents)
    assert kinds == [
        "ConfigMap/waypost",
        "Deployment/waypost-api",
        "Deployment/waypost-delivery",
        "Secret/waypost",
        "Service/waypost-api",
    ]
    problems = {
        f"{path.name} {doc['kind']}": kubernetes_problem(doc, version) for path, doc in documents
    }
    assert {k: v for k, v in problems.items() if v} == {}


def test_the_kubernetes_schema_check_catches_a_misspelt_field() -> None:
    deployment = next(doc for _, doc in kubernetes_documents() if doc["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert kubernetes_problem(broken, KUBERNETES_VERSIONS[-1]) is not None


def deployment(service: str) -> dict[str, Any]:
    return next(
        doc
        for _, doc in kubernetes_documents()
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == f"waypost-{service}"
    )


def test_kubernetes_deployments_run_the_compose_commands_and_probe_healthz() -> None:
    secret = next(doc for _, doc in kubernetes_documents() if doc["kind"] == "Secret")
    config_map = next(doc for _, doc in kubernetes_documents() if doc["kind"] == "ConfigMap")
    assert set(SECRETS) <= set(secret["stringData"])
    for service in recipes.OUTPOST_SERVICES:
        pod = deployment(service)["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == recipes.compose_service(service)["command"]
        names = {e["name"] for e in container["env"]} | set(config_map["data"])
        assert names | set(secret["stringData"]) <= KNOWN_SETTINGS
        assert {ref.get("secretRef", {}).get("name") for ref in container["envFrom"]} >= {"waypost"}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        port_env = next(e["value"] for e in container["env"] if e["name"] == "PORT")
        for probe in ("readinessProbe", "livenessProbe"):
            check = container[probe]["httpGet"]
            assert check["path"] == "/healthz"
            assert ports[check["port"]] == int(port_env)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        timeout = float(
            config_map["data"].get("DELIVERY_TIMEOUT_SECONDS", DELIVERY_TIMEOUT_SECONDS)
        )
        assert pod["terminationGracePeriodSeconds"] >= 2 * timeout


# systemd ---------------------------------------------------------------------------------------


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as systemd reads it: section → option → every value given, in order."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (recipes.SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_units_run_the_compose_commands_hardened_and_stop_gracefully() -> None:
    env_file = recipes.read_env_file(recipes.SYSTEMD / "waypost.env.example")
    assert set(SECRETS) <= set(env_file) <= KNOWN_SETTINGS
    ports = set()
    for service in recipes.OUTPOST_SERVICES:
        options = unit(f"waypost-{service}.service")["Service"]
        section = {key: values[-1] for key, values in options.items()}
        command = shlex.split(section["ExecStart"])
        assert Path(command[0]).name == recipes.PROGRAM
        assert command[1:] == recipes.serve_args(service)
        environment = dict(item.split("=", 1) for item in shlex.split(section["Environment"]))
        assert set(environment) <= KNOWN_SETTINGS
        ports.add(environment["PORT"])
        assert section["EnvironmentFile"] == "/etc/waypost/waypost.env"
        assert section["ReadWritePaths"] == env_file["OUTPOST_DATA_DIR"] == "/var/lib/waypost"
        for option, value in {
            "User": "waypost",
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "CapabilityBoundingSet": "",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "KillSignal": "SIGTERM",
        }.items():
            assert section[option] == value, option
        assert options["SystemCallFilter"][0] == "@system-service"
        assert int(section["TimeoutStopSec"]) >= 2 * DELIVERY_TIMEOUT_SECONDS
    assert len(ports) == 2, "the API and a delivery process may share a machine"
