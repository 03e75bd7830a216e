"""The gates a call passes before it starts: slot limits and token-bucket rates.

A ``Limiter`` is a counting slot limit (the run's ``max_concurrency``, a task's
``concurrency``, a named pool); a ``TokenBucket`` is a rate (a task's ``rate_limit``, a pool's).
Both serve waiters highest priority first, in arrival order among equals, and both hand what
they free straight to the next waiter. Waiters are plain callbacks, one form for both routes
(``cascade.runtime.call.pass_gates``; a coroutine waits on a future such a callback sets),
so the scheduler can queue a node instead of parking a coroutine for it, and nothing here
runs a waiter's work inside ``release`` (that once made a wide fan-out recurse on failure). A
waiter that needs more than is free waits at the head of the queue: later, smaller requests
do not overtake it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

_order = itertools.count()


#: A waiter: (-priority, arrival, weight, what to call when it passes, whose it is).
Waiter = tuple[int, int, int, Callable[[], None], object]


def arrival() -> int:
    """A place in line: waiters of equal priority are served in the order of these. A call
    that is retried keeps the one it took for its first attempt, so its retry does not go to
    the back of a queue the other calls joined meanwhile."""
    return next(_order)


class _Gate:
    """Waiters in a heap by (-priority, arrival). A gate may be shared by several runs (an
    engine's pools): each waiter names its owner, so a run that stops drops only its own."""

    __slots__ = ("name", "waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.waiters: list[Waiter] = []

    def queued(self) -> int:
        return len(self.waiters)

    def wait(
        self,
        on_pass: Callable[[], None],
        weight: int = 1,
        priority: int = 0,
        owner: object = None,
        place: int | None = None,
    ) -> Waiter:
        """Call ``on_pass()`` once ``weight`` has been taken for it (it must be cheap and must
        not release anything itself: queue the work, do not run it). ``place`` is the
        waiter's ``arrival()`` when it has one already (a retry), else it joins the end of
        its priority. Returns the waiter, for ``drop``."""
        waiter = (-priority, next(_order) if place is None else place, weight, on_pass, owner)
        heapq.heappush(self.waiters, waiter)
        self._serve()
        return waiter

    def drop(self, waiter: Waiter) -> None:
        """Take a waiter out of the queue (it gave up: cancelled), if it is still there."""
        try:
            self.waiters.remove(waiter)
        except ValueError:
            return
        heapq.heapify(self.waiters)

    def close(self, owner: object = None) -> None:
        """Drop the waiters of ``owner`` (a run that is stopping: nothing more of it starts),
        or every waiter when no owner is given."""
        if owner is None:
            self.waiters.clear()
        else:
            self.waiters = [w for w in self.waiters if w[4] is not owner]
            heapq.heapify(self.waiters)

    def try_enter(self, weight: int = 1) -> bool:
        raise NotImplementedError

    def leave(self, weight: int = 1) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        raise NotImplementedError


class Limiter(_Gate):
    """``limit`` slots; a call takes ``weight`` of them and gives them back when it ends."""

    __slots__ = ("free", "limit")

    def __init__(self, limit: int, name: str = "max_concurrency") -> None:
        super().__init__(name)
        self.limit = limit
        self.free = limit

    def try_enter(self, weight: int = 1) -> bool:
        if self.free >= weight and not self.waiters:
            self.free -= weight
            return True
        return False

    def leave(self, weight: int = 1) -> None:
        self.free += weight
        self._serve()

    def _serve(self) -> None:
        waiters = self.waiters
        while waiters and waiters[0][2] <= self.free:
            _, _, weight, on_pass, _ = heapq.heappop(waiters)
            self.free -= weight
            on_pass()


class TokenBucket(_Gate):
    """``rate`` tokens a second, at most ``burst`` saved up; a call takes one to start (every
    attempt, retries too) and gives nothing back."""

    __slots__ = ("_timer", "burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, name: str) -> None:
        super().__init__(name)
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def try_enter(self, weight: int = 1) -> bool:
        if self.waiters:
            return False
        self._refill()
        if self.tokens >= weight:
            self.tokens -= weight
            return True
        return False

    def leave(self, weight: int = 1) -> None:
        return None  # tokens come back with time, not with calls

    def _serve(self) -> None:
        self._refill()
        waiters = self.waiters
        while waiters and self.tokens >= waiters[0][2]:
            _, _, weight, on_pass, _ = heapq.heappop(waiters)
            self.tokens -= weight
            on_pass()
        if waiters and self._timer is None:
            delay = (waiters[0][2] - self.tokens) / self.rate
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._serve()

    def close(self, owner: object = None) -> None:
        super().close(owner)
        if self._timer is not None and not self.waiters:
            self._timer.cancel()
            self._timer = None


#: Either kind of gate.
Gate = _Gate


@dataclass(frozen=True, slots=True)
class Weighted:
    """A gate and how much of it one call takes (slots of a pool, one token of a rate)."""

    gate: Gate
    weight: int
