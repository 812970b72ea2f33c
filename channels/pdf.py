"""Letters printed to PDF with WeasyPrint, for every adapter that prints (the outbox, the
print-and-mail batch) and for ``outreach templates preview``.

A letter may load files under the templates directory and ``data:`` URLs only, never
another file nor the network (``channels.pdf_assets``): a template author's
``<link rel="attachment" href="file:///proc/self/environ">`` prints nothing. WeasyPrint
is imported when the first PDF is asked for, so nothing else needs it installed.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from channels.pdf_assets import url_fetcher
from orchestrator.errors import OutreachError, PrinterUnavailable

__all__ = ["PrinterUnavailable", "cjk_font_available", "print_pdf", "render_pdf", "write_pdf"]

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


@functools.cache
def cjk_font_available() -> bool:
    """Whether fontconfig (or a usual font folder) has a font that covers Chinese. Asked
    once per process: a font installed later is seen after a restart."""
    if shutil.which("fc-list"):
        try:
            out = subprocess.run(
                ["fc-list", ":lang=zh", "family"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        return bool(out.strip())
    folders = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]
    hints = ("cjk", "wqy", "sourcehan", "notosanssc", "notoserifsc", "simsun", "droidsansfallback")
    return any(
        any(h in p.name.lower() for h in hints)
        for folder in folders
        if folder.is_dir()
        for p in folder.rglob("*")
    )


_fonts = threading.local()


def _font_config() -> Any:
    """One WeasyPrint font configuration per thread, kept for every PDF it prints. A new
    one per document (WeasyPrint's default) loads the fonts again each time: a daemon
    printing letters grew to 600 MB-1.2 GB that way, and stays under 200 MB with one."""
    config = getattr(_fonts, "config", None)
    if config is None:
        from weasyprint.text.fonts import FontConfiguration

        config = _fonts.config = FontConfiguration()
    return config


def render_pdf(html: str, *, templates_dir: Path | None, channel: str = "letter") -> Any:
    """Lay ``html`` out with WeasyPrint: a document to ``write_pdf``. It may load files
    under ``templates_dir`` only (its relative URLs start from ``<templates_dir>/<channel>/``)
    and ``data:`` URLs: never another file, nor the network (``channels.pdf_assets``).
    Chinese text needs a CJK font: without one the PDF would show empty boxes, so that is
    an error, never a silent PDF."""
    if _CJK.search(html) and not cjk_font_available():
        raise OutreachError(
            "no font with Chinese characters is installed, so the PDF would show empty "
            "boxes: install one (Debian/Ubuntu: apt-get install fonts-noto-cjk; or run "
            "`make install`) and check with `fc-list :lang=zh`"
        )
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: pango or cairo missing
        raise PrinterUnavailable(
            f"cannot print PDFs: WeasyPrint is unavailable ({exc}); "
            "pip install weasyprint, and on Debian apt-get install libpango-1.0-0"
        ) from exc
    root = templates_dir.resolve() if templates_dir is not None else None
    base = (root / channel).as_uri() + "/" if root is not None else None
    return HTML(string=html, base_url=base, url_fetcher=url_fetcher(root)).render(
        font_config=_font_config()
    )


def write_pdf(
    html: str, path: Path, *, templates_dir: Path | None, channel: str = "letter"
) -> Path:
    """Print ``html`` to ``path`` (``render_pdf``)."""
    print_pdf(html, path, templates_dir=templates_dir, channel=channel)
    return path


def print_pdf(html: str, path: Path, *, templates_dir: Path | None, channel: str = "letter") -> int:
    """``write_pdf``, returning the number of pages printed."""
    document = render_pdf(html, templates_dir=templates_dir, channel=channel)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.write_pdf(str(path))
    return len(document.pages)
