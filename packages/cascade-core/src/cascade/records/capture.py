"""Log capture: what a task logs through ``logging`` while a recorded run runs it.

Whose record is it? An ``async def`` call on the engine's fast path carries nothing: the
handler finds it as the running asyncio task among the run's calls in flight (or as the
call being submitted, for an eager first step; ``RecordingSession.watch``), so such a task
that logs nothing costs nothing. Every other attempt (sync calls, retries, timeouts, map
items, other executors) is marked in the ``contextvars.Context`` it runs in
(``cascade.records.mark.ATTEMPT``: run id, task id, attempt number; the executor copies that
context for the call anyway), and threads and coroutines started for it inherit the mark.
Either way a record emitted by the task's own code or by a library it calls is the task's.
One handler, ``LogCapture``, sits on the root logger while at least one run in the process
captures, and is removed when the last one ends: outside a task (or in a run that does not
capture) it returns at once. Records of Cascade's own loggers (``cascade.*``) are not a
task's.

Calls that run in other processes (``processes``, cascade-dask) collect what they log where
they run (``cascade.executors.run_spec``), at the level the run would have captured here, and
the executor hands the lines back with the result: ``LogSink.receive``, through the
``LogShipping`` the run gives its executors (``log_shipping``). A run that does not capture
gives none, and workers collect nothing.

The level that reaches a handler is the logging configuration's: Python's default lets only
warnings through, and a library never changes that configuration on its own. So from Python a
run captures what the application's levels let through (``logging.basicConfig(level=
logging.INFO)`` lets INFO records be captured). An application that owns the process's logging
may allow more with ``allow_capture_below_root_level()``, as the ``cascade`` command does: then,
when a run captures a lower level than the root logger's, the root's level is lowered for as
long as captures last, and every handler on the root logger at that moment is given a filter
that keeps what it showed before (put back at the end), so the application's own output does
not change.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cascade.executors import LogShipping, ShippedLine, is_cascade_logger, log_line
from cascade.records.mark import ATTEMPT
from cascade.records.model import LOG_MESSAGE_LIMIT, LogLine

#: Log records captured per attempt by default; the rest are counted, and a last line says so.
DEFAULT_LOG_LIMIT = 200


@dataclass
class LogSink:
    """What one run captures: records at ``level`` and above, at most ``limit`` per attempt.
    ``lines`` fills as tasks log (task id, attempt, line); the recorder's thread drains it."""

    level: int = logging.INFO
    limit: int = DEFAULT_LOG_LIMIT
    lines: deque[tuple[str, int, LogLine]] = field(default_factory=deque)
    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    #: The engine's run (``inflight``: future → graph node; ``submitting``: a graph node).
    run: Any = None

    def receive(self, task_id: str, attempt: int, lines: list[ShippedLine], emitted: int) -> None:
        """Lines an attempt logged in a worker, shipped back by its executor: kept as the
        lines captured here are (``emitted`` counts what the worker left out, too)."""
        key = (task_id, attempt)
        before = self.counts.get(key, 0)
        self.counts[key] = before + emitted
        for line in lines[: max(0, self.limit - before)]:
            self.lines.append((task_id, attempt, LogLine(*line)))

    def cut_notes(self) -> list[tuple[str, int, LogLine]]:
        """One line per attempt that logged more than ``limit`` records, saying how many were
        left out (taken once the attempt is over: the recorder asks at the end of the run)."""
        notes = []
        for (task_id, attempt), count in self.counts.items():
            if count > self.limit:
                notes.append(
                    (
                        task_id,
                        attempt,
                        LogLine(
                            0.0,
                            "NOTE",
                            "cascade.records",
                            f"{count - self.limit} more log record(s) of this attempt were not "
                            f"kept (the limit is {self.limit} per attempt)",
                        ),
                    )
                )
        return notes


