"""``at: best``: the local hour at which each debtor answers most, inside the rules.

Pure: what the engine has learned (``HourBook``: sends and answers per local hour, for
each debtor, each segment and the whole portfolio, per channel) and a local day's
permitted hours go in; an hour comes out. The gate still decides every send: the hours
offered here are only those the channel's permitted hours allow in every candidate zone
(and the step's ``window``), so a learned hour never widens a window, and with none left
the step keeps its ``at_default``.

**The estimate** (docs/configuration.md, ``best_time``). A send is *answered* when,
within ``attribution`` of it and before the account's next send, the call was picked
up, the link clicked, a reply came in, or a conversation, promise or payment was
recorded (``HourLearner``). Each hour's answer rate is an empirical-Bayes
Beta-Binomial estimate:

- the portfolio's rate at that hour, shrunk toward the channel's overall rate;
- the segment's rate at that hour, shrunk toward the portfolio's by ``segment_weight``
  sends;
- the debtor's posterior ``Beta(k·p + answered, k·(1-p) + sent - answered)`` with ``p``
  the segment's rate and ``k = prior_weight``; the debtor's sends an hour either side
  count ``neighbour_weight`` each, because someone at work at 10:00 is likely there at
  11:00 too.

The prior's *mean* is fitted from the data (that is the empirical Bayes); its *weight*
is a setting, not fitted: fitting it needs the spread of answer rates across debtors,
which a dozen sends per debtor cannot measure. We learn the hour of the day only, not
hour and weekday: a debtor's dozen sends spread over 168 cells would leave nearly all of
them empty; the report's heat map shows weekdays for ops to set ``days``.

**Exploration.** With ``method: thompson`` (the default) each hour's rate is drawn from
its posterior and the highest draw wins: an hour seldom tried has a wide posterior and
is tried now and then, so the estimate does not freeze on its first guess. On top,
``explore`` of the sends (5%) go to a permitted hour picked at random. ``method: mean``
takes the highest posterior mean (no sampling). The draws are seeded by the debtor, the
step and the day, so ``simulate`` and a re-planned day give the same hour.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from orchestrator.config.models import BestTime
from orchestrator.core.hours import HolidayCalendar, HoursRule, is_permitted, local_datetime

__all__ = [
    "PORTFOLIO",
    "RESPONSE_EVENTS",
    "SEGMENT",
    "DEBTOR",
    "HourBook",
    "HourLearner",
    "LearnedHour",
    "Counts",
    "choose_hour",
    "learned_hours",
    "permitted_hours",
]

# The scopes of what is learned: one debtor, one segment (key "" for accounts in none),
# the whole portfolio (key "").
DEBTOR, SEGMENT, PORTFOLIO = "debtor", "segment", "portfolio"

# Account events that answer the send before them (besides a call picked up or a link
# clicked, which the provider reports on the message).
RESPONSE_EVENTS = frozenset({"conversation", "inbound_sms", "click", "promise", "payment"})


@dataclass
class Counts:
    """Sends and answered sends per slot (a local hour, 0-23)."""

    sent: list[int]
    answered: list[int]

    @classmethod
    def empty(cls, slots: int = 24) -> Counts:
        return cls([0] * slots, [0] * slots)

    @classmethod
    def parse(cls, sent: str, answered: str) -> Counts:
        """From the stored form: comma-separated counts."""
        return cls([int(x) for x in sent.split(",")], [int(x) for x in answered.split(",")])

    def text(self) -> tuple[str, str]:
        return ",".join(map(str, self.sent)), ",".join(map(str, self.answered))


BookKey = tuple[str, str, str]  # (scope, key, channel)
_NONE = Counts.empty()


@dataclass
class HourBook:
    """What has been learned: sends and answers per local hour, by (scope, key, channel).
    The daemon loads the part a planning page needs; ``simulate`` keeps all of it."""

    cells: dict[BookKey, Counts] = field(default_factory=dict)
    slots: int = 24
    # Each (segment, channel)'s prior mean per hour, worked out once per change of counts.
    _priors: dict[tuple[str, str, float], list[float]] = field(default_factory=dict)
    # Stored debtor rows not read yet ("1,0,3,..." texts): most debtors of a planning page
    # have no ``at: best`` step that day, so a row is parsed when first asked for.
    _unread: dict[BookKey, tuple[str, str]] = field(default_factory=dict)

    def of(self, scope: str, key: str, channel: str) -> Counts | None:
        found = self.cells.get((scope, key, channel))
        if found is None and self._unread:
            text = self._unread.pop((scope, key, channel), None)
            if text is not None:
                found = self.cells[(scope, key, channel)] = Counts.parse(*text)
        return found

    def channels(self, scope: str, key: str) -> list[str]:
        """The channels with counts for this scope and key."""
        found = {c for s, k, c in [*self.cells, *self._unread] if (s, k) == (scope, key)}
        return sorted(found)

    def put_text(self, scope: str, key: str, channel: str, sent: str, answered: str) -> None:
        """A stored row, as comma-separated counts (parsed when first read)."""
        if scope == DEBTOR:
            self._unread[(scope, key, channel)] = (sent, answered)
        else:
            self.put(scope, key, channel, Counts.parse(sent, answered))

    def put(self, scope: str, key: str, channel: str, counts: Counts) -> None:
        self.cells[(scope, key, channel)] = counts
        if scope != DEBTOR:
            self._priors.clear()

    def add(self, scope: str, key: str, channel: str, slot: int, sent: int, answered: int) -> None:
        counts = self.cells.get((scope, key, channel))
        if counts is None:
            counts = self.cells[(scope, key, channel)] = Counts.empty(self.slots)
        counts.sent[slot] += sent
        counts.answered[slot] += answered
        if scope != DEBTOR:
            self._priors.clear()

    def record(
        self, debtor: str, segment: str | None, channel: str, slot: int, answered: bool
    ) -> None:
        """One send at local hour ``slot``, answered or not, in all three scopes."""
        a = int(answered)
        self.add(DEBTOR, debtor, channel, slot, 1, a)
        self.add(SEGMENT, segment or "", channel, slot, 1, a)
        self.add(PORTFOLIO, "", channel, slot, 1, a)

    def priors(self, segment: str | None, channel: str, weight: float) -> list[float]:
        """The prior mean of each hour 0-23: the segment's rate at that hour shrunk
        toward the portfolio's, itself shrunk toward the channel's overall rate."""
        key = (segment or "", channel, weight)
        found = self._priors.get(key)
        if found is None:
            portfolio = self.of(PORTFOLIO, "", channel) or _NONE
            seg = self.of(SEGMENT, segment or "", channel) or _NONE
            overall = _rate(sum(portfolio.answered), sum(portfolio.sent), 0.5, 2.0)
            found = []
            for h in range(24):
                base = _rate(portfolio.answered[h], portfolio.sent[h], overall, weight)
                found.append(_rate(seg.answered[h], seg.sent[h], base, weight))
            self._priors[key] = found
        return found


def _rate(answered: float, sent: float, prior: float, weight: float) -> float:
    return (answered + weight * prior) / (sent + weight)


def _posteriors(
    book: HourBook,
    debtor: str,
    segment: str | None,
    channel: str,
    hours: Iterable[int],
    settings: BestTime,
) -> dict[int, tuple[float, float]]:
    """Each hour's Beta(alpha, beta) posterior of the debtor's answer rate."""
    priors = book.priors(segment, channel, settings.segment_weight)
    own = book.of(DEBTOR, debtor, channel)
    k, w = settings.prior_weight, settings.neighbour_weight
    if own is None:  # nothing sent to this debtor yet: the prior alone
        return {h: (k * priors[h], k * (1 - priors[h])) for h in hours}
    sent, answered = [0, *own.sent, 0], [0, *own.answered, 0]  # h at h + 1, padded
    out: dict[int, tuple[float, float]] = {}
    for h in hours:
        n = sent[h + 1] + w * (sent[h] + sent[h + 2])
        r = answered[h + 1] + w * (answered[h] + answered[h + 2])
        out[h] = (k * priors[h] + r, k * (1 - priors[h]) + n - r)
    return out


def _rng(settings: BestTime, debtor: str, step: str, key: str) -> random.Random:
    return random.Random(f"{settings.seed}\x1f{debtor}\x1f{step}\x1f{key}")


def choose_hour(
    candidates: Sequence[int],
    book: HourBook,
    *,
    debtor: str,
    segment: str | None,
    channel: str,
    settings: BestTime,
    step: str,
    key: str,
) -> int | None:
    """The local hour among ``candidates`` (ascending) to plan this send at; ``None``
    when there is none. Deterministic for a debtor, step and key (the day)."""
    if not candidates:
        return None
    rng = _rng(settings, debtor, step, key)
    if rng.random() < settings.explore:
        return candidates[rng.randrange(len(candidates))]
    post = _posteriors(book, debtor, segment, channel, candidates, settings)
    draw = rng.betavariate if settings.method == "thompson" else _mean
    best, top = candidates[0], -1.0
    for h in candidates:  # ascending: a tie goes to the earlier hour
        score = draw(*post[h])
        if score > top:
            best, top = h, score
    return best


def _mean(alpha: float, beta: float) -> float:
    return alpha / (alpha + beta)


@dataclass(frozen=True)
class LearnedHour:
    hour: int
    rate: float  # the posterior mean of the answer rate
    sent: int  # the debtor's own sends at that hour
    answered: int


def learned_hours(
    book: HourBook,
    debtor: str,
    segment: str | None,
    channel: str,
    settings: BestTime,
    top: int = 3,
) -> list[LearnedHour]:
    """The ``top`` hours by posterior mean, for ``account show`` (empty with no send)."""
    own = book.of(DEBTOR, debtor, channel)
    if own is None:
        return []
    post = _posteriors(book, debtor, segment, channel, range(24), settings)
    best = sorted(range(24), key=lambda h: (-post[h][0] / sum(post[h]), h))[:top]
    return [LearnedHour(h, post[h][0] / sum(post[h]), own.sent[h], own.answered[h]) for h in best]


@lru_cache(maxsize=65536)
def permitted_hours(
    day: date,
    zone: ZoneInfo,
    rule: HoursRule,
    zones: tuple[ZoneInfo, ...],
    holidays: HolidayCalendar | None,
    window: tuple[time, time] | None,
) -> tuple[int, ...]:
    """The whole hours of local ``day`` (in ``zone``, the debtor's primary zone) at which
    a send is permitted in every candidate zone, inside ``window`` when one is given."""
    out = []
    for h in range(24):
        at = time(h)
        if window is not None and not window[0] <= at < window[1]:
            continue
        instant = local_datetime(day, at, zone)
        if instant.astimezone(zone).hour != h:  # the hour a spring-forward skips
            continue
        if is_permitted(instant, rule, zones, holidays):
            out.append(h)
    return tuple(out)


@dataclass
class _Pending:
    time: datetime
    debtor: str
    segment: str | None
    channel: str
    slot: int
    answered: bool = False


class HourLearner:
    """Turns sends and the answers that follow them into ``HourBook`` counts.

    Feed it in time order: ``sent`` for each send (in its slot: the local hour), ``answered`` for each response on an
    account (it answers the account's latest send, if within ``attribution``). ``fold``
    moves into the book every send whose attribution window has closed by ``now``: a
    send is counted once, when whether it was answered is known."""

    def __init__(self, settings: BestTime, book: HourBook | None = None):
        self.window: timedelta = settings.attribution.delta
        self.book = book if book is not None else HourBook()
        self._pending: deque[_Pending] = deque()
        self._last: dict[str, _Pending] = {}

    def sent(
        self,
        account: str,
        at: datetime,
        *,
        debtor: str,
        segment: str | None,
        channel: str,
        slot: int,
    ) -> None:
        send = _Pending(at, debtor, segment, channel, slot)
        self._pending.append(send)
        self._last[account] = send

    def answered(self, account: str, at: datetime) -> None:
        send = self._last.get(account)
        if send is not None and send.time <= at <= send.time + self.window:
            send.answered = True

    def fold(self, now: datetime) -> int:
        """Count the sends whose window closed by ``now``; how many were counted."""
        done = 0
        while self._pending and self._pending[0].time + self.window <= now:
            s = self._pending.popleft()
            self.book.record(s.debtor, s.segment, s.channel, s.slot, s.answered)
            done += 1
        return done
