"""The portal's HTTP routes: the page, its runtime settings, and its versioned static assets.

The page is served on `/` and on the client-side routes below it (Outpost serves its portal at the
root too, which is where `GET /tenants/{id}/portal`'s `redirect_url` points). Assets live under
`/portal-assets/<version>/`, where the version is a digest of every asset: their URLs change
whenever any file does, so they can be cached for good, while the page itself is never cached.
Relative `import`s between modules resolve under the same versioned folder, so no build step is
needed to keep them consistent.
"""

from __future__ import annotations

import hashlib
import html
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waypost.api.responses import error
from waypost.config import Config
from waypost.portal.settings import image_origins, public_settings

STATIC = Path(__file__).parent / "static"
ASSET_PREFIX = "/portal-assets"
# Client-side routes that load the page (a reload or a shared link lands on one of these).
PAGE_PATHS = ("/", "/new", "/new/{rest:path}", "/destinations/{rest:path}")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
_NO_STORE = "no-store, max-age=0"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str


def load_assets(folder: Path = STATIC) -> tuple[str, dict[str, Asset]]:
    """Every servable file under `folder` (not the page template) and a digest of them all."""
    assets: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name == "index.html":
            continue
        body = path.read_bytes()
        content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0]
        if content_type is None:
            continue
        assets[name] = Asset(body, content_type)
        digest.update(name.encode() + b"\0" + body + b"\0")
    return digest.hexdigest()[:16], assets


def content_security_policy(config: Config) -> str:
    images = " ".join(["'self'", "data:", *image_origins(config)])
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _security_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        # The first load carries the tenant's token in its URL: never pass it on as a Referer.
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _script_json(value: object) -> str:
    """JSON safe to place inside a <script type="application/json"> element."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(template: str, config: Config, asset_base: str) -> str:
    settings = public_settings(config)
    title = f"{settings['ORGANIZATION_NAME']} · Event destinations".lstrip(" ·")
    favicon = settings["FAVICON_URL"] or f"{asset_base}/icon.svg"
    theme = settings["FORCE_THEME"]
    replacements = {
        "{{title}}": html.escape(title),
        "{{favicon}}": html.escape(favicon),
        "{{assets}}": html.escape(asset_base),
        "{{theme}}": html.escape(theme),
        "{{settings}}": _script_json(settings),
    }
    for marker, value in replacements.items():
        template = template.replace(marker, value)
    return template


def portal_routes(config: Config, folder: Path = STATIC) -> list[Route]:
    version, assets = load_assets(folder)
    asset_base = f"{ASSET_PREFIX}/{version}"
    page = render_page((folder / "index.html").read_text(), config, asset_base).encode()
    headers = _security_headers(content_security_policy(config))
    settings_script = f"window.PORTAL_CONFIGS = {_script_json(public_settings(config))};\n"

    async def serve_page(request: Request) -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={**headers, "Cache-Control": _NO_STORE},
        )

    async def serve_settings(request: Request) -> Response:
        # Outpost's name for the page's runtime settings; our page reads them inlined instead.
        return Response(
            settings_script,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": _NO_STORE, "X-Content-Type-Options": "nosniff"},
        )

    async def serve_asset(request: Request) -> Response:
        asset = assets.get(request.path_params["path"])
        if request.path_params["version"] != version or asset is None:
            return error(404, "not found")
        return Response(
            asset.body,
            media_type=asset.content_type,
            headers={"Cache-Control": _IMMUTABLE, "X-Content-Type-Options": "nosniff"},
        )

    return [
        *(Route(path, serve_page, methods=["GET"]) for path in PAGE_PATHS),
        Route("/inject-portal-config.js", serve_settings, methods=["GET"]),
        Route(ASSET_PREFIX + "/{version}/{path:path}", serve_asset, methods=["GET"]),
    ]
