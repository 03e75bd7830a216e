"""The cache policy protocol the engine calls around a task execution."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class CacheMiss:
    """Why a policy missed although it held an earlier result of the same task: which part
    of the key differs from that result's.

    ``kind`` is ``"code"`` (the task's code), ``"version"`` (its ``version=``), ``"global"``
    (a value its code reads from outside its arguments; ``names`` says which), ``"input"``
    (``names``: the inputs by parameter name, ``before`` and ``now`` their values as short
    JSON text when there is one input and it has such a form), ``"key"`` (what ``key_fn``
    returned) or ``"expired"`` (the same key: the entry expired or was removed). The engine
    words it as a resume words why a task ran again (``cascade.events.TaskCacheMissed``)."""

    kind: str
    names: tuple[str, ...] = ()
    before: str | None = None
    now: str | None = None


@dataclass
class CacheContext:
    """What a policy may look at: the task and its resolved inputs (injected resources are not
    inputs). ``state`` carries whatever ``lookup`` computed (a key, a path) over to ``save``.
    ``run_id`` is the run making the call (``""`` outside one), for policies that remember
    what they saw once per run. A policy that misses may set ``miss`` to say why
    (``CacheMiss``)."""

    task: Any
    task_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any = field(default=None)
    run_id: str = ""
    miss: CacheMiss | None = None

    @property
    def task_name(self) -> str:
        """The name of the task being called."""
        return str(self.task.name)


class CacheWarning(UserWarning):
    """A cache could not be used for one call (an input without a stable hash, a result that
    cannot be stored); the task still ran."""


@runtime_checkable
class CachePolicy(Protocol):
    """Decides whether a task's result is already known, and remembers new results.

    ``lookup`` returns ``(True, value)`` on a hit, and the engine skips the task with
    ``TaskSkipped(reason="CacheHit")``; ``(False, None)`` on a miss, after which the task runs and
    ``save`` receives its result. Both run on the event loop and should be quick. For a task
    that returned a graph, ``save`` receives that graph as the task returned it, and a hit may
    return one: the engine runs it, each task in it under its own policies.

    A policy given to ``Engine.run(checkpoint=...)`` may also have a ``settled`` mapping
    whose keys are ``id(task)`` of tasks whose calls without inputs it no longer needs to
    see (a lookup would miss and a save would do nothing, as for a key saved already in a
    run that resumes nothing); the engine then runs those calls without a context, a
    lookup or a save. The policy keeps each such task alive, so its id stays its own.
    """

    def lookup(self, context: CacheContext) -> tuple[bool, Any]:
        """``(True, value)`` when the call's result is known (the task is skipped), else
        ``(False, None)`` (the task runs)."""
        ...

    def save(self, context: CacheContext, value: Any) -> None:
        """Remember ``value``, the result of the call ``lookup`` missed."""
        ...


def check_cache_policy(policy: Any, task_name: str) -> CachePolicy | None:
    """Validate a user-given policy with an error naming the task."""
    if policy is None:
        return None
    if not isinstance(policy, CachePolicy):
        raise TypeError(
            f"task '{task_name}': cache= takes a cache policy such as cs.InputHashCache() or "
            f"cs.FileExistenceCache(path), got {policy!r}"
        )
    return policy
