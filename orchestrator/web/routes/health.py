"""Probes and metrics: ``/healthz``, ``/readyz`` and ``/metrics``.

Both probes answer 200 only when the database answers and its schema is the one this
release needs (else 503 and why, never a host or a password): every request needs it.
``/readyz`` also opens one stored personal field with the data keys, when there is one:
a server started with the wrong ``OUTREACH_DATA_KEYS`` would fail every request that reads
a name or a number, so it must get no traffic.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.core.crypto import InvalidToken
from orchestrator.store.db import schema_problem
from orchestrator.store.tables import ENCRYPTED_COLUMNS
from orchestrator.web.server import Server, ServerDep

log = logging.getLogger("outreach.server")

router = APIRouter(tags=["Probes"])


@router.get("/healthz")
def healthz(server: ServerDep) -> Response:
    """Liveness with the database: the process answers, the database answers, and
    its schema is the one this release needs (else 503 and why)."""
    return _health(server)


@router.get("/readyz")
def readyz(server: ServerDep) -> Response:
    """Readiness: send traffic here only on 200. The same checks as ``/healthz``, and
    the data keys open a stored personal field (if any is stored)."""
    return _health(server, keys=True)


def _health(server: Server, *, keys: bool = False) -> Response:
    try:
        with server.db.connect() as conn:
            conn.execute(sa.text("select 1"))
            schema = schema_problem(conn)
            problem = None if schema is None else f"the database {schema}"
            if problem is None and keys:
                problem = _keys_problem(server, conn)
    except sa.exc.SQLAlchemyError as exc:  # the class only: messages may hold hosts
        problem = f"database unreachable ({type(exc).__name__})"
    if problem is not None:
        log.warning("unhealthy", extra={"reason": problem})
        return JSONResponse({"status": "unavailable", "reason": problem}, 503)
    return JSONResponse({"status": "ok"})


def _keys_problem(server: Server, conn: sa.Connection) -> str | None:
    """Why the data keys cannot open the first stored personal field, or ``None`` (they
    do, or nothing is stored yet). Names the column, never the row or its value."""
    for table, columns in ENCRYPTED_COLUMNS.items():
        for column in columns:
            token = conn.execute(
                sa.text(f"select {column} from {table} where {column} is not null limit 1")
            ).scalar()
            if token is None:
                continue
            try:
                server.cipher.decrypt(token)
            except (InvalidToken, ValueError):
                return (
                    f"the data keys do not open {table}.{column}: "
                    "check OUTREACH_DATA_KEYS (the key that encrypted it must be in the list)"
                )
            return None
    return None


@router.get("/metrics", include_in_schema=False)
def metrics(server: ServerDep) -> Response:
    return PlainTextResponse(
        generate_latest(server.registry).decode(), media_type=CONTENT_TYPE_LATEST
    )
