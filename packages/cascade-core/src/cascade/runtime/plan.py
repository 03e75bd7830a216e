"""The per-run plan: everything decided once, before any task runs.

Params are checked and converted, every task's executor is chosen, the resources the graph
needs are ordered (run-scoped, task-scoped, and those set up remotely by executors that do it
themselves), limits are made, and the bus is asked once which events anyone wants. A bad
param, an unknown executor or resource, or a resource cycle fails here, naming the culprit,
before anything has started.

The plan holds decisions only; what changes while the run runs is the run's state
(``cascade.runtime.state``). A graph a task returns at run time is planned as it arrives
(``learn_task``): the plan grows by the decisions for its new tasks, and decides nothing
differently for the tasks it knew.
"""

from __future__ import annotations

import asyncio
import pickle
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from uuid import uuid4

from cascade.bus import MessageBus
from cascade.events import (
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskNamed,
    TaskRetrying,
    TaskSkipped,
    TasksSucceeded,
    TaskWaiting,
)
from cascade.executors import Executor, LogShipping, TaskCall
from cascade.graph.build import KIND_MAP, KIND_PARAM, Graph, Node
from cascade.resources import plan_resources
from cascade.runtime.limits import Gate, Limiter, TokenBucket, Weighted
from cascade.runtime.outcome import CONTINUE, STOP, check_failure_mode
from cascade.spec.cache_policy import CachePolicy
from cascade.spec.params import ParamError
from cascade.spec.pools import Pool
from cascade.spec.resource import ResourceDefinition, declared_resources
from cascade.spec.task import MISSING, Param, Task


class PoolError(ValueError):
    """A call asks for a pool the run does not define, or for more slots than it has."""


#: The gates of one pool: its slots, and its rate if it has one.
PoolGates = tuple[Limiter, "TokenBucket | None"]


def pool_gates(name: str, pool: Pool) -> PoolGates:
    """New gates for pool ``name``."""
    rate = None
    if pool.rate is not None:
        rate = TokenBucket(pool.rate.per_second, pool.rate.burst, f"rate limit of pool '{name}'")
    return Limiter(pool.size, f"pool '{name}'"), rate


class EngineSettings(Protocol):
    """What a run takes from its engine (``cascade.runtime.engine.Engine``)."""

    bus: MessageBus
    max_concurrency: int | None
    call_hooks: list[Callable[[TaskCall], None]]
    #: The gates of the engine's own pools, shared by all its runs.
    pool_gates: Mapping[str, PoolGates]

    def resolve_executor(self, spec: str | Executor | None) -> tuple[str, Executor]: ...

    def resource_providers(self) -> Mapping[str, ResourceDefinition]: ...


