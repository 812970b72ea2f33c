"""The error tree, drawn once.

    OutreachError
    ├── ConfigError          bad configuration; carries every Problem found
    ├── InputError           bad input file or request; carries every Problem found
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
