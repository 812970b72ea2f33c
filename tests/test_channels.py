"""Channel adapters: statuses, the registry, the outbox and simulated channels; signed
links; SMS segment counting."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import ROOT  # noqa: I001 - tests/support.py

from channels.base import ChannelAdapter, DeliveryStatus, OutboundMessage, can_move
from channels.outbox import adapter as outbox_module
from channels.outbox.adapter import OutboxChannel
from channels.registry import (
    adapter_class,
    adapter_names,
    create_adapter,
    validate_channel_options,
)
from channels.segments import segments
from channels.simulated import SimulatedChannel
from orchestrator.clock import FrozenClock
from orchestrator.config.models import ChannelConfig
from orchestrator.core.links import (
    creditor_pay_url,
    make_token,
    pay_link,
    read_token,
    unsubscribe_link,
)
from orchestrator.errors import (
    AmbiguousSendError,
    ConfigError,
    PermanentChannelError,
    TransientChannelError,
    UnknownAdapterError,
)

NOW = datetime(2026, 3, 2, 15, tzinfo=UTC)
D = DeliveryStatus


def message(
    channel: str = "sms", message_id: str = "m_0123456789abcdef01234567", **kw: Any
) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": message_id,
        "channel": channel,
        "account_id": "A1",
        "debtor_id": "D1",
        "to": "+12125550100",
        "from_": "+15005550006",
        "text": "Acme: your payment is due. Reply STOP to opt out.",
    }
    values.update(kw)
    return OutboundMessage(**values)


# --- statuses -----------------------------------------------------------------------------


def test_status_moves_forward_only() -> None:
    assert can_move(None, D.queued)
    assert can_move(D.queued, D.sent) and can_move(D.sent, D.delivered)
    assert can_move(D.queued, D.delivered)  # a skipped intermediate step is fine
    assert not can_move(D.sent, D.queued)
    assert not can_move(D.delivered, D.sent)
    assert not can_move(D.delivered, D.undelivered)
    assert not can_move(D.failed, D.delivered)
    assert not can_move(D.delivered, D.delivered)  # a repeat is not a move
    assert can_move(D.delivered, D.opened) and can_move(D.opened, D.clicked)
    assert not can_move(D.clicked, D.opened)
    assert can_move(D.ringing, D.no_answer) and not can_move(D.busy, D.answered)


@given(st.lists(st.sampled_from(list(DeliveryStatus)), max_size=12))
def test_a_final_status_is_never_downgraded(callbacks: list[DeliveryStatus]) -> None:
    current: DeliveryStatus | None = None
    for status in callbacks:
        if can_move(current, status):
            if current is not None:
                assert status.rank > current.rank
                assert not current.is_final or status in (D.opened, D.clicked)
            current = status


# --- registry -----------------------------------------------------------------------------


def test_registry_knows_builtin_and_lazy_adapters() -> None:
    assert {"outbox", "simulated", "twilio_sms", "twilio_voice", "smtp", "pdf_batch"} <= (
        adapter_names()
    )
    assert adapter_class("outbox") is OutboxChannel
    assert adapter_class("simulated") is SimulatedChannel
    with pytest.raises(UnknownAdapterError, match="unknown channel adapter 'carrier_pigeon'"):
        adapter_class("carrier_pigeon")


def test_validate_channel_options() -> None:
    assert validate_channel_options("outbox", {"dir": "var/outbox", "from": "x"}) == []
    assert validate_channel_options("outbox", {"dri": "var/outbox"}) == ["dri: unknown key"]
    assert validate_channel_options("outbox", {"dir": ["a"]})[0].startswith("dir:")
    assert "unknown channel adapter" in validate_channel_options("nope", {})[0]


def test_create_adapter(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    cfg = ChannelConfig.model_validate({"adapter": "outbox", "dir": "out", "rate": "10/s"})
    adapter = create_adapter("sms", cfg, base_dir=tmp_path, clock=clock)
    assert isinstance(adapter, OutboxChannel) and isinstance(adapter, ChannelAdapter)
    assert adapter.directory == tmp_path / "out"
    sim = create_adapter("sms", ChannelConfig(adapter="simulated"), base_dir=tmp_path, clock=clock)
    assert isinstance(sim, SimulatedChannel)
    bad = ChannelConfig.model_validate({"adapter": "outbox", "folder": "x"})
    with pytest.raises(ConfigError, match="sms: folder: unknown key"):
        create_adapter("sms", bad, base_dir=tmp_path, clock=clock)


# --- outbox -------------------------------------------------------------------------------


def outbox(tmp_path: Path) -> OutboxChannel:
    cfg = ChannelConfig.model_validate({"adapter": "outbox", "dir": str(tmp_path / "ob")})
    adapter = create_adapter("sms", cfg, base_dir=Path("/nowhere"), clock=FrozenClock(NOW))
    assert isinstance(adapter, OutboxChannel)
    return adapter


def test_outbox_writes_one_json_file_per_send(tmp_path: Path) -> None:
    adapter = outbox(tmp_path)
    result = adapter.send(message())
    adapter.sync()  # accepted at ``send``, written by the time ``sync`` returns
    path = tmp_path / "ob/sms/m_0123456789abcdef01234567.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["message_id"] == "m_0123456789abcdef01234567"
    assert data["provider_id"] == result.provider_id
    assert result.provider_id.startswith("OB") and len(result.provider_id) == 34
    assert data["channel"] == "sms" and data["account"] == "A1"
    assert data["to"] == "+12125550100" and data["from"] == "+15005550006"
    assert data["subject"] is None and data["html"] is None and data["pdf"] is None
    assert data["text"].endswith("Reply STOP to opt out.")
    assert result.status == D.sent and result.segments == 1 == data["segments"]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left


def test_outbox_is_deterministic(tmp_path: Path) -> None:
    a_box, b_box = outbox(tmp_path / "a"), outbox(tmp_path / "b")
    first, second = a_box.send(message()), b_box.send(message())
    a_box.sync()
    b_box.sync()
    assert first == second
    a = (tmp_path / "a/ob/sms/m_0123456789abcdef01234567.json").read_bytes()
    b = (tmp_path / "b/ob/sms/m_0123456789abcdef01234567.json").read_bytes()
    assert a.replace(b"/a/", b"/b/") == b


def test_outbox_email_and_letter_write_html_files(tmp_path: Path) -> None:
    adapter = outbox(tmp_path)
    adapter.send(message("email", "m_aa", to="jane@example.com", subject="Hi", html="<p>Hé</p>"))
    adapter.sync()
    data = json.loads((tmp_path / "ob/email/m_aa.json").read_text(encoding="utf-8"))
    assert data["subject"] == "Hi"
    assert Path(data["html"]).read_text(encoding="utf-8") == "<p>Hé</p>"
    adapter.send(message("letter", "m_bb", to="Jane Doe, 1 Main St", html="<h1>Letter</h1>"))
    adapter.sync()
    letter = json.loads((tmp_path / "ob/letter/m_bb.json").read_text(encoding="utf-8"))
    assert Path(letter["html"]).name == "m_bb.html"
    try:
        import weasyprint  # noqa: F401
    except ImportError:
        assert letter["pdf"] is None
    else:
        assert Path(letter["pdf"]).read_bytes().startswith(b"%PDF")


def test_outbox_letters_as_html_only(tmp_path: Path) -> None:
    cfg = ChannelConfig.model_validate(
        {"adapter": "outbox", "dir": str(tmp_path / "ob"), "pdf": False}
    )
    adapter = create_adapter("letter", cfg, base_dir=Path("/nowhere"), clock=FrozenClock(NOW))
    assert isinstance(adapter, OutboxChannel)
    adapter.send(message("letter", "m_cc", to="Jane Doe, 1 Main St", html="<h1>Letter</h1>"))
    adapter.sync()
    letter = json.loads((tmp_path / "ob/letter/m_cc.json").read_text(encoding="utf-8"))
    assert letter["pdf"] is None and Path(letter["html"]).is_file()
    assert sorted(p.name for p in (tmp_path / "ob/letter").iterdir()) == ["m_cc.html", "m_cc.json"]


def _unwritable(adapter: OutboxChannel, message_id: str, channel: str = "sms") -> None:
    """Make ``message_id``'s JSON file impossible to write, even for root: a directory
    (not empty) stands where the file must be renamed to."""
    (adapter.directory / channel / f"{message_id}.json" / "x").mkdir(parents=True)


def test_outbox_write_is_atomic(tmp_path: Path) -> None:
    """A write that fails leaves no temporary file and the files already written whole;
    ``sync`` reports it (the daemon then records the batch ambiguous), once."""
    adapter = outbox(tmp_path)
    adapter.send(message(text="first"))
    adapter.sync()
    path = tmp_path / "ob/sms/m_0123456789abcdef01234567.json"
    _unwritable(adapter, "m_bad")
    adapter.send(message(message_id="m_bad", text="second"))  # accepted; its write fails
    with pytest.raises(TransientChannelError, match="Is a directory"):
        adapter.sync()
    assert json.loads(path.read_text(encoding="utf-8"))["text"] == "first"  # intact
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(["m_bad.json", path.name])
    adapter.send(message(text="third"))
    adapter.sync()  # reported once; the outbox writes again
    assert json.loads(path.read_text(encoding="utf-8"))["text"] == "third"
    journal = (tmp_path / "ob" / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(journal) == 2  # first and third: the failed send was never journaled


def test_outbox_refuses_sends_while_a_failure_is_unreported(tmp_path: Path) -> None:
    """Once the writer has told of a failed write that no ``sync`` has reported yet (a
    sync up to an earlier mark learnt of it), the outbox accepts nothing more until one
    has."""
    adapter = outbox(tmp_path)
    adapter.send(message(message_id="m_first"))
    first = adapter.mark()
    _unwritable(adapter, "m_bad")
    adapter.send(message(message_id="m_bad"))
    adapter.sync(first)  # the writer answers for both, the failure is after the mark
    with pytest.raises(TransientChannelError, match="Is a directory"):
        adapter.send(message(message_id="m_refused"))
    with pytest.raises(TransientChannelError, match="Is a directory"):
        adapter.sync()
    adapter.send(message(message_id="m_after"))
    adapter.sync()
    journal = (tmp_path / "ob" / "journal.jsonl").read_text(encoding="utf-8")
    assert "m_after" in journal and "m_refused" not in journal and "m_bad" not in journal


def test_outbox_sync_up_to_a_mark(tmp_path: Path) -> None:
    """``sync(mark)`` answers for the messages accepted before ``mark()`` only: a failed
    write after it is reported by the next ``sync`` that covers it, not lost."""
    adapter = outbox(tmp_path)
    adapter.send(message(message_id="m_first"))
    first = adapter.mark()
    adapter.sync(first)
    _unwritable(adapter, "m_second")
    adapter.send(message(message_id="m_second"))
    second = adapter.mark()
    adapter.sync(first)  # written already: nothing to report, nothing to wait for
    assert "m_first" in (tmp_path / "ob" / "journal.jsonl").read_text(encoding="utf-8")
    adapter.send(message(message_id="m_third"))
    with pytest.raises(TransientChannelError, match="Is a directory"):
        adapter.sync(second)
    adapter.sync()  # reported once: the third is written
    journal = (tmp_path / "ob" / "journal.jsonl").read_text(encoding="utf-8")
    assert "m_third" in journal and "m_second" not in journal


def test_outbox_syncs_once_per_batch(tmp_path: Path) -> None:
    """Sends are written at once and made durable together: ``sync`` (the daemon's call
    after each batch, and ``close``) is one fsync of the journal, which lists them all."""
    adapter = outbox(tmp_path)
    for i in range(5):
        adapter.send(message(message_id=f"m_{i:02d}"))
    adapter.sync()
    assert adapter.journal_syncs == 1  # one for the five, none while they were written
    journal = tmp_path / "ob" / "journal.jsonl"
    lines = [json.loads(x) for x in journal.read_text(encoding="utf-8").splitlines()]
    assert [x["message_id"] for x in lines] == [f"m_{i:02d}" for i in range(5)]
    adapter.sync()  # nothing new: nothing to flush
    assert adapter.journal_syncs == 1
    adapter.send(message(message_id="m_05"))
    adapter.sync()
    assert adapter.journal_syncs == 2


def test_outbox_writer_that_stops_fails_its_batch_and_is_started_again(tmp_path: Path) -> None:
    """The writer process dies (killed): the sync that covers what it was given raises
    (the daemon records those sends ambiguous), and the next send starts a new one."""
    adapter = outbox(tmp_path)
    adapter.send(message(message_id="m_first"))
    adapter.sync()
    writer = adapter._writer
    assert writer is not None
    writer.proc.kill()
    writer.proc.wait()
    adapter.send(message(message_id="m_lost"))
    with pytest.raises(TransientChannelError, match="writer stopped"):
        adapter.sync()
    adapter.send(message(message_id="m_next"))
    adapter.sync()
    assert adapter._writer is not writer
    journal = (tmp_path / "ob" / "journal.jsonl").read_text(encoding="utf-8")
    assert "m_first" in journal and "m_next" in journal and "m_lost" not in journal
    adapter.close()


def test_outbox_writer_finishes_its_work_when_its_daemon_is_killed(tmp_path: Path) -> None:
    """A daemon killed mid-batch leaves its writer to write what it had accepted, then
    exit: nothing accepted is half-written, and no writer process stays behind."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from channels.outbox.adapter import OutboxChannel\n"
        "from channels.base import OutboundMessage\n"
        "from orchestrator.clock import SystemClock\n"
        f"box = OutboxChannel('sms', Path({str(tmp_path / 'ob')!r}), SystemClock())\n"
        "def send(i):\n"
        "    box.send(OutboundMessage(message_id=f'm_{i:04d}', channel='sms', account_id='A',"
        " debtor_id='D', to='+12125550100', text='x' * 2000, locale='en-US'))\n"
        "for i in range(300):\n"
        "    send(i)\n"
        "box.sync()\n"
        "for i in range(300, 900):\n"
        "    send(i)\n"
        "print(box._writer.proc.pid, flush=True)\n"
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -9, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the writer outlived its daemon"
    journal = (tmp_path / "ob" / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    files = sorted(p.name for p in (tmp_path / "ob" / "sms").iterdir())
    assert len(files) >= 300  # what was synced, and whatever the writer had been given
    assert files == [f"m_{i:04d}.json" for i in range(len(files))]  # in order, whole
    assert len(journal) == len(files)
    for name in files:
        assert json.loads((tmp_path / "ob" / "sms" / name).read_text(encoding="utf-8"))


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.floats(allow_nan=False))


