"""The executor protocol: the one thing an executor does is run a call.

The engine owns scheduling, events, resources and policies. For every task attempt it builds a
``TaskCall`` and hands it to ``Executor.submit``, which returns an awaitable of the result:

- a coroutine, which the engine runs as an ``asyncio.Task`` (and may cancel), or
- an ``asyncio.Future``. If the executor sets ``stops_on_cancel = True``, cancelling that future
  must stop the work (a process executor kills the worker, Dask cancels the future). Otherwise
  the engine never cancels it and, when a run fails or is cancelled, waits for it to finish —
  except an attempt that timed out, which is abandoned.

``start()`` and ``shutdown()`` bracket each run that uses the executor. An executor with
``requires_pickle = True`` sends functions and arguments to another process, so they must be
picklable; it should fail with ``UnpicklableTaskError`` naming the task and the value.

Executors that keep results elsewhere (``returns_references = True``) may complete with a
reference instead of the value; the engine then hands references of the same executor straight
back to it as arguments, and calls ``materialize`` only when it needs values (targets,
conditions, mapping, caching, and inputs of tasks on another executor).

Executors that run calls on other machines may set ``remote_resources = True``: the engine then
does not set up the resources such a task injects; it passes their definitions in
``call.resources`` (parameter name → resource name) and ``call.resource_providers`` (every
definition needed, dependencies included), and the executor sets them up where the call runs
(once per run, keyed by ``call.run_id``) and tears them down in ``shutdown``. The core's
``plan_resources`` and ``ResourceStack`` (``enter_blocking``/``close_blocking`` from a worker
thread) do the ordering, checks, setup, rollback and teardown; the ``processes`` executor and
cascade-dask's workers use them.

Executors that queue calls (a thread or process pool) should set ``reports_start = True``:
the engine then sets ``call.on_start`` for calls with a timeout, and the executor calls
``call.on_start()`` exactly once, on the event loop's thread (``loop.call_soon_threadsafe``
from a worker thread), when the call really begins running. The engine starts the timeout's
clock there, so time spent queued does not count. ``on_start`` is ``None`` for calls nobody
times; an executor with ``reports_start = False`` never sees it set.

**One handle per run.** The engine does not call ``start``/``submit``/``shutdown`` itself: for
each run that uses an executor it enters ``executor.open_run(RunInfo(...))``, an async context
manager yielding an ``ExecutorRun``, submits that run's calls to the handle
(``handle.submit(call)``, ``handle.submit_plain``), and leaves the context manager when the
run's last call has ended. The handle is where per-run state lives (the resources a run set up
in workers, the futures it submitted), so an executor serving two runs at once never has to
guess which run a call or a shutdown belongs to. ``RunInfo`` says what executors need to know
about the run: its id, its event loop, the resource providers of ``remote_resources`` tasks,
and whether (and at which level) the run captures what tasks log (``LogShipping``).
An executor whose ``submit_plain`` runs an ``async def`` call as an ``asyncio.Task`` on the
run's own loop, in the engine's thread (the local executor), may say so with
``async_on_loop = True`` (optional; read from the handle, then the executor): the engine then
hands ``submit_plain`` a coroutine function of its own wrapping the task's, which settles the
call in its last step instead of a done callback one loop pass later.
``BaseExecutor.open_run`` brackets ``start``/``shutdown`` with a handle that forwards to
``submit``, so subclasses that only write those keep working; an executor that does not
subclass ``BaseExecutor`` and has no ``open_run`` is adapted by ``cascade.executors.open_run``
with a ``DeprecationWarning``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import pickle
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from cascade.spec.resource import ResourceDefinition

#: ``worker_setup`` entries: called in the worker with the call's ``carrier``, returning a
#: context manager entered around the function (how tracing context reaches other processes).
WorkerSetup = Callable[[dict[str, str]], contextlib.AbstractContextManager[Any]]

#: ``submit_plain(fn, args, kwargs, is_async)``: see ``BaseExecutor.submit_plain``.
PlainSubmit = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any], bool], Any]


@dataclass(slots=True, eq=False)
class TaskCall:
    """One attempt of one task, with its arguments resolved.

    ``context`` is the ``contextvars.Context`` to run the function in (set when plugins such as
    tracing asked for one); ``carrier`` and ``worker_setup`` carry that context to another
    process (only needed when ``leaves_process`` is true). A remote executor may set
    ``start_time``/``end_time`` (wall clock, seconds) to the
    times measured where the call ran; the engine reports them in ``TaskExecutionFinished``.
    """

    task_id: str
    task_name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    is_async: bool
    run_id: str = ""
    attempt: int = 1
    timeout: float | None = None
    context: contextvars.Context | None = None
    carrier: dict[str, str] = field(default_factory=dict)
    worker_setup: list[WorkerSetup] = field(default_factory=list)
    start_time: float | None = None
    end_time: float | None = None
    #: Set by the engine before call hooks run: whether the executor ships this call to
    #: another process (``requires_pickle``), so hooks fill ``carrier`` only when it matters.
    leaves_process: bool = False
    resources: dict[str, str] = field(default_factory=dict)
    resource_providers: dict[str, Any] = field(default_factory=dict)
    #: Set by the engine for calls with a timeout. An executor with ``reports_start = True``
    #: calls it once, on the event loop's thread, when the call actually begins running, so
    #: that time spent queued does not count against the timeout.
    on_start: Callable[[], None] | None = None
    #: The task id of the task whose returned graph added this one at run time, if any.
    parent_task_id: str | None = None
    #: Seconds this attempt waited for slots or tokens before it was submitted, and what for
    #: (``"pool 'openai'"``, ``"rate limit of task 'fetch'"``, ``"max_concurrency"``).
    waited: float = 0.0
    waited_for: tuple[str, ...] = ()


#: ``deliver(task_id, attempt, lines, emitted)``: see ``LogShipping``.
DeliverLogs = Callable[[str, int, list[tuple[float, str, str, str]], int], None]


@dataclass(frozen=True)
class LogShipping:
    """A run that captures what tasks log, as executors that run calls elsewhere see it.

    Where a call runs, records of ``level`` and above that the task (or a library it calls)
    emits through ``logging`` are collected, at most ``limit`` of them (records of Cascade's
    own ``cascade.*`` loggers excepted), and shipped back with the result or the failure;
    the driver hands them to ``deliver(task_id, attempt, lines, emitted)``, ``lines`` being
    ``(time, level name, logger name, message)`` tuples and ``emitted`` how many records were
    emitted in all (more than ``len(lines)`` when some were cut); a message is cut to
    ``message_limit`` characters. ``RunInfo.logs`` is ``None`` when the run captures nothing:
    then nothing is collected anywhere."""

    level: int
    limit: int
    deliver: DeliverLogs
    message_limit: int = 2_000


@dataclass(frozen=True)
class RunInfo:
    """What an executor is told about a run when it opens its handle (``open_run``).

    ``resource_providers`` are the definitions of every resource a ``remote_resources`` task
    of the run injects (dependencies included), by name, in setup order (dependencies first);
    the mapping may grow while the run runs (tasks added by returned graphs). The engine
    checked them once (unknown names, cycles, scopes: ``plan_resources``): an executor sets
    them up where calls run without checking them again.
    """

    run_id: str
    loop: asyncio.AbstractEventLoop
    resource_providers: Mapping[str, ResourceDefinition] = field(default_factory=dict)
    logs: LogShipping | None = None


@runtime_checkable
class ExecutorRun(Protocol):
    """One executor's handle for one run (see the module docstring): the engine submits the
    run's calls here."""

    #: The run this handle serves.
    info: RunInfo
    #: Whether the executor calls ``call.on_start()`` when a queued call begins running.
    reports_start: bool
    #: Optional fast route (see ``BaseExecutor.submit_plain``); ``None``: always ``submit``.
    submit_plain: PlainSubmit | None

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        """Begin running ``call`` (a call of this run) and return an awaitable of its result."""


