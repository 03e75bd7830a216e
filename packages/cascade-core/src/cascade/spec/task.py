"""What users declare: tasks, the lazy results calling them returns, and graph parameters.

Nothing here runs a task. A ``LazyResult`` records a call (the task, its arguments, the policies
for this call) and the objects it references form the graph that ``cascade.graph`` walks.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from cascade.spec.cache_policy import CachePolicy, check_cache_policy
from cascade.spec.params import ParamError, convert_param
from cascade.spec.policies import (
    RetryPolicy,
    check_checkpoint,
    check_concurrency,
    check_timeout,
)
from cascade.spec.pools import check_pool_needs, check_priority, parse_rate
from cascade.spec.resource import find_injections
from cascade.spec.run_name import check_run_name
from cascade.spec.signature import SignatureCheck
from cascade.spec.streams import (
    DEFAULT_BUFFER,
    GENERATOR_TASKS,
    check_buffer,
    check_generator_options,
    is_generator_function,
)
from cascade.spec.views import graph_display

R = TypeVar("R")
T = TypeVar("T")
#: A LazyResult is covariant in its value: a ``LazyResult[bool]`` is a ``LazyResult[int]``.
R_co = TypeVar("R_co", covariant=True)
V = TypeVar("V")
#: The parameters of a task's function (``Task[P, R]``), which the mypy plugin checks calls of.
P = ParamSpec("P")

_ids = itertools.count(1)
#: In a pickled LazyResult: its cache policy is its task's (see ``LazyResult.__getstate__``).
_TASKS_CACHE = "<the task's cache>"
#: The slots a LazyResult class pickles, by class.
_PICKLED_SLOTS: dict[type, tuple[str, ...]] = {}
_UNSET: Any = object()
#: The keyword arguments of every call made without any (see ``LazyResult.__init__``).
_NO_KEYWORDS: dict[str, Any] = {}


class _Missing:
    """The one "no value" marker (no fallback, no condition, a required param). It pickles
    as a reference to the module-level instance, so a graph returned from a worker process
    still compares ``is MISSING`` in the driver (a copy would look like a fallback)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<required>"

    def __reduce__(self) -> str:
        return "MISSING"

    def __copy__(self) -> _Missing:
        return self

    def __deepcopy__(self, memo: Any) -> _Missing:
        return self


MISSING: Any = _Missing()


def _retry_from(retries: int | RetryPolicy | None, owner: str, **shape: Any) -> RetryPolicy | None:
    """The task default retry policy from ``@cs.task(retries=..., retry_delay=..., backoff=...,
    max_retry_delay=..., jitter=..., retry_on=...)``; ``shape`` holds the options given."""
    given = {name: value for name, value in shape.items() if value is not None}
    if isinstance(retries, RetryPolicy):
        if given:
            raise TypeError(
                f"{owner}: {', '.join(f'{n}=' for n in given)} cannot be combined with "
                "retries=RetryPolicy(...); give the delay and backoff in the policy"
            )
        return retries
    if retries is None:
        if given:
            raise TypeError(
                f"{owner}: {', '.join(f'{n}=' for n in given)} shape retries, but retries= "
                "is not given; add retries=N (the number of retries after the first attempt)"
            )
        return None
    on = given.get("retry_on", (Exception,))
    try:
        return RetryPolicy(
            retries=retries,
            delay=given.get("retry_delay", 0.0),
            backoff=given.get("backoff", 1.0),
            max_delay=given.get("max_retry_delay"),
            jitter=given.get("jitter", 0.0),
            on=on if isinstance(on, tuple) else (on,),
        )
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{owner}: {exc}") from None


