"""``/docs``: Swagger UI from the installed package, which renders with no network at all;
and the OpenAPI document describes the webhooks and links with how each caller proves
itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_socket, live_server  # noqa: I001 - tests/support.py

from orchestrator.web.app import create_app


@pytest.fixture(scope="module")
def docs_url() -> Iterator[str]:
    """A real server of the app; ``/docs`` and ``/openapi.json`` need no database."""
    sock = free_socket()
    with live_server(create_app(None), sock):  # type: ignore[arg-type]
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_the_docs_page_names_no_other_host(docs_url: str) -> None:
    page = httpx.get(docs_url + "/docs")
    assert page.status_code == 200 and 'id="swagger-ui"' in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
    assert "http" not in page.text  # no absolute URL: nothing from another host
    for source in sources:
        asset = httpx.get(docs_url + source)
        assert asset.status_code == 200 and len(asset.content) > 500, source
    assert "validatorUrl" in page.text and '"validatorUrl": null' in page.text
    assert httpx.get(docs_url + "/redoc").status_code == 404


def test_the_document_describes_webhooks_links_and_their_proofs(docs_url: str) -> None:
    doc = httpx.get(docs_url + "/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["twilioSignature"]["name"] == "X-Twilio-Signature"
    assert "OUTREACH_PUBLIC_URL" in schemes["twilioSignature"]["description"]
    assert schemes["paymentSignature"]["name"] == "X-Outreach-Signature"
    assert "X-Outreach-Timestamp" in schemes["paymentSignature"]["description"]
    assert schemes["bearer"]["scheme"] == "bearer"
    paths = doc["paths"]
    for path in (
        "/webhooks/twilio/sms/status",
        "/webhooks/twilio/voice/status",
        "/webhooks/twilio/voice/twiml/{message_id}",
        "/webhooks/twilio/voice/gather/{message_id}",
        "/webhooks/twilio/sms/inbound",
    ):
        assert paths[path]["post"]["security"] == [{"twilioSignature": []}], path
        assert "application/x-www-form-urlencoded" in paths[path]["post"]["requestBody"]["content"]
    payment = paths["/webhooks/payments"]["post"]
    assert payment["security"] == [{"paymentSignature": []}]
    body = payment["requestBody"]["content"]["application/json"]["schema"]
    assert {"event_id", "account_id", "amount", "currency", "paid_at"} <= set(body["properties"])
    for path, method in (("/p/{token}", "get"), ("/u/{token}", "get"), ("/u/{token}", "post")):
        assert "OUTREACH_SECRET_KEY" in paths[path][method]["description"], path
    assert paths["/api/v1/status"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in paths["/healthz"]["get"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_docs_render_in_chromium_with_no_network(docs_url: str, tmp_path: Path) -> None:
    """Every request but the local server's goes to a closed port: a page that needed a
    CDN would stay blank."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make sysdeps` installs it")
        pytest.skip("chromium is not installed (`make sysdeps`)")
    from PIL import Image

    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,1600",
        "--proxy-server=127.0.0.1:9",  # nothing listens there: no way out
        "--proxy-bypass-list=127.0.0.1",  # ... but to the server under test
        "--virtual-time-budget=15000",  # let the scripts fetch the document and render
    ]
    cdn = subprocess.run(
        [*flags, "--dump-dom", "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "ERR_PROXY_CONNECTION_FAILED" in cdn.stderr  # the control: no way out indeed
    dom = subprocess.run(
        [*flags, "--dump-dom", docs_url + "/docs"], capture_output=True, text=True, timeout=120
    ).stdout
    assert "opblock-summary-path" in dom, dom[:2000]  # operations were rendered
    for path in ("/webhooks/payments", "/webhooks/twilio/sms/inbound", "/api/v1/status"):
        assert path in dom, path
    assert "Twilio webhooks" in dom and "REST API" in dom
    shot = tmp_path / "docs.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", docs_url + "/docs"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    # Swagger UI colours each method's block (POST green, GET blue): a blank page has none.
    saturation = image.convert("HSV").getchannel("S").histogram()
    assert sum(saturation[80:]) > 20000, sum(saturation[80:])
