"""``cs.fold``: consume a stream item by item into one value, without keeping the list.

``fold(fn, stream, initial)`` is a call of the built-in ``fold`` task. Over a stream (a
generator task's call, or a ``.map``) it is pipelined: ``fn`` is applied to each item in item
order as soon as the items before it are in, on the driver's event loop, and each item is let
go once folded, so a stream → map → map → fold chain runs in memory that does not grow with the
number of items (``cascade.runtime.streams``). Over a plain list it is ``functools.reduce``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cascade.spec.streams import fold_items
from cascade.spec.task import LazyResult, Task

A = TypeVar("A")

#: The task every ``cs.fold`` calls: named ``fold`` in events, graphs and records.
FOLD: Task[..., Any] = Task(fold_items, name="fold")
FOLD.streams = True  # always on the policy route, where a stream input is pipelined


def fold(fn: Callable[[A, Any], A], stream: Any, initial: A) -> LazyResult[A]:
    """Fold ``stream`` into one value: ``fn(fn(fn(initial, item0), item1), ...)``, item by
    item in item order, keeping only the running value (``functools.reduce`` with a start).

    ``stream`` is a generator task's call or a ``.map`` (pipelined: each item is folded as it
    arrives and then let go), or any list. ``fn`` runs on the driver's event loop, so keep it
    quick (add, count, update a dict, write a line); put slow work in a mapped stage before
    it. ``initial`` may be a LazyResult. With ``on_failure="continue"``, a fold whose input has
    a failed item does not run (its task is skipped as upstream-failed)."""
    if not callable(fn):
        raise TypeError(f"cs.fold() takes a function of (running value, item), got {fn!r}")
    if isinstance(fn, Task):
        raise TypeError(
            f"cs.fold() takes a plain function, got task '{fn.name}': fold calls it once per "
            f"item on the driver; to run the work as tasks, map it first ({fn.name}.map(...)) "
            "and fold the results"
        )
    return FOLD(fn, stream, initial)
