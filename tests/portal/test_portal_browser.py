"""The tenant portal in a real browser (headless Chromium), against a real server process and a
real webhook receiver: what a tenant does through the UI, and the session rules around it.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
from playwright.sync_api import Locator, Page, expect
from support.api import unique_id
from support.receiver import Receiver
from support.server import DEFAULT_JWT_SECRET, ServerProcess

from .conftest import PHONE, REFRESH_PATH, NewPage


def portal_url(api: httpx.Client, tenant_id: str, theme: str | None = None) -> str:
    """What an operator's backend asks for before redirecting its user (contract.md §7.3)."""
    params = {"theme": theme} if theme else {}
    response = api.get(f"/tenants/{tenant_id}/portal", params=params)
    assert response.status_code == 200, response.text
    url = response.json()["redirect_url"]
    assert isinstance(url, str)
    return url


def new_tenant(api: httpx.Client, label: str) -> str:
    tenant_id = unique_id(label)
    assert api.put(f"/tenants/{tenant_id}").status_code == 201
    return tenant_id


def forge_token(tenant_id: str, *, expires_in: int, secret: str = DEFAULT_JWT_SECRET) -> str:
    """A tenant JWT as the server would issue it, expiring `expires_in` seconds from now."""
    now = int(time.time())
    claims = {"iss": "outpost", "sub": tenant_id, "iat": now - 120, "exp": now + expires_in}
    with warnings.catch_warnings():  # the e2e secret is 31 bytes; PyJWT warns under 32
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm="HS256")


def refresh_until(page: Page, found: Callable[[], Locator], timeout: float = 20.0) -> Locator:
    """Clicks the attempts list's Refresh until `found()` matches something, or fails."""
    deadline = time.monotonic() + timeout
    while True:
        locator = found()
        if locator.count():
            return locator
        if time.monotonic() > deadline:
            raise AssertionError(f"not shown within {timeout}s: {locator}")
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_load_state()
        page.wait_for_timeout(300)  # the list re-renders after its request; poll again


def snap(page: Page, path: Path) -> None:
    """A full-page screenshot once the page is settled (no toast over the footer)."""
    expect(page.locator(".toast--shown")).to_have_count(0, timeout=10_000)
    page.screenshot(path=path, full_page=True)


def attempt_rows(page: Page, event_id: str) -> Locator:
    return page.locator("tr[data-attempt]", has=page.get_by_role("link", name=event_id))