class RunPlan:
    """The decisions of one run, shared by the scheduler, the policies and the attempts."""

    #: The executor of each task (by ``id(task)``): its name and instance.
    executor_of_task: dict[int, tuple[str, Executor]]

    def __init__(
        self,
        engine: EngineSettings,
        graph: Graph,
        params: Mapping[str, Any],
        on_failure: str = STOP,
        checkpoint: CachePolicy | None = None,
        pools: Mapping[str, Pool] | None = None,
    ) -> None:
        self.on_failure = check_failure_mode(on_failure)
        #: A cache policy applied to every task without one of its own (how a resumed run
        #: takes the values a recorded run checkpointed).
        self.checkpoint = checkpoint
        #: Tasks whose calls without inputs skip the checkpoint step (see ``CachePolicy``).
        #: (The policy's own mapping, which fills as the run goes: not a copy.)
        settled = getattr(checkpoint, "settled", None)
        if settled is not None and not isinstance(settled, Mapping):
            raise TypeError(
                f"checkpoint policy {checkpoint!r}: its 'settled' must be a mapping of "
                f"id(task) to task, got {type(settled).__name__}"
            )
        self.checkpoint_settled: Mapping[int, Any] = {} if settled is None else settled
        self.keep_going = on_failure == CONTINUE
        self.run_id = uuid4().hex
        self.bus = engine.bus
        self.loop = asyncio.get_running_loop()
        self.graph = graph
        self.params, self.unclaimed = resolve_params(graph, params)
        self._plan_executors(engine)
        self._plan_resources(engine.resource_providers())
        self.call_hooks = tuple(engine.call_hooks)
        #: Whether each attempt is marked in its context (``cascade.records.capture``): set
        #: for a recorded run that captures what tasks log.
        self.tag_attempts = False
        #: How executors that run calls elsewhere send back what tasks log there (set with
        #: ``tag_attempts`` for a recorded run that captures logs): ``RunInfo.logs``.
        self.ship_logs: LogShipping | None = None
        self.limiter = Limiter(engine.max_concurrency) if engine.max_concurrency else None
        #: The shared limiter of each task with ``concurrency=``, by ``id(task)``.
        self.task_limiters: dict[int, Limiter] = {}
        self._plan_pools(dict(pools or {}), engine.pool_gates)
        self.rng = random.Random()
        bus = self.bus
        self.want_started = bus.wants(TaskExecutionStarted)
        self.want_succeeded = bus.wants(TaskExecutionFinished, status="Succeeded")
        self.want_failed = bus.wants(TaskExecutionFinished, status="Failed")
        self.want_cancelled = bus.wants(TaskExecutionFinished, status="Cancelled")
        self.want_skipped = bus.wants(TaskSkipped)
        self.want_retrying = bus.wants(TaskRetrying)
        self.want_waiting = bus.wants(TaskWaiting)
        self.want_bulk_successes = bus.wants(TasksSucceeded)
        self.want_named = bus.wants(TaskNamed)
        #: Whether a direct-route call is built as a ``TaskCall``: only for call hooks,
        #: which see and change each attempt (its context, its carrier). Who listens never
        #: decides it: the direct route publishes the start and end of a call without a
        #: ``TaskCall`` from what the scheduler keeps, so every observer set runs the same
        #: steps in the same order (tests/core/properties/test_observers_property.py).
        self.builds_calls = bool(self.call_hooks)
        #: Whether direct-route calls without a ``TaskCall`` report how they went.
        self.report_plain = not self.builds_calls and (
            self.want_started
            or self.want_succeeded
            or self.want_failed
            or self.want_cancelled
            or self.want_bulk_successes
        )
        #: Whether such calls note when their own code ran (``cascade.runtime.clock``): only
        #: when a success's times are wanted (a failure's end is when the run hears of it).
        #: The wrapper changes nothing a task can see; it only fills the events' times.
        self.time_plain = self.report_plain and (self.want_succeeded or self.want_bulk_successes)

    # -- executors -------------------------------------------------------------------------

    def _plan_executors(self, engine: EngineSettings) -> None:
        self._engine = engine
        default_name, default = engine.resolve_executor(None)
        self.default_executor = (default_name, default)
        by_spec: dict[Any, tuple[str, Executor]] = {default_name: self.default_executor}
        by_spec[None] = self.default_executor
        self._executor_by_spec = by_spec
        self.executor_of_task = {}
        for node in self.graph.nodes:
            task = node.lazy.task
            if task is None or id(task) in self.executor_of_task:
                continue
            spec = task.executor
            if spec is None:
                self.executor_of_task[id(task)] = self.default_executor
                continue
            key = spec if isinstance(spec, str) else id(spec)
            if key not in by_spec:
                by_spec[key] = engine.resolve_executor(spec)
            self.executor_of_task[id(task)] = by_spec[key]
        self.executors: list[Executor] = []
        for _, executor in list(by_spec.values()):
            if all(executor is not known for known in self.executors):
                self.executors.append(executor)
        self.has_references = any(e.returns_references for e in self.executors)

    def check_shippable(self) -> None:
        """Every task an executor sends to another process (``requires_pickle``) can be
        pickled; one that cannot (a lambda, a function defined inside another) is a
        ``TypeError`` naming it and the executor. Run by ``Engine.check`` (a dry run): a run
        finds it out when the task is submitted."""
        seen: set[int] = set()
        for node in self.graph.nodes:
            task = node.lazy.task
            if task is None or id(task) in seen:
                continue
            seen.add(id(task))
            name, executor = self.executor_for(task)
            if not executor.requires_pickle:
                continue
            try:
                pickle.dumps(task.fn)
            except Exception as exc:
                raise TypeError(
                    f"task '{task.name}' runs on executor '{name}', which sends it to another "
                    f"process, but it cannot be pickled ({type(exc).__name__}: {exc}); define "
                    "it at module level"
                ) from None

    def executor_for(self, task: Task[..., Any]) -> tuple[str, Executor]:
        """The executor name and instance a task's attempts go to."""
        return self.executor_of_task[id(task)]

    # -- tasks that join the run while it runs (returned graphs) ------------------------------

    def learn_task(self, task: Task[..., Any]) -> tuple[Executor | None, list[str]]:
        """Plan a task first met at run time, as the run's own tasks were planned. Returns
        what the run must start before its first call: its executor when it is new to the
        run, and the run-scoped resources it injects that the run sets up (in order); a task
        planned already returns nothing to start."""
        if id(task) in self.executor_of_task:
            return None, []
        spec = task.executor
        key = spec if isinstance(spec, str) or spec is None else id(spec)
        known = self._executor_by_spec.get(key if spec is not None else None)
        new_executor = None
        if known is None:
            known = self._engine.resolve_executor(spec)
            self._executor_by_spec[key] = known
            new_executor = known[1]
            self.executors.append(new_executor)
            self.has_references = self.has_references or new_executor.returns_references
        self.executor_of_task[id(task)] = known
        if task.concurrency is not None:
            self.task_limiters[id(task)] = Limiter(
                task.concurrency, f"concurrency of task '{task.name}'"
            )
        needs = [(res, f"task '{task.name}'") for _, res in task.injections]
        run_scoped: list[str] = []
        if known[1].remote_resources:
            # Set up where the call runs, by the executor, as for the run's own tasks.
            for name in plan_resources(self.providers, needs):
                self.remote_providers.setdefault(name, self.providers[name])
        else:
            for name in plan_resources(self.providers, needs):
                if self.providers[name].scope == "task":
                    self.task_resources.add(name)
                else:
                    run_scoped.append(name)
        return new_executor, run_scoped

    def run_resources_of(self, task: Task[..., Any]) -> list[str]:
        """The run-scoped resources a task injects, dependencies first."""
        needs = [(res, f"task '{task.name}'") for _, res in task.injections]
        return [
            name
            for name in plan_resources(self.providers, needs)
            if self.providers[name].scope == "run"
        ]

    # -- resources -------------------------------------------------------------------------

    def _plan_resources(self, registered: Mapping[str, ResourceDefinition]) -> None:
        providers = {**declared_resources, **registered}
        self.providers = providers
        wanted: list[tuple[str, str]] = []
        remote: list[tuple[str, str]] = []
        seen: set[int] = set()
        for node in self.graph.nodes:
            task = node.lazy.task
            if task is None or id(task) in seen:
                continue
            seen.add(id(task))
            needs = [(res, f"task '{task.name}'") for _, res in task.injections]
            if self.executor_for(task)[1].remote_resources:
                remote.extend(needs)
            else:
                wanted.extend(needs)
        self.remote_providers = {n: providers[n] for n in plan_resources(providers, remote)}
        order = plan_resources(providers, wanted)
        task_scoped = {name for name in order if providers[name].scope == "task"}
        self.run_resources = [n for n in order if n not in task_scoped]
        self.task_resources = task_scoped

    # -- routes ----------------------------------------------------------------------------

    def needs_policies(self, node: Node) -> bool:
        """Whether a node goes through the policy chain (``cascade.runtime.policies``) rather
        than straight to its executor."""
        lazy = node.lazy
        task = lazy.task
        assert task is not None
        return (
            node.kind == KIND_MAP
            or lazy.retry is not None
            or lazy.timeout is not None
            or lazy.cache is not None
            or lazy.condition is not MISSING
            or lazy.fallback is not MISSING
            or task.concurrency is not None
            or self.has_references
            or bool(task.injections and (self.task_resources or self.remote_providers))
            or task.run_name is not None
            or task.streams  # streams hook: generators and folds (cascade.runtime.streams)
        )

    # -- pools, rates and the gates a call passes --------------------------------------------

    def _plan_pools(self, pools: dict[str, Pool], shared: Mapping[str, PoolGates]) -> None:
        """A pool the engine defines is one quota for all of the engine's runs: its gates are
        the engine's (``shared``); a pool given to this run alone gets gates of its own."""
        self.pools = pools
        gates = {name: shared.get(name) or pool_gates(name, pool) for name, pool in pools.items()}
        self.pool_limiters = {name: limiter for name, (limiter, _) in gates.items()}
        self.pool_rates = {name: rate for name, (_, rate) in gates.items() if rate is not None}
        self.task_rates: dict[int, TokenBucket] = {}
        self._attempt_gates: dict[
            tuple[int, tuple[tuple[str, int], ...]], tuple[Weighted, ...]
        ] = {}
        for node in self.graph.nodes:
            lazy = node.lazy
            task = lazy.task
            if task is None:
                continue
            if lazy.pools or task.rate is not None:
                self.attempt_gates(node)  # checks every pool a call asks for, before running
            if task.concurrency is not None and id(task) not in self.task_limiters:
                self.task_limiters[id(task)] = Limiter(
                    task.concurrency, f"concurrency of task '{task.name}'"
                )
        #: Whether any call has a gate to pass; when none has (the common case), the direct
        #: route skips gate bookkeeping entirely (benchmarks/run.py, the fan-out rows). A
        #: task met at run time with a rate of its own turns it on (``attempt_gates``).
        self.gated = bool(self.limiter or self.pool_limiters or self.task_rates)

    def attempt_gates(self, node: Node) -> tuple[Weighted, ...]:
        """What one attempt of ``node`` holds or takes, in the order it enters them: slots of
        each pool it asks for (by name), then the tokens of those pools' and its task's
        rates. An unknown pool, or more slots than a pool has, is an error naming both."""
        task = node.lazy.task
        assert task is not None
        key = (id(task), node.lazy.pools)
        gates = self._attempt_gates.get(key)
        if gates is not None:
            return gates
        found: list[Weighted] = []
        rates: list[Weighted] = []
        for name, slots in node.lazy.pools:
            limiter = self.pool_limiters.get(name)
            if limiter is None:
                defined = ", ".join(sorted(self.pools)) or "none"
                raise PoolError(
                    f"task '{task.name}' needs pool '{name}', which this run does not define "
                    f"(defined: {defined}); pass pools={{'{name}': N}} to cs.run or the Engine "
                    f"(--pool {name}=N on the command line)"
                )
            if slots > limiter.limit:
                raise PoolError(
                    f"task '{task.name}' needs {slots} slots of pool '{name}', which has "
                    f"{limiter.limit}"
                )
            found.append(Weighted(limiter, slots))
            if name in self.pool_rates:
                rates.append(Weighted(self.pool_rates[name], 1))
        if task.rate is not None:
            bucket = self.task_rates.get(id(task))
            if bucket is None:
                bucket = self.task_rates[id(task)] = TokenBucket(
                    task.rate.per_second, task.rate.burst, f"rate limit of task '{task.name}'"
                )
                self.gated = True
            rates.append(Weighted(bucket, 1))
        gates = self._attempt_gates[key] = (*found, *rates)
        return gates

    def direct_gates(self, node: Node) -> tuple[Weighted, ...]:
        """The gates of a call on the direct route: the run's ``max_concurrency`` first,
        then its attempt gates (a direct-route call is one attempt)."""
        gates = self.attempt_gates(node)
        if self.limiter is None:
            return gates
        key = (-1 - id(node.lazy.task), node.lazy.pools)
        found = self._attempt_gates.get(key)
        if found is None:
            found = self._attempt_gates[key] = (Weighted(self.limiter, 1), *gates)
        return found

    def all_gates(self) -> list[Gate]:
        gates: list[Gate] = [*self.pool_limiters.values(), *self.pool_rates.values()]
        gates += [*self.task_rates.values(), *self.task_limiters.values()]
        if self.limiter is not None:
            gates.append(self.limiter)
        return gates

    def task_limiter(self, task: Task[..., Any]) -> Limiter | None:
        """The shared limiter of a task with ``concurrency=``."""
        return self.task_limiters.get(id(task)) if self.task_limiters else None


