"""The worker side of executors that run calls in other processes, written once.

The ``processes`` executor and cascade-dask (and a plugin's executor, through
``cascade.executors``) send each call as a ``CallSpec`` (everything about the call but the
function and its arguments) and run it where it lands with ``run_spec``, which does the steps
every such worker does, in this order:

- the resources the call injects are set up here (``WorkerResources``): run-scoped ones once
  per run in this process, kept until the driver's ``teardown``; task-scoped ones around the
  call. They come in the setup order the engine gave (``order_providers``): the engine
  checked them once (``plan_resources``), neither the driver side of an executor nor the
  worker checks them again;
- the function runs inside ``worker_context`` (what call hooks put in ``carrier`` and
  ``worker_setup``, such as the trace context); an ``async def`` one runs on this process's
  worker loop when it uses resources (where async resources live), else with ``asyncio.run``
  unless the executor says how;
- its running time is measured here, and, in a run that captures logs, what it logs through
  ``logging`` is collected (``cascade.executors.worker_logs``), both kept in a ``CallReport``
  for the driver to report with the attempt;
- an exception becomes a ``Failure`` value where the executor needs one (a process pool must
  never receive an exception it cannot unpickle): rebuilt as itself on the driver, with the
  worker-side traceback as its cause.

Only the standard library and the layers below ``cascade.executors`` are imported: this runs
in worker processes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import pickle
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cascade.executors.protocol import PortableFunction, WorkerSetup, worker_context
from cascade.executors.worker_logs import ShippedLine, begin_collecting, end_collecting
from cascade.resources import ResourceError, ResourceStack
from cascade.spec.resource import ResourceDefinition

logger = logging.getLogger("cascade.executors")

# -- what travels to the worker ---------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """A resource definition on its way to a worker, its function by reference
    (``PortableFunction``, or the executor's subclass of it)."""

    name: str
    scope: str
    func: PortableFunction

    @classmethod
    def of(
        cls, definition: ResourceDefinition, portable: type[PortableFunction] = PortableFunction
    ) -> Provider:
        return cls(definition.name, definition.scope, portable(definition.func))

    def definition(self) -> ResourceDefinition:
        return ResourceDefinition(self.func.fn, self.name, self.scope)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CallSpec:
    """Everything about one call that is not the function and its arguments.

    ``key`` is the executor's name for the call (a counter, a Dask key). ``providers`` are the
    resources the call needs, in setup order (``order_providers``). ``logs`` is ``(level,
    limit, message_limit)`` when the run captures what tasks log (``LogShipping``), else
    ``None`` and nothing is collected."""

    key: Any
    task_name: str
    run_id: str
    is_async: bool
    task_id: str = ""
    attempt: int = 1
    carrier: dict[str, str] = field(default_factory=dict)
    worker_setup: list[WorkerSetup] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    logs: tuple[int, int, int] | None = None
    #: Whether the executor wants the times measured here (cascade-dask's ``worker_times``).
    report_times: bool = True


def order_providers(
    task_name: str,
    resources: Mapping[str, str],
    available: Mapping[str, ResourceDefinition],
    portable: type[PortableFunction] = PortableFunction,
) -> dict[str, Provider]:
    """On the driver: the providers a call's ``resources`` (parameter → resource name) need,
    dependencies first, ready to travel. ``available`` is ``RunInfo.resource_providers``: the
    engine checked those definitions once (unknown names, cycles, scopes) and gives them in
    setup order, so this only picks the ones the call needs, keeping that order."""
    needed: set[str] = set()
    pending = list(resources.values())
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        definition = available.get(name)
        if definition is None:
            raise ResourceError(
                f"task '{task_name}' needs resource '{name}', which the run did not give its "
                f"executor (given: {', '.join(sorted(available)) or 'none'})"
            )
        needed.add(name)
        pending.extend(dep for _, dep in definition.injections)
    return {
        name: Provider.of(definition, portable)
        for name, definition in available.items()
        if name in needed
    }


@dataclass
class CallReport:
    """What a worker measured and collected for one call: when its function started and ended
    (wall clock), and the log lines it emitted (``emitted`` counts them all, the lines being
    at most the run's limit)."""

    start: float = 0.0
    end: float = 0.0
    lines: list[ShippedLine] = field(default_factory=list)
    emitted: int = 0


# -- resources where the call runs -----------------------------------------------------------


class WorkerResources:
    """What one worker process keeps between calls: the run-scoped resources of each run, and
    the event loop (in a daemon thread) where async resources, and the async calls that use
    them, run. ``where()`` names this worker in errors (``"in worker process 123"``)."""

    def __init__(self, executor: str, where: Callable[[], str], loop_name: str) -> None:
        self.executor = executor
        self.where = where
        self.loop_name = loop_name
        self.runs: dict[str, tuple[ResourceStack, threading.Lock]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """This process's worker loop, started on first use."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self.loop_name, daemon=True).start()
                self._loop = loop
            return self._loop

    @property
    def started_loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def inject(self, spec: CallSpec) -> tuple[dict[str, Any], ResourceStack | None]:
        """The injected values of a call: the run's resources here (set up on first use),
        plus a stack of the call's task-scoped ones (``None`` if it has none), torn down again
        if one of them fails."""
        providers = {name: p.definition() for name, p in spec.providers.items()}
        loop = self.loop() if any(d.is_async for d in providers.values()) else None
        with self._lock:
            entry = self.runs.get(spec.run_id)
            if entry is None:
                entry = self.runs[spec.run_id] = (
                    ResourceStack(None, spec.run_id),
                    threading.Lock(),
                )
        run, lock = entry
        with lock:
            for name, definition in providers.items():
                if definition.scope != "task" and name not in run.instances:
                    self._enter(run, definition, run.instances, loop, spec.task_name)
            available = dict(run.instances)
        scoped: ResourceStack | None = None
        try:
            for definition in providers.values():
                if definition.scope == "task":
                    if scoped is None:
                        scoped = ResourceStack(None, spec.run_id)
                    here = {**available, **scoped.instances}
                    self._enter(scoped, definition, here, loop, spec.task_name)
        except BaseException as exc:
            if scoped is not None:
                for message in self.close(scoped, exc):
                    logger.error("%s", message)
            raise
        if scoped is not None:
            available.update(scoped.instances)
        return {param: available[name] for param, name in spec.resources.items()}, scoped

    def _enter(
        self,
        stack: ResourceStack,
        definition: ResourceDefinition,
        available: Mapping[str, Any],
        loop: asyncio.AbstractEventLoop | None,
        task_name: str,
    ) -> None:
        try:
            stack.enter_blocking(definition, available, loop)
        except ResourceError:
            raise
        except Exception as exc:
            raise ResourceError(
                f"task '{task_name}': resource '{definition.name}' failed to set up "
                f"{self.where()}: {type(exc).__name__}: {exc}. Resources of tasks on the "
                f"'{self.executor}' executor are set up where the task runs; make sure the "
                "provider can run there."
            ) from exc

    def close(self, stack: ResourceStack, error: BaseException | None) -> list[str]:
        """Tear a stack down; one message per teardown that failed."""
        try:
            stack.close_blocking(error, self._loop)
        except Exception as exc:
            return [f"teardown of a resource failed {self.where()}: {type(exc).__name__}: {exc}"]
        return []

    def teardown(self, run_ids: list[str]) -> list[str]:
        """Tear down what these runs set up here (the driver asks when a run ends); one
        message per failure."""
        errors: list[str] = []
        for run_id in run_ids:
            with self._lock:
                entry = self.runs.pop(run_id, None)
            if entry is not None:
                with entry[1]:
                    errors.extend(self.close(entry[0], None))
        return errors

    def open_resources(self) -> dict[str, list[str]]:
        """Resources currently set up here, by run (for tests and diagnostics)."""
        with self._lock:
            return {run_id: stack.names for run_id, (stack, _) in self.runs.items()}

    def run_on_loop(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_task: Callable[[asyncio.Task[Any]], bool] | None = None,
    ) -> Any:
        """Run an ``async def`` call on the worker loop, in a copy of this thread's context
        (what ``worker_context`` and the log collection set), and wait for it. ``on_task``
        sees the task as it is created; returning ``False`` cancels it at once."""
        context = contextvars.copy_context()
        loop = self.loop()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def finish(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                done.set_exception(asyncio.CancelledError())
            elif task.exception() is not None:
                done.set_exception(task.exception())  # type: ignore[arg-type]
            else:
                done.set_result(task.result())

        def begin() -> None:
            try:
                task = context.run(loop.create_task, fn(*args, **kwargs))
            except BaseException as exc:
                done.set_exception(exc)
                return
            if on_task is not None and not on_task(task):
                task.cancel()
            task.add_done_callback(finish)

        loop.call_soon_threadsafe(begin)
        return done.result()


# -- running one call -------------------------------------------------------------------------


def run_spec(
    spec: CallSpec,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    resources: WorkerResources | None,
    report: CallReport,
    run_async: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any] | None = None,
) -> Any:
    """Run one call here (see the module docstring), filling ``report`` as it goes (also when
    it fails). ``run_async(fn, args, kwargs)`` runs an ``async def`` function if given."""
    if isinstance(fn, PortableFunction):
        fn = fn.fn
    scoped: ResourceStack | None = None
    failure: BaseException | None = None
    collector = begin_collecting(spec.logs)
    try:
        if spec.resources:
            if resources is None:
                raise ResourceError(
                    f"task '{spec.task_name}': resources need a worker started by its executor"
                )
            injected, scoped = resources.inject(spec)
            kwargs = {**kwargs, **injected}
        report.start = time.time()
        try:
            with worker_context(spec.carrier, spec.worker_setup):
                if not spec.is_async:
                    return fn(*args, **kwargs)
                if run_async is not None:
                    return run_async(fn, args, kwargs)
                if resources is not None and spec.resources:
                    return resources.run_on_loop(fn, args, kwargs)
                return asyncio.run(fn(*args, **kwargs))
        finally:
            report.end = time.time()
    except BaseException as exc:
        failure = exc
        raise
    finally:
        try:
            if scoped is not None and resources is not None:
                try:
                    scoped.close_blocking(failure, resources.started_loop)
                except Exception as exc:
                    if failure is None:
                        raise  # a failed teardown fails the call, as in the engine
                    logger.error("teardown after a failed call failed too: %r", exc)
        finally:
            if collector is not None:
                report.lines, report.emitted = end_collecting(collector)


# -- exceptions on their way back -------------------------------------------------------------


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (set as its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _rebuild_exception(kind: type[BaseException], args: tuple[Any, ...], state: Any) -> Any:
    """An exception of ``kind`` with these ``args`` and attributes, without calling its
    ``__init__`` (which may take other arguments than ``args``)."""
    try:
        exc = kind.__new__(kind, *args)
    except Exception:
        exc = BaseException.__new__(kind)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    return exc


class _AsItself:
    """Pickles an exception as its class, ``args`` and attributes."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> Any:
        exc = self.exc
        return (_rebuild_exception, (type(exc), exc.args, dict(getattr(exc, "__dict__", {}))))


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable>"


class Failure:
    """A task's exception, pickled (when it can be) and checked to unpickle, as plain data,
    with the text of its worker-side traceback."""

    __slots__ = ("message", "payload", "problem", "text", "type_name")

    def __init__(
        self, payload: bytes | None, type_name: str, message: str, text: str, problem: str
    ) -> None:
        self.payload = payload
        self.type_name = type_name
        self.message = message
        self.text = text
        self.problem = problem

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        kind = type(exc)
        problem = ""
        for candidate in (exc, _AsItself(exc)):
            try:
                data = pickle.dumps(candidate, protocol=pickle.HIGHEST_PROTOCOL)
                back = pickle.loads(data)
                if type(back) is not kind:
                    raise TypeError(f"it unpickles as {type(back).__qualname__}")
            except Exception as why:
                problem = problem or f"{type(why).__name__}: {why}"
                continue
            return cls(data, f"{kind.__module__}.{kind.__qualname__}", _safe_str(exc), text, "")
        return cls(None, f"{kind.__module__}.{kind.__qualname__}", _safe_str(exc), text, problem)

    def rebuild(self, task_name: str) -> BaseException:
        """The exception again, on the driver, its worker-side traceback as its cause."""
        exc: BaseException | None = None
        problem = self.problem
        if self.payload is not None:
            try:
                exc = pickle.loads(self.payload)
            except Exception as why:
                problem = f"{type(why).__name__}: {why}"
        if exc is None:
            exc = RuntimeError(
                f"task '{task_name}' raised {self.type_name}: {self.message} in its worker "
                f"process, and that exception cannot be sent back to this process ({problem}). "
                "Make it picklable (its class importable, its arguments and attributes "
                "picklable), or raise a standard exception type."
            )
        exc.__cause__ = _RemoteTraceback(f'\n"""\n{self.text}"""')
        return exc


def worker_pid() -> str:
    """``"in worker process <pid>"``: how a worker process names itself in errors."""
    return f"in worker process {os.getpid()}"


__all__ = [
    "CallReport",
    "CallSpec",
    "Failure",
    "Provider",
    "WorkerResources",
    "order_providers",
    "run_spec",
    "worker_pid",
]
