"""The layers of the code show in its folders, and the imports keep to them.

Each package of ``orchestrator/`` (and ``channels/``) has a rank: it may import only
packages of a lower rank (and itself). The decision core imports no database, web, CLI,
provider or printing library. Module-level imports form no cycle. This reads the source
(``ast``), so a violation fails here whatever the tests import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT  # noqa: I001

# Lowest first: a package may import those before it, never those after.
RANKS = [
    ("orchestrator", "orchestrator.errors", "orchestrator.clock"),
    (
        "orchestrator.config.models",
        "orchestrator.config.yamlsafe",
        "orchestrator.config.deployment",
    ),
    ("orchestrator.core",),
    ("channels", "orchestrator.config.settings"),
    ("orchestrator.content",),
    ("orchestrator.config.loading",),
    ("orchestrator.store",),
    ("orchestrator.ingest",),
    ("orchestrator.dispatch",),
    ("orchestrator.reporting",),
    ("orchestrator.simulation",),
    ("orchestrator.testing",),
    ("orchestrator.web",),
    ("orchestrator.cli",),
    ("orchestrator.__main__",),
]
RANK = {unit: rank for rank, units in enumerate(RANKS) for unit in units}
# What the pure core must never import, directly or by a function-level import.
NOT_IN_CORE = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "uvicorn",
    "typer",
    "rich",
    "httpx",
    "requests",
    "twilio",
    "weasyprint",
    "jinja2",
    "aiosmtpd",
    "smtplib",
    "subprocess",
    "socket",
)


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str | None:
    """The layer a module belongs to (a package, or a module of its own rank)."""
    for unit in sorted(RANK, key=len, reverse=True):
        if module == unit or (module.startswith(unit + ".") and unit != "orchestrator"):
            return unit
    if module.startswith("orchestrator.config"):
        return "orchestrator.config.models"  # the package itself
    return None


def _sources(root: Path) -> Iterator[tuple[str, Path]]:
    for top in ("orchestrator", "channels"):
        for path in sorted((root / top).rglob("*.py")):
            if "migrations" not in path.parts:
                yield _module(path, root), path


def _imports(path: Path, *, module_level_only: bool = False) -> Iterator[str]:
    """Every module a file imports (``from a import b`` gives ``a`` and ``a.b``);
    with ``module_level_only``, those run on import (not inside functions, nor under
    ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def layer_violations(root: Path) -> list[str]:
    found: dict[tuple[str, str], str] = {}  # one line per module and layer it reaches
    for module, path in _sources(root):
        unit = _unit(module)
        assert unit is not None, f"{module} belongs to no layer: add it to RANKS"
        for imported in sorted(set(_imports(path))):
            target = _unit(imported)
            if target is not None and target != unit and RANK[target] > RANK[unit]:
                found.setdefault(
                    (module, target),
                    f"{module} imports {imported} (layer {target} is above {unit})",
                )
            top = imported.split(".")[0]
            if unit == "orchestrator.core" and top in NOT_IN_CORE:
                found.setdefault(
                    (module, top), f"{module} imports {imported}: the core does no I/O"
                )
    return sorted(found.values())


def import_cycles(root: Path) -> list[list[str]]:
    """Cycles among the modules' module-level imports (depth-first search)."""
    modules = dict(_sources(root))
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        graph[module] = {
            m for m in _imports(path, module_level_only=True) if m in modules and m != module
        }
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_every_package_imports_only_the_layers_below_it() -> None:
    assert layer_violations(ROOT) == []


def test_module_level_imports_have_no_cycle() -> None:
    assert import_cycles(ROOT) == []


def test_orchestrator_holds_only_its_layers_and_the_shared_modules() -> None:
    flat = sorted(p.name for p in (ROOT / "orchestrator").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "clock.py", "errors.py"]


@pytest.mark.parametrize(
    ("module", "line", "complaint"),
    [
        ("orchestrator/core/gate.py", "import sqlalchemy\n", "the core does no I/O"),
        ("orchestrator/core/rules.py", "from orchestrator.store import facts\n", "is above"),
        ("orchestrator/store/facts.py", "from orchestrator.web import app\n", "is above"),
        ("channels/smtp.py", "from orchestrator.dispatch import runner\n", "is above"),
    ],
)
def test_a_planted_violation_is_found(
    tmp_path: Path, module: str, line: str, complaint: str
) -> None:
    """The check itself: the tree copied, one forbidden import added, and it is named."""
    for top in ("orchestrator", "channels"):
        for path in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in path.parts:
                copy = tmp_path / path.relative_to(ROOT)
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    planted = tmp_path / module
    planted.write_text(planted.read_text(encoding="utf-8") + line, encoding="utf-8")
    found = layer_violations(tmp_path)
    assert len(found) == 1 and complaint in found[0], found


def test_a_planted_cycle_is_found(tmp_path: Path) -> None:
    for name, text in (
        ("a.py", "from orchestrator.core import b\n"),
        ("b.py", "from orchestrator.core import a\n"),
    ):
        path = tmp_path / "orchestrator" / "core" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert import_cycles(tmp_path) == [
        ["orchestrator.core.a", "orchestrator.core.b", "orchestrator.core.a"]
    ]
