"""``outreach simulate``: the real planner, gate and renderer on a virtual clock.

The clock jumps from one due instant to the next (scenario events, local midnights that
plan a new day, promise deadlines, due occurrences); it never ticks. Channels are the
in-memory simulated adapter: nothing reaches a provider. Output is the decision log as
JSON Lines, byte-identical on every run of the same scenario (docs/scenarios.md).
"""

from __future__ import annotations

import copy
import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.base import ChannelAdapter
from channels.simulated import SimulatedChannel
from orchestrator.clock import VirtualClock
from orchestrator.config.models import Config
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.account import Account
from orchestrator.core.besttime import RESPONSE_EVENTS, HourLearner
from orchestrator.core.hours import local_day_start
from orchestrator.core.planner import Occurrence, plan_day
from orchestrator.core.records import DecisionRecord
from orchestrator.core.rules import AccountRules
from orchestrator.core.state import AccountState, Contact, SendHistory
from orchestrator.core.validation import is_notice, plan_notice
from orchestrator.dispatch.decider import Decider
from orchestrator.simulation.events import EventApplier, ScenarioEvent

if TYPE_CHECKING:
    from orchestrator.simulation.response import ResponseModel

SIMULATION_SECRET = "outreach-simulation-secret"
SIMULATION_PUBLIC_URL = "http://127.0.0.1:8000"

# Same-instant order: events first (a payment at 10:00 suppresses a 10:00 reminder), then
# the planning of a new local day, then deadlines, then sends.
_EVENT, _DAY, _DEADLINE, _OCC = 0, 1, 2, 3


def due_order(occ: Occurrence) -> tuple[str, datetime, str, str, str]:
    """How occurrences due at the same instant take their turn: by the policy's
    ``priority`` (``core.priority``; all equal without one), then the one planned first
    (it has waited longest), then by account, step and key. When a limit or a budget has
    room for one more send, this decides which; the daemon leases in the same order
    (``runner``), so that it decides what ``simulate`` decides."""
    return (occ.priority, occ.planned_at, occ.account_id, occ.step_id, occ.key)


