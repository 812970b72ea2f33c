"""A STOP is never lost: whatever the keys, replays and wording, from the real commands.

Each test drives the product as an operator runs it: ``outreach db upgrade``, ``import``,
``keys rotate`` and ``run --once`` through the CLI, and ``outreach serve`` as a process of
its own, to which inbound texts are posted signed as Twilio signs them. What counts is
what the next ``run --once`` decides for the person who texted (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from support import ROOT, wait_healthy, write_accounts, write_config  # noqa: I001
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.store import db
from orchestrator.store.tables import AccountRow, Decision, table_of

TOKEN = "twilio-auth-token"
PHONE = "+12122000000"  # A00000's number (tests/support.write_accounts)
CADENCES = """
stages:
  - id: M1
    dpd: [1, 99999]
    steps:
      - {id: daily-sms, channel: sms, template: reminder, every: 1d, at: "10:00", expires: 1d}
      - {id: daily-voice, channel: voice, template: reminder, every: 1d, at: "10:00", expires: 1d}
"""


def _day(n: int) -> datetime:
    """15:00 UTC (10:00 or 11:00 in New York) ``n`` days from today: after the texts the
    server receives now, since an opt-out is in force from the instant it arrives."""
    today = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
    return today + timedelta(days=n)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Product:
    """The product installed in ``tmp``: its environment, and the commands on it."""

    db_url: str
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    sids: int = 0

    def cli(self, *args: str) -> Any:
        _register_all()
        result = CliRunner().invoke(app, list(args), env=self.env)
        assert result.exit_code == 0, (args, result.output)
        return result

    def run_once(self, day: int) -> None:
        self.cli("run", "--once", "--now", _day(day).isoformat())

    @contextmanager
    def serve(self) -> Iterator[str]:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**self.env, "OUTREACH_PUBLIC_URL": url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_healthy(url)
            yield url
        finally:
            proc.terminate()
            proc.communicate(timeout=30)

    def text(
        self, url: str, body: str, *, sid: str | None = None, phone: str = PHONE
    ) -> httpx.Response:
        """An inbound text, signed as Twilio signs it (a fresh MessageSid unless given)."""
        path = "/webhooks/twilio/sms/inbound"
        if sid is None:
            self.sids += 1
            sid = f"SM{self.sids:032d}"
        params = {"From": phone, "Body": body, "MessageSid": sid}
        signature = RequestValidator(TOKEN).compute_signature(url + path, params)
        reply = httpx.post(url + path, data=params, headers={"X-Twilio-Signature": signature})
        assert reply.status_code == 200, reply.text
        return reply

    def decided(self, account: str, step: str, day: int) -> tuple[str, str | None]:
        """The decision of ``step`` for ``account`` on ``day``."""
        t = table_of(Decision)
        engine = db.make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    sa.select(t.c.decision, t.c.reason)
                    .where(t.c.account_id == account, t.c.step == step, t.c.time == _day(day))
                    .order_by(t.c.id.desc())
                ).first()
        finally:
            engine.dispose()
        assert row is not None, (account, step, day)
        return row.decision, row.reason

    def phone_index(self, account: str) -> str:
        t = table_of(AccountRow)
        engine = db.make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return str(
                    conn.execute(
                        sa.select(t.c.phone_index).where(t.c.account_id == account)
                    ).scalar_one()
                )
        finally:
            engine.dispose()


def _product(
    db_url: str, tmp: Path, *, keys: str, index_key: str | None = None, policy: str = ""
) -> Product:
    outbox = tmp / "outbox"
    config = write_config(tmp / "config", outbox=outbox, cadences=CADENCES)
    if policy:
        with (config / "policy.yaml").open("a") as handle:
            handle.write(policy)
    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": db_url,
        "OUTREACH_DATA_KEYS": keys,
        "OUTREACH_SECRET_KEY": "s" * 40,
        "OUTREACH_CONFIG": str(config),
        "OUTREACH_TEMPLATES": str(ROOT / "templates"),
        "TWILIO_AUTH_TOKEN": TOKEN,
    }
    env.pop("OUTREACH_INDEX_KEY", None)
    if index_key:
        env["OUTREACH_INDEX_KEY"] = index_key
    product = Product(db_url, tmp, env)
    product.cli("db", "upgrade")
    product.cli("import", "accounts", str(write_accounts(tmp / "accounts.csv", 2)))
    return product


def _key() -> str:
    return Fernet.generate_key().decode()


def test_a_stop_holds_with_a_separate_index_key(db_url: str, tmp_path: Path) -> None:
    """``serve`` and ``run`` build their cipher as ``import`` does, so with
    ``OUTREACH_INDEX_KEY`` set a STOP finds the person and the next run does not text."""
    product = _product(db_url, tmp_path, keys=_key(), index_key="a long index secret " * 3)
    with product.serve() as url:
        assert "unsubscribed" in product.text(url, "STOP").text
    product.run_once(1)
    assert product.decided("A00000", "daily-sms", 1) == ("suppressed", "opted_out")
    assert product.decided("A00001", "daily-sms", 1) == ("sent", None)


def test_a_stop_during_key_rotation_holds(db_url: str, tmp_path: Path) -> None:
    """Restarted with a new first key before ``keys rotate``: the STOP's index is the new
    key's, the account's still the old one's; the gate matches them."""
    k1, k2 = _key(), _key()
    product = _product(db_url, tmp_path, keys=k1)
    product.env["OUTREACH_DATA_KEYS"] = f"{k2},{k1}"
    with product.serve() as url:
        product.text(url, "STOP")
    product.run_once(1)
    assert product.decided("A00000", "daily-sms", 1) == ("suppressed", "opted_out")
    assert product.decided("A00001", "daily-sms", 1) == ("sent", None)


