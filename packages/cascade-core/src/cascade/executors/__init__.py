"""The executor protocol, the public module for executor plugins.

An executor runs the calls of a run on behalf of the engine; see
``cascade.executors.protocol`` for the contract. The engine opens each executor once per run
with ``open_run(executor, run)`` and submits the run's calls to the handle it yields
(``ExecutorRun``). Executors that run calls in other processes find here what they need to do
it the way the built-ins do: picklability checks, the check that a script starting worker
processes guards its top-level run, portable functions, the worker-side context, and the
shared worker-side kit (``CallSpec``, ``run_spec``, ``WorkerResources``: resources set up
where a call runs, timing, logs collected for a run that captures them, failures sent back
with their worker-side frames).
"""

from __future__ import annotations

from cascade.executors.main_guard import MissingMainGuardError, check_main_guard
from cascade.executors.protocol import (
    BaseExecutor,
    DeliverLogs,
    Executor,
    ExecutorRun,
    LogShipping,
    PlainSubmit,
    PortableFunction,
    RunInfo,
    SubmitRun,
    TaskCall,
    UnpicklableTaskError,
    WorkerSetup,
    call_in_worker,
    check_picklable,
    worker_context,
)
from cascade.executors.runs import RunScopedExecutor, is_executor, open_run
from cascade.executors.worker_kit import (
    CallReport,
    CallSpec,
    Failure,
    Provider,
    WorkerResources,
    order_providers,
    run_spec,
)
from cascade.executors.worker_logs import ShippedLine, cap_text, is_cascade_logger, log_line
from cascade.resources import ResourceError, ResourceStack, plan_resources

__all__ = [
    "BaseExecutor",
    "CallReport",
    "CallSpec",
    "DeliverLogs",
    "Executor",
    "ExecutorRun",
    "Failure",
    "LogShipping",
    "MissingMainGuardError",
    "PlainSubmit",
    "PortableFunction",
    "Provider",
    "ResourceError",
    "ResourceStack",
    "RunInfo",
    "RunScopedExecutor",
    "ShippedLine",
    "SubmitRun",
    "TaskCall",
    "UnpicklableTaskError",
    "WorkerResources",
    "WorkerSetup",
    "call_in_worker",
    "cap_text",
    "check_main_guard",
    "check_picklable",
    "is_cascade_logger",
    "is_executor",
    "log_line",
    "open_run",
    "order_providers",
    "plan_resources",
    "run_spec",
    "worker_context",
]
