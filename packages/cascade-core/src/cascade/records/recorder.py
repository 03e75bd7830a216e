"""The recorder: a bus subscriber that writes one run's record from one background thread.

On the event loop it does as little as it can: the attempt events go straight into a deque
(its ``append`` is the handler), and checkpointed results arrive already pickled from the
checkpoint policy. The thread wakes every ``FLUSH_SECONDS`` (and at once when the run starts
or ends), turns what has arrived into one ``RecordBatch``, writes the batch's checkpoints as
one entry of the cache store, then the batch into the run store in one transaction, and beats
the run's heartbeat. A store that cannot be written never fails the run: the thread keeps what
went wrong, and ``Recorder.problems`` lists it for the session to warn about, naming the path.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import os
import pickle
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from itertools import repeat
from operator import attrgetter
from typing import Any

from cascade._version import __version__
from cascade.bus import MessageBus
from cascade.caching.store import CacheStore
from cascade.events import (
    RunFinished,
    RunStarted,
    TaskCacheMissed,
    TaskExecutionFinished,
    TaskNamed,
    TaskRetrying,
    TaskSkipped,
    TasksSucceeded,
    TaskWaiting,
)
from cascade.graph.build import KIND_MAP, KIND_PARAM, Graph
from cascade.records.capture import LogSink
from cascade.records.model import (
    CHECKPOINT,
    HEARTBEAT_SECONDS,
    NOTE_NAME,
    NOTE_RAN,
    NOTE_WAITED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    AttemptDetail,
    Checkpoint,
    CheckpointColumns,
    GraphSnapshot,
    LogLine,
    RecordBatch,
    RecordedAttempt,
    RecordedRun,
    RecordError,
    RunEnd,
    RunStore,
    SucceededColumns,
    param_record,
    process_token,
    this_host,
)
from cascade.records.sqlite import is_busy
from cascade.records.tracebacks import describe_failure

logger = logging.getLogger("cascade.records")

#: A finished attempt's fields in ``RecordedAttempt``'s order (reason, upstream and retry
#: delay keep their defaults): both steps run in C, so a wide run's rows cost little.
_ATTEMPT_FIELDS = attrgetter(
    "task_id",
    "task_name",
    "status",
    "attempt",
    "start_time",
    "timestamp",
    "duration",
    "executor",
    "parent_task_id",
    "error",
    "error_type",
    "will_retry",
    "fell_back",
)
#: ``reason``, ``upstream``, ``retry_delay``, ``traceback``, ``logs``, ``why_ran`` of a
#: finished attempt (tracebacks and logs go to the batch's ``details``).
_NO_SKIP: tuple[None, None, None, None, tuple[()], None, None, None, None] = (
    None,
    None,
    None,
    None,
    (),
    None,
    None,
    None,
    None,
)
#: ``RecordedAttempt`` from a full tuple of its fields, without a Python-level call.
_MAKE_ATTEMPT: Callable[[tuple[Any, ...]], RecordedAttempt] = functools.partial(
    tuple.__new__, RecordedAttempt
)
_TASK_ID = attrgetter("task_id")
_LAZY_ID = attrgetter("lazy.id")
_LAZY_NAME = attrgetter("lazy.name")
_TASK_NAME = attrgetter("lazy.task.name")
_LAZY_TASK = attrgetter("lazy.task")
_KIND = attrgetter("kind")
_DEPS = attrgetter("deps")
_KIND_NAMES = {KIND_MAP: "map", KIND_PARAM: "param"}

#: How often the thread writes what has arrived (a crash loses at most this much).
FLUSH_SECONDS = 0.2
#: The task name checkpoint entries carry in the cache store (``cascade cache info`` shows it).
CHECKPOINT_TASK = "cascade.checkpoints"
#: Consecutive failed writes of a store that is busy (locked by another process) before the
#: recorder gives up on it.
MAX_BUSY_RETRIES = 5


def trace_id_now() -> str | None:
    """The trace id of the current OpenTelemetry span (cascade-otel's run span while a traced
    run starts), if OpenTelemetry is loaded at all: Cascade does not depend on it."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    try:
        context = trace.get_current_span().get_span_context()
    except Exception:
        return None
    if not getattr(context, "is_valid", False):
        return None
    return f"{context.trace_id:032x}"


