"""Concurrency limits: a counting slot limit whose waiters are served in order.

Used for the run-wide ``max_concurrency`` and for each task's ``concurrency``. A released slot
passes straight to the next waiter; waiters are plain callbacks so the scheduler can queue a
node instead of parking a coroutine for it, and nothing here ever runs a waiter's work inside
``release`` (that is what once made a wide fan-out recurse on failure).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Limiter:
    """``limit`` slots. ``try_acquire`` takes one if free; ``wait`` queues a callback that
    is called (with the slot already taken for it) when one is released."""

    __slots__ = ("free", "waiters")

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.waiters: deque[Callable[[], None]] = deque()

    def try_acquire(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    def wait(self, on_slot: Callable[[], None]) -> None:
        """Call ``on_slot()`` once a slot has been taken for it (``on_slot`` must be cheap and
        must not release slots itself: queue the work, do not run it)."""
        self.waiters.append(on_slot)

    async def acquire(self) -> None:
        """Wait for a slot (for coroutines: the policy route)."""
        if self.try_acquire():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def hand_over() -> None:
            if future.done():  # cancelled, its task not yet woken: pass the slot on
                self.release()
            else:
                future.set_result(None)

        self.waiters.append(hand_over)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot had been handed over already
            elif hand_over in self.waiters:
                self.waiters.remove(hand_over)  # still queued: leave the queue
            raise

    def release(self) -> None:
        if self.waiters:
            self.waiters.popleft()()
        else:
            self.free += 1

    def close(self) -> None:
        """Drop every waiter (the run is stopping: nothing more starts)."""
        self.waiters.clear()
