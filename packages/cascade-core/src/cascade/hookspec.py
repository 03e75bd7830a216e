"""Every hook Cascade calls, in one module, grouped by when it runs (a public module).

Hooks are synchronous (pluggy calls them as plain functions): they register and configure.
Async work belongs in what they register (an executor's ``submit``, an async event handler).
Implement them in a module or class marked with ``cascade.hookimpl`` and expose it through the
``cascade`` entry-point group of your distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("cascade")
hookimpl = pluggy.HookimplMarker("cascade")
"""Marks a plugin's hook implementations (``@hookimpl def cascade_register_executors(...)``);
also exported as ``cascade.hookimpl``."""


# -- registration: called once per process, the first time Cascade needs the registry ------


@hookspec
def cascade_register_executors(register: Callable[[str, Callable[[], Any]], None]) -> None:
    """Register executors by name.

    Call ``register(name, factory)`` once per executor; ``factory()`` takes no arguments and
    returns a new executor (see ``cascade.executors.protocol.Executor``). Users select it with
    ``cs.run(..., executor=name)``, ``cs.Engine(executor=name)``, ``@cs.task(executor=name)`` or
    ``cascade run --executor name``. Called once per process, the first time an executor is
    looked up. Two plugins registering the same name is an error naming both.
    """


@hookspec
def cascade_register_resources(register: Callable[[Any], None]) -> None:
    """Contribute resources available to every engine.

    Call ``register(resource)`` with a ``@cs.resource`` definition; every new engine starts with
    it registered (``engine.register`` and overrides still win). Called once per process.
    """


@hookspec
def cascade_register_cache_stores(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register cache stores by name.

    Call ``register(name, factory)``; ``factory(**options)`` returns an object implementing
    ``cascade.caching.store.CacheStore``. ``cs.InputHashCache(store=name)`` selects it. Called
    once per process, the first time a store is looked up by name.
    """


@hookspec
def cascade_register_run_stores(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register run stores (where run records live) by name.

    Call ``register(name, factory)``; ``factory(**options)`` returns an object implementing
    ``cascade.records.RunStore``. ``cs.run(..., record=name)`` selects it (``record=True``,
    ``cascade run`` and ``cascade runs`` use ``"sqlite"``, which Cascade registers itself:
    ``factory(path=...)`` must accept a path for it). Called once per process, the first time
    a run store is looked up by name; two plugins registering one name is an error naming both.
    """


# -- per engine -----------------------------------------------------------------------------


@hookspec
def cascade_engine_created(engine: Any) -> None:
    """Configure each new ``cascade.Engine``.

    Called at the end of ``Engine.__init__`` with the engine: subscribe handlers to
    ``engine.bus``, or add a call hook with ``engine.add_call_hook`` (how tracing makes a task's
    span current while it runs). Keep it cheap: it runs for every engine, and ``cs.run`` makes
    one per call.
    """


__all__ = [
    "cascade_engine_created",
    "cascade_register_cache_stores",
    "cascade_register_executors",
    "cascade_register_resources",
    "cascade_register_run_stores",
    "hookimpl",
]
