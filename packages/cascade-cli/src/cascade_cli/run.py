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
from collections.abc import Callable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any

import cascade as cs
from cascade import LazyResult, MessageBus, Param
from cascade.events import (
    Event,
    RunFinished,
    RunStarted,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskNamed,
    TaskRetrying,
    TaskSkipped,
    TaskWaiting,
)
from cascade.graph import plan
from cascade.records import allow_capture_below_root_level, labelled
from cascade_cli.target import Target, iterated_sources, lazy_results

SUCCEEDED, FAILED, CANCELLED = "Succeeded", "Failed", "Cancelled"
RUNNING, RETRYING, SKIPPED, PENDING, NOT_RUN = "Running", "Retrying", "Skipped", "Pending", "NotRun"
#: Failed with its retries spent, and took its ``with_fallback`` value: the run went on.
FELL_BACK = "FellBack"


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
    #: The exception of its last failed attempt (same process only), to tell which unit an
    #: exception the run raised belongs to.
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    #: The call's run name (``@cs.task(run_name=...)``), shown instead of task and index.
    call_name: str | None = None


@dataclass
class Step:
    """One node of the plan (a task call or a whole ``.map``), with its units of work."""

    task_id: str
    task: str
    is_map: bool
    is_async: bool = False
    units: dict[str, Attempts] = field(default_factory=dict)
    #: For a task added at run time, the task that returned it (``None`` for planned ones).
    parent_task_id: str | None = None
    #: For a map, how many items it has, once that is known (from a literal list, a param, or
    #: the result of the task it maps over); ``None`` until then.
    expected: int | None = None
    #: Wall clock of the first attempt's start and the last attempt's end (seconds).
    first_start: float | None = None
    last_end: float | None = None

    def status(self, run_status: str | None) -> str:
        statuses = {unit.status for unit in self.units.values()}
        for status in (FAILED, CANCELLED, RETRYING, RUNNING, FELL_BACK):
            if status in statuses:
                return status
        if not statuses:
            # A map over an empty list has no units; after a success it simply succeeded.
            return SUCCEEDED if run_status == SUCCEEDED else NOT_RUN
        if statuses == {SKIPPED}:
            return SKIPPED
        if PENDING in statuses:
            return PENDING if run_status is None else NOT_RUN
        if self.expected is not None and len(self.units) < self.expected:
            return RUNNING if run_status is None else NOT_RUN
        return SUCCEEDED

    @property
    def attempts(self) -> int:
        return sum(unit.attempts for unit in self.units.values())

    @property
    def duration(self) -> float:
        """The attempts' durations summed (for a map, over its items)."""
        return sum(unit.duration for unit in self.units.values())

    @property
    def wall(self) -> float | None:
        """From the first attempt's start to the last one's end (a map's items overlap, so this
        is shorter than ``duration``)."""
        if self.first_start is None or self.last_end is None:
            return None
        return max(self.last_end - self.first_start, 0.0)

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

    def weight(self) -> int:
        """How many units of work this step counts for in the display's total."""
        if not self.is_map:
            return 1
        return max(self.expected or 0, len(self.units)) or 1


FINAL = (SUCCEEDED, FAILED, SKIPPED, FELL_BACK)


