"""The template sandbox: what a template may do, and how much (docs/templates.md §5).

Template authors are not programmers, and a template runs inside the daemon, between
claiming a batch and sending it. So a template can neither reach outside (Jinja's
immutable sandbox: no private attributes, no changing lists or mappings, no
``str.format``; files only through ``{% include %}`` under the template directory) nor
stall dispatch. Every render has bounds, each checked where the work is done:

- text: any text, list or mapping a template builds, and the message itself, holds at
  most ``MAX_TEXT`` characters (a list counts the text of everything it holds, so a list
  of the same long text many times is as long as all its copies);
- numbers: at most ``MAX_DIGITS`` digits (``9 ** 9999999`` is refused before it is
  computed: the computation alone took 19 s);
- ``range()``: at most ``MAX_RANGE`` numbers;
- work: at most ``MAX_STEPS`` steps (loop turns, calls, filters, operators...), so loops
  inside loops stop early;
- time: ``RENDER_SECONDS`` of processor time, checked at every step (the clock at every
  step, the thread's processor time once the clock says the time is up: a render that
  waited while the machine did other work has not used its time; a template that
  loops uses it).

Jinja lets a sandbox intercept operators (``intercepted_binops``: ``call_binop`` runs
instead of the operator, and intercepted operators are never folded into constants at
compile time) and calls (``call``). Filters and tests are wrapped. What Jinja does not
intercept (loop turns, list literals, ``~``, comparisons, includes) is routed through
internal filters by a rewrite of the template's syntax tree before it is compiled
(``_generate``). A step is a counter and a clock read: no thread and no signal per
render, and a template that loops nowhere pays nothing for the bounds.
"""

from __future__ import annotations

import inspect
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, _PassArg
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

MAX_TEXT = 1_000_000  # characters in any text a template builds, and in the message
MAX_PRODUCED = 4 * MAX_TEXT  # characters printed by {{ }} in one render, kept or not
MAX_DIGITS = 1000  # digits of any number a template computes
MAX_RANGE = 10_000  # numbers a range() may give
MAX_STEPS = 100_000  # loop turns, calls, filters and operators in one render
RENDER_SECONDS = 1.0  # processor time of one render
MAX_SOURCE = 256 * 1024  # bytes of one template file

_MAX_BITS = int(MAX_DIGITS * 3.33) + 1  # an int of MAX_DIGITS decimal digits
_MAX_INDENT = 16  # tojson's indent
_MAX_LINK_EXTRAS = 256  # characters urlize may add to each link (target, rel)
_LOOP, _CHECK, _TICK = "_outreach_loop", "_outreach_check", "_outreach_tick"


class TemplateLimitError(SecurityError):
    """A template went past a bound of the sandbox; the message says which, in words
    for the template's author."""


# --- the budget of one render ------------------------------------------------------------


class _Budget:
    """What one render may still do: steps, printed characters, time."""

    __slots__ = ("deadline", "produced", "seconds", "started", "steps")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.thread_time()
        self.deadline = time.monotonic() + seconds
        self.steps = 0
        self.produced = 0

    def spent(self) -> bool:
        """Whether the render has had its ``seconds`` of processor time (this thread's).
        Checked once the clock's deadline passes (the clock is cheaper to read at every
        step): when the machine was busy with other work meanwhile, the render has not
        had its time, and the deadline moves on by what it has left."""
        left = self.seconds - (time.thread_time() - self.started)
        if left > 0:
            self.deadline = time.monotonic() + left
            return False
        return True


class _Current(threading.local):
    budget: _Budget | None = None  # the render in progress on this thread


_current = _Current()


def _tick() -> None:
    """One step of the render in progress: count it and read the clock. Outside a render
    (Jinja folding constants while it compiles) it counts nothing."""
    budget = _current.budget
    if budget is None:
        return
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise TemplateLimitError(
            f"too much work: more than {MAX_STEPS:,} loop turns, calls and filters "
            "in one message (a loop inside a loop?)"
        )
    if time.monotonic() > budget.deadline and budget.spent():
        raise TemplateLimitError(
            f"the message took longer than {RENDER_SECONDS:g} s to write: stopped"
        )


def render(template: Any, values: Mapping[str, Any], seconds: float = RENDER_SECONDS) -> str:
    """``template.render(values)`` within the bounds: its output is read piece by piece
    and stopped past ``MAX_TEXT`` characters (at the template line that printed the
    piece), and every step of its code counts against ``seconds``."""
    previous = _current.budget
    _current.budget = _Budget(seconds)
    try:
        # What ``template.render`` does, with its output read by ``_drain``.
        return _drain(template.root_render_func(template.new_context(values)))
    except Exception:
        template.environment.handle_exception()  # raises it, at the template's lines
        raise
    finally:
        _current.budget = previous


