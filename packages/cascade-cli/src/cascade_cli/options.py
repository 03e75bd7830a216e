"""Lists of ``click`` options that several commands share, applied as one decorator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def option_group(options: Sequence[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """A decorator adding every option of ``options`` to a command, in the listed order (as
    they would appear written one above the other)."""

    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


__all__ = ["option_group"]