def test_create_a_webhook_publish_and_retry(
    server: ServerProcess,
    api: httpx.Client,
    receiver: Receiver,
    new_page: NewPage,
    screenshots: Path,
) -> None:
    tenant_id = new_tenant(api, "portal")
    hook_path = receiver.new_path("portal")
    hook_url = receiver.configure(hook_path, body='{"ok":true}', content_type="application/json")
    page = new_page()

    page.goto(portal_url(api, tenant_id))
    expect(page.get_by_role("heading", name="Event destinations", level=1)).to_be_visible()
    # The token moved from the address bar into this tab's storage.
    assert "token=" not in page.url
    assert page.url.rstrip("/") == server.root_url
    assert page.evaluate("sessionStorage.getItem('outpost-portal:token')")
    expect(page.get_by_text("No destinations yet")).to_be_visible()

    page.get_by_role("link", name="Add destination").click()
    page.get_by_role("link", name=re.compile("^Webhook")).click()
    expect(page.get_by_role("heading", name="New Webhook destination")).to_be_visible()
    page.get_by_role("checkbox", name="All topics").uncheck()
    page.get_by_role("checkbox", name="user.created").check()
    page.get_by_label("Endpoint URL").fill(hook_url)
    page.get_by_role("button", name="Add a header").click()
    page.get_by_label("header 1 name").fill("X-Tenant-Region")
    page.get_by_label("header 1 value").fill("eu-west")
    snap(page, screenshots / "create-form.png")
    page.get_by_role("button", name="Create destination").click()

    expect(page.get_by_role("heading", name=hook_url, level=1)).to_be_visible()
    destination_id = page.url.rsplit("/", 1)[1]
    created = api.get(f"/tenants/{tenant_id}/destinations/{destination_id}").json()
    assert created["config"] == {
        "url": hook_url,
        "custom_headers": '{"X-Tenant-Region":"eu-west"}',
    }
    assert created["topics"] == ["user.created"]

    event_id = unique_id("evt")
    published = api.post(
        "/publish",
        json={
            "id": event_id,
            "tenant_id": tenant_id,
            "topic": "user.created",
            "data": {"user_id": "u-42", "plan": "pro"},
        },
    )
    assert published.json()["destination_ids"] == [destination_id]
    delivered = receiver.wait_for(1, hook_path)[0]
    assert delivered.json() == {"user_id": "u-42", "plan": "pro"}
    assert delivered.header("x-tenant-region") == "eu-west"

    first = refresh_until(page, lambda: attempt_rows(page, event_id))
    expect(first).to_have_count(1)
    expect(first).to_contain_text("Successful")
    expect(first).to_contain_text("#1")
    snap(page, screenshots / "destination.png")

    first.get_by_role("link", name=event_id).click()
    expect(page.get_by_role("heading", name="Attempt #1")).to_be_visible()
    expect(page.get_by_role("region", name="Request body").locator("pre")).to_contain_text(
        '"user_id": "u-42"'
    )
    expect(page.get_by_text("HTTP 200")).to_be_visible()
    expect(page.locator("[data-latency]")).to_have_text(re.compile(r"^\d+ ms$"))
    # What was sent, headers too, and what came back can be copied.
    headers = page.get_by_role("region", name="Request headers")
    expect(headers).to_contain_text("X-Tenant-Region: eu-west")
    expect(headers).to_contain_text(f"X-Outpost-Event-Id: {event_id}")
    expect(headers).to_contain_text(
        f"X-Outpost-Signature: {delivered.header('x-outpost-signature')}"
    )
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy request headers").click()
    copied = page.evaluate("navigator.clipboard.readText()").splitlines()
    assert "Content-Type: application/json" in copied and "X-Tenant-Region: eu-west" in copied
    page.get_by_role("button", name="Copy response").click()
    expect(page.get_by_role("button", name="Copy response")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == 'HTTP 200\n\n{\n  "ok": true\n}'
    page.get_by_role("button", name="Copy request body").click()
    assert '"user_id": "u-42"' in page.evaluate("navigator.clipboard.readText()")
    snap(page, screenshots / "attempt.png")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("Retry queued.")).to_be_visible()

    page.get_by_role("link", name="See the attempts").click()
    both = refresh_until(page, lambda: attempt_rows(page, event_id).filter(has_text="#2"))
    expect(both).to_contain_text("(manual)")
    expect(attempt_rows(page, event_id)).to_have_count(2)
    assert len(receiver.wait_for(2, hook_path)) == 2

    page.get_by_role("link", name="All destinations").click()
    row = page.locator("tbody tr", has_text=hook_url)
    expect(row).to_contain_text("Webhook")
    expect(row).to_contain_text("user.created")
    expect(row).to_contain_text("Active")
    snap(page, screenshots / "destinations.png")


def test_an_expired_token_sends_the_user_to_the_refresh_url(
    server: ServerProcess, api: httpx.Client, receiver: Receiver, new_page: NewPage
) -> None:
    tenant_id = new_tenant(api, "expired")
    expired = forge_token(tenant_id, expires_in=-60)
    page = new_page()
    page.goto(f"{server.root_url}/?token={expired}")
    page.wait_for_url(receiver.url(REFRESH_PATH))

    # A token the server refuses (401) though its `exp` is fine: the same.
    refused = forge_token(tenant_id, expires_in=3600, secret="not-the-server-secret-0123456789ab")
    page.goto(f"{server.root_url}/?token={refused}")
    page.wait_for_url(receiver.url(REFRESH_PATH))

    # A token that expires while the page is open: the user is sent away when it does.
    soon = forge_token(tenant_id, expires_in=6)
    page.goto(f"{server.root_url}/?token={soon}")
    expect(page.get_by_role("heading", name="Event destinations")).to_be_visible()
    page.wait_for_url(receiver.url(REFRESH_PATH), timeout=20_000)
    assert page.evaluate("sessionStorage.getItem('outpost-portal:token')") is None