@runtime_checkable
class Executor(Protocol):
    """What the engine needs from an executor. See the module docstring for the contract.

    Everything the engine reads is declared here. ``BaseExecutor.open_run`` builds a run's
    handle on ``start``/``submit``/``shutdown``; an executor may implement ``open_run``
    itself and keep its per-run state in the handle.
    """

    name: ClassVar[str]
    requires_pickle: ClassVar[bool]
    stops_on_cancel: ClassVar[bool]
    returns_references: ClassVar[bool]
    remote_resources: ClassVar[bool]
    reports_start: ClassVar[bool]
    submit_plain: PlainSubmit | None

    def open_run(self, run: RunInfo) -> contextlib.AbstractAsyncContextManager[ExecutorRun]:
        """An async context manager that prepares for ``run`` and yields its handle; leaving
        it releases what the run held. Entered once per run that uses the executor."""

    async def start(self) -> None:
        """Prepare for a run (start pools, connect to a cluster)."""

    async def shutdown(self) -> None:
        """Release what ``start`` acquired."""

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        """Begin running ``call`` and return an awaitable of its result."""

    async def materialize(self, values: list[Any]) -> list[Any]:
        """Turn references this executor returned into values (identity for local ones)."""


def _load_task_function(module: str, qualname: str) -> Callable[..., Any]:
    """The function at ``module.qualname``: a ``@cs.task``'s ``.fn``, a ``@cs.resource``'s
    ``.func``, or the object itself."""
    import importlib

    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if isinstance(target, ResourceDefinition):
        return target.func
    return getattr(target, "fn", target)  # type: ignore[no-any-return]


