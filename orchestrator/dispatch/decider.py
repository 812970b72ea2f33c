"""One decision, end to end: gate → render → adapter → decision record.

``Decider.decide`` is what ``simulate`` calls for a due occurrence. It asks the gate
(``judge``), and only on ``Allow`` renders the template (``prepare``) and hands the
message to the channel's adapter (``deliver``); the daemon calls the three itself, so
that it renders before it records a send ``sending``. It records nothing itself: it
returns the decision record (and the deferral instant, if any) for the caller to
persist. A template that fails to render fails its own send (``render_error``), no other.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from channels.base import ChannelAdapter, OutboundMessage
from orchestrator.config.models import Config, TriggerEvent
from orchestrator.content.rendering import Rendered, TemplateRenderer, build_context
from orchestrator.core.account import Account
from orchestrator.core.gate import Allow, Defer, Deny, evaluate
from orchestrator.core.links import LINK_LIFETIME, pay_link, unsubscribe_link
from orchestrator.core.planner import Occurrence, dpd_on
from orchestrator.core.priority import BudgetBook
from orchestrator.core.records import DecisionKind, DecisionRecord, Reason, iso_local
from orchestrator.core.rules import AccountRules, RuleBook
from orchestrator.core.state import AccountState, SendHistory, SendRecord
from orchestrator.core.validation import is_notice, notice_facts
from orchestrator.dispatch.baddata import is_bad_data, note
from orchestrator.errors import (
    AmbiguousSendError,
    ChannelError,
    OutreachError,
    TransientChannelError,
)

log = logging.getLogger("outreach.decider")

# How long a send held back by an operator's pause waits before it is looked at again:
# once the pause ends, what it held goes out within this (docs/decisions.md).
PAUSE_RECHECK = timedelta(seconds=60)


def message_id_for(account_id: str, step_id: str, key: str) -> str:
    """Deterministic per occurrence: the same scenario yields the same ids."""
    digest = hashlib.sha256(f"{account_id}\x1f{step_id}\x1f{key}".encode()).hexdigest()
    return f"m_{digest[:24]}"


def recipient(account: Account, channel: str) -> str | None:
    if channel in ("sms", "voice"):
        return account.phone
    if channel == "email":
        return account.email
    if channel == "letter":
        parts = [account.name, account.address_line1, account.address_line2, account.city]
        parts += [account.region, account.postal_code, account.country]
        return ", ".join(p for p in parts if p)
    return account.phone or account.email


@dataclass(frozen=True)
class Outcome:
    record: DecisionRecord
    defer_until: datetime | None = None
    send: SendRecord | None = None
    provider_id: str | None = None
    retryable: bool = False  # a transient channel error: the daemon may try again later
    opt_out: bool = False  # the provider says the recipient opted out (Twilio 21610)


class Decider:
    def __init__(
        self,
        config: Config,
        renderer: TemplateRenderer,
        adapters: Mapping[str, ChannelAdapter],
        *,
        public_url: str,
        secret: str,
    ):
        self.config = config
        self.renderer = renderer
        self.adapters = adapters
        self.rulebook = RuleBook(config)
        # The policy's budgets over all debtors: simulate counts its own sends, the
        # daemon loads the counts the database holds at each claim.
        self.budget = BudgetBook(config.policy) if config.policy.budgets else None
        self.public_url = public_url.rstrip("/")
        self.secret = secret

    def rules(self, account: Account) -> AccountRules:
        return self.rulebook.for_account(account)

    def _record(
        self,
        occ: Occurrence,
        state: AccountState,
        rules: AccountRules,
        now: datetime,
        decision: DecisionKind,
        reason: str | None = None,
        **extra: object,
    ) -> DecisionRecord:
        return DecisionRecord(
            time=now,
            local_time=iso_local(now, rules.zones.primary),
            account=state.account.account_id,
            debtor=state.account.debtor_id,
            stage=occ.stage,
            step=occ.step_id,
            channel=occ.channel,
            kind=str(occ.kind),
            decision=decision,
            reason=reason,
            segment=occ.segment,
            experiment=occ.experiment,
            variant=occ.variant,
            **extra,  # type: ignore[arg-type]
        )

    def decide(
        self,
        occ: Occurrence,
        state: AccountState,
        history: SendHistory,
        now: datetime,
        rules: AccountRules | None = None,
    ) -> Outcome:
        """Gate, and on ``Allow`` render and send: what ``simulate`` calls per occurrence.
        ``rules``: the account's, when the caller has them already."""
        rules = rules or self.rules(state.account)
        outcome = self.judge(occ, state, history, now, rules)
        if outcome is not None:
            return outcome
        return self.send(occ, state, rules, now)

    def judge(
        self,
        occ: Occurrence,
        state: AccountState,
        history: SendHistory,
        now: datetime,
        rules: AccountRules | None = None,
    ) -> Outcome | None:
        """The gate's verdict as an outcome, or ``None`` when the send may go now.

        The daemon calls this and ``send`` separately so that it can record ``sending``
        durably in between (at-most-once); ``decide`` is the two together. ``rules``: the
        account's (``self.rules(state.account)``), when the caller has them already.
        """
        rules = rules or self.rules(state.account)
        verdict = evaluate(occ, state, history, rules, now)
        if isinstance(verdict, Deny):
            return Outcome(self._record(occ, state, rules, now, verdict.decision, verdict.reason))
        if isinstance(verdict, Defer):
            record = self._record(
                occ, state, rules, now, DecisionKind.deferred, verdict.reason, until=verdict.until
            )
            return Outcome(record, defer_until=verdict.until)
        assert isinstance(verdict, Allow)
        return self._over_budget(occ, state, rules, now)

    def _over_budget(
        self, occ: Occurrence, state: AccountState, rules: AccountRules, now: datetime
    ) -> Outcome | None:
        """Deferred to the next window (``budget``) when a budget of its channel is spent;
        skipped (``expired``) when that window opens after the send expires."""
        if self.budget is None:
            return None
        full = self.budget.full(occ.channel, now)
        if full is None:
            return None
        until = full[1]
        if until > occ.expires_at:
            return Outcome(
                self._record(occ, state, rules, now, DecisionKind.skipped, Reason.expired)
            )
        record = self._record(
            occ, state, rules, now, DecisionKind.deferred, Reason.budget, until=until
        )
        return Outcome(record, defer_until=until)

    def paused(
        self, occ: Occurrence, state: AccountState, rules: AccountRules, now: datetime
    ) -> Outcome:
        """Deferred (``paused_by_operator``) by an operator's pause: looked at again
        ``PAUSE_RECHECK`` later, when the gate judges it anew (the daemon only)."""
        until = now + PAUSE_RECHECK
        record = self._record(
            occ, state, rules, now, DecisionKind.deferred, Reason.paused_by_operator, until=until
        )
        return Outcome(record, defer_until=until)

    def spent(self, channel: str, now: datetime) -> None:
        """A send of ``channel`` goes now: count it against the budgets."""
        if self.budget is not None:
            self.budget.spend(channel, now)

    def marks(self) -> dict[str, Any]:
        """Each adapter's ``mark()`` (those that have one): where a later ``synced`` of the
        messages sent so far waits up to, whatever is sent in between."""
        out = {}
        for channel, adapter in self.adapters.items():
            mark = getattr(adapter, "mark", None)
            if mark is not None:
                out[channel] = mark()
        return out

    def synced(
        self, outcomes: list[Outcome], marks: Mapping[str, Any] | None = None
    ) -> list[Outcome]:
        """Ask each adapter that took messages among ``outcomes`` to make them durable
        (its optional ``sync``: one flush per batch, not one per send) before they are
        recorded sent; up to its mark in ``marks`` if given (``marks()`` just after
        they were sent). An adapter that cannot leaves them uncertain: ``ambiguous``,
        counted toward limits and never sent again."""
        failed: set[str] = set()
        for channel in sorted(
            {o.record.channel or "" for o in outcomes if o.record.decision == DecisionKind.sent}
        ):
            sync = getattr(self.adapters.get(channel), "sync", None)
            if sync is None:
                continue
            try:
                if marks is not None and channel in marks:
                    sync(marks[channel])
                else:
                    sync()
            except Exception as exc:  # noqa: BLE001 - whatever it is, the sends are uncertain
                log.error(
                    "adapter sync failed", extra={"channel": channel, "error": type(exc).__name__}
                )
                failed.add(channel)
        if not failed:
            return outcomes
        return [
            Outcome(
                replace(o.record, decision=DecisionKind.ambiguous, reason=Reason.provider_error),
                send=o.send,
                provider_id=o.provider_id,
            )
            if o.record.decision == DecisionKind.sent and o.record.channel in failed
            else o
            for o in outcomes
        ]

    def render(
        self,
        occ: Occurrence,
        state: AccountState,
        rules: AccountRules,
        now: datetime,
        message_id: str,
        unsub: str | None,
    ) -> Rendered:
        account = state.account
        zone = rules.zones.primary
        today = now.astimezone(zone).date()
        creditor = self.config.creditor(account.creditor)
        expires = now + LINK_LIFETIME
        link = pay_link(self.public_url, self.secret, message_id, expires)
        promise = instalment = None
        fire = occ.trigger
        if fire is not None and fire.promise_id is not None:
            p = state.promise(fire.promise_id)
            if p is not None:
                promise = {"amount": p.amount, "due": p.due, "waived": p.waived}
        if fire is not None and fire.instalment is not None:
            broken = fire.event == TriggerEvent.plan_broken  # the instalment it missed
            plan = state.plan(fire.key) if broken else state.active_plan()
            if plan is not None:
                inst = plan.instalments[fire.instalment]
                instalment = {"amount": inst.amount - inst.paid, "due": inst.due}
        elif fire is not None and fire.event == TriggerEvent.payment_received:
            upcoming = state.next_instalment()  # the thank-you names the next one
            if upcoming is not None:
                instalment = {"amount": upcoming.amount - upcoming.paid, "due": upcoming.due}
        deadline = None
        if creditor is not None:
            deadline = today + creditor.letter_deadline.delta
        locale = account.locale or "en-US"
        context = build_context(
            account,
            self.config,
            today=today,
            dpd=dpd_on(account.due_date, today),
            stage=occ.stage,
            pay_link=link,
            unsubscribe_link=unsub,
            promise=promise,
            instalment=instalment,
            deadline=deadline,
            locale=locale,
            validation=notice_facts(state, rules, now) if is_notice(occ) else None,
        )
        return self.renderer.render(occ.channel, occ.template, locale, context)

    def send(
        self,
        occ: Occurrence,
        state: AccountState,
        rules: AccountRules,
        now: datetime,
        message_id: str | None = None,
    ) -> Outcome:
        """Render and hand to the channel's adapter (``prepare``, then ``deliver``).
        ``message_id``: the occurrence's (``message_id_for``), when the caller has it
        already."""
        prepared = self.prepare(occ, state, rules, now, message_id)
        if isinstance(prepared, Outcome):
            return prepared
        return self.deliver(occ, state, rules, now, prepared)

    def prepare(
        self,
        occ: Occurrence,
        state: AccountState,
        rules: AccountRules,
        now: datetime,
        message_id: str | None = None,
    ) -> OutboundMessage | Outcome:
        """The message for an occurrence the gate allowed, rendered; or, when its template
        fails (a mistake, or a bound of the sandbox passed), the outcome ``failed`` with
        reason ``render_error``, which concerns this send only. The daemon calls it
        before it records the send ``sending``: a template that fails never leaves a
        send in doubt."""
        account = state.account
        if message_id is None:
            message_id = message_id_for(account.account_id, occ.step_id, occ.key)
        unsub = (
            unsubscribe_link(self.public_url, self.secret, message_id, now + LINK_LIFETIME)
            if occ.channel == "email"
            else None
        )
        try:
            rendered = self.render(occ, state, rules, now, message_id, unsub)
        except OutreachError as exc:
            # Where, not what: the message may quote the debtor's data.
            where = f"{getattr(exc, 'path', '?')}:{getattr(exc, 'line', None) or 1}"
            log.warning(
                "template failed to render",
                extra={
                    "account_id": account.account_id,
                    "message_id": message_id,
                    "reason": str(Reason.render_error),
                    "error": where,
                },
            )
            return Outcome(
                self._record(occ, state, rules, now, DecisionKind.failed, Reason.render_error)
            )
        except Exception as exc:  # the account's values, not the template (``baddata``)
            if not is_bad_data(exc):
                raise
            note(account.account_id, exc, "render")
            return Outcome(
                self._record(occ, state, rules, now, DecisionKind.failed, Reason.bad_data)
            )
        return self._message(occ, account, message_id, rendered, unsub)

    def _message(
        self,
        occ: Occurrence,
        account: Account,
        message_id: str,
        rendered: Rendered,
        unsub: str | None,
    ) -> OutboundMessage:
        channel_cfg = self.config.channels.get(occ.channel)
        return OutboundMessage(
            message_id=message_id,
            channel=occ.channel,
            account_id=account.account_id,
            debtor_id=account.debtor_id,
            to=recipient(account, occ.channel) or "",
            from_=str(channel_cfg.options.get("from", "")) if channel_cfg else "",
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            templates_dir=self.renderer.templates_dir,
            locale=account.locale or "en-US",
            # The template's link, for the adapter's List-Unsubscribe header.
            metadata={"unsubscribe_link": unsub} if unsub else {},
        )

    def deliver(
        self,
        occ: Occurrence,
        state: AccountState,
        rules: AccountRules,
        now: datetime,
        message: OutboundMessage,
    ) -> Outcome:
        """Hand a prepared message to its channel's adapter: the outcome, sent or not."""
        account = state.account
        send = SendRecord(now, occ.channel, account.account_id, account.debtor_id)
        extra = {"message_id": message.message_id, "to": recipient(account, occ.channel)}
        adapter = self.adapters.get(occ.channel)
        if adapter is None:
            record = self._record(
                occ, state, rules, now, DecisionKind.failed, Reason.provider_error, **extra
            )
            return Outcome(record)
        try:
            result = adapter.send(message)
        except AmbiguousSendError:
            record = self._record(
                occ, state, rules, now, DecisionKind.ambiguous, Reason.provider_error, **extra
            )
            return Outcome(record, send=send)  # may have gone out: it counts toward limits
        except ChannelError as exc:
            record = self._record(
                occ, state, rules, now, DecisionKind.failed, Reason.provider_error, **extra
            )
            return Outcome(
                record,
                retryable=isinstance(exc, TransientChannelError),
                opt_out=bool(getattr(exc, "opt_out", False)),
            )
        record = self._record(
            occ,
            state,
            rules,
            now,
            DecisionKind.sent,
            None,
            subject=message.subject,
            text=message.text,
            **extra,
        )
        return Outcome(record, send=send, provider_id=getattr(result, "provider_id", None))