def test_a_tenant_cannot_open_another_tenants_destination(
    server: ServerProcess, api: httpx.Client, receiver: Receiver, new_page: NewPage
) -> None:
    tenant_a = new_tenant(api, "tenant-a")
    tenant_b = new_tenant(api, "tenant-b")
    secret_url = receiver.url(receiver.new_path("b-private"))
    created = api.post(
        f"/tenants/{tenant_b}/destinations",
        json={"type": "webhook", "topics": "*", "config": {"url": secret_url}},
    )
    assert created.status_code == 201
    foreign_id = created.json()["id"]

    token = portal_url(api, tenant_a).split("token=", 1)[1]
    page = new_page()
    page.goto(f"{server.root_url}/destinations/{foreign_id}?token={token}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_text("destination not found", exact=False)).to_be_visible()
    assert secret_url not in page.content()
    assert tenant_b not in page.content()


def test_dark_theme_and_phone_width(
    server: ServerProcess,
    api: httpx.Client,
    receiver: Receiver,
    new_page: NewPage,
    screenshots: Path,
) -> None:
    tenant_id = new_tenant(api, "themes")
    ok_path = receiver.new_path("ok")
    failing_path = receiver.new_path("failing")
    receiver.configure(ok_path)
    receiver.configure(failing_path, status=503, body="maintenance")
    for path, topics in ((ok_path, ["user.created", "user.updated"]), (failing_path, "*")):
        body = {"type": "webhook", "topics": topics, "config": {"url": receiver.url(path)}}
        assert api.post(f"/tenants/{tenant_id}/destinations", json=body).status_code == 201
    for n in range(3):
        api.post(
            "/publish", json={"tenant_id": tenant_id, "topic": "user.created", "data": {"n": n}}
        )
    receiver.wait_for(3, ok_path)
    receiver.wait_for(3, failing_path)

    page = new_page(color_scheme="dark")
    metrics_answers: list[int] = []
    page.on(
        "response",
        lambda r: metrics_answers.append(r.status) if "/metrics/attempts" in r.url else None,
    )
    page.goto(portal_url(api, tenant_id, theme="dark"))
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.locator("tbody tr")).to_have_count(2)
    ok_row = page.locator("tbody tr", has=page.get_by_role("link", name=receiver.url(ok_path)))
    failing_row = page.locator(
        "tbody tr", has=page.get_by_role("link", name=receiver.url(failing_path))
    )
    expect(ok_row.locator("[data-health]")).to_have_attribute("data-health", "100")
    expect(failing_row.locator("[data-health]")).to_have_attribute("data-health", "0")
    expect(ok_row.locator(".health__cell--ok")).to_have_count(1)
    page.get_by_role("link", name=receiver.url(failing_path)).click()
    failed = page.locator("tr[data-attempt]").filter(has_text="Failed")
    expect(failed.first).to_be_visible()
    failed_stat = page.locator('[data-stat="failed"]')
    expect(failed_stat).not_to_have_text("0")
    # One metrics request drew every health strip of the list, one more the chart.
    assert metrics_answers == [200, 200]
    page.get_by_label("Status").select_option("failed")
    expect(page).to_have_url(re.compile(r"\?status=failed$"))
    expect(page.get_by_label("Status")).to_have_value("failed")
    expect(page.locator("tr[data-attempt]").first).to_be_visible()
    expect(page.locator("tr[data-attempt]").filter(has_text="Successful")).to_have_count(0)
    snap(page, screenshots / "destination-dark.png")

    phone = new_page(viewport=PHONE)
    phone.goto(portal_url(api, tenant_id))
    expect(phone.locator("html")).to_have_attribute("data-theme", "light")
    expect(phone.locator("tbody tr")).to_have_count(2)
    # Nothing is wider than the screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    snap(phone, screenshots / "destinations-phone.png")
    phone.get_by_role("link", name=receiver.url(ok_path)).click()
    expect(phone.locator("tr[data-attempt]").first).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    snap(phone, screenshots / "destination-phone.png")