class _Threshold(logging.Filter):
    """Keeps what a handler showed before the root's level was lowered for a capture."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


class LogCapture(logging.Handler):
    """The one handler on the root logger while runs capture (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        #: Whether it may lower the root logger's level (``allow_capture_below_root_level``).
        self.lowers_root = False
        self.sinks: dict[str, LogSink] = {}
        self._lock_sinks = threading.Lock()
        self._saved_level: int | None = None
        self._filtered: list[tuple[logging.Handler, _Threshold]] = []

    def emit(self, record: logging.LogRecord) -> None:
        current = ATTEMPT.get()
        if current is None:
            current = self._fast_path_call()
            if current is None:
                return
        sink = self.sinks.get(current[0])
        if sink is None or record.levelno < sink.level:
            return
        if is_cascade_logger(record.name):
            return
        key = (current[1], current[2])
        count = sink.counts.get(key, 0) + 1
        sink.counts[key] = count
        if count > sink.limit:
            return
        sink.lines.append((key[0], key[1], LogLine(*log_line(record, LOG_MESSAGE_LIMIT))))

    def _fast_path_call(self) -> tuple[str, str, int] | None:
        """The unmarked ``async def`` call emitting now, if it is one of a capturing run's:
        the running asyncio task among the run's calls in flight, or the call the run is
        submitting (its eager first step runs before it is in flight)."""
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no event loop in this thread
            return None
        if task is None:
            return None
        for run_id, sink in list(self.sinks.items()):
            run = sink.run
            if run is None:
                continue
            node = run.inflight.get(task) or run.submitting
            if node is not None:
                return run_id, node.lazy.id, 1
        return None

    # -- runs come and go ------------------------------------------------------------------------

    def add(self, run_id: str, sink: LogSink) -> None:
        """Capture for run ``run_id`` into ``sink`` (installing the handler if it is the
        first)."""
        with self._lock_sinks:
            self.sinks[run_id] = sink
            root = logging.getLogger()
            if self not in root.handlers:
                root.addHandler(self)
            self._lower_root(min(s.level for s in self.sinks.values()))

    def remove(self, run_id: str) -> None:
        """Stop capturing for ``run_id``; the last one out removes the handler and puts the
        root logger back as it was."""
        with self._lock_sinks:
            self.sinks.pop(run_id, None)
            if self.sinks:
                return
            root = logging.getLogger()
            root.removeHandler(self)
            for handler, threshold in self._filtered:
                handler.removeFilter(threshold)
            self._filtered = []
            if self._saved_level is not None:
                root.setLevel(self._saved_level)
                self._saved_level = None

    def _lower_root(self, level: int) -> None:
        root = logging.getLogger()
        if (
            not self.lowers_root or root.level <= level
        ):  # NOTSET (0) on the root lets everything through already
            return
        if self._saved_level is None:
            self._saved_level = root.level
            for handler in root.handlers:
                if handler is not self:
                    threshold = _Threshold(root.level)
                    handler.addFilter(threshold)
                    self._filtered.append((handler, threshold))
        root.setLevel(level)

    def shipping(self, sink: LogSink) -> LogShipping:
        """How executors that run calls elsewhere send back what the run's tasks log there:
        at the sink's level, or the root logger's when that is higher and may not be lowered
        (what would have reached this handler had the call run here)."""
        level = sink.level
        if not self.lowers_root:
            level = max(level, logging.getLogger().getEffectiveLevel())
        return LogShipping(level, sink.limit, sink.receive, LOG_MESSAGE_LIMIT)


#: The process's one capture handler.
CAPTURE = LogCapture()


def allow_capture_below_root_level(allowed: bool = True) -> None:
    """Let recorded runs lower the root logger's level while they capture logs below it (see
    this module's docstring). For applications that own the process's logging configuration,
    such as the ``cascade`` command; by default Cascade leaves the configuration alone and a
    run captures what the application's levels let through."""
    CAPTURE.lowers_root = allowed


__all__ = [
    "CAPTURE",
    "DEFAULT_LOG_LIMIT",
    "LogCapture",
    "LogSink",
    "allow_capture_below_root_level",
]