def resolve_params(graph: Graph, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The value of every param the graph declares (given ones and defaults, both converted
    by the param's ``type``), and the given values no param of the graph claims yet: a graph
    a task returns may declare them (``claim_param``). A missing required param, or a value or
    default its type refuses, is a ``ParamError``."""
    declared: dict[str, Param[Any]] = {}
    for node in graph.nodes:
        if node.kind == KIND_PARAM:
            param = node.lazy
            assert isinstance(param, Param)
            declared.setdefault(param.param_name, param)
    missing = sorted(n for n, p in declared.items() if p.required and n not in given)
    if missing:
        raise ParamError(
            f"missing required param(s): {', '.join(missing)}; pass them with "
            "params={...} (or --param name=value on the command line)"
        )
    values = {
        name: param.convert(given[name]) if name in given else param.default_value()
        for name, param in declared.items()
    }
    unclaimed = {name: value for name, value in given.items() if name not in declared}
    if unclaimed and not any(
        node.lazy.task is not None and node.lazy.task.dynamic for node in graph.nodes
    ):
        raise unknown_params_error(unclaimed, declared, grown=False)
    return values, unclaimed


def claim_param(param: Param[Any], values: dict[str, Any], unclaimed: dict[str, Any]) -> Any:
    """The value of a param met at run time, in a graph a task returned: the run's value for
    its name (converted by this param's ``type`` the first time it is claimed), else its
    default; required and not given is a ``ParamError``."""
    name = param.param_name
    if name in values:
        return values[name]
    if name in unclaimed:
        value = values[name] = param.convert(unclaimed.pop(name))
        return value
    if param.required:
        raise ParamError(
            f"param '{name}' is required by a task added at run time, but the run "
            "was not given it and it has no default"
        )
    value = values[name] = param.default_value()
    return value


def unknown_params_error(
    unknown: Mapping[str, Any], declared: Mapping[str, Any], *, grown: bool
) -> ParamError:
    """The error for given params nothing declares. ``grown``: the run ended, so the graphs
    its tasks returned were looked at too. Otherwise the graph as built (no task declared
    ``dynamic=True``) was all there was to look at, and the message says how a param used
    only in a returned graph is given."""
    names = ", ".join(sorted(unknown))
    takes = ", ".join(sorted(declared)) or "no params"
    if grown:
        return ParamError(
            f"unknown param(s) {names}: nothing in this run declared them (neither the graph "
            f"nor any graph its tasks returned); this run takes: {takes}"
        )
    return ParamError(
        f"unknown param(s) {names}; this graph takes: {takes} (checked before any task ran; "
        "if a graph returned by a task declares them, declare that task "
        "@cs.task(dynamic=True) and they are matched as the run grows)"
    )
