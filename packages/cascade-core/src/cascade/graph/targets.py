"""What may be run: a LazyResult, or a list, tuple or dict of them, and how results come back
in the same shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cascade.events import preview
from cascade.spec.task import LazyResult


def normalize_target(target: Any) -> tuple[list[LazyResult[Any]], Callable[[list[Any]], Any]]:
    """Split a run target into LazyResults and a function that shapes their values back."""
    if isinstance(target, LazyResult):
        return [target], _first
    if isinstance(target, (list, tuple)):
        items = list(target)
        _check_targets(items, target)
        return items, list
    if isinstance(target, dict):
        keys = list(target)
        items = [target[k] for k in keys]
        _check_targets(items, target)
        return items, lambda values: dict(zip(keys, values, strict=True))
    raise TypeError(
        "run() takes a LazyResult (what calling a @cs.task returns), or a list, tuple or dict "
        f"of them; got {type(target).__name__}: {preview(target)}"
    )


def _first(values: list[Any]) -> Any:
    return values[0]


def _check_targets(items: list[Any], target: Any) -> None:
    for item in items:
        if not isinstance(item, LazyResult):
            raise TypeError(
                f"every run target must be a LazyResult; {type(target).__name__} holds "
                f"{type(item).__name__}: {preview(item)}"
            )