@given(
    st.dictionaries(st.text(), _scalars, max_size=8),
    st.dictionaries(st.text(), st.lists(_scalars, max_size=3), max_size=2),
)
def test_outbox_json_is_laid_out_as_json_indents_it(
    flat: dict[str, object], nested: dict[str, object]
) -> None:
    """The outbox's fast layout of a message file is ``json.dumps(indent=2)``'s, byte for
    byte, nested values or not."""
    for record in (flat, {**flat, **nested}):
        expected = json.dumps(record, ensure_ascii=False, indent=2) + "\n"
        assert outbox_module.pretty_json(record) == expected


def test_outbox_refuses_unsafe_message_ids(tmp_path: Path) -> None:
    with pytest.raises(PermanentChannelError):
        outbox(tmp_path).send(message(message_id="../../etc/passwd"))


# --- simulated ----------------------------------------------------------------------------


def test_simulated_channel_records_sends() -> None:
    channel = SimulatedChannel()
    result = channel.send(message())
    again = SimulatedChannel().send(message())
    assert result == again and result.provider_id.startswith("SM")
    assert channel.sent == [message()] and channel.results == [result]
    channel.send(message("email", "m_e", subject="s", html="<p/>"))
    assert [m.message_id for m in channel.by_channel("email")] == ["m_e"]
    channel.close()
    assert channel.closed


