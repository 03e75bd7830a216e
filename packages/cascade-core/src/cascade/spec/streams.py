"""What users declare about streams: generator tasks, their ``buffer``, and ``cs.fold``.

A task written as a generator (``def`` with ``yield``, or ``async def`` with ``yield``) produces
a *stream*: its items flow to the tasks mapped over it one by one, as they are yielded, rather
than as one list at the end (``cascade.runtime.streams`` runs them). ``buffer`` bounds how many
items a stream holds that no consumer has taken yet: past it, the generator is paused. A fold
consumes a stream item by item without keeping the list. Nothing here runs anything.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

#: How many items a stream holds that no consumer has taken yet, unless a task says otherwise
#: (``@cs.task(buffer=...)``). Large enough that a consumer with a few slots never waits on
#: the generator's thread hand-off; small enough that memory stays flat whatever the count.
DEFAULT_BUFFER = 100

#: How many generator tasks this process has declared: while none has, a graph without a map
#: has no stream, and a run need not look at its nodes one by one to find out.
GENERATOR_TASKS = [0]

A = TypeVar("A")
T = TypeVar("T")


def is_generator_function(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is written as a generator, sync or async: a task that streams."""
    target = inspect.unwrap(fn)
    return inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)


def check_buffer(buffer: Any, owner: str) -> int:
    """Validate ``buffer=``: a whole number of items >= 1."""
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise ValueError(
            f"{owner}: buffer= is how many items a stream holds before its generator is "
            f"paused, a whole number >= 1; got {buffer!r}"
        )
    return buffer


def check_generator_options(owner: str, **given: Any) -> None:
    """Options a generator task cannot take, refused where it is declared. Items it yielded
    have already gone downstream, so retrying it would send them twice; its value is a
    stream, so there is nothing to cache (a resumed run runs it again, and the items
    downstream of it take their checkpoints)."""
    refused = [name for name, value in given.items() if value is not None]
    if refused:
        raise TypeError(
            f"{owner} is a generator task (it yields a stream): "
            f"{', '.join(f'{name}=' for name in refused)} cannot apply to it, because items "
            "it yielded have already gone to the tasks that consume them; put retries, a cache "
            "or a fallback on the tasks mapped over its stream"
        )


def fold_items(fn: Callable[[A, T], A], items: Iterable[T], initial: A) -> A:
    """``functools.reduce`` with a start value: what a fold computes. A fold whose input is a
    stream runs item by item on the driver instead (``cascade.runtime.streams``), so this is
    what runs only when the input is a whole list."""
    return functools.reduce(fn, items, initial)
