"""Resources: ``@cs.resource`` generator functions whose setup runs before ``yield`` and whose
teardown runs after it, injected into tasks (and other resources) with ``cs.inject``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

Scope = Literal["run", "task"]


@dataclass(frozen=True)
class Inject:
    """Default-value marker: the parameter receives the resource called ``resource_name``."""

    resource_name: str

    def __repr__(self) -> str:
        return f"inject({self.resource_name!r})"


def inject(resource_name: str) -> Any:
    """Use as a parameter default to receive the named resource when the task or resource runs."""
    if not isinstance(resource_name, str) or not resource_name:
        raise TypeError(f"inject() needs a resource name, got {resource_name!r}")
    return Inject(resource_name)


def find_injections(fn: Callable[..., Any]) -> tuple[tuple[str, str], ...]:
    """``(parameter, resource name)`` for every parameter whose default is ``inject(...)``."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(
        (p.name, p.default.resource_name) for p in parameters if isinstance(p.default, Inject)
    )


@dataclass(frozen=True)
class ResourceDefinition:
    """A registered provider: a sync or async generator function plus its name and scope."""

    func: Callable[..., Any]
    name: str
    scope: Scope = "run"

    @property
    def is_async(self) -> bool:
        """Whether the provider is an async generator (set up and torn down on the loop)."""
        return inspect.isasyncgenfunction(self.func)

    @property
    def injections(self) -> tuple[tuple[str, str], ...]:
        """``(parameter, resource name)`` of the other resources the provider injects."""
        return find_injections(self.func)

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


#: Every resource declared with ``@cs.resource`` in this process, by name (latest wins). An
#: engine falls back to these for names it has no provider registered for, so a pipeline
#: module's resources work under ``cascade run`` without registration code.
declared_resources: dict[str, ResourceDefinition] = {}


def _declare(definition: ResourceDefinition) -> ResourceDefinition:
    declared_resources[definition.name] = definition
    return definition


def make_resource_definition(
    func: Callable[..., Any], name: str | None = None, scope: Scope | None = None
) -> ResourceDefinition:
    """Validate ``func`` as a provider and wrap it; shared by ``@resource`` and overrides.
    A definition passed in keeps its name and scope unless new ones are given."""
    if isinstance(func, ResourceDefinition):
        return ResourceDefinition(func.func, name or func.name, scope or func.scope)
    scope = scope or "run"
    label: str = name or getattr(func, "__name__", None) or repr(func)
    if not (inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)):
        raise TypeError(
            f"resource '{label}' must be a generator function (setup, then `yield value`, "
            "then teardown); got a plain function"
        )
    if scope not in ("run", "task"):
        raise ValueError(f"resource '{label}': scope must be 'run' or 'task', got {scope!r}")
    return ResourceDefinition(func, label, scope)


@overload
def resource(func: Callable[..., Any], /) -> ResourceDefinition: ...
@overload
def resource(
    *, name: str | None = None, scope: Scope = "run"
) -> Callable[[Callable[..., Any]], ResourceDefinition]: ...
def resource(
    func: Callable[..., Any] | None = None, /, *, name: str | None = None, scope: Scope = "run"
) -> Any:
    """Declare a resource provider.

    ``scope="run"`` gives one instance per run, shared by every task that injects it;
    ``scope="task"`` sets up a fresh instance around each task execution.
    """
    if func is None:
        return lambda f: _declare(make_resource_definition(f, name, scope))
    return _declare(make_resource_definition(func, name, scope))
