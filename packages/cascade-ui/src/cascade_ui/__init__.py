"""``cascade ui``: a live, read-only web view of the runs Cascade records.

The view is a reader of the run store (the SQLite file ``cascade run`` and ``record=True``
write, in WAL mode, so any process may read it while recorders write): it lists runs newest
first and shows one run's graph, timeline, tasks and failures, updating live over server-sent
events while a run goes on. Nothing to deploy: ``cascade ui`` serves it on 127.0.0.1.

    cascade ui                       # the default store, http://127.0.0.1:8765
    cascade ui --store other.sqlite3 --port 9000 --open

From Python, ``create_app(store)`` is the ASGI application (Starlette) for any ASGI server.
See docs/ui.md for the pages and the JSON API behind them.
"""

from __future__ import annotations

from cascade_ui._version import __version__
from cascade_ui.app import create_app

__all__ = ["__version__", "create_app"]
