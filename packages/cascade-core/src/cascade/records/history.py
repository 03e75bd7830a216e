"""Reading and tidying history: one run with its tasks summed up, deleting runs and pruning
old ones (with the checkpoints nothing else refers to), and the durations those take."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from cascade.records.model import (
    FAILED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    RecordedAttempt,
    RecordedRun,
    RecordError,
    RunStore,
)
from cascade.records.table import AttemptTable, TaskGroup

logger = logging.getLogger("cascade.records")

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in ``"30d"``, ``"12h"``, ``"1w2d"``, ``"90m"``, ``"45s"`` (``ValueError``
    otherwise)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a duration such as 30d, 12h or 90m is needed, got {text!r}")
    total, position = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2).lower()]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit, s, m, h, d or w (30d, 12h, 1w2d)"
        )
    return total


@dataclass(slots=True)
class TaskSummary:
    """What happened to one task (or one mapped item) of a run, over its attempts."""

    task_id: str
    task_name: str
    status: str
    attempts: int
    duration: float
    started: float | None
    ended: float | None
    executor: str
    reason: str | None
    error: str | None
    parent_task_id: str | None
    history: list[RecordedAttempt] = field(default_factory=list)
    #: Why the task ran, in a run that resumed another (see ``cascade.records.explain``).
    why_ran: str | None = None
    #: The call's run name (``@cs.task(run_name=...)``), if its task has one.
    call_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task": self.task_name,
            "status": self.status,
            "attempts": self.attempts,
            "duration": round(self.duration, 6),
            "started": self.started,
            "ended": self.ended,
            "executor": self.executor or None,
            "skip_reason": self.reason,
            "error": self.error,
            "parent_task_id": self.parent_task_id,
            "why_ran": self.why_ran,
            "call_name": self.call_name,
        }


def summarize_tasks(attempts: Sequence[RecordedAttempt]) -> list[TaskSummary]:
    """One summary per task id, in the order the tasks first finished: its last status, the
    number of attempts that ran, their summed duration, and the last error. (Most tasks have
    one attempt, which takes a short path: a 200,000-task run is summed up in well under a
    second, see benchmarks/bench_runs_show.py.)"""
    by_id: dict[str, list[RecordedAttempt]] = {}
    get = by_id.get
    for attempt in attempts:
        found = get(attempt.task_id)
        if found is None:
            by_id[attempt.task_id] = [attempt]
        else:
            found.append(attempt)
    summaries: list[TaskSummary] = []
    add = summaries.append
    for task_id, history in by_id.items():
        last = history[-1]
        if len(history) == 1:
            ran = last.status != SKIPPED
            add(
                TaskSummary(
                    task_id,
                    last.task_name,
                    last.status,
                    1 if ran else 0,
                    last.duration if ran else 0.0,
                    last.started,
                    last.ended,
                    last.executor if ran else "",
                    last.reason,
                    last.error if ran and last.status != SUCCEEDED else None,
                    last.parent_task_id,
                    history,
                    last.why_ran,
                    last.call_name,
                )
            )
            continue
        ran_attempts = [a for a in history if a.status != SKIPPED]
        errors = [a.error for a in ran_attempts if a.error]
        add(
            TaskSummary(
                task_id=task_id,
                task_name=last.task_name,
                status=last.status,
                attempts=len(ran_attempts),
                duration=sum(a.duration for a in ran_attempts),
                started=min((a.started for a in history), default=None),
                ended=max((a.ended for a in history), default=None),
                executor=", ".join(sorted({a.executor for a in ran_attempts if a.executor})),
                reason=last.reason,
                error=errors[-1] if errors and last.status != SUCCEEDED else None,
                parent_task_id=last.parent_task_id,
                history=history,
                why_ran=next((a.why_ran for a in history if a.why_ran), None),
                call_name=last.call_name,
            )
        )
    return summaries


def group_tasks(
    attempts: Sequence[RecordedAttempt], task_ids: Collection[str] | None = None
) -> list[TaskGroup]:
    """The attempts merged per task name (in the order names first appear), counting only the
    calls in ``task_ids`` when given: what a very wide run's summary shows instead of a row
    per call, computed without a ``TaskSummary`` per call (``AttemptTable.groups``)."""
    return AttemptTable("", [(attempts, ())]).groups(task_ids)


def get_run(store: RunStore, run_id: str) -> RecordedRun:
    """The run ``run_id`` (or a unique prefix of it), or a ``RecordError`` listing the latest
    runs when there is none."""
    found = store.run(run_id)
    if found is not None:
        return found
    latest = store.runs(limit=5)
    listed = "".join(f"\n  {r.run_id}  {r.status:<9}  {r.target}" for r in latest)
    hint = f"; the latest runs:{listed}" if latest else "; no runs are recorded there"
    raise RecordError(f"no run '{run_id}' in {store.location}{hint}")


def delete_runs(store: RunStore, run_ids: Sequence[str]) -> int:
    """Delete runs by id and the checkpoint entries no remaining run refers to; returns how
    many checkpoint entries were removed."""
    return remove_entries(store, store.delete(list(run_ids)))


def remove_entries(store: RunStore, entries: Sequence[tuple[str | None, str]]) -> int:
    """Remove checkpoint entries (``(checkpoints location, entry)``) from their cache store;
    returns how many were removed (one that cannot be is logged, not raised)."""
    removed = 0
    for location, entry in entries:
        try:
            if store.checkpoint_store(location).delete(entry):
                removed += 1
        except Exception as exc:
            logger.warning(
                "checkpoint entry %s in %s could not be removed: %s: %s",
                entry,
                location,
                type(exc).__name__,
                exc,
            )
    return removed


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` removed: the runs and the number of checkpoint entries."""

    runs: list[RecordedRun]
    checkpoint_entries: int


