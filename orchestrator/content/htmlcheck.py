"""Is an email's or a letter's HTML well formed? (``outreach templates lint``)

Mail clients and WeasyPrint forgive broken HTML in different ways, so a tag left open
can swallow the footer with the opt-out in one client and not in another. The check is
strict and simple: every element other than the void ones (``br``, ``img``...) is
closed, in order, and no tag is left unterminated. It runs on the rendered HTML and,
to find the line, on the template sources with the Jinja code blanked out.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)


def neutralise_jinja(source: str, mark: str = "") -> str:
    """The source with every ``{{ }}``, ``{% %}`` and ``{# #}`` blanked (or replaced by
    ``mark``, to tell where template code was), lines kept."""
    return _JINJA.sub(lambda m: mark + "\n" * m.group(0).count("\n"), source)


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.problems: list[tuple[int, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)
        if tag not in VOID:
            self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        line = self.getpos()[0]
        if tag in VOID:
            return
        if not any(open_tag == tag for open_tag, _ in self.stack):
            self.problems.append((line, f"</{tag}> closes no open <{tag}>"))
            return
        while self.stack:
            open_tag, opened = self.stack.pop()
            if open_tag == tag:
                return
            self.problems.append(
                (
                    opened,
                    f"<{open_tag}> opened on line {opened} is not closed before "
                    f"</{tag}> on line {line}",
                )
            )

    def finish(self) -> None:
        rest = self.rawdata[self.rawdata.find("<") :] if "<" in self.rawdata else ""
        if rest.strip():
            line = self.getpos()[0]
            self.problems.append((line, f"unterminated tag {rest.strip()[:30]!r}"))
        self.close()
        for tag, opened in reversed(self.stack):
            self.problems.append((opened, f"<{tag}> opened on line {opened} is never closed"))


def _run(html: str) -> _Checker:
    checker = _Checker()
    checker.feed(html)
    checker.finish()
    return checker


def html_problems(html: str) -> list[tuple[int, str]]:
    """(line, message) for each way ``html`` is not well formed; empty when it is."""
    return sorted(_run(html).problems)


def html_links(html: str) -> list[str]:
    """Every ``href`` of a link, in order."""
    return _run(html).links
