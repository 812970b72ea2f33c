"""``outreach simulate``: the real planner, gate and renderer on a virtual clock.

The clock jumps from one due instant to the next (scenario events, local midnights that
plan a new day, promise deadlines, due occurrences); it never ticks. Channels are the
in-memory simulated adapter: nothing reaches a provider. Output is the decision log as
JSON Lines, byte-identical on every run of the same scenario (CONTRACT §7).
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from channels.base import ChannelAdapter
from channels.simulated import SimulatedChannel
from orchestrator.clock import VirtualClock
from orchestrator.config import Config
from orchestrator.domain import Account
from orchestrator.engine import Engine
from orchestrator.events import EventApplier, ScenarioEvent
from orchestrator.hours import local_day_start
from orchestrator.planner import Occurrence, plan_day
from orchestrator.records import DecisionRecord
from orchestrator.rendering import TemplateRenderer
from orchestrator.state import AccountState, SendHistory

SIMULATION_SECRET = "outreach-simulation-secret"
SIMULATION_PUBLIC_URL = "http://127.0.0.1:8000"

# Same-instant order: events first (a payment at 10:00 suppresses a 10:00 reminder), then
# the planning of a new local day, then deadlines, then sends.
_EVENT, _DAY, _DEADLINE, _OCC = 0, 1, 2, 3


@dataclass
class Scenario:
    start: datetime
    days: int
    config: Config
    templates_dir: Path
    accounts: list[Account]
    events: list[ScenarioEvent] = field(default_factory=list)
    source: str = "<scenario>"


class Simulation:
    """Runs a scenario; ``run()`` yields decision records in time order."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        on_progress: Callable[[datetime], None] | None = None,
        renderer: TemplateRenderer | None = None,
        adapters: Mapping[str, ChannelAdapter] | None = None,
    ):
        self.scenario = scenario
        self.clock = VirtualClock(scenario.start)
        self.end = scenario.start + timedelta(days=scenario.days)
        self.channel = SimulatedChannel()
        if adapters is None:
            names = set(scenario.config.channels) | {"sms", "voice", "email", "letter"}
            adapters = {name: self.channel for name in names}
        self.engine = Engine(
            scenario.config,
            renderer or TemplateRenderer(scenario.templates_dir, live=False),
            adapters,
            public_url=SIMULATION_PUBLIC_URL,
            secret=SIMULATION_SECRET,
        )
        self.states: dict[str, AccountState] = {}
        self.histories: dict[str, SendHistory] = defaultdict(SendHistory)
        self._heap: list[tuple[datetime, int, int, Any]] = []
        self._seq = itertools.count()
        self._planned: set[tuple[str, str, str]] = set()
        self.on_progress = on_progress
        self.applier = EventApplier(self)
        for account in scenario.accounts:
            rules = self.engine.rules(account)
            self.states[account.account_id] = AccountState(account, rules.zones)
            day = scenario.start.astimezone(rules.zones.primary).date()
            self.push(scenario.start, _DAY, ("day", account.account_id, day))
        for event in scenario.events:
            self.push(max(event.at, scenario.start), _EVENT, ("event", event))

    # --- queue -------------------------------------------------------------------------

    def push(self, when: datetime, priority: int, item: Any) -> None:
        heapq.heappush(self._heap, (when, priority, next(self._seq), item))

    def schedule(self, occurrences: Iterable[Occurrence]) -> None:
        start = self.scenario.start
        for occ in occurrences:
            if occ.planned_at < start or occ.unique_key in self._planned:
                continue  # §10.3: nothing planned before start; each occurrence once
            self._planned.add(occ.unique_key)
            self.push(occ.planned_at, _OCC, ("occ", occ))

    def deadline(self, when: datetime, action: Callable[[datetime], None]) -> None:
        self.push(when, _DEADLINE, ("deadline", action))

    # --- run ---------------------------------------------------------------------------

    def run(self) -> Iterator[DecisionRecord]:
        heap = self._heap
        while heap and heap[0][0] < self.end:
            when, _, _, item = heapq.heappop(heap)
            self.clock.set(when)
            kind = item[0]
            if kind == "occ":
                yield from self._decide(item[1], when)
            elif kind == "day":
                self._plan_day(item[1], item[2])
            elif kind == "event":
                yield from self.applier.apply(item[1], when)
            elif kind == "deadline":
                item[1](when)

    def _plan_day(self, account_id: str, day: Any) -> None:
        state = self.states[account_id]
        rules = self.engine.rules(state.account)
        self.schedule(plan_day(state, rules, day))
        nxt = local_day_start(day + timedelta(days=1), rules.zones.primary)
        self.push(nxt, _DAY, ("day", account_id, day + timedelta(days=1)))
        if self.on_progress is not None:
            self.on_progress(nxt)

    def _decide(self, occ: Occurrence, now: datetime) -> Iterator[DecisionRecord]:
        state = self.states[occ.account_id]
        history = self.histories[state.account.debtor_id]
        outcome = self.engine.decide(occ, state, history, now)
        if outcome.send is not None:
            history.add(outcome.send)
            self.applier.note_send(outcome.record)
        if outcome.defer_until is not None:
            self.push(outcome.defer_until, _OCC, ("occ", occ))
        yield outcome.record


def run_scenario(scenario: Scenario) -> list[DecisionRecord]:
    return list(Simulation(scenario).run())