def test_simulated_failure_script() -> None:
    channel = SimulatedChannel()
    channel.fail("m_t", TransientChannelError("429"), times=2)
    channel.fail("m_p", PermanentChannelError("21211"))
    channel.fail("m_a", AmbiguousSendError("timeout"))
    for _ in range(2):
        with pytest.raises(TransientChannelError):
            channel.send(message(message_id="m_t"))
    assert channel.send(message(message_id="m_t")).status == D.sent
    for _ in range(2):
        with pytest.raises(PermanentChannelError):
            channel.send(message(message_id="m_p"))
    with pytest.raises(AmbiguousSendError):
        channel.send(message(message_id="m_a"))
    assert [m.message_id for m in channel.sent] == ["m_t"]
    assert channel.attempts == ["m_t", "m_t", "m_t", "m_p", "m_p", "m_a"]


# --- signed links -------------------------------------------------------------------------


def test_token_round_trip_and_determinism() -> None:
    expires = NOW + timedelta(days=60)
    token = make_token("secret", "m_0123456789abcdef01234567", "pay", expires)
    assert token == make_token("secret", "m_0123456789abcdef01234567", "pay", expires)
    assert len(token) <= 40
    data = read_token("secret", token, NOW)
    assert data is not None
    assert data.message_id == "m_0123456789abcdef01234567" and data.kind == "pay"
    assert expires <= data.expires_at < expires + timedelta(days=1)


