"""Run records (a public module): the history of runs in a store, checkpoints, and resume.

``cs.run(target, record=True)`` records the run (its params, status, timing, host and pid, the
trace id when traced, and every task attempt) in the default store, an SQLite file at
``.cascade/runs.sqlite3`` (or ``$CASCADE_HOME/runs.sqlite3``), and checkpoints the results of
the tasks that succeed. ``cs.run(target, resume="last")`` (or a run id) runs it again, taking
the checkpointed value of every task that succeeded there with unchanged code and inputs.
``cascade runs list|show|delete|prune|report`` read and tidy the history; see
docs/history.md.

The parts, each in its own module: ``model`` (records, statuses, the ``RunStore`` protocol),
``sqlite`` (the built-in store), ``recorder`` (the bus subscriber and its writer thread),
``checkpoint`` (the checkpoint policy that also resumes), ``session`` (what ``Engine.run``
opens), ``history`` (reading, deleting and pruning), ``table`` (a wide run's attempts as
stored) and ``report`` (the HTML report). Names load on first use, so ``import cascade``
loads none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascade.records.capture import allow_capture_below_root_level
    from cascade.records.checkpoint import CheckpointPolicy
    from cascade.records.history import (
        Pruned,
        TaskSummary,
        delete_runs,
        get_run,
        group_tasks,
        parse_duration,
        prune,
        summarize_tasks,
    )
    from cascade.records.model import (
        CANCELLED,
        CHECKPOINT,
        CRASHED,
        FAILED,
        LOG_MESSAGE_LIMIT,
        RUN_STATUSES,
        RUNNING,
        SKIPPED,
        SUCCEEDED,
        TRACEBACK_LIMIT,
        AttemptDetail,
        Checkpoint,
        CheckpointColumns,
        GraphNode,
        LogLine,
        RecordBatch,
        RecordedAttempt,
        RecordedRun,
        RecordError,
        RecordWarning,
        RunEnd,
        RunStore,
        SucceededColumns,
        effective_status,
        iso_time,
        labelled,
    )
    from cascade.records.options import RecordOptions
    from cascade.records.recorder import CHECKPOINT_TASK
    from cascade.records.report import render_report, write_report
    from cascade.records.session import (
        RecordingSession,
        explain_resume,
        open_session,
        resolve_run_store,
        target_key,
    )
    from cascade.records.sqlite import (
        SQLiteRunStore,
        default_checkpoint_dir,
        default_database,
        default_home,
    )
    from cascade.records.table import AttemptTable, TaskGroup
    from cascade.records.tracebacks import format_traceback
    from cascade.spec.policies import format_size

_LAZY = {
    **dict.fromkeys(
        [
            "CANCELLED",
            "CHECKPOINT",
            "CRASHED",
            "FAILED",
            "RUN_STATUSES",
            "RUNNING",
            "SKIPPED",
            "SUCCEEDED",
            "LOG_MESSAGE_LIMIT",
            "TRACEBACK_LIMIT",
            "AttemptDetail",
            "Checkpoint",
            "CheckpointColumns",
            "GraphNode",
            "LogLine",
            "RecordBatch",
            "RecordError",
            "RecordWarning",
            "RecordedAttempt",
            "RecordedRun",
            "RunEnd",
            "RunStore",
            "SucceededColumns",
            "effective_status",
            "iso_time",
            "labelled",
        ],
        "cascade.records.model",
    ),
    **dict.fromkeys(
        ["SQLiteRunStore", "default_checkpoint_dir", "default_database", "default_home"],
        "cascade.records.sqlite",
    ),
    **dict.fromkeys(
        ["RecordingSession", "explain_resume", "open_session", "resolve_run_store", "target_key"],
        "cascade.records.session",
    ),
    "allow_capture_below_root_level": "cascade.records.capture",
    **dict.fromkeys(
        [
            "Pruned",
            "TaskSummary",
            "delete_runs",
            "get_run",
            "group_tasks",
            "parse_duration",
            "prune",
            "summarize_tasks",
        ],
        "cascade.records.history",
    ),
    "AttemptTable": "cascade.records.table",
    "TaskGroup": "cascade.records.table",
    "CheckpointPolicy": "cascade.records.checkpoint",
    "CHECKPOINT_TASK": "cascade.records.recorder",
    "format_traceback": "cascade.records.tracebacks",
    "format_size": "cascade.spec.policies",
    "RecordOptions": "cascade.records.options",
    "render_report": "cascade.records.report",
    "write_report": "cascade.records.report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cascade.records' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AttemptTable",
    "allow_capture_below_root_level",
    "CHECKPOINT_TASK",
    "LOG_MESSAGE_LIMIT",
    "TRACEBACK_LIMIT",
    "AttemptDetail",
    "LogLine",
    "RecordOptions",
    "format_size",
    "format_traceback",
    "CANCELLED",
    "CHECKPOINT",
    "CRASHED",
    "Checkpoint",
    "CheckpointColumns",
    "CheckpointPolicy",
    "FAILED",
    "GraphNode",
    "Pruned",
    "RUNNING",
    "RUN_STATUSES",
    "RecordBatch",
    "RecordError",
    "RecordWarning",
    "RecordedAttempt",
    "RecordedRun",
    "RecordingSession",
    "RunEnd",
    "RunStore",
    "SKIPPED",
    "SQLiteRunStore",
    "SUCCEEDED",
    "SucceededColumns",
    "TaskGroup",
    "TaskSummary",
    "default_checkpoint_dir",
    "default_database",
    "default_home",
    "delete_runs",
    "effective_status",
    "explain_resume",
    "get_run",
    "group_tasks",
    "iso_time",
    "labelled",
    "open_session",
    "parse_duration",
    "prune",
    "render_report",
    "resolve_run_store",
    "summarize_tasks",
    "target_key",
    "write_report",
]
