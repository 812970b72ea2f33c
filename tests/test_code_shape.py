"""Functions stay short: none in ``orchestrator/`` or ``channels/`` is over 80 lines, from
its ``def`` to its last line (a function that needs a comment per block wants to be
several functions). This reads the source (``ast``), as ``test_layers`` does, so nested
functions and methods count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import ROOT  # noqa: I001

MAX_LINES = 80


def long_functions(root: Path) -> list[str]:
    """``FILE:LINE: NAME is N lines`` for every function over ``MAX_LINES``. Alembic
    migrations are left out: a released migration is history, never edited."""
    found = []
    for top in ("orchestrator", "channels"):
        for path in sorted((root / top).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_LINES:
                        found.append(
                            f"{name}:{node.lineno}: {node.name} is {lines} lines "
                            f"(at most {MAX_LINES})"
                        )
    return found


def test_no_function_is_over_80_lines() -> None:
    assert long_functions(ROOT) == []


def _copy_tree(tmp_path: Path) -> None:
    for top in ("orchestrator", "channels"):
        for path in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in path.parts:
                copy = tmp_path / path.relative_to(ROOT)
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


def _function(name: str, lines: int, indent: str = "") -> str:
    """A function of exactly ``lines`` lines."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 2))
    return f"\n\n{indent}def {name}() -> int:\n{body}{indent}    return 0\n"


@pytest.mark.parametrize(
    ("module", "text", "complaint"),
    [
        ("orchestrator/core/gate.py", _function("planted", 81), "planted is 81 lines"),
        (
            "channels/smtp.py",
            "\n\nclass Planted:" + _function("method", 90, "    "),
            "method is 90 lines",
        ),
        (
            "orchestrator/store/facts.py",
            _function("planted", 100).replace("def", "async def"),
            "planted is 100 lines",
        ),
    ],
)
def test_a_planted_long_function_is_found(
    tmp_path: Path, module: str, text: str, complaint: str
) -> None:
    """The check itself: the tree copied, one long function added, and it is named."""
    _copy_tree(tmp_path)
    planted = tmp_path / module
    planted.write_text(planted.read_text(encoding="utf-8") + text, encoding="utf-8")
    found = long_functions(tmp_path)
    assert len(found) == 1 and found[0].startswith(module) and complaint in found[0], found


def test_a_function_of_80_lines_passes(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    planted = tmp_path / "orchestrator/core/gate.py"
    planted.write_text(
        planted.read_text(encoding="utf-8") + _function("planted", 80), encoding="utf-8"
    )
    assert long_functions(tmp_path) == []