def test_token_with_any_message_id_and_kind() -> None:
    token = make_token("s", "odd/id é", "custom", NOW + timedelta(hours=1))
    data = read_token("s", token, NOW)
    assert data is not None and (data.message_id, data.kind) == ("odd/id é", "custom")


def test_tampered_wrong_key_or_expired_tokens_are_refused() -> None:
    token = make_token("secret", "m_0123456789abcdef01234567", "pay", NOW + timedelta(days=1))
    assert read_token("other", token, NOW) is None
    assert read_token("secret", token, NOW + timedelta(days=3)) is None
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert read_token("secret", flipped, NOW) is None
    for junk in ("", "!!!", "a", token[:-1], token + "A", "x" * 2000):
        assert read_token("secret", junk, NOW) is None


@given(st.binary(max_size=64))
def test_read_token_never_raises(raw: bytes) -> None:
    import base64

    assert read_token("s", base64.urlsafe_b64encode(raw).decode().rstrip("="), NOW) is None


def test_links() -> None:
    expires = NOW + timedelta(days=60)
    link = pay_link("https://collect.example.com/", "k", "m_ab", expires)
    assert link.startswith("https://collect.example.com/p/")
    token = link.rsplit("/", 1)[1]
    pay = read_token("k", token, NOW)
    assert pay is not None and pay.kind == "pay"
    unsub = unsubscribe_link("https://collect.example.com", "k", "m_ab", expires)
    assert unsub.startswith("https://collect.example.com/u/")
    unsubscribe = read_token("k", unsub.rsplit("/", 1)[1], NOW)
    assert unsubscribe is not None and unsubscribe.kind == "unsubscribe"


