"""Pages of work run with Python's cyclic garbage collector held off.

A planning page builds hundreds of thousands of short-lived objects (rows, accounts,
their states, occurrences), freed by reference counting as soon as the page is done.
While they live, the collector (run every 700 allocations) walks them again and again:
a quarter of a planning round's time (100,000 accounts: 2.7 s of 11.3 s). So the
collector is held off while a page runs, and runs as usual after it, when the page's
objects are gone. Pages held at once, in several threads or nested, share one count:
the collector comes back when the last is done, and only if it was on before the first.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_held"]

_lock = threading.Lock()
_held = 0
_was_enabled = False


@contextmanager
def collector_held() -> Iterator[None]:
    """Hold the cyclic collector off for the duration of the block."""
    global _held, _was_enabled
    with _lock:
        if _held == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _held += 1
    try:
        yield
    finally:
        with _lock:
            _held -= 1
            if _held == 0 and _was_enabled:
                gc.enable()
