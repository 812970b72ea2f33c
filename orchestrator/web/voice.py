"""What a placed call says (docs/http.md): the TwiML Twilio fetches when the call is
answered, and the "press 1" menu that texts the person their payment link.

Nothing spoken is stored: the script is rendered again when Twilio asks for it, from the
send's account, step (its template) and the account's locale, exactly as the engine
renders it (``Decider.render``), so names and amounts exist only in the reply.

- A machine (``AnsweredBy`` machine_*): the step's ``<template>_voicemail``, a
  limited-content message that ``templates lint`` keeps free of any debt, or
  ``<Hangup/>`` when the channel says ``voicemail: hang_up`` (or that template is
  missing: a machine never hears the full script). A fax: ``<Hangup/>``.
- "unknown" (detection could not tell): the limited-content message, as for a machine,
  since a voicemail box may be recording; never a hang-up on someone who may be a person.
- A person, or no detection configured: the full script inside a one-digit ``<Gather>``.
- If the account is suppressed or the contact blocked by the time the call is answered
  (a payment, a dispute or a cease since it was placed), the call hangs up unsaid.

Pressing 2 connects the person to the creditor's agent line (``agent_phone``, a
``<Dial>``) within its ``agent_hours``; outside them the call says so and a ``callback``
task is made for a person (``store.tasks``). A creditor without an agent line: goodbye.

Pressing 1 sends the payment-link text through the ``sms`` channel as the daemon would:
an occurrence (step ``voice_pay_link``, kind ``service``, one per call) and a ``sending``
send are committed before the adapter is called, and the decision after. It answers the
person's own request, so like the opt-out confirmation (docs/http.md) it is exempt from hours
and limits, but never from an SMS opt-out, a cease, or a missing consent: then nothing is
sent, the decision is recorded ``suppressed``/``blocked``, and the call says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from twilio.twiml.voice_response import VoiceResponse

from channels.base import OutboundMessage
from channels.twilio.voice import TwilioVoiceSettings, Voice
from channels.twilio.webhooks import AnsweredCall, is_machine
from orchestrator.config.models import Config, Duration, Kind, TaskRule
from orchestrator.content.rendering import digits_filter
from orchestrator.core.crypto import DataCipher
from orchestrator.core.gate import contact_rule, suppression
from orchestrator.core.keywords import language
from orchestrator.core.planner import Occurrence as Planned
from orchestrator.core.records import DecisionKind, DecisionRecord, Reason, iso_local
from orchestrator.core.tasks import agents_answer
from orchestrator.dispatch.decider import Outcome, message_id_for
from orchestrator.dispatch.runner import Runner
from orchestrator.dispatch.settle import send_status
from orchestrator.errors import OutreachError
from orchestrator.store import facts, tasks
from orchestrator.store.accounts import decision_values
from orchestrator.store.db import insert_for
from orchestrator.store.replay import Replayed, load_facts, replay
from orchestrator.store.tables import Decision, OccurrenceRow, Send, table_of

log = logging.getLogger("outreach.voice")

PAY_LINK_STEP = "voice_pay_link"
PAY_LINK_CHANNEL = "sms"
GATHER_PATH = "/webhooks/twilio/voice/gather/"
# A callback promised to a caller who pressed 2 out of hours, when the policy has no rule.
CALLBACK = TaskRule(type="callback", priority=1, due=Duration(4, "h"))

send_t, occurrence_t, decision_t = table_of(Send), table_of(OccurrenceRow), table_of(Decision)

# What the call says after a key press, by language; {phone} is read digit by digit.
PHRASES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "sent": "We have sent you a text message with a secure payment link. Thank you. Goodbye.",
        "opted_out": "You have asked us not to send text messages to this number, so we "
        "will not send one. To pay or to talk with us, please call {phone}. "
        "Goodbye.",
        "not_sent": "We cannot send a text message to this number. To pay or to talk with "
        "us, please call {phone}. Goodbye.",
        "failed": "Sorry, we could not send the text message just now. To pay or to talk "
        "with us, please call {phone}. Goodbye.",
        "goodbye": "Thank you for your time. Goodbye.",
        "transfer": "Please hold while we connect you with an agent.",
        "callback": "Our agents are not available right now. We will call you back as "
        "soon as we can. Goodbye.",
    },
    "zh": {
        "sent": "我们已通过短信向您发送安全还款链接。谢谢，再见。",
        "opted_out": "您已退订本号码的短信，我们不会向您发送短信。如需还款或咨询，"
        "请致电{phone}。再见。",
        "not_sent": "我们无法向本号码发送短信。如需还款或咨询，请致电{phone}。再见。",
        "failed": "抱歉，短信暂时无法发送。如需还款或咨询，请致电{phone}。再见。",
        "goodbye": "感谢您的接听，再见。",
        "transfer": "正在为您转接人工客服，请稍候。",
        "callback": "现在不是人工客服的服务时间，我们会尽快给您回电。再见。",
    },
}


# --- TwiML ---------------------------------------------------------------------------------


def script_twiml(text: str, voice: Voice, gather_url: str) -> str:
    """The full script, a paragraph per ``<Say>``, inside a one-digit ``<Gather>`` (a key
    pressed mid-sentence counts); no key calls the action too (``actionOnEmptyResult``)."""
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf",
        num_digits=1,
        action=gather_url,
        method="POST",
        timeout=5,
        action_on_empty_result=True,
    )
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if paragraph:
            gather.say(" ".join(paragraph.split()), voice=voice.voice, language=voice.language)
    response.hangup()
    return str(response)


def say_twiml(text: str, voice: Voice) -> str:
    """One message, then hang up (a voicemail; the answer to a key press)."""
    response = VoiceResponse()
    response.say(text, voice=voice.voice, language=voice.language)
    response.hangup()
    return str(response)


def dial_twiml(text: str, voice: Voice, number: str) -> str:
    """Say ``text``, then connect the call to ``number`` (the caller id is the call's)."""
    response = VoiceResponse()
    response.say(text, voice=voice.voice, language=voice.language)
    response.dial(number)
    return str(response)


def hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


# --- the calls -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """A placed call as the TwiML routes need it."""

    send: Row[Any]
    account: Row[Any]
    rep: Replayed
    planned: Planned | None  # None: its step or trigger is gone
    settings: TwilioVoiceSettings

    @property
    def voice(self) -> Voice:
        return self.settings.voice_for(self.rep.state.account.locale)


class VoiceCalls:
    """The TwiML and key-press routes' work, on the server's database and engine."""

    def __init__(
        self,
        *,
        tx: Callable[[], AbstractContextManager[Connection]],
        config: Config,
        cipher: DataCipher,
        runner: Runner,
        public_url: str,
    ):
        self.tx = tx
        self.config = config
        self.cipher = cipher
        self.runner = runner
        self.decider = runner.decider
        self.public_url = public_url.rstrip("/")

    def gather_url(self, message_id: str) -> str:
        return f"{self.public_url}{GATHER_PATH}{quote(message_id, safe='')}"

    def settings(self, channel: str) -> TwilioVoiceSettings:
        """The voice channel's options, or the defaults if it is not on twilio_voice."""
        cfg = self.config.channels.get(channel)
        if cfg is None or cfg.adapter != "twilio_voice":
            return TwilioVoiceSettings()
        return TwilioVoiceSettings.model_validate(cfg.options)

    def _call(self, conn: Connection, message_id: str, now: datetime) -> _Call | None:
        send = conn.execute(sa.select(send_t).where(send_t.c.message_id == message_id)).first()
        if send is None:
            return None
        account = facts.account_row(conn, send.account_id)
        if account is None:
            return None
        rep = replay(
            account,
            self.cipher,
            self.decider.rules,
            load_facts(conn, [account], now, self.cipher)[account.account_id],
            now,
        )
        planned = None
        if send.occurrence_id is not None:
            occ_row = conn.execute(
                sa.select(occurrence_t).where(occurrence_t.c.id == send.occurrence_id)
            ).first()
            if occ_row is not None:
                planned = self.runner.occurrence(occ_row, rep)
        return _Call(send, account, rep, planned, self.settings(send.channel))

    # --- answered ------------------------------------------------------------------------

    def answer(self, message_id: str, answered: AnsweredCall, now: datetime) -> str | None:
        """The TwiML for an answered call, or ``None`` if no such call was placed. Who
        answered is recorded as a delivery event of the send."""
        with self.tx() as conn:
            call = self._call(conn, message_id, now)
            if call is None:
                return None
            sid = answered.sid
            facts.record_delivery(
                conn,
                provider_id=sid,
                message_id=message_id,
                status=answered.status,
                event_key=f"{sid or message_id}:twiml:{answered.answered_by}",
                at=now,
                raw=answered.fields,
            )
        return self._twiml(call, answered.answered_by, now)

    def _twiml(self, call: _Call, answered_by: str, now: datetime) -> str:
        occ, state, rules = call.planned, call.rep.state, call.rep.rules
        message_id = call.send.message_id
        if occ is None:
            log.warning("call without a step to say", extra={"message_id": message_id})
            return hangup_twiml()
        if suppression(occ, state, now, rules) or contact_rule(occ, state):
            log.info("call answered after it stopped applying", extra={"message_id": message_id})
            return hangup_twiml()
        verdict = (answered_by or "").strip().lower()
        machine = is_machine(verdict)
        if machine and (call.settings.voicemail == "hang_up" or verdict == "fax"):
            return hangup_twiml()
        # Detection could not tell ("unknown"): it may be a voicemail box recording, which
        # may only hear the limited-content message (Reg F 1006.2(j)), never the debt.
        machine = machine or verdict == "unknown"
        if machine:
            occ = replace(occ, template=f"{occ.template}_voicemail")
        try:
            rendered = self.decider.render(occ, state, rules, now, message_id, None)
        except OutreachError as exc:
            log.error(
                "call script failed to render",
                extra={"message_id": message_id, "reason": type(exc).__name__},
            )
            return hangup_twiml()
        if machine:
            return say_twiml(rendered.text, call.voice)
        return script_twiml(rendered.text, call.voice, self.gather_url(message_id))

    # --- a key pressed -------------------------------------------------------------------

    def press(self, message_id: str, digits: str, now: datetime) -> str | None:
        """The TwiML after the ``<Gather>``: 1 texts the payment link; anything else, or
        nothing, says goodbye. ``None`` if no such call was placed."""
        with self.tx() as conn:
            call = self._call(conn, message_id, now)
        if call is None:
            return None
        lang = language(call.rep.state.account.locale)
        creditor = self.config.creditor(call.rep.state.account.creditor)
        key = digits.strip()
        phrase = "goodbye"
        if key == "1":
            phrase = self._text_pay_link(call, now)
        elif key == "2" and creditor is not None and creditor.agent_phone:
            zone = self.config.policy.timezone.default
            if agents_answer(creditor.agent_hours, zone, now):
                return dial_twiml(PHRASES[lang]["transfer"], call.voice, creditor.agent_phone)
            phrase = self._callback(call, now)
        text = PHRASES[lang][phrase].format(phone=digits_filter(creditor.phone if creditor else ""))
        return say_twiml(text, call.voice)

    def _callback(self, call: _Call, now: datetime) -> str:
        """Pressed 2 outside the agents' hours: a callback task (the policy's ``tasks``
        ``callback`` rule, else ``CALLBACK``), once per open callback of the account."""
        rule = self.config.policy.tasks.rules.callback or CALLBACK
        with self.tx() as conn:
            tasks.create_task(
                conn,
                rule,
                account_id=call.send.account_id,
                now=now,
                message_id=call.send.provider_id or call.send.message_id,
            )
        return "callback"

    def _text_pay_link(self, call: _Call, now: datetime) -> str:
        """Send (once per call) the payment-link text; which phrase the call says."""
        occ = self._pay_link_occurrence(call, now)
        with self.tx() as conn:
            ready = self._claim_pay_link(conn, occ, call, now)
        if isinstance(ready, str):
            return ready
        occ_id, message = ready
        # Committed as sending: a crash from here on leaves it for recovery (ambiguous),
        # never for a second text.
        rep = call.rep
        outcome = self.decider.synced(
            [self.decider.deliver(occ, rep.state, rep.rules, now, message)]
        )[0]
        with self.tx() as conn:
            self._record_pay_link(conn, occ_id, occ, call, outcome, now)
        return "sent" if outcome.record.decision == DecisionKind.sent else "failed"

    def _pay_link_occurrence(self, call: _Call, now: datetime) -> Planned:
        """The text as an occurrence of its own: one per call (keyed by the call's id)."""
        return Planned(
            account_id=call.rep.state.account.account_id,
            step_id=PAY_LINK_STEP,
            key=call.send.message_id,
            stage=call.planned.stage if call.planned else None,
            channel=PAY_LINK_CHANNEL,
            template=call.settings.pay_link_template,
            kind=Kind.service,
            planned_at=now,
            expires_at=now,
        )

    def _claim_pay_link(
        self, conn: Connection, occ: Planned, call: _Call, now: datetime
    ) -> str | tuple[int, OutboundMessage]:
        """The text claimed, judged, rendered and recorded ``sending`` (its occurrence id
        and message), or the phrase to say when it will not go (or went already)."""
        occ_id = self._claim(conn, occ, call, now)
        if occ_id is None:  # pressed again, or Twilio repeated the request
            state = conn.execute(
                sa.select(occurrence_t.c.state).where(
                    occurrence_t.c.account_id == occ.account_id,
                    occurrence_t.c.step_id == occ.step_id,
                    occurrence_t.c.occurrence_key == occ.key,
                )
            ).scalar()
            return "sent" if state in ("sending", "sent") else "not_sent"
        rep = call.rep
        refusal = self._refusal(occ, rep, now)
        if refusal is not None:
            decision, reason = refusal
            self._settle(conn, occ_id, _refused(occ, rep, decision, reason, now), now)
            return "opted_out" if reason == Reason.opted_out else "not_sent"
        # Rendered before it is recorded sending: a template that fails is a failed text
        # (render_error), never one left in doubt.
        message = self.decider.prepare(
            occ, rep.state, rep.rules, now, message_id_for(occ.account_id, occ.step_id, occ.key)
        )
        if not isinstance(message, OutboundMessage):
            self._settle(conn, occ_id, message.record, now)
            return "failed"
        conn.execute(
            occurrence_t.update()
            .where(occurrence_t.c.id == occ_id)
            .values(state="sending", attempts=1, updated_at=now)
        )
        account = rep.state.account
        conn.execute(
            send_t.insert().values(
                message_id=message.message_id,
                account_id=account.account_id,
                debtor_id=account.debtor_id,
                channel=occ.channel,
                occurrence_id=occ_id,
                status="sending",
                sent_at=now,
                to_index=call.account.phone_index,
            )
        )
        return occ_id, message

    def _record_pay_link(
        self,
        conn: Connection,
        occ_id: int,
        occ: Planned,
        call: _Call,
        outcome: Outcome,
        now: datetime,
    ) -> None:
        """How the text went: its decision, its send's status, a provider's opt-out."""
        self._settle(conn, occ_id, outcome.record, now)
        conn.execute(
            send_t.update()
            .where(send_t.c.message_id == outcome.record.message_id)
            .values(
                status=send_status(str(outcome.record.decision)),
                provider_id=outcome.provider_id,
                status_at=now,
            )
        )
        if outcome.opt_out:  # Twilio 21610: they texted STOP to that sender there
            account = call.rep.state.account
            facts.opt_out(
                conn,
                debtor_id=account.debtor_id,
                account_id=account.account_id,
                channel=occ.channel,
                contact_index=call.account.phone_index,
                source="provider",
                at=now,
            )

    def _claim(self, conn: Connection, occ: Planned, call: _Call, now: datetime) -> int | None:
        """Insert the pay-link occurrence; ``None`` if this call already has one."""
        insert = insert_for(conn)
        row = conn.execute(
            insert(occurrence_t)
            .values(
                account_id=occ.account_id,
                step_id=occ.step_id,
                occurrence_key=occ.key,
                planned_at=now,
                expires_at=now,
                stage=occ.stage,
                channel=occ.channel,
                kind=str(occ.kind),
                state="pending",
                next_attempt_at=None,
                attempts=0,
                claimed_by="server",
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["account_id", "step_id", "occurrence_key"])
            .returning(occurrence_t.c.id)
        ).first()
        return None if row is None else int(row.id)

    @staticmethod
    def _refusal(occ: Planned, rep: Replayed, now: datetime) -> tuple[DecisionKind, str] | None:
        """Why the text must not go: paid, the account's suppression for a service
        message (SMS opt-out, cease), or its contact rules (SMS consent, a number)."""
        if rep.state.closed:
            return DecisionKind.suppressed, Reason.paid
        reason = suppression(occ, rep.state, now, rep.rules)
        if reason is not None:
            return DecisionKind.suppressed, reason
        reason = contact_rule(occ, rep.state)
        if reason is not None:
            return DecisionKind.blocked, reason
        return None

    @staticmethod
    def _settle(conn: Connection, occ_id: int, record: DecisionRecord, now: datetime) -> None:
        conn.execute(decision_t.insert().values(decision_values(record, occurrence_id=occ_id)))
        conn.execute(
            occurrence_t.update()
            .where(occurrence_t.c.id == occ_id)
            .values(state=str(record.decision), updated_at=now)
        )


def _refused(
    occ: Planned, rep: Replayed, decision: DecisionKind, reason: str, now: datetime
) -> DecisionRecord:
    """The record of a pay-link text the gate would not let go."""
    account = rep.state.account
    return DecisionRecord(
        time=now,
        local_time=iso_local(now, rep.rules.zones.primary),
        account=account.account_id,
        debtor=account.debtor_id,
        stage=occ.stage,
        step=occ.step_id,
        channel=occ.channel,
        kind=str(occ.kind),
        decision=decision,
        reason=reason,
    )
