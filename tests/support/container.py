"""Build and run the project's container image (the Dockerfile) offline, with Buildah.

No registry is reachable from this machine and `podman run` fails here (cgroups), so:

- the base image is built from Debian bookworm's packages with `mmdebstrap` (Debian's mirror,
  as apt is configured) and imported into Buildah's store; it is cached under a tag keyed by a
  hash of everything that goes into it, so later runs reuse it;
- the Python dependencies come from a wheelhouse built on this machine with pip (as pip is
  configured here) from requirements/runtime.lock, mounted into the build (`PIP_ARGS`);
- the image is built with `buildah bud --isolation chroot --format docker` (Docker format: OCI
  images have no HEALTHCHECK) and its containers are run with `buildah run --isolation chroot`,
  which shares the host's network, so the server and the test's receiver meet on 127.0.0.1.

`buildah run` answers SIGTERM by killing the container, unlike `docker stop` / `podman stop`,
which signal the container's main process. `Container.terminate` signals that process directly,
as those do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("buildah", "mmdebstrap")
SUITE = "bookworm"  # Debian 12: Python 3.11, the project's minimum
# The base: Python with venv, CA certificates for HTTPS destinations. `passwd` (useradd) is in
# minbase already. Documentation, manual pages and translations are left out of the image.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_DPKG_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
)
BASE_REPOSITORY = "localhost/waypost-test-base"
IMAGE_NAME = "localhost/waypost-test-image:latest"
BUILD = ("--isolation", "chroot")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(args: Sequence[str], *, timeout: float, what: str) -> str:
    """Run a command to completion; a failure raises with its output (the test fails loudly)."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"{what} failed (exit {done.returncode}): {' '.join(args)}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
        )
    return done.stdout


def image_exists(name: str) -> bool:
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", name], capture_output=True, timeout=60
    )
    return done.returncode == 0


def inspect_image(name: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(
        _run(["buildah", "inspect", "--type", "image", name], timeout=60, what="buildah inspect")
    )
    return info


def image_config(name: str) -> dict[str, Any]:
    """The image's Docker-format config: Cmd, Env, User, Volumes, Healthcheck, StopSignal..."""
    config: dict[str, Any] = inspect_image(name)["Docker"]["config"]
    return config


def image_size(name: str) -> int:
    """Bytes, as `buildah images` counts them (the layers, uncompressed), which it shows in
    decimal units to three significant digits ("348 MB")."""
    out = _run(["buildah", "images", "--json", name], timeout=60, what="buildah images")
    [entry] = json.loads(out)
    number, unit = str(entry["size"]).split()
    scale = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9}[unit]
    return round(float(number) * scale)


def base_key() -> str:
    recipe = {
        "suite": SUITE,
        "variant": "minbase",
        "packages": BASE_PACKAGES,
        "excludes": BASE_DPKG_EXCLUDES,
        "sources": _apt_sources(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _apt_sources() -> list[str]:
    """The mirror mmdebstrap uses: the host's apt sources (part of the cache key)."""
    found = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    return [p.read_text(errors="replace") for p in found if p.is_file()]


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    def report(self) -> str:
        return ", ".join(f"{name} {value:.1f}s" for name, value in self.seconds.items())


TIMINGS = Timings()  # what this session measured, shown in the test summary
SIZES: dict[str, int] = {}


def ensure_base(timings: Timings) -> str:
    """The local Debian base image's name, built (about a minute) unless already in the store."""
    name = f"{BASE_REPOSITORY}:{base_key()}"
    if image_exists(name):
        timings.seconds["base (cached)"] = 0.0
        return name
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="waypost-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--mode=root",
                f"--include={','.join(BASE_PACKAGES)}",
                *(f"--dpkgopt=path-exclude={path}" for path in BASE_DPKG_EXCLUDES),
                SUITE,
                str(tarball),
            ],
            timeout=900,
            what="mmdebstrap (the base image's root file system)",
        )
        # `podman import` without podman: a scratch container, the tarball unpacked into it.
        working = _run(["buildah", "from", "scratch"], timeout=60, what="buildah from").strip()
        try:
            _run(
                ["buildah", "add", "--quiet", working, str(tarball), "/"],
                timeout=600,
                what="buildah add",
            )
            _run(
                [
                    "buildah", "config",
                    "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--env", "LANG=C.UTF-8",
                    "--cmd", "python3",
                    working,
                ],
                timeout=60, what="buildah config",
            )  # fmt: skip
            _run(["buildah", "commit", "--quiet", working, name], timeout=600,
                 what="buildah commit")  # fmt: skip
        finally:
            subprocess.run(["buildah", "rm", working], capture_output=True, timeout=60)
    timings.seconds["base build"] = time.monotonic() - started
    return name


