"""What ``run``, ``serve`` and ``config check`` refuse before anything reaches a debtor:
a guessable link key, links to a loopback address, missing provider credentials.
Driven through the real command line (``python -m orchestrator``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import setup_db  # noqa: I001 - tests/support.py


def outreach(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env,
                          capture_output=True, text=True, timeout=120)


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
