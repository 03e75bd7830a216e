"""Resource lifecycles: validating what a graph needs, setting providers up in dependency
order and tearing them down in reverse, on success, failure and cancellation.

The same code serves the engine (on its event loop) and executors that set resources up where
a call runs (a worker process, a Dask worker): ``plan_resources`` orders and checks what a call
needs, and a ``ResourceStack`` (without a bus there) opens and closes it, from a worker thread
with ``enter_blocking`` and ``close_blocking``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

from cascade.bus import MessageBus
from cascade.events import ResourceAcquired, ResourceReleased
from cascade.spec.resource import ResourceDefinition

logger = logging.getLogger("cascade.resources")


class ResourceError(LookupError):
    """A resource is unknown, depends on itself, or misbehaves during setup or teardown."""


def plan_resources(
    providers: Mapping[str, ResourceDefinition], wanted: Iterable[tuple[str, str]]
) -> list[str]:
    """Every resource needed (transitively) in setup order, dependencies first.

    ``wanted`` pairs a resource name with who wants it (``"task 'load'"``), so an unknown name,
    a cycle, or a run-scoped resource that injects a task-scoped one (it would outlive what it
    holds) fails with an error naming them, before any task runs. Every place that sets
    resources up (the engine, the processes executor, Dask workers) orders them through here,
    so the rules are checked once, the same way.
    """
    order: list[str] = []
    done: set[str] = set()
    for root, requester in wanted:
        if root in done:
            continue
        stack: list[tuple[str, list[str], bool]] = [(root, [requester], False)]
        on_path: list[str] = []
        while stack:
            name, chain, expanded = stack.pop()
            if expanded:
                on_path.pop()
                if name not in done:
                    done.add(name)
                    order.append(name)
                continue
            if name in done:
                continue
            if name in on_path:
                cycle = " -> ".join([*on_path[on_path.index(name) :], name])
                raise ResourceError(f"resources depend on each other in a cycle: {cycle}")
            definition = providers.get(name)
            if definition is None:
                known = ", ".join(sorted(providers)) or "none"
                raise ResourceError(
                    f"{chain[-1]} needs resource '{name}', which is not registered "
                    f"(registered: {known}); register it with engine.register(...)"
                )
            on_path.append(name)
            stack.append((name, chain, True))
            for _, dep in reversed(definition.injections):
                injected = providers.get(dep)
                if definition.scope != "task" and injected is not None and injected.scope == "task":
                    raise ResourceError(
                        f"run-scoped resource '{name}' cannot inject task-scoped resource '{dep}'"
                    )
                stack.append((dep, [*chain, f"resource '{name}'"], False))
    return order


class ResourceStack:
    """Open resources of one scope (a run, or one task execution), closed in reverse order.

    With a ``bus``, each setup and teardown is published (``ResourceAcquired``,
    ``ResourceReleased``); a stack in a worker has none."""

    def __init__(self, bus: MessageBus | None = None, run_id: str = "") -> None:
        self._bus = bus
        self._run_id = run_id
        self._open: list[tuple[str, Any]] = []
        self.instances: dict[str, Any] = {}
        #: The resource whose teardown raised the error ``close`` raises, if any.
        self.failed_teardown: str | None = None

    @property
    def names(self) -> list[str]:
        """The open resources, in setup order."""
        return [name for name, _ in self._open]

    async def enter(self, definition: ResourceDefinition, available: Mapping[str, Any]) -> Any:
        """Run a provider's setup with its own injections taken from ``available``."""
        kwargs = {param: available[dep] for param, dep in definition.injections}
        generator = definition.func(**kwargs)
        try:
            if inspect.isasyncgen(generator):
                value = await generator.__anext__()
            else:
                value = next(generator)
        except (StopIteration, StopAsyncIteration):
            raise ResourceError(
                f"resource '{definition.name}' returned without yielding a value"
            ) from None
        self._open.append((definition.name, generator))
        self.instances[definition.name] = value
        if self._bus is not None and self._bus.wants(ResourceAcquired):
            self._bus.publish(ResourceAcquired(run_id=self._run_id, resource_name=definition.name))
        return value

    async def close(self, error: BaseException | None) -> None:
        """Tear everything down in reverse. ``error`` (the run's failure, if any) is thrown into
        each generator so it can roll back. A teardown that fails on a successful run is raised
        after all others ran; on a failed run it is logged, so the original error surfaces.

        A cancellation that arrives meanwhile (once or many times) cuts no teardown short:
        every resource is torn down, in reverse order, and the cancellation is raised after
        the last one."""
        first_failure: BaseException | None = None
        cancelled = False
        while self._open:
            name, generator = self._open.pop()
            self.instances.pop(name, None)
            try:
                if inspect.isasyncgen(generator):
                    await run_to_end(_finish_generator(name, generator, error))
                else:  # never suspends, so nothing can interrupt it
                    await _finish_generator(name, generator, error)
            except asyncio.CancelledError as exc:
                cancelled = True
                if isinstance(exc.__cause__, Exception):
                    logger.error("teardown of resource '%s' failed: %r", name, exc.__cause__)
            except Exception as exc:
                if error is None and first_failure is None:
                    first_failure = exc
                    self.failed_teardown = name
                else:
                    logger.error("teardown of resource '%s' failed: %r", name, exc)
            if self._bus is not None and self._bus.wants(ResourceReleased):
                self._bus.publish(ResourceReleased(run_id=self._run_id, resource_name=name))
        if first_failure is not None:
            raise first_failure
        if cancelled:
            raise asyncio.CancelledError

    # -- from a thread that runs no event loop (a worker) ------------------------------------

    def enter_blocking(
        self,
        definition: ResourceDefinition,
        available: Mapping[str, Any],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Any:
        """``enter`` from a thread without a running event loop: a sync provider's setup runs in
        this thread, an async provider's on ``loop`` (running in another thread), where its
        teardown will run too."""
        if definition.is_async:
            return _on_loop(self.enter(definition, available), loop, f"'{definition.name}' is")
        return _drive(self.enter(definition, available))

    def close_blocking(
        self, error: BaseException | None = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """``close`` from a thread without a running event loop: in this thread when every open
        provider is sync, else on ``loop``."""
        if any(inspect.isasyncgen(generator) for _, generator in self._open):
            _on_loop(self.close(error), loop, "to close is")
        else:
            _drive(self.close(error))


async def run_to_end(step: Coroutine[Any, Any, Any]) -> Any:
    """Await a teardown step to its end however often the caller is cancelled meanwhile (a
    second Ctrl-C, a cancelled ``cs.run_async``): a teardown cut short leaves what it
    guards open. A cancellation that arrived is raised once the step has ended."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    if cancelled:
        # The step's own failure, if any, rides along as the cause (and counts as retrieved).
        failure = None if task.cancelled() else task.exception()
        raise asyncio.CancelledError from failure
    return task.result()


def _drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (setup or teardown of sync providers only) here."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("a sync resource step waited on an event loop")  # pragma: no cover


def _on_loop(
    coroutine: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop | None, which: str
) -> Any:
    if loop is None:
        coroutine.close()
        raise ResourceError(f"a resource {which} async, and no event loop was given to run it on")
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


async def _finish_generator(name: str, generator: Any, error: BaseException | None) -> None:
    is_async = inspect.isasyncgen(generator)
    try:
        if error is None or not isinstance(error, Exception):
            # Cancellation and interrupts are not thrown in: teardown runs as on success.
            if is_async:
                await generator.__anext__()
            else:
                next(generator)
        elif is_async:
            await generator.athrow(error)
        else:
            generator.throw(error)
    except (StopIteration, StopAsyncIteration):
        return
    except BaseException as exc:
        if exc is error:
            return  # the provider re-raised the run's error after rolling back
        raise
    raise ResourceError(f"resource '{name}' yielded more than once; yield exactly one value")