def test_the_chart_counts_attempts_itself_on_a_server_without_metrics(
    server: ServerProcess, api: httpx.Client, receiver: Receiver, new_page: NewPage
) -> None:
    """`GET /metrics/attempts` answered 404 by the browser itself (Playwright routing), as a
    server without the metrics API would: the chart counts the attempts list instead."""
    tenant_id = new_tenant(api, "no-metrics")
    path = receiver.new_path("no-metrics")
    receiver.configure(path)
    body = {"type": "webhook", "topics": "*", "config": {"url": receiver.url(path)}}
    destination = api.post(f"/tenants/{tenant_id}/destinations", json=body).json()
    for n in range(2):
        api.post(
            "/publish", json={"tenant_id": tenant_id, "topic": "user.created", "data": {"n": n}}
        )
    attempts = f"/tenants/{tenant_id}/destinations/{destination['id']}/attempts"
    deadline = time.monotonic() + 15
    while len(api.get(attempts).json()["models"]) < 2:
        assert time.monotonic() < deadline, "the two attempts were not recorded"
        time.sleep(0.1)

    page = new_page()
    page.route(
        "**/api/v1/metrics/**",
        lambda route: route.fulfill(status=404, json={"status": 404, "message": "not found"}),
    )
    page.goto(portal_url(api, tenant_id))
    page.get_by_role("link", name=receiver.url(path)).click()
    expect(page.locator("tr[data-attempt]")).to_have_count(2)
    expect(page.locator('[data-stat="successful"]')).to_have_text("2")
    expect(page.locator('[data-stat="failed"]')).to_have_text("0")


def test_the_destination_page_shows_its_effective_delivery_limits(
    server: ServerProcess, api: httpx.Client, receiver: Receiver, new_page: NewPage
) -> None:
    tenant_id = new_tenant(api, "limits")
    own = {"outpost.max_concurrency": "3", "outpost.rate_limit_per_second": "2"}
    for label, metadata in (("own-limits", own), ("default-limits", None)):
        body = {"type": "webhook", "topics": "*", "config": {"url": receiver.url(f"/{label}")}}
        if metadata:
            body["metadata"] = metadata
        assert api.post(f"/tenants/{tenant_id}/destinations", json=body).status_code == 201

    page = new_page()
    page.goto(portal_url(api, tenant_id))
    page.get_by_role("link", name=receiver.url("/own-limits")).click()
    limits = page.locator("[data-limits]")
    expect(limits).to_have_text("up to 3 at once, 2 per second (set for this destination)")
    page.get_by_role("link", name="All destinations").click()
    page.get_by_role("link", name=receiver.url("/default-limits")).click()
    # The server's defaults: DELIVERY_MAX_CONCURRENCY 64 / 8, no rate limit.
    expect(limits).to_have_text("up to 8 at once, no rate limit (server default)")


def test_edit_disable_rotate_and_delete(
    server: ServerProcess, api: httpx.Client, receiver: Receiver, new_page: NewPage
) -> None:
    tenant_id = new_tenant(api, "manage")
    first_url = receiver.url(receiver.new_path("before"))
    second_url = receiver.url(receiver.new_path("after"))
    body = {"type": "webhook", "topics": ["user.created"], "config": {"url": first_url}}
    created = api.post(f"/tenants/{tenant_id}/destinations", json=body).json()
    resource = f"/tenants/{tenant_id}/destinations/{created['id']}"
    old_secret = created["credentials"]["secret"]

    page = new_page()
    page.goto(portal_url(api, tenant_id))
    page.get_by_role("button", name="Dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.get_by_role("button", name="Dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.get_by_role("link", name=first_url).click()

    page.get_by_role("button", name="Disable").click()
    badge = page.locator(".title-row .badge")
    expect(badge).to_have_text("Disabled")
    assert api.get(resource).json()["disabled_at"] is not None
    page.get_by_role("button", name="Enable").click()
    expect(badge).to_have_text("Active")
    assert api.get(resource).json()["disabled_at"] is None

    page.get_by_role("button", name="Rotate secret").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_text("Previous secret valid until")).to_be_visible()
    rotated = api.get(resource).json()["credentials"]
    assert rotated["previous_secret"] == old_secret
    assert rotated["secret"] != old_secret
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text(rotated["secret"])).to_be_visible()

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit destination")).to_be_visible()
    page.get_by_label("Endpoint URL").fill("not a url")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_contain_text("config.url")
    expect(page.get_by_label("Endpoint URL")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Endpoint URL").fill(second_url)
    page.get_by_role("checkbox", name="user.updated").click()
    page.get_by_label("Filter").fill('{"data": {"plan": "pro"}}')
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name=second_url, level=1)).to_be_visible()
    saved = api.get(resource).json()
    assert saved["config"]["url"] == second_url
    assert saved["topics"] == ["user.created", "user.updated"]
    assert saved["filter"] == {"data": {"plan": "pro"}}

    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert api.get(resource).status_code == 200
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete destination").click()
    expect(page.get_by_text("No destinations yet")).to_be_visible()
    assert api.get(resource).status_code == 404


