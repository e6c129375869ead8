"""The wheel and the sdist as users get them (issue 17 item 3).

`python -m build` makes the sdist from a copy of the tree (without what a clone lacks) and the
wheel from the sdist (so a wheel that
lacks a file proves the sdist lacks it too). Both are inspected, then the wheel is installed into
a fresh virtual environment outside the source tree, with its dependencies from the configured
package index at the versions of requirements/runtime.lock (as constraints: the base install, no
extras), and its console script serves: /healthz, one event published through the official SDK
arriving signed at a receiver on 127.0.0.1, the portal's page and one of its static files.

Runs in the first pass of scripts/test only (tests outside tests/e2e do not repeat per store
mode). The build and the install are made once per run (module fixtures) and measured: the
times and sizes are printed in the summary (`package: ...`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

import httpx
import pytest
from outpost_sdk import Outpost
from support.receiver import Receiver
from support.server import REPO_ROOT, ServerProcess

from waypost import __version__

from .conftest import SIZES, TIMINGS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# The names a rename touches (issue 17 item 1): the distribution, its import package, its script.
DISTRIBUTION = "waypost"
PACKAGE = "waypost"
SCRIPT = "waypost"

LOCK = REPO_ROOT / "requirements" / "runtime.lock"
SOURCE = REPO_ROOT / PACKAGE


def _run(args: list[str], *, cwd: Path, what: str, timeout: float = 300) -> str:
    res = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert res.returncode == 0, f"{what} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res.stdout


# Not part of a clone: the virtual environment, caches, build output. `*.egg-info` above all:
# setuptools adds the files its SOURCES.txt lists to the sdist, so the one `pip install -e .` left
# in the tree would hide package data the configuration no longer includes.
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "__pycache__", "build", "dist", "site", "node_modules",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "outpost-data",
)  # fmt: skip


def _build(out: Path, tree: Path) -> str:
    """`python -m build` of a copy of the tree as a clone has it, into `out`; its whole output
    (the backend's warnings are on stderr)."""
    shutil.copytree(REPO_ROOT, tree, ignore=_NOT_IN_A_CLONE)
    res = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
        cwd=out, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = f"{res.stdout}\n{res.stderr}"
    assert res.returncode == 0, f"python -m build failed ({res.returncode}):\n{output}"
    return output


def _package_files() -> set[str]:
    """Every file of the package in the tree, as a path inside a wheel (no byte code)."""
    return {
        path.relative_to(REPO_ROOT).as_posix()
        for path in SOURCE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path
    build_output: str


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    log = _build(out, tmp_path_factory.mktemp("clone") / "src")
    TIMINGS["build"] = time.monotonic() - started
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    SIZES["wheel"] = wheel.stat().st_size
    SIZES["sdist"] = sdist.stat().st_size
    return Dists(wheel, sdist, log)


@dataclass(frozen=True)
class Installed:
    venv: Path
    home: Path  # a working directory outside the source tree

    @property
    def script(self) -> Path:
        return self.venv / "bin" / SCRIPT

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("user")
    assert not root.resolve().is_relative_to(REPO_ROOT)
    venv, home = root / "venv", root / "home"
    home.mkdir()
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)], cwd=home, what="python -m venv")
    _run(
        [
            str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
            "--disable-pip-version-check", "--constraint", str(LOCK), str(dists.wheel),
        ],
        cwd=home, what="pip install <wheel>",
    )  # fmt: skip
    TIMINGS["venv + install"] = time.monotonic() - started
    # What the wheel requires, at the locked versions, is consistent and complete.
    _run([str(venv / "bin" / "python"), "-m", "pip", "check"], cwd=home, what="pip check")
    return Installed(venv, home)


def test_build_is_clean(dists: Dists) -> None:
    """No deprecation the build backend announces: each one is a build that stops working."""
    assert "deprecat" not in dists.build_output.lower(), dists.build_output


def test_names_and_version(dists: Dists) -> None:
    assert dists.wheel.name == f"{DISTRIBUTION}-{__version__}-py3-none-any.whl"
    assert dists.sdist.name == f"{DISTRIBUTION}-{__version__}.tar.gz"
    with zipfile.ZipFile(dists.wheel) as wheel:
        metadata = HeaderParser().parsestr(
            wheel.read(f"{DISTRIBUTION}-{__version__}.dist-info/METADATA").decode()
        )
        entry_points = wheel.read(f"{DISTRIBUTION}-{__version__}.dist-info/entry_points.txt")
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["Description-Content-Type"] == "text/markdown"
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"aws", "gcp", "azure", "kafka", "rabbitmq", "otel", "all"} <= extras
    assert f"{SCRIPT} = {PACKAGE}.cli:main" in entry_points.decode()


