"""Cache warnings point at the user's code, not at Cascade's.

A cache policy warns (an input without a stable hash, a result that could not be stored, a
target not written) while the engine runs, deep inside Cascade and asyncio, so
``warnings.warn``'s ``stacklevel`` cannot reach the user. ``warn_at_user_code`` attributes
the warning to the user's own line that started the run (the ``cs.run`` call, found on the
stack below the event loop), or, when there is none (the ``cascade`` command, a worker), to
the definition of the task the warning is about.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

#: Top-level packages whose frames are machinery between the user's call and the policy.
_MACHINERY = frozenset(
    {
        "cascade",
        "cascade_cli",
        "cascade_dask",
        "cascade_otel",
        "asyncio",
        "concurrent",
        "threading",
        "contextvars",
        "contextlib",
        "runpy",
        "importlib",
        "click",
    }
)


def warn_at_user_code(message: str, category: type[Warning], task: Any) -> None:
    """``warnings.warn_explicit`` at the user's line (see the module docstring)."""
    filename, lineno, module_globals = _user_site(task)
    module = module_globals.get("__name__", "<unknown>")
    registry = module_globals.setdefault("__warningregistry__", {})
    warnings.warn_explicit(message, category, filename, lineno, module, registry)


def _user_site(task: Any) -> tuple[str, int, dict[str, Any]]:
    frame = sys._getframe(2)
    while frame is not None:
        name = str(frame.f_globals.get("__name__", ""))
        filename = frame.f_code.co_filename
        machinery = name.split(".", 1)[0] in _MACHINERY
        if not machinery and (filename.endswith(".py") or filename.startswith("<")):
            return filename, frame.f_lineno, frame.f_globals
        frame = frame.f_back  # type: ignore[assignment]
    fn = getattr(task, "fn", task)
    code = getattr(fn, "__code__", None)
    if code is not None:
        return code.co_filename, code.co_firstlineno, getattr(fn, "__globals__", {})
    return "<cascade>", 0, {}


__all__ = ["warn_at_user_code"]
