"""The reference pages in docs/ keep up with the code: every command and option of the
CLI is in docs/cli.md, every decision and reason code in docs/decisions.md, every route
of the server in docs/http.md, the pages' links lead somewhere, and no file users get
cites the specification the product was built from (they never get it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import typer
from fastapi.routing import APIRoute
from support import ROOT  # noqa: I001 - tests/support.py

from orchestrator.cli import _register_all, app
from orchestrator.core.records import DecisionKind, Reason, limit_reason, pause_reason
from orchestrator.web.app import create_app

DOCS = ROOT / "docs"
# Spelled in two pieces so that this file does not match itself.
CITATION = "CONT" + "RACT §"
SHIPPED = ("orchestrator", "channels", "bench", "config", "README.md", "docs")


def _files(*names: str) -> Iterator[Path]:
    for name in names:
        path = ROOT / name
        if path.is_file():
            yield path
            continue
        for found in sorted(path.rglob("*")):
            if found.is_file() and "__pycache__" not in found.parts and found.suffix != ".pyc":
                yield found


def test_no_shipped_file_cites_the_contract() -> None:
    found = []
    for path in _files(*SHIPPED):
        text = path.read_bytes().decode("utf-8", "replace")
        for number, line in enumerate(text.splitlines(), 1):
            if CITATION in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "users have no such file; cite a docs/ page:\n" + "\n".join(found)


# --- the command line ----------------------------------------------------------------------


def _leaves(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """``("db upgrade", command)`` for every command under ``command``, groups walked.
    (Typer ships its own copy of click: its classes are told apart by what they have.)"""
    if isinstance(getattr(command, "commands", None), dict):  # a group
        for name, sub in sorted(command.commands.items()):
            yield from _leaves(sub, (*path, name))
    else:
        yield " ".join(path), command


def cli_commands() -> list[tuple[str, Any]]:
    _register_all()
    return list(_leaves(typer.main.get_command(app), ()))


def section(text: str, title: str) -> str | None:
    """The body of the Markdown section headed ``title`` (up to the next heading of the
    same or a higher level), or ``None`` if there is none."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        heading = re.match(r"(#+)\s+(.*?)\s*$", line)
        if heading is None or heading.group(2) != title:
            continue
        level = len(heading.group(1))
        body = []
        for other in lines[index + 1 :]:
            nxt = re.match(r"(#+)\s", other)
            if nxt is not None and len(nxt.group(1)) <= level:
                break
            body.append(other)
        return "\n".join(body)
    return None


def test_every_command_and_option_is_in_docs_cli() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = cli_commands()
    assert len(commands) >= 14, commands  # the walk found them
    missing = []
    for name, command in commands:
        body = section(text, f"`outreach {name}`")
        if body is None:
            missing.append(f"a section headed `outreach {name}`")
            continue
        for param in command.params:
            if param.param_type_name != "option":  # an argument
                continue
            for option in (*param.opts, *param.secondary_opts):
                if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", body):
                    missing.append(f"{option} in the section of `outreach {name}`")
    assert not missing, "docs/cli.md lacks:\n" + "\n".join(missing)


# --- decisions -----------------------------------------------------------------------------


def test_every_decision_and_reason_code_is_in_docs_decisions() -> None:
    text = (DOCS / "decisions.md").read_text(encoding="utf-8")
    codes = [
        *(str(d) for d in DecisionKind),
        *(str(r) for r in Reason),
        limit_reason("<id>"),
        pause_reason("<id>"),
    ]
    missing = [code for code in codes if f"`{code}`" not in text]
    assert not missing, f"docs/decisions.md lacks: {', '.join(missing)}"


# --- HTTP ----------------------------------------------------------------------------------


def http_routes() -> list[str]:
    """``METHOD /path`` of every route the server answers. The app is built around a
    stand-in for its ``Server``: routes are declared without touching it."""
    found = []
    app = create_app(MagicMock())
    # Routers are included as one entry each: their routes are listed from the routers.
    routes = [
        r
        for entry in app.routes
        for r in getattr(getattr(entry, "original_router", None), "routes", [entry])
    ]
    for route in routes:
        path = getattr(route, "path", None)
        if path is None:
            continue
        methods = sorted(getattr(route, "methods", None) or ())
        if not isinstance(route, APIRoute):  # the framework's own pages: their GET
            methods = [m for m in methods if m != "HEAD"]
        found += [f"{method} {path}" for method in methods]
    return found


def test_every_http_route_is_in_docs_http() -> None:
    text = (DOCS / "http.md").read_text(encoding="utf-8")
    routes = http_routes()
    assert "POST /webhooks/payments" in routes, routes
    missing = [route for route in routes if route not in text]
    assert not missing, "docs/http.md lacks:\n" + "\n".join(missing)


# --- links ---------------------------------------------------------------------------------


def _outside_code(text: str) -> Iterator[str]:
    """The lines of a Markdown text that are not in a fenced code block."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    found: set[str] = set()
    for line in _outside_code(path.read_text(encoding="utf-8")):
        heading = re.match(r"#+\s+(.*?)\s*$", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def test_links_between_the_pages_lead_somewhere() -> None:
    broken = []
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    for page in pages:
        for line in _outside_code(page.read_text(encoding="utf-8")):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+:", target):  # https:, mailto:
                    continue
                file_part, _, anchor = target.partition("#")
                linked = (page.parent / file_part).resolve() if file_part else page
                if not linked.exists():
                    broken.append(f"{page.relative_to(ROOT)}: {target}: no such file")
                elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                    broken.append(f"{page.relative_to(ROOT)}: {target}: no such heading")
    assert not broken, "\n".join(broken)


def test_every_environment_variable_is_in_the_operations_guide_and_the_example() -> None:
    """Each variable the code reads (``OUTREACH_*``, ``TWILIO_*``) is in the going-live
    guide's table and in ``deploy/env.example``; the example's lines are KEY=VALUE or
    comments, as systemd's EnvironmentFile reads them."""
    read: set[str] = set()
    for folder in ("orchestrator", "channels"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r'"((?:OUTREACH|TWILIO)_[A-Z_]+)"', path.read_text()))
    assert {"OUTREACH_DATABASE_URL", "OUTREACH_INDEX_KEY", "TWILIO_AUTH_TOKEN"} <= read
    guide = (ROOT / "docs" / "operations.md").read_text()
    table = guide[guide.index("## 11. Every environment variable") :]
    missing = sorted(name for name in read if f"`{name}`" not in table)
    assert not missing, f"docs/operations.md section 11 lacks {missing}"
    example = (ROOT / "deploy" / "env.example").read_text().splitlines()
    names = set()
    for line in example:
        if not line.strip() or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", line), line
        names.add(line.split("=", 1)[0])
    # Every variable but the one each unit sets on its command line.
    assert sorted(read - names - {"OUTREACH_WORKER_ID"}) == []
