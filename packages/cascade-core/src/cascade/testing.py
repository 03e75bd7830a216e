"""Helpers for testing pipelines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cascade.runtime.engine import Engine
from cascade.spec.resource import ResourceDefinition


@contextmanager
def override_resource(
    engine: Engine, name: str, provider: ResourceDefinition | Callable[..., Any]
) -> Iterator[None]:
    """Swap the provider of resource ``name`` on ``engine`` inside the ``with`` block and
    restore the previous one afterwards (or remove it if there was none)."""
    previous = engine.get_resource_provider(name)
    engine.override_resource_provider(name, provider)
    try:
        yield
    finally:
        if previous is None:
            engine._resource_providers.pop(name, None)
        else:
            engine._resource_providers[name] = previous


__all__ = ["override_resource"]