class Recorder:
    """Records one run of one engine into ``store`` (see the module docstring).

    ``bind(run_id)`` says which run it is (the engine's bus may carry other runs' events) and
    starts the thread; ``stop()`` asks it for a last write and returns a future that is done
    when the thread has finished.
    """

    def __init__(
        self,
        store: RunStore,
        graph: Graph,
        *,
        target: str,
        label: str | None = None,
        resumed_from: str | None = None,
        checkpoints: CacheStore | None = None,
        checkpoints_location: str | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.label = label
        self.resumed_from = resumed_from
        self.checkpoint_store = checkpoints
        self.checkpoints_location = checkpoints_location
        self.run_id = ""
        self._graph = graph
        self._graph_size = len(graph.nodes)
        self._events: deque[Any] = deque()
        #: New checkpoints, flat: task id, key, pickled result, task id... The event loop
        #: extends it by three at a time and the thread takes whole triples off the front,
        #: each step one C call under the interpreter lock (so no tuple per checkpoint, and no
        #: step per item on either side).
        self._new_checkpoints: list[Any] = []
        self._reused: deque[Checkpoint] = deque()
        self._notes: deque[tuple[str, str, str]] = deque()
        #: When each call that waited at a gate began to wait, and for what.
        self._waits: dict[str, list[tuple[float, str]]] = {}
        self._waits_changed: set[str] = set()
        #: Where the run's captured log lines arrive (``None``: logs are not captured).
        self.log_sink: LogSink | None = None
        #: Called on the thread once the run's last batch is written (retention), returning
        #: problems to warn about.
        self.after_last_write: Callable[[], list[str]] | None = None
        #: Task ids whose value came from the resumed run's checkpoint (their CacheHit is a
        #: ``Checkpoint`` skip) and task ids that fell back after failing (never checkpointed).
        self.restored: set[str] = set()
        self.fell_back: set[str] = set()
        self.problems: list[str] = []
        self._started: RunStarted | None = None
        self._trace_id: str | None = None
        self._start_written = False
        self._pending: RecordBatch | None = None
        self._busy_failures = 0
        self._broken = False
        self._entries = 0
        self._batches = 0
        self._last_status: dict[str, str] = {}
        self._counts_changed = False
        self._last_beat = 0.0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        # Successes come in bulk (``TasksSucceeded``, one event per event-loop pass): an
        # event per succeeded task was most of what recording cost a wide run
        # (benchmarks/bench_records.py); failures and cancellations come one by one.
        self._subscriptions: list[tuple[type[Any], Callable[[Any], Any], Any]] = [
            (RunStarted, self._on_run_started, None),
            (TasksSucceeded, self._events.append, None),
            (TaskExecutionFinished, self._events.append, ("Failed", "Cancelled")),
            (TaskExecutionFinished, self._on_failed, ("Failed",)),
            (TaskSkipped, self._events.append, None),
            (TaskRetrying, self._events.append, None),
            (TaskNamed, self._on_named, None),
            (TaskCacheMissed, self._on_cache_missed, None),
            (TaskWaiting, self._on_waiting, None),
            (RunFinished, self._on_run_finished, None),
        ]

    # -- on the event loop ---------------------------------------------------------------------

    def attach(self, bus: MessageBus) -> None:
        for event_type, handler, statuses in self._subscriptions:
            bus.subscribe(event_type, handler, statuses=statuses)

    def detach(self, bus: MessageBus) -> None:
        for event_type, handler, _ in self._subscriptions:
            bus.unsubscribe(event_type, handler)

    def bind(self, run_id: str) -> None:
        self.run_id = run_id
        self._thread = threading.Thread(
            target=self._loop, name=f"cascade-recorder-{run_id[:8]}", daemon=False
        )
        self._thread.start()

    def _on_run_started(self, event: RunStarted) -> None:
        if event.run_id != self.run_id:
            return
        # Published inside engine.run, after cascade-otel (subscribed when the engine was
        # made) made the run's span current.
        self._trace_id = trace_id_now()
        self._started = event
        self._wake.set()

    def _on_failed(self, event: TaskExecutionFinished) -> None:
        if event.fell_back and event.run_id == self.run_id:
            self.fell_back.add(event.task_id)

    def _on_named(self, event: TaskNamed) -> None:
        if event.run_id == self.run_id:
            self._notes.append((event.task_id, NOTE_NAME, event.call_name))

    def _on_cache_missed(self, event: TaskCacheMissed) -> None:
        # Why a task with its own cache ran although the cache held an earlier result of it.
        if event.run_id == self.run_id:
            self._notes.append((event.task_id, NOTE_RAN, event.reason))

    def _on_waiting(self, event: TaskWaiting) -> None:
        # Published only for calls that wait at a gate: the report draws the wait.
        if event.run_id == self.run_id:
            self._waits.setdefault(event.task_id, []).append((event.timestamp, event.waiting_for))
            self._waits_changed.add(event.task_id)

    def _on_run_finished(self, event: RunFinished) -> None:
        self._events.append(event)
        if event.run_id == self.run_id:
            self._wake.set()

    def checkpoint(self, task_id: str, key: str, payload: bytes) -> None:
        """A new checkpoint: ``payload`` is the pickled result of the call keyed ``key``."""
        self._new_checkpoints.extend((task_id, key, payload))

    def reuse(self, checkpoint: Checkpoint) -> None:
        """A value restored from the resumed run's checkpoint: this run refers to it too, so a
        resume of this run finds it."""
        self._reused.append(checkpoint)

    def stop(self) -> concurrent.futures.Future[None]:
        """Ask for the last write; the future is done once the thread has ended."""
        self._stopping = True
        self._wake.set()
        if self._thread is None and not self.finished.done():
            self.finished.set_result(None)
        return self.finished

    # -- on the recorder's thread ----------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait(FLUSH_SECONDS)
                self._wake.clear()
                last = self._stopping
                try:
                    self._flush(last)
                except Exception as exc:  # a defect here must not take the run down with it
                    logger.exception("the run recorder failed; the run goes on unrecorded")
                    self._give_up(f"{type(exc).__name__}: {exc}")
                if last:
                    if self.after_last_write is not None and not self.problems:
                        self.problems.extend(self.after_last_write())
                    break
        finally:
            self.finished.set_result(None)

    def _give_up(self, why: str) -> None:
        if not self._broken:
            self._broken = True
            self.problems.append(
                f"the record of run {self.run_id[:8]} could not be written to "
                f"{self.store.location}: {why}; the run went on without (the rest of) its record"
            )

    def _flush(self, last: bool) -> None:
        started = self._started
        if started is None:
            self._events.clear()  # the run never started (or is not ours): nothing to record
            return
        batch = RecordBatch(self.run_id)
        if not self._start_written:
            batch.start = self._run_row(started)
            batch.graph = self._graph_nodes()
        self._take_events(batch)
        self._take_logs(batch, last)
        while self._notes:
            batch.notes.append(self._notes.popleft())
        if self._waits_changed:
            changed, self._waits_changed = self._waits_changed, set()
            batch.notes.extend(
                (task_id, NOTE_WAITED, json.dumps(self._waits[task_id])) for task_id in changed
            )
        self._write_checkpoints(batch)
        if self._counts_changed:
            batch.tasks = dict(Counter(self._last_status.values()))
            self._counts_changed = False
        now = time.time()
        if now - self._last_beat >= HEARTBEAT_SECONDS and batch.end is None:
            batch.heartbeat = now
        if self._broken:
            return
        if self._pending is not None:
            batch = _merge(self._pending, batch)
            self._pending = None
        if not batch:
            return
        if batch.seq == 0:
            self._batches += 1
            batch.seq = self._batches
        try:
            self.store.write(batch)
        except Exception as exc:
            if is_busy(exc) and self._busy_failures < MAX_BUSY_RETRIES and not last:
                self._busy_failures += 1
                self._pending = batch  # locked by another writer for long: try again later
                return
            self._give_up(
                str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"
            )
            return
        self._busy_failures = 0
        self._start_written = True
        if batch.heartbeat is not None:
            self._last_beat = batch.heartbeat

    def _run_row(self, event: RunStarted) -> RecordedRun:
        return RecordedRun(
            run_id=self.run_id,
            target=self.target,
            label=self.label,
            target_tasks=tuple(event.target_tasks),
            params={name: param_record(value) for name, value in event.params.items()},
            status=RUNNING,
            started=event.timestamp,
            cascade_version=__version__,
            host=this_host(),
            pid=os.getpid(),
            process_token=process_token(),
            heartbeat=event.timestamp,
            trace_id=self._trace_id,
            resumed_from=self.resumed_from,
            checkpoints=self.checkpoints_location,
        )

    def _graph_nodes(self) -> GraphSnapshot:
        nodes = self._graph.nodes[: self._graph_size]
        codes = list(map(_KIND, nodes))
        if KIND_PARAM in codes:  # a param has no task: its name is its own
            names = list(map(_LAZY_NAME, nodes))
        else:  # the task's name without ``LazyResult.name``, a property call per node
            names = list(map(_TASK_NAME, nodes))
        if KIND_PARAM in codes or KIND_MAP in codes:
            kinds = list(map(_KIND_NAMES.get, codes, repeat("task")))
        else:
            kinds = ["task"] * len(codes)
        # A generator task's call is a stream (docs/streams.md): one look per distinct task.
        generators = {
            id(task) for task in set(map(_LAZY_TASK, nodes)) if getattr(task, "is_generator", False)
        }
        if generators:
            for position, node in enumerate(nodes):
                if id(node.lazy.task) in generators:
                    kinds[position] = "stream"
        return GraphSnapshot(
            ids=list(map(_LAZY_ID, nodes)), names=names, kinds=kinds, deps=list(map(_DEPS, nodes))
        )

    def _take_events(self, batch: RecordBatch) -> None:
        events = self._events
        taken = [events.popleft() for _ in range(len(events))]
        if not taken:
            return
        run_id = self.run_id
        restored = self.restored
        counted: list[Any] = []
        for event in taken:
            if event.run_id != run_id:
                continue
            kind = type(event)
            if kind is TasksSucceeded:
                # Statuses are counted in the order things happened: a task that failed and
                # then succeeded on a retry counts as succeeded.
                self._count(counted)
                counted = []
                self._take_successes(batch, event)
            elif kind is TaskExecutionFinished:
                batch.attempts.append(_MAKE_ATTEMPT(_ATTEMPT_FIELDS(event) + _NO_SKIP))
                counted.append(event)
                if event.status == "Failed":
                    failure = event.exception
                    batch.details.append(
                        AttemptDetail(
                            event.task_id,
                            event.attempt,
                            describe_failure(failure) if failure is not None else event.error,
                        )
                    )
            elif kind is TaskSkipped:
                reason = event.reason
                if reason == "CacheHit" and event.task_id in restored:
                    reason = CHECKPOINT
                batch.attempts.append(
                    RecordedAttempt(
                        event.task_id,
                        event.task_name,
                        SKIPPED,
                        0,
                        event.timestamp,
                        event.timestamp,
                        0.0,
                        "",
                        event.parent_task_id,
                        reason=reason,
                        upstream=event.upstream,
                    )
                )
                counted.append(event)
            elif kind is TaskRetrying:
                batch.retry_delays.append((event.task_id, event.attempt, event.delay))
            elif kind is RunFinished:
                batch.end = RunEnd(
                    event.status,
                    event.timestamp,
                    event.duration,
                    event.error,
                    event.error_type,
                )
        self._count(counted)

    def _take_logs(self, batch: RecordBatch, last: bool) -> None:
        """What tasks logged since the last write, one detail per attempt (and, at the end,
        a line for each attempt whose records were cut)."""
        sink = self.log_sink
        if sink is None:
            return
        lines = sink.lines
        taken = [lines.popleft() for _ in range(len(lines))]
        if last:
            taken.extend(sink.cut_notes())
        by_attempt: dict[tuple[str, int], list[LogLine]] = {}
        for task_id, attempt, line in taken:
            by_attempt.setdefault((task_id, attempt), []).append(line)
        batch.details.extend(
            AttemptDetail(task_id, attempt, None, tuple(found))
            for (task_id, attempt), found in by_attempt.items()
        )

    def note(self, task_id: str, kind: str, text: str) -> None:
        """A note on a task: why it ran (``NOTE_RAN``) or why its result was not checkpointed
        (``NOTE_UNSAVED``)."""
        self._notes.append((task_id, kind, text))

    def _take_successes(self, batch: RecordBatch, event: TasksSucceeded) -> None:
        """A ``TasksSucceeded``'s columns go to the store as they are: a wide run has many
        successes, and no object is made per attempt."""
        if not event.task_ids:
            return
        batch.successes.append(
            SucceededColumns(
                event.task_ids,
                event.task_names,
                event.parent_task_ids,
                event.attempt_numbers,
                event.start_times,
                event.end_times,
                event.executors,
            )
        )
        self._last_status.update(zip(event.task_ids, repeat(SUCCEEDED)))
        self._counts_changed = True

    def _count(self, events: list[Any]) -> None:
        """Each task's last status, for the run's task counts."""
        if events:
            # getattr(event, "status", "Skipped"): a skip has no status of its own.
            statuses = map(getattr, events, repeat("status"), repeat(SKIPPED))
            self._last_status.update(zip(map(_TASK_ID, events), statuses, strict=True))
            self._counts_changed = True

    def _write_checkpoints(self, batch: RecordBatch) -> None:
        while self._reused:
            batch.checkpoints.append(self._reused.popleft())
        pending = self._new_checkpoints
        count = len(pending)  # whole triples: the loop extends three at a time
        if not count:
            return
        taken = pending[:count]
        del pending[:count]
        task_ids, keys = taken[0::3], taken[1::3]
        values: dict[str, bytes] = dict(zip(keys, taken[2::3], strict=True))
        store = self.checkpoint_store
        if store is None or self._broken:
            return
        self._entries += 1
        entry = f"cascade-checkpoint/{self.run_id}/{self._entries}"
        try:
            store.set(entry, {"run_id": self.run_id, "values": values}, task=CHECKPOINT_TASK)
        except Exception as exc:
            where = self.checkpoints_location or repr(store)
            problem = (
                f"results of run {self.run_id[:8]} could not be checkpointed in {where}: "
                f"{type(exc).__name__}: {exc}; a resume of this run runs those tasks again"
            )
            if problem not in self.problems:
                self.problems.append(problem)
            return
        batch.checkpoint_columns.append(CheckpointColumns(entry, task_ids, keys))
        batch.entry_sizes[entry] = sum(map(len, values.values()))


def _merge(first: RecordBatch, second: RecordBatch) -> RecordBatch:
    """One batch holding ``first`` then ``second`` (a write that has to be tried again)."""
    first.start = first.start or second.start
    first.graph = first.graph if first.graph is not None else second.graph
    first.attempts.extend(second.attempts)
    first.successes.extend(second.successes)
    first.checkpoints.extend(second.checkpoints)
    first.checkpoint_columns.extend(second.checkpoint_columns)
    first.retry_delays.extend(second.retry_delays)
    first.details.extend(second.details)
    first.notes.extend(second.notes)
    first.entry_sizes.update(second.entry_sizes)
    first.heartbeat = second.heartbeat or first.heartbeat
    first.end = second.end or first.end
    return first


def dumps(value: Any) -> bytes:
    """How checkpointed results are pickled."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


__all__ = [
    "CHECKPOINT_TASK",
    "FLUSH_SECONDS",
    "Recorder",
    "dumps",
    "trace_id_now",
]
