"""The SMTP email adapter (docs/configuration.md): multipart text + HTML over one reused connection.

``{adapter: smtp, host: "${SMTP_HOST}", port: 587, from: "Acme <billing@example.com>"}``
with optional ``username``/``password`` (``${ENV}`` in channels.yaml), ``starttls``
(default on, except on port 465), ``tls`` (implicit TLS, the port-465 way), ``timeout``
(seconds) and ``unsubscribe_mailto`` (an address added to ``List-Unsubscribe``).

Every message carries a ``Message-ID`` built from our message id (the provider id that
reports refer to), and, when the engine passes an unsubscribe link, ``List-Unsubscribe``
with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058) so a mailbox's
"unsubscribe" button reaches ``POST /u/{token}``.

Errors map at this boundary: a 4xx reply is transient (retry), a 5xx reply permanent; a
connection that cannot be opened is transient; a connection lost after the message
data started is ambiguous (the relay may have accepted it: never resend blindly).
"""

from __future__ import annotations

import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from channels.base import AdapterSettings, DeliveryStatus, OutboundMessage, SendResult
from orchestrator.clock import Clock
from orchestrator.errors import (
    AmbiguousSendError,
    PermanentChannelError,
    TransientChannelError,
)


class SmtpSettings(AdapterSettings):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    starttls: bool | None = None  # default: on unless tls or port 465
    tls: bool = False
    timeout: float = Field(default=30.0, gt=0, le=600)
    unsubscribe_mailto: str | None = None


def _error_for(code: int, text: str, what: str) -> TransientChannelError | PermanentChannelError:
    message = f"SMTP {what}: {code} {text}"
    if 400 <= code < 500:
        return TransientChannelError(message, code=f"smtp_{code}")
    return PermanentChannelError(message, code=f"smtp_{code}")


def _reply_text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


class SmtpChannel:
    name: ClassVar[str] = "smtp"
    settings_model: ClassVar[type[AdapterSettings]] = SmtpSettings

    def __init__(self, channel: str, settings: SmtpSettings, clock: Clock):
        self.channel = channel
        self.settings = settings
        self.clock = clock
        self._smtp: smtplib.SMTP | None = None
        sender = parseaddr(settings.from_ or "")[1]
        self.domain = sender.rpartition("@")[2] or "outreach.invalid"

    @classmethod
    def from_config(
        cls, channel: str, settings: AdapterSettings, *, base_dir: Path, clock: Clock
    ) -> SmtpChannel:
        assert isinstance(settings, SmtpSettings)
        return cls(channel, settings, clock)

    # -- the connection ------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        implicit_tls = s.tls or s.port == 465
        try:
            smtp: smtplib.SMTP
            if implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            smtp.ehlo()
            starttls = s.starttls if s.starttls is not None else not implicit_tls
            if starttls:
                if not smtp.has_extn("starttls"):
                    smtp.close()
                    raise PermanentChannelError(
                        f"SMTP server {s.host}:{s.port} does not offer STARTTLS; "
                        "set starttls: false only for a relay on a trusted network",
                        code="smtp_no_starttls",
                    )
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentChannelError(
                f"SMTP login refused: {exc.smtp_code}", code="smtp_auth"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise _error_for(exc.smtp_code, _reply_text(exc.smtp_error), "connect") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientChannelError(
                f"SMTP connection to {s.host}:{s.port} failed: {exc}", code="smtp_connect"
            ) from exc
        return smtp

    def _connection(self) -> smtplib.SMTP:
        """The open connection, checked with NOOP, or a new one."""
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
        self._smtp = self._connect()
        return self._smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            except OSError:
                pass
            self._smtp = None

    # -- sending -------------------------------------------------------------------------

    def build(self, message: OutboundMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = message.from_ or self.settings.from_ or ""
        mail["To"] = message.to
        mail["Subject"] = message.subject or ""
        mail["Date"] = format_datetime(self.clock.now())
        mail["Message-ID"] = f"<{message.message_id}@{self.domain}>"
        mail["Content-Language"] = message.locale
        unsubscribe = []
        link = message.metadata.get("unsubscribe_link")
        if link:
            unsubscribe.append(f"<{link}>")
        if self.settings.unsubscribe_mailto:
            unsubscribe.append(f"<mailto:{self.settings.unsubscribe_mailto}?subject=unsubscribe>")
        if unsubscribe:
            mail["List-Unsubscribe"] = ", ".join(unsubscribe)
        if link:
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(message.text)
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html")
        return mail

    def send(self, message: OutboundMessage) -> SendResult:
        to = parseaddr(message.to)[1]
        if "@" not in to:
            raise PermanentChannelError(f"not an email address: {message.to!r}", code="bad_address")
        try:
            Address(addr_spec=to)
        except (ValueError, IndexError) as exc:
            raise PermanentChannelError(f"not an email address: {exc}", code="bad_address") from exc
        mail = self.build(message)
        smtp = self._connection()
        try:
            refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._reset(smtp)
            raise _error_for(code, _reply_text(text), "recipient refused") from exc
        except smtplib.SMTPSenderRefused as exc:
            self._reset(smtp)
            raise _error_for(exc.smtp_code, _reply_text(exc.smtp_error), "sender refused") from exc
        except smtplib.SMTPDataError as exc:
            self._reset(smtp)
            raise _error_for(exc.smtp_code, _reply_text(exc.smtp_error), "message refused") from exc
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            raise AmbiguousSendError(
                f"SMTP connection lost while sending: {exc}", code="smtp_lost"
            ) from exc
        if refused:
            code, text = next(iter(refused.values()))
            raise _error_for(code, _reply_text(text), "recipient refused")
        return SendResult(provider_id=mail["Message-ID"].strip("<>"), status=DeliveryStatus.sent)

    def _reset(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()


ADAPTER = SmtpChannel
