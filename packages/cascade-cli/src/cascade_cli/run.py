"""Running a loaded target on an engine and keeping score from its events.

``RunRecord`` subscribes to the engine's bus and keeps, per task, what happened (attempts,
durations, statuses, errors), which is everything the progress display, the summary table and
the JSON document show. ``execute`` runs the engine with Ctrl-C mapped to cancelling the run, so
resources are torn down before the command exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import cascade as cs
from cascade import MessageBus
from cascade.events import (
    Event,
    RunFinished,
    RunStarted,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskRetrying,
    TaskSkipped,
)
from cascade.graph import plan
from cascade_cli.target import Target

SUCCEEDED, FAILED, CANCELLED = "Succeeded", "Failed", "Cancelled"
RUNNING, RETRYING, SKIPPED, PENDING, NOT_RUN = "Running", "Retrying", "Skipped", "Pending", "NotRun"


@dataclass
class Attempts:
    """What happened to one unit of work: a task call, or one item of a mapped call."""

    task_id: str
    task: str
    status: str = PENDING
    attempts: int = 0
    duration: float = 0.0
    error: str | None = None
    reason: str | None = None
    executor: str = ""
    ended: int = -1  # order in which the unit reached its current final status


@dataclass
class Step:
    """One node of the plan (a task call or a whole ``.map``), with its units of work."""

    task_id: str
    task: str
    is_map: bool
    units: dict[str, Attempts] = field(default_factory=dict)

    def status(self, run_status: str | None) -> str:
        statuses = {unit.status for unit in self.units.values()}
        for status in (FAILED, CANCELLED, RETRYING, RUNNING):
            if status in statuses:
                return status
        if not statuses:
            # A map over an empty list has no units; after a success it simply succeeded.
            return SUCCEEDED if run_status == SUCCEEDED else NOT_RUN
        if statuses == {SKIPPED}:
            return SKIPPED
        if PENDING in statuses:
            return PENDING if run_status is None else NOT_RUN
        return SUCCEEDED

    @property
    def attempts(self) -> int:
        return sum(unit.attempts for unit in self.units.values())

    @property
    def duration(self) -> float:
        return sum(unit.duration for unit in self.units.values())

    @property
    def error(self) -> str | None:
        failed = [u for u in self.units.values() if u.status == FAILED and u.error]
        return min(failed, key=lambda u: u.ended).error if failed else None

    @property
    def executor(self) -> str | None:
        names = {u.executor for u in self.units.values() if u.executor}
        return ", ".join(sorted(names)) or None

    @property
    def reason(self) -> str | None:
        reasons = {u.reason for u in self.units.values() if u.reason}
        return ", ".join(sorted(reasons)) or None


FINAL = (SUCCEEDED, FAILED, SKIPPED)


class RunRecord:
    """Keeps score of one run from the events on ``bus``. Thread-safe to read with ``lock``
    held (the live display renders from another thread). The counts the display reads on every
    frame (done, total, running, failed) are kept up to date per event, so a frame costs the
    same for ten tasks or ten thousand."""

    def __init__(self, bus: MessageBus, steps: list[dict[str, Any]]) -> None:
        self.lock = threading.Lock()
        self.steps: dict[str, Step] = {
            s["task_id"]: Step(s["task_id"], s["task"], bool(s["map"])) for s in steps
        }
        self.run_id = ""
        self.params: dict[str, Any] | None = None  # as the engine resolved them
        self.started_at: float | None = None  # time.monotonic() at RunStarted
        self.status: str | None = None  # set by RunFinished
        self.duration: float | None = None
        self.error: str | None = None
        self.retries = 0
        self.done = 0
        self.total = len(self.steps)  # a map counts 1 until its items are known
        self.failed = 0
        self.running_now: dict[str, str] = {}  # task id -> display name
        self._order = 0
        self.listeners: list[Callable[[Event], None]] = []
        bus.subscribe(Event, self.on_event)

    # -- reading ------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.started_at is not None

    def elapsed(self) -> float:
        if self.duration is not None:
            return self.duration
        return time.monotonic() - self.started_at if self.started_at is not None else 0.0

    def counts(self) -> tuple[int, int]:
        """``(done, total)`` units of work: a map counts its items once they are known."""
        return self.done, self.total

    def running(self) -> list[str]:
        """Names of the units running now: ``transform`` or ``transform[3]`` for map items."""
        return list(self.running_now.values())

    def failures(self) -> list[Attempts]:
        """Units whose final status is Failed, in the order they failed."""
        units = [u for s in self.steps.values() for u in s.units.values() if u.status == FAILED]
        return sorted(units, key=lambda u: u.ended)

    # -- recording ----------------------------------------------------------------------------

    def _unit(self, task_id: str, task_name: str) -> tuple[Step, Attempts]:
        base = task_id.split("[", 1)[0]
        step = self.steps.get(base)
        if step is None:  # not in the plan (should not happen); keep it anyway
            step = self.steps[base] = Step(base, task_name, task_id != base)
            self.total += 1
        unit = step.units.get(task_id)
        if unit is None:
            if step.units:  # the first unit takes the place the step had in the total
                self.total += 1
            unit = step.units[task_id] = Attempts(task_id, task_name)
        return step, unit

    def _set(self, step: Step, unit: Attempts, status: str) -> None:
        old = unit.status
        if old == status:
            return
        self.done += (status in FINAL) - (old in FINAL)
        self.failed += (status == FAILED) - (old == FAILED)
        if old == RUNNING:
            self.running_now.pop(unit.task_id, None)
        if status == RUNNING:
            suffix = unit.task_id[len(step.task_id) :] if step.is_map else ""
            self.running_now[unit.task_id] = f"{unit.task}{suffix}"
        unit.status = status

    def _recount(self) -> None:
        done = total = 0
        for step in self.steps.values():
            if step.is_map and step.units:
                total += len(step.units)
                done += sum(u.status in FINAL for u in step.units.values())
            else:
                total += 1
                done += step.status(self.status) in FINAL
        self.done, self.total = done, total

    def on_event(self, event: Event) -> None:
        with self.lock:
            self._record(event)
        for listener in self.listeners:
            listener(event)

    def _record(self, event: Event) -> None:
        if isinstance(event, TaskExecutionStarted):
            step, unit = self._unit(event.task_id, event.task_name)
            self._set(step, unit, RUNNING)
            unit.attempts += 1
            unit.executor = event.executor
        elif isinstance(event, TaskExecutionFinished):
            step, unit = self._unit(event.task_id, event.task_name)
            self._set(step, unit, event.status)
            unit.duration += event.duration
            unit.error = event.error
            self._order += 1
            unit.ended = self._order
        elif isinstance(event, TaskRetrying):
            step, unit = self._unit(event.task_id, event.task_name)
            self._set(step, unit, RETRYING)
            self.retries += 1
        elif isinstance(event, TaskSkipped):
            step, unit = self._unit(event.task_id, event.task_name)
            self._set(step, unit, SKIPPED)
            unit.reason = event.reason
            self._order += 1
            unit.ended = self._order
        elif isinstance(event, RunStarted):
            self.run_id = event.run_id
            self.params = dict(event.params)
            self.started_at = time.monotonic()
        elif isinstance(event, RunFinished):
            self.status = event.status
            self.duration = event.duration
            self.error = event.error
            for step in self.steps.values():
                for unit in step.units.values():
                    if unit.status in (RUNNING, RETRYING):
                        self._set(step, unit, CANCELLED)
                    elif unit.status == PENDING:
                        self._set(step, unit, NOT_RUN)
            self._recount()  # an empty map only counts as done once the run succeeded


@dataclass
class Outcome:
    """How a run ended: ``status`` is Succeeded, Failed or Cancelled."""

    status: str
    result: Any = None
    error: BaseException | None = None


class SetupError(Exception):
    """The engine refused the run before it started (unknown executor or param, a missing
    resource, a graph it cannot build): a usage error, not a failed run."""


def new_record(target: Target, bus: MessageBus) -> RunRecord:
    return RunRecord(bus, plan(target.graph))


def make_engine(target: Target, executor: str | None, max_concurrency: int | None) -> cs.Engine:
    """An engine with the target module's resources registered and no log subscriber (the
    command attaches its own output)."""
    from cascade.plugins import PluginError

    try:
        engine = cs.Engine(executor=executor, max_concurrency=max_concurrency, log_level=None)
    except (PluginError, ValueError, TypeError) as exc:
        raise SetupError(str(exc)) from exc
    for definition in target.resources:
        engine.register(definition)
    return engine


@contextlib.contextmanager
def _interrupts_cancel(
    task: asyncio.Task[Any], on_interrupt: Callable[[int], None]
) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM cancel ``task`` instead of raising wherever the loop is,
    so the engine can stop its tasks and tear its resources down; a third signal quits at
    once without teardown."""
    loop = asyncio.get_running_loop()
    count = 0

    def handle() -> None:
        nonlocal count
        count += 1
        on_interrupt(count)
        if count == 1:
            task.cancel()
        elif count >= 3:
            os._exit(130)

    installed = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, handle)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, odd hosts
                continue
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def execute(
    engine: cs.Engine,
    record: RunRecord,
    target: Target,
    params: Mapping[str, Any],
    on_interrupt: Callable[[int], None],
) -> Outcome:
    """Run the target. Failures of the run become an ``Outcome``; failures before it started
    become ``SetupError``."""
    task = asyncio.current_task()
    assert task is not None
    with _interrupts_cancel(task, on_interrupt):
        try:
            result = await engine.run(target.graph, params)
        except asyncio.CancelledError as exc:
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            return Outcome(CANCELLED, error=exc)
        except Exception as exc:
            if not record.started:
                raise SetupError(str(exc)) from exc
            return Outcome(FAILED, error=exc)
    return Outcome(SUCCEEDED, result=result)


def run_sync(
    engine: cs.Engine,
    record: RunRecord,
    target: Target,
    params: Mapping[str, Any],
    on_interrupt: Callable[[int], None],
) -> Outcome:
    """``execute`` in a fresh event loop; a KeyboardInterrupt that lands outside the loop's
    signal handling (Windows) still ends as a cancelled run."""
    try:
        return asyncio.run(execute(engine, record, target, params, on_interrupt))
    except KeyboardInterrupt as exc:
        return Outcome(CANCELLED, error=exc)
