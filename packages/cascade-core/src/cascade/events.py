"""The event catalogue (a public module): every lifecycle fact the engine publishes on the bus.

Events are frozen dataclasses so a subscriber can keep them, compare them and hand them across
threads without copying. Subscribing to a base class (``Event``, ``TaskEvent``,
``ResourceEvent``) receives every subclass.
"""

from __future__ import annotations

import random
import time
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

_random_bits = random.getrandbits


def describe_error(exc: BaseException) -> str:
    """``"ValueError: message"``, as events and summaries report errors."""
    return f"{type(exc).__name__}: {exc}"


def preview(value: Any) -> str:
    """The ``repr`` of a result, cut to 100 characters."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the run
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    return text if len(text) <= 100 else text[:97] + "..."


def _new_event_id() -> str:
    # 128 random bits as 32 hex digits, like ``uuid4().hex`` but without a system call per
    # event (uuid4 reads os.urandom): ids need to be unique, not unpredictable. ``random`` is
    # reseeded in forked children, so processes do not repeat each other's ids.
    return f"{_random_bits(128):032x}"


@dataclass(frozen=True)
class Event:
    """Base of all events. ``timestamp`` is wall-clock seconds (``time.time()``)."""

    #: Whether subscribers of a base class (``Event``, ``TaskEvent``) receive this type too;
    #: false for bulk events that repeat what other events say (``TasksSucceeded``).
    delivered_to_base_subscribers: ClassVar[bool] = True

    event_id: str = field(default_factory=_new_event_id)
    timestamp: float = field(default_factory=time.time)
    run_id: str = ""


@dataclass(frozen=True)
class RunStarted(Event):
    """A run has been validated and is about to set up resources and start tasks."""

    target_tasks: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFinished(Event):
    """A run ended. ``status`` is ``"Succeeded"``, ``"Failed"`` or ``"Cancelled"``; a failed
    run names the error as ``error`` (``"Type: message"``) and ``error_type``, and carries the
    exception itself in ``exception`` for subscribers in the same process."""

    status: str = "Succeeded"
    duration: float = 0.0
    error: str | None = None
    error_type: str | None = None
    #: The resource whose setup or teardown raised, when that is what failed the run (the
    #: exception's note says which: "while setting up resource ..." / "while tearing down
    #: resource ...").
    failed_resource: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TaskEvent(Event):
    """Base of everything that happens to one task node (or one mapped item of it).
    ``parent_task_id`` names the task whose returned graph added this one at run time
    (``None`` for tasks of the graph the run started with)."""

    task_id: str = ""
    task_name: str = ""
    parent_task_id: str | None = None


@dataclass(frozen=True)
class TaskExecutionStarted(TaskEvent):
    """One attempt of a task was handed to an executor. ``waited`` is how long it waited
    for slots or tokens before that, and ``waited_for`` what it waited for."""

    attempt: int = 1
    executor: str = ""
    waited: float = 0.0
    waited_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskWaiting(TaskEvent):
    """A ready call waits for ``waiting_for`` (``"pool 'openai'"``, ``"rate limit of task
    'fetch'"``, ``"max_concurrency"``, ...), with ``queued`` calls waiting there now."""

    waiting_for: str = ""
    queued: int = 0


@dataclass(frozen=True)
class TaskExecutionFinished(TaskEvent):
    """One attempt ended. ``timestamp`` is when it ended and ``start_time`` when it began,
    as measured where it ran (a remote worker's clock for remote executors).

    ``status`` is ``"Succeeded"``, ``"Failed"`` or ``"Cancelled"``. A subscriber that needs
    only some of them says so (``bus.subscribe(TaskExecutionFinished, handler,
    statuses={"Failed"})``): the engine builds only the events someone wants, so asking only
    for failures costs nothing per successful task. ``result`` is the value itself and
    ``result_preview`` its ``repr`` cut to 100 characters, built when first read. A failure
    has ``error`` (``"Type: message"``), ``error_type`` and, for subscribers in the same
    process, ``exception``; ``will_retry`` says whether the task's retry policy will attempt
    it again, and ``fell_back`` that the task's value is its ``with_fallback`` value instead.
    ``returned_graph`` says the value holds LazyResults that the run goes on to run.
    """

    status: str = "Succeeded"
    duration: float = 0.0
    error: str | None = None
    attempt: int = 1
    start_time: float = 0.0
    executor: str = ""
    error_type: str | None = None
    will_retry: bool = False
    fell_back: bool = False
    returned_graph: bool = False
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    result: Any = field(default=None, compare=False, repr=False)

    @property
    def result_preview(self) -> str | None:
        """``repr(result)`` cut to 100 characters, for a succeeded attempt; else ``None``."""
        if self.status != "Succeeded":
            return None
        cached = self.__dict__.get("_preview")
        if cached is None:
            cached = preview(self.result)
            self.__dict__["_preview"] = cached  # frozen: fill the cache without __setattr__
        return cached  # type: ignore[no-any-return]


SucceededAttempt = tuple[str, str, "str | None", int, float, float, str]
"""One succeeded attempt in ``TasksSucceeded``: task id, task name, parent task id, attempt,
start and end (wall-clock seconds) and executor name."""


@dataclass(frozen=True)
class TasksSucceeded(Event):
    """Attempts that succeeded, in bulk: for subscribers that keep or close something per
    attempt (the run recorder, tracing) and would otherwise cost a ``TaskExecutionFinished``
    per task.

    The engine collects the succeeded attempts of one event-loop pass and publishes them
    together at its end (and the rest before ``RunFinished``). They come as columns, one
    tuple per field with an item per attempt (item ``i`` of each is attempt ``i``): the engine
    builds them, and a subscriber such as the recorder stores them, without a Python object
    per attempt. ``attempts`` gives the same as one ``SucceededAttempt`` tuple each. It
    repeats what per-attempt events say, so it reaches only subscribers of this type itself,
    never those of ``Event`` (``delivered_to_base_subscribers``). Results are not in it:
    subscribe to ``TaskExecutionFinished`` for those. ``returned_graphs`` names the attempts
    whose value holds LazyResults the run goes on to run (``TaskExecutionFinished``'s
    ``returned_graph``), usually none: a tracer ends every span from this event alone.
    """

    delivered_to_base_subscribers: ClassVar[bool] = False

    task_ids: tuple[str, ...] = ()
    task_names: tuple[str, ...] = ()
    parent_task_ids: tuple[str | None, ...] = ()
    attempt_numbers: tuple[int, ...] = ()
    start_times: tuple[float, ...] = ()
    end_times: tuple[float, ...] = ()
    executors: tuple[str, ...] = ()
    #: The ids among ``task_ids`` whose attempt returned a graph.
    returned_graphs: tuple[str, ...] = ()

    @property
    def attempts(self) -> tuple[SucceededAttempt, ...]:
        """The attempts one tuple each: (task id, task name, parent task id, attempt, start,
        end, executor)."""
        return tuple(
            zip(
                self.task_ids,
                self.task_names,
                self.parent_task_ids,
                self.attempt_numbers,
                self.start_times,
                self.end_times,
                self.executors,
                strict=True,
            )
        )


@dataclass(frozen=True)
class TaskNamed(TaskEvent):
    """A call of a task with ``run_name=`` got its name (``"fetch-3"``), published once, when
    its inputs are known and before its first attempt starts. Subscribers that show calls
    (logs, the live display, run records, traces) show ``call_name`` for ``task_id``."""

    call_name: str = ""


@dataclass(frozen=True)
class TaskCacheMissed(TaskEvent):
    """A task's own cache policy (``InputHashCache``) missed although it held an earlier
    result of the task, and said why: ``reason`` reads as a resume's reasons do ("its code
    changed", "a global it reads changed: 'RATE'", "param 'day' changed ("2026-01-31" ->
    "2026-02-01"), its input 'day'", "its input 'x' changed: it comes from task 'load', a
    dependency"). Published before the call runs; a recorded run keeps ``reason`` as why the
    task ran (``why_ran``). A miss with no earlier result publishes nothing."""

    reason: str = ""


@dataclass(frozen=True)
class TaskSkipped(TaskEvent):
    """A task did not run: ``"CacheHit"`` (its cache policy had the result), ``"Checkpoint"``
    (a resumed run restored the value its earlier run checkpointed), ``"ConditionFalse"``,
    ``"UpstreamSkipped"``, or
    ``"UpstreamFailed"`` (with ``on_failure="continue"``; ``upstream`` names the failed
    task)."""

    reason: str = ""
    upstream: str | None = None


@dataclass(frozen=True)
class TaskRetrying(TaskEvent):
    """Attempt ``attempt`` failed with ``error`` and the next starts after ``delay`` seconds."""

    attempt: int = 1
    delay: float = 0.0
    error: str | None = None
    error_type: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ResourceEvent(Event):
    """Base of resource lifecycle events."""

    resource_name: str = ""


@dataclass(frozen=True)
class ResourceAcquired(ResourceEvent):
    """A resource's setup (the code before ``yield``) finished."""


@dataclass(frozen=True)
class ResourceReleased(ResourceEvent):
    """A resource's teardown (the code after ``yield``) finished."""


_E = TypeVar("_E", bound=Event)
_static_defaults: dict[type[Event], dict[str, Any]] = {}


def make_event(cls: type[_E], **values: Any) -> _E:
    """Build an event without going through the frozen dataclass ``__init__``.

    The engine publishes events per task; a frozen ``__init__`` sets each field through
    ``object.__setattr__``, which costs about twice as much as filling the instance dict at
    once. The result is the same frozen object (defaults applied, setting a field still
    raises)."""
    defaults = _static_defaults.get(cls)
    if defaults is None:
        defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        _static_defaults[cls] = defaults
    event = object.__new__(cls)
    state = event.__dict__
    state.update(defaults)
    state["event_id"] = _new_event_id()
    if "timestamp" not in values:
        state["timestamp"] = time.time()
    state.update(values)
    return event


__all__ = [
    "Event",
    "ResourceAcquired",
    "ResourceEvent",
    "ResourceReleased",
    "RunFinished",
    "RunStarted",
    "TaskEvent",
    "TaskExecutionFinished",
    "TaskExecutionStarted",
    "TaskCacheMissed",
    "TaskNamed",
    "TaskRetrying",
    "TaskSkipped",
    "TaskWaiting",
    "TasksSucceeded",
    "SucceededAttempt",
    "describe_error",
    "make_event",
    "preview",
]
