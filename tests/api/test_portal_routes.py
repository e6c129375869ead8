"""The tenant portal's HTTP surface, in process (contract.md §7.3): the page on `/` and its client
routes, its runtime settings, its versioned assets, and the headers that keep it safe.

What the page does in a browser is tests/portal's job; here: what is served, how it is cached,
what it may load (CSP), and that no secret reaches it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from waypost import bootstrap
from waypost.config import load
from waypost.errors import ConfigError
from waypost.portal.serving import STATIC
from waypost.roles import Roles

from ._support import API_KEY, JWT_SECRET, Api, assert_error, load_config, ok, unique
from .conftest import MakeApi

pytestmark = pytest.mark.anyio

ROOT = "http://testserver"
BRANDED = {
    "PORTAL_ORGANIZATION_NAME": "Acme </script><script>alert(1)</script>",
    "PORTAL_BRAND_COLOR": "#6d28d9",
    "PORTAL_LOGO": "https://cdn.acme.test/logo.svg",
    "PORTAL_LOGO_DARK": "https://cdn-dark.acme.test/logo-dark.svg",
    "PORTAL_FAVICON_URL": "https://cdn.acme.test/favicon.ico",
    "PORTAL_REFERER_URL": "https://app.acme.test/settings",
    "PORTAL_REFRESH_URL": "https://app.acme.test/portal-session",
    "PORTAL_DISABLE_OUTPOST_BRANDING": "true",
    "PORTAL_ENABLE_DESTINATION_FILTER": "true",
    "TOPICS": "user.created,user.deleted",
}


async def page(api: Api, path: str = "/") -> httpx.Response:
    response = await api.call("GET", ROOT + path, auth=None)
    assert response.status_code == 200, (path, response.status_code, response.text)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return response


def settings_of(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="portal-settings">(.*?)</script>', html)
    assert found, html
    settings = json.loads(found.group(1))
    assert isinstance(settings, dict)
    return settings


def asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/portal-assets/[^"]+)"', html)


async def test_the_portal_url_opens_the_page(api: Api) -> None:
    tenant = await api.tenant()
    redirect = (await api.get(f"/tenants/{tenant}/portal"))["redirect_url"]
    assert redirect.startswith(f"{ROOT}?token=")
    response = await page(api, "/?" + redirect.split("?", 1)[1])
    assert '<div id="app"' in response.text


async def test_portal_links_use_the_host_of_the_admin_call_by_default(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.call(
        "GET", f"/tenants/{tenant}/portal", headers={"Host": "outpost.internal:3333"}
    )
    assert ok(response)["redirect_url"].startswith("http://outpost.internal:3333?token=")


async def test_portal_links_use_the_public_url_behind_a_private_api_hostname(
    make_api: MakeApi,
) -> None:
    api = await make_api(PORTAL_PUBLIC_URL="https://portal.acme.test/")
    tenant = await api.tenant()
    response = await api.call(
        "GET",
        f"/tenants/{tenant}/portal",
        params={"theme": "dark"},
        headers={"Host": "outpost.internal:3333"},
    )
    redirect = ok(response)["redirect_url"]
    assert redirect.startswith("https://portal.acme.test?token=")
    assert redirect.endswith("&theme=dark")
    assert "internal" not in redirect


@pytest.mark.parametrize(
    "value",
    [
        "portal.acme.test",
        "ftp://portal.acme.test",
        "https://acme.test/portal",
        "https://acme.test/?a=1",
    ],
)
def test_a_public_portal_url_that_cannot_work_is_refused_at_start(value: str) -> None:
    with pytest.raises(ConfigError, match="PORTAL_PUBLIC_URL"):
        load({"PORTAL_PUBLIC_URL": value})


@pytest.mark.parametrize(
    "path",
    ["/", "/new", "/new/webhook", "/destinations/d1", "/destinations/d1/attempts/a1"],
)
async def test_client_routes_serve_the_page_never_cached(api: Api, path: str) -> None:
    response = await page(api, path)
    assert response.headers["cache-control"] == "no-store, max-age=0"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_the_page_is_under_a_strict_content_security_policy(make_api: MakeApi) -> None:
    api = await make_api(**BRANDED)
    response = await page(api)
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    # The operator's logo and favicon hosts, and nothing else from outside.
    assert policy["img-src"].split() == [
        "'self'",
        "data:",
        "https://cdn.acme.test",
        "https://cdn-dark.acme.test",
    ]
    # Nothing inline is executable: the only inline script element holds JSON data.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.text, re.S)
    assert [(attrs, bool(body.strip())) for attrs, body in scripts] == [
        (' type="application/json" id="portal-settings"', True),
        (f' type="module" src="{asset_urls(response.text)[1]}"', False),
    ]
    assert "style=" not in response.text


async def test_branding_reaches_the_page_escaped_and_without_secrets(make_api: MakeApi) -> None:
    api = await make_api(**BRANDED)
    html = (await page(api)).text
    settings = settings_of(html)
    assert settings["ORGANIZATION_NAME"] == BRANDED["PORTAL_ORGANIZATION_NAME"]
    assert settings["BRAND_COLOR"] == "#6d28d9"
    assert settings["LOGO"] == BRANDED["PORTAL_LOGO"]
    assert settings["LOGO_DARK"] == BRANDED["PORTAL_LOGO_DARK"]
    assert settings["REFRESH_URL"] == BRANDED["PORTAL_REFRESH_URL"]
    assert settings["REFERER_URL"] == BRANDED["PORTAL_REFERER_URL"]
    assert settings["DISABLE_OUTPOST_BRANDING"] == "true"
    assert settings["ENABLE_DESTINATION_FILTER"] == "true"
    assert settings["ENABLE_WEBHOOK_CUSTOM_HEADERS"] == "false"
    assert settings["TOPICS"] == "user.created,user.deleted"
    assert all(isinstance(v, str) for v in settings.values())
    # The organization name cannot close the script element or the title.
    assert html.count("</script>") == 2
    assert "<title>Acme &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<link rel="icon" href="https://cdn.acme.test/favicon.ico">' in html
    system = api.system.config
    for secret in (API_KEY, JWT_SECRET, system.aes_encryption_secret):
        assert secret not in html


async def test_outposts_settings_script_is_served_too(make_api: MakeApi) -> None:
    api = await make_api(**BRANDED)
    response = await api.call("GET", ROOT + "/inject-portal-config.js", auth=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "no-store, max-age=0"
    prefix, _, rest = response.text.partition(" = ")
    assert prefix == "window.PORTAL_CONFIGS"
    settings = json.loads(rest.strip().removesuffix(";"))
    assert set(settings) == {
        "REFERER_URL",
        "REFRESH_URL",
        "FAVICON_URL",
        "BRAND_COLOR",
        "LOGO",
        "LOGO_DARK",
        "ORGANIZATION_NAME",
        "FORCE_THEME",
        "TOPICS",
        "TOPICS_ALLOW_WILDCARDS",
        "DISABLE_OUTPOST_BRANDING",
        "DISABLE_TELEMETRY",
        "ENABLE_DESTINATION_FILTER",
        "ENABLE_WEBHOOK_CUSTOM_HEADERS",
        # ours, beside Outpost's: the flow-limit defaults the destination page shows
        "DESTINATION_MAX_CONCURRENCY",
        "DESTINATION_RATE_LIMIT_PER_SECOND",
    }


async def test_every_asset_and_module_import_is_served_cacheable_for_good(api: Api) -> None:
    html = (await page(api)).text
    pending = asset_urls(html)
    assert [url.rsplit("/", 1)[1] for url in pending] == ["icon.svg", "styles.css", "app.js"]
    seen: set[str] = set()
    types = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
    types["svg"] = "image/svg+xml"
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        response = await api.call("GET", ROOT + url, auth=None)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == types[url.rsplit(".", 1)[1]]
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        if url.endswith(".js"):
            # Relative imports resolve under the same versioned folder.
            for target in re.findall(r'from "(\.{1,2}/[^"]+)"', response.text):
                pending.append(str(httpx.URL(ROOT + url).join(target).path))
    every_file = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    served = {url.split("/", 3)[3] for url in seen}
    assert served == every_file - {"index.html"}


async def test_a_changed_asset_changes_every_asset_url(tmp_path: Path, make_api: MakeApi) -> None:
    from waypost.portal.serving import load_assets

    copy = tmp_path / "static"
    copy.mkdir()
    for path in STATIC.rglob("*"):
        target = copy / path.relative_to(STATIC)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    before, _ = load_assets(copy)
    (copy / "views" / "message.js").write_text("// changed\n")
    after, _ = load_assets(copy)
    assert before != after
    assert before == load_assets(STATIC)[0]


@pytest.mark.parametrize(
    "path",
    [
        "/portal-assets/0000000000000000/app.js",
        "/portal-assets/{version}/nope.js",
        "/portal-assets/{version}/%2e%2e/serving.py",
        "/portal-assets/{version}/index.html",
        "/no-such-page",
        "/destinations",
    ],
)
async def test_what_is_not_the_portal_is_a_json_404(api: Api, path: str) -> None:
    version = asset_urls((await page(api)).text)[0].split("/")[2]
    response = await api.call("GET", ROOT + path.format(version=version), auth=None)
    assert_error(response, 404, "not found")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_only_get_serves_the_page(api: Api, method: str) -> None:
    assert_error(await api.call(method, ROOT + "/", auth=None), 404, "not found")


async def test_a_forced_theme_is_on_the_page_before_any_script(make_api: MakeApi) -> None:
    api = await make_api(PORTAL_FORCE_THEME="dark")
    html = (await page(api)).text
    assert '<html lang="en" data-theme="dark">' in html
    assert settings_of(html)["FORCE_THEME"] == "dark"


async def test_outposts_documented_accent_colour_name_is_accepted(make_api: MakeApi) -> None:
    api = await make_api(PORTAL_ACCENT_COLOR="#0ea5e9")
    assert settings_of((await page(api)).text)["BRAND_COLOR"] == "#0ea5e9"


def test_an_unknown_forced_theme_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="PORTAL_FORCE_THEME"):
        load({"PORTAL_FORCE_THEME": "sepia"})


async def test_a_delivery_only_process_serves_no_portal(tmp_path: Path) -> None:
    delivery_only = Roles(api=False, delivers=True, worker=True, delivery_process=False)
    system = bootstrap.build(load_config(tmp_path / "data", {}), roles=delivery_only)
    await system.backend.open()
    try:
        app = bootstrap.http_app(system)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ROOT) as client:
            assert_error(await client.get("/"), 404, "not found")
            ok(await client.get("/healthz"))
    finally:
        await system.registry.close()
        await system.backend.close()


async def test_the_api_still_answers_json_beside_the_portal(api: Api) -> None:
    tenant = await api.tenant(unique("portal"))
    assert (await api.get(f"/tenants/{tenant}"))["id"] == tenant