class RunRecord:
    """Keeps score of one run from the events on ``bus``. Thread-safe to read with ``lock``
    held (the live display renders from another thread). The counts the display reads on every
    frame (done, total, running, failed) are kept up to date per event, so a frame costs the
    same for ten tasks or ten thousand.

    The total counts a ``.map`` once per item as soon as its number of items is known: at once
    for a literal list, at the start of the run for a param, and when the task it maps over
    returns (its result's length). ``limited`` (a concurrency limit is set, so items start a
    few at a time) marks a total that may still grow as provisional."""

    def __init__(
        self,
        bus: MessageBus,
        steps: list[dict[str, Any]],
        calls: Mapping[str, LazyResult[Any]] | None = None,
        limited: bool = False,
    ) -> None:
        self.lock = threading.Lock()
        calls = calls or {}
        self.steps: dict[str, Step] = {}
        for s in steps:
            lazy = calls.get(s["task_id"])
            task = getattr(lazy, "task", None)
            self.steps[s["task_id"]] = Step(
                s["task_id"], s["task"], bool(s["map"]), bool(getattr(task, "is_async", False))
            )
        self.run_id = ""
        self.params: dict[str, Any] | None = None  # as the engine resolved them
        self.started_at: float | None = None  # time.monotonic() at RunStarted
        self.status: str | None = None  # set by RunFinished
        self.failed_resource: str | None = None  # set by RunFinished
        self.duration: float | None = None
        self.error: str | None = None
        self.retries = 0
        self.done = 0
        self.failed = 0
        self.limited = limited
        self.running_now: dict[str, str] = {}  # task id -> display name
        #: Calls waiting for a pool slot or a rate token: task id -> what for.
        self.waiting_now: dict[str, str] = {}
        #: Sync tasks in threads that were running at the first Ctrl-C (the run waits for them).
        self.waited_for: list[str] = []
        self._order = 0
        self.listeners: list[Callable[[Event], None]] = []
        # Where each map's item count comes from: the maps waiting on a param or an upstream.
        self._by_param: dict[str, list[Step]] = {}
        self._by_upstream: dict[str, list[Step]] = {}
        for task_id, step in self.steps.items():
            lazy = calls.get(task_id)
            if step.is_map and lazy is not None:
                self._plan_count(step, lazy)
        self.total = sum(step.weight() for step in self.steps.values())
        bus.subscribe(Event, self.on_event)

    def _plan_count(self, step: Step, lazy: LazyResult[Any]) -> None:
        for source in iterated_sources(lazy):
            if isinstance(source, Param):
                self._by_param.setdefault(source.param_name, []).append(step)
            elif isinstance(source, LazyResult):
                self._by_upstream.setdefault(source.id, []).append(step)
            elif isinstance(source, Sized):
                step.expected = len(source)
                return

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

    def provisional(self) -> bool:
        """Whether the total may still grow: a map whose item count is not known yet is
        admitting its items a few at a time."""
        if self.status is not None or not self.limited:
            return False
        return any(
            s.is_map and s.expected is None and s.status(None) not in FINAL
            for s in self.steps.values()
        )

    def running(self) -> list[str]:
        """Names of the units running now: ``transform`` or ``transform[3]`` for map items."""
        return list(self.running_now.values())

    def waiting(self) -> dict[str, int]:
        """What ready calls wait for now, with how many wait for each (``{"pool 'openai'":
        3}``), for the live display's "waiting for" line."""
        found: dict[str, int] = {}
        for what in self.waiting_now.values():
            found[what] = found.get(what, 0) + 1
        return found

    def running_units(self) -> list[tuple[str, bool, str]]:
        """``(name, is_async, executor)`` of every unit running now."""
        found = []
        for task_id, name in self.running_now.items():
            step = self.steps.get(task_id.split("[", 1)[0])
            unit = step.units.get(task_id) if step is not None else None
            found.append((name, step.is_async if step else False, unit.executor if unit else ""))
        return found

    def failures(self) -> list[Attempts]:
        """Units whose final status is Failed, in the order they failed."""
        units = [u for s in self.steps.values() for u in s.units.values() if u.status == FAILED]
        return sorted(units, key=lambda u: u.ended)

    # -- recording ----------------------------------------------------------------------------

    def _unit(
        self, task_id: str, task_name: str, parent: str | None = None
    ) -> tuple[Step, Attempts]:
        base = task_id.split("[", 1)[0]
        step = self.steps.get(base)
        if step is None:  # a task added at run time by one that returned a graph
            step = self.steps[base] = Step(base, task_name, task_id != base)
            step.parent_task_id = parent
            self.total += step.weight()
        unit = step.units.get(task_id)
        if unit is None:
            before = step.weight()
            unit = step.units[task_id] = Attempts(task_id, task_name)
            self.total += step.weight() - before
        return step, unit

    def _expect(self, step: Step, count: int) -> None:
        if step.expected is not None:
            return
        before = step.weight()
        step.expected = count
        self.total += step.weight() - before
        for downstream in self._by_upstream.get(step.task_id, ()):  # a map over this map
            self._expect(downstream, count)

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
            self.running_now[unit.task_id] = unit.call_name or f"{unit.task}{suffix}"
        unit.status = status

    def _recount(self) -> None:
        done = total = 0
        for step in self.steps.values():
            if step.is_map and (step.units or step.expected):
                total += step.weight()
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
        if isinstance(event, TaskWaiting):
            self.waiting_now[event.task_id] = event.waiting_for
        elif isinstance(event, TaskExecutionStarted):
            self.waiting_now.pop(event.task_id, None)
            step, unit = self._unit(event.task_id, event.task_name, event.parent_task_id)
            self._set(step, unit, RUNNING)
            unit.attempts += 1
            unit.executor = event.executor
            if step.first_start is None:
                step.first_start = event.timestamp
        elif isinstance(event, TaskExecutionFinished):
            step, unit = self._unit(event.task_id, event.task_name)
            will_retry = bool(getattr(event, "will_retry", False))
            # A failed attempt that will be retried is a retry, never a failure on screen.
            status = RETRYING if will_retry else FELL_BACK if event.fell_back else event.status
            self._set(step, unit, status)
            unit.duration += event.duration
            unit.error = f"fell back after {event.error}" if event.fell_back else event.error
            unit.exception = event.exception
            self._order += 1
            unit.ended = self._order
            start = event.start_time or event.timestamp
            if step.first_start is None or start < step.first_start:
                step.first_start = start
            step.last_end = max(step.last_end or event.timestamp, event.timestamp)
            if event.status == SUCCEEDED and "[" not in event.task_id:
                self._count_from(event)
        elif isinstance(event, TaskNamed):
            _, unit = self._unit(event.task_id, event.task_name, event.parent_task_id)
            unit.call_name = event.call_name
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
            for name, steps in self._by_param.items():
                value = self.params.get(name)
                if isinstance(value, Sized) and not isinstance(value, (str, bytes, Mapping)):
                    for step in steps:
                        self._expect(step, len(value))
        elif isinstance(event, RunFinished):
            self.status = event.status
            self.duration = event.duration
            self.error = event.error
            self.failed_resource = event.failed_resource
            for step in self.steps.values():
                for unit in step.units.values():
                    if unit.status in (RUNNING, RETRYING):
                        self._set(step, unit, CANCELLED)
                    elif unit.status == PENDING:
                        self._set(step, unit, NOT_RUN)
            self._recount()  # an empty map only counts as done once the run succeeded

    def _count_from(self, event: TaskExecutionFinished) -> None:
        """A task that a map fans out over returned: its result's length is the map's count
        (a reference to a value kept elsewhere, such as Dask's, has no length to read)."""
        waiting = self._by_upstream.get(event.task_id)
        if not waiting:
            return
        result = getattr(event, "result", None)
        if isinstance(result, Sized) and not isinstance(result, (str, bytes)):
            try:
                count = len(result)
            except Exception:
                return
            for step in waiting:
                self._expect(step, count)


