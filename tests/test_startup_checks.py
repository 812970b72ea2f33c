"""What ``run``, ``serve`` and ``config check`` refuse before anything reaches a debtor:
a guessable link key, links to a loopback address, missing provider credentials.
Driven through the real command line (``python -m orchestrator``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import setup_db  # noqa: I001 - tests/support.py


def outreach(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_short_secret_key_is_refused_by_run_and_serve(db_url: str, tmp_path: Path) -> None:
    env, outbox = setup_db(db_url, tmp_path, 2)
    for key in ("Q", "Zz" * 15 + "Q"):  # 1 and 31 bytes
        for command in (("run", "--once"), ("serve", "--port", "1")):
            done = outreach(*command, env=dict(env, OUTREACH_SECRET_KEY=key))
            assert done.returncode == 2, (command, done.stderr)
            assert "OUTREACH_SECRET_KEY" in done.stderr and "at least 32" in done.stderr
            assert "ZzZz" not in done.stderr  # the key is never echoed
            assert "Traceback" not in done.stderr
    assert not outbox.exists()  # nothing was sent
    ok = outreach("run", "--once", env=dict(env, OUTREACH_SECRET_KEY="x" * 32))
    assert ok.returncode == 0, ok.stderr


TWILIO_SMS = 'sms: {adapter: twilio_sms, from: "+15005550006"}\n'
OUTBOX = "email: {adapter: outbox, dir: var/outbox}\n"
NO_ENV = {
    "OUTREACH_PUBLIC_URL": "",
    "TWILIO_ACCOUNT_SID": "",
    "TWILIO_AUTH_TOKEN": "",
    "SMTP_HOST": "",
}


def _channels(config_dir: Path, text: str) -> Path:
    path = config_dir / "channels.yaml"
    path.write_text(text)
    return path


def test_config_check_names_the_public_url_and_missing_credentials(
    db_url: str, tmp_path: Path
) -> None:
    """``config check`` said OK, then ``run`` texted debtors http://127.0.0.1:8000/p/...
    (or refused Twilio with no file or line)."""
    env, _ = setup_db(db_url, tmp_path, 1)
    config = Path(env["OUTREACH_CONFIG"])
    path = _channels(config, OUTBOX + TWILIO_SMS)
    check = ("config", "check", "--config", str(config))
    done = outreach(*check, env={**env, **NO_ENV})
    assert done.returncode == 2, done.stdout
    errors = [line for line in done.stdout.splitlines() if ": error: " in line]
    assert errors == [
        f"{path}:2:16: error: channels: sms: adapter twilio_sms reaches real people, but "
        "OUTREACH_PUBLIC_URL is not set, so links would point to http://127.0.0.1:8000: set "
        "it to the public https URL of `outreach serve`",
        f"{path}:2:16: error: channels: sms: twilio_sms needs TWILIO_ACCOUNT_SID in the "
        "environment (or account_sid in channels.yaml): it is not set",
        f"{path}:2:16: error: channels: sms: twilio_sms needs TWILIO_AUTH_TOKEN in the "
        "environment (or auth_token in channels.yaml): it is not set",
    ], done.stdout
    creds = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t" * 32}
    for url, says in (
        ("http://127.0.0.1:8000", "is not an https URL"),
        ("https://localhost:8443", "is a loopback address"),
        ("https://127.0.0.2", "is a loopback address"),
        ("https://[::1]:8000", "is a loopback address"),
        ("http://outreach.example.com", "is not an https URL"),
    ):
        done = outreach(*check, env={**env, **creds, "OUTREACH_PUBLIC_URL": url})
        assert done.returncode == 2 and says in done.stdout, (url, done.stdout)
        assert f"{path}:2:16: error:" in done.stdout and "OUTREACH_PUBLIC_URL" in done.stdout
    done = outreach(
        *check, env={**env, **creds, "OUTREACH_PUBLIC_URL": "https://outreach.example.com"}
    )
    assert done.returncode == 0, done.stdout
    _channels(config, OUTBOX + OUTBOX.replace("email", "sms"))  # nobody reached: no URL needed
    assert outreach(*check, env={**env, **NO_ENV}).returncode == 0


def test_config_check_reports_an_empty_smtp_host_at_its_line(db_url: str, tmp_path: Path) -> None:
    env, _ = setup_db(db_url, tmp_path, 1)
    config = Path(env["OUTREACH_CONFIG"])
    path = _channels(
        config,
        'email:\n  adapter: smtp\n  host: "${SMTP_HOST:-}"\n'
        '  username: billing\n  password: "${SMTP_PASSWORD:-}"\n'
        '  from: "Acme <billing@example.com>"\n',
    )
    done = outreach(
        "config",
        "check",
        "--config",
        str(config),
        env={**env, **NO_ENV, "OUTREACH_PUBLIC_URL": "https://o.example.com"},
    )
    assert done.returncode == 2
    assert f"{path}:3:9: error: channels: email: smtp needs a host: it is empty" in done.stdout
    assert f"{path}:5:13: error: channels: email: smtp has a username but no password" in (
        done.stdout
    ), done.stdout


def test_run_and_serve_refuse_a_loopback_public_url_with_real_channels(
    db_url: str, tmp_path: Path
) -> None:
    env, outbox = setup_db(db_url, tmp_path, 2)
    path = _channels(
        Path(env["OUTREACH_CONFIG"]), TWILIO_SMS + f'email: {{adapter: outbox, dir: "{outbox}"}}\n'
    )
    creds = {
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "OUTREACH_PUBLIC_URL": "",
    }
    for command in (("run", "--once"), ("serve", "--port", "1")):
        done = outreach(*command, env={**env, **creds})
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.startswith(
            f"{path}:1:16: error: channels: sms: adapter twilio_sms "
            "reaches real people, but OUTREACH_PUBLIC_URL is not set"
        )
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert not outbox.exists()
