"""Values the runtime passes between its parts in place of a task's value, and one helper
for saying where an exception came from."""

from __future__ import annotations

from typing import Any


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


#: The value of a node that did not run (its condition was false, or an input was skipped).
SKIPPED: Any = _Marker("skipped")
#: The value of a node that did not complete because it or something it needs failed (with
#: ``on_failure="continue"``).
FAILED: Any = _Marker("failed")


def add_note(exc: BaseException, text: str) -> None:
    """Say where an exception came from without changing it (shown in its traceback)."""
    note = getattr(exc, "add_note", None)
    if note is not None:  # Python 3.11+
        note(text)
    else:
        exc.__notes__ = [*getattr(exc, "__notes__", []), text]  # type: ignore[attr-defined]