def _drain(chunks: Any) -> str:
    parts: list[str] = []
    append = parts.append
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_TEXT:
            # Raised where the template is, so the error names its line.
            chunks.throw(_too_long("the message", size))
            raise _too_long("the message", size)  # (``throw`` raises it)
        append(chunk)
    return "".join(parts)


def _too_long(what: str, size: int) -> TemplateLimitError:
    return TemplateLimitError(f"{what} would be {size:,} characters long; the most is {MAX_TEXT:,}")


# --- sizes -----------------------------------------------------------------------------


def weight(value: Any, limit: int = MAX_TEXT) -> int:
    """About how many characters ``value`` prints as (``str()``, ``join``, ``tojson``),
    counting each copy of what a list holds; ``limit + 1`` as soon as it is more, so a
    walk never takes more than ``limit`` steps, whatever the value."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, int | Decimal):
            total += _digits(item) + 2
        elif isinstance(item, list | tuple | set | frozenset | dict | range):
            total += 2 * len(item) + 2
            if total <= limit and not isinstance(item, range):
                stack.extend(item.items() if isinstance(item, dict) else item)
        else:
            total += 16  # a date, a namespace: a short text of its own
        if total > limit:
            return limit + 1
    return total


def _digits(number: int | Decimal) -> int:
    if isinstance(number, Decimal):
        return max(number.adjusted(), 0) + 1 if number.is_finite() else 3
    return int(number.bit_length() / 3.32) + 1


def checked(value: Any) -> Any:
    """``value``, if it is within the bounds: text, lists and mappings of at most
    ``MAX_TEXT`` characters, numbers of at most ``MAX_DIGITS`` digits."""
    if isinstance(value, str):
        _text_of(len(value), "a text")
    elif isinstance(value, int | Decimal):
        if _digits(value) > MAX_DIGITS:
            raise _too_big(value)
    elif isinstance(value, bytes | list | tuple | set | frozenset | dict):
        _text_of(weight(value), f"a {type(value).__name__}")
    return value


def _too_big(number: int | Decimal) -> TemplateLimitError:
    return TemplateLimitError(
        f"a number of {_digits(number):,} digits is too large; the most is {MAX_DIGITS:,}"
    )


def _at_most(value: Any, most: int, what: str) -> None:
    if isinstance(value, int) and value > most:
        raise TemplateLimitError(f"{what} of {value:,} is too large; the most is {most:,}")


def _text_of(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise _too_long(what, size)


# --- operators -------------------------------------------------------------------------


def _pow(base: Any, exponent: Any) -> None:
    """``9 ** 9999999``: refused from the size of its result, before computing it."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 1 and abs(base) > 1:
        bits = (abs(base).bit_length() - 1) * exponent
        if bits > _MAX_BITS:
            raise TemplateLimitError(
                f"{base} ** {exponent} would have about {int(bits / 3.32):,} digits; "
                f"the most is {MAX_DIGITS:,}"
            )


