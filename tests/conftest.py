"""Shared fixtures. The database backend is chosen by ``OUTREACH_TEST_DB``
(``sqlite``, the default, or ``postgresql``); each test gets a fresh database."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from support import ROOT  # noqa: I001 - tests/support.py

PG_ADMIN_URL = os.environ.get(
    "OUTREACH_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _backend() -> str:
    return os.environ.get("OUTREACH_TEST_DB", "sqlite")


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database on the selected backend."""
    if _backend() == "sqlite":
        yield f"sqlite:///{tmp_path / 'outreach.db'}"
        return
    from sqlalchemy import create_engine, text

    name = f"outreach_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def data_keys() -> str:
    """A fresh comma-separated OUTREACH_DATA_KEYS value (one Fernet key)."""
    return Fernet.generate_key().decode()


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """A copy of the shipped sample configuration, to change or break."""
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    return target
