"""Cases: a complaint or a dispute a person must acknowledge and resolve in time.

What a case is (``CaseKind``), where it stands (``CaseStatus``, from its timestamps) and
when it is due (``due_times``, from the policy's ``cases.sla``) are plain functions of
the case, the policy and the time: the API, the CLI and the report share them.

A ``Nd`` deadline with ``working_days`` counts working days in the policy's default
zone: not a Saturday or a Sunday, nor a public holiday of the account's country (the
``holidays`` package, as the permitted hours use it); the deadline is the end (local
midnight) of the last of them. A case opened on a Friday afternoon with ``acknowledge:
1d`` is due at the end of Monday. ``Nh`` and ``Nm`` are elapsed time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from orchestrator.config.models import CaseSla, Duration
from orchestrator.core.hours import HolidayCalendar, local_day_start

__all__ = ["CaseKind", "CaseStatus", "DueTimes", "due_times", "is_overdue", "status_of"]


class CaseKind(StrEnum):
    complaint = "complaint"
    dispute = "dispute"


class CaseStatus(StrEnum):
    open = "open"  # not yet acknowledged
    acknowledged = "acknowledged"
    resolved = "resolved"


@dataclass(frozen=True)
class DueTimes:
    acknowledge: datetime
    resolve: datetime


def status_of(acknowledged_at: datetime | None, resolved_at: datetime | None) -> CaseStatus:
    if resolved_at is not None:
        return CaseStatus.resolved
    if acknowledged_at is not None:
        return CaseStatus.acknowledged
    return CaseStatus.open


def is_overdue(status: CaseStatus, due_ack: datetime, due_resolve: datetime, now: datetime) -> bool:
    """Whether a case is past a deadline it has not met: still unacknowledged after its
    acknowledgement is due, or unresolved after its resolution is due."""
    if status == CaseStatus.resolved:
        return False
    if status == CaseStatus.open and now >= due_ack:
        return True
    return now >= due_resolve


def due_times(
    opened_at: datetime, sla: CaseSla, zone: ZoneInfo, country: str | None, region: str | None
) -> DueTimes:
    """When a case opened at ``opened_at`` must be acknowledged and resolved."""
    holidays = None
    if country:
        holidays = HolidayCalendar(((country.upper(), region.upper() if region else None),))
    return DueTimes(
        _due(opened_at, sla.acknowledge, sla.working_days, zone, holidays),
        _due(opened_at, sla.resolve, sla.working_days, zone, holidays),
    )


def _due(
    opened_at: datetime,
    term: Duration,
    working_days: bool,
    zone: ZoneInfo,
    holidays: HolidayCalendar | None,
) -> datetime:
    if term.unit != "d" or not working_days:
        return opened_at + term.delta
    day = opened_at.astimezone(zone).date()
    left = term.amount
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and not (holidays is not None and holidays.is_holiday(day)):
            left -= 1
    return local_day_start(day + timedelta(days=1), zone)
