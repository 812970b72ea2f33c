"""Message rendering: sandboxed Jinja2 templates with locale fallback (docs/templates.md).

``templates/<channel>/<name>.<locale>.<ext>.j2`` is looked up for the locale
(``zh-CN``), then its language (``zh``), then ``<name>.<ext>.j2``. A template may open
with YAML front matter between ``---`` lines (``subject``, ``description``,
``variables``); the subject is itself a template. Templates run in a bounded sandbox
(``orchestrator.content.sandbox``: no files or network, and limits on text, numbers, loops and
time, so a template cannot stall the daemon) with ``StrictUndefined``: a misspelt
variable, like a bound passed, is an error naming the file and line, never an empty gap
in a message to a debtor. HTML templates are autoescaped.

Rendering is pure: the caller passes the context (``build_context``) and the locale;
the ``money`` and ``date`` filters format with Babel in that locale.
"""

from __future__ import annotations

import difflib
import re
import stat
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, pass_context
from jinja2.exceptions import TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context
from jinja2.utils import missing
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from orchestrator.config.models import Config, Creditor
from orchestrator.config.yamlsafe import check_aliases
from orchestrator.content.sandbox import MAX_DIGITS, MAX_SOURCE, BoundedSandbox, TemplateLimitError
from orchestrator.content.sandbox import render as bounded_render
from orchestrator.core.account import Account
from orchestrator.core.links import creditor_pay_url
from orchestrator.errors import TemplateError, TemplateMissingError

DEFAULT_LOCALE = "en-US"
EXTENSIONS: Mapping[str, tuple[str, ...]] = {
    "sms": ("txt",),
    "voice": ("txt",),
    "email": ("html", "txt"),
    "letter": ("html",),
}
_FALLBACK_EXTENSIONS = ("txt", "html")
_LOCALE_KEY = "__outreach_locale__"  # the render's locale, read by the filters
# Longer arguments of the money and date filters are formatted without being remembered:
# a template could otherwise fill the caches with a long text each time.
_CACHED_KEY = 64
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str
    html: str | None
    template_path: str


@dataclass(frozen=True)
class FrontMatter:
    subject: str | None = None
    description: str | None = None
    variables: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)


# --- locale and filters ------------------------------------------------------------------


def locale_chain(locale: str | None) -> list[str]:
    """``zh_CN`` → ``["zh-CN", "zh"]``; ``None`` → ``[]`` (the default file only)."""
    if not locale:
        return []
    tag = locale.replace("_", "-").strip("-")
    chain = [tag]
    language = tag.split("-", 1)[0]
    if language and language != tag:
        chain.append(language)
    return chain


