"""The engine: runs a graph as a dataflow, every task as soon as its own inputs are ready.

The main loop is event driven. A node whose inputs are complete is *launched*: either on the
fast path (a plain call, no policies) straight to its executor with a completion callback, or
as a coroutine that applies its policies (condition, cache, retries, timeout, task-scoped
resources, per-task concurrency, mapping). Completions count down their dependents' pending
inputs; ready dependents go on a queue that one pump drains, so nothing recurses however deep
the graph. The first failure stops new launches, cancels what can be stopped, waits for what
cannot, tears resources down and re-raises the original exception.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import sys
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any
from uuid import uuid4

from cascade.bus import MessageBus
from cascade.events import (
    RunFinished,
    RunStarted,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskRetrying,
    TaskSkipped,
    describe_error,
    make_event,
    preview,
)
from cascade.executors.local import LocalExecutor
from cascade.executors.protocol import Executor, TaskCall
from cascade.graph.build import (
    KIND_MAP,
    KIND_PARAM,
    Graph,
    Node,
    build_graph,
    resolve_nested,
)
from cascade.graph.targets import normalize_target
from cascade.resources import ResourceError, ResourceStack, plan_resources
from cascade.spec.params import ParamError
from cascade.spec.policies import RetryPolicy, TaskTimeoutError, check_concurrency
from cascade.spec.resource import (
    ResourceDefinition,
    declared_resources,
    make_resource_definition,
)
from cascade.spec.task import MISSING, MappedLazyResult, Param, Task

_SKIPPED: Any = object()
_CoroutineType = types.CoroutineType
_TASKS_TAKE_CONTEXT = sys.version_info >= (3, 11)


class _Limiter:
    """A counting slot limit with FIFO waiters that are called when a slot passes to them."""

    __slots__ = ("free", "waiters")

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.waiters: deque[Callable[[], None]] = deque()

    def try_acquire(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def hand_over() -> None:
            if not future.done():
                future.set_result(None)

        self.waiters.append(hand_over)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot had been handed over already
            raise

    def release(self) -> None:
        if self.waiters:
            self.waiters.popleft()()
        else:
            self.free += 1


class Engine:
    """Runs task graphs. Reusable: every ``run`` has its own state, so runs on one engine may
    proceed concurrently.

    ``executor`` is a registered executor name (``"local"``, ``"threads"``, ``"processes"``,
    or a plugin's) or an executor instance; ``max_concurrency`` bounds the task attempts in
    flight at once; ``log_level`` attaches the human-readable log subscriber (``None`` for none).
    Plugins configure every new engine through the ``cascade_engine_created`` hook.
    """

    def __init__(
        self,
        bus: MessageBus | None = None,
        executor: str | Executor | None = None,
        max_concurrency: int | None = None,
        *,
        log_level: str | None = None,
        plugin_manager: Any = None,
    ) -> None:
        from cascade.plugins.manager import get_plugin_manager

        self.bus = bus if bus is not None else MessageBus()
        if executor is not None and not isinstance(executor, (str, Executor)):
            raise TypeError(f"executor= takes an executor name or instance, got {executor!r}")
        self.executor = executor
        self.max_concurrency = check_concurrency(max_concurrency, "max_concurrency")
        self.log_level = log_level
        self.plugins = plugin_manager if plugin_manager is not None else get_plugin_manager()
        self.call_hooks: list[Callable[[TaskCall], None]] = []
        self._resource_providers: dict[str, ResourceDefinition] = dict(self.plugins.resources())
        self.plugins.engine_created(self)

    # -- configuration -------------------------------------------------------------------

    def register(self, resource: ResourceDefinition | Callable[..., Any]) -> None:
        """Make a resource (declared with ``@cs.resource``) available to this engine's runs."""
        definition = make_resource_definition(resource)
        self._resource_providers[definition.name] = definition

    def override_resource_provider(
        self, name: str, provider: ResourceDefinition | Callable[..., Any]
    ) -> None:
        """Replace the provider of resource ``name`` (keeping its scope); see
        ``cascade.testing.override_resource`` for the restoring context manager."""
        current = self._resource_providers.get(name) or declared_resources.get(name)
        scope = current.scope if current is not None else "run"
        if isinstance(provider, ResourceDefinition):
            provider = provider.func
        self._resource_providers[name] = make_resource_definition(provider, name, scope)

    def get_resource_provider(self, name: str) -> ResourceDefinition | None:
        """The provider currently registered as ``name``, if any."""
        return self._resource_providers.get(name)

    def add_call_hook(self, hook: Callable[[TaskCall], None]) -> None:
        """Call ``hook(call)`` before every task attempt, inside the ``contextvars.Context``
        the attempt will run in (so a hook may set context variables for the task body, for
        instance the current tracing span), and let it fill ``call.carrier`` and
        ``call.worker_setup`` for executors that run calls in another process. With no hooks
        the engine skips this step entirely."""
        self.call_hooks.append(hook)

    # -- running -------------------------------------------------------------------------

    async def run(self, target: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Run the graph behind ``target`` and return its result: a LazyResult's value, a list
        for a list or tuple of LazyResults, a dict for a dict of them."""
        targets, shape = normalize_target(target)
        graph = build_graph(targets)
        values = await _Run(self, graph, dict(params or {})).execute()
        return shape(values)

    def resolve_executor(self, spec: str | Executor | None) -> tuple[str, Executor]:
        """An executor instance for a name or instance (``None`` means the engine default)."""
        spec = spec if spec is not None else self.executor
        if spec is None:
            spec = "local"
        if isinstance(spec, str):
            return spec, self.plugins.create_executor(spec)
        return getattr(spec, "name", type(spec).__name__), spec


class _Run:
    """The state of one run of one graph on one engine."""

    def __init__(self, engine: Engine, graph: Graph, params: dict[str, Any]) -> None:
        self.engine = engine
        self.bus = engine.bus
        self.graph = graph
        self.nodes = graph.nodes
        self.run_id = uuid4().hex
        self.loop = asyncio.get_running_loop()
        count = len(graph.nodes)
        self.results: list[Any] = [None] * count
        self.pending = [len(node.deps) for node in graph.nodes]
        self.skipped = bytearray(count)
        self.any_skipped = False
        self.finished = 0
        self.ready: deque[int] = deque()
        self.pumping = False
        self.stopping = False
        self.error: BaseException | None = None
        # Futures in flight, mapped to the fast-path node they run (None for policy runners).
        # "unstoppable" ones (sync work in threads) are waited for, never cancelled.
        self.inflight: dict[asyncio.Future[Any], Node | None] = {}
        self.unstoppable: dict[asyncio.Future[Any], Node | None] = {}
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.call_hooks = tuple(engine.call_hooks)
        self.limiter = _Limiter(engine.max_concurrency) if engine.max_concurrency else None
        self.task_limiters: dict[int, _Limiter] = {}
        self.rng = random.Random()
        self.params = self._resolve_params(params)
        self.executors: dict[str, Executor] = {}
        self.executor_of_task: dict[int, tuple[str, Executor]] = {}
        self._plan_executors()
        self.run_resources, self.task_resources = self._plan_resources()
        self.resources = ResourceStack(self.bus, self.run_id)
        bus = self.bus
        self.want_started = bus.wants(TaskExecutionStarted)
        self.want_finished = bus.wants(TaskExecutionFinished)
        self.want_skipped = bus.wants(TaskSkipped)
        self.report_tasks = self.want_started or self.want_finished
        # Made once per run rather than per task: a bound method, a closure or a context copy
        # per task would be more objects for the garbage collector to walk while a wide
        # fan-out is in flight. Completion callbacks only do engine bookkeeping, so they all
        # run in one context.
        self.on_plain_done = self._plain_done
        self.on_reported_done = self._reported_done
        self.reported: dict[asyncio.Future[Any], tuple[TaskCall, str]] = {}
        self.callback_context = contextvars.copy_context()

    # -- validation, before anything runs -----------------------------------------------

    def _resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        declared: dict[str, Param] = {}
        for node in self.nodes:
            if node.kind == KIND_PARAM:
                param = node.lazy
                assert isinstance(param, Param)
                declared.setdefault(param.param_name, param)
        unknown = sorted(set(given) - set(declared))
        if unknown:
            takes = ", ".join(sorted(declared)) or "no params"
            raise ParamError(f"unknown param(s) {', '.join(unknown)}; this graph takes: {takes}")
        missing = sorted(n for n, p in declared.items() if p.required and n not in given)
        if missing:
            raise ParamError(
                f"missing required param(s): {', '.join(missing)}; pass them with "
                "params={...} (or --param name=value on the command line)"
            )
        values = {}
        for name, param in declared.items():
            values[name] = param.convert(given[name]) if name in given else param.default
        return values

    def _plan_executors(self) -> None:
        engine = self.engine
        default_name, default = engine.resolve_executor(None)
        self.executors[default_name] = default
        self.default_executor = (default_name, default)
        for node in self.nodes:
            task = node.lazy.task
            if task is None or id(task) in self.executor_of_task:
                continue
            if task.executor is None or task.executor == default_name:
                self.executor_of_task[id(task)] = self.default_executor
                continue
            if task.executor not in self.executors:
                _, instance = engine.resolve_executor(task.executor)
                self.executors[task.executor] = instance
            self.executor_of_task[id(task)] = (task.executor, self.executors[task.executor])
        self.has_references = any(e.returns_references for e in self.executors.values())

    def _plan_resources(self) -> tuple[list[str], set[str]]:
        providers = {**declared_resources, **self.engine._resource_providers}
        self.providers = providers
        wanted: list[tuple[str, str]] = []
        seen: set[int] = set()
        remote: list[tuple[str, str]] = []
        for node in self.nodes:
            task = node.lazy.task
            if task is None or id(task) in seen:
                continue
            seen.add(id(task))
            needs = [(res, f"task '{task.name}'") for _, res in task.injections]
            if self.executor_of_task[id(task)][1].remote_resources:
                remote.extend(needs)
            else:
                wanted.extend(needs)
        self.remote_providers = {n: providers[n] for n in plan_resources(providers, remote)}
        order = plan_resources(providers, wanted)
        task_scoped = {name for name in order if providers[name].scope == "task"}
        for name in order:
            if name not in task_scoped:
                for _, dep in providers[name].injections:
                    if dep in task_scoped:
                        raise ResourceError(
                            f"run-scoped resource '{name}' cannot inject task-scoped "
                            f"resource '{dep}'"
                        )
        return [n for n in order if n not in task_scoped], task_scoped

    # -- the run -------------------------------------------------------------------------

    async def execute(self) -> list[Any]:
        bus = self.bus
        started = time.perf_counter()
        if bus.wants(RunStarted):
            bus.publish(
                RunStarted(
                    run_id=self.run_id,
                    target_tasks=[self.nodes[i].name for i in self.graph.targets],
                    params=dict(self.params),
                )
            )
        status = "Succeeded"
        failure: BaseException | None = None
        started_executors: list[Executor] = []
        try:
            for executor in self.executors.values():
                await executor.start()
                started_executors.append(executor)
            providers = self.providers
            for name in self.run_resources:
                await self.resources.enter(providers[name], self.resources.instances)
            await self._schedule()
            values = [self.results[i] for i in self.graph.targets]
            if self.has_references:
                values = [await self._value(i) for i in self.graph.targets]
            return [None if v is _SKIPPED else v for v in values]
        except asyncio.CancelledError as exc:
            status, failure = "Cancelled", exc
            raise
        except BaseException as exc:
            status, failure = "Failed", exc
            raise
        finally:
            await self._stop_everything()
            try:
                await self.resources.close(failure)
            except BaseException as exc:
                if failure is None:
                    status, failure = "Failed", exc
                raise
            finally:
                for executor in reversed(started_executors):
                    await executor.shutdown()
                await bus.flush()
                if bus.wants(RunFinished):
                    error = None
                    if status == "Failed" and failure is not None:
                        error = describe_error(failure)
                    bus.publish(
                        RunFinished(
                            run_id=self.run_id,
                            status=status,
                            duration=time.perf_counter() - started,
                            error=error,
                        )
                    )
                await bus.flush()

    async def _schedule(self) -> None:
        if not self.nodes:
            return
        for node in self.nodes:
            if node.kind == KIND_PARAM:
                self.results[node.index] = self.params[node.lazy.param_name]  # type: ignore[attr-defined]
        for node in self.nodes:
            if node.kind == KIND_PARAM:
                self._complete(node.index, self.results[node.index])
            elif not node.deps:
                self.ready.append(node.index)
        self._pump()
        await self.done
        if self.error is not None:
            raise self.error

    async def _stop_everything(self) -> None:
        """Stop launching, cancel what can be cancelled, and wait for everything in flight
        (an attempt abandoned after a timeout is not waited for)."""
        self.stopping = True
        self.ready.clear()
        while self.inflight or self.unstoppable:
            for future in list(self.inflight):
                future.cancel()
            waiting = set(self.inflight) | set(self.unstoppable)
            try:
                await asyncio.wait(waiting)
            except asyncio.CancelledError:
                continue  # cancelled again while cleaning up: finish cleaning up first
            for future in waiting:
                if future.done():
                    self.inflight.pop(future, None)
                    self.unstoppable.pop(future, None)

    def _pump(self) -> None:
        if self.pumping:
            return
        self.pumping = True
        try:
            ready, nodes = self.ready, self.nodes
            while ready and not self.stopping:
                self._launch(nodes[ready.popleft()])
        finally:
            self.pumping = False

    def _complete(self, index: int, value: Any) -> None:
        """Record a node's result and queue the dependents whose inputs are now complete."""
        self.results[index] = value
        pending, ready = self.pending, self.ready
        for dependent in self.nodes[index].dependents:
            pending[dependent] -= 1
            if pending[dependent] == 0:
                ready.append(dependent)
        self.finished += 1
        if self.finished == len(self.nodes) and not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.stopping:
            self.error = exc
            self.stopping = True
            self.ready.clear()
            if not self.done.done():
                self.done.set_result(None)

    def _skip(self, node: Node, reason: str) -> None:
        self.skipped[node.index] = 1
        self.any_skipped = True
        if self.want_skipped:
            self.bus.publish(
                make_event(
                    TaskSkipped,
                    run_id=self.run_id,
                    task_id=node.lazy.id,
                    task_name=node.name,
                    reason=reason,
                )
            )
        self._complete(node.index, _SKIPPED)

    def _launch(self, node: Node) -> None:
        lazy = node.lazy
        if self.any_skipped and any(self.skipped[d] for d in node.value_deps):
            self._skip(node, "UpstreamSkipped")
            return
        task = lazy.task
        assert task is not None
        if (
            node.kind == KIND_MAP
            or lazy.retry is not None
            or lazy.timeout is not None
            or lazy.cache is not None
            or lazy.condition is not MISSING
            or task.concurrency is not None
            or self.has_references
            or (task.injections and (self.task_resources or self.remote_providers))
        ):
            runner = self.loop.create_task(self._run_node(node))
            self.inflight[runner] = None
            runner.add_done_callback(self._forget)
            return
        if self.limiter is not None and not self.limiter.try_acquire():
            self.limiter.waiters.append(lambda: self._launch_plain(node))
            return
        self._launch_plain(node)

    def _forget(self, future: asyncio.Future[Any]) -> None:
        self.inflight.pop(future, None)

    # -- fast path: a plain call ----------------------------------------------------------

    def _forget_unstoppable(self, future: asyncio.Future[Any]) -> None:
        self.unstoppable.pop(future, None)

    def _launch_plain(self, node: Node) -> None:
        """Submit a node without policies and finish it from a completion callback."""
        if self.stopping:
            if self.limiter is not None:
                self.limiter.release()
            return
        lazy = node.lazy
        task: Task[Any] = lazy.task  # type: ignore[assignment]
        args, kwargs = self._arguments(node)
        if task.injections:
            kwargs = dict(kwargs)
            instances = self.resources.instances
            for param, resource_name in task.injections:
                kwargs.setdefault(param, instances[resource_name])
        executor_name, executor = self.executor_of_task[id(task)]
        if not self.report_tasks and type(executor) is LocalExecutor:
            # The common case, with no one listening: call straight into the loop or the
            # thread pool, exactly as LocalExecutor.submit would, without a TaskCall.
            if task.is_async:
                try:
                    future: asyncio.Future[Any] = self.loop.create_task(task.fn(*args, **kwargs))
                except BaseException as exc:
                    self._plain_failed(exc)
                    return
                self.inflight[future] = node
            else:
                future = executor.thread_pool().submit(task.fn, args, kwargs)
                self.unstoppable[future] = node
            future.add_done_callback(self.on_plain_done, context=self.callback_context)
            return
        call = TaskCall(lazy.id, task.name, task.fn, args, dict(kwargs), task.is_async, self.run_id)
        call.leaves_process = executor.requires_pickle
        try:
            self._announce(call, executor_name)
        except BaseException as exc:
            self._report_finished(call, executor_name, None, exc)
            self._plain_failed(exc)
            return
        try:
            future = self._as_future(executor.submit(call), call.context)
        except BaseException as exc:
            self._report_finished(call, executor_name, None, exc)
            self._plain_failed(exc)
            return
        if isinstance(future, asyncio.Task) or executor.stops_on_cancel:
            self.inflight[future] = node
        else:
            self.unstoppable[future] = node
        self.reported[future] = (call, executor_name)
        future.add_done_callback(self.on_reported_done, context=self.callback_context)

    def _as_future(
        self, awaitable: Awaitable[Any], context: contextvars.Context | None
    ) -> asyncio.Future[Any]:
        """What an executor's ``submit`` returned, as a future the engine can wait on; a
        coroutine becomes a task running in the attempt's context when there is one."""
        if isinstance(awaitable, asyncio.Future):
            return awaitable
        if type(awaitable) is _CoroutineType:
            if context is None:
                return self.loop.create_task(awaitable)  # type: ignore[arg-type]
            if _TASKS_TAKE_CONTEXT:  # 3.11+: run in it as it is, no copy
                return self.loop.create_task(awaitable, context=context)  # type: ignore[arg-type,call-arg,unused-ignore]
            return context.run(self.loop.create_task, awaitable)  # type: ignore[arg-type]
        if context is not None:
            return context.run(asyncio.ensure_future, awaitable)
        return asyncio.ensure_future(awaitable)

    def _reported_done(self, future: asyncio.Future[Any]) -> None:
        call, executor_name = self.reported.pop(future)
        self._plain_done(future, call, executor_name)

    def _announce(self, call: TaskCall, executor_name: str) -> None:
        """Just before an attempt is submitted: run the call hooks inside the attempt's own
        context, publish ``TaskExecutionStarted`` and start its clock."""
        if self.call_hooks:
            context = contextvars.copy_context()
            for hook in self.call_hooks:
                context.run(hook, call)
            call.context = context
        if self.want_started:
            self.bus.publish(
                make_event(
                    TaskExecutionStarted,
                    run_id=self.run_id,
                    task_id=call.task_id,
                    task_name=call.task_name,
                    attempt=call.attempt,
                    executor=executor_name,
                )
            )
        call.start_time = time.time()

    def _plain_failed(self, exc: BaseException) -> None:
        if self.limiter is not None:
            self.limiter.release()
        self._fail(exc)

    def _plain_done(
        self,
        future: asyncio.Future[Any],
        call: TaskCall | None = None,
        executor_name: str = "",
    ) -> None:
        node = self.inflight.pop(future, None) or self.unstoppable.pop(future, None)
        if self.limiter is not None:
            self.limiter.release()
        try:
            value = future.result()
        except asyncio.CancelledError:
            if call is not None:
                self._report_finished(call, executor_name, None, None, True)
            self._fail(asyncio.CancelledError("a task was cancelled"))
            return
        except BaseException as exc:
            if call is not None:
                self._report_finished(call, executor_name, None, exc)
            self._fail(exc)
            return
        if call is not None and self.want_finished:
            self._report_finished(call, executor_name, value, None)
        if node is not None and not self.stopping:
            self._complete(node.index, value)
            self._pump()

    def _report_finished(
        self,
        call: TaskCall,
        executor_name: str,
        value: Any,
        exc: BaseException | None,
        cancelled: bool = False,
    ) -> None:
        if not self.want_finished:
            return
        end = call.end_time or time.time()
        start = call.start_time or end
        if cancelled:
            status = "Cancelled"
        elif exc is None:
            status = "Succeeded"
        elif isinstance(exc, asyncio.CancelledError):
            status = "Cancelled"
        else:
            status = "Failed"
        self.bus.publish(
            make_event(
                TaskExecutionFinished,
                run_id=self.run_id,
                timestamp=end,
                task_id=call.task_id,
                task_name=call.task_name,
                status=status,
                duration=max(end - start, 0.0),
                result_preview=preview(value) if status == "Succeeded" else None,
                error=describe_error(exc) if status == "Failed" and exc else None,
                attempt=call.attempt,
                start_time=start,
                executor=executor_name,
            )
        )

    def _arguments(
        self, node: Node, results: Sequence[Any] | None = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        lazy = node.lazy
        if results is None:
            results = self.results
        args = lazy.args
        if node.arg_slots or node.nested_args:
            arg_list = list(args)
            for pos, dep in node.arg_slots:
                arg_list[pos] = results[dep]
            for pos in node.nested_args:
                arg_list[pos] = resolve_nested(arg_list[pos], results, self.graph.index_of)
            args = tuple(arg_list)
        kwargs = lazy.kwargs
        if not (node.kwarg_slots or node.nested_kwargs):
            return args, kwargs  # shared with the LazyResult: callers copy before changing it
        kwargs = dict(kwargs)
        for key, dep in node.kwarg_slots:
            kwargs[key] = results[dep]
        for key in node.nested_kwargs:
            kwargs[key] = resolve_nested(kwargs[key], results, self.graph.index_of)
        return args, kwargs

    # -- slow path: a node with policies --------------------------------------------------

    async def _run_node(self, node: Node) -> None:
        try:
            results: Sequence[Any] = self.results
            if self.has_references:
                results = _Overlay(self.results, await self._materialize_inputs(node))
            lazy = node.lazy
            if lazy.condition is not MISSING:
                condition = results[node.condition] if node.condition >= 0 else lazy.condition
                if not condition:
                    self._skip(node, "ConditionFalse")
                    self._pump()
                    return
            args, kwargs = self._arguments(node, results)
            if node.kind == KIND_MAP:
                value: Any = await self._run_map(node, args, kwargs)
            else:
                value = await self._execute(node, lazy.id, args, kwargs)
        except asyncio.CancelledError:
            if not self.stopping:
                self._fail(asyncio.CancelledError(f"task '{node.name}' was cancelled"))
            raise
        except BaseException as exc:
            self._fail(exc)
            return
        if self.stopping:
            return
        if value is _SKIPPED:
            self.skipped[node.index] = 1
            self.any_skipped = True
        self._complete(node.index, value)
        self._pump()

    async def _run_map(
        self, node: Node, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        lazy = node.lazy
        assert isinstance(lazy, MappedLazyResult)
        columns: dict[str, list[Any]] = {}
        for pos in lazy.iterated_args:
            columns[f"argument {pos}"] = _as_list(args[pos], node.name, f"argument {pos}")
        for key in lazy.iterated_kwargs:
            columns[f"argument '{key}'"] = _as_list(kwargs[key], node.name, f"argument '{key}'")
        lengths = {label: len(items) for label, items in columns.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{label} has {n}" for label, n in lengths.items())
            raise ValueError(f"{node.name}.map(): iterated arguments differ in length: {detail}")
        count = next(iter(lengths.values()))
        arg_columns = [(pos, columns[f"argument {pos}"]) for pos in lazy.iterated_args]
        kwarg_columns = [(key, columns[f"argument '{key}'"]) for key in lazy.iterated_kwargs]

        def item_call(k: int) -> Coroutine[Any, Any, Any]:
            item_args = list(args)
            for pos, column in arg_columns:
                item_args[pos] = column[k]
            item_kwargs = dict(kwargs)
            for key, column in kwarg_columns:
                item_kwargs[key] = column[k]
            return self._execute(node, f"{lazy.id}[{k}]", tuple(item_args), item_kwargs)

        items: list[asyncio.Task[Any]] = [self.loop.create_task(item_call(k)) for k in range(count)]
        if not items:
            return []
        try:
            _, pending = await asyncio.wait(items, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            for item in items:
                item.cancel()
            await asyncio.wait(items)
            raise
        if pending:
            for item in pending:
                item.cancel()
            await asyncio.wait(pending)
        for item in items:
            if item.done() and not item.cancelled() and item.exception() is not None:
                raise item.exception()  # type: ignore[misc]
        return [item.result() for item in items]

    async def _execute(
        self, node: Node, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """One node (or mapped item) with its policies: concurrency limits, cache, retries,
        timeout and task-scoped resources."""
        lazy = node.lazy
        task: Task[Any] = lazy.task  # type: ignore[assignment]
        task_limiter = None
        if task.concurrency is not None:
            task_limiter = self.task_limiters.get(id(task))
            if task_limiter is None:
                task_limiter = self.task_limiters[id(task)] = _Limiter(task.concurrency)
            await task_limiter.acquire()
        try:
            if self.limiter is not None:
                await self.limiter.acquire()
            try:
                return await self._cached_attempts(node, task, task_id, args, kwargs)
            finally:
                if self.limiter is not None:
                    self.limiter.release()
        finally:
            if task_limiter is not None:
                task_limiter.release()

    async def _cached_attempts(
        self,
        node: Node,
        task: Task[Any],
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        lazy = node.lazy
        policy = lazy.cache
        context = None
        if policy is not None:
            from cascade.spec.cache_policy import CacheContext

            context = CacheContext(task, task_id, args, kwargs)
            hit, cached = policy.lookup(context)
            if hit:
                if self.want_skipped:
                    self.bus.publish(
                        make_event(
                            TaskSkipped,
                            run_id=self.run_id,
                            task_id=task_id,
                            task_name=task.name,
                            reason="CacheHit",
                        )
                    )
                return cached
        value = await self._attempts(node, task, task_id, args, kwargs)
        if policy is not None and context is not None:
            if self.has_references:
                value = (await self._executor_for(task)[1].materialize([value]))[0]
            policy.save(context, value)
        return value

    def _executor_for(self, task: Task[Any]) -> tuple[str, Executor]:
        return self.executor_of_task[id(task)]

    async def _attempts(
        self,
        node: Node,
        task: Task[Any],
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        retry: RetryPolicy | None = node.lazy.retry
        attempt = 1
        while True:
            try:
                return await self._attempt(node, task, task_id, args, kwargs, attempt)
            except Exception as exc:
                if retry is None or attempt > retry.retries or not isinstance(exc, retry.on):
                    raise
                delay = retry.delay_before(attempt, self.rng)
                if self.bus.wants(TaskRetrying):
                    self.bus.publish(
                        make_event(
                            TaskRetrying,
                            run_id=self.run_id,
                            task_id=task_id,
                            task_name=task.name,
                            attempt=attempt,
                            delay=delay,
                            error=describe_error(exc),
                        )
                    )
                attempt += 1
                if delay:
                    await asyncio.sleep(delay)

    async def _attempt(
        self,
        node: Node,
        task: Task[Any],
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempt: int,
    ) -> Any:
        scoped: ResourceStack | None = None
        executor_name, executor = self._executor_for(task)
        remote = executor.remote_resources
        if task.injections and not remote:
            kwargs = dict(kwargs)
            instances = self.resources.instances
            providers = self.providers
            for param, name in task.injections:
                if param in kwargs:
                    continue
                if name in self.task_resources:
                    if scoped is None:
                        scoped = ResourceStack(self.bus, self.run_id)
                    kwargs[param] = await self._enter_task_resource(scoped, providers, name)
                else:
                    kwargs[param] = instances[name]
        call = TaskCall(
            task_id,
            task.name,
            task.fn,
            args,
            dict(kwargs),
            task.is_async,
            self.run_id,
            attempt,
            node.lazy.timeout,
        )
        call.leaves_process = executor.requires_pickle
        if task.injections and remote:
            call.resources = {p: n for p, n in task.injections if p not in kwargs}
            call.resource_providers = self.remote_providers
        failure: BaseException | None = None
        try:
            self._announce(call, executor_name)
            value = await self._submit_and_wait(executor, call)
        except BaseException as exc:
            failure = exc
            self._report_finished(call, executor_name, None, exc)
            raise
        else:
            self._report_finished(call, executor_name, value, None)
            return value
        finally:
            if scoped is not None:
                await scoped.close(failure)

    async def _enter_task_resource(
        self,
        scoped: ResourceStack,
        providers: Mapping[str, ResourceDefinition],
        name: str,
    ) -> Any:
        """Set up a task-scoped resource (and task-scoped resources it injects) for one
        attempt; run-scoped ones it injects come from the run."""
        if name in scoped.instances:
            return scoped.instances[name]
        for dep in plan_resources(providers, [(name, f"resource '{name}'")]):
            if dep in scoped.instances or dep not in self.task_resources:
                continue
            available = {**self.resources.instances, **scoped.instances}
            await scoped.enter(providers[dep], available)
        return scoped.instances[name]

    async def _submit_and_wait(self, executor: Executor, call: TaskCall) -> Any:
        context = call.context
        local = type(executor) is LocalExecutor
        if local and call.is_async and context is None and call.timeout is None:
            # Runs on the loop anyway: await it here rather than in a task of its own.
            return await call.fn(*call.args, **call.kwargs)
        future = self._as_future(executor.submit(call), context)
        stoppable = isinstance(future, asyncio.Task) or executor.stops_on_cancel
        if call.timeout is None:
            if stoppable:
                return await future  # being cancelled cancels it, and waits until it stopped
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                self.unstoppable[future] = None  # the run waits for it before returning
                future.add_done_callback(self._forget_unstoppable)
                raise
        try:
            done, _ = await asyncio.wait({future}, timeout=call.timeout)
        except asyncio.CancelledError:
            if stoppable:
                future.cancel()
                await asyncio.wait({future})
            else:
                self.unstoppable[future] = None
                future.add_done_callback(self._forget_unstoppable)
            raise
        if not done:
            # Timed out. Stop the attempt where the executor can; a thread cannot be stopped,
            # so the run stops waiting for it (it finishes in the background, its result lost).
            if stoppable:
                future.cancel()
                await asyncio.wait({future})
            raise TaskTimeoutError(call.task_name, call.timeout or 0.0)
        return future.result()

    # -- references from remote executors ----------------------------------------------------

    async def _value(self, index: int) -> Any:
        value = self.results[index]
        if value is _SKIPPED:
            return value
        task = self.nodes[index].lazy.task
        if task is None:
            return value
        executor = self._executor_for(task)[1]
        if not executor.returns_references:
            return value
        return (await executor.materialize([value]))[0]

    async def _materialize_inputs(self, node: Node) -> dict[int, Any]:
        """Values for the inputs this node needs as values: any input of a task on another
        executor, nested inputs, conditions, map iterables and cached tasks' inputs. Top-level
        inputs from the same executor stay references, so data stays remote. One
        ``materialize`` call per executor; the run's results keep the references."""
        task = node.lazy.task
        own = self._executor_for(task)[1] if task is not None else None
        keep_remote: set[int] = set()
        if node.kind != KIND_MAP and node.lazy.cache is None:
            keep_remote = {d for _, d in node.arg_slots} | {d for _, d in node.kwarg_slots}
        wanted: dict[int, tuple[Executor, list[int]]] = {}
        for dep in node.value_deps:
            dep_task = self.nodes[dep].lazy.task
            if dep_task is None or self.results[dep] is _SKIPPED:
                continue
            producer = self._executor_for(dep_task)[1]
            if not producer.returns_references or (dep in keep_remote and producer is own):
                continue
            wanted.setdefault(id(producer), (producer, []))[1].append(dep)
        values: dict[int, Any] = {}
        for producer, deps in wanted.values():
            fetched = await producer.materialize([self.results[d] for d in deps])
            values.update(zip(deps, fetched, strict=True))
        return values


class _Overlay(Sequence[Any]):
    """The run's results with some entries replaced by fetched values, for one node."""

    __slots__ = ("base", "values")

    def __init__(self, base: list[Any], values: dict[int, Any]) -> None:
        self.base = base
        self.values = values

    def __getitem__(self, index: Any) -> Any:
        if index in self.values:
            return self.values[index]
        return self.base[index]

    def __len__(self) -> int:
        return len(self.base)


def _as_list(value: Any, task_name: str, label: str) -> list[Any]:
    if isinstance(value, list):
        return value
    try:
        return list(value)
    except TypeError:
        raise TypeError(
            f"{task_name}.map(): {label} must be iterable, got {type(value).__name__}: "
            f"{preview(value)}"
        ) from None


__all__ = ["Engine", "ParamError", "describe_error", "normalize_target", "preview"]