def ensure_wheelhouse(timings: Timings) -> Path:
    """Wheels for requirements/runtime.lock (and setuptools, the project's build backend), built
    by this machine's pip; cached per lock file."""
    lock = REPO_ROOT / "requirements" / "runtime.lock"
    key = hashlib.sha256(lock.read_bytes() + (REPO_ROOT / "pyproject.toml").read_bytes())
    folder = Path(tempfile.gettempdir()) / f"waypost-wheelhouse-{key.hexdigest()[:16]}"
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    started = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    _run(
        [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
            "--requirement", str(lock), "setuptools>=77", "--wheel-dir", str(folder),
        ],
        timeout=900, what="pip wheel (the image's wheelhouse)",
    )  # fmt: skip
    stamp.write_text("")
    timings.seconds["wheelhouse"] = time.monotonic() - started
    return folder


def build_image(base: str, wheels: Path, timings: Timings, *, label: str = "image build") -> str:
    """`buildah bud` of the repository's Dockerfile on `base`, with its layers cached; the image
    the tag named before is removed, so that runs after code changes do not pile up images."""
    previous = _image_id(IMAGE_NAME)
    started = time.monotonic()
    _run(
        [
            "buildah", "bud", *BUILD, "--format", "docker", "--layers", "--quiet",
            "--build-arg", f"BASE={base}",
            "--build-arg", "PIP_ARGS=--no-index --find-links /wheels",
            "--volume", f"{wheels}:/wheels:ro",
            "--tag", IMAGE_NAME,
            "--file", str(REPO_ROOT / "Dockerfile"),
            str(REPO_ROOT),
        ],
        timeout=900, what="buildah bud (the Dockerfile)",
    )  # fmt: skip
    timings.seconds[label] = time.monotonic() - started
    if previous is not None and previous != _image_id(IMAGE_NAME):
        subprocess.run(["buildah", "rmi", previous], capture_output=True, timeout=120)
    return IMAGE_NAME


def _image_id(name: str) -> str | None:
    if not image_exists(name):
        return None
    return str(inspect_image(name)["FromImageID"])


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class Container:
    """One working container of an image, running one command at a time with `buildah run`."""

    def __init__(self, image: str, log_path: Path) -> None:
        self.image = image
        self.name = _run(["buildah", "from", "--quiet", image], timeout=120,
                         what="buildah from").strip()  # fmt: skip
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def run_args(self, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
        envs = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
        return ["buildah", "run", *BUILD, *envs, self.name, "--", *command]

    def start(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        """Run `command` (again: the container keeps its file system and volumes)."""
        if self._log is not None:
            self._log.close()
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.run_args(command, env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exec(self, command: Sequence[str], env: Mapping[str, str], timeout: float) -> int:
        """Another command in the same container (beside the running one); its exit status."""
        return subprocess.run(
            self.run_args(command, env), capture_output=True, timeout=timeout, check=False
        ).returncode

    def main_pid(self) -> int | None:
        """The container's main process: the command `buildah run` started in the chroot (its
        parent is Buildah's `buildah-chroot-exec`), or None while it is not there yet."""
        assert self.process is not None
        queue = [self.process.pid]
        while queue:
            pid = queue.pop()
            for child in children(pid):
                parent = _cmdline(pid)
                if parent[:1] == ["buildah-chroot-exec"] and _cmdline(child)[:1] != parent[:1]:
                    return child
                queue.append(child)
        return None

    def terminate(self) -> None:
        """`docker stop`'s first step: the stop signal (SIGTERM) to the main process."""
        pid = self.main_pid()
        assert pid is not None, "the container's main process is gone"
        os.kill(pid, signal.SIGTERM)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # `buildah run` kills the container and cleans up
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        if self._log is not None:
            self._log.close()
        subprocess.run(["buildah", "rm", self.name], capture_output=True, timeout=120)


def proc_uids(pid: int) -> list[int]:
    """Real, effective, saved and file-system uid of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(v) for v in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def mount_source(pid: int, mount_point: str) -> str | None:
    """The host-side source of the mount at `mount_point` in the process's view, if any."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == mount_point:
            return fields[3]
    return None
