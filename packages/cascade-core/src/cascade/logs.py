"""The human-readable log of a run, through the standard ``logging`` module.

``HumanReadableLogSubscriber`` turns events into one line each on the ``cascade`` logger tree
(``cascade.run``, ``cascade.task``, ``cascade.resource``), so applications filter, format and
redirect them as they do for any library. It subscribes only to the events its level can
show: at ``WARNING`` it asks for failures and retries, never for starts and successes, which
keeps the engine on its cheapest path. ``cs.run`` shows the lines on stderr through
``default_handler()`` only while the application has configured no logging of its own.

The built-in plugin (``cascade.builtin``) attaches one subscriber to every engine made with
a ``log_level``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import IO, Any

from cascade.bus import MessageBus
from cascade.events import (
    ResourceAcquired,
    ResourceReleased,
    RunFinished,
    RunStarted,
    TaskEvent,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskNamed,
    TaskRetrying,
    TaskSkipped,
)

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}

ROOT_LOGGER = "cascade"
run_logger = logging.getLogger("cascade.run")
task_logger = logging.getLogger("cascade.task")
resource_logger = logging.getLogger("cascade.resource")


def level_number(level: str | int) -> int:
    """``"INFO"`` → 20; an unknown name is an error listing the known ones."""
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.upper()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}") from None


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes ``[cascade] line`` to the current ``sys.stderr``; a closed or broken stream
    (the reader of a pipe went away) is not an error of the run."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("[cascade] %(message)s"))

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it
        pass

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ValueError, OSError)):
            return
        super().handleError(record)


_default_handler = _StderrHandler()
_installed = 0


@contextlib.contextmanager
def default_handler() -> Iterator[None]:
    """While inside, show ``cascade`` log lines on stderr if the application has configured
    no handler that would receive them (nothing on the ``cascade`` loggers or the root). The
    handler is removed afterwards; nothing else about logging is changed."""
    global _installed
    root = logging.getLogger(ROOT_LOGGER)
    if _installed == 0 and root.hasHandlers():
        yield  # the application's logging configuration decides
        return
    if _installed == 0:
        root.addHandler(_default_handler)
    _installed += 1
    try:
        yield
    finally:
        _installed -= 1
        if _installed == 0:
            root.removeHandler(_default_handler)


def _shows_everything() -> bool:
    """Whether our own handler is what shows the lines (then the subscriber's level decides,
    not the logger's effective level, which is the root's WARNING by default)."""
    return _installed > 0


class HumanReadableLogSubscriber:
    """One readable line per run, task and resource event.

    ``level="WARNING"`` keeps only retries and failures, ``"ERROR"`` only failures. Lines go
    to the ``cascade`` loggers; with ``stream=`` they are written to that stream instead (one
    place, no logging configuration, as the command line and tests use it).
    """

    def __init__(
        self, bus: MessageBus, stream: IO[str] | None = None, level: str | int = "INFO"
    ) -> None:
        self.stream = stream
        self.level = level_number(level)
        #: Run names of calls (``TaskNamed``) by task id, while the call runs.
        self.names: dict[str, str] = {}
        shows = self.level.__le__
        if shows(40):
            bus.subscribe(TaskNamed, self.on_named)
        if shows(20):
            bus.subscribe(RunStarted, self.on_run_started)
            bus.subscribe(TaskExecutionStarted, self.on_started)
            bus.subscribe(TaskSkipped, self.on_skipped)
        if shows(40):
            statuses = None if shows(20) else ({"Failed", "Cancelled"} if shows(30) else {"Failed"})
            bus.subscribe(TaskExecutionFinished, self.on_finished, statuses=statuses)
            bus.subscribe(RunFinished, self.on_run_finished)
        if shows(30):
            bus.subscribe(TaskRetrying, self.on_retrying)
        if shows(10):
            bus.subscribe(ResourceAcquired, self.on_resource)
            bus.subscribe(ResourceReleased, self.on_resource)

    def _line(self, logger: logging.Logger, level: int, text: str) -> None:
        if level < self.level:
            return
        if self.stream is not None:
            try:
                print(f"[cascade] {text}", file=self.stream, flush=True)
            except (BrokenPipeError, ValueError, OSError):
                pass  # nobody reads the stream any more: not an error of the run
            return
        if _shows_everything() or logger.isEnabledFor(level):
            logger.handle(logger.makeRecord(logger.name, level, "(cascade)", 0, text, (), None))

    def on_run_started(self, event: RunStarted) -> None:
        targets = ", ".join(event.target_tasks)
        self._line(run_logger, 20, f"run {event.run_id[:8]} started for {targets}")

    def on_named(self, event: TaskNamed) -> None:
        self.names[event.task_id] = event.call_name

    def _who(self, event: TaskEvent, done: bool = False) -> str:
        """The call's run name if it has one, else its task name (with the map index)."""
        names = self.names
        if names:
            named = names.pop(event.task_id, None) if done else names.get(event.task_id)
            if named is not None:
                return named
        return _who(event.task_name, event.task_id)

    def on_started(self, event: TaskExecutionStarted) -> None:
        attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
        self._line(task_logger, 20, f"▶ {self._who(event)} started{attempt}")

    def on_finished(self, event: TaskExecutionFinished) -> None:
        who = self._who(event, done=not event.will_retry)
        if event.status == "Succeeded":
            self._line(task_logger, 20, f"✓ {who} succeeded in {event.duration:.3f}s")
        elif event.status == "Failed":
            if event.will_retry:
                return  # the retry line says it, with the error
            self._line(task_logger, 40, f"✗ {who} failed: {event.error}")
        else:
            self._line(task_logger, 30, f"■ {who} cancelled")

    def on_skipped(self, event: TaskSkipped) -> None:
        self._line(task_logger, 20, f"↷ {self._who(event, done=True)} skipped ({event.reason})")

    def on_retrying(self, event: TaskRetrying) -> None:
        self._line(
            task_logger,
            30,
            f"↻ {self._who(event)} attempt {event.attempt} failed "
            f"({event.error}); retrying in {event.delay:.2f}s",
        )

    def on_run_finished(self, event: RunFinished) -> None:
        level = 20 if event.status == "Succeeded" else 40
        error = f": {event.error}" if event.error else ""
        self._line(
            run_logger,
            level,
            f"run {event.run_id[:8]} {event.status.lower()} in {event.duration:.3f}s{error}",
        )

    def on_resource(self, event: ResourceAcquired | ResourceReleased) -> None:
        verb = "acquired" if isinstance(event, ResourceAcquired) else "released"
        self._line(resource_logger, 10, f"resource {event.resource_name} {verb}")


def _who(task_name: str, task_id: str) -> str:
    """The task name, with the item index for an item of a ``.map`` (``fetch[3]``)."""
    if task_id.endswith("]") and "[" in task_id:
        return f"{task_name}{task_id[task_id.rindex('[') :]}"
    return task_name


__all__ = ["HumanReadableLogSubscriber", "default_handler", "level_number"]
