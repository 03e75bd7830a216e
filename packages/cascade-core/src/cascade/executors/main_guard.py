"""Worker processes started with ``spawn`` (or ``forkserver``) import the main script again.

Code at the top level of that script then runs again in every worker; if it runs a graph on
worker processes, each worker tries to start workers of its own while it is still starting,
and the pool breaks with a long multiprocessing traceback ending in ``BrokenProcessPool``.
``check_main_guard`` finds that case before any process starts (the run was started by the
script's top-level code, outside an ``if __name__ == "__main__":`` block) and says so in one
line.
"""

from __future__ import annotations

import ast
import sys
from typing import Any


class MissingMainGuardError(RuntimeError):
    """A script runs a graph on worker processes from its top-level code, unguarded."""


def check_main_guard(executor_name: str, start_method: str | None) -> None:
    """Raise ``MissingMainGuardError`` when the current call comes from the main script's
    top-level code outside ``if __name__ == "__main__":`` and workers re-import that script
    (any start method but ``fork``). Interactive sessions, ``python -c``, notebooks and
    runs started from imported modules (the ``cascade`` command) pass."""
    if start_method == "fork":
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not str(path).endswith(".py"):
        return
    line = _top_level_line(vars(main))
    if line is None:
        return
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
    except (OSError, SyntaxError, ValueError):
        return
    for statement in tree.body:
        end = getattr(statement, "end_lineno", None) or statement.lineno
        if statement.lineno <= line <= end:
            if isinstance(statement, ast.If) and _is_main_test(statement.test):
                return
            break
    raise MissingMainGuardError(
        f"executor '{executor_name}' starts worker processes that import {path} again, so its "
        f"top-level code (line {line}, which runs this graph) would run again in every worker: "
        'put it under `if __name__ == "__main__":`'
    )


def _top_level_line(main_globals: dict[str, Any]) -> int | None:
    """The line of the main script's top-level code the current call comes from, if any."""
    frame = sys._getframe(1)
    line = None
    while frame is not None:
        if frame.f_globals is main_globals and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return line


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(texts) == 1


__all__ = ["MissingMainGuardError", "check_main_guard"]