@dataclass
class Outcome:
    """How a run ended: ``status`` is Succeeded, Failed or Cancelled."""

    status: str
    result: Any = None
    error: BaseException | None = None


class SetupError(Exception):
    """The engine refused the run before it started (unknown executor or param, a missing
    resource, a graph it cannot build): a usage error, not a failed run."""


def new_record(target: Target, bus: MessageBus, limited: bool = False) -> RunRecord:
    return RunRecord(bus, plan(target.graph), lazy_results(target.graph), limited)


def make_engine(
    target: Target,
    executor: str | None,
    max_concurrency: int | None,
) -> cs.Engine:
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


#: What ``Interrupts`` passes to ``on_interrupt`` for a signal outside the run.
OUTSIDE_THE_RUN = -1


class Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM for the whole command. The first cancels the run (resources
    are torn down, the command exits 130); the second only says what the run waits for; the
    third quits at once, without teardown. Outside the run (while the summary prints) a signal
    ends the command with 130 straight away."""

    def __init__(self, on_interrupt: Callable[[int], None]) -> None:
        self.on_interrupt = on_interrupt
        self.count = 0
        self.cancel: Callable[[], Any] | None = None
        self._previous: dict[int, Any] = {}

    def handle(self) -> None:
        self.count += 1
        running = self.cancel is not None
        count = self.count if running else OUTSIDE_THE_RUN
        try:
            if count == 1 and self.cancel is not None:
                self.cancel()  # first, so that nothing below can keep the run from stopping
        finally:
            try:
                self.on_interrupt(count)
            except Exception:
                pass  # saying so must never stop the command from stopping
            finally:
                if count >= 3 or not running:
                    os._exit(130)

    def _handle_signal(self, signum: int, frame: Any) -> None:
        self.handle()

    def install(self) -> None:
        """Handle the signals outside the event loop too (before and after the run)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle_signal)
            except (ValueError, OSError):  # odd hosts
                continue

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, previous)
        self._previous.clear()

    @contextlib.contextmanager
    def cancelling(self, task: asyncio.Task[Any]) -> Iterator[None]:
        """Inside: signals cancel ``task`` (on the loop, so the engine can stop its tasks and
        tear its resources down)."""
        loop = asyncio.get_running_loop()
        self.cancel = task.cancel
        installed = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, self.handle)
                except (NotImplementedError, RuntimeError, ValueError):  # Windows, odd hosts
                    continue
                installed.append(signum)
        try:
            yield
        finally:
            self.cancel = None
            for signum in installed:
                loop.remove_signal_handler(signum)
            if installed:
                self.install()  # remove_signal_handler put the default handler back


