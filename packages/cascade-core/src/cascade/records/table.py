"""A run's attempts read as its store keeps them, for answering about a very wide run quickly:
``cascade runs show`` on a 200,000-task run (``benchmarks/bench_runs_show.py``).

A store writes a batch's failures, skips and cancellations as rows and its successes as
columns (``SucceededColumns``, one sequence per field). ``AttemptTable`` keeps them so: picking
the tasks to show (by id or name, by status, at most N), counting them per task name
(``TaskGroup``) and making ``RecordedAttempt`` objects of only the chosen tasks then cost no
object per succeeded call, where reading every attempt first cost one, plus a pass to merge
them, per call. A success is always its task's last attempt, so a task's status is
``Succeeded`` when a success column holds its id, else its last row's.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from cascade.records.model import (
    FAILED,
    SKIPPED,
    SUCCEEDED,
    RecordedAttempt,
    RunStore,
    SucceededColumns,
)


@dataclass(slots=True)
class TaskGroup:
    """The calls of one task in a run, merged: how many ended in each status (by each call's
    last attempt), the attempts that ran and their summed duration, the ids of the calls that
    failed, the last error, and the last skip reason."""

    task_name: str
    calls: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    duration: float = 0.0
    failed_ids: list[str] = field(default_factory=list)
    error: str | None = None
    #: Why the last skipped call did not run (``UpstreamFailed``, ``Checkpoint``, ...).
    reason: str | None = None


#: One written batch: its rows (attempts that did not succeed), then its successes.
Batch = tuple[Sequence[RecordedAttempt], Sequence[SucceededColumns]]


@dataclass(frozen=True)
class AttemptTable:
    """The attempts of run ``run_id`` in ``store``, batch by batch (see the module
    docstring). ``read`` takes them from a store that keeps columns (``attempt_batches``),
    else from ``RunStore.attempts`` as rows."""

    run_id: str
    batches: Sequence[Batch]
    #: Adds tracebacks, logs and notes to rows read without them (the store's
    #: ``with_details``); ``None`` when the rows have them.
    details: Callable[[str, list[RecordedAttempt]], list[RecordedAttempt]] | None = None

    @classmethod
    def read(cls, store: RunStore, run_id: str) -> AttemptTable:
        batches = getattr(store, "attempt_batches", None)
        details = getattr(store, "with_details", None)
        if batches is None or details is None:
            return cls(run_id, [(store.attempts(run_id), ())])
        return cls(run_id, batches(run_id), details)

    # -- which tasks -------------------------------------------------------------------------

    def _superseded(self) -> set[str]:
        """The ids of tasks with a row (a failed attempt) that later succeeded."""
        row_ids = {row.task_id for rows, _ in self.batches for row in rows}
        found: set[str] = set()
        if row_ids:
            for _, successes in self.batches:
                for columns in successes:
                    found |= row_ids.intersection(columns.task_ids)
        return found

    def _last_rows(self) -> dict[str, RecordedAttempt]:
        """The last row of each task that did not later succeed, by task id, in the order
        the tasks first appear."""
        last = {row.task_id: row for rows, _ in self.batches for row in rows}
        for task_id in self._superseded():
            del last[task_id]
        return last

    def _successes(self) -> int:
        return sum(len(c.task_ids) for _, successes in self.batches for c in successes)

    def count(self, status: str | None = None) -> int:
        """How many tasks the run has (whose last attempt ended with ``status``, any case,
        when given)."""
        last = self._last_rows()
        if status is None:
            return self._successes() + len(last)
        wanted = status.lower()
        found = sum(1 for row in last.values() if row.status.lower() == wanted)
        return found + (self._successes() if wanted == SUCCEEDED.lower() else 0)

    def task_ids(self, status: str | None = None, limit: int | None = None) -> list[str]:
        """The ids of the run's tasks in the order they first appear, only those whose last
        attempt ended with ``status`` (any case) when given, at most ``limit``."""
        if status is None and limit is None:
            return list(self._order())
        wanted = status.lower() if status is not None else None
        last = self._last_rows()
        if wanted is not None and wanted != SUCCEEDED.lower():
            found = [i for i, row in last.items() if row.status.lower() == wanted]
            return found if limit is None else found[:limit]
        ids = self._ordered(last, wanted is None)
        return list(ids if limit is None else itertools.islice(ids, limit))

    def _ordered(self, last: dict[str, RecordedAttempt], every: bool) -> Iterator[str]:
        """The task ids in the order they first appear: every one, or the succeeded ones
        (the last rows of tasks that did not succeed later are ``last``)."""
        seen: set[str] = set()
        for rows, successes in self.batches:
            for row in rows:
                task_id = row.task_id
                if task_id in seen:
                    continue
                seen.add(task_id)
                found = last.get(task_id)
                if every or found is None or found.status == SUCCEEDED:
                    yield task_id
            for columns in successes:
                if not seen:
                    yield from columns.task_ids
                    continue
                for task_id in columns.task_ids:
                    if task_id not in seen:  # else shown where its failed attempt was
                        yield task_id

    def _order(self) -> dict[str, None]:
        """Every task id once, in the order they first appear."""
        parts: list[Iterable[str]] = []
        for rows, successes in self.batches:
            parts.append(map(operator.attrgetter("task_id"), rows))
            parts.extend(columns.task_ids for columns in successes)
        return dict.fromkeys(itertools.chain.from_iterable(parts))

    def of_task(self, task: str) -> AttemptTable:
        """Only the calls of ``task``: a task id, or a task name (every call of it)."""
        kept: list[Batch] = []
        for rows, successes in self.batches:
            mine = [r for r in rows if r.task_id == task or r.task_name == task]
            columns = [_of_task(c, task) for c in successes]
            kept.append((mine, [c for c in columns if c.task_ids]))
        return AttemptTable(self.run_id, kept, self.details)

    # -- what is shown -----------------------------------------------------------------------

    def attempts(self, task_ids: Collection[str] | None = None) -> list[RecordedAttempt]:
        """The attempts of the tasks in ``task_ids`` (all: ``None``), in recorded order, with
        their tracebacks, logs and notes."""
        found: list[RecordedAttempt] = []
        for rows, successes in self.batches:
            if task_ids is None:
                found.extend(rows)
            else:
                found.extend(r for r in rows if r.task_id in task_ids)
            for columns in successes:
                if task_ids is not None:
                    columns = _among(columns, task_ids)
                found.extend(columns.rows())
        return found if self.details is None else self.details(self.run_id, found)

    def groups(self, task_ids: Collection[str] | None = None) -> list[TaskGroup]:
        """The tasks merged per task name, as ``history.group_tasks`` merges attempts (in
        the order names first appear), counting only the calls in ``task_ids`` when given."""
        superseded = self._superseded()
        groups: dict[str, TaskGroup] = {}

        def group(name: str) -> TaskGroup:
            found = groups.get(name)
            if found is None:
                found = groups[name] = TaskGroup(name)
            return found

        last: dict[str, RecordedAttempt] = {}
        for rows, successes in self.batches:
            for row in rows:
                if task_ids is not None and row.task_id not in task_ids:
                    continue
                found = group(row.task_name)
                last[row.task_id] = row
                if row.status != SKIPPED:
                    found.attempts += 1
                    found.duration += row.duration
            for columns in successes:
                if task_ids is not None:
                    columns = _among(columns, task_ids)
                names = dict.fromkeys(columns.task_names)
                for name in names:
                    group(name)
                _add_successes(groups, columns, names)
        for task_id, row in last.items():
            if task_id in superseded:
                continue  # a failed attempt that succeeded later: counted with the successes
            found = groups[row.task_name]
            found.calls += 1
            found.statuses[row.status] = found.statuses.get(row.status, 0) + 1
            if row.status == FAILED:
                found.failed_ids.append(task_id)
                found.error = row.error
            elif row.status == SKIPPED:
                found.reason = row.reason
        return list(groups.values())


def _pick(columns: SucceededColumns, positions: Sequence[int]) -> SucceededColumns:
    """The successes of ``columns`` at ``positions``."""
    if len(positions) == len(columns.task_ids):
        return columns
    return SucceededColumns._make([column[i] for i in positions] for column in columns)


def _among(columns: SucceededColumns, task_ids: Collection[str]) -> SucceededColumns:
    """The successes of ``columns`` whose task id is in ``task_ids``."""
    return _pick(columns, [i for i, task_id in enumerate(columns.task_ids) if task_id in task_ids])


def _of_task(columns: SucceededColumns, task: str) -> SucceededColumns:
    """The successes of ``columns`` of ``task`` (a task id or a task name); a batch of one
    task's calls, the common case, is taken or left whole."""
    names = set(columns.task_names)
    if task in names:
        if len(names) == 1:
            return columns
        return _pick(columns, [i for i, name in enumerate(columns.task_names) if name == task])
    try:
        return _pick(columns, [columns.task_ids.index(task)])
    except ValueError:
        return _pick(columns, [])


def _add_successes(
    groups: dict[str, TaskGroup], columns: SucceededColumns, names: dict[str, None]
) -> None:
    """Count a column batch of successes into their tasks' groups (one name, the common
    case of a wide map, without a Python step per call)."""
    durations = list(map(operator.sub, columns.end_times, columns.start_times))
    if durations and min(durations) < 0.0:  # a clock that stepped back: as ``rows`` does
        durations = [max(d, 0.0) for d in durations]
    if len(names) == 1:
        (name,) = names
        found = groups[name]
        count = len(columns.task_ids)
        found.calls += count
        found.attempts += count
        found.statuses[SUCCEEDED] = found.statuses.get(SUCCEEDED, 0) + count
        found.duration += sum(durations)
        return
    for name, duration in zip(columns.task_names, durations, strict=True):
        found = groups[name]
        found.calls += 1
        found.attempts += 1
        found.statuses[SUCCEEDED] = found.statuses.get(SUCCEEDED, 0) + 1
        found.duration += duration


__all__ = ["AttemptTable", "TaskGroup"]
