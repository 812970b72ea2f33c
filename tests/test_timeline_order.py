"""A callback that would move a send back is acknowledged and ignored (docs/http.md).
The timeline (``account show``, the API) and the report show each send's statuses in
their forward order only; the callback itself stays stored for audit."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from test_server import API_TOKEN, Live, _send, live  # noqa: F401
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.store.tables import DeliveryEvent

PATH = "/webhooks/twilio/sms/status"


def deliveries(events: list[dict[str, Any]]) -> list[str]:
    return [e["status"] for e in events if e["type"] == "delivery" and e["channel"] == "sms"]


def test_a_late_sent_after_delivered_is_not_shown_after_it(live: Live) -> None:  # noqa: F811
    sid = _send(live, "A00000").provider_id
    for status in ("queued", "delivered", "sent", "queued", "delivered"):
        got = live.twilio(PATH, {"MessageSid": sid, "MessageStatus": status})
        assert got.status_code == 200, got.text
        live.clock.set(live.clock.now() + timedelta(seconds=1))
    assert live.count(DeliveryEvent) == 3  # each distinct status once, the late one for audit

    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    timeline = httpx.get(f"{live.url}/api/v1/accounts/A00000/timeline", headers=auth).json()
    assert deliveries(timeline["events"]) == ["queued", "delivered"]
    shown = httpx.get(f"{live.url}/api/v1/accounts/A00000", headers=auth).json()
    assert deliveries(shown["events"]) == ["queued", "delivered"]

    _register_all()
    env = {
        "OUTREACH_DATABASE_URL": str(live.db.url.render_as_string(hide_password=False)),
        "OUTREACH_DATA_KEYS": ",".join(live.server.settings.data_keys),
    }
    cli = CliRunner().invoke(
        app, ["account", "show", "A00000", "--json", "--today", "2026-03-10"], env=env
    )
    assert cli.exit_code == 0, cli.output
    assert deliveries(json.loads(cli.stdout)["events"]) == ["queued", "delivered"]
    text = CliRunner().invoke(app, ["account", "show", "A00000", "--today", "2026-03-10"], env=env)
    assert [line.split()[-2] for line in text.stdout.splitlines() if " delivery " in line] == [
        "queued",
        "delivered",
    ]

    env["OUTREACH_CONFIG"] = str(live.server.settings.config_dir)
    report = CliRunner().invoke(
        app, ["report", "--json", "--since", "2026-03-10", "--until", "2026-03-10"], env=env
    )
    assert report.exit_code == 0, report.output
    sms = next(c for c in json.loads(report.stdout)["channels"] if c["channel"] == "sms")
    assert (sms["sends"], sms["delivered"]) == (4, 1)  # the send that reached its person