class PortableFunction:
    """Makes a ``@cs.task`` function picklable by reference, however many times it travels.

    ``@cs.task`` replaces the module attribute with the ``Task``, so plain pickle, which looks
    the function up by its qualified name and finds the ``Task``, refuses it. This wrapper
    pickles as "the ``.fn`` of whatever ``module.qualname`` is" and unpickles as a wrapper
    again, so a hop through a scheduler that unpickles and re-pickles (Dask's) still goes by
    reference. Functions that cannot be found by name go whole (cloudpickle pickles them by
    value; plain pickle refuses, and ``check_picklable`` says so).
    """

    __slots__ = ("fn",)

    #: Whether a function of ``__main__`` may go by reference: yes for multiprocessing, which
    #: re-imports the main module in its workers; subclasses for other workers may say no.
    main_by_reference: ClassVar[bool] = True

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> Any:
        module = getattr(self.fn, "__module__", None)
        qualname = getattr(self.fn, "__qualname__", "")
        by_name = module and "<locals>" not in qualname
        if by_name and (self.main_by_reference or module != "__main__"):
            try:
                if _load_task_function(module, qualname) is self.fn:  # type: ignore[arg-type]
                    return (_load_portable, (type(self), module, qualname))
            except Exception:
                pass
        return (type(self), (self.fn,))


def _load_portable(cls: type[PortableFunction], module: str, qualname: str) -> PortableFunction:
    return cls(_load_task_function(module, qualname))


class UnpicklableTaskError(TypeError):
    """A task or one of its arguments cannot be sent to another process."""


def check_picklable(
    call: TaskCall,
    dumps: Callable[[Any], bytes] = pickle.dumps,
    portable: type[PortableFunction] = PortableFunction,
) -> None:
    """Raise ``UnpicklableTaskError`` naming the task and the first value that cannot be
    pickled: the function itself (wrapped in ``portable``, the executor's own
    ``PortableFunction`` class, so it is checked the way it will travel), a positional argument
    or a keyword argument. A function that travels by value and fails because of a global it
    reads or a variable it captured names that global or variable."""
    fn = portable(call.fn)
    candidates: list[tuple[str, Any]] = [("the task function", fn)]
    candidates += [(f"argument {i}", v) for i, v in enumerate(call.args)]
    candidates += [(f"argument '{k}'", v) for k, v in call.kwargs.items()]
    for label, value in candidates:
        try:
            dumps(value)
        except Exception as exc:
            error: Exception = exc
        else:
            continue
        hint = ""
        culprit = _unpicklable_part(call.fn, dumps) if value is fn else None
        if culprit is not None:
            label = f"the task function ({_short_repr(call.fn)}) reads {culprit[0]}"
            value, error = culprit[1], culprit[2]
            hint = (
                " A function of the script being run travels by value, with the globals it "
                "reads: create such values inside the task, pass a resource, or move the "
                "function into an importable module."
            )
        raise UnpicklableTaskError(
            f"task '{call.task_name}': {label} ({_short_repr(value)}) cannot be sent to "
            f"another process: {type(error).__name__}: {error}. Use picklable values, or "
            f"run this task on a local executor.{hint}"
        ) from error


