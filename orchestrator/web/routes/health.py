"""Probes and metrics: ``/healthz``, ``/readyz`` and ``/metrics``.

Both probes answer 200 only when the database answers and its schema is the one this
release needs (else 503 and why, never a host or a password): every request needs it.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.store.db import schema_problem
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
    """Readiness: send traffic here only on 200. The same checks as
    ``/healthz``: every request needs the database and its schema."""
    return _health(server)


def _health(server: Server) -> Response:
    try:
        with server.db.connect() as conn:
            conn.execute(sa.text("select 1"))
            schema = schema_problem(conn)
        problem = None if schema is None else f"the database {schema}"
    except sa.exc.SQLAlchemyError as exc:  # the class only: messages may hold hosts
        problem = f"database unreachable ({type(exc).__name__})"
    if problem is not None:
        log.warning("unhealthy", extra={"reason": problem})
        return JSONResponse({"status": "unavailable", "reason": problem}, 503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics", include_in_schema=False)
def metrics(server: ServerDep) -> Response:
    return PlainTextResponse(
        generate_latest(server.registry).decode(), media_type=CONTENT_TYPE_LATEST
    )
