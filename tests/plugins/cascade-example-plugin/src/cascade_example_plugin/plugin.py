"""The hooks of the example plugin, found by Cascade through the entry point

    [project.entry-points.cascade]
    example = "cascade_example_plugin.plugin"

Cascade imports this module the first time it needs its plugins (never at ``import cascade``)
and calls the functions below that are marked ``@cascade.hookimpl``. Each one only registers or
configures something; the work happens later, in what it registered.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar

import cascade
from cascade.events import Event
from cascade.executors import BaseExecutor, TaskCall

#: How many attempts ``example-inline`` has been handed, per task name (tests read it).
calls: collections.Counter[str] = collections.Counter()

#: Every event seen by engines created while ``CASCADE_EXAMPLE_RECORD=1`` (tests read it).
recorded: list[Event] = []

RECORD_ENV = "CASCADE_EXAMPLE_RECORD"


# -- an executor ---------------------------------------------------------------------------


async def _call_inline(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    return fn(*args, **kwargs)


class InlineExecutor(BaseExecutor):
    """Runs every task on the event loop: ``async def`` tasks as coroutines, sync tasks by
    calling them directly (so a slow sync task blocks the loop; fine for tiny functions and a
    clear example of the protocol)."""

    name: ClassVar[str] = "example-inline"

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        calls[call.task_name] += 1
        if call.is_async:
            return call.fn(*call.args, **call.kwargs)  # type: ignore[no-any-return]
        return _call_inline(call.fn, call.args, call.kwargs)


@cascade.hookimpl
def cascade_register_executors(register: Callable[[str, Callable[[], Any]], None]) -> None:
    """Make ``cs.run(..., executor="example-inline")`` available."""
    register(InlineExecutor.name, InlineExecutor)


# -- a subscriber --------------------------------------------------------------------------


@cascade.hookimpl
def cascade_engine_created(engine: cascade.Engine) -> None:
    """Record every event of every engine, but only when asked: an engine nobody records
    gets no subscription at all, so the engine keeps skipping the events (``bus.wants``)."""
    if os.environ.get(RECORD_ENV) == "1":
        engine.bus.subscribe(Event, recorded.append)


# -- a resource ----------------------------------------------------------------------------


@cascade.resource(name="example_greeting")
def example_greeting() -> Iterator[str]:
    """A run-scoped resource any task can ask for with ``cs.inject("example_greeting")``."""
    yield "hello"


@cascade.hookimpl
def cascade_register_resources(register: Callable[[Any], None]) -> None:
    """Start every engine with ``example_greeting`` registered."""
    register(example_greeting)


# -- a command (the spec comes from cascade-cli; without it this hook is never called) -----


@cascade.hookimpl
def cascade_register_commands(cli: Any) -> None:
    """Add ``cascade example-hello`` to the command line."""
    import click

    @cli.command("example-hello")
    def example_hello() -> None:
        """Print a greeting from the example plugin."""
        click.echo("hello from the example plugin")