def test_the_portal_works_from_the_keyboard(
    server: ServerProcess, api: httpx.Client, new_page: NewPage
) -> None:
    tenant_id = new_tenant(api, "keyboard")
    page = new_page()
    page.goto(portal_url(api, tenant_id))
    expect(page.get_by_role("heading", name="Event destinations")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("link", name="Add destination").focus()
    page.keyboard.press("Enter")
    # After a navigation the new page's heading has the focus (screen readers announce it).
    expect(page.get_by_role("heading", name="Add a destination")).to_be_focused()
    page.get_by_role("link", name=re.compile("^Webhook")).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="New Webhook destination")).to_be_focused()
    page.get_by_role("button", name="Create destination").focus()
    page.keyboard.press("Enter")
    # The browser's own check: the required URL is missing, nothing was sent.
    expect(page.get_by_label("Endpoint URL")).to_be_focused()
    assert api.get(f"/tenants/{tenant_id}/destinations").json() == []


LOGO = (
    "data:image/svg+xml,"
    "%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 120 28'%3E"
    "%3Crect width='28' height='28' rx='6' fill='%23facc15'/%3E"
    "%3Ctext x='36' y='20' font-family='sans-serif' font-size='16' fill='%23facc15'%3E"
    "Globex%3C/text%3E%3C/svg%3E"
)


def test_branding_settings_shape_the_page(
    tmp_path: Path, receiver: Receiver, new_page: NewPage, screenshots: Path
) -> None:
    env = {
        "PORTAL_ORGANIZATION_NAME": "Globex",
        "PORTAL_BRAND_COLOR": "#facc15",
        "PORTAL_LOGO": LOGO,
        "PORTAL_FORCE_THEME": "dark",
        "PORTAL_DISABLE_OUTPOST_BRANDING": "true",
    }
    with ServerProcess(env, workdir=tmp_path) as branded, branded.http() as admin:
        tenant_id = new_tenant(admin, "branded")
        page = new_page()
        page.goto(portal_url(admin, tenant_id, theme="light"))
        add = page.get_by_role("link", name="Add destination")
        expect(add).to_be_visible()
        # The forced theme wins over the URL's; nothing offers to change it.
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        expect(page.get_by_role("button", name="Dark theme")).to_have_count(0)
        expect(page.get_by_role("img", name="Globex")).to_be_visible()
        expect(page.get_by_text("Powered by")).to_have_count(0)
        assert page.title() == "Event destinations · Globex"
        style = add.evaluate(
            "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]"
        )
        # A light brand colour gets dark text, so the button stays readable.
        assert style == ["rgb(250, 204, 21)", "rgb(0, 0, 0)"]
        snap(page, screenshots / "branded-dark.png")


def drawn(page: Page) -> None:
    """Waits until the attempts list is the one for the address now shown (a filter change
    redraws it after its request)."""
    query = urlsplit(page.url).query
    expect(page.locator(f'section[data-query="{"?" + query if query else ""}"]')).to_have_count(1)


def publish(
    api: httpx.Client, tenant_id: str, topic: str, *, retry: bool = True, to: str | None = None
) -> str:
    event_id = unique_id("evt")
    body = {
        "id": event_id,
        "tenant_id": tenant_id,
        "topic": topic,
        "data": {"n": event_id},
        "eligible_for_retry": retry,
    }
    if to:
        body["destination_id"] = to
    assert api.post("/publish", json=body).status_code == 202
    return event_id


