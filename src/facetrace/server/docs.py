"""The API documentation page (Swagger UI) served entirely from this machine: the
assets come from the installed ``swagger-ui-bundle-v2`` package and the page has no
inline script, so ``/api/v1/docs`` works air-gapped under the same Content-Security-
Policy as every other page and sends nothing to third parties."""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/v1/docs"
ASSETS = f"{DOCS_PATH}/assets"


def _page(title: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · API documentation</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi="{escape(openapi_url)}"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>"""


def install(app: FastAPI) -> None:
    """Serve Swagger UI at ``/api/v1/docs`` from the installed package (the app must be
    created with ``docs_url=None``). The package is imported here, at app creation,
    not when this module is imported."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="api-docs-assets")
    html = _page(app.title, app.openapi_url or "/api/v1/openapi.json")

    @app.get(DOCS_PATH, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(html)
