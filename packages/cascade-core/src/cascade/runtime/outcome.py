"""How a run ends when tasks fail: stop at the first failure (the default), or keep going and
report every failure at the end as one ``RunFailed``."""

from __future__ import annotations

import sys
from typing import Any, cast

from cascade.graph.display import html_table

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:  # pragma: no cover - exercised by the 3.10 run of the suite
    from exceptiongroup import ExceptionGroup

STOP = "stop"
CONTINUE = "continue"
FAILURE_MODES = (STOP, CONTINUE)


def check_failure_mode(on_failure: str) -> str:
    """``"stop"`` or ``"continue"``; anything else is a ``ValueError`` listing both."""
    if on_failure not in FAILURE_MODES:
        raise ValueError(
            f"on_failure must be 'stop' or 'continue', got {on_failure!r}: 'stop' ends the run "
            "at the first failure, 'continue' runs every branch that does not depend on one"
        )
    return on_failure


class RunFailed(ExceptionGroup):  # type: ignore[misc,unused-ignore]
    """Tasks failed in a run with ``on_failure="continue"``: an ``ExceptionGroup`` of every
    failure. ``failures`` maps each failed task id (as events report it) to its exception;
    ``results`` is what the run would have returned, with ``None`` for every target that did
    not complete."""

    failures: dict[str, BaseException]
    results: Any

    def __new__(cls, failures: dict[str, BaseException], results: Any) -> RunFailed:
        message = f"{len(failures)} task(s) failed: {_each(failures)}"
        self = cast(RunFailed, super().__new__(cls, message, list(failures.values())))
        self.failures = failures
        self.results = results
        return self

    def __init__(self, failures: dict[str, BaseException], results: Any) -> None:
        super().__init__(self.message, list(failures.values()))

    def __str__(self) -> str:
        # The message lists every failure already; not "... (2 sub-exceptions)" after it.
        return str(self.message)

    def _repr_html_(self) -> str:
        """Notebooks show a table of the failed tasks and their errors (``repr`` is unchanged)."""
        rows = [
            (task_id, type(error).__name__, _first_line(error))
            for task_id, error in self.failures.items()
        ]
        caption = f"{len(self.failures)} task(s) failed"
        return html_table(("task", "error", "message"), rows, caption=caption)

    def derive(self, excs: Any) -> ExceptionGroup[Any]:
        """A plain ``ExceptionGroup`` of ``excs`` (what ``split()`` and ``subgroup()`` make):
        a part of the failures is not a run's outcome."""
        return ExceptionGroup(self.message, excs)

    def __reduce__(self) -> Any:
        return (type(self), (self.failures, self.results))


#: How many failures the message of a ``RunFailed`` spells out (``failures`` has them all).
_SHOWN = 10


def _each(failures: dict[str, BaseException]) -> str:
    """``load-1 (ValueError: bad row), fetch-3 (ConnectionError: reset)``: each failed task
    with its own exception, so a one-line report says what went wrong where."""
    parts = []
    for task_id, exc in list(failures.items())[:_SHOWN]:
        text = str(exc)
        text = text if len(text) <= 200 else text[:197] + "..."
        parts.append(
            f"{task_id} ({type(exc).__name__}: {text})"
            if text
            else f"{task_id} ({type(exc).__name__})"
        )
    more = len(failures) - _SHOWN
    return ", ".join(parts) + (f", and {more} more" if more > 0 else "")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 200 else line[:197] + "..."


class MapItemsFailed(Exception):
    """Items of a ``.map`` failed in a run that keeps going; the scheduler records each item's
    exception under the item's task id (never raised to users)."""

    def __init__(self, failures: dict[str, Exception]) -> None:
        super().__init__(f"{len(failures)} map item(s) failed")
        self.failures = failures


__all__ = ["CONTINUE", "STOP", "MapItemsFailed", "RunFailed", "check_failure_mode"]
