"""What runs inside the ``processes`` executor's worker processes (see
``cascade.executors.processes`` for the driver side).

Every call runs as ``run_in_process(spec, fn, args, kwargs)``. It tells the driver when it
begins (``on_start``), sets up the resources the call injects with the core's resource
lifecycle (``plan_resources``, ``ResourceStack``): once per worker per run, ``scope="task"``
ones around the call, torn down by ``teardown_in_worker`` when the run ends; and it returns an
exception as a ``Failure`` value, so that one which cannot be pickled, or not unpickled (a
custom ``__init__``), never breaks the pool: it is rebuilt as itself when its class and state
allow, else it fails with an error naming the task and the type.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import pickle
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cascade.executors.protocol import PortableFunction, WorkerSetup, worker_context
from cascade.resources import ResourceError, ResourceStack, plan_resources
from cascade.spec.resource import ResourceDefinition

logger = logging.getLogger("cascade.executors")

#: How long workers wait for each other in a warm-up or teardown round (all must take part).
BARRIER_TIMEOUT = 120.0


# -- what travels to a worker ---------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """A resource definition on its way to a worker, its function by reference."""

    name: str
    scope: str
    func: PortableFunction

    def definition(self) -> ResourceDefinition:
        return ResourceDefinition(self.func.fn, self.name, self.scope)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CallSpec:
    """Everything about one call that is not the function and its arguments."""

    token: int
    task_name: str
    run_id: str
    is_async: bool
    carrier: dict[str, str] = field(default_factory=dict)
    worker_setup: list[WorkerSetup] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)


# -- in the worker process ------------------------------------------------------------------


class _Worker:
    """What one worker process keeps between calls."""

    def __init__(self, started: Any, barrier: Any) -> None:
        self.started = started
        self.barrier = barrier
        self.runs: dict[str, ResourceStack] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def async_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop (in a daemon thread) where async resources, and the async calls that
        use them, run: one per worker process, started on first use."""
        if self.loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="cascade-worker-loop", daemon=True
            ).start()
            self.loop = loop
        return self.loop


_worker: _Worker | None = None


def init_worker(started: Any, barrier: Any) -> None:
    global _worker
    _worker = _Worker(started, barrier)


def meet(_: int = 0) -> int:
    """A warm-up job: wait until every worker holds one, so each has started (and none takes
    two); the worker's process id."""
    if _worker is not None:
        _worker.barrier.wait(BARRIER_TIMEOUT)
    return os.getpid()


def run_in_process(spec: CallSpec, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one call in this worker. An exception comes back as a ``Failure`` value, so
    anything the pool itself raises is about the result (it could not be pickled)."""
    worker = _worker
    if worker is not None:
        try:
            worker.started.send((spec.token, os.getpid()))
        except OSError:  # the driver stopped listening: it no longer waits for this
            pass
    try:
        return _call(worker, spec, fn, args, kwargs)
    except BaseException as exc:
        return Failure.of(exc)


def _call(
    worker: _Worker | None,
    spec: CallSpec,
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if isinstance(fn, PortableFunction):
        fn = fn.fn
    scoped: ResourceStack | None = None
    failure: BaseException | None = None
    try:
        if spec.resources:
            if worker is None:
                raise ResourceError("resources need a worker started by ProcessExecutor")
            injected, scoped = _worker_resources(worker, spec)
            kwargs = {**kwargs, **injected}
        with worker_context(spec.carrier, spec.worker_setup):
            if not spec.is_async:
                return fn(*args, **kwargs)
            if worker is not None and spec.resources:
                return _on_worker_loop(worker, fn, args, kwargs)
            return asyncio.run(fn(*args, **kwargs))
    except BaseException as exc:
        failure = exc
        raise
    finally:
        if scoped is not None and worker is not None:
            try:
                scoped.close_blocking(failure, worker.loop)
            except Exception:
                if failure is None:
                    raise  # a failed teardown fails the call, as in the engine


def _on_worker_loop(worker: _Worker, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run an async call on the worker's loop (where its async resources live), in the
    context ``worker_setup`` entered here, and wait for it."""
    context = contextvars.copy_context()
    loop = worker.async_loop()
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def finish(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            done.cancel()
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
        task.add_done_callback(finish)

    loop.call_soon_threadsafe(begin)
    return done.result()


def _worker_resources(
    worker: _Worker, spec: CallSpec
) -> tuple[dict[str, Any], ResourceStack | None]:
    """The injected values of a call: the run's resources in this worker (set up on first
    use), plus a stack of the call's task-scoped ones, torn down again if one fails."""
    providers = {name: p.definition() for name, p in spec.providers.items()}
    order = plan_resources(
        providers, [(name, f"task '{spec.task_name}'") for name in spec.resources.values()]
    )
    loop = worker.async_loop() if any(providers[n].is_async for n in order) else None
    run = worker.runs.get(spec.run_id)
    if run is None:
        run = worker.runs[spec.run_id] = ResourceStack(None, spec.run_id)
    for name in order:
        if providers[name].scope != "task" and name not in run.instances:
            _enter(run, providers[name], run.instances, loop, spec.task_name)
    available = dict(run.instances)
    scoped: ResourceStack | None = None
    try:
        for name in order:
            if providers[name].scope == "task":
                if scoped is None:
                    scoped = ResourceStack(None, spec.run_id)
                _enter(
                    scoped, providers[name], {**available, **scoped.instances}, loop, spec.task_name
                )
    except BaseException as exc:
        if scoped is not None:
            try:
                scoped.close_blocking(exc, loop)
            except Exception as teardown:
                logger.error("teardown after a failed setup failed too: %r", teardown)
        raise
    if scoped is not None:
        available.update(scoped.instances)
    return {param: available[name] for param, name in spec.resources.items()}, scoped


def _enter(
    stack: ResourceStack,
    definition: ResourceDefinition,
    available: Mapping[str, Any],
    loop: asyncio.AbstractEventLoop | None,
    task_name: str,
) -> None:
    try:
        stack.enter_blocking(definition, available, loop)
    except Exception as exc:
        raise ResourceError(
            f"task '{task_name}': resource '{definition.name}' failed to set up in worker "
            f"process {os.getpid()}: {type(exc).__name__}: {exc}. Resources of tasks on the "
            "'processes' executor are set up in the worker process that runs the task."
        ) from exc


def teardown_in_worker(run_ids: list[str]) -> list[str]:
    """A teardown job (one per worker, held by the barrier): close what these runs set up
    here; one message per failure."""
    errors: list[str] = []
    worker = _worker
    if worker is None:
        return errors
    for run_id in run_ids:
        stack = worker.runs.pop(run_id, None)
        if stack is None:
            continue
        try:
            stack.close_blocking(None, worker.loop)
        except Exception as exc:
            errors.append(
                f"teardown of a resource failed in worker process {os.getpid()}: "
                f"{type(exc).__name__}: {exc}"
            )
    try:
        worker.barrier.wait(BARRIER_TIMEOUT)
    except threading.BrokenBarrierError:
        errors.append(f"worker process {os.getpid()} waited in vain for the others' teardown")
    return errors


# -- exceptions on their way back ---------------------------------------------------------


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (set as its ``__cause__``)."""

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
    """A task's exception, pickled (when it can be) and checked to unpickle, as plain data."""

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


__all__ = [
    "BARRIER_TIMEOUT",
    "CallSpec",
    "Failure",
    "Provider",
    "init_worker",
    "meet",
    "run_in_process",
    "teardown_in_worker",
]
