"""Tasks: work a person does on an account (call back, answer a text, look at a
hardship), made by the policy's ``tasks:`` rules and done with an outcome.

What a task's state and outcome can be, when one is overdue and whether an inbound
text names a hardship are plain functions of the task, the policy and the time: the
API, the CLI, the server and the daemon share them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from orchestrator.config.models import WEEKDAYS, AgentHours

__all__ = [
    "RECORDED",
    "TaskOutcome",
    "TaskState",
    "agents_answer",
    "hardship_phrase",
    "is_overdue",
]


class TaskState(StrEnum):
    open = "open"  # nobody has it yet
    claimed = "claimed"  # a person has it (``assignee``)
    done = "done"


class TaskOutcome(StrEnum):
    promise = "promise"  # a promise to pay, recorded as the events API records one
    plan = "plan"  # an instalment plan
    conversation = "conversation"  # a right-party conversation: the conversation pause
    dispute = "dispute"  # the debtor disputes the debt: a dispute case
    no_answer = "no_answer"
    other = "other"


# The outcomes that record an event on the account (the rest only close the task).
RECORDED = frozenset(
    {TaskOutcome.promise, TaskOutcome.plan, TaskOutcome.conversation, TaskOutcome.dispute}
)


def is_overdue(state: str, due_at: datetime, now: datetime) -> bool:
    return state != TaskState.done and due_at <= now


def _folded(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def hardship_phrase(body: str, phrases: Mapping[str, Sequence[str]]) -> str | None:
    """The language of the first hardship phrase ``body`` contains (case, width and
    spacing folded), if any: ``lost my job`` matches "I LOST  my job, can we talk"."""
    text = _folded(body)
    for language, listed in phrases.items():
        if any(_folded(phrase) in text for phrase in listed):
            return language
    return None


def agents_answer(hours: AgentHours | None, default_zone: str, now: datetime) -> bool:
    """Whether a creditor's agent line answers at ``now``: within ``hours`` (on one of
    its days, from start up to end, in its zone or ``default_zone``). No hours: always."""
    if hours is None:
        return True
    local = now.astimezone(ZoneInfo(hours.timezone or default_zone))
    return WEEKDAYS[local.weekday()] in hours.days and hours.start <= local.time() < hours.end