class LazyResult(Generic[R_co]):
    """The not-yet-computed result of one task call: a node of the graph.

    Pass it to other tasks as an argument (also inside lists, tuples and dicts) to make them
    depend on it; the ``with_*`` methods return a copy with a policy overridden for this call.
    """

    __slots__ = (
        "__weakref__",
        "after_deps",
        "args",
        "cache",
        "checkpoint",
        "condition",
        "fallback",
        "id",
        "kwargs",
        "pools",
        "priority",
        "retry",
        "task",
        "timeout",
    )

    task: Task[..., Any] | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    id: str
    retry: RetryPolicy | None
    timeout: float | None
    cache: CachePolicy | None
    checkpoint: bool | int
    condition: Any
    after_deps: tuple[LazyResult[Any], ...]
    fallback: Any
    pools: tuple[tuple[str, int], ...]
    priority: int

    def __init__(self, task: Task[..., Any] | None, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.task = task
        self.args = args
        # A call without keywords shares one empty dict: one object fewer kept per call, which
        # the collector would count (``benchmarks/run.py``, the calls-and-build row). A
        # call's arguments are read-only: the runtime copies them before changing any.
        self.kwargs = kwargs or _NO_KEYWORDS
        self.id = f"{task.name if task else 'param'}-{next(_ids)}"
        if task is not None:
            self.retry = task.retry
            self.timeout = task.timeout
            self.cache = task.cache
            self.checkpoint = task.checkpoint
            self.pools = task.pools
            self.priority = task.priority
        else:
            self.retry = self.timeout = self.cache = None
            self.checkpoint = False
            self.pools = ()
            self.priority = 0
        self.condition = MISSING
        self.after_deps = ()
        self.fallback = MISSING

    @property
    def name(self) -> str:
        """The task name this node reports in events and graphs."""
        assert self.task is not None
        return self.task.name

    def __repr__(self) -> str:
        return f"<LazyResult {self.id}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Notebooks draw the graph behind this call (``cascade.graph`` makes the drawing:
        SVG with Graphviz, else Mermaid); ``repr`` stays one short line."""
        return graph_display(self)

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self!r} has no truth value before the graph runs; "
            "to branch on it use .run_if(condition)"
        )

    def __iter__(self) -> Any:
        raise TypeError(
            f"{self!r} cannot be iterated before the graph runs; "
            "to fan out over it use some_task.map(it)"
        )

    def __getstate__(self) -> dict[str, Any]:
        # Once per call of a pickled graph (a checkpoint of 10,000 returned calls pickles
        # 10,000 of them): the slot names are worked out once per class.
        kind = type(self)
        slots = _PICKLED_SLOTS.get(kind)
        if slots is None:
            slots = _PICKLED_SLOTS[kind] = tuple(
                slot
                for klass in kind.__mro__
                for slot in getattr(klass, "__slots__", ())
                if slot != "__weakref__"
            )
        state = {}
        for slot in slots:
            value = getattr(self, slot, _UNSET)
            if value is not _UNSET:
                state[slot] = value
        if self.task is not None and self.cache is not None and self.cache is self.task.cache:
            # The task's own policy: taken from the task where the call lands (a task travels
            # by reference), so it stays the one policy object of that process.
            del state["cache"]
            state[_TASKS_CACHE] = True
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.pop(_TASKS_CACHE, False):
            state["cache"] = state["task"].cache
        for slot, value in state.items():
            object.__setattr__(self, slot, value)
        if not isinstance(self, Param):
            # Ids count calls per process: a call made in a worker (a graph a task returned
            # there) gets an id of this process, so it cannot collide with one made here.
            self.id = f"{self.name}-{next(_ids)}"

    def _copy(self) -> LazyResult[R_co]:
        clone: LazyResult[R_co] = object.__new__(type(self))
        for klass in type(self).__mro__:
            for slot in getattr(klass, "__slots__", ()):
                if slot != "__weakref__" and hasattr(self, slot):
                    object.__setattr__(clone, slot, getattr(self, slot))
        clone.id = f"{self.name}-{next(_ids)}"
        return clone

    def with_retry(
        self,
        retries: int = 1,
        delay: float = 0.0,
        backoff: float = 1.0,
        max_delay: float | None = None,
        jitter: float = 0.0,
        on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    ) -> LazyResult[R_co]:
        """A copy of this call that is attempted at most ``retries + 1`` times."""
        clone = self._copy()
        on_tuple = on if isinstance(on, tuple) else (on,)
        clone.retry = RetryPolicy(retries, delay, backoff, max_delay, jitter, on_tuple)
        return clone

    def with_timeout(self, seconds: float | None) -> LazyResult[R_co]:
        """A copy of this call whose every attempt fails with ``TaskTimeoutError`` after
        ``seconds``."""
        clone = self._copy()
        clone.timeout = check_timeout(seconds)
        return clone

    def with_cache(self, policy: CachePolicy | None) -> LazyResult[R_co]:
        """A copy of this call that uses ``policy`` (``None`` turns caching off)."""
        clone = self._copy()
        clone.cache = check_cache_policy(policy, self.name)
        return clone

    def with_checkpoint(self, checkpoint: bool | int | str) -> LazyResult[R_co]:
        """A copy of this call whose result a recorded run checkpoints or not: ``False``
        keeps it out of the run store (a resume runs the call again), ``True`` checkpoints
        it under the run's size limit, a size (``"2GB"``, or bytes) is this call's limit."""
        clone = self._copy()
        clone.checkpoint = check_checkpoint(checkpoint, f"task '{self.name}'")
        return clone

    def run_if(self, condition: Any) -> LazyResult[R_co]:
        """A copy that runs only when ``condition`` (a value or a LazyResult) is truthy;
        otherwise it is skipped, and so is everything that needs its result."""
        clone = self._copy()
        clone.condition = condition
        return clone

    def with_pools(self, **slots: int) -> LazyResult[R_co]:
        """A copy of this call that holds ``slots`` of each named pool while an attempt runs
        (``.with_pools(openai=2)``), instead of the task's ``pools=``."""
        clone = self._copy()
        clone.pools = check_pool_needs(slots, f"task '{self.name}'")
        return clone

    def with_priority(self, priority: int) -> LazyResult[R_co]:
        """A copy of this call that starts before lower-priority ready calls when slots are
        scarce (``max_concurrency``, a task's ``concurrency``, a pool, a rate)."""
        clone = self._copy()
        clone.priority = check_priority(priority, f"task '{self.name}'")
        return clone

    def with_fallback(self, value: T) -> LazyResult[R_co | T]:
        """A copy whose value is ``value`` once its retries are spent on an exception: the
        run goes on, and its finished event says it failed and fell back. (Typed as the
        task's value or the fallback's: ``LazyResult[int]`` with ``0``, ``int | None`` with
        ``None``.)"""
        clone: LazyResult[R_co | T] = self._copy()
        clone.fallback = value
        return clone

    def after(self, *upstream: LazyResult[Any]) -> LazyResult[R_co]:
        """A copy that starts only after ``upstream`` finished, without taking their values."""
        for item in upstream:
            if not isinstance(item, LazyResult):
                raise TypeError(f"{self.name}.after() takes LazyResults, got {item!r}")
        clone = self._copy()
        clone.after_deps = self.after_deps + tuple(upstream)
        return clone