@dataclass
class Scenario:
    start: datetime
    days: int
    config: Config
    templates_dir: Path
    accounts: list[Account]
    events: list[ScenarioEvent] = field(default_factory=list)
    source: str = "<scenario>"
    # What people do after a contact (``--response-model``): events it makes join the run.
    response: ResponseModel | None = None


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
        self.decider = Decider(
            scenario.config,
            renderer or TemplateRenderer(scenario.templates_dir, live=False),
            adapters,
            public_url=SIMULATION_PUBLIC_URL,
            secret=SIMULATION_SECRET,
        )
        self.states: dict[str, AccountState] = {}
        # accounts by phone number and by email address (an opt-out reaches them all)
        self.by_contact: dict[str, list[AccountState]] = defaultdict(list)
        self.histories: dict[str, SendHistory] = defaultdict(SendHistory)
        self._heap: list[tuple[datetime, int, tuple[Any, ...], Any]] = []
        self._seq = itertools.count()
        self._planned: set[tuple[str, str, str]] = set()
        self.on_progress = on_progress
        self.applier = EventApplier(self)
        # Kept only where a segment rule reads the messages sent and their receipts.
        self.reads_contacts = scenario.config.segments.reads_contacts
        # Each account's rules, worked out once: a simulation changes no account's
        # address, phone or creditor (only its balance and status).
        self.rules: dict[str, AccountRules] = {}
        # What ``at: best`` learns, from every account's sends and answers as they happen.
        self.learner = (
            HourLearner(scenario.config.policy.best_time)
            if scenario.config.uses_best_time
            else None
        )
        for account in scenario.accounts:
            rules = self.decider.rules(account)
            self.rules[account.account_id] = rules
            # A copy: payments change the balance and status, and the scenario's own
            # accounts stay as given (the same scenario runs again to the same result).
            state = AccountState(copy.copy(account), rules.zones)
            self.states[account.account_id] = state
            if self.learner is not None:
                state.hours = self.learner.book
            for contact in (account.phone, account.email):
                if contact:
                    self.by_contact[contact].append(state)
            day = scenario.start.astimezone(rules.zones.primary).date()
            self.push(scenario.start, _DAY, ("day", account.account_id, day))
        for event in scenario.events:
            self.push(max(event.at, scenario.start), _EVENT, ("event", event))

    # --- queue -------------------------------------------------------------------------

    def push(self, when: datetime, priority: int, item: Any) -> None:
        """Queue ``item`` at ``when``; ties by priority, then occurrences in ``due_order``
        and everything else in the order queued."""
        order = due_order(item[1]) if priority == _OCC else (next(self._seq),)
        heapq.heappush(self._heap, (when, priority, order, item))

    def schedule(self, occurrences: Iterable[Occurrence]) -> None:
        start = self.scenario.start
        for occ in occurrences:
            if occ.planned_at < start or occ.unique_key in self._planned:
                continue  # nothing planned before start; each occurrence once
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
                if self.learner is not None and item[1].type in RESPONSE_EVENTS:
                    self.learner.answered(item[1].account, when)
                yield from self.applier.apply(item[1], when)
            elif kind == "deadline":
                item[1](when)

    def _plan_day(self, account_id: str, day: Any) -> None:
        state = self.states[account_id]
        rules = self.rules[account_id]
        if self.learner is not None:
            self.learner.fold(self.clock.now())
        planned = plan_day(state, rules, day)
        notice = plan_notice(state, rules, day, self.scenario.start)  # until it has gone
        self.schedule([notice, *planned] if notice is not None else planned)
        response = self.scenario.response
        if response is not None:
            for ev in response.self_cure(state, day):
                self.push(max(ev.at, self.clock.now()), _EVENT, ("event", ev))
        nxt = local_day_start(day + timedelta(days=1), rules.zones.primary)
        self.push(nxt, _DAY, ("day", account_id, day + timedelta(days=1)))
        if self.on_progress is not None:
            self.on_progress(nxt)

    def _decide(self, occ: Occurrence, now: datetime) -> Iterator[DecisionRecord]:
        state = self.states[occ.account_id]
        history = self.histories[state.account.debtor_id]
        outcome = self.decider.decide(occ, state, history, now, self.rules[occ.account_id])
        if outcome.send is not None:
            history.add(outcome.send)
            if is_notice(occ) and state.notice_sent_at is None:
                state.notice_sent_at = now  # handed over (sent or ambiguous): it went
            self.decider.spent(occ.channel, now)
            if self.reads_contacts and outcome.record.message_id:
                state.contacts.append(Contact(now, occ.channel, outcome.record.message_id))
            self.applier.note_send(outcome.record)
            if self.learner is not None:
                self._learn_send(occ, outcome.record, now)
            if self.scenario.response is not None:
                for ev in self.scenario.response.respond(outcome.record, state):
                    self.push(ev.at, _EVENT, ("event", ev))
        if outcome.defer_until is not None:
            self.push(outcome.defer_until, _OCC, ("occ", occ))
        yield outcome.record

    def _learn_send(self, occ: Occurrence, record: DecisionRecord, now: datetime) -> None:
        assert self.learner is not None
        zone = self.rules[occ.account_id].zones.primary
        self.learner.sent(
            occ.account_id,
            now,
            debtor=self.states[occ.account_id].account.debtor_id,
            segment=record.segment,
            channel=occ.channel,
            slot=now.astimezone(zone).hour,
        )


# --- canonical order and parallel runs -----------------------------------------------------


def canonical(records: Iterable[DecisionRecord]) -> Iterator[DecisionRecord]:
    """Decisions of one instant in account order, each account's in the order they were
    made. The order the engine makes them in is already by time; this fixes the order
    of ties, so that a run split across processes prints exactly what one process does."""
    group: list[DecisionRecord] = []
    for record in records:
        if group and record.time != group[0].time:
            group.sort(key=_account_of)
            yield from group
            group = []
        group.append(record)
    group.sort(key=_account_of)
    yield from group


def _account_of(record: DecisionRecord) -> str:
    return record.account


