"""``outreach templates lint``: every template, in every locale, checked before it can
reach a debtor (docs/templates.md, "What lint checks").

Each file is parsed (syntax, names that are not in the context), then rendered with
the sample data of ``orchestrator.content.preview`` as an ordinary creditor, as a debt
collector, and with every optional field empty. The rendered text is then checked:

- required content: policy ``content:`` rules per channel (opt-out, disclosure...);
  every SMS, email and call names the creditor (who is writing);
- forbidden wording in English and Chinese (``orchestrator.content.wording`` + ``forbidden:``);
- voice: a voicemail says nothing of a debt; a call says nothing of it before the
  person is identified (its first paragraph);
- SMS length in segments: a warning over 2, an error over 4;
- letters: debtor name, amount, reference, deadline, contact and complaint channel,
  bank account or payment link; and every URL the printer would fetch (an image, a
  font, a stylesheet, an attachment) a file under the template directory or a ``data:``
  URL, as the printer allows (``channels.pdf_assets``): never another file, nor the
  network;
- HTML (emails and letters) must be well formed.

Problems name the file and line: the line of the source where a phrase or a broken tag
is written when it can be found, else the first line after the front matter.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import meta, nodes
from jinja2.exceptions import TemplateSyntaxError

from channels.pdf_assets import missing, refusal, resource_urls
from channels.segments import segments
from orchestrator.config.models import Config, ContentRule
from orchestrator.content.htmlcheck import html_links, html_problems, neutralise_jinja
from orchestrator.content.notice_lint import missing_facts, notice_templates
from orchestrator.content.preview import VARIANTS, Variant, sample_context
from orchestrator.content.rendering import (
    EXTENSIONS,
    TemplateRenderer,
    _clean_text,
    babel_locale,
    html_to_text,
    locale_chain,
    split_front_matter,
)
from orchestrator.content.wording import Phrase, debt_phrases, find, phrases
from orchestrator.errors import Problem, TemplateError

SMS_WARN_SEGMENTS = 2
SMS_MAX_SEGMENTS = 4
DEFAULT_LINT_LOCALE = "en-US"
SENDER_CHANNELS = ("sms", "email", "voice")  # must name the creditor
_CODE = "\x00"  # where template code was, in a source scanned for URLs
_JINJA_NAMES = {
    "self",
    "super",
    "loop",
    "varargs",
    "kwargs",
    "caller",
    "range",
    "dict",
    "cycler",
    "joiner",
    "namespace",
}


@dataclass(frozen=True)
class TemplateFile:
    """``templates/<channel>/<name>[.<locale>].<ext>.j2``."""

    path: Path
    channel: str
    name: str
    locale: str | None
    ext: str

    @property
    def lint_locale(self) -> str:
        return self.locale or DEFAULT_LINT_LOCALE


def parse_name(path: Path, channel: str) -> TemplateFile | None:
    parts = path.name.removesuffix(".j2").split(".")
    if not path.name.endswith(".j2") or len(parts) not in (2, 3):
        return None
    name, ext = parts[0], parts[-1]
    return TemplateFile(path, channel, name, parts[1] if len(parts) == 3 else None, ext)


def discover(templates_dir: Path, names: Iterable[str] | None = None) -> list[TemplateFile]:
    """The template files (not ``_partials``), optionally only those named ``NAME`` or
    ``CHANNEL/NAME``."""
    wanted = [n.strip("/") for n in names or []]
    found: list[TemplateFile] = []
    for folder in sorted(p for p in templates_dir.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.j2")):
            if path.name.startswith("_"):
                continue
            parsed = parse_name(path, folder.name)
            if parsed is None:
                continue
            if (
                wanted
                and parsed.name not in wanted
                and f"{folder.name}/{parsed.name}" not in wanted
            ):
                continue
            found.append(parsed)
    return found


class _Linter:
    def __init__(self, templates_dir: Path, config: Config, public_url: str):
        self.dir = Path(templates_dir)
        self.config = config
        self.public_url = public_url
        self.renderer = TemplateRenderer(self.dir)
        self.env = self.renderer.env
        self.problems: list[Problem] = []
        # template path -> (segments, its length problem): one per template, the longest
        self._sms_length: dict[Path, tuple[int, Problem]] = {}
        self.forbidden = phrases(tuple(config.policy.forbidden))
        self._parsed: dict[Path, tuple[Any, list[Path]] | None] = {}
        self._known = set(sample_context("en-US")) | _JINJA_NAMES
        self.notices = notice_templates(config)

    # -- problems --------------------------------------------------------------------------

    def add(
        self,
        path: Path | str,
        line: int | None,
        message: str,
        level: str = "error",
        *,
        column: int | None = None,
    ) -> None:
        self.problems.append(Problem(str(path), line, column, message, level=level))

    def body_line(self, path: Path) -> int:
        """The first line after the front matter: where file-wide problems are reported."""
        try:
            return split_front_matter(path.read_text(encoding="utf-8"), str(path))[2] + 1
        except (OSError, TemplateError):
            return 1

    # -- parsing ---------------------------------------------------------------------------

    def name_of(self, path: Path) -> str:
        return path.resolve().relative_to(self.dir.resolve()).as_posix()

    def parse(self, path: Path) -> tuple[Any, list[Path]] | None:
        """(AST, the files it extends or includes), once per file; problems reported."""
        if path in self._parsed:
            return self._parsed[path]
        self._parsed[path] = None
        try:
            source, _, _ = self.env.loader.get_source(self.env, self.name_of(path))  # type: ignore[union-attr]
            ast = self.env.parse(source, self.name_of(path), str(path))
        except TemplateError as exc:
            self.add(exc.path, exc.line, exc.reason)
            return None
        except TemplateSyntaxError as exc:
            self.add(path, exc.lineno, f"syntax error: {exc.message}")
            return None
        except Exception as exc:  # unreadable, outside the directory
            self.add(path, None, f"cannot read template: {exc}")
            return None
        refs = [self.dir / r for r in meta.find_referenced_templates(ast) if r]
        self._parsed[path] = (ast, refs)
        self.check_names(path, ast)
        front = self.renderer.front_matter(path)
        if isinstance(front.variables, list):
            for var in front.variables:
                if str(var).split(".")[0] not in self._known:
                    self.add(
                        path,
                        2,
                        f"front matter variables: {var!r} is not a template "
                        f"variable (see docs/templates.md)",
                        "warning",
                    )
        for ref in refs:
            if ref.is_file():
                self.parse(ref)
        return self._parsed[path]

    def check_names(self, path: Path, ast: Any) -> None:
        try:
            unknown = meta.find_undeclared_variables(ast) - self._known
        except TemplateSyntaxError as exc:  # an unknown filter or test: found by compiling
            self.add(path, exc.lineno, str(exc.message))
            return
        reported: set[str] = set()
        for node in ast.find_all(nodes.Name):
            if node.name in unknown and node.name not in reported:
                reported.add(node.name)
                close = difflib.get_close_matches(node.name, sorted(self._known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.add(
                    path,
                    node.lineno,
                    f"undefined variable {node.name!r}{hint}",
                    column=_column_of(path, node.lineno, node.name),
                )

    def sources(self, path: Path) -> Iterator[Path]:
        """The file, then every file it extends or includes, depth first, once each."""
        seen: set[Path] = set()
        stack = [path]
        while stack:
            current = stack.pop(0)
            if current in seen:
                continue
            seen.add(current)
            yield current
            parsed = self._parsed.get(current)
            if parsed:
                stack[0:0] = [r for r in parsed[1] if r.is_file()]

    def locate(self, path: Path, phrase: Phrase) -> tuple[Path, int] | None:
        """Where in the sources a phrase is written (template code excluded)."""
        for source in self.sources(path):
            text = neutralise_jinja(source.read_text(encoding="utf-8"))
            m = phrase.pattern.search(text)
            if m:
                return source, text.count("\n", 0, m.start()) + 1
        return None

    # -- one file --------------------------------------------------------------------------

    def lint(self, tf: TemplateFile) -> None:
        allowed = EXTENSIONS.get(tf.channel)
        if allowed is not None and tf.ext not in allowed:
            self.add(
                tf.path,
                None,
                f"{tf.channel} templates are .{' or .'.join(allowed)}.j2: this file is never used",
                "warning",
            )
            return
        if self.parse(tf.path) is None:
            return
        for variant in VARIANTS:
            context = sample_context(
                tf.lint_locale, variant, public_url=self.public_url, channel=tf.channel
            )
            try:
                body, subject = self.renderer.render_file(tf.path, tf.lint_locale, context)
            except TemplateError as exc:
                # The static name check may already have said this, at this very line.
                if not any(
                    p.path == str(exc.path) and p.line == exc.line and p.level == "error"
                    for p in self.problems
                ):
                    self.add(exc.path, exc.line, f"{exc.reason} (sample data: {variant.name})")
                return
            if variant.sparse:
                continue
            self.check_rendered(tf, variant, context, body, subject)

    def check_rendered(
        self,
        tf: TemplateFile,
        variant: Variant,
        ctx: dict[str, Any],
        body: str,
        subject: str | None,
    ) -> None:
        html = tf.ext == "html"
        text = html_to_text(body) if html else _clean_text(body)
        checked = "\n".join(filter(None, [subject, text]))
        if html:
            hrefs = "\n".join(html_links(body))
            checked_with_links = f"{checked}\n{hrefs}"
            self.check_html(tf, body)
        else:
            checked_with_links = checked
        self.check_content(tf, variant, checked_with_links)
        if tf.channel in SENDER_CHANNELS:
            self.check_sender(tf, ctx, checked)
        self.check_forbidden(tf, checked)
        if tf.channel == "voice":
            self.check_voice(tf, ctx, text)
        if tf.channel == "sms":
            self.check_sms(tf, variant, text)
        if tf.channel == "letter":
            self.check_letter(tf, ctx, checked_with_links)
            self.check_urls(tf, body)
        if (tf.channel, tf.name) in self.notices:
            for what in missing_facts(ctx, checked, tf.lint_locale):
                self.add(tf.path, self.body_line(tf.path), f"validation notice is missing {what}")

    def check_content(self, tf: TemplateFile, variant: Variant, text: str) -> None:
        folded = text.casefold()
        for rule in self.config.policy.content:
            if not _applies(rule, tf, variant):
                continue
            if any(word.casefold() in folded for word in rule.any_of):
                continue
            why = rule.message or f"required by content rule {rule.id}"
            data = f", sample data: {variant.name}" if rule.when != "always" else ""
            self.add(
                tf.path,
                self.body_line(tf.path),
                f"{why}: none of {', '.join(repr(w) for w in rule.any_of)} found "
                f"(rule {rule.id}{data})",
            )

    def check_sender(self, tf: TemplateFile, ctx: dict[str, Any], text: str) -> None:
        if ctx["creditor"].name not in text:
            self.add(
                tf.path,
                self.body_line(tf.path),
                f"a {tf.channel} message must say who is writing: "
                "{{ creditor.name }} does not appear",
            )

    def check_forbidden(self, tf: TemplateFile, text: str) -> None:
        hits = list(find(text, self.forbidden))
        for hit in hits:
            if any(hit.matched != other.matched and hit.matched in other.matched for other in hits):
                continue  # '通讯录' inside '爆通讯录': one problem, the longer wording
            where = self.locate(tf.path, hit.phrase)
            path, line = where if where else (tf.path, self.body_line(tf.path))
            suffix = "" if where else " (in the rendered text)"
            self.add(
                path, line, f"forbidden wording {hit.matched!r}: {hit.phrase.category}{suffix}"
            )

    def check_voice(self, tf: TemplateFile, ctx: dict[str, Any], text: str) -> None:
        account = ctx["account"]
        amount = format_currency(
            account.balance, account.currency, locale=babel_locale(tf.lint_locale)
        )
        voicemail = tf.name.endswith("_voicemail") or bool(
            self.renderer.front_matter(tf.path).extra.get("voicemail")
        )
        part = text if voicemail else text.split("\n\n", 1)[0]
        what = (
            "a voicemail must be limited content: no mention of a debt"
            if voicemail
            else "the call mentions the debt before the person is identified (the first paragraph)"
        )
        for secret in (amount, str(account.reference)):
            if secret in part:
                self.add(tf.path, self.body_line(tf.path), f"{what}: says {secret!r}")
                return
        for hit in find(part, debt_phrases()):
            where = self.locate(tf.path, hit.phrase)
            path, line = where if where else (tf.path, self.body_line(tf.path))
            self.add(path, line, f"{what}: says {hit.matched!r}")
            return

    def check_sms(self, tf: TemplateFile, variant: Variant, text: str) -> None:
        info = segments(text)
        if info.segments <= SMS_WARN_SEGMENTS:
            return
        level = "error" if info.segments > SMS_MAX_SEGMENTS else "warning"
        earlier = self._sms_length.get(tf.path)
        if earlier is not None:
            if earlier[0] >= info.segments:
                return  # one length problem per template: the longest sample data wins
            self.problems.remove(earlier[1])
        limit = 134 if info.encoding == "UCS-2" else 306
        self.add(
            tf.path,
            self.body_line(tf.path),
            f"SMS is {info.segments} segments ({info.encoding}, {info.units} characters "
            f"with sample data: {variant.name}); keep it within {SMS_WARN_SEGMENTS} "
            f"({limit} characters), never over {SMS_MAX_SEGMENTS}",
            level,
        )
        self._sms_length[tf.path] = (info.segments, self.problems[-1])

    def check_letter(self, tf: TemplateFile, ctx: dict[str, Any], text: str) -> None:
        locale = babel_locale(tf.lint_locale)
        account, creditor = ctx["account"], ctx["creditor"]
        deadline = ctx["deadline"]
        dates = [deadline.isoformat()] + [
            format_date(deadline, f, locale=locale) for f in ("short", "medium", "long", "full")
        ]
        # A validation notice names no payment deadline: none may shadow its period.
        deadline_rule = (
            []
            if (tf.channel, tf.name) in self.notices
            else [('the payment deadline ({{ deadline | date("long") }})', dates)]
        )
        required: list[tuple[str, list[str]]] = [
            ("the debtor's name ({{ debtor.name }})", [ctx["debtor"].name]),
            (
                "the amount owed ({{ account.balance | money(account.currency) }})",
                [format_currency(account.balance, account.currency, locale=locale)],
            ),
            ("the reference number ({{ account.reference }})", [str(account.reference)]),
            *deadline_rule,
            (
                "the creditor's contact ({{ creditor.phone }})",
                [v for v in (creditor.phone, creditor.email) if v],
            ),
            ("a complaint channel ({{ creditor.complaints }})", [creditor.complaints]),
            (
                "the bank account or payment link ({{ creditor.bank_account }}, {{ pay_link }})",
                [creditor.bank_account, ctx["pay_link"]],
            ),
        ]
        for what, values in required:
            if not any(v and str(v) in text for v in values):
                self.add(tf.path, self.body_line(tf.path), f"letter is missing {what}")

    def check_urls(self, tf: TemplateFile, html: str) -> None:
        """What the printer would fetch for a letter, reported where it is written; a URL
        made by template code (``src="{{ ... }}"``) is judged as rendered with the sample
        data, and reported at the line whose pattern it matches."""
        written: set[str] = set()
        made: list[tuple[Path, int, re.Pattern[str]]] = []
        for source in self.sources(tf.path):
            text = neutralise_jinja(source.read_text(encoding="utf-8"), _CODE)
            for line, url in resource_urls(text):
                if _CODE in url:
                    parts = (re.escape(p) for p in url.split(_CODE))
                    made.append((source, line, re.compile(".*".join(parts), re.S)))
                else:
                    written.add(url)
                    self.check_url(tf, source, line, url)
        for _, url in resource_urls(html):
            if url not in written:
                source, line = next(
                    ((s, n) for s, n, p in made if p.fullmatch(url)),
                    (tf.path, self.body_line(tf.path)),
                )
                self.check_url(tf, source, line, url, " (as rendered with the sample data)")

    def check_url(self, tf: TemplateFile, path: Path, line: int, url: str, made: str = "") -> None:
        root = self.dir.resolve()
        base = root / tf.channel
        why = refusal(url, base, root)
        if why is not None:
            self.add(
                path,
                line,
                f"the printer would not load {url!r}{made}: {why}; a "
                "letter may load only files under the template directory (by a "
                "relative path) and data: URLs",
            )
            return
        absent = missing(url, base)
        if absent is not None:
            self.add(path, line, f"{url!r}{made}: no such file {absent}", "warning")

    def check_html(self, tf: TemplateFile, html: str) -> None:
        if not html_problems(html):
            return
        found = False
        for source in self.sources(tf.path):
            for line, message in html_problems(
                neutralise_jinja(source.read_text(encoding="utf-8"))
            ):
                self.add(source, line, f"HTML: {message}")
                found = True
        if not found:
            for line, message in html_problems(html)[:3]:
                self.add(
                    tf.path,
                    self.body_line(tf.path),
                    f"HTML: {message} (line {line} of the rendered HTML)",
                )


def _applies(rule: ContentRule, tf: TemplateFile, variant: Variant) -> bool:
    if tf.channel not in rule.channels:
        return False
    if rule.when == "debt_collector" and not variant.debt_collector:
        return False
    if rule.locales is not None:
        chain = [t.casefold() for t in locale_chain(tf.lint_locale)]
        if not any(loc.replace("_", "-").casefold() in chain for loc in rule.locales):
            return False
    return True


def lint_templates(
    templates_dir: Path | str,
    config: Config,
    names: Iterable[str] | None = None,
    *,
    public_url: str | None = None,
) -> list[Problem]:
    """Every problem of the templates (all, or those named ``NAME`` / ``CHANNEL/NAME``),
    errors and warnings, once each, in file and line order."""
    from orchestrator.content.preview import SAMPLE_URL

    linter = _Linter(Path(templates_dir), config, public_url or SAMPLE_URL)
    directory = Path(templates_dir)
    if not directory.is_dir():
        return [Problem(str(directory), None, None, "no such template directory")]
    wanted = list(names or [])
    files = discover(directory, wanted)
    for name in wanted:
        if not any(name.strip("/") in (f.name, f"{f.channel}/{f.name}") for f in files):
            linter.add(directory / name, None, f"no template named {name!r}")
    for tf in files:
        linter.lint(tf)
    unique = dict.fromkeys(linter.problems)
    return sorted(unique, key=lambda p: (p.path, p.line or 0, p.level, p.message))


def _column_of(path: Path, line: int | None, name: str) -> int | None:
    """The 1-based column where ``name`` is first written as a word on ``line``."""
    if not line:
        return None
    try:
        text = path.read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    found = re.search(rf"(?<![\w.]){re.escape(name)}\b", text)
    return found.start() + 1 if found else None