class Param(LazyResult[V]):
    """A graph input, resolved from the ``params`` given to ``run``.

    ``type`` converts the given value (``"3"`` from a command line becomes ``3`` with
    ``type=int``) and refuses values it would change the meaning of; it may also be a model
    class with ``model_validate`` (pydantic), which validates a mapping. A param without a
    default is required. The default goes through ``type`` like a given value (so a task
    gets one type either way), except ``None``, which stays ``None`` (an optional param); a
    default the type refuses is a ``ParamError`` before anything runs.

    For type checkers a param is a ``LazyResult`` of its ``type`` (``Param("n", type=int)``
    is a ``Param[int]``), else of its default's type, else of ``Any``.
    """

    __slots__ = ("default", "description", "param_name", "type")

    @overload
    def __init__(
        self: Param[V],
        name: str,
        default: Any = ...,
        *,
        type: type[V] | Callable[[Any], V],
        description: str = "",
    ) -> None: ...
    @overload
    def __init__(
        self: Param[V],
        name: str,
        default: Any,
        type: type[V] | Callable[[Any], V],
        description: str = "",
    ) -> None: ...
    @overload
    def __init__(
        self: Param[V], name: str, default: V, type: None = None, description: str = ""
    ) -> None: ...
    @overload
    def __init__(
        self: Param[Any], name: str, *, type: None = None, description: str = ""
    ) -> None: ...
    def __init__(
        self,
        name: str,
        default: Any = MISSING,
        type: Callable[[Any], Any] | None = None,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Param needs a name, got {name!r}")
        super().__init__(None, (), {})
        self.id = f"param:{name}"
        self.param_name = name
        self.default = default
        self.type = type
        self.description = description

    @property
    def name(self) -> str:
        """``param:<name>``, as graphs and events show the param's node."""
        return f"param:{self.param_name}"

    @property
    def required(self) -> bool:
        """Whether a run must be given the param (it has no default)."""
        return self.default is MISSING

    def __repr__(self) -> str:
        return f"<Param {self.param_name!r}>"

    def _copy(self) -> LazyResult[Any]:
        raise TypeError(f"policies apply to task calls, not to {self!r}")

    def convert(self, value: Any) -> Any:
        """Apply ``type`` to a given value. A conversion that would lose or invent something
        (``2.5`` to ``int``, ``true`` to ``float``, the text ``"oslo"`` to ``list``, ``None`` to
        anything) is a ``ParamError`` naming the param, the value and the type; see
        ``cascade.spec.params`` for what each kind of type accepts."""
        return convert_param(self.param_name, self.type, value)

    def default_value(self) -> Any:
        """The default as a run uses it: converted by ``type`` (``None`` stays ``None``). A
        default the type refuses is a ``ParamError`` saying it is the default."""
        if self.default is None or self.default is MISSING:
            return self.default
        try:
            return self.convert(self.default)
        except ParamError as exc:
            raise ParamError(
                f"param '{self.param_name}': its default {self.default!r} does not convert "
                f"to {exc.expected}: {exc.reason}; fix the default in cs.Param(...)",
                param=self.param_name,
                value=self.default,
                expected=exc.expected,
                reason=exc.reason,
            ) from None


class unmapped:
    """Wrap an argument of ``task.map(...)`` to pass it whole to every item."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"unmapped({self.value!r})"


_new = object.__new__
_init_lazy = LazyResult.__init__


class MappedLazyResult(LazyResult[list[R]]):
    """``task.map(...)``: one call of the task per item, resolved to the list of results.

    ``iterated`` holds the positional indices and keyword names that are iterated; everything
    else is broadcast to every item.
    """

    __slots__ = ("iterated_args", "iterated_kwargs")

    iterated_args: tuple[int, ...]
    iterated_kwargs: tuple[str, ...]


def passed_whole(value: Any) -> bool:
    """Whether a value given to ``.map`` goes whole to every item rather than being iterated:
    text, bytes and mappings, whether written in the call or produced at run time by a
    ``Param`` or a task (``.map`` decides again once such a value is known)."""
    return isinstance(value, (str, bytes, bytearray, Mapping))


def _is_iterated(value: Any) -> bool:
    if isinstance(value, unmapped):
        return False
    if isinstance(value, LazyResult):
        return True
    return isinstance(value, Iterable) and not passed_whole(value)


class Task(Generic[P, R]):
    """A function declared with ``@cs.task``. Calling it builds a ``LazyResult``; the plain
    function stays available as ``.fn`` for unit tests.

    For type checkers a task is ``Task[P, R]``: ``P`` its function's parameters, ``R`` what the
    function returns (what it awaits to, for an ``async def``). A call is a ``LazyResult[R]``
    and ``.map`` a ``LazyResult[list[R]]``; the arguments are checked against ``P`` by the
    mypy plugin ``cascade.mypy`` (see docs/concepts.md, "Typing").
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        executor: str | Any | None = None,
        retries: int | RetryPolicy | None = None,
        timeout: float | None = None,
        cache: CachePolicy | None = None,
        concurrency: int | None = None,
        dynamic: bool = False,
        pools: Mapping[str, int] | None = None,
        rate_limit: str | None = None,
        priority: int = 0,
        retry_delay: float | None = None,
        backoff: float | None = None,
        max_retry_delay: float | None = None,
        jitter: float | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        checkpoint: bool | int | str = True,
        run_name: str | Callable[..., str] | None = None,
        buffer: int = DEFAULT_BUFFER,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}")

        self.fn: Callable[P, Any] = fn
        self.name = name or getattr(fn, "__name__", None) or repr(fn)
        _refuse_methods(fn, self.name)
        self.is_async = inspect.iscoroutinefunction(fn)
        #: Written as a generator (``def`` or ``async def`` with ``yield``): its calls produce
        #: a stream, item by item (docs/streams.md).
        self.is_generator = is_generator_function(fn)
        if self.is_generator:
            check_generator_options(f"task '{self.name}'", retries=retries, cache=cache)
            GENERATOR_TASKS[0] += 1
        #: How many items a stream of this task holds that no consumer has taken yet (its
        #: generator's, or its ``.map``'s when a stage is mapped over it) before it pauses.
        self.buffer = check_buffer(buffer, f"task '{self.name}'")
        #: Whether its calls take part in streams whatever their policies (a generator, or
        #: ``cs.fold``): they always take the policy route (``RunPlan.needs_policies``).
        self.streams = self.is_generator
        if executor is not None and not (
            isinstance(executor, str) or callable(getattr(executor, "submit", None))
        ):
            raise TypeError(
                f"task '{self.name}': executor= takes an executor name or instance, "
                f"got {executor!r}"
            )
        self.executor = executor
        self.retry = _retry_from(
            retries,
            f"task '{self.name}'",
            retry_delay=retry_delay,
            backoff=backoff,
            max_retry_delay=max_retry_delay,
            jitter=jitter,
            retry_on=retry_on,
        )
        self.timeout = check_timeout(timeout)
        self.cache = check_cache_policy(cache, self.name)
        self.concurrency = check_concurrency(concurrency, f"task '{self.name}': concurrency")
        if not isinstance(dynamic, bool):
            raise TypeError(f"task '{self.name}': dynamic= takes True or False, got {dynamic!r}")
        #: Declared to return graphs (for readers, ``cs.visualize`` and ``cascade graph``);
        #: any task may return one whether declared or not.
        self.dynamic = dynamic
        owner = f"task '{self.name}'"
        self.pools = check_pool_needs(pools, owner)
        self.rate = parse_rate(rate_limit, owner) if rate_limit is not None else None
        self.priority = check_priority(priority, owner)
        #: Whether a recorded run checkpoints this task's results (or the largest it
        #: checkpoints, in bytes): see ``LazyResult.with_checkpoint``.
        self.checkpoint = check_checkpoint(checkpoint, owner)
        #: How each call is named (``"fetch-{page}"`` or a callable; see
        #: ``cascade.spec.run_name``), or ``None``: calls go by their task id.
        self.run_name = check_run_name(run_name, fn, owner)
        self.injections = find_injections(fn)
        self._signature_check = SignatureCheck(fn, self.name)
        self._plain_counts = self._signature_check.plain_counts
        _wrap(self, fn)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __reduce__(self) -> Any:
        # By reference when the task is a module attribute, so a graph a task returns in a
        # worker process travels back to the driver as the driver's own tasks.
        module = getattr(self.fn, "__module__", None)
        qualname = getattr(self.fn, "__qualname__", "")
        if module and "<locals>" not in qualname:
            try:
                if _load_task(module, qualname) is self:
                    return (_load_task, (module, qualname))
            except Exception:
                pass
        return object.__reduce__(self)

    def __call__(self, /, *args: Any, **kwargs: Any) -> LazyResult[R]:
        if kwargs or len(args) not in self._plain_counts:
            self._signature_check(args, kwargs)
        # ``LazyResult(self, args, kwargs)`` without calling the class, whose
        # ``type.__call__`` packs the arguments in a tuple and calls ``__init__`` from C:
        # about 0.1 µs of the 1 µs a call costs (the calls-and-build row of
        # ``benchmarks/run.py``, which every end-to-end row pays).
        lazy: LazyResult[R] = _new(LazyResult)
        _init_lazy(lazy, self, args, kwargs)
        return lazy

    def map(self, /, *args: Any, **kwargs: Any) -> LazyResult[list[R]]:
        """Call the task once per item of the iterated arguments (lists, tuples, ranges, or
        LazyResults producing one). Strings, bytes, mappings and ``cs.unmapped(value)`` are
        passed whole to every item, also when a ``Param`` or a task produces them at run
        time. Iterated arguments must have equal lengths."""
        if self.is_generator:
            raise TypeError(
                f"{self.name}.map(): task '{self.name}' is a generator task, whose call is a "
                "stream already; map the tasks that consume it over its stream instead "
                f"(other.map({self.name}(...)))"
            )
        iterated_args = tuple(i for i, a in enumerate(args) if _is_iterated(a))
        iterated_kwargs = tuple(k for k, v in kwargs.items() if _is_iterated(v))
        if not iterated_args and not iterated_kwargs:
            raise TypeError(
                f"{self.name}.map() needs at least one iterable argument to fan out over"
            )

        def plain(value: Any, iterated: bool) -> Any:
            if isinstance(value, unmapped):
                return value.value
            if iterated and not isinstance(value, (LazyResult, list)):
                return list(value)
            return value

        margs = tuple(plain(a, i in iterated_args) for i, a in enumerate(args))
        mkwargs = {k: plain(v, k in iterated_kwargs) for k, v in kwargs.items()}
        self._signature_check(margs, mkwargs)
        mapped: MappedLazyResult[R] = MappedLazyResult(self, margs, mkwargs)
        mapped.iterated_args = iterated_args
        mapped.iterated_kwargs = iterated_kwargs
        return mapped