def test_a_stop_before_key_rotation_holds_through_it(db_url: str, tmp_path: Path) -> None:
    """The other side of the window: the STOP is stored under the old key's index and the
    account is re-imported under the new one; then ``keys rotate`` and the old key goes."""
    k1, k2 = _key(), _key()
    product = _product(db_url, tmp_path, keys=k1)
    with product.serve() as url:
        product.text(url, "STOP")
    before = product.phone_index("A00000")
    product.env["OUTREACH_DATA_KEYS"] = f"{k2},{k1}"
    product.cli("import", "accounts", str(tmp_path / "accounts.csv"))
    assert product.phone_index("A00000") != before  # indexed under the new key now
    product.run_once(1)
    assert product.decided("A00000", "daily-sms", 1) == ("suppressed", "opted_out")
    product.cli("keys", "rotate")
    product.run_once(2)
    assert product.decided("A00000", "daily-sms", 2) == ("suppressed", "opted_out")
    product.env["OUTREACH_DATA_KEYS"] = k2
    product.run_once(3)
    assert product.decided("A00000", "daily-sms", 3) == ("suppressed", "opted_out")
    assert product.decided("A00001", "daily-sms", 3) == ("sent", None)


def test_a_replayed_start_changes_nothing(db_url: str, tmp_path: Path) -> None:
    """Each MessageSid acts once: a captured START posted again after a later STOP, and a
    HELP repeated, answer 200 with nothing in them and change nothing."""
    product = _product(db_url, tmp_path, keys=_key())
    with product.serve() as url:
        product.text(url, "STOP")
        product.text(url, "START", sid="SM" + "7" * 32)
        product.text(url, "STOP")
        replayed = product.text(url, "START", sid="SM" + "7" * 32)
        assert "<Message>" not in replayed.text
        helps = [product.text(url, "HELP", sid="SM" + "8" * 32).text for _ in range(3)]
    assert ["<Message>" in h for h in helps] == [True, False, False]
    product.run_once(1)
    assert product.decided("A00000", "daily-sms", 1) == ("suppressed", "opted_out")
    shown = json.loads(product.cli("account", "show", "A00000", "--json").stdout)
    assert sum(e["type"] == "inbound_sms" for e in shown["events"]) == 4
    help_replies = [d for d in shown["decisions"] if d["step"] == "help_reply"]
    assert len(help_replies) == 1
    # STOP, START and STOP again are in the account's audit trail; the replays are not
    trail = json.loads(product.cli("audit", "--account", "A00000", "--json").stdout)
    assert [(e["actor"], e["action"], e["object_id"]) for e in trail["entries"]] == [
        ("inbound_sms", "opt_out.added", "sms"),
        ("inbound_sms", "opt_out.revoked", "sms"),
        ("inbound_sms", "opt_out.added", "sms"),
    ]
    assert PHONE not in json.dumps(trail) and PHONE[2:] not in json.dumps(trail)


