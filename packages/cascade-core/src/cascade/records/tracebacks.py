"""Tracebacks as a task's author wants to read them, in the CLI and in run records.

A failed task's exception went through the engine, the executor's transport and asyncio
before anyone sees it; those frames say nothing about the task. ``format_traceback`` leaves
them out up to the task's own first frame (a note says how many), in the exception and in
every exception chained to it, so a failure inside a worker process (whose traceback comes
back as the chained cause's text) keeps the worker-side frames. ``cap`` keeps a stored
traceback to ``TRACEBACK_LIMIT`` characters, its head and its end.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from cascade.executors import cap_text
from cascade.records.model import TRACEBACK_LIMIT

#: Packages whose frames are the machinery around a task, not the task.
ENGINE_PACKAGES = ("cascade", "cascade_cli", "cascade_dask", "cascade_otel", "distributed")
_ENGINE_STDLIB = ("asyncio", "concurrent", "threading.py", "contextvars", "runpy.py")


def _engine_folders() -> tuple[str, ...]:
    folders = []
    for name in ENGINE_PACKAGES:
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if location:
            folders.append(str(Path(location).resolve().parent) + os.sep)
    stdlib = Path(os.__file__).resolve().parent
    folders += [str(stdlib / name) for name in _ENGINE_STDLIB]
    return tuple(folders)


def _is_engine_frame(filename: str, folders: tuple[str, ...]) -> bool:
    try:
        resolved = str(Path(filename).resolve())
    except (OSError, ValueError):
        resolved = filename
    return resolved.startswith(folders)


def _tears_down(frame: traceback.FrameSummary) -> bool:
    """Whether Cascade's frame is the one that throws a run's failure into a resource's
    generator at teardown (the resource's frame after it is not the task's code)."""
    return Path(frame.filename).name == "resources.py" and frame.name == "_finish_generator"


def format_traceback(exc: BaseException) -> str:
    """The traceback of a failed task as its author wants it: the frames of Cascade and of the
    event loop that called the task (and of a resource generator the failure was thrown into
    at teardown) are left out up to the task's own first frame (a note says how many), so it
    starts where the user's code does. An error raised inside Cascade itself keeps every
    frame."""
    folders = _engine_folders()
    report = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    seen: set[int] = set()
    pending = [report]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        frames = list(current.stack)
        engine = [_is_engine_frame(frame.filename, folders) for frame in frames]
        # The task's code starts at the first frame of user code that Cascade called: frames
        # before it are Cascade's and the event loop's, and possibly a run-scoped resource's
        # generator, into which the failure was thrown at teardown.
        first_user = next(
            (
                i
                for i in range(1, len(frames))
                if engine[i - 1] and not engine[i] and not _tears_down(frames[i - 1])
            ),
            None,
        )
        if first_user:
            current.stack = traceback.StackSummary.from_list(frames[first_user:])
            current.__notes__ = [  # type: ignore[attr-defined]
                *(getattr(current, "__notes__", None) or []),
                f"({first_user} frame(s) of Cascade and asyncio before the task's code are not "
                "shown)",
            ]
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return "".join(report.format())


def cap(text: str, limit: int = TRACEBACK_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters: its first third and its last two thirds
    (the error is at the end), with a line saying how much was left out between (the same
    cut as log lines collected in workers get, ``cascade.executors.cap_text``)."""
    return cap_text(text, limit)


def describe_failure(exc: BaseException) -> str:
    """The stored traceback of a failed attempt: ``format_traceback`` capped, or, should
    formatting itself fail (a broken ``__str__``), a line saying so."""
    try:
        return cap(format_traceback(exc))
    except Exception as why:  # a record must never fail because of a strange exception
        return f"{type(exc).__name__} (its traceback could not be formatted: {why!r})"


__all__ = ["ENGINE_PACKAGES", "cap", "describe_failure", "format_traceback"]