def _wrap(task: Task[..., Any], fn: Callable[..., Any]) -> None:
    """``functools.update_wrapper(task, fn)``, with the function's own attributes set one by
    one rather than through ``task.__dict__``: asking for an instance's ``__dict__`` makes
    it a real dictionary, and CPython then reads every attribute of the task the slow way
    (about 40 ns each, eight of them per call: the calls-and-build row of
    ``benchmarks/run.py``)."""
    for attr in functools.WRAPPER_ASSIGNMENTS:
        try:
            value = getattr(fn, attr)
        except AttributeError:
            continue
        setattr(task, attr, value)
    own = getattr(fn, "__dict__", None)
    if own and any(hasattr(type(getattr(Task, key, None)), "__set__") for key in own):
        # A name the class defines as a property (or another data descriptor): only the
        # dictionary holds it as ``update_wrapper`` would.
        task.__dict__.update(own)
    elif own:
        for key, value in own.items():
            setattr(task, key, value)
    task.__wrapped__ = fn  # type: ignore[attr-defined]


def _refuse_methods(fn: Callable[..., Any], name: str) -> None:
    """A function written in a class body whose first parameter is ``self`` or ``cls`` is a
    method: a task is not bound to an object (calling it on one would pass the arguments one
    place off, and fail or worse), so it is refused where it is declared."""
    qualname = getattr(fn, "__qualname__", "") or ""
    owner, dot, _ = qualname.rpartition("<locals>.")[2].rpartition(".")
    if not dot:
        return
    try:
        first = next(iter(inspect.signature(fn).parameters), None)
    except (TypeError, ValueError):
        return
    if first in ("self", "cls"):
        raise TypeError(
            f"task '{name}' is a method of class '{owner}': @cs.task makes plain functions, "
            f"which are not bound to an object ('{first}' would be taken from the first "
            "argument); define the task at module level and pass the object (or what the "
            "task needs of it) as an argument"
        )


