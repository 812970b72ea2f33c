"""The error tree, drawn once.

    OutreachError
    ├── ConfigError          bad configuration; carries every Problem found
    │   └── UnknownAdapterError   a channel names an adapter nobody provides
    ├── InputError           bad input file or request; carries every Problem found
    ├── TemplateError        a template is malformed or failed to render (file, line)
    │   └── TemplateMissingError  no file for the channel, name and locale
    ├── PrinterUnavailable   WeasyPrint (or pango/cairo) cannot be loaded here
    └── ChannelError         an adapter could not deliver
        ├── TransientChannelError   retry (429, 5xx, 4xx SMTP)
        ├── PermanentChannelError   do not retry (invalid number, 5xx SMTP)
        └── AmbiguousSendError      the provider may have accepted it: never resend blindly
"""

from __future__ import annotations

from dataclasses import dataclass


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
