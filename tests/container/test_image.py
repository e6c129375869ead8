"""The container image as a user gets it: the repository's Dockerfile, built and run.

Built with Buildah on a Debian bookworm base made here (no registry is reachable; see
support/container.py), run with `buildah run --isolation chroot`: the server answers /healthz,
the image's own HEALTHCHECK command passes, one event published through the official SDK reaches
a receiver on 127.0.0.1 signed, the processes run as the image's unprivileged user, the database
is on the /data volume, and SIGTERM to the container's main process stops it cleanly (exit 0).

Needs root, `buildah` and `mmdebstrap` (scripts/container-tools installs them from Debian). With
the tools present, anything that does not work fails the test; only their absence skips it.
"""

from __future__ import annotations

import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from outpost_sdk import Outpost
from support import container
from support.api import create_webhook, publish, unique_id, wait_attempts
from support.receiver import Receiver
from support.server import free_port
from support.waiting import PollTimeout, poll_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(1800),  # a cold run builds the base (about a minute) and the image
    pytest.mark.skipif(
        bool(container.missing_tools()),
        reason=f"needs {' and '.join(container.missing_tools())}: run scripts/container-tools",
    ),
]

UID = 10001  # the Dockerfile's user
MB = 1000 * 1000  # `buildah images` counts in decimal units
# What the image adds to its base is the virtual environment (every dependency of
# requirements/runtime.lock); a generous ceiling that catches an image suddenly carrying a
# compiler, caches or the source tree.
MAX_IMAGE_MB = 450
API_KEY = "container-admin-key-0123456789"
SECRET = "whsec_container_0123456789abcdef"


@pytest.fixture(scope="module")
def image() -> str:
    timings = container.TIMINGS
    base = container.ensure_base(timings)
    wheels = container.ensure_wheelhouse(timings)
    name = container.build_image(base, wheels, timings)
    container.SIZES["image"] = container.image_size(name)
    container.SIZES["base"] = container.image_size(base)
    return name


@pytest.fixture
def box(image: str, tmp_path: Path) -> Iterator[container.Container]:
    ctr = container.Container(image, tmp_path / "container.log")
    try:
        yield ctr
    finally:
        ctr.close()


def test_image_declares_user_volume_health_check_and_command(image: str) -> None:
    config = container.image_config(image)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] == f"{UID}:{UID}"
    assert set(config["Volumes"]) == {"/data"}
    assert env["OUTPOST_DATA_DIR"] == "/data"
    assert env["HOST"] == "0.0.0.0"  # noqa: S104 (reachable from outside the container)
    assert config["Cmd"] == ["waypost", "serve"]  # exec form: the server itself gets signals
    assert not config.get("Entrypoint")
    assert config["StopSignal"] == "SIGTERM"
    health = config["Healthcheck"]["Test"]
    assert health[0] == "CMD" and "/healthz" in " ".join(health)
    size = container.image_size(image)
    assert size < MAX_IMAGE_MB * MB, f"the image is {size / MB:.0f} MB"


def wait_healthy(box: container.Container, root: str) -> None:
    def healthy() -> bool:
        code = box.process.poll() if box.process else None
        assert code is None, f"the container exited ({code}):\n{box.log_text()}"
        return httpx.get(f"{root}/healthz", timeout=2).status_code == 200

    try:
        poll_until(healthy, timeout=60, interval=0.2, what="the container's /healthz")
    except PollTimeout as exc:
        raise AssertionError(f"{exc}\n--- container output ---\n{box.log_text()}") from exc


def stop(box: container.Container) -> None:
    """`docker stop`: SIGTERM to the main process; the server must drain and exit 0 in time."""
    assert box.process is not None
    box.terminate()
    try:
        code = box.process.wait(timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"no exit within 30 s of SIGTERM:\n{box.log_text()}") from exc
    assert code == 0, box.log_text()


def test_container_delivers_signed_event_and_stops_on_sigterm(
    image: str, box: container.Container, receiver: Receiver
) -> None:
    started = time.monotonic()
    port = free_port()
    # `buildah run --isolation chroot` shares the host's network: listen on loopback only here
    # (the image's own HOST=0.0.0.0 is checked above).
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "API_KEY": API_KEY,
        "TOPICS": "user.created",
        "DESTINATIONS_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    config = container.image_config(image)
    box.start(config["Cmd"], env)
    root = f"http://127.0.0.1:{port}"
    wait_healthy(box, root)

    # The image's HEALTHCHECK command, run in the container beside the server.
    health = config["Healthcheck"]["Test"]
    assert box.exec(health[1:], {"PORT": str(port)}, timeout=30) == 0, "HEALTHCHECK failed"
    assert box.exec(health[1:], {"PORT": str(free_port())}, timeout=30) != 0  # it can fail

    # The image's unprivileged user runs the server and its delivery process.
    main = box.main_pid()
    assert main is not None
    assert container.proc_uids(main) == [UID] * 4
    # (its delivery process too, started where two CPUs are available)
    assert all(container.proc_uids(child) == [UID] * 4 for child in container.children(main))

    # One event through the official SDK, delivered signed to a receiver on the host; then one
    # to a slow endpoint (it answers 2 s after the request arrives).
    path = receiver.new_path("container")
    url = receiver.configure(path, secret=SECRET)
    slow_path = receiver.new_path("container-slow")
    slow_url = receiver.configure(slow_path, secret=SECRET, delay=2.0)
    tenant, slow_tenant = unique_id("container"), unique_id("container-slow")
    with Outpost(api_key=API_KEY, server_url=f"{root}/api/v1") as admin:
        admin.tenants.upsert(tenant_id=tenant)
        create_webhook(admin, tenant, url, topics=["user.created"], secret=SECRET)
        event = publish(admin, tenant, {"from": "the container"})
        [req] = receiver.wait_for(1, path=path, timeout=30)
        assert req.json() == {"from": "the container"}
        assert req.header("x-outpost-event-id") == event.id
        assert req.verified is True and req.signature_valid_for(SECRET)

        admin.tenants.upsert(tenant_id=slow_tenant)
        create_webhook(admin, slow_tenant, slow_url, topics=["user.created"], secret=SECRET)
        in_flight = publish(admin, slow_tenant, {"stopped": "mid-delivery"})

    # The database is on the /data volume (a mount of its own), owned by the user, 0700.
    assert container.mount_source(main, "/data") is not None, "/data is not a mount"
    data = Path(f"/proc/{main}/root/data")
    assert (data / "outpost.db").stat().st_uid == UID
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert data.stat().st_uid == UID

    # SIGTERM while the slow delivery is in flight: the server finishes it, then exits 0.
    receiver.wait_for(1, path=slow_path, timeout=30)
    stop(box)
    assert "shutting down" in box.log_text()

    # Started again on the same volume: the tenants are there, the interrupted delivery was
    # recorded as a success and is not sent again.
    box.start(config["Cmd"], env)
    wait_healthy(box, root)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=f"{root}/api/v1", headers=auth, timeout=15) as api:
        assert api.get(f"/tenants/{tenant}").status_code == 200
        [attempt] = wait_attempts(api, 1, tenant_id=slow_tenant, event_id=in_flight.id)
        assert attempt["status"] == "success", attempt
    receiver.assert_quiet(slow_path, expected=1, window=1.0)
    stop(box)
    container.TIMINGS.seconds["run test"] = time.monotonic() - started