async def execute(
    engine: cs.Engine,
    record: RunRecord,
    target: Target,
    params: Mapping[str, Any],
    interrupts: Interrupts,
    recording: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> Outcome:
    """Run the target. Failures of the run become an ``Outcome``; failures before it started
    become ``SetupError``. ``recording`` holds ``Engine.run``'s ``record=``/``resume=``, and
    ``label`` (the TARGET argument) names the run in its record."""
    task = asyncio.current_task()
    assert task is not None
    with interrupts.cancelling(task), labelled(label or target.spec):
        try:
            result = await engine.run(target.graph, params, **(recording or {}))
        except asyncio.CancelledError as exc:
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            return Outcome(CANCELLED, error=exc)
        except Exception as exc:
            if not record.started:
                raise SetupError(str(exc)) from exc
            if interrupts.count:
                return Outcome(CANCELLED, error=exc)  # a task broken by the interruption
            return Outcome(FAILED, error=exc)
    if interrupts.count:
        return Outcome(CANCELLED)
    return Outcome(SUCCEEDED, result=result)


def run_sync(
    engine: cs.Engine,
    record: RunRecord,
    target: Target,
    params: Mapping[str, Any],
    interrupts: Interrupts,
    recording: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> Outcome:
    """``execute`` in a fresh event loop; a KeyboardInterrupt that lands outside the loop's
    signal handling (Windows) still ends as a cancelled run."""
    # The command owns this process's logging: a recorded run may capture a task's INFO
    # records below the root logger's level (cascade.records.capture).
    allow_capture_below_root_level()
    try:
        return asyncio.run(execute(engine, record, target, params, interrupts, recording, label))
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        # Cancelled just as the run returned, or interrupted where the loop does not handle
        # signals (Windows): a cancelled run all the same.
        return Outcome(CANCELLED, error=exc)
