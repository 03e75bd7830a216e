"""The executor protocol, the public module for executor plugins.

An executor runs one ``TaskCall`` at a time on behalf of the engine; see
``cascade.executors.protocol`` for the contract. Executors that run calls in other processes
find here what they need to do it the way the built-ins do: picklability checks, the check
that a script starting worker processes guards its top-level run, portable
functions, the worker-side context, and the resource lifecycle (``plan_resources`` and
``ResourceStack``) for setting injected resources up where a call runs.
"""

from __future__ import annotations

from cascade.executors.main_guard import MissingMainGuardError, check_main_guard
from cascade.executors.protocol import (
    BaseExecutor,
    Executor,
    PlainSubmit,
    PortableFunction,
    TaskCall,
    UnpicklableTaskError,
    WorkerSetup,
    call_in_worker,
    check_picklable,
    worker_context,
)
from cascade.resources import ResourceError, ResourceStack, plan_resources

__all__ = [
    "BaseExecutor",
    "Executor",
    "MissingMainGuardError",
    "PlainSubmit",
    "PortableFunction",
    "ResourceError",
    "ResourceStack",
    "TaskCall",
    "UnpicklableTaskError",
    "WorkerSetup",
    "call_in_worker",
    "check_main_guard",
    "check_picklable",
    "plan_resources",
    "worker_context",
]
