"""A local HTTP server that speaks the Twilio REST API's Messages and Calls shapes, for the
Twilio adapters' tests through the real twilio SDK: basic auth checked, form fields
recorded, realistic JSON and error bodies. Special numbers choose the reply."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-token"

INVALID = "+15005550001"  # 21211 invalid To
OPTED_OUT = "+15005550004"  # 21610 unsubscribed recipient
THROTTLED = "+15005550009"  # 429 / 20429
BROKEN = "+15005550010"  # 500
HANG = "+15005550011"  # no reply for `hang` seconds
NO_PERMISSION = "+15005550012"  # 21215: geographic permissions forbid calling it

ERRORS = {
    INVALID: (400, 21211, "The 'To' number +15005550001 is not a valid phone number."),
    OPTED_OUT: (400, 21610, "Attempt to send to unsubscribed recipient"),
    THROTTLED: (429, 20429, "Too Many Requests"),
    BROKEN: (500, 20500, "Internal Server Error"),
    NO_PERMISSION: (
        400,
        21215,
        "Account not authorized to call +15005550012. Perhaps you "
        "need to enable some international permissions.",
    ),
}


@dataclass
class FakeTwilio:
    port: int = 0
    hang: float = 3.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return
            length = int(self.headers.get("Content-Length", 0))
            fields = parse_qs(self.rfile.read(length).decode())
            form = {k: v[0] for k, v in fields.items()}
            # "fields" keeps repeated ones (StatusCallbackEvent) in full.
            fake.requests.append({"path": self.path, "form": form, "fields": fields})
            prefix = f"/2010-04-01/Accounts/{ACCOUNT_SID}/"
            if self.path not in (prefix + "Messages.json", prefix + "Calls.json"):
                self.reply(404, {"code": 20404, "message": "Not found", "status": 404})
                return
            to = form.get("To", "")
            if to == HANG:
                time.sleep(fake.hang)
            if to in ERRORS:
                status, code, message = ERRORS[to]
                self.reply(
                    status,
                    {
                        "code": code,
                        "message": message,
                        "status": status,
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    },
                )
                return
            kind = "SM" if self.path.endswith("Messages.json") else "CA"
            sid = kind + uuid.uuid4().hex
            body = {
                "sid": sid,
                "account_sid": ACCOUNT_SID,
                "to": to,
                "from": form.get("From"),
                "status": "queued",
                "date_created": "Mon, 02 Mar 2026 15:00:00 +0000",
                "api_version": "2010-04-01",
                "uri": f"{prefix}{'Messages' if kind == 'SM' else 'Calls'}/{sid}.json",
            }
            if kind == "SM":
                body.update(
                    {
                        "body": form.get("Body"),
                        "num_segments": "1",
                        "direction": "outbound-api",
                        "messaging_service_sid": form.get("MessagingServiceSid"),
                    }
                )
            else:
                body.update(
                    {
                        "direction": "outbound-api",
                        "answered_by": None,
                        "parent_call_sid": None,
                        "duration": None,
                        "price": None,
                    }
                )
            self.reply(201, body)

    return Handler


@contextmanager
def fake_twilio(hang: float = 3.0) -> Iterator[FakeTwilio]:
    fake = FakeTwilio(hang=hang)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
