"""The error tree, drawn once.

OutreachError
├── ConfigError          bad configuration; carries every Problem found
│   └── UnknownAdapterError   a channel names an adapter nobody provides
├── InputError           bad input file or request; carries every Problem found
├── TemplateError        a template is malformed or failed to render (file, line)
│   └── TemplateMissingError  no file for the channel, name and locale
├── PrinterUnavailable   WeasyPrint (or pango/cairo) cannot be loaded here
├── Refused              a web request not carried out; one HTTP status each
│   ├── NotAuthenticated      401: not from who it says (signature, timestamp)
│   ├── Unknown               404: an account, send or link we do not know
│   └── Invalid               422: cannot be recorded as it stands
└── ChannelError         an adapter could not deliver
    ├── TransientChannelError   retry (429, 5xx, 4xx SMTP)
    ├── PermanentChannelError   do not retry (invalid number, 5xx SMTP)
    └── AmbiguousSendError      the provider may have accepted it: never resend blindly
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Problem:
    """One problem at a place in a file: printed as ``PATH:LINE:COL: level: message``."""

    path: str
    line: int | None
    column: int | None
    message: str
    level: str = "error"  # error | warning
    field: str | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.level}: {self.message}"


class OutreachError(Exception):
    """Root of every error outreach raises on purpose."""


class _ProblemsError(OutreachError):
    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(path="<input>", line=None, column=None, message=problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


class ConfigError(_ProblemsError):
    """Configuration is invalid; ``problems`` lists every one of them."""


class InputError(_ProblemsError):
    """An input file, scenario or request is invalid."""


class UnknownAdapterError(ConfigError):
    """No adapter of that name is registered, built in or installed."""


class TemplateError(OutreachError):
    """A template is missing, malformed, or failed to render; names the file and line."""

    def __init__(self, message: str, *, path: str, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")

    @property
    def problem(self) -> Problem:
        return Problem(path=self.path, line=self.line, column=None, message=self.reason)


class TemplateMissingError(TemplateError):
    """No file matches the channel, name and locale (nor any fallback)."""


class PrinterUnavailable(OutreachError):
    """WeasyPrint (or the pango and cairo it needs) cannot be loaded here."""


class Refused(OutreachError):
    """A request not carried out, before anything was written (or inside a transaction
    that then rolls back); ``detail`` says why (text, or a list of problems), ``reason``
    is the label refusals are counted under (``outreach_webhook_rejections``)."""

    status: ClassVar[int]

    def __init__(self, detail: Any, reason: str):
        self.detail = detail
        self.reason = reason
        super().__init__(detail)


class NotAuthenticated(Refused):
    """It does not come from who it says (a signature, a timestamp)."""

    status = 401


class Unknown(Refused):
    """It names an account, a send or a link we do not know."""

    status = 404


class Invalid(Refused):
    """It cannot be recorded as it stands (a bound, a missing field, a reused key)."""

    status = 422


class Conflict(Refused):
    """Someone else holds it (a task claimed by another person), or it is over (done)."""

    status = 409


class ChannelError(OutreachError):
    """An adapter failed to hand a message to its provider."""

    def __init__(self, message: str, *, code: str | None = None):
        self.code = code
        super().__init__(message)


class TransientChannelError(ChannelError):
    """Worth retrying: the provider did not accept the message, and said so."""


class PermanentChannelError(ChannelError):
    """Retrying cannot help (invalid number, unsubscribed recipient, rejected mailbox)."""


class AmbiguousSendError(ChannelError):
    """The request left; the provider may or may not have accepted it. Never resend blindly."""