def test_creditor_pay_url() -> None:
    from orchestrator.config.models import Creditor
    from orchestrator.core.account import Account

    creditor = Creditor(name="Acme", phone="+1", pay_url="https://pay.example.com/{reference}")
    account = Account("A1", "Jane", "USD", Decimal(1), NOW.date(), reference="R 1/2")
    assert creditor_pay_url(creditor, account) == "https://pay.example.com/R%201%2F2"
    account.reference = None
    assert creditor_pay_url(creditor, account) == "https://pay.example.com/A1"
    assert creditor_pay_url(creditor.model_copy(update={"pay_url": ""}), account) is None
    by_id = creditor.model_copy(update={"pay_url": "https://pay.example.com/a/{account_id}"})
    account.account_id = "A 1/2"
    assert creditor_pay_url(by_id, account) == "https://pay.example.com/a/A%201%2F2"


# --- SMS segments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "count", "units"),
    [
        ("", "GSM-7", 1, 0),
        ("a" * 160, "GSM-7", 1, 160),
        ("a" * 161, "GSM-7", 2, 161),
        ("a" * 306, "GSM-7", 2, 306),
        ("a" * 307, "GSM-7", 3, 307),
        ("€" * 80, "GSM-7", 1, 160),  # extension characters take two
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 2, 164),  # an escape pair is never split
        ("中" * 70, "UCS-2", 1, 70),
        ("中" * 71, "UCS-2", 2, 71),
        ("中" * 134, "UCS-2", 2, 134),
        ("中" * 135, "UCS-2", 3, 135),
        ("It\u2019s due", "UCS-2", 1, 8),  # one curly quote switches the whole message
        ("😀" * 35, "UCS-2", 1, 70),  # surrogate pairs count two
    ],
)
def test_segments(text: str, encoding: str, count: int, units: int) -> None:
    info = segments(text)
    assert (info.encoding, info.segments, info.units) == (encoding, count, units)


@given(st.text(alphabet="ab€{中😀", max_size=400))
def test_segment_count_places_every_character(text: str) -> None:
    """The count without placing characters one by one (no two-unit character) agrees
    with placing them: a two-unit character is never split across segments."""
    from channels.segments import GSM7_EXTENSION, _split, is_gsm7

    info = segments(text)
    if is_gsm7(text):
        sizes, multi = [2 if ch in GSM7_EXTENSION else 1 for ch in text], 153
    else:
        sizes, multi = [2 if ord(ch) > 0xFFFF else 1 for ch in text], 67
    assert info.units == sum(sizes)
    assert info.segments == (
        1 if info.units <= multi + (7 if multi == 153 else 3) else _split(sizes, multi)
    )