def _unpicklable_part(
    fn: Callable[..., Any], dumps: Callable[[Any], bytes]
) -> tuple[str, Any, Exception] | None:
    """The global or captured variable that keeps ``fn`` from pickling by value, if any."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return None
    found: list[tuple[str, Any]] = []
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or (), strict=False):
        try:
            found.append((f"the captured variable '{name}'", cell.cell_contents))
        except ValueError:
            continue
    namespace = getattr(fn, "__globals__", {})
    names: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    for name in sorted(names):
        if name in namespace and not isinstance(namespace[name], types.ModuleType):
            found.append((f"the module-level global '{name}'", namespace[name]))
    for label, value in found:
        try:
            dumps(value)
        except Exception as exc:
            return label, value, exc
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@contextlib.contextmanager
def worker_context(carrier: dict[str, str], worker_setup: list[WorkerSetup]) -> Iterator[None]:
    """Enter every ``worker_setup`` context around a call in a worker process."""
    with contextlib.ExitStack() as stack:
        for setup in worker_setup:
            stack.enter_context(setup(carrier))
        yield


def call_in_worker(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    carrier: dict[str, str],
    worker_setup: list[WorkerSetup],
) -> Any:
    """Run a (sync or async) task function in a worker process, inside the propagated context."""
    import asyncio
    import inspect

    if isinstance(fn, PortableFunction):
        fn = fn.fn
    with worker_context(carrier, worker_setup):
        if inspect.iscoroutinefunction(fn):
            return asyncio.run(fn(*args, **kwargs))
        return fn(*args, **kwargs)


class SubmitRun:
    """The handle ``BaseExecutor.open_run`` yields: the executor's own ``submit`` and
    ``submit_plain``, for executors that keep no state per run."""

    __slots__ = ("async_on_loop", "executor", "info", "reports_start", "submit", "submit_plain")

    def __init__(self, executor: Any, info: RunInfo) -> None:
        self.executor = executor
        self.info = info
        self.submit: Callable[[TaskCall], Awaitable[Any]] = executor.submit
        self.submit_plain: PlainSubmit | None = getattr(executor, "submit_plain", None)
        self.reports_start: bool = bool(getattr(executor, "reports_start", False))
        self.async_on_loop: bool = bool(getattr(executor, "async_on_loop", False))

    def __repr__(self) -> str:
        return f"<run {self.info.run_id[:8]} of {self.executor!r}>"


class BaseExecutor:
    """Defaults for the optional parts of the protocol; subclass it or implement them yourself."""

    name: ClassVar[str] = "base"
    requires_pickle: ClassVar[bool] = False
    stops_on_cancel: ClassVar[bool] = False
    returns_references: ClassVar[bool] = False
    remote_resources: ClassVar[bool] = False
    #: Whether this executor calls ``call.on_start()`` when a queued call begins running.
    reports_start: ClassVar[bool] = False
    #: Whether ``submit_plain`` runs an ``async def`` call as a task on the run's own loop
    #: (see the module docstring).
    async_on_loop: ClassVar[bool] = False

    def open_run(self, run: RunInfo) -> contextlib.AbstractAsyncContextManager[ExecutorRun]:
        """``start()``, a handle that forwards to ``submit``/``submit_plain``, and
        ``shutdown()`` when the run is over. Override it to keep state per run."""
        return bracket_run(self, run)

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def submit(self, call: TaskCall) -> Awaitable[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    async def materialize(self, values: list[Any]) -> list[Any]:
        return values

    #: Optional fast route, ``submit_plain(fn, args, kwargs, is_async) -> asyncio.Future``:
    #: an executor that can start a call without a ``TaskCall`` implements it, and the engine
    #: uses it for calls with no policies and no call hooks. The result must behave exactly
    #: as ``submit``'s would, except that it may already be done when returned (the engine
    #: then completes the call without waiting for a loop pass). ``None``: always use
    #: ``submit``.
    submit_plain: PlainSubmit | None = None


@contextlib.asynccontextmanager
async def bracket_run(executor: Any, run: RunInfo) -> AsyncIterator[ExecutorRun]:
    """A run's handle on an executor's ``start``/``submit``/``shutdown``: ``start()``, a
    ``SubmitRun``, and ``shutdown()`` when the run is over (``BaseExecutor.open_run``, and
    what ``cascade.executors.open_run`` adapts an executor without ``open_run`` with)."""
    await executor.start()
    try:
        yield SubmitRun(executor, run)
    finally:
        await executor.shutdown()


__all__ = [
    "BaseExecutor",
    "DeliverLogs",
    "Executor",
    "ExecutorRun",
    "LogShipping",
    "PortableFunction",
    "RunInfo",
    "SubmitRun",
    "TaskCall",
    "UnpicklableTaskError",
    "WorkerSetup",
    "bracket_run",
    "call_in_worker",
    "check_picklable",
    "worker_context",
]
