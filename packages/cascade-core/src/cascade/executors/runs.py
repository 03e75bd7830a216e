"""Opening an executor for a run: the one function the engine calls (``open_run``), and the
base class of executors that keep their state per run.

``open_run(executor, run)`` enters ``executor.open_run(run)`` when the executor has one
(``BaseExecutor`` gives every subclass one built on its ``start``/``shutdown``). An executor
written against the first protocol (``start``/``submit``/``shutdown``, not subclassing
``BaseExecutor``) is adapted the same way, with one ``DeprecationWarning`` per class naming it
and what to change.

``RunScopedExecutor`` is for executors whose ``open_run`` is their own (the ``processes``
executor, cascade-dask's): their ``start``/``submit``/``shutdown`` still work for code that
drives an executor by hand, as one run of its own opened by ``start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import warnings
from collections.abc import Awaitable
from typing import Any
from uuid import uuid4

from cascade.executors.protocol import (
    BaseExecutor,
    ExecutorRun,
    RunInfo,
    TaskCall,
    bracket_run,
)

_warned: set[type] = set()
_warned_lock = threading.Lock()


def open_run(executor: Any, run: RunInfo) -> contextlib.AbstractAsyncContextManager[ExecutorRun]:
    """The async context manager that opens ``executor`` for ``run`` and yields its handle:
    ``executor.open_run(run)``, or, for an executor with only ``start``/``submit``/
    ``shutdown``, those around a handle that forwards to ``submit`` (warning once per class
    that this form is deprecated)."""
    opener = getattr(executor, "open_run", None)
    if opener is not None:
        return opener(run)  # type: ignore[no-any-return]
    _warn_legacy(type(executor))
    return bracket_run(executor, run)


def _warn_legacy(kind: type) -> None:
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    warnings.warn(
        f"executor class {kind.__module__}.{kind.__qualname__} implements the executor "
        "protocol without open_run (start/submit/shutdown only); Cascade adapts it for now. "
        "Subclass cascade.executors.BaseExecutor (which provides open_run on top of "
        "start/shutdown), or add open_run(run) returning an async context manager that yields "
        "a handle with submit(call) (see cascade.executors.ExecutorRun).",
        DeprecationWarning,
        stacklevel=3,
    )


def is_executor(value: Any) -> bool:
    """Whether ``value`` can serve as an executor: it has ``open_run``, or the first
    protocol's ``start``/``submit``/``shutdown``; and ``materialize``."""
    has = [callable(getattr(value, name, None)) for name in ("submit", "materialize")]
    if not all(has) or isinstance(value, type):
        return False
    if callable(getattr(value, "open_run", None)):
        return True
    return callable(getattr(value, "start", None)) and callable(getattr(value, "shutdown", None))


class RunScopedExecutor(BaseExecutor):
    """Base of executors that implement ``open_run`` and keep their state in its handle.

    ``start()`` opens a run of its own (a fresh run id, this loop) and ``submit``/
    ``shutdown`` use it, so tests and scripts that drive the executor by hand keep working;
    the engine never uses them. Subclasses implement ``open_run``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overrides = [n for n in ("start", "shutdown") if n in vars(cls)]
        if overrides and "open_run" not in vars(cls):
            # The engine opens such an executor with open_run: start/shutdown overridden
            # here would be called only by code that drives the executor by hand.
            warnings.warn(
                f"{cls.__module__}.{cls.__qualname__} overrides {' and '.join(overrides)} of "
                f"{cls.__mro__[1].__qualname__}, which the engine no longer calls: it opens "
                "the executor once per run with open_run(run). Override open_run instead "
                "(async with super().open_run(run) as handle: ... yield handle).",
                DeprecationWarning,
                stacklevel=2,
            )

    def open_run(self, run: RunInfo) -> contextlib.AbstractAsyncContextManager[ExecutorRun]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _direct(self) -> list[tuple[contextlib.AbstractAsyncContextManager[ExecutorRun], Any]]:
        runs: list[Any] | None = self.__dict__.get("_direct_runs")
        if runs is None:
            runs = self.__dict__["_direct_runs"] = []
        return runs

    async def start(self) -> None:
        opening = self.open_run(RunInfo(uuid4().hex, asyncio.get_running_loop()))
        handle = await opening.__aenter__()
        self._direct().append((opening, handle))

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        runs = self._direct()
        if not runs:
            raise RuntimeError(f"executor '{self.name}' was not started")
        handle: ExecutorRun = runs[-1][1]
        return handle.submit(call)

    async def shutdown(self) -> None:
        runs = self._direct()
        if runs:
            opening, _ = runs.pop()
            await opening.__aexit__(None, None, None)


__all__ = ["RunScopedExecutor", "is_executor", "open_run"]