def _load_task(module: str, qualname: str) -> Any:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class TaskDecorator(Protocol):
    """What ``@cs.task(...)`` with options returns: it makes a ``Task`` of a function."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, AsyncIterator[T]], /
    ) -> Task[P, list[T]]: ...
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Task[P, R]: ...
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Iterator[T]], /
    ) -> Task[P, list[T]]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(fn: Callable[P, AsyncIterator[T]], /) -> Task[P, list[T]]: ...  # type: ignore[overload-overlap]
@overload
def task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...  # type: ignore[overload-overlap]
@overload
def task(fn: Callable[P, Iterator[T]], /) -> Task[P, list[T]]: ...  # type: ignore[overload-overlap]
@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    executor: str | Any | None = None,
    retries: int | RetryPolicy | None = None,
    timeout: float | None = None,
    cache: CachePolicy | None = None,
    concurrency: int | None = None,
    dynamic: bool = False,
    pools: Mapping[str, int] | None = None,
    rate_limit: str | None = None,
    priority: int = 0,
    retry_delay: float | None = None,
    backoff: float | None = None,
    max_retry_delay: float | None = None,
    jitter: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    checkpoint: bool | int | str = True,
    run_name: str | Callable[..., str] | None = None,
    buffer: int = DEFAULT_BUFFER,
) -> TaskDecorator: ...
def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    executor: str | Any | None = None,
    retries: int | RetryPolicy | None = None,
    timeout: float | None = None,
    cache: CachePolicy | None = None,
    concurrency: int | None = None,
    dynamic: bool = False,
    pools: Mapping[str, int] | None = None,
    rate_limit: str | None = None,
    priority: int = 0,
    retry_delay: float | None = None,
    backoff: float | None = None,
    max_retry_delay: float | None = None,
    jitter: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    checkpoint: bool | int | str = True,
    run_name: str | Callable[..., str] | None = None,
    buffer: int = DEFAULT_BUFFER,
) -> Any:
    """Declare a task. Sync functions run off the event loop (in threads by default); async
    functions run on it. The keyword options are defaults for every call of the task; the
    ``with_*`` methods of a ``LazyResult`` override them for one call.

    Retries: ``retries=3`` attempts a failing call up to three more times; ``retry_delay``
    (seconds before the first retry, default 0), ``backoff`` (the factor each later delay is
    multiplied by), ``max_retry_delay`` (a cap), ``jitter`` (a random ± fraction) and
    ``retry_on`` (the exception classes that are retried, default every ``Exception``) shape
    them: ``@cs.task(retries=3, retry_delay=1.0, backoff=2.0)`` waits 1 s, 2 s, then 4 s.
    ``retries=cs.RetryPolicy(...)`` gives the same as one object.

    ``checkpoint=False`` keeps the task's results out of recorded runs' checkpoints (a size
    such as ``"2GB"`` is its own limit instead of the run's); see docs/history.md.
    ``run_name="fetch-{page}"`` (a format string over the call's arguments, or a callable
    taking them) names each call in logs, the live display, run records, the report and
    traces.

    A function written as a generator (``def`` or ``async def`` with ``yield``) makes a
    *stream*: tasks mapped over its call start on each item as it is yielded, and
    ``buffer=`` (default 100) is how many items it may hold that no consumer has taken yet
    before the generator is paused; see docs/streams.md."""
    options = dict(
        name=name,
        executor=executor,
        retries=retries,
        timeout=timeout,
        cache=cache,
        concurrency=concurrency,
        dynamic=dynamic,
        pools=pools,
        rate_limit=rate_limit,
        priority=priority,
        retry_delay=retry_delay,
        backoff=backoff,
        max_retry_delay=max_retry_delay,
        jitter=jitter,
        retry_on=retry_on,
        checkpoint=checkpoint,
        run_name=run_name,
        buffer=buffer,
    )
    if fn is None:
        return lambda f: Task(f, **options)  # type: ignore[arg-type]
    return Task(fn, **options)  # type: ignore[arg-type]
