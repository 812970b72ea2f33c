"""What a letter may load when it is printed: files under the template directory
(images, fonts, stylesheets) and ``data:`` URLs. Nothing else: no other file, no network.

WeasyPrint fetches every URL a letter names (``<img src>``, ``<link href>``: a stylesheet,
or an attachment it embeds in the PDF; CSS ``url()`` and ``@import``), by default with
urllib: ``<link rel="attachment" href="file:///proc/self/environ">`` put the daemon's
environment, its keys included, into every PDF sent to the print vendor, and
``http://`` reached the network. ``url_fetcher`` is what the printer uses instead: it
reads a file only once its path, symbolic links and ``..`` resolved, is under the
template directory. ``resource_urls`` and ``refusal`` let ``outreach templates lint``
report, at their line, the URLs the printer would refuse.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

MAX_ASSET = 20 * 1024 * 1024  # bytes of one image or font

# Attributes whose URL the printer fetches (``href`` only on these elements, or on any
# element that is an attachment: ``<a rel="attachment" href>``).
_URL_ATTRIBUTES = frozenset({"src", "data", "poster", "background", "xlink:href"})
_HREF_ELEMENTS = frozenset({"link", "image", "use", "feimage", "base"})
_CSS_URL = re.compile(
    r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))\s*\)"""
    r"""|@import\s+(?:"([^"]*)"|'([^']*)')""",
    re.I,
)


def inside(url: str, root: Path) -> Path | None:
    """The regular file a ``file:`` URL names, if it is under ``root`` once symbolic
    links and ``..`` are resolved (``%2e%2e`` too: the path is decoded first); else
    ``None``. A host other than this one (``file://server/...``) is never inside."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        return None
    try:
        path = Path(url2pathname(parts.path)).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    return path if path.is_relative_to(root.resolve()) and path.is_file() else None


def refusal(url: str, base: Path, root: Path) -> str | None:
    """Why the printer would refuse ``url`` as written in a template whose relative URLs
    start from ``base``, with ``root`` the template directory; ``None`` if it would use
    it (a missing file under ``root`` is not refused: it is only missing)."""
    absolute = urljoin(base.resolve().as_uri() + "/", url.strip())
    parts = urlsplit(absolute)
    scheme = parts.scheme.lower()
    if scheme == "data":
        return None
    if scheme in ("http", "https", "ftp", "ftps", "ws", "wss"):
        return "it is on the network"
    if scheme != "file":
        return f"it is a {scheme}: URL"
    if parts.netloc not in ("", "localhost"):
        return "it is a file on another host"
    try:
        resolved = Path(url2pathname(parts.path)).resolve()
    except (OSError, RuntimeError, ValueError):
        return "its path cannot be resolved"
    if not resolved.is_relative_to(root.resolve()):
        return "it is a file outside the template directory"
    return None


def missing(url: str, base: Path) -> Path | None:
    """The file a URL the printer would use names, if it is not there."""
    absolute = urljoin(base.resolve().as_uri() + "/", url.strip())
    if urlsplit(absolute).scheme.lower() != "file":
        return None
    path = Path(url2pathname(urlsplit(absolute).path))
    return None if path.is_file() else path


def _read(path: Path) -> bytes:
    """The file's bytes: a regular file (a FIFO would block the printer), not swapped for
    a symbolic link since it was resolved, and not too large."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ASSET:
            raise ValueError(f"{path.name}: not a regular file of at most {MAX_ASSET} bytes")
        return file.read(MAX_ASSET + 1)


@functools.cache
def _fetcher_class() -> type:
    """WeasyPrint's fetcher, restricted (imported here: WeasyPrint needs pango, and only
    printing needs WeasyPrint). WeasyPrint asks its fetcher for ``_fail_on_errors``, so
    ours is a subclass, not a function; a refusal raises, which WeasyPrint logs and
    prints without the resource (an attachment is left out)."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class TemplateFetcher(URLFetcher):  # type: ignore[misc]
        def __init__(self, root: Path | None) -> None:
            super().__init__(allowed_protocols=("data",))
            self.root = root

        def fetch(self, url: str, headers: Any = None) -> Any:
            scheme = url.split(":", 1)[0].lower()
            if scheme == "data":
                return super().fetch(url, headers)
            path = inside(url, self.root) if self.root is not None else None
            if path is None:
                raise ValueError(
                    f"refused {url[:200]!r}: a letter may load only files "
                    "under the template directory and data: URLs"
                )
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, body=_read(path), headers={"Content-Type": kind})

    return TemplateFetcher


def url_fetcher(root: Path | None) -> Any:
    """A WeasyPrint ``url_fetcher`` that serves files under ``root`` and ``data:`` URLs
    only (``root`` ``None``: ``data:`` URLs only)."""
    return _fetcher_class()(root)


class _Finder(HTMLParser):
    """The URLs of an HTML text that a printer fetches, with their lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line, raw = self.getpos()[0], self.get_starttag_text() or ""
        rel = (dict(attrs).get("rel") or "").lower().split()
        for name, value in attrs:
            if value is None:
                continue
            if name in _URL_ATTRIBUTES or (
                name == "href" and (tag in _HREF_ELEMENTS or "attachment" in rel)
            ):
                self._add(line, raw, value)
            elif name == "srcset":
                for candidate in value.split(","):
                    self._add(line, raw, candidate.strip().split(" ")[0])
            elif name == "style":
                self._css(line, raw, value)
        self._style = tag == "style"

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        self._style = False

    def handle_data(self, data: str) -> None:
        if self._style:
            self._css(self.getpos()[0], data, data)

    def _css(self, line: int, raw: str, css: str) -> None:
        for m in _CSS_URL.finditer(css):
            self._add(line, raw, next((g for g in m.groups() if g is not None), ""))

    def _add(self, line: int, raw: str, url: str) -> None:
        if url.strip():
            at = raw.find(url)
            self.found.append((line + (raw.count("\n", 0, at) if at > 0 else 0), url))


def resource_urls(html: str) -> list[tuple[int, str]]:
    """(line, URL) of every URL in ``html`` that a printer would fetch: ``src``,
    ``<link href>``, an attachment's ``href``, ``srcset``, CSS ``url()`` and ``@import``
    in ``<style>`` and ``style=``. Links to follow (``<a href>``) are not fetched."""
    finder = _Finder()
    finder.feed(html)
    finder.close()
    return finder.found
