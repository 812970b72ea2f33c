"""Why a service refuses a request (the ``Refused`` branch of ``orchestrator.errors``),
and the checks shared by several.

A refusal is raised before anything is written (or inside the transaction, which then
rolls back), so a refused request leaves nothing behind. Each kind maps to one HTTP
status (docs/http.md); ``reason`` is the label the webhooks and links count their
refusals under (``outreach_webhook_rejections``).
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.clock import to_utc
from orchestrator.core.bounds import FUTURE_LEEWAY, instant_problem
from orchestrator.errors import Invalid, NotAuthenticated, Refused, Unknown

__all__ = ["Invalid", "NotAuthenticated", "Refused", "Unknown", "checked_instant"]


def checked_instant(value: datetime, now: datetime, name: str) -> datetime:
    """An instant sent to us (an event's ``at``, a ``paid_at``), in UTC; ``Invalid``
    with the reason if it is out of range (``bounds.instant_problem``)."""
    try:
        at = to_utc(value)
    except ValueError as exc:
        raise Invalid(f"{name}: {exc}", "invalid") from None
    problem = instant_problem(at, now + FUTURE_LEEWAY)
    if problem is not None:
        raise Invalid(f"{name}: {problem}", "invalid")
    return at
