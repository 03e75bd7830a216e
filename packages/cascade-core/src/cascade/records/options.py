"""What a recorded run keeps, in one place: ``RecordOptions``, given to ``cs.run(...,
record_options=...)`` or read from ``CASCADE_*`` environment variables.

- ``logs``: the lowest level of the log records captured from tasks (``"INFO"``), or ``None``
  to capture none (``CASCADE_CAPTURE_LOGS``: a level name or ``off``); ``max_log_records``
  per attempt.
- ``max_checkpoint_bytes``: a result whose pickle is larger is not checkpointed, with one
  warning naming the task and its size (``CASCADE_MAX_CHECKPOINT_BYTES``: ``50MB``,
  ``1GiB``, ``0`` for no limit). A task can say otherwise (``@cs.task(checkpoint=...)``).
- ``keep_checkpoints``: the checkpoints of this many recent runs per target are kept, the
  ones a resume can start from, and older runs' are dropped when a run ends
  (``CASCADE_KEEP_CHECKPOINTS``).
- ``keep_runs`` / ``keep_for``: run rows beyond that count per target, or older than that
  (seconds or ``"90d"``), are deleted when a run ends (``CASCADE_KEEP_RUNS``,
  ``CASCADE_KEEP_RUNS_FOR``); by default every run row is kept.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from cascade.records.capture import DEFAULT_LOG_LIMIT
from cascade.records.history import parse_duration
from cascade.spec.policies import parse_size

#: A result larger than this (pickled) is not checkpointed unless its task says otherwise.
DEFAULT_MAX_CHECKPOINT_BYTES = 100 * 1024 * 1024
#: Recent runs per target whose checkpoints are kept.
DEFAULT_KEEP_CHECKPOINTS = 10

ENV_CAPTURE_LOGS = "CASCADE_CAPTURE_LOGS"
ENV_MAX_CHECKPOINT_BYTES = "CASCADE_MAX_CHECKPOINT_BYTES"
ENV_KEEP_CHECKPOINTS = "CASCADE_KEEP_CHECKPOINTS"
ENV_KEEP_RUNS = "CASCADE_KEEP_RUNS"
ENV_KEEP_RUNS_FOR = "CASCADE_KEEP_RUNS_FOR"

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def level_of(level: str | int | None, what: str) -> int | None:
    """A log level as a number (``None``, ``"off"``: no capture)."""
    if level is None:
        return None
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    name = str(level).strip().upper()
    if name in ("OFF", "NONE", "FALSE", "0", ""):
        return None
    if name not in _LEVELS:
        raise ValueError(
            f"{what}: unknown log level {level!r}; use one of {', '.join(_LEVELS)} or off"
        )
    return _LEVELS[name]


@dataclass(frozen=True)
class RecordOptions:
    """What a recorded run keeps (see the module docstring). Fields left ``...`` (the
    default) come from the environment, else from the defaults."""

    logs: Any = ...
    max_log_records: int = DEFAULT_LOG_LIMIT
    max_checkpoint_bytes: Any = ...
    keep_checkpoints: Any = ...
    keep_runs: Any = ...
    keep_for: Any = ...

    def resolved(self) -> ResolvedOptions:
        """Every field decided: given here, else from ``CASCADE_*``, else the default."""
        from_env = os.environ.get
        logs = self.logs if self.logs is not ... else from_env(ENV_CAPTURE_LOGS, "INFO")
        size = (
            self.max_checkpoint_bytes
            if self.max_checkpoint_bytes is not ...
            else from_env(ENV_MAX_CHECKPOINT_BYTES) or DEFAULT_MAX_CHECKPOINT_BYTES
        )
        keep = (
            self.keep_checkpoints
            if self.keep_checkpoints is not ...
            else from_env(ENV_KEEP_CHECKPOINTS) or DEFAULT_KEEP_CHECKPOINTS
        )
        runs = self.keep_runs if self.keep_runs is not ... else from_env(ENV_KEEP_RUNS) or None
        age = self.keep_for if self.keep_for is not ... else from_env(ENV_KEEP_RUNS_FOR) or None
        if not isinstance(self.max_log_records, int) or self.max_log_records < 1:
            raise ValueError(
                "RecordOptions: max_log_records must be a positive int, got "
                f"{self.max_log_records!r}"
            )
        limit = (
            None
            if size is None
            else parse_size(size, "max_checkpoint_bytes / " + ENV_MAX_CHECKPOINT_BYTES)
        )
        return ResolvedOptions(
            logs=level_of(logs, "RecordOptions.logs / " + ENV_CAPTURE_LOGS),
            max_log_records=self.max_log_records,
            max_checkpoint_bytes=limit or None,
            keep_checkpoints=_count(keep, "keep_checkpoints / " + ENV_KEEP_CHECKPOINTS),
            keep_runs=None if runs is None else _count(runs, "keep_runs / " + ENV_KEEP_RUNS),
            keep_for=None if age is None else _age(age),
        )


@dataclass(frozen=True)
class ResolvedOptions:
    """``RecordOptions`` with every field decided (``None``: no capture, no limit)."""

    logs: int | None = 20
    max_log_records: int = DEFAULT_LOG_LIMIT
    max_checkpoint_bytes: int | None = DEFAULT_MAX_CHECKPOINT_BYTES
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS
    keep_runs: int | None = None
    keep_for: float | None = None

    def replace(self, **changes: Any) -> ResolvedOptions:
        return dataclasses.replace(self, **changes)


def _count(value: Any, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: a whole number is needed, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{what}: must be at least 1, got {number}")
    return number


def _age(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = parse_duration(str(value))
    if seconds <= 0:
        raise ValueError(f"keep_for / {ENV_KEEP_RUNS_FOR}: must be positive, got {value!r}")
    return seconds


__all__ = [
    "DEFAULT_KEEP_CHECKPOINTS",
    "DEFAULT_MAX_CHECKPOINT_BYTES",
    "ENV_CAPTURE_LOGS",
    "ENV_KEEP_CHECKPOINTS",
    "ENV_KEEP_RUNS",
    "ENV_KEEP_RUNS_FOR",
    "ENV_MAX_CHECKPOINT_BYTES",
    "RecordOptions",
    "ResolvedOptions",
    "level_of",
]
