"""Keeping a run's graph out of the cyclic garbage collector's walks, when the user asks
(``Engine(freeze_gc=True)``, ``cs.run(..., freeze_gc=True)``).

A run keeps every LazyResult and graph node alive until it ends, and each full collection
during the run walks all of them: on a 100,000-task graph that is a large share of the time
per task (``benchmarks/run.py``, the 100,000-task rows, and docs/performance.md).
``gc.freeze()`` moves every object alive into a generation the collector does not walk, and
``gc.unfreeze()`` hands them back. That is process-wide state, so the engine touches it only
on request, and undoes it when the last run that asked for it ends. An application that froze
objects itself (``gc.get_freeze_count() > 0`` before the run) keeps its own freeze as it is:
the run then freezes nothing, since unfreezing at its end would undo the application's.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
#: Runs inside ``frozen_collector`` right now, in every thread.
_runs = 0
#: Whether the first of them found nothing frozen and so froze, and the last unfreezes.
_ours = False


@contextlib.contextmanager
def frozen_collector(enabled: bool) -> Iterator[None]:
    """Freeze what is alive now (the built graph and the run's plan) for the block, when
    ``enabled``; see the module docstring."""
    if not enabled:
        yield
        return
    global _runs, _ours
    with _lock:
        if _runs == 0:
            _ours = gc.get_freeze_count() == 0
        _runs += 1
        if _ours:
            gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _ours:
                gc.unfreeze()
                _ours = False


__all__ = ["frozen_collector"]
