"""/docs (Swagger UI) and /redoc served offline: their JavaScript and CSS come from the fastapi-offline
package's copy of the distributions, not from a CDN, so the pages render on a machine without internet."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS_PATH = "/docs/assets"
_ASSETS_DIR = files("fastapi_offline") / "static"
# Served by name from this fixed set only: the route's label stays bounded and no path reaches the disk.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
# The pages may load nothing from another origin: ReDoc's bundle still points its footer logo at a CDN.
# Inline script and style: both UIs start from an inline script and style their components inline.
OWN_ORIGIN_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; font-src 'self' data:"
)


def _own_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = OWN_ORIGIN_ONLY
    return page


def add_offline_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets; the app must be built with docs_url=None, redoc_url=None."""
    title = app.title

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(404, f"no documentation asset {name!r}")
        return FileResponse(
            str(_ASSETS_DIR / name), media_type=ASSETS[name], headers={"cache-control": "max-age=86400"}
        )

    def page(render: Callable[..., HTMLResponse], viewer: str, **assets: Any) -> HTMLResponse:
        """A viewer of this app's schema, its assets (`assets`) from ASSETS_PATH, nothing from elsewhere."""
        html = render(openapi_url=app.openapi_url or "/openapi.json", title=f"{title} - {viewer}", **assets)
        return _own_origin_only(html)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return page(
            get_swagger_ui_html,
            "Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            # The default validator badge calls an online validator with the schema.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return page(
            get_redoc_html,
            "ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