def prune(
    store: RunStore,
    older_than: float | None = None,
    *,
    keep: int | None = None,
    target: str | None = None,
    now: float | None = None,
    dry_run: bool = False,
) -> Pruned:
    """Delete the runs that started more than ``older_than`` seconds ago, and those beyond
    the ``keep`` latest of their target (never one still running), with their checkpoints."""
    if older_than is None and keep is None:
        raise ValueError("prune needs older_than (seconds), keep (runs per target), or both")
    doomed = runs_to_prune(store, older_than, keep, target=target, now=now)
    if dry_run or not doomed:
        return Pruned(doomed, 0)
    return Pruned(doomed, delete_runs(store, [r.run_id for r in doomed]))


def runs_to_prune(
    store: RunStore,
    older_than: float | None,
    keep: int | None,
    *,
    target: str | None = None,
    now: float | None = None,
    spare: str | None = None,
) -> list[RecordedRun]:
    """The runs ``prune`` deletes: started more than ``older_than`` seconds ago, or beyond
    the ``keep`` latest runs of their target; never a run still running, nor ``spare``."""
    if older_than is not None and older_than < 0:
        raise ValueError(f"older_than must not be negative, got {older_than!r}")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep must be a whole number >= 1, got {keep!r}")
    cutoff = None if older_than is None else (time.time() if now is None else now) - older_than
    if keep is None:
        assert cutoff is not None
        found = store.runs(target=target, before=cutoff)
    else:
        found = store.runs(target=target)
    seen: dict[str, int] = {}
    doomed = []
    for run in found:  # newest first
        position = seen.get(run.target, 0)
        seen[run.target] = position + 1
        if run.status == RUNNING or run.run_id == spare:
            continue
        old = cutoff is not None and run.started < cutoff
        if old or (keep is not None and position >= keep):
            doomed.append(run)
    return doomed


def failed_first(summaries: Sequence[TaskSummary]) -> list[TaskSummary]:
    """Failures first, then the rest in their order."""
    return sorted(summaries, key=lambda s: s.status != FAILED)


__all__ = [
    "Pruned",
    "TaskGroup",
    "TaskSummary",
    "delete_runs",
    "failed_first",
    "get_run",
    "group_tasks",
    "parse_duration",
    "prune",
    "remove_entries",
    "runs_to_prune",
    "summarize_tasks",
]
