"""Champion/challenger experiments (``experiments.yaml``): which arm a debtor is in.

Assignment is a hash of the experiment's salt and the debtor id, read as a number in
[0, 1): below ``holdout`` the debtor is in the holdout, then each arm takes its
``share`` in the order listed. Pure and stable: the same debtor is in the same arm in
the daemon, in ``simulate`` and on every run, and every account of a debtor with it;
a new salt draws again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from orchestrator.config.models import HOLDOUT, Experiment, Stage, Step

_SCALE = float(1 << 64)


@lru_cache(maxsize=1 << 16)  # a debtor is drawn every day it is planned: hash it once
def draw(salt: str, debtor_id: str) -> float:
    """The debtor's number in [0, 1) for this salt."""
    digest = hashlib.sha256(f"{salt}\x1f{debtor_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def variant_of(experiment: Experiment, debtor_id: str) -> str:
    """The arm id (or ``holdout``) of the debtor; the last arm takes any rounding rest."""
    u = draw(experiment.salt, debtor_id)
    edge = experiment.holdout
    if u < edge:
        return HOLDOUT
    for arm in experiment.arms:
        edge += arm.share
        if u < edge:
            return arm.id
    return experiment.arms[-1].id if experiment.arms else HOLDOUT


@dataclass(frozen=True)
class Assignment:
    experiment: str | None
    variant: str | None
    steps: list[Step]


def stage_steps(experiment: Experiment | None, stage: Stage, debtor_id: str) -> Assignment:
    """The steps the debtor gets in ``stage`` under ``experiment`` (if one runs): its
    arm's, the stage's own for an arm without steps and for the holdout (whose sends the
    gate skips, reason ``holdout``, so that the report counts who they were)."""
    if experiment is None:
        return Assignment(None, None, stage.steps)
    variant = variant_of(experiment, debtor_id)
    arm = next((a for a in experiment.arms if a.id == variant), None)
    steps = arm.steps if arm is not None and arm.steps is not None else stage.steps
    return Assignment(experiment.id, variant, steps)
