"""The attempt mark: which attempt of a recorded run the current context belongs to.

The engine sets ``ATTEMPT`` around handing an attempt to its executor when the run captures
what tasks log; threads and coroutines started for the attempt copy the context, and with it
the mark. ``cascade.records.capture`` reads it. A module of its own, with nothing else in it,
because the engine imports it whenever it loads (and most runs record nothing).
"""

from __future__ import annotations

import contextvars

#: (run id, task id, attempt number) of the attempt running in this context, in recorded runs
#: that capture logs; ``None`` elsewhere.
ATTEMPT: contextvars.ContextVar[tuple[str, str, int] | None] = contextvars.ContextVar(
    "cascade_attempt", default=None
)

__all__ = ["ATTEMPT"]
