"""The engine: configuration shared by runs (bus, executors, resources, call hooks) and
``Engine.run``, which builds the graph, makes the run's plan and hands it to the scheduler.

How the runtime is built (docs/concepts.md has the table):

- ``plan``: everything decided once per run (params, executors, resources, limits, which
  events anyone wants, each node's route);
- ``state``: everything that changes while it runs, and its transitions;
- ``scheduler``: the loop (ready queues, launching, one completion path, stop);
- ``call``: the call pipeline, each step once (arguments, gates, checkpoint, injection,
  submit, settle);
- ``policies``: the chain around that pipeline for nodes with policies (condition, map,
  limits, cache, fallback, retries), and ``attempt``: task-scoped resources and timeouts;
- ``report``: every task event; ``scope``: every future in flight, one cancel-all;
- ``inputs``, ``limits``, ``growth``: arguments, gates, tasks that return graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cascade.records as records
from cascade.bus import MessageBus
from cascade.executors import Executor, TaskCall, is_executor
from cascade.graph.build import build_graph
from cascade.graph.targets import normalize_target
from cascade.plugins import PluginManager, get_plugin_manager
from cascade.runtime.collector import frozen_collector
from cascade.runtime.plan import PoolGates, RunPlan, pool_gates
from cascade.runtime.scheduler import Run
from cascade.spec.cache_policy import CachePolicy
from cascade.spec.policies import check_concurrency
from cascade.spec.pools import Pool, check_pools_given, merge_pools
from cascade.spec.resource import (
    ResourceDefinition,
    declared_resources,
    make_resource_definition,
)


class Engine:
    """Runs task graphs. Reusable: every ``run`` has its own state, so runs on one engine may
    proceed concurrently.

    ``executor`` is a registered executor name (``"local"``, ``"threads"``, ``"processes"``,
    or a plugin's) or an executor instance; ``max_concurrency`` bounds the task attempts in
    flight at once; ``pools`` defines named pools (``{"openai": 4, "db": cs.Pool(2,
    rate_limit="10/second")}``) that tasks hold slots of; ``log_level`` attaches the
    human-readable log subscriber (``None`` for none). ``freeze_gc=True`` keeps each run's
    graph out of the cyclic garbage collector's walks while it runs (``gc.freeze()``, undone
    when it ends): faster runs of very large graphs, at the price of process-wide state (see
    docs/performance.md).
    Plugins configure every new engine through the ``cascade_engine_created`` hook.
    """

    def __init__(
        self,
        bus: MessageBus | None = None,
        executor: str | Executor | None = None,
        max_concurrency: int | None = None,
        *,
        log_level: str | None = None,
        plugin_manager: PluginManager | None = None,
        pools: Mapping[str, int | Pool] | None = None,
        freeze_gc: bool = False,
    ) -> None:
        self.bus = bus if bus is not None else MessageBus()
        if executor is not None and not (isinstance(executor, str) or is_executor(executor)):
            raise TypeError(f"executor= takes an executor name or instance, got {executor!r}")
        self.executor = executor
        self.max_concurrency = check_concurrency(max_concurrency, "max_concurrency")
        self.pools = check_pools_given(pools, "Engine")
        #: One quota per pool for every run of this engine, concurrent runs included.
        self.pool_gates: Mapping[str, PoolGates] = {
            name: pool_gates(name, pool) for name, pool in self.pools.items()
        }
        self.log_level = log_level
        self.freeze_gc = freeze_gc
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

    def resource_providers(self) -> Mapping[str, ResourceDefinition]:
        """Every resource registered on this engine (plugins' included), by name."""
        return self._resource_providers

    def add_call_hook(self, hook: Callable[[TaskCall], None]) -> None:
        """Call ``hook(call)`` before every task attempt, inside the ``contextvars.Context``
        the attempt will run in (so a hook may set context variables for the task body, for
        instance the current tracing span), and let it fill ``call.carrier`` and
        ``call.worker_setup`` for executors that run calls in another process. With no hooks
        the engine skips this step entirely."""
        self.call_hooks.append(hook)

    # -- running -------------------------------------------------------------------------

    async def run(
        self,
        target: Any,
        params: Mapping[str, Any] | None = None,
        *,
        on_failure: str = "stop",
        checkpoint: CachePolicy | None = None,
        pools: Mapping[str, int | Pool] | None = None,
        record: bool | str | records.RunStore = False,
        resume: str | None = None,
        record_options: records.RecordOptions | None = None,
    ) -> Any:
        """Run the graph behind ``target`` and return its result: a LazyResult's value, a list
        for a list or tuple of LazyResults, a dict for a dict of them.

        ``on_failure="stop"`` ends the run at the first failure and raises it;
        ``"continue"`` runs every branch that does not depend on a failure and then raises
        ``RunFailed`` with all of them (and the results that were computed).
        ``checkpoint`` is a cache policy for every task that has none of its own. ``pools``
        adds named pools for this run to the engine's (``{"openai": 4}`` or ``cs.Pool``).
        ``record`` records the run and checkpoints its results (``True``: the default store;
        a run store name, a path to an SQLite file, or a ``RunStore``); ``resume`` (``"last"``
        or a run id of the same target in that store; ``"auto"``: the latest run if it did not
        succeed, else none) takes the checkpointed value of every task that succeeded there
        with unchanged code and inputs (see ``cascade.records``). ``record_options`` says what
        a recorded run keeps (``cs.RecordOptions``: captured logs, the checkpoint size limit,
        retention)."""
        run_pools = merge_pools(self.pools, check_pools_given(pools, "run"))
        targets, shape = normalize_target(target)
        graph = build_graph(targets)
        session = None
        if record is not False or resume is not None or record_options is not None:
            if checkpoint is not None:
                raise ValueError("checkpoint= cannot be combined with record= or resume=")
            session = records.open_session(self, graph, record, resume, record_options)
            checkpoint = session.checkpoint
        try:
            plan = RunPlan(self, graph, dict(params or {}), on_failure, checkpoint, run_pools)
            if session is not None:
                plan.tag_attempts = session.captures_logs
                session.bind(plan.run_id)
                plan.ship_logs = session.log_shipping()
            with frozen_collector(self.freeze_gc):
                run = Run(plan, shape)
                if session is not None:
                    session.watch(run.state)  # whose logs are whose, on the fast path
                values = await run.execute()
        finally:
            if session is not None:
                await session.close()
        return shape(values)

    async def check(
        self,
        target: Any,
        params: Mapping[str, Any] | None = None,
        *,
        on_failure: str = "stop",
        pools: Mapping[str, int | Pool] | None = None,
    ) -> None:
        """Make every check ``run`` makes before it starts anything, and start nothing (a dry
        run): the graph builds, params are given and convert, every executor and resource
        is known, pools are defined and large enough, and the tasks an executor sends to
        another process can be pickled. A failed check raises the error ``run`` would
        (``ParamError``, ``ResourceError``, ``PoolError``, ``PluginError``...)."""
        run_pools = merge_pools(self.pools, check_pools_given(pools, "run"))
        targets, _ = normalize_target(target)
        graph = build_graph(targets)
        plan = RunPlan(self, graph, dict(params or {}), on_failure, None, run_pools)
        plan.check_shippable()

    def resolve_executor(self, spec: str | Executor | None) -> tuple[str, Executor]:
        """An executor instance for a name or instance (``None`` means the engine default)."""
        spec = spec if spec is not None else self.executor
        if spec is None:
            spec = "local"
        if isinstance(spec, str):
            return spec, self.plugins.create_executor(spec)
        return getattr(spec, "name", type(spec).__name__), spec


__all__ = ["Engine"]
