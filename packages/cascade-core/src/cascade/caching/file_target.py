"""``FileExistenceCache``: a task is done when the file it writes exists (Luigi's targets)."""

from __future__ import annotations

import os
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cascade.caching.inputs import call_inputs, named_inputs
from cascade.caching.user_site import warn_at_user_code
from cascade.graph.extend import returns_graph
from cascade.spec.cache_policy import CacheContext, CacheWarning

Target = str | os.PathLike[str] | Callable[..., str | os.PathLike[str]]


class FileExistenceCache:
    """Skip a task whose output file already exists; its result is then that ``pathlib.Path``.

    ``target`` is the path the task writes, given as:

    * a path, optionally with ``{name}`` fields filled from the call's inputs by parameter name
      (``"out/{day}.csv"``; write ``{{`` and ``}}`` for literal braces), or
    * a function called with the task's own resolved arguments (injected resources left out)
      that returns the path.

    A task under this policy should return the path it wrote, so that its result has one type
    whether it ran or was skipped. If it returns something else, or finishes without creating
    the target, a ``CacheWarning`` names the task; the returned value is still its result, and a
    missing target means it runs again next time. Existence is checked where the engine runs,
    so use paths that the engine's machine can see. A task that returns a graph may leave the
    file to a task in that graph: it is not checked then (it may not be written yet), and once
    it exists the task is skipped, graph and all.
    """

    def __init__(self, target: Target) -> None:
        if not (callable(target) or isinstance(target, str | os.PathLike)):
            raise TypeError(
                "FileExistenceCache: target must be a path or a function of the task's inputs "
                f"returning a path, got {target!r}"
            )
        self.target = target
        self._fields: tuple[str, ...] = ()
        if not callable(target):
            text = os.fspath(target)
            try:
                self._fields = tuple(
                    field for _, field, _, _ in string.Formatter().parse(text) if field is not None
                )
            except ValueError as exc:
                raise ValueError(f"FileExistenceCache: bad target {text!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"FileExistenceCache({self.target!r})"

    def target_path(self, context: CacheContext) -> Path:
        """The path this call of the task writes."""
        target = self.target
        if callable(target):
            args, kwargs = call_inputs(context)
            path = target(*args, **kwargs)
            if not isinstance(path, str | os.PathLike):
                raise TypeError(
                    f"task '{context.task_name}': the FileExistenceCache target function "
                    f"returned {type(path).__name__} {path!r}; it must return a path"
                )
            return Path(path)
        text = os.fspath(target)
        if not self._fields:
            return Path(text)
        inputs = named_inputs(context)
        try:
            return Path(text.format_map(inputs))
        except (KeyError, IndexError) as exc:
            known = ", ".join(sorted(inputs)) or "none"
            raise ValueError(
                f"task '{context.task_name}': FileExistenceCache target {text!r} uses the field "
                f"{exc}, which is not one of the call's inputs ({known}); fill it from a "
                "parameter name or pass a function as the target"
            ) from None

    def lookup(self, context: CacheContext) -> tuple[bool, Any]:
        path = self.target_path(context)
        context.state = path
        if path.exists():
            return True, path
        return False, None

    def save(self, context: CacheContext, value: Any) -> None:
        if returns_graph(value):
            return  # a task in the graph may write the file, later in the run
        path: Path = context.state
        if not path.exists():
            warn_at_user_code(
                f"task '{context.task_name}' finished without creating its FileExistenceCache "
                f"target '{path}', so it will run again next time; write the file in the task",
                CacheWarning,
                context.task,
            )
        elif not _same_path(value, path):
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            warn_at_user_code(
                f"task '{context.task_name}' returned {type(value).__name__} {shown} "
                f"rather than the path of its FileExistenceCache target '{path}'; when the "
                "target exists the task is skipped and its result is that Path, so return the "
                "path to keep one result type",
                CacheWarning,
                context.task,
            )


def _same_path(value: Any, path: Path) -> bool:
    if not isinstance(value, str | os.PathLike):
        return False
    candidate = os.fspath(value)
    if isinstance(candidate, bytes):
        return False
    if os.path.abspath(candidate) == os.path.abspath(path):
        return True
    try:
        return os.path.samefile(candidate, path)
    except OSError:
        return False


__all__ = ["FileExistenceCache"]
