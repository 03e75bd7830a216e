"""Blocking calls into async code from a thread whose event loop is already running.

``cs.run`` is a blocking call; in a Jupyter or IPython kernel, or inside any async framework,
the calling thread already runs an event loop, so ``asyncio.run`` cannot start another one
there. Instead of patching that loop to be re-entrant (which changes it for every other
library in the process), the run gets a private loop in a worker thread of its own, and the
caller's thread blocks until the run ends, exactly as it would for any blocking call.

What the caller sees is what it would see elsewhere: the run's value or its exception
(unchanged, with its traceback), and its context variables (the worker runs in a copy of
the caller's context). A ``KeyboardInterrupt`` in the waiting thread (interrupting a kernel
sends SIGINT to its main thread) cancels the run on its loop, waits for it to tear its
resources down, and is then raised again; a second interrupt stops waiting for the
teardown. No signal handler, loop policy or other process-wide state is touched.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def in_running_loop() -> bool:
    """Whether this thread is running an event loop right now (so ``asyncio.run`` would fail)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _Handoff(Generic[T]):
    """What the worker thread shares with the waiting caller: the private loop and the
    run's task once they exist, and the outcome once it is known."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.finished = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[T] | None = None
        self.value: T | None = None
        self.error: BaseException | None = None

    def cancel(self) -> None:
        """Cancel the run on its own loop (thread-safe); a no-op once it has ended."""
        loop, task = self.loop, self.task
        if loop is None or task is None:
            return
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # the loop has already closed: nothing left to cancel
            pass


def run_in_worker_thread(
    main: Callable[[], Coroutine[Any, Any, T]], *, name: str = "cascade-run"
) -> T:
    """Run ``main()`` to completion on a new event loop in a new thread and return its value
    (or raise its exception), blocking the calling thread meanwhile.

    For callers whose thread already runs a loop; see the module docstring for interrupts.
    """
    handoff: _Handoff[T] = _Handoff()

    async def supervised() -> T:
        handoff.loop = asyncio.get_running_loop()
        handoff.task = asyncio.current_task()  # type: ignore[assignment]
        handoff.started.set()
        return await main()

    def work() -> None:
        try:
            handoff.value = asyncio.run(supervised())
        except BaseException as error:  # handed to the caller, raised there
            handoff.error = error
        finally:
            handoff.started.set()
            handoff.finished.set()

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(work,), name=name, daemon=True)
    try:
        # Inside the try: an interrupt can arrive while start() waits for the thread to run,
        # by which time the run may be under way. Event.wait is interruptible on POSIX:
        # SIGINT's KeyboardInterrupt arrives here.
        worker.start()
        handoff.finished.wait()
    except KeyboardInterrupt:
        handoff.started.wait()
        handoff.cancel()
        # The run unwinds on its loop (tasks cancelled, resources torn down); a second
        # interrupt while it does propagates from here and stops the wait.
        handoff.finished.wait()
        raise
    worker.join()
    if handoff.error is not None:
        error = handoff.error
        handoff.error = None  # no reference cycle through the traceback
        raise error
    return handoff.value  # type: ignore[return-value]


__all__ = ["in_running_loop", "run_in_worker_thread"]
