"""The one owner of a run's work in flight, like an ``asyncio.TaskGroup`` for a run.

Every future a run starts is registered here: direct-route calls (future → node), the
coroutines running policy chains, and work the run cannot stop but must outlive (a thread
whose attempt timed out or was cancelled, the teardown of resources such a thread still
uses). ``close`` is the run's one cancel-all and wait-all: it cancels what can be stopped,
waits for everything, and finishes even when it is cancelled again meanwhile (it reports
that, so the run raises the cancellation once it has cleaned up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cascade.graph.build import Node


class RunScope:
    """Work in flight for one run; see the module docstring."""

    __slots__ = ("calls", "runners", "unstoppable")

    def __init__(self) -> None:
        #: Direct-route calls in flight: future → node.
        self.calls: dict[asyncio.Future[Any], Node] = {}
        #: Coroutines running a node's policy chain: task → node (always stoppable).
        self.runners: dict[asyncio.Future[Any], Node] = {}
        #: Work that cannot be stopped and that nobody waits for any more; the run ends
        #: only once it has.
        self.unstoppable: set[asyncio.Future[Any]] = set()

    def outlive(self, future: asyncio.Future[Any]) -> None:
        """The run waits for ``future`` before it ends, though nobody awaits it any more (its
        outcome is retrieved, so asyncio does not report it as never retrieved)."""
        if future in self.unstoppable:
            return
        self.unstoppable.add(future)
        future.add_done_callback(self.unstoppable.discard)
        future.add_done_callback(retrieve)

    def __bool__(self) -> bool:
        return bool(self.calls or self.runners or self.unstoppable)

    async def close(self, can_stop: Callable[[asyncio.Future[Any], Node], bool]) -> bool:
        """Cancel every runner and every call ``can_stop`` says cancelling stops, and wait
        for all of it. Returns whether this was cancelled meanwhile: it finishes first."""
        cancelled = False
        while self:
            for future in self.runners:
                future.cancel()
            for future, node in self.calls.items():
                if can_stop(future, node):
                    future.cancel()
            waiting = set(self.calls) | set(self.runners) | self.unstoppable
            try:
                await asyncio.wait(waiting)
            except asyncio.CancelledError:
                cancelled = True
                continue  # cancelled again while cleaning up: finish cleaning up first
            for future in waiting:
                if future.done():
                    self.calls.pop(future, None)
                    self.runners.pop(future, None)
                    self.unstoppable.discard(future)
        return cancelled


def retrieve(future: asyncio.Future[Any]) -> None:
    """Fetch the outcome of work nobody waits for any more, so asyncio does not report it as
    "never retrieved": the attempt it belonged to already failed or was cancelled."""
    if not future.cancelled():
        future.exception()


__all__ = ["RunScope", "retrieve"]