def test_an_inbound_text_without_a_message_sid_is_refused(db_url: str, tmp_path: Path) -> None:
    product = _product(db_url, tmp_path, keys=_key())
    with product.serve() as url:
        path = "/webhooks/twilio/sms/inbound"
        params = {"From": PHONE, "Body": "START"}
        signature = RequestValidator(TOKEN).compute_signature(url + path, params)
        refused = httpx.post(url + path, data=params, headers={"X-Twilio-Signature": signature})
    assert refused.status_code == 400
    shown = json.loads(product.cli("account", "show", "A00000", "--json").stdout)
    assert [e for e in shown["events"] if e["type"] == "inbound_sms"] == []


@pytest.mark.parametrize(
    ("scope", "voice"), [("sms", ("sent", None)), ("automated", ("suppressed", "opted_out"))]
)
def test_what_a_stop_stops_follows_the_policy(
    db_url: str, tmp_path: Path, scope: str, voice: tuple[str, str | None]
) -> None:
    """``opt_out_scope: automated`` (the FCC's revoke-all rule): STOP stops prerecorded
    calls as well as texts; ``sms`` stops texts only. START undoes what STOP did."""
    product = _product(db_url, tmp_path, keys=_key(), policy=f"opt_out_scope: {scope}\n")
    with product.serve() as url:
        product.text(url, "STOP")
    product.run_once(1)
    assert product.decided("A00000", "daily-sms", 1) == ("suppressed", "opted_out")
    assert product.decided("A00000", "daily-voice", 1) == voice
    assert product.decided("A00001", "daily-voice", 1) == ("sent", None)
    with product.serve() as url:
        product.text(url, "START")
    product.run_once(2)
    assert product.decided("A00000", "daily-sms", 2) == ("sent", None)
    assert product.decided("A00000", "daily-voice", 2) == ("sent", None)


@pytest.mark.parametrize(
    "body", ["Please stop calling me!", "Don't text me again", "请不要再打了", "我要退订"]
)
def test_a_revocation_in_the_persons_own_words_stops_texts_and_calls(
    db_url: str, tmp_path: Path, body: str
) -> None:
    product = _product(db_url, tmp_path, keys=_key())
    with product.serve() as url:
        product.text(url, body)
    product.run_once(1)
    assert product.decided("A00000", "daily-sms", 1) == ("suppressed", "opted_out")
    assert product.decided("A00000", "daily-voice", 1) == ("suppressed", "opted_out")
    shown = json.loads(product.cli("account", "show", "A00000", "--json").stdout)
    [said] = [e for e in shown["events"] if e["type"] == "inbound_sms"]
    assert (said["status"], said["text"]) == ("revocation", body)


def test_a_reply_that_is_no_keyword_stops_nothing_and_is_kept_to_read(
    db_url: str, tmp_path: Path
) -> None:
    product = _product(db_url, tmp_path, keys=_key())
    with product.serve() as url:
        assert "<Message>" not in product.text(url, "I lost my job, can we talk?").text
    product.run_once(1)
    assert product.decided("A00000", "daily-sms", 1) == ("sent", None)
    shown = json.loads(product.cli("account", "show", "A00000", "--json").stdout)
    [said] = [e for e in shown["events"] if e["type"] == "inbound_sms"]
    assert (said["status"], said["text"]) == ("other", "I lost my job, can we talk?")
    person = product.cli("account", "show", "A00000").stdout
    assert "I lost my job, can we talk?" in person


def test_setting_an_index_key_on_an_existing_database_keeps_the_stops(
    db_url: str, tmp_path: Path
) -> None:
    """The README's way to adopt ``OUTREACH_INDEX_KEY`` later: set it, ``keys rotate``
    (every index recomputed, the opt-outs moved with them), start again."""
    product = _product(db_url, tmp_path, keys=_key())
    with product.serve() as url:
        product.text(url, "STOP")
    before = product.phone_index("A00000")
    product.env["OUTREACH_INDEX_KEY"] = "a long index secret " * 3
    product.cli("keys", "rotate")
    assert product.phone_index("A00000") != before
    product.run_once(1)
    assert product.decided("A00000", "daily-sms", 1) == ("suppressed", "opted_out")
    assert product.decided("A00001", "daily-sms", 1) == ("sent", None)
    with product.serve() as url:  # and a STOP after it finds the person under the new key
        product.text(url, "STOP", phone="+12122000037")
    product.run_once(2)
    assert product.decided("A00001", "daily-sms", 2) == ("suppressed", "opted_out")
