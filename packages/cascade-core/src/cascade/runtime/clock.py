"""What a task's duration measures: the time its own code ran, taken where it runs.

A call may wait before it runs (for a free thread, for the event loop to reach it) and after
it ended (for the loop to hear of it); with a wide fan-out those waits dwarf the call itself.
So the start and end of a direct-route call are written by the call itself, in its thread or
on its first step, into the plan's per-node arrays (``RunPlan.started_at``/``ended_at``); the
executors do the same for calls with a ``TaskCall`` (``TaskCall.start_time``/``end_time``).
The wrappers' own parameters are positional-only, so a task's keyword arguments pass through
whatever they are called.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any


def timed_sync(
    fn: Callable[..., Any],
    index: int,
    started: list[float],
    ended: list[float],
    /,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Call ``fn`` (in its thread), noting when it started and ended under ``index``."""
    started[index] = time.time()
    try:
        return fn(*args, **kwargs)
    finally:
        ended[index] = time.time()


async def timed_async(
    fn: Callable[..., Awaitable[Any]],
    index: int,
    started: list[float],
    ended: list[float],
    /,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Await ``fn``'s coroutine, noting when its first step ran and when it ended."""
    started[index] = time.time()
    try:
        return await fn(*args, **kwargs)
    finally:
        ended[index] = time.time()


__all__ = ["timed_async", "timed_sync"]
