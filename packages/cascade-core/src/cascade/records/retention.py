"""Retention: what a run store keeps of older runs, applied when a recorded run ends.

Checkpoints take the room (results can be large); run rows take little. So by default the
checkpoints of the ``keep_checkpoints`` latest runs of each target are kept (10: the runs a
resume can sensibly start from) and older runs of that target lose theirs, while every run
row stays. ``keep_runs`` / ``keep_for`` (``RecordOptions``, ``CASCADE_KEEP_RUNS``,
``CASCADE_KEEP_RUNS_FOR``) also delete run rows beyond a count or an age, and
``cascade runs prune`` does the same on demand.

A checkpoint entry is removed only when no remaining run refers to it: a run that resumed
another refers to the checkpoints it restored, so a chain of resumes keeps what its latest
run needs. A run whose checkpoints were dropped is marked (``PRUNED_NOTE``); resuming it says
so and runs what it must.
"""

from __future__ import annotations

from cascade.records.history import delete_runs, remove_entries, runs_to_prune
from cascade.records.model import RunStore
from cascade.records.options import ResolvedOptions

#: The task-note kind (with task id ``"*"``) that marks a run whose checkpoints were dropped.
PRUNED_NOTE = "checkpoints-pruned"


def apply_retention(store: RunStore, target: str, options: ResolvedOptions, keep: str) -> list[str]:
    """Drop what ``options`` no longer keeps of ``target``'s runs (never run ``keep``, the one
    that just ended, nor a run still running); returns the problems, for a warning."""
    problems: list[str] = []
    try:
        if options.keep_runs is not None or options.keep_for is not None:
            doomed = runs_to_prune(
                store, options.keep_for, options.keep_runs, target=target, spare=keep
            )
            if doomed:
                delete_runs(store, [run.run_id for run in doomed])
        drop = getattr(store, "drop_checkpoints", None)
        if drop is not None:
            recent = [r.run_id for r in store.runs(target=target, limit=options.keep_checkpoints)]
            if keep not in recent:
                recent.append(keep)
            remove_entries(store, drop(target, recent, PRUNED_NOTE))
    except Exception as exc:  # retention must never fail the run that just ended
        problems.append(
            f"older runs of '{target}' could not be tidied in {store.location}: "
            f"{type(exc).__name__}: {exc}"
        )
    return problems


__all__ = ["PRUNED_NOTE", "apply_retention"]
