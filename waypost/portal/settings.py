"""What the portal page is told about this deployment: branding, features, where to send a user.

Outpost's `/inject-portal-config.js` carries these keys with string values ("true"/"false" for
flags); we keep its names and shapes so the same page logic reads either. Nothing here is a
secret: it is sent to every browser that opens the portal.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from waypost.config import Config
from waypost.delivery.flow import flow_settings


def _flag(value: bool) -> str:
    return "true" if value else "false"


def public_settings(config: Config) -> dict[str, str]:
    flow = flow_settings(config)
    return {
        "REFERER_URL": config.portal_referer_url,
        "REFRESH_URL": config.portal_refresh_url or config.portal_referer_url,
        "FAVICON_URL": config.portal_favicon_url,
        "BRAND_COLOR": config.portal_brand_color,
        "LOGO": config.portal_logo,
        "LOGO_DARK": config.portal_logo_dark,
        "ORGANIZATION_NAME": config.portal_organization_name,
        "FORCE_THEME": config.portal_force_theme,
        "TOPICS": ",".join(config.topics),
        "TOPICS_ALLOW_WILDCARDS": _flag(config.topics_allow_wildcards),
        "DISABLE_OUTPOST_BRANDING": _flag(config.portal_disable_outpost_branding),
        "DISABLE_TELEMETRY": "true",  # this server sends no telemetry
        "ENABLE_DESTINATION_FILTER": _flag(config.portal_enable_destination_filter),
        "ENABLE_WEBHOOK_CUSTOM_HEADERS": _flag(config.portal_enable_webhook_custom_headers),
        # Ours, not Outpost's: the defaults a destination's flow limits fall back to.
        "DESTINATION_MAX_CONCURRENCY": str(flow.destination_concurrency),
        "DESTINATION_RATE_LIMIT_PER_SECOND": f"{flow.rate_per_second:g}",
    }


def image_origins(config: Config) -> list[str]:
    """The origins of the operator's logo and favicon, which the page's CSP must let it load."""
    origins: list[str] = []
    for url in (config.portal_logo, config.portal_logo_dark, config.portal_favicon_url):
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins
