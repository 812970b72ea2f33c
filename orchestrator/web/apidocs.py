"""``/docs``: Swagger UI over the OpenAPI document, from the installed package.

The page and its scripts come from the ``swagger-ui-bundle`` package, served under
``/docs/assets``: nothing loads from a CDN, so it works on a host with no way out (and a
server holding debtors' data runs no third party's script). Swagger UI's validator badge,
which would post the document to swagger.io, is off.

The webhook and link routes are in the document too, each with how its caller proves
itself: these are the ``securitySchemes`` they name.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

__all__ = ["SECURITY_SCHEMES", "serve_docs"]

ASSETS = "/docs/assets"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <token>`, one of `OUTREACH_API_TOKENS`.",
    },
    "twilioSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Twilio-Signature",
        "description": (
            "Twilio's signature: base64 of HMAC-SHA1, keyed with `TWILIO_AUTH_TOKEN`, of "
            "`OUTREACH_PUBLIC_URL` + path + query followed by every form field's name and "
            "value sorted by name. A request without a valid one gets 403 and writes nothing."
        ),
    },
    "paymentSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Outreach-Signature",
        "description": (
            "`sha256=` + hex HMAC-SHA256, keyed with `OUTREACH_PAYMENT_WEBHOOK_SECRET`, of "
            "`X-Outreach-Timestamp` (Unix seconds), `.`, and the raw body. The timestamp "
            "must be within 300 s of the server's clock; else 401 and nothing written."
        ),
    },
}


def security(scheme: str) -> dict[str, Any]:
    """``openapi_extra`` naming the scheme a route's caller proves itself with."""
    return {"security": [{scheme: []}]}


def _with_schemes(app: FastAPI) -> Any:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in document.get("paths", {}).items():
                if path.startswith("/api/"):
                    for operation in operations.values():
                        operation.setdefault("security", [{"bearer": []}])
            app.openapi_schema = document
        return app.openapi_schema

    return openapi


def serve_docs(app: FastAPI) -> None:
    """Add ``/docs`` (and its assets) to ``app``, and the security schemes to its document."""
    app.openapi = _with_schemes(app)  # type: ignore[method-assign]
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="outreach API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