@lru_cache(maxsize=64)
def babel_locale(locale: str | None) -> Locale:
    """A Babel locale for a BCP 47 tag; unknown or empty tags give en-US."""
    for tag in [*locale_chain(locale), DEFAULT_LOCALE]:
        try:
            return Locale.parse(tag, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en_US")


def _filter_locale(ctx: Context) -> Locale:
    return babel_locale(ctx.get(_LOCALE_KEY) or ctx.get("locale"))


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise TypeError(f"date filter needs a date, got {type(value).__name__}")


@pass_context
def money_filter(ctx: Context, amount: Any, currency: str | None = None) -> str:
    """``{{ account.balance | money(account.currency) }}`` → ``$1,234.50`` / ``¥1,234.50``."""
    if currency is None:
        currency = ctx.get("account").currency if ctx.get("account") is not None else "USD"
    amount, currency = str(amount), str(currency)
    money = _money if len(amount) + len(currency) <= _CACHED_KEY else _money.__wrapped__
    return money(amount, currency, _filter_locale(ctx))


@lru_cache(maxsize=8192)
def _money(amount: str, currency: str, locale: Locale) -> str:
    """Babel's currency formatting, remembered: an account's balance is written the same
    way in every message it gets."""
    return format_currency(Decimal(amount), currency, locale=locale)


@pass_context
def date_filter(ctx: Context, value: Any, format: str = "medium") -> str:
    """``{{ deadline | date("long") }}`` → ``March 20, 2026`` / ``2026年3月20日``."""
    format = str(format)
    formatted = _date if len(format) <= _CACHED_KEY else _date.__wrapped__
    return formatted(_as_date(value), format, _filter_locale(ctx))


@lru_cache(maxsize=8192)
def _date(value: date, format: str, locale: Locale) -> str:
    """Babel's date formatting, remembered: today, due dates and deadlines repeat."""
    return format_date(value, format=format, locale=locale)


def digits_filter(value: Any) -> str:
    """``+1 800 555 0100`` → ``1 8 0 0 5 5 5 0 1 0 0``: a number read out digit by digit."""
    return " ".join(ch for ch in str(value) if ch.isdigit())


# --- front matter ------------------------------------------------------------------------


def split_front_matter(source: str, path: str = "<template>") -> tuple[FrontMatter, str, int]:
    """(front matter, body, number of lines the front matter took)."""
    m = _FRONT.match(source)
    if not m:
        return FrontMatter(), source, 0
    block = m.group(1) or ""
    bomb = check_aliases(block)
    if bomb is not None:
        raise TemplateError(f"invalid front matter: {bomb.message}", path=path, line=bomb.line + 1)
    try:
        data = YAML(typ="safe", pure=True).load(block) if block.strip() else {}
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        raise TemplateError(f"invalid front matter: {exc}", path=path, line=line) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TemplateError("front matter must be a mapping", path=path, line=2)
    known = {"subject", "description", "variables"}
    subject = data.get("subject")
    front = FrontMatter(
        subject=None if subject is None else str(subject),
        description=data.get("description"),
        variables=data.get("variables"),
        extra={k: v for k, v in data.items() if k not in known},
    )
    return front, source[m.end() :], m.group(0).count("\n")


class _Loader(BaseLoader):
    """Loads a template file with the front matter replaced by a Jinja comment of the
    same height, so line numbers in errors match the file. Names are paths; relative
    ones (``{% extends "email/_layout.en-US.html.j2" %}``) are under the template
    directory, and nothing outside it is readable."""

    def __init__(self, root: Path):
        self.root = root.resolve()

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = Path(template)
        if not path.is_absolute():
            path = self.root / path
        if not path.resolve().is_relative_to(self.root):
            raise TemplateNotFound(template)
        source, mtime = _read_source(path, template)
        _, body, lines = split_front_matter(source, template)
        if lines:
            body = "{#" + "\n" * (lines - 1) + "-#}\n" + body

        def uptodate() -> bool:
            try:
                return path.stat().st_mtime == mtime
            except OSError:
                return False

        return body, str(path), uptodate


_LONG_NUMBER = re.compile(rf"\d{{{MAX_DIGITS + 1},}}")


def _read_source(path: Path, template: str) -> tuple[str, float]:
    """A template file's text and time, if it can be a template: a regular file (a FIFO
    would block the read for ever), of at most ``MAX_SOURCE`` bytes, with no number longer
    than the sandbox computes (Python refuses to read one of 4,300 digits, which Jinja
    would report without a line)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise TemplateNotFound(template)
        if info.st_size > MAX_SOURCE:
            raise TemplateError(f"the file is larger than {MAX_SOURCE // 1024} KB", path=str(path))
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateNotFound(template) from exc
    number = _LONG_NUMBER.search(source)
    if number is not None:
        raise TemplateError(
            f"a number of {len(number.group()):,} digits is too large; the most is {MAX_DIGITS:,}",
            path=str(path),
            line=source.count("\n", 0, number.start()) + 1,
        )
    return source, info.st_mtime


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith((".html.j2", ".html", ".htm"))


class MissingAttribute(UndefinedError):
    """An attribute or key a template read that its object does not have, with the
    names the object does have (for "did you mean")."""

    def __init__(self, message: str, name: str, known: list[str]):
        super().__init__(message)
        self.name = name
        self.known = known


class NamedUndefined(StrictUndefined):
    """``StrictUndefined`` whose error says which attribute was missing on what."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        owner, name = self._undefined_obj, self._undefined_name
        if name is not None and owner is not missing and isinstance(name, str):
            raise MissingAttribute(self._undefined_message, name, _names_of(owner))
        return super()._fail_with_undefined_error(*args, **kwargs)

    __add__ = __radd__ = __sub__ = __rsub__ = _fail_with_undefined_error
    __mul__ = __rmul__ = __div__ = __rdiv__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _fail_with_undefined_error
    __mod__ = __rmod__ = __pos__ = __neg__ = _fail_with_undefined_error
    __call__ = __getitem__ = __lt__ = __le__ = __gt__ = __ge__ = _fail_with_undefined_error
    __int__ = __float__ = __complex__ = __pow__ = __rpow__ = _fail_with_undefined_error
    __iter__ = __str__ = __len__ = __eq__ = __ne__ = __bool__ = _fail_with_undefined_error
    __hash__ = __contains__ = __getattr__ = _fail_with_undefined_error


def _names_of(owner: Any) -> list[str]:
    if isinstance(owner, Mapping):
        return [str(k) for k in owner]
    return [n for n in vars(owner) if not n.startswith("_")] if hasattr(owner, "__dict__") else []


def make_environment(root: Path, *, live: bool = True) -> BoundedSandbox:
    env = BoundedSandbox(
        loader=_Loader(root),
        undefined=NamedUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        cache_size=1000,
        auto_reload=live,
    )
    env.filters["money"] = money_filter
    env.filters["date"] = date_filter
    env.filters["digits"] = digits_filter
    return env


def _clean_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _describe(exc: BaseException) -> str:
    """A render error in words: the sandbox's own say what bound was passed."""
    if isinstance(exc, MissingAttribute):
        return _missing_attribute(exc)
    if isinstance(exc, UndefinedError):
        return f"undefined variable: {exc.message}"
    if isinstance(exc, TemplateLimitError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "the template includes or calls itself without end"
    return f"{type(exc).__name__}: {exc}"


def _missing_attribute(exc: MissingAttribute) -> str:
    """``undefined: debtor.frist_name (did you mean first_name?)``: the expression as
    written on the template's line where it can be found there."""
    name = exc.name
    shown = name
    filename, line = _error_location(exc)
    if filename and line:
        try:
            text = Path(filename).read_text(encoding="utf-8").splitlines()[line - 1]
        except (OSError, IndexError, UnicodeDecodeError):
            text = ""
        found = re.search(rf"([A-Za-z_][\w.]*)\.{re.escape(name)}\b", text)
        if found:
            shown = f"{found.group(1)}.{name}"
    close = difflib.get_close_matches(name, exc.known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"undefined: {shown}{hint}"


def _error_location(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost template frame of a render error: (file, line)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return frame.filename, frame.lineno
    return None, None


# --- HTML to text --------------------------------------------------------------------------

_BLOCKS = frozenset(
    "address article aside blockquote div dl dt dd fieldset figure footer form h1 h2 h3 h4 "
    "h5 h6 header hr li main nav ol p pre section table tr ul".split()
)
_PARAGRAPHS = frozenset("blockquote h1 h2 h3 h4 h5 h6 ol p pre table ul".split())
_SKIP = frozenset({"head", "script", "style", "title"})


class _TextHandler:
    """What ``html_to_text`` does with each tag and piece of text."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.skipping = 0
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n" if tag in _PARAGRAPHS else "\n")
            if tag == "li":
                self.parts.append("- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        if tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS and tag not in ("li", "tr", "dt", "dd"):
            self.parts.append("\n\n" if tag in _PARAGRAPHS else "\n")
        elif tag == "a" and self.links:
            href = self.links.pop()
            shown = "".join(self.parts[-3:])
            if href and href.startswith(("http", "mailto:")) and href not in shown:
                self.parts.append(f" ({href.removeprefix('mailto:')})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(_SPACES.sub(" ", data))

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self.parts).splitlines()]
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
# A comment, a declaration or processing instruction, or a tag (quoted attribute values
# may hold ">"). Anything else is text, a stray "<" included.
_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)|<![^>]*>?|<\?[^>]*>?"
    r"|<(/)?([a-zA-Z][^\s/>]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>",
    re.S,
)
_ATTRIBUTE = re.compile(r"""([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
_RAW_TEXT = {"script": re.compile(r"</script\s*>", re.I), "style": re.compile(r"</style\s*>", re.I)}


def _attributes(source: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for m in _ATTRIBUTE.finditer(source):
        value = next((v for v in m.groups()[1:] if v is not None), None)
        out.append((m.group(1).lower(), None if value is None else unescape(value)))
    return out


def html_to_text(html: str) -> str:
    """Readable plain text from HTML: blocks on their own lines, links kept as URLs.

    A small scanner rather than ``html.parser`` (a letter took 0.7 ms there, the most of
    any one step of a send); tests check it reads every shipped template, and generated
    HTML, exactly as ``html.parser`` does."""
    out = _TextHandler()
    pos, end = 0, len(html)
    text_from = 0  # where the pending text began
    while pos < end:
        i = html.find("<", pos)
        m = _MARKUP.match(html, i) if i >= 0 else None
        if m is None:
            if i < 0:
                break
            pos = i + 1  # a "<" that starts no markup is text
            continue
        if i > text_from:
            text = html[text_from:i]
            out.handle_data(unescape(text) if "&" in text else text)
        pos = text_from = m.end()
        name = m.group(2)
        if name is None:
            continue  # comment, doctype, processing instruction
        tag = name.lower()
        if m.group(1):
            out.handle_endtag(tag)
            continue
        source = m.group(3)
        out.handle_starttag(tag, _attributes(source) if tag == "a" else [])  # only links
        if source.endswith("/"):
            out.handle_endtag(tag)
        elif tag in _RAW_TEXT:  # script and style: text up to their end tag
            close = _RAW_TEXT[tag].search(html, pos)
            stop = close.start() if close else end
            if stop > pos:
                out.handle_data(html[pos:stop])
            if close is None:
                return out.text()
            out.handle_endtag(tag)
            pos = text_from = close.end()
    if text_from < end:
        text = html[text_from:]
        out.handle_data(unescape(text) if "&" in text else text)
    return out.text()


def _values(locale: str | None, context: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(context)
    values.setdefault("locale", locale or DEFAULT_LOCALE)
    values[_LOCALE_KEY] = locale or values["locale"]
    return values


# --- the renderer --------------------------------------------------------------------------


class TemplateRenderer:
    """Finds, compiles (once) and renders templates under one directory.

    ``live`` (previews, lint, the server): an edited file is picked up at its next use.
    Otherwise (the daemon, which reloads on SIGHUP, and simulate) which file serves a
    template, and its front matter, are looked up once, not checked on disk at each send.
    """

    def __init__(self, templates_dir: Path | str, *, live: bool = True):
        self.templates_dir = Path(templates_dir)
        self.live = live
        self.env = make_environment(self.templates_dir, live=live)
        self._subjects: dict[str, Template] = {}
        self._fronts: dict[Path, tuple[int, FrontMatter]] = {}
        self._names: dict[Path, str] = {}
        self._found: dict[
            tuple[str, str, str | None, tuple[str, ...]], tuple[Path, str, str | None] | None
        ] = {}
        self._is_file: dict[Path, bool] = {}

    def candidates(self, channel: str, name: str, locale: str | None, ext: str) -> list[Path]:
        folder = self.templates_dir / channel
        paths = [folder / f"{name}.{tag}.{ext}.j2" for tag in locale_chain(locale)]
        return [*paths, folder / f"{name}.{ext}.j2"]

    def _find(
        self, channel: str, name: str, locale: str | None, exts: tuple[str, ...]
    ) -> tuple[Path, str, str | None] | None:
        """The first existing (path, ext, locale tag) along the fallback chain, trying the
        channel's primary extension first at each level."""
        if self.live:
            return self._look(channel, name, locale, exts)
        key = (channel, name, locale, exts)
        if key not in self._found:
            self._found[key] = self._look(channel, name, locale, exts)
        return self._found[key]

    def _look(
        self, channel: str, name: str, locale: str | None, exts: tuple[str, ...]
    ) -> tuple[Path, str, str | None] | None:
        folder = self.templates_dir / channel
        for tag in [*locale_chain(locale), None]:
            suffix = f".{tag}" if tag else ""
            for ext in exts:
                path = folder / f"{name}{suffix}.{ext}.j2"
                if path.is_file():
                    return path, ext, tag
        return None

    def _exists(self, path: Path) -> bool:
        if self.live:
            return path.is_file()
        if path not in self._is_file:
            self._is_file[path] = path.is_file()
        return self._is_file[path]

    def resolve(self, channel: str, name: str, locale: str | None = None) -> Path | None:
        """The file ``render`` would use, or ``None`` (for ``config check``)."""
        exts = EXTENSIONS.get(channel, _FALLBACK_EXTENSIONS)
        found = self._find(channel, name, locale, exts[:1]) or self._find(
            channel, name, locale, exts
        )
        return found[0] if found else None

    def front_matter(self, path: Path) -> FrontMatter:
        """The file's front matter, parsed once per version of the file (once, when not
        ``live``)."""
        cached = self._fronts.get(path)
        if cached is not None and not self.live:
            return cached[1]
        stamp = path.stat().st_mtime_ns
        if cached is not None and cached[0] == stamp:
            return cached[1]
        front = split_front_matter(path.read_text(encoding="utf-8"), str(path))[0]
        self._fronts[path] = (stamp, front)
        return front

    def _template_name(self, path: Path) -> str:
        name = self._names.get(path)
        if name is None:
            name = path.resolve().relative_to(self.templates_dir.resolve()).as_posix()
            self._names[path] = name
        return name

    def _render_file(self, path: Path, context: Mapping[str, Any]) -> tuple[str, FrontMatter]:
        shown = str(path)
        try:
            front = self.front_matter(path)
            template = self.env.get_template(self._template_name(path))
            if type(template.globals) is not dict:
                # Jinja chains a template's globals to the environment's, and walks the
                # chain twice at every render (a fifth of an SMS's rendering); nothing
                # changes the environment's globals once it is made, so a plain copy
                # reads the same.
                template.globals = dict(template.globals)
            return bounded_render(template, context), front
        except TemplateError:
            raise
        except TemplateSyntaxError as exc:
            where = self._shown(exc.filename, shown)
            raise TemplateError(
                f"syntax error: {exc.message}", path=where, line=exc.lineno
            ) from exc
        except Exception as exc:  # undefined, a filter failed, or the sandbox refused
            filename, line = _error_location(exc)
            what = _describe(exc)
            raise TemplateError(what, path=self._shown(filename, shown), line=line) from exc

    def _shown(self, filename: str | None, default: str) -> str:
        """A template file as the user named the directory (``templates/...``)."""
        if not filename:
            return default
        try:
            rel = Path(filename).relative_to(self.templates_dir.resolve())
        except ValueError:
            return filename
        return str(self.templates_dir / rel)

    def _render_subject(
        self, front: FrontMatter, path: Path, context: Mapping[str, Any]
    ) -> str | None:
        if front.subject is None:
            return None
        key = f"{path}\x00{front.subject}"
        try:
            template = self._subjects.get(key)
            if template is None:
                template = self.env.from_string(front.subject)
                template.globals = dict(template.globals)  # as in ``_render_file``
                self._subjects[key] = template
            subject = bounded_render(template, context)
        except UndefinedError as exc:
            raise TemplateError(
                f"front matter subject: undefined variable: {exc.message}", path=str(path), line=2
            ) from exc
        except Exception as exc:
            raise TemplateError(
                f"front matter subject: {_describe(exc)}", path=str(path), line=2
            ) from exc
        return " ".join(subject.split())

    def render_file(
        self, path: Path, locale: str | None, context: Mapping[str, Any]
    ) -> tuple[str, str | None]:
        """One file's raw output and rendered subject, without its sibling parts or any
        clean-up: what ``outreach templates lint`` checks, file by file."""
        values = _values(locale, context)
        body, front = self._render_file(path, values)
        return body, self._render_subject(front, path, values)

    def render(
        self, channel: str, name: str, locale: str | None, context: Mapping[str, Any]
    ) -> Rendered:
        exts = EXTENSIONS.get(channel, _FALLBACK_EXTENSIONS)
        found = self._find(channel, name, locale, exts[:1]) or self._find(
            channel, name, locale, exts
        )
        if found is None:
            tried = ", ".join(str(p) for p in self.candidates(channel, name, locale, exts[0]))
            raise TemplateMissingError(
                f"no {channel} template {name!r} (tried {tried})",
                path=str(self.templates_dir / channel / name),
            )
        path, ext, tag = found
        values = _values(locale, context)
        body, front = self._render_file(path, values)
        subject = self._render_subject(front, path, values)
        if ext == "txt":
            return Rendered(subject, _clean_text(body), None, str(path))
        html = body.strip() + "\n"
        text_path = path.with_name(path.name.removesuffix(".html.j2") + ".txt.j2")
        if channel == "email" and self._exists(text_path):
            text_body, text_front = self._render_file(text_path, values)
            if subject is None:
                subject = self._render_subject(text_front, text_path, values)
            text = _clean_text(text_body)
        else:
            text = html_to_text(html)
        return Rendered(subject, text, html, str(path))


# --- the context ---------------------------------------------------------------------------


def _ns(value: Any, *names: str) -> SimpleNamespace | None:
    """A promise or instalment (dict or object) as a namespace with ``names``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return SimpleNamespace(**{n: value.get(n) for n in names})
    return SimpleNamespace(**{n: getattr(value, n, None) for n in names})


@lru_cache(maxsize=256)
def _creditor_fields(creditor: Creditor) -> dict[str, Any]:
    """A creditor's own fields as templates see them, but its pay URL (the account's).
    Creditors are frozen: the same one always reads the same. (Callers copy it.)"""
    fields = creditor.model_dump()
    fields["letter_deadline"] = str(creditor.letter_deadline)
    del fields["pay_url"]
    return fields


def _creditor(creditor: Creditor | None, account: Account, key: str | None) -> SimpleNamespace:
    if creditor is None:
        fields: dict[str, Any] = {name: None for name in Creditor.model_fields}
        fields.update(name="", phone="", bank_account="", pay_url="", debt_collector=False)
        return SimpleNamespace(key=key, **fields)
    return SimpleNamespace(
        key=key, **_creditor_fields(creditor), pay_url=creditor_pay_url(creditor, account) or ""
    )


def build_context(
    account: Account,
    config: Config,
    *,
    today: date,
    dpd: int,
    stage: str | None,
    pay_link: str | None,
    unsubscribe_link: str | None,
    promise: Any = None,
    instalment: Any = None,
    deadline: date | None,
    locale: str,
    validation: Any = None,
) -> dict[str, Any]:
    """The names of docs/templates.md §3, plus ``disclosure`` (the creditor is a debt collector) and
    the debtor's postal address for letters. Names that do not apply are ``None``;
    ``validation`` (the US validation notice's facts, ``core.validation.NoticeFacts``) is
    set for that notice only."""
    creditor = config.creditor(account.creditor)
    address = [account.address_line1, account.address_line2]
    city_line = " ".join(p for p in (account.city, account.region, account.postal_code) if p)
    address_lines = [p for p in (*address, city_line, account.country) if p]
    return {
        "debtor": SimpleNamespace(
            id=account.debtor_id,
            name=account.name,
            first_name=account.first_name,
            address_line1=account.address_line1,
            address_line2=account.address_line2,
            city=account.city,
            region=account.region,
            postal_code=account.postal_code,
            country=account.country,
            address_lines=address_lines,
        ),
        "account": SimpleNamespace(
            id=account.account_id,
            reference=account.reference or account.account_id,
            balance=account.balance,
            currency=account.currency,
            due_date=account.due_date,
            dpd=dpd,
            stage=stage,
        ),
        "creditor": _creditor(creditor, account, account.creditor),
        "pay_link": pay_link,
        "unsubscribe_link": unsubscribe_link,
        "promise": _ns(promise, "amount", "due", "waived"),
        "instalment": _ns(instalment, "amount", "due"),
        "deadline": deadline,
        "today": today,
        "locale": locale,
        "disclosure": bool(creditor is not None and creditor.debt_collector),
        "validation": _ns(validation, *VALIDATION_FIELDS),
    }


# What the validation notice states (``validation.<name>`` in its template).
VALIDATION_FIELDS = (
    "itemization_date",
    "itemization_amount",
    "interest",
    "fees",
    "payments",
    "credits",
    "current_amount",
    "sent_on",
    "period_start",
    "period_end",
)