def test_attempts_filters_retries_recovery_and_test_events(
    server: ServerProcess,
    api: httpx.Client,
    receiver: Receiver,
    new_page: NewPage,
    screenshots: Path,
) -> None:
    tenant_id = new_tenant(api, "recover")
    down_path = receiver.new_path("down")
    flaky_path = receiver.new_path("flaky")
    receiver.configure(down_path, status=503, body="maintenance")
    receiver.configure(flaky_path, fail_first_per_event=1)
    ids = []
    for path in (down_path, flaky_path):
        body = {"type": "webhook", "topics": "*", "config": {"url": receiver.url(path)}}
        response = api.post(f"/tenants/{tenant_id}/destinations", json=body)
        assert response.status_code == 201
        ids.append(response.json()["id"])
    down_id, flaky_id = ids
    created, updated, deleted = (
        publish(api, tenant_id, topic, retry=False)
        for topic in ("user.created", "user.updated", "user.deleted")
    )
    receiver.wait_for(3, down_path)
    late = publish(api, tenant_id, "user.created", to=flaky_id)
    receiver.wait_for(5, flaky_path)  # the three above fail once each, then `late` twice

    for destination_id, count in ((down_id, 3), (flaky_id, 5)):
        attempts = f"/tenants/{tenant_id}/destinations/{destination_id}/attempts"
        deadline = time.monotonic() + 15
        while len(api.get(attempts).json()["models"]) < count:
            assert time.monotonic() < deadline, "the attempts were not recorded"
            time.sleep(0.1)

    page = new_page()
    page.goto(portal_url(api, tenant_id))
    page.get_by_role("link", name=receiver.url(down_path)).click()
    rows = page.locator("tr[data-attempt]")
    expect(rows).to_have_count(3)

    # Several topics at once, kept in the address.
    menu = page.locator(".multi__summary")
    menu.click()
    # click, not check: the list redraws at once, so the box it toggled is gone afterwards
    page.get_by_role("checkbox", name="user.created").click()
    expect(page).to_have_url(re.compile(r"\?topic=user\.created$"))
    expect(menu).to_have_text("Topics: user.created")  # the list was drawn again
    menu.click()
    page.get_by_role("checkbox", name="user.updated").click()
    expect(page).to_have_url(re.compile(r"topic=user\.created&topic=user\.updated"))
    expect(rows).to_have_count(2)
    expect(attempt_rows(page, deleted)).to_have_count(0)

    # A time range: the last hour holds them all; a custom window in the past holds none.
    page.get_by_label("Time").select_option("1h")
    expect(page).to_have_url(re.compile(r"range=1h"))
    drawn(page)
    expect(rows).to_have_count(2)
    page.get_by_label("Time").select_option("custom")
    page.get_by_label("From", exact=True).fill("2020-01-01T00:00")
    page.get_by_label("To", exact=True).fill("2020-01-02T00:00")
    expect(page.get_by_text("No attempts match these filters.")).to_be_visible()

    # Search by event id (the other filters cleared).
    page.goto(f"{server.root_url}/destinations/{down_id}")
    page.get_by_label("Event ID").fill(updated)
    page.get_by_label("Event ID").press("Enter")
    expect(rows).to_have_count(1)
    expect(attempt_rows(page, updated)).to_have_count(1)
    page.get_by_label("Event ID").fill("")
    page.get_by_label("Event ID").press("Enter")
    expect(rows).to_have_count(3)

    # Retry from a row, once the endpoint is back.
    receiver.set_status(down_path, 200)
    page.get_by_role("button", name=f"Retry {created}").click()
    expect(page.get_by_role("button", name=f"Retry {created}")).to_have_text("Queued")
    refresh_until(page, lambda: attempt_rows(page, created).filter(has_text="#2 (manual)"))

    # Retry everything failed in this view: a recovery job, with its progress.
    page.get_by_label("Status").select_option("failed")
    expect(page).to_have_url(re.compile(r"status=failed"))
    drawn(page)
    page.get_by_role("button", name="Retry all failed in this view").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Retry 2 failed events?")  # `created` was delivered
    dialog.get_by_role("button", name="Retry them").click()
    panel = page.locator("[data-recovery]")
    expect(panel).to_have_attribute("data-state", "finished", timeout=20_000)
    expect(panel).to_contain_text("2 of 2 queued · 2 delivered · 0 failed")
    delivered = {r.event_id for r in receiver.wait_for(6, down_path)}
    assert {created, updated, deleted} <= delivered
    # Every failed row of the view now says its event got through later.
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator('[data-marker="delivered-later"]')).to_have_count(3)
    snap(page, screenshots / "recovery.png")

    # A test event, found in the list by its id.
    page.get_by_role("button", name="Send test event").click()
    test_event = page.locator("[data-test-event]").inner_text()
    page.get_by_label("Status").select_option("")
    expect(page).not_to_have_url(re.compile(r"status=failed"))
    drawn(page)
    test_row = refresh_until(page, lambda: attempt_rows(page, test_event))
    expect(test_row.locator('[data-marker="test"]')).to_have_text("Test event")
    assert test_event in {r.event_id for r in receiver.wait_for(7, down_path)}

    # The type's guide to receiving and verifying.
    page.get_by_text("Receiving Webhook events and verifying them").click()
    guide = page.locator("[data-guide]")
    expect(guide.get_by_role("heading", name="Checking the signature")).to_be_visible()
    expect(guide.locator("table")).to_contain_text("x-outpost-signature")
    expect(page.locator(".toast--shown")).to_have_count(0, timeout=10_000)
    guide.screenshot(path=screenshots / "guide.png")

    # A failed attempt whose event got through on a later attempt says so.
    page.get_by_role("link", name="All destinations").click()
    page.get_by_role("link", name=receiver.url(flaky_path)).click()
    first = refresh_until(page, lambda: attempt_rows(page, late).filter(has_text="#2"))
    expect(first).to_contain_text("Successful")
    failed_first = attempt_rows(page, late).filter(has_text="#1")
    expect(failed_first.locator('[data-marker="delivered-later"]')).to_have_text("Delivered later")
    # `created` never reached this one (not eligible for retry): no marker.
    expect(attempt_rows(page, created)).to_contain_text("Failed")
    expect(attempt_rows(page, created).locator("[data-marker]")).to_have_count(0)


