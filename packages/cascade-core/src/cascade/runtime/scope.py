"""The one owner of a run's work in flight, like an ``asyncio.TaskGroup`` for a run.

Every future a run starts is registered here: direct-route calls (future → node), the
coroutines running policy chains, and work the run cannot stop but must outlive (a thread
whose attempt timed out or was cancelled, the teardown of resources such a thread still
uses). ``close`` is the run's one cancel-all and wait-all: it cancels what can be stopped,
waits for everything, and finishes even when it is cancelled again meanwhile (it reports
that, so the run raises the cancellation once it has cleaned up). Parts of the runtime that
start work of their own (a map's items, an attempt's submitted call) stop it with the same
``finish``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
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

    async def close(
        self,
        can_stop: Callable[[asyncio.Future[Any], Node], bool],
        unheard: Callable[[asyncio.Future[Any]], None],
    ) -> bool:
        """Cancel every runner and every call ``can_stop`` says cancelling stops, and wait
        for all of it. A call still here once it ended was never heard of (one that settles
        itself, cancelled before its first step): ``unheard`` settles it. Returns whether
        this was cancelled meanwhile: it finishes first."""
        cancelled = False
        while self:  # work may be added while it waits (a thread's resources closing)
            for future in self.runners:
                future.cancel()
            for future, node in self.calls.items():
                if can_stop(future, node):
                    future.cancel()
            waiting = set(self.calls) | set(self.runners) | self.unstoppable
            cancelled = await finish(waiting, cancel=False) or cancelled
            try:
                # One pass for the done callbacks already scheduled (they report each call
                # and take it out), so none finds its call gone.
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                cancelled = True
            for future in waiting:
                if future in self.calls:
                    unheard(future)
                self.calls.pop(future, None)
                self.runners.pop(future, None)
                self.unstoppable.discard(future)
        return cancelled


async def finish(futures: Collection[asyncio.Future[Any]], cancel: bool) -> bool:
    """Cancel ``futures`` (when ``cancel``) and wait until every one has ended, however
    often this is cancelled meanwhile. Returns whether it was: the caller raises
    ``CancelledError`` once it has cleaned up."""
    pending = [future for future in futures if not future.done()]
    if cancel:
        for future in pending:
            future.cancel()
    cancelled = False
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True  # cancelled again while the work stops: it still must stop
        pending = [future for future in pending if not future.done()]
    return cancelled


def retrieve(future: asyncio.Future[Any]) -> None:
    """Fetch the outcome of work nobody waits for any more, so asyncio does not report it as
    "never retrieved": the attempt it belonged to already failed or was cancelled."""
    if not future.cancelled():
        future.exception()


__all__ = ["RunScope", "finish", "retrieve"]
