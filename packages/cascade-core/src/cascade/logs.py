"""Built-in subscribers."""

from __future__ import annotations

import sys
from typing import IO, Any

from cascade.bus import MessageBus
from cascade.events import (
    Event,
    ResourceAcquired,
    ResourceReleased,
    RunFinished,
    RunStarted,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskRetrying,
    TaskSkipped,
)

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def level_number(level: str | int) -> int:
    """``"INFO"`` → 20; an unknown name is an error listing the known ones."""
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}") from None


class HumanReadableLogSubscriber:
    """Prints one readable line per run, task and resource event to ``stream``.

    ``level="WARNING"`` keeps only retries and failures; ``"ERROR"`` only failures.
    """

    def __init__(
        self, bus: MessageBus, stream: IO[str] | None = None, level: str | int = "INFO"
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.level = level_number(level)
        bus.subscribe(Event, self.on_event)

    def _line(self, level: int, text: str) -> None:
        if level >= self.level:
            print(f"[cascade] {text}", file=self.stream, flush=True)

    def on_event(self, event: Any) -> None:
        if isinstance(event, TaskExecutionStarted):
            attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self._line(20, f"▶ {event.task_name} started{attempt}")
        elif isinstance(event, TaskExecutionFinished):
            if event.status == "Succeeded":
                self._line(20, f"✓ {event.task_name} succeeded in {event.duration:.3f}s")
            elif event.status == "Failed":
                self._line(40, f"✗ {event.task_name} failed: {event.error}")
            else:
                self._line(30, f"■ {event.task_name} cancelled")
        elif isinstance(event, TaskSkipped):
            self._line(20, f"↷ {event.task_name} skipped ({event.reason})")
        elif isinstance(event, TaskRetrying):
            self._line(
                30,
                f"↻ {event.task_name} attempt {event.attempt} failed ({event.error}); "
                f"retrying in {event.delay:.2f}s",
            )
        elif isinstance(event, RunStarted):
            targets = ", ".join(event.target_tasks)
            self._line(20, f"run {event.run_id[:8]} started for {targets}")
        elif isinstance(event, RunFinished):
            level = 20 if event.status == "Succeeded" else 40
            error = f": {event.error}" if event.error else ""
            self._line(
                level,
                f"run {event.run_id[:8]} {event.status.lower()} in {event.duration:.3f}s{error}",
            )
        elif isinstance(event, ResourceAcquired):
            self._line(10, f"resource {event.resource_name} acquired")
        elif isinstance(event, ResourceReleased):
            self._line(10, f"resource {event.resource_name} released")