def _mul(left: Any, right: Any) -> None:
    """``'x' * 50000000`` and ``[...] * n``: refused from the size of the result."""
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > _MAX_BITS:
            raise TemplateLimitError(f"the product would have more than {MAX_DIGITS:,} digits")
        return
    if isinstance(left, int):
        left, right = right, left
    if isinstance(right, int) and right > 1 and isinstance(left, str | bytes | list | tuple):
        each = weight(left, MAX_TEXT // right) if isinstance(left, list | tuple) else len(left)
        _text_of(each * right, f"{type(left).__name__} * {right:,}")


# %-formatting: "%0999999d" % 1 is a long text made of a short one.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _printf(template: Any) -> None:
    if not isinstance(template, str):
        return
    for width, precision in _PRINTF.findall(template):
        for number in (width, precision):
            if number == "*" or len(number) > 6 or (number and int(number) > MAX_TEXT):
                raise TemplateLimitError(
                    f"a % format width of {number} is too large; the most is {MAX_TEXT:,}"
                )


def _mod(left: Any, right: Any) -> None:
    _printf(left)


_BEFORE: Mapping[str, Callable[[Any, Any], None]] = {"**": _pow, "*": _mul, "%": _mod}


# --- method calls ------------------------------------------------------------------------


def _width(text: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    _at_most(args[0] if args else kwargs.get("width"), MAX_TEXT, "a width")


def _expandtabs(text: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    size = args[0] if args else kwargs.get("tabsize", 8)
    tabs = text.count("\t") if isinstance(text, str) else text.count(b"\t")
    if isinstance(size, int):
        _text_of(len(text) + tabs * size, "the text with its tabs expanded")


def _replaced(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    """How long ``text.replace(old, new)`` would be, from the number of replacements."""
    if not isinstance(text, str | bytes) or not isinstance(old, type(text)):
        return
    counted: Any = text  # str or bytes, and ``old`` of the same type
    times = counted.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    _text_of(len(text) + times * (len(new) - len(old)), "the text after replace")


def _replace(text: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if len(args) >= 2:
        _replaced(text, *args[:3])


def _join(sep: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    items = args[0] if args else ()
    if isinstance(items, list | tuple):
        size = weight(items) + len(sep) * len(items)
        _text_of(size, "the joined text")
    else:  # an iterator: it cannot be measured without being used up
        raise TemplateLimitError("join needs a list here (add | list before it)")


def _to_bytes(number: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    _at_most(args[0] if args else kwargs.get("length", 1), MAX_TEXT, "a length")


def _refused(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    raise TemplateLimitError("this method is not available in templates")


_METHODS: Mapping[str, Callable[[Any, tuple[Any, ...], Mapping[str, Any]], None]] = {
    "ljust": _width,
    "rjust": _width,
    "center": _width,
    "zfill": _width,
    "expandtabs": _expandtabs,
    "replace": _replace,
    "join": _join,
    "to_bytes": _to_bytes,
    "translate": _refused,
    "maketrans": _refused,
}


def _method_bounds(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """A method of a text, bytes or number that makes a long result from short
    arguments (``'x'.ljust(10**9)``) is refused from its arguments."""
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, str | bytes | int) and not isinstance(owner, bool):
        check = _METHODS.get(getattr(obj, "__name__", ""))
        if check is not None:
            check(owner, args, kwargs)


# --- filters and tests -------------------------------------------------------------------


def _pre_center(a: dict[str, Any]) -> None:
    _at_most(a.get("width", 80), MAX_TEXT, "a center width")


def _pre_indent(a: dict[str, Any]) -> None:
    text, width = str(a["s"]), a.get("width", 4)
    each = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _text_of(len(text) + (text.count("\n") + 1) * each, "the indented text")


def _pre_wordwrap(a: dict[str, Any]) -> None:
    text, wrap = str(a["s"]), a.get("wrapstring") or "\n"
    _text_of(len(text) + (len(text) + 1) * len(wrap), "the wrapped text")


def _pre_replace(a: dict[str, Any]) -> None:
    count = a.get("count")
    _replaced(str(a["s"]), str(a["old"]), str(a["new"]), -1 if count is None else count)


def _pre_format(a: dict[str, Any]) -> None:
    _printf(a["value"])


def _pre_join(a: dict[str, Any]) -> None:
    if not isinstance(a["value"], list | tuple):
        a["value"] = list(a["value"])  # the items of a map or select: counted once
    _join(str(a.get("d", "")), (a["value"],), {})


def _pre_count(name: str, what: str) -> Callable[[dict[str, Any]], None]:
    def check(a: dict[str, Any]) -> None:
        _at_most(a.get(name), MAX_RANGE, what)

    return check


def _pre_tojson(a: dict[str, Any]) -> None:
    indent = a.get("indent")
    size = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    _at_most(size, _MAX_INDENT, "an indent")


def _pre_urlize(a: dict[str, Any]) -> None:
    extra = sum(len(str(a.get(k) or "")) for k in ("target", "rel"))
    _at_most(extra, _MAX_LINK_EXTRAS, "the text added to each link")


_FILTER_BOUNDS: Mapping[str, Callable[[dict[str, Any]], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "wordwrap": _pre_wordwrap,
    "replace": _pre_replace,
    "format": _pre_format,
    "join": _pre_join,
    "batch": _pre_count("linecount", "a batch size"),
    "slice": _pre_count("slices", "a number of slices"),
    "tojson": _pre_tojson,
    "urlize": _pre_urlize,
}


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts as a step, is refused from its arguments when it would make
    a long result from short ones (``'x' | center(10**9)``), and whose result is
    ``checked``. Jinja's markers (``pass_context``...) are kept by ``wraps``."""
    before = _FILTER_BOUNDS.get(name)
    bind = _binder(func) if before is not None else None

    @wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if bind is not None and before is not None:
            skip, bound = bind(args, kwargs)
            before(bound.arguments)
            args, kwargs = (*args[:skip], *bound.args), bound.kwargs
        return checked(func(*args, **kwargs))

    return bounded


def _binder(
    func: Callable[..., Any],
) -> Callable[[tuple[Any, ...], dict[str, Any]], tuple[int, inspect.BoundArguments]]:
    """Binds a filter's arguments to the names its own function gives them: Jinja
    registers some filters through a wrapper that takes one more argument first (the
    evaluation context) than the function it calls, which is skipped."""
    target = inspect.unwrap(func)
    skip = (_PassArg.from_obj(func) is not None) - (_PassArg.from_obj(target) is not None)
    signature = inspect.signature(target)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, inspect.BoundArguments]:
        return skip, signature.bind(*args[skip:], **kwargs)

    return bind


def _counted_test(func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def counted(*args: Any, **kwargs: Any) -> Any:
        _tick()
        return func(*args, **kwargs)

    return counted


# --- what Jinja does not intercept ---------------------------------------------------------


def _loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, a step each (``{% for %}`` over anything, ``range`` or a text)."""
    for item in iterable:
        _tick()
        yield item


def _check(value: Any) -> Any:
    """A list or mapping literal, a ``~`` or a comparison: a step, and a bounded value."""
    _tick()
    return checked(value)


def _tick_through(value: Any) -> Any:
    """An include's or import's template name: a step (a template that includes itself
    twice would double its work at each level, with no loop or call to count)."""
    _tick()
    return value


def bounded_range(*args: int) -> range:
    """``range()`` of at most ``MAX_RANGE`` numbers."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimitError(
            f"range() of {len(numbers):,} numbers is too long; the most is {MAX_RANGE:,}"
        )
    return numbers


class _Namespace(Namespace):
    """``namespace()``, which prints as a short text whatever it holds: it may be changed
    after a list took it in (``{% set ns.x = ... %}``), so its size cannot be counted
    once for all."""

    def __repr__(self) -> str:
        return "<namespace>"


def _through(node: Any, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Guard(NodeTransformer):
    """Routes what Jinja does not intercept through the internal filters above."""

    def _checked(self, node: nodes.Node) -> nodes.Node:
        node = self.generic_visit(node)
        assert isinstance(node, nodes.Expr)
        return _through(node, _CHECK)

    visit_List = visit_Dict = visit_Concat = visit_Compare = _checked

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        return self._checked(node) if node.ctx == "load" else self.generic_visit(node)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _through(node.iter, _LOOP)
        return node

    def _named(self, node: nodes.Node) -> nodes.Node:
        node = self.generic_visit(node)
        node.template = _through(node.template, _TICK)  # type: ignore[attr-defined]
        return node

    visit_Include = visit_Import = visit_FromImport = visit_Extends = _named


# --- the environment ------------------------------------------------------------------------


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox within the bounds of this module, with its per-access
    safety check remembered by (type, attribute): the answer depends on nothing else,
    and templates read the same few attributes all day."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_printed, **options)
        self._safe: dict[tuple[type, str], bool] = {}
        self.globals["range"] = bounded_range
        self.globals["namespace"] = _Namespace
        del self.globals["lipsum"]  # lorem ipsum of any length: nothing a debtor should read
        self.filters = {k: _bounded_filter(k, f) for k, f in self.filters.items()}
        self.filters.update({_LOOP: _loop, _CHECK: _check, _TICK: _tick_through})
        tests: Mapping[str, Any] = self.tests
        self.tests = {k: _counted_test(t) for k, t in tests.items()}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            safe = self._safe[key] = super().is_safe_attribute(obj, attr, value)
        return safe

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        before = _BEFORE.get(operator)
        if before is not None:
            before(left, right)
        return checked(self.binop_table[operator](left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        if isinstance(obj, types.BuiltinMethodType | types.MethodType):
            _method_bounds(obj, args, kwargs)
        return checked(super().call(context, obj, *args, **kwargs))

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(argument) is slice:
            _tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'{:>999999999}'.format(x)`` makes any length from a short text: refused, as
        ``text.format`` is of no use to a template (``~`` joins texts). Asked at every
        attribute read, so what is not a method is let through first."""
        kind = type(value)
        if kind is not types.BuiltinMethodType and kind is not types.MethodType:
            return None
        return None if super().wrap_str_format(value) is None else _refused_format

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """What a macro, ``{% set %}`` block or block call wrote, joined, at most
        ``MAX_TEXT`` characters: measured before it is joined."""
        pieces = parts if isinstance(parts, list) else list(parts)
        _text_of(sum(map(len, pieces)), "the text")
        return "".join(pieces)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        """Jinja's hook before code generation (its docs say it may be overridden): the
        template's tree, with what Jinja does not intercept routed through ``_Guard``."""
        source = _Guard().visit(source)
        source.set_environment(self)
        return super()._generate(source, name, filename, defer_init)


def _refused_format(*args: Any, **kwargs: Any) -> str:
    raise TemplateLimitError("text.format() is not available in templates; join texts with ~")


def _printed(value: Any) -> Any:
    """Each ``{{ }}`` counts its characters against ``MAX_PRODUCED``, whether it goes into
    the message or into a macro's or ``{% set %}`` block's text that may be dropped: a
    loop could otherwise pile up copies of a long text there before they are joined."""
    budget = _current.budget
    if budget is not None:
        kind = type(value)
        budget.produced += len(value) if kind is str or kind is Markup else weight(value)
        if budget.produced > MAX_PRODUCED:
            raise TemplateLimitError(f"the template printed more than {MAX_PRODUCED:,} characters")
    return value
