"""What the runner writes a batch at a time: the values of its rows.

Before its adapter calls, a batch records a send row ``sending`` for each message
(``Sending``); after them, a decision row for each occurrence, each occurrence moved on
from ``sending`` (``Moved``: to sent, deferred, failed...) and each send row's status and
provider id (``send_status``). A planning page marks when each of its accounts is due
again and, for those that moved, which stage they are in (``PlannedAccount``). Each
database writes them its own way, a statement per kind of row and batch
(``orchestrator.dispatch.connector``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.core.planner import StageMark
from orchestrator.dispatch.decider import Outcome

__all__ = ["Moved", "PlannedAccount", "Sending", "send_status"]


@dataclass(frozen=True)
class Moved:
    """One occurrence moved on from ``sending``: to ``state``, due again at ``next``
    when it was deferred (else its due time stays)."""

    occurrence_id: int
    state: str
    next: datetime | None = None

    @classmethod
    def of(cls, occurrence_id: int, outcome: Outcome) -> Moved:
        """Where an occurrence goes from ``sending``: deferred (due again later) or
        settled."""
        if outcome.defer_until is not None:
            return cls(occurrence_id, "deferred", outcome.defer_until)
        return cls(occurrence_id, str(outcome.record.decision))


@dataclass(frozen=True)
class PlannedAccount:
    """One account planned: due again at ``due`` unless its data or facts changed since
    it was read (``plan_seq`` moved on); ``stage``: the stage it moved to (what
    ``account show`` and reports tell), ``None`` when it stays where it was."""

    account_id: str
    plan_seq: int
    due: datetime
    stage: StageMark | None = None


@dataclass(frozen=True)
class Sending:
    """A send about to be handed to its adapter."""

    message_id: str
    account_id: str
    debtor_id: str
    channel: str
    occurrence_id: int
    to_index: str | None


def send_status(decision: str) -> str:
    """A send row's status once its adapter answered: ``sent``, ``ambiguous`` (it may have
    gone out), else ``failed``."""
    return decision if decision in ("sent", "ambiguous") else "failed"