def partition(scenario: Scenario, parts: int) -> list[Scenario]:
    """Split a scenario into up to ``parts`` that share nothing: accounts of one debtor, or
    reached at one phone number or email address, stay together (limits count per
    debtor; an inbound STOP acts on a number). Events go with their account. A payment
    with no ``payment_id`` gets the id one run would have given it (``pay<N>``, N its
    place among all payments), so every part decides what one run decides."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for account in scenario.accounts:
        root = find("a:" + account.account_id)
        for key in (
            f"d:{account.debtor_id or account.account_id}",
            f"p:{account.phone}" if account.phone else None,
            f"e:{account.email}" if account.email else None,
        ):
            if key is not None:
                other = find(key)
                if other != root:
                    parent[other] = root
    groups: dict[str, list[Account]] = defaultdict(list)
    for account in scenario.accounts:
        groups[find("a:" + account.account_id)].append(account)
    # Largest groups first, each to the part with the fewest accounts so far.
    buckets: list[list[Account]] = [[] for _ in range(max(1, min(parts, len(groups))))]
    for members in sorted(groups.values(), key=lambda g: (-len(g), g[0].account_id)):
        min(buckets, key=len).extend(members)
    place = {a.account_id: i for i, a in enumerate(scenario.accounts)}
    for bucket in buckets:  # each part keeps the scenario's order of its accounts
        bucket.sort(key=lambda a: place[a.account_id])
    where = {a.account_id: i for i, bucket in enumerate(buckets) for a in bucket}
    events: list[list[ScenarioEvent]] = [[] for _ in buckets]
    order = sorted(
        range(len(scenario.events)), key=lambda i: max(scenario.events[i].at, scenario.start)
    )
    numbered: dict[int, ScenarioEvent] = {}
    payments = 0
    for i in order:  # the order one run applies them in (ties: as listed)
        ev = scenario.events[i]
        if ev.type == "payment":
            payments += 1
            if not ev.data.get("payment_id"):
                ev = ScenarioEvent(
                    ev.at, ev.account, ev.type, {**ev.data, "payment_id": f"pay{payments}"}, ev.line
                )
        numbered[i] = ev
    for i, ev in enumerate(scenario.events):
        if ev.account in where:
            events[where[ev.account]].append(numbered[i])
    return [
        Scenario(
            scenario.start,
            scenario.days,
            scenario.config,
            scenario.templates_dir,
            bucket,
            part_events,
            scenario.source,
            scenario.response,
        )
        for bucket, part_events in zip(buckets, events, strict=True)
    ]


_CHUNK = 2000  # lines a worker sends at a time


def _keyed_lines(scenario: Scenario) -> Iterator[tuple[float, str, str]]:
    for record in canonical(Simulation(scenario).run()):
        yield record.time.timestamp(), record.account, record.to_json()


def _worker(scenario: Scenario, conn: Any) -> None:
    """A child process: run one part, send its lines in chunks, then ``None``."""
    try:
        chunk: list[tuple[float, str, str]] = []
        for item in _keyed_lines(scenario):
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                conn.send(chunk)
                chunk = []
        if chunk:
            conn.send(chunk)
        conn.send(None)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _received(conn: Any) -> Iterator[tuple[float, str, str]]:
    while True:
        chunk = conn.recv()
        if chunk is None:
            return
        if isinstance(chunk, tuple):
            raise RuntimeError(f"simulation worker failed: {chunk[1]}")
        yield from chunk


def simulate_lines(scenario: Scenario, jobs: int = 1) -> Iterator[str]:
    """The scenario's decisions as JSON Lines in canonical order, computed by ``jobs``
    processes (independent parts of the portfolio, see ``partition``) and merged by
    (time, account): the same bytes whatever ``jobs`` is."""
    import multiprocessing as mp

    # What ``at: best`` learns pools all accounts: the portfolio is not split then.
    split = jobs > 1 and not scenario.config.uses_best_time
    parts = partition(scenario, jobs) if split else [scenario]
    if len(parts) == 1:
        for _, _, line in _keyed_lines(scenario):
            yield line
        return
    methods = mp.get_all_start_methods()
    ctx: Any = mp.get_context("fork" if "fork" in methods else "spawn")
    pipes, procs = [], []
    for part in parts:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(part, send), daemon=True)
        proc.start()
        send.close()
        pipes.append(receive)
        procs.append(proc)
    try:
        streams = [_received(conn) for conn in pipes]
        for _, _, line in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            yield line
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
        for conn in pipes:
            conn.close()