def test_sdist_holds_what_a_source_build_needs(dists: Dists) -> None:
    top = f"{DISTRIBUTION}-{__version__}"
    with tarfile.open(dists.sdist) as sdist:
        names = {name.removeprefix(top + "/") for name in sdist.getnames()}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO"):
        assert needed in names, needed
    missing = _package_files() - names
    assert not missing, f"in the tree, not in the sdist: {sorted(missing)}"


def test_wheel_holds_the_package_and_its_data(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        names = set(wheel.namelist())
    dist_info = f"{DISTRIBUTION}-{__version__}.dist-info/"
    assert f"{dist_info}licenses/LICENSE" in names
    # Only the package and its metadata: no tests, benchmarks or scripts beside it.
    assert {name.split("/")[0] for name in names} == {PACKAGE, dist_info.rstrip("/")}
    # Every file of the package: modules, the portal's static files, the migrations, each
    # destination type's metadata.json and instructions.md (named below too, as a reader would).
    missing = _package_files() - names
    assert not missing, f"in the tree, not in the wheel: {sorted(missing)}"
    static = {n for n in names if n.startswith(f"{PACKAGE}/portal/static/")}
    assert {
        f"{PACKAGE}/portal/static/{n}" for n in ("index.html", "app.js", "styles.css")
    } <= static
    for store in ("sqlite", "postgres"):
        assert f"{PACKAGE}/storage/{store}/001_initial.sql" in names
    types = {p.parent.name for p in (SOURCE / "destinations").glob("*/metadata.json")}
    assert {"webhook", "hookdeck", "aws_sqs", "kafka"} <= types
    for kind in types:
        for name in ("metadata.json", "instructions.md"):
            assert f"{PACKAGE}/destinations/{kind}/{name}" in names, (kind, name)


def test_console_script_reports_the_version(installed: Installed) -> None:
    out = _run([str(installed.script), "--version"], cwd=installed.home, what="--version")
    assert out.strip() == __version__
    # The script runs the installed copy, not the tree's (nothing points it there).
    where = _run(
        [str(installed.python), "-c", f"import {PACKAGE}, importlib.metadata as m; "
         f"print({PACKAGE}.__file__); print(m.version({DISTRIBUTION!r}))"],
        cwd=installed.home, what="import check",
    ).split()  # fmt: skip
    assert Path(where[0]).is_relative_to(installed.venv), where
    assert where[1] == __version__


@pytest.fixture
def server(installed: Installed) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        # An empty PYTHONPATH is no path at all: nothing of the tree (or of tests/) leaks in.
        {"PYTHONPATH": "", "VIRTUAL_ENV": str(installed.venv)},
        workdir=installed.home / "server",
        program=[str(installed.script)],
        cwd=installed.home,
    )
    started = time.monotonic()
    try:
        srv.start()
        TIMINGS["server start"] = time.monotonic() - started
        yield srv
    finally:
        srv.close()


def test_installed_server_delivers_and_serves_the_portal(
    server: ServerProcess, receiver: Receiver
) -> None:
    with httpx.Client(base_url=server.root_url, timeout=10) as http:
        health = http.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["version"] == __version__

        path = receiver.new_path("wheel")
        with Outpost(api_key=server.api_key, server_url=server.base_url) as sdk:
            assert sdk.health.check().status.value == "healthy"
            sdk.tenants.upsert(tenant_id="wheel")
            dest = sdk.destinations.create(
                tenant_id="wheel",
                body={
                    "type": "webhook",
                    "topics": ["user.created"],
                    "config": {"url": receiver.url(path)},
                },
            )
            credentials = sdk.destinations.get(tenant_id="wheel", destination_id=dest.id)
            assert credentials.credentials is not None
            secret = credentials.credentials.secret
            assert secret
            res = sdk.publish(
                request={"tenant_id": "wheel", "topic": "user.created", "data": {"n": 1}}
            )
            assert res.destination_ids == [dest.id]
        [req] = receiver.wait_for(1, path=path, timeout=20)
        assert req.json() == {"n": 1}
        assert req.event_id == res.id
        assert req.signature_valid_for(secret)

        # The portal's page and its files: they are package data, served from the wheel.
        page = http.get("/")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        match = re.search(r'src="(/portal-assets/[^"]+/app\.js)"', page.text)
        assert match, page.text
        script = http.get(match.group(1))
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.content == (SOURCE / "portal" / "static" / "app.js").read_bytes()

    # SIGTERM: the installed server stops cleanly.
    assert server.stop() == 0, server.log_tail()
