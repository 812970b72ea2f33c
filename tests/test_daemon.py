"""The daemon: retries, crashes, several workers, reload (SQLite and PostgreSQL).

Process tests run the real ``outreach run`` as subprocesses against a real database and
check what reached the outbox's append-only journal, not the daemon's own counters.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from support import ROOT, setup_db  # noqa: I001 - tests/support.py

from channels.simulated import SimulatedChannel
from orchestrator.config.loading import load_config
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.dispatch.decider import message_id_for
from orchestrator.dispatch.runner import Runner
from orchestrator.errors import AmbiguousSendError, PermanentChannelError, TransientChannelError
from orchestrator.store import db
from orchestrator.store.tables import Decision, OccurrenceRow, Send, table_of

T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York
NY = ZoneInfo("America/New_York")
IS_PG = os.environ.get("OUTREACH_TEST_DB", "sqlite") == "postgresql"


def outreach(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


def journal(outbox: Path) -> list[dict[str, Any]]:
    path = outbox / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def states(db_url: str) -> Counter[str]:
    engine = db.make_engine(db_url)
    occ = table_of(OccurrenceRow)
    with engine.connect() as conn:
        out: Counter[str] = Counter(
            dict(conn.execute(sa.select(occ.c.state, sa.func.count()).group_by(occ.c.state)).all())
        )
    engine.dispose()
    return out


# --- retries (in process) ------------------------------------------------------------------


def _runner(db_url: str, tmp_path: Path, channel: SimulatedChannel) -> Runner:
    env, _ = setup_db(
        db_url,
        tmp_path,
        3,
        retry=", retry: {attempts: 3, backoff: 2m, max_backoff: 10m, jitter: false}",
    )
    config = load_config(env["OUTREACH_CONFIG"], ROOT / "templates")
    return Runner(
        db.make_engine(db_url),
        config,
        TemplateRenderer(ROOT / "templates"),
        {"sms": channel},
        DataCipher([env["OUTREACH_DATA_KEYS"]]),
        public_url="http://127.0.0.1:8000",
        secret="s",
    )


def _decisions(runner: Runner, account: str) -> list[tuple[str, str | None, datetime | None]]:
    t = table_of(Decision)
    with runner.db.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.decision, t.c.reason, t.c.until)
            .where(t.c.account_id == account)
            .order_by(t.c.id)
        ).all()
    return [(r.decision, r.reason, r.until) for r in rows]


def test_transient_errors_are_retried_with_backoff(db_url: str, tmp_path: Path) -> None:
    channel = SimulatedChannel()
    runner = _runner(db_url, tmp_path, channel)
    mid = message_id_for("A00000", "daily-sms", "2026-03-10")
    channel.fail(mid, TransientChannelError("429 too many requests"), times=2)
    for minutes in (0, 2, 6):  # backoff 2m, then 4m
        runner.tick(T + timedelta(minutes=minutes))
    got = _decisions(runner, "A00000")
    assert got == [
        ("deferred", "provider_error", T + timedelta(minutes=2)),
        ("deferred", "provider_error", T + timedelta(minutes=6)),
        ("sent", None, None),
    ]
    assert channel.attempts.count(mid) == 3


def test_transient_errors_end_failed_after_the_last_attempt(db_url: str, tmp_path: Path) -> None:
    channel = SimulatedChannel()
    runner = _runner(db_url, tmp_path, channel)
    mid = message_id_for("A00001", "daily-sms", "2026-03-10")
    channel.fail(mid, TransientChannelError("503"))
    for minutes in (0, 2, 6, 30):
        runner.tick(T + timedelta(minutes=minutes))
    assert [d for d, _, _ in _decisions(runner, "A00001")] == ["deferred", "deferred", "failed"]
    assert channel.attempts.count(mid) == 3


def test_a_deferral_does_not_use_up_a_retry_attempt(db_url: str, tmp_path: Path) -> None:
    """Deferred by a limit first (decided under the claim, like a send), then refused
    twice by the provider: it still gets its three attempts."""
    env, _ = setup_db(
        db_url,
        tmp_path,
        2,
        per_debtor=2,
        limits="[{id: sms-hourly, channels: [sms], max: 1, window: 1h, scope: debtor}]",
        retry=", retry: {attempts: 3, backoff: 2m, max_backoff: 10m, jitter: false}",
    )
    config = load_config(env["OUTREACH_CONFIG"], ROOT / "templates")
    channel = SimulatedChannel()
    runner = Runner(
        db.make_engine(db_url),
        config,
        TemplateRenderer(ROOT / "templates"),
        {"sms": channel},
        DataCipher([env["OUTREACH_DATA_KEYS"]]),
        public_url="http://127.0.0.1:8000",
        secret="s",
    )
    mid = message_id_for("A00001", "daily-sms", "2026-03-10")
    channel.fail(mid, TransientChannelError("503"), times=2)
    for minutes in (0, 60, 62, 66):
        runner.tick(T + timedelta(minutes=minutes))
    assert [d for d, _, _ in _decisions(runner, "A00001")] == [
        "deferred",
        "deferred",
        "deferred",
        "sent",
    ]  # limit, 503, 503, sent
    assert _decisions(runner, "A00001")[0][1] == "limit:sms-hourly"
    assert channel.attempts.count(mid) == 3


def test_permanent_error_is_not_retried(db_url: str, tmp_path: Path) -> None:
    channel = SimulatedChannel()
    runner = _runner(db_url, tmp_path, channel)
    mid = message_id_for("A00002", "daily-sms", "2026-03-10")
    channel.fail(mid, PermanentChannelError("21211 invalid number"))
    for minutes in (0, 2, 6):
        runner.tick(T + timedelta(minutes=minutes))
    assert _decisions(runner, "A00002") == [("failed", "provider_error", None)]
    assert channel.attempts.count(mid) == 1


def test_ambiguous_error_is_never_retried(db_url: str, tmp_path: Path) -> None:
    channel = SimulatedChannel()
    runner = _runner(db_url, tmp_path, channel)
    mid = message_id_for("A00000", "daily-sms", "2026-03-10")
    channel.fail(mid, AmbiguousSendError("read timeout after the request left"))
    for minutes in (0, 2, 6, 60 * 24):
        runner.tick(T + timedelta(minutes=minutes))
    assert _decisions(runner, "A00000")[0] == ("ambiguous", "provider_error", None)
    assert channel.attempts.count(mid) == 1  # not even on the next day's tick
    # it counts as a send for limits: the next day's occurrence is a different one
    assert states(db_url)["ambiguous"] == 1


# --- crashes (processes) -------------------------------------------------------------------


def test_sigkill_twenty_times_sends_each_at_most_once(db_url: str, tmp_path: Path) -> None:
    n = 2000
    env, outbox = setup_db(db_url, tmp_path, n, delay=0.006)
    args = outreach("run", "--once", "--now", T.isoformat(), "--worker-id", "crashy")
    rng = random.Random(5)
    kills = 0
    while kills < 20:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.0, 2.0))
        if proc.poll() is not None:  # finished before we could kill it
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    for _ in range(3):  # let it finish what is left
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    sent = Counter(line["message_id"] for line in journal(outbox))
    assert kills >= 10, "the run finished too fast to be killed often: slow the adapter"
    assert max(sent.values()) == 1  # at most once
    final = states(db_url)
    assert sum(final.values()) == n  # every occurrence planned once
    assert set(final) <= {"sent", "ambiguous"}, final  # and ended in a recorded state
    defaults = Runner.__init__.__kwdefaults__
    assert defaults is not None
    batch = defaults["send_batch"]  # sends claimed together
    assert final["ambiguous"] <= kills * batch  # only what was in flight at a kill
    assert final["sent"] + final["ambiguous"] == n
    assert final["sent"] >= n - kills * batch
    # every outbox send is recorded in the database, sent or ambiguous
    engine = db.make_engine(db_url)
    t = table_of(Decision)
    with engine.connect() as conn:
        decided = dict(
            conn.execute(
                sa.select(t.c.message_id, t.c.decision).where(t.c.message_id.is_not(None))
            ).all()
        )
    engine.dispose()
    assert set(sent) <= set(decided)


@pytest.mark.skipif(not IS_PG, reason="several workers need PostgreSQL (SQLite has one writer)")
def test_four_workers_never_duplicate_or_exceed_a_cap(db_url: str, tmp_path: Path) -> None:
    n = 2000
    env, outbox = setup_db(
        db_url,
        tmp_path,
        n,
        per_debtor=3,
        delay=0.001,
        limits="[{id: sms-daily, channels: [sms], max: 1, window: 1d, scope: debtor}]",
    )
    procs = [
        subprocess.Popen(
            outreach("run", "--once", "--now", T.isoformat(), "--worker-id", f"w{i}"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outputs]
    lines = journal(outbox)
    assert Counter(line["message_id"] for line in lines).most_common(1)[0][1] == 1
    per_day = Counter(
        (
            line["debtor"],
            datetime.fromisoformat(line["created_at"].replace("Z", "+00:00")).astimezone(NY).date(),
        )
        for line in lines
    )
    assert max(per_day.values()) == 1  # 1 sms per debtor per local day, across workers
    debtors = (n + 2) // 3
    assert len(lines) == debtors  # and each debtor got its one
    workers = [json.loads(o[0])["worker"] for o in outputs]
    assert sorted(workers) == ["w0", "w1", "w2", "w3"]
    busy = [sum(json.loads(o[0])["decisions"].values()) for o in outputs]
    assert sum(1 for b in busy if b) >= 2  # the work was actually shared


# --- reload (process) ----------------------------------------------------------------------


def test_invalid_config_on_sighup_keeps_the_daemon_running(db_url: str, tmp_path: Path) -> None:
    env, _ = setup_db(db_url, tmp_path, 5)
    proc = subprocess.Popen(
        outreach("run", "--plan-every", "1", "--dispatch-every", "1", "--worker-id", "reloader"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(4)
        policy = Path(env["OUTREACH_CONFIG"]) / "policy.yaml"
        good = policy.read_text()
        policy.write_text(good + "limits: [{id: x, channels: [pigeon], max: 1, window: 1d}]\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None, "the daemon died on an invalid config"
        policy.write_text(
            good.replace(
                "hours: {default: any}", 'hours: {default: {start: "09:00", end: "17:00"}}'
            )
        )
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    logs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    rejected = [entry for entry in logs if entry["message"].startswith("configuration rejected")]
    assert rejected and any("pigeon" in e for e in rejected[0]["errors"])
    assert any(entry["message"] == "configuration reloaded" for entry in logs)
    assert logs[-1]["message"] == "stopped"
    assert "Pat Doe" not in out and "+1212" not in out  # no personal data in the logs


def test_run_once_cli_reports_and_is_idempotent(db_url: str, tmp_path: Path) -> None:
    env, outbox = setup_db(db_url, tmp_path, 12)
    args = outreach("run", "--once", "--now", T.isoformat())
    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["planned"] == 12 and summary["decisions"] == {"sent": 12}
    second = json.loads(
        subprocess.run(args, env=env, capture_output=True, text=True, timeout=120).stdout
    )
    assert second["planned"] == 0 and second["decisions"] == {}
    assert len(journal(outbox)) == 12
    _ = date


def test_send_batch_comes_from_the_environment(db_url: str, tmp_path: Path) -> None:
    env, outbox = setup_db(db_url, tmp_path, 12)
    args = outreach("run", "--once", "--now", T.isoformat())
    bad = subprocess.run(
        args, env=dict(env, OUTREACH_SEND_BATCH="0"), capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2
    assert "OUTREACH_SEND_BATCH" in bad.stderr and "'0'" in bad.stderr
    assert journal(outbox) == []  # nothing was sent with a configuration it refused
    ok = subprocess.run(
        args, env=dict(env, OUTREACH_SEND_BATCH="5"), capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["decisions"] == {"sent": 12}
    assert len(journal(outbox)) == 12


# --- a template that cannot render ---------------------------------------------------------

TWO_STEPS = """
stages:
  - id: M1
    dpd: [1, 400]
    steps:
      - {id: good, channel: sms, template: reminder, every: 1d, at: "10:00", expires: 3d}
      - {id: bad, channel: sms, template: hostile, every: 1d, at: "10:00", expires: 3d}
