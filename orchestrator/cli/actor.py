"""Who runs a command, for the audit log: the OS user (``cli`` if it cannot be told)."""

from __future__ import annotations

import getpass

__all__ = ["cli_actor"]


def cli_actor() -> str:
    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):  # no user name for this uid
        return "cli"
