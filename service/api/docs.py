"""/docs (Swagger UI) and /redoc served with their JavaScript and CSS from this server, not from a CDN, so that
they work offline and behind a firewall (FastAPI's "self-hosting JavaScript and CSS for docs" recipe). The files
come from the fastapi-offline package (MIT), which bundles the builds of Swagger UI 5 (swagger-ui-dist, Apache-2.0)
and ReDoc 2 (MIT) that FastAPI's pages otherwise load from a CDN."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = Path(str(files("fastapi_offline") / "static"))
PREFIX = "/docs/static"
MEDIA = {  # the only files served, and their types
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def add_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """The two documentation pages and their files on `app` (made with docs_url=None, redoc_url=None)."""
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI", oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js", swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png",
            # no validator badge: Swagger UI would load it from validator.swagger.io
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )  # fmt: skip

    @app.get(oauth2_redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} - ReDoc", redoc_js_url=f"{PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{PREFIX}/favicon.png", with_google_fonts=False,
        )  # fmt: skip

    @app.get(f"{PREFIX}/{{name}}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in MEDIA:
            raise HTTPException(404, f"There is no file {name!r} here.")
        return FileResponse(ASSETS / name, media_type=MEDIA[name], headers={"Cache-Control": "public, max-age=86400"})