"""


def test_a_hostile_template_fails_its_own_sends_and_the_others_go_out(
    db_url: str, tmp_path: Path
) -> None:
    """One step's template would loop ten billion times. Its sends are rendered before
    the batch is recorded ``sending``, so each fails on its own (``render_error``): none
    is ever ``sending`` or ``ambiguous``, none reaches the outbox, and the other step's
    sends of the same batches go out. (Before, the daemon recorded the batch ``sending``
    and then hung rendering it.)"""
    env, outbox = setup_db(db_url, tmp_path, 6, cadences=TWO_STEPS)
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "sms" / "hostile.txt.j2").write_text(
        "{{ creditor.name }}: {% for a in range(100000) %}{% for b in range(100000) %}x"
        "{% endfor %}{% endfor %} Reply STOP to opt out.",
        encoding="utf-8",
    )
    env["OUTREACH_TEMPLATES"] = str(templates)
    result = subprocess.run(
        outreach("run", "--once", "--now", T.isoformat()),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["decisions"] == {"failed": 6, "sent": 6}
    engine = db.make_engine(db_url)
    occ, dec, send = table_of(OccurrenceRow), table_of(Decision), table_of(Send)
    with engine.connect() as conn:
        by_step = dict(
            conn.execute(
                sa.select(
                    occ.c.step_id,
                    sa.func.array_agg(occ.c.state) if IS_PG else sa.func.group_concat(occ.c.state),
                ).group_by(occ.c.step_id)
            ).all()
        )
        bad = conn.execute(
            sa.select(dec.c.decision, dec.c.reason, dec.c.message_id).where(dec.c.step == "bad")
        ).all()
        good_ids = set(
            conn.execute(
                sa.select(dec.c.message_id).where(dec.c.step == "good", dec.c.decision == "sent")
            ).scalars()
        )
        sends = conn.execute(sa.select(send.c.message_id, send.c.status)).all()
    engine.dispose()
    assert _states(by_step["bad"]) == {"failed"} and _states(by_step["good"]) == {"sent"}
    assert [tuple(r) for r in bad] == [("failed", "render_error", None)] * 6
    assert len(good_ids) == 6
    assert {m for m, _ in sends} == good_ids  # never a send row: never recorded sending
    assert {s for _, s in sends} == {"sent"}
    assert {entry["message_id"] for entry in journal(outbox)} == good_ids


def _states(value: object) -> set[str]:
    """An aggregate of states: a PostgreSQL array, or SQLite's comma-joined text."""
    return set(value) if isinstance(value, list) else set(str(value).split(","))
