"""YAML aliases within bounds: no "billion laughs" in a config, scenario or front matter.

An alias is a reference, so a file of a few lines can stand for billions of nodes
(``a1: &a1 [*a0, *a0, ...]`` nine levels deep): loading is cheap, but everything that
walks the result (validation, ``_plain`` copies, interpolation) expands it, and a 40-line
``creditors.yaml`` took seconds and 160 MB before a single error was reported.
``check_aliases`` reads the file's parse events once, before it is loaded: it counts the
alias uses and the nodes they stand for (an anchor's size includes the aliases inside
it, so a nested bomb is measured without being built), and refuses the file at the
first alias past either bound. Anchors used as intended (shared defaults, ``<<:``
merges) stay far below both.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    ScalarEvent,
)

MAX_ALIASES = 100  # alias uses in one file
MAX_ALIAS_NODES = 10_000  # nodes the aliases of one file stand for, all together


@dataclass(frozen=True)
class AliasProblem:
    line: int  # 1-based, of the alias past the bound
    column: int
    message: str


def check_aliases(text: str) -> AliasProblem | None:
    """The first alias past ``MAX_ALIASES`` uses or ``MAX_ALIAS_NODES`` expanded nodes, or
    ``None``. Syntax errors are left to the loader, which reports them with their place."""
    if "*" not in text:  # no alias at all: the usual case costs one scan
        return None
    count = _AliasCount()
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, AliasEvent) and not count.alias(event.anchor):
                mark = event.start_mark
                return AliasProblem(mark.line + 1, mark.column + 1, count.message())
            count.visit(event)
    except YAMLError:
        return None
    return None


class _AliasCount:
    """Nodes per anchor and per open collection, as the parse events go by."""

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}  # anchor -> nodes it stands for
        self.open: list[tuple[str | None, int]] = []  # (anchor, nodes so far) per collection
        self.uses = self.expanded = 0

    def alias(self, anchor: str) -> bool:
        """Count an alias use; ``False`` once past a bound."""
        size = self.sizes.get(anchor, 1)
        self.uses += 1
        self.expanded += size
        self._add(None, size)
        return self.uses <= MAX_ALIASES and self.expanded <= MAX_ALIAS_NODES

    def visit(self, event: object) -> None:
        if isinstance(event, CollectionStartEvent):
            self.open.append((event.anchor, 1))
        elif isinstance(event, CollectionEndEvent):
            self._add(*self.open.pop())
        elif isinstance(event, ScalarEvent):
            self._add(event.anchor, 1)

    def _add(self, anchor: str | None, size: int) -> None:
        if anchor is not None:
            self.sizes[anchor] = size
        if self.open:
            parent, nodes = self.open[-1]
            self.open[-1] = (parent, nodes + size)

    def message(self) -> str:
        if self.uses > MAX_ALIASES:
            return (
                f"too many YAML aliases: more than {MAX_ALIASES} uses of anchors "
                "(*name) in one file; write the values out"
            )
        return (
            f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} values (an alias "
            "of an alias of ...): write the values out"
        )
