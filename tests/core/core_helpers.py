"""Helpers shared by the tests of ``tests/core``, written once here instead of copied into each
file: event collectors, a quiet ``cs.run``, counters of calls in flight, file counters that
worker processes can bump, and a few small tasks.

``tests/core/conftest.py`` puts this folder on ``sys.path`` (pytest's default import mode does
that for every conftest), so a test file in any sub-folder imports it as ``core_helpers``. The
tasks are module-level, so the processes executor's workers find them by name too."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

import cascade as cs
from cascade.events import Event
from cascade.executors import TaskCall

E = TypeVar("E", bound=Event)

# -- runs and their events ------------------------------------------------------------------


def run(target: Any, **options: Any) -> Any:
    """``cs.run`` without the log subscriber, unless the test asks for a ``log_level``."""
    options.setdefault("log_level", None)
    return cs.run(target, **options)


async def run_counting_loop_passes(target: Any) -> tuple[Any, int]:
    """Run ``target`` while a ticker counts the event loop's passes."""
    passes = 0
    running = True

    async def ticker() -> None:
        nonlocal passes
        while running:
            passes += 1
            await asyncio.sleep(0)

    ticking = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    try:
        result = await cs.Engine().run(target)
    finally:
        running = False
        await ticking
    return result, passes


class EventLog:
    """A bus and every event published on it, in order, for one run (or several)."""

    def __init__(self) -> None:
        self.bus = cs.MessageBus()
        self.events: list[Event] = []
        self.bus.subscribe(Event, self.events.append)

    def of(self, kind: type[E]) -> list[E]:
        """The events of one kind (subclasses included), in the order they were published."""
        return [e for e in self.events if isinstance(e, kind)]


def collect_events() -> tuple[cs.MessageBus, list[Event]]:
    """A bus, and the list every event published on it is appended to."""
    log = EventLog()
    return log.bus, log.events


def run_collecting(target: Any, executor: str, **options: Any) -> tuple[Any, list[Event]]:
    """Run ``target`` quietly on ``executor``: its result and every event of the run."""
    bus, events = collect_events()
    result = cs.run(target, executor=executor, log_level=None, bus=bus, **options)
    return result, events


def recorded_engine(**options: Any) -> tuple[cs.Engine, list[Event]]:
    """An engine whose bus appends every event to the list returned with it."""
    bus, events = collect_events()
    return cs.Engine(bus=bus, **options), events


# -- what ran, and how much of it at once ---------------------------------------------------


class Occupancy:
    """How many calls are inside at once, and the most there ever were: evidence of overlap
    (or of its absence) that does not depend on how fast the machine is."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.order: list[str] = []

    def enter(self, name: str) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.order.append(name)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def bump(path: str | Path) -> int:
    """Add one to the counter kept in the file at ``path`` (its size), and return the new
    count: a counter worker processes and retries share."""
    with open(path, "a") as handle:
        handle.write("x")
    return Path(path).stat().st_size


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait, polling the event loop, until ``predicate()`` holds. ``timeout`` only stops a
    broken test from hanging: it is far above what any healthy run needs."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition never held")
        await asyncio.sleep(0.01)


# -- calls handed to an executor directly ----------------------------------------------------


def task_call(
    fn: Any, *args: Any, on_start: Callable[[], None] | None = None, **kwargs: Any
) -> Any:
    """A ``TaskCall`` of ``fn`` for submitting to an executor without a run."""
    name = getattr(fn, "__name__", "fn")
    is_async = asyncio.iscoroutinefunction(fn)
    return TaskCall(f"{name}-1", name, fn, args, kwargs, is_async, "run-1", on_start=on_start)


def start_recorder(log: list[tuple[int, int]], i: int) -> Callable[[], None]:
    """An ``on_start`` callback that appends ``(i, the thread it runs in)`` to ``log``."""

    def on_start() -> None:
        log.append((i, threading.get_ident()))

    return on_start


# -- small tasks ------------------------------------------------------------------------------


@cs.task
def ident(x: Any) -> Any:
    return x


@cs.task
def size(value: Any) -> int:
    return len(value)


@cs.task
def add(a: int, b: int) -> int:
    return a + b


@cs.task
def square(x: int) -> int:
    return x * x


@cs.task
def flaky(counter: str, fail_times: int) -> int:
    """Fails its first ``fail_times`` attempts (counted in the file ``counter``)."""
    attempt = bump(counter)
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


def notes_of(exc: BaseException) -> str:
    """The notes added to ``exc`` (``add_note``), as one line."""
    return " ".join(getattr(exc, "__notes__", []))
