"""Swagger UI at `{prefix}/docs`, served by the service itself: no request leaves the machine.

FastAPI's default page loads Swagger UI from a CDN, which is a blank page offline and a third
party in every developer's browser. The assets come from the PyPI package
`swagger-ui-bundle-v2` (Swagger UI's own dist, Apache-2.0, pinned in services/common), under a
URL that names the version, so browsers may cache them for good.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Response
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from taskgate_common.errors import ApiError

ASSETS_DIR = Path(str(swagger_ui_path))
SWAGGER_UI_VERSION = ASSETS_DIR.name.removeprefix("swagger-ui-")
# What the page loads; nothing else in the package is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
ASSET_CACHE = "public, max-age=31536000, immutable"

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # Swagger UI sends the document to validator.swagger.io unless told not to.
    "validatorUrl": None,
    # The token survives a reload of the page (kept in the page's localStorage).
    "persistAuthorization": True,
    "displayRequestDuration": True,
}


def assets_url(prefix: str) -> str:
    return f"{prefix}/docs/assets/{SWAGGER_UI_VERSION}"


def docs_router(prefix: str, title: str) -> APIRouter:
    """The docs page, its OAuth2 redirect page, and the assets (hidden from the schema)."""
    router = APIRouter(include_in_schema=False)
    assets = assets_url(prefix)
    page = get_swagger_ui_html(
        openapi_url=f"{prefix}/openapi.json",
        title=f"{title}: API docs",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon-32x32.png",
        oauth2_redirect_url=f"{prefix}/docs/oauth2-redirect",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    ).body
    redirect = get_swagger_ui_oauth2_redirect_html().body

    @router.get(f"{prefix}/docs")
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)

    @router.get(f"{prefix}/docs/oauth2-redirect")
    async def swagger_ui_redirect() -> HTMLResponse:
        return HTMLResponse(redirect)

    @router.get(f"{assets}/{{name}}")
    async def swagger_ui_asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", "No such documentation asset")
        return FileResponse(
            ASSETS_DIR / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE}
        )

    return router
