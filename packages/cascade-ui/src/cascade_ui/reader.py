"""Reading the run store for the pages: runs filtered as the list asks, and each run's
``RunView`` computed once per change of its record and shared by every page that shows it.

Every read is a blocking SQLite call, so the app runs these methods in worker threads. A
finished run's record no longer changes: its view is kept (the few most recently shown). A
running run's view is recomputed when the database file changed since it was made (the
store's file and its write-ahead log: every recorder write touches them), at most every
``MIN_REFRESH`` seconds, which keeps a page within a second of the recorder.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Any

from cascade.records import RUNNING, RecordedRun, RecordError, RunStore
from cascade_ui.views import RunView, build_view, run_summary

#: Finished runs whose views are kept in memory.
KEEP_VIEWS = 8
#: The shortest time between two recomputations of one running run's view.
MIN_REFRESH = 0.25
#: How often a running run is read again even when its file did not change (its process
#: may have gone: it then reads as Crashed).
RECHECK = 2.0
#: Runs a list page shows at most.
MAX_RUNS = 1000


class Reader:
    """The pages' one way into a ``RunStore`` (any store; an SQLite one's file is watched)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._views: OrderedDict[str, tuple[tuple[Any, ...], float, RunView]] = OrderedDict()
        self._lock = threading.Lock()
        self._run_locks: dict[str, threading.Lock] = {}

    @property
    def location(self) -> str:
        return self.store.location

    def exists(self) -> bool:
        """Whether the store's file is there (a missing store is an empty history)."""
        path = getattr(self.store, "path", None)
        return path is None or os.path.exists(path)

    def stamp(self) -> tuple[Any, ...]:
        """What changes whenever a recorder writes to the store: the sizes and modification
        times of the database file and its write-ahead log."""
        path = getattr(self.store, "path", None)
        if path is None:
            return (time.monotonic(),)  # a store of a plugin: assume it changed
        found: list[Any] = []
        for suffix in ("", "-wal"):
            try:
                info = os.stat(f"{path}{suffix}")
            except OSError:
                found.append(None)
            else:
                found.append((info.st_size, info.st_mtime_ns, info.st_ino))
        return tuple(found)

    # -- runs ---------------------------------------------------------------------------------

    def runs(
        self,
        *,
        target: str | None = None,
        status: str | None = None,
        prefix: str | None = None,
        since: float | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Runs newest first as the list shows them; ``prefix`` keeps the runs whose id
        starts with it."""
        limit = max(1, min(limit, MAX_RUNS))
        asked = None if prefix else limit
        found = self.store.runs(
            target=target or None, status=status or None, since=since, limit=asked
        )
        if prefix:
            found = [r for r in found if r.run_id.startswith(prefix)][:limit]
        return [run_summary(r) for r in found]

    def run(self, run_id: str) -> RecordedRun | None:
        """The run ``run_id`` (or a unique prefix), ``None`` if there is none; an ambiguous
        prefix is a ``RecordError`` naming the runs it starts."""
        return self.store.run(run_id)

    # -- one run's view -----------------------------------------------------------------------

    def view(self, run_id: str) -> RunView | None:
        """The view of run ``run_id``: kept while its record is unchanged."""
        with self._lock:
            run_lock = self._run_locks.setdefault(run_id, threading.Lock())
        with run_lock:  # one computation per run at a time; the others wait for it
            stamp = self.stamp()
            with self._lock:
                kept = self._views.get(run_id)
            if kept is not None:
                kept_stamp, made, view = kept
                if view.run.status != RUNNING:
                    return view
                age = time.monotonic() - made
                if age < MIN_REFRESH or (kept_stamp == stamp and age < RECHECK):
                    return view
            run = self.store.run(run_id)
            if run is None:
                return None
            view = build_view(run, self.store.graph(run.run_id), self.store.attempts(run.run_id))
            with self._lock:
                self._views[run_id] = (stamp, time.monotonic(), view)
                self._views.move_to_end(run_id)
                finished = [k for k, v in self._views.items() if v[2].run.status != RUNNING]
                for key in finished[: max(len(finished) - KEEP_VIEWS, 0)]:
                    del self._views[key]
            return view


__all__ = ["KEEP_VIEWS", "MAX_RUNS", "MIN_REFRESH", "Reader", "RecordError"]