def test_a_failed_attempt_says_when_an_automatic_retry_follows(
    tmp_path: Path, receiver: Receiver, new_page: NewPage
) -> None:
    """An hour between retries, so the scheduled retry is still pending while the page looks."""
    env = {"RETRY_INTERVAL_SECONDS": "3600", "MAX_RETRY_LIMIT": "2"}
    with ServerProcess(env, workdir=tmp_path) as slow, slow.http() as admin:
        tenant_id = new_tenant(admin, "retrying")
        path = receiver.new_path("retrying")
        receiver.configure(path, status=503)
        body = {"type": "webhook", "topics": "*", "config": {"url": receiver.url(path)}}
        destination_id = admin.post(f"/tenants/{tenant_id}/destinations", json=body).json()["id"]
        will_retry = publish(admin, tenant_id, "user.created")
        never = publish(admin, tenant_id, "user.updated", retry=False)
        receiver.wait_for(2, path)
        # A manual retry of attempt #2 is #3: over the budget of 2, nothing follows it.
        spent = publish(admin, tenant_id, "user.deleted")
        receiver.wait_for(3, path)
        attempts = f"/tenants/{tenant_id}/destinations/{destination_id}/attempts"

        def recorded(count: int) -> None:
            deadline = time.monotonic() + 15
            while len(admin.get(attempts).json()["models"]) < count:
                assert time.monotonic() < deadline, f"{count} attempts were not recorded"
                time.sleep(0.1)

        recorded(3)
        # Each manual retry numbers itself after the latest recorded attempt: one at a time.
        for count in (4, 5):
            retry = {"event_id": spent, "destination_id": destination_id}
            assert admin.post("/retry", json=retry).status_code == 202
            recorded(count)

        page = new_page()
        page.goto(portal_url(admin, tenant_id))
        page.get_by_role("link", name=receiver.url(path)).click()
        expect(page.locator("tr[data-attempt]")).to_have_count(5)
        scheduled = page.locator('[data-marker="retrying"]')
        expect(scheduled).to_have_count(1)
        # The time is the server's: when the pending automatic retry (#2, in an hour) is due.
        [pending] = [
            a
            for a in admin.get(attempts, params={"event_id": will_retry}).json()["models"]
            if a["next_attempt_at"]
        ]
        marked = attempt_rows(page, will_retry).locator("[data-marker]")
        expect(marked).to_contain_text(re.compile(r"^Next retry at \S"))
        expect(marked.locator("time")).to_have_attribute("datetime", pending["next_attempt_at"])
        due = datetime.fromisoformat(pending["next_attempt_at"].replace("Z", "+00:00"))
        assert 3500 < (due - datetime.now(UTC)).total_seconds() <= 3600
        attempt_rows(page, will_retry).get_by_role("link", name=will_retry).click()
        expect(page.locator("[data-next-attempt] time")).to_have_attribute(
            "datetime", pending["next_attempt_at"]
        )
        page.go_back()
        expect(attempt_rows(page, never).locator("[data-marker]")).to_have_count(0)
        expect(attempt_rows(page, spent).locator("[data-marker]")).to_have_count(0)
