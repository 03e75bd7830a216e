"""Turn the LazyResults reachable from the targets into a DAG in topological order.

Everything here is iterative (explicit stacks), so a 100,000-deep chain builds without touching
Python's recursion limit, in time linear in nodes plus edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cascade.spec.task import MISSING, LazyResult, MappedLazyResult, Param

KIND_TASK = 0
KIND_PARAM = 1
KIND_MAP = 2

_CONTAINERS = (list, tuple, dict)
_SEARCHED = (LazyResult, list, tuple, dict)


def _contains_lazy(value: Any) -> list[LazyResult[Any]]:
    """Every LazyResult inside a list/tuple/dict at any depth, in the order they appear (empty
    for plain literals)."""
    return _scan(value)[0]


def _scan(value: Any) -> tuple[list[LazyResult[Any]], list[tuple[Any, ...]]]:
    """The LazyResults inside a container, first to last, and the tuple subclasses met on the
    way (other than named tuples), which ``resolve_nested`` has to rebuild with their class.
    Each container is visited once (by identity), so a literal that contains itself ends the
    search and sub-lists shared many times cost one visit."""
    kind = type(value)
    if kind is list or kind is tuple:
        # A list of calls (``total([noop(i) for i in range(n)])``, the fan-in rows of
        # ``benchmarks/run.py``): one pass, when every item is a LazyResult.
        found = [x for x in value if isinstance(x, LazyResult)]
        if len(found) == len(value):
            return found, []
    found = []
    odd_tuples: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, LazyResult):
            found.append(item)
            continue
        if isinstance(item, dict):
            items: Any = item.values()
        elif isinstance(item, (list, tuple)):
            items = item
            if type(item) is not tuple and isinstance(item, tuple) and not hasattr(item, "_make"):
                odd_tuples.append(item)
        else:
            continue
        key = id(item)
        if key in seen:
            continue
        seen.add(key)
        # Pushed in reverse so they are popped, and found, first to last.
        stack.extend([x for x in reversed(items) if isinstance(x, _SEARCHED)])
    return found, odd_tuples


def _nested(lazy: LazyResult[Any], where: int | str, value: Any) -> list[LazyResult[Any]]:
    """The LazyResults inside one argument, after checking that every tuple subclass holding
    one can be rebuilt with results in their place (so a run never fails half-way on it)."""
    inner, odd_tuples = _scan(value)
    for container in odd_tuples:
        if _contains_lazy(container):
            try:
                _rebuild_tuple(container, list(container))
            except TypeError as exc:
                label = f"argument {where}" if isinstance(where, int) else f"argument '{where}'"
                raise TypeError(f"task '{lazy.name}': {label}: {exc}") from exc.__cause__
    return inner


@dataclass(slots=True)
class Node:
    """One graph node. Top-level upstream results go to positional argument
    ``arg_positions[k]`` from node ``arg_inputs[k]``, and to ``kwarg_slots`` (name, node);
    ``nested`` lists arguments holding containers with LazyResults inside.

    Positions and inputs are two tuples of ints rather than a tuple of pairs: fewer objects
    per node for the garbage collector, and the positions of a call whose arguments are all
    LazyResults are one shared tuple (``benchmarks/bench_mixed.py``)."""

    index: int
    lazy: LazyResult[Any]
    kind: int
    deps: tuple[int, ...]
    arg_positions: tuple[int, ...] = ()
    arg_inputs: tuple[int, ...] = ()
    kwarg_slots: tuple[tuple[str, int], ...] = ()
    nested_args: tuple[int, ...] = ()
    nested_kwargs: tuple[str, ...] = ()
    condition: int = -1
    value_deps: tuple[int, ...] = ()
    # A tuple of ints: once built, the garbage collector stops tracking it, which keeps
    # collections during a wide run short.
    dependents: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.lazy.name


@dataclass(slots=True)
class Graph:
    """Nodes in topological order (every node after its dependencies)."""

    nodes: list[Node]
    index_of: dict[int, int]
    targets: list[int]

    def __len__(self) -> int:
        return len(self.nodes)

    def index(self, lazy: LazyResult[Any]) -> int:
        return self.index_of[id(lazy)]


_new = object.__new__


def _plain_node(
    index: int,
    lazy: LazyResult[Any],
    deps: tuple[int, ...],
    arg_positions: tuple[int, ...],
    arg_inputs: tuple[int, ...],
) -> Node:
    """``Node(index, lazy, KIND_TASK, deps, arg_positions, arg_inputs, value_deps=deps)``
    for the plain calls ``build_graph`` makes inline (no keywords, nesting, condition or
    ``after``; dependents filled in later).

    Calling the dataclass goes through ``type.__call__``: a tuple of the arguments, then
    ``__init__`` called from C, about 0.1 µs more per node than these slot stores (the
    graph-build row of ``benchmarks/run.py``)."""
    node: Node = _new(Node)
    node.index = index
    node.lazy = lazy
    node.kind = KIND_TASK
    node.deps = deps
    node.arg_positions = arg_positions
    node.arg_inputs = arg_inputs
    node.kwarg_slots = ()
    node.nested_args = ()
    node.nested_kwargs = ()
    node.condition = -1
    node.value_deps = deps
    node.dependents = ()
    return node


def direct_dependencies(lazy: LazyResult[Any]) -> list[LazyResult[Any]]:
    """Upstream LazyResults of one node: arguments (nested too), its condition, ``after``."""
    deps: list[LazyResult[Any]] = []
    for value in lazy.args:
        if isinstance(value, LazyResult):
            deps.append(value)
        elif isinstance(value, _CONTAINERS):
            deps.extend(_contains_lazy(value))
    for value in lazy.kwargs.values():
        if isinstance(value, LazyResult):
            deps.append(value)
        elif isinstance(value, _CONTAINERS):
            deps.extend(_contains_lazy(value))
    if isinstance(lazy.condition, LazyResult):
        deps.append(lazy.condition)
    deps.extend(lazy.after_deps)
    return deps


def _make_node(lazy: LazyResult[Any], index: int, index_of: dict[int, int]) -> Node:
    if isinstance(lazy, Param):
        return Node(index, lazy, KIND_PARAM, ())
    if (
        not lazy.args
        and not lazy.kwargs
        and not lazy.after_deps
        and type(lazy) is LazyResult
        and not isinstance(lazy.condition, LazyResult)
    ):
        return Node(index, lazy, KIND_TASK, ())
    arg_positions: list[int] = []
    arg_inputs: list[int] = []
    nested_args: list[int] = []
    value_deps: list[int] = []
    for pos, value in enumerate(lazy.args):
        if isinstance(value, LazyResult):
            arg_positions.append(pos)
            arg_inputs.append(index_of[id(value)])
        elif isinstance(value, _CONTAINERS) and (inner := _nested(lazy, pos, value)):
            nested_args.append(pos)
            value_deps += [index_of[id(x)] for x in inner]
    kwarg_slots: list[tuple[str, int]] = []
    nested_kwargs: list[str] = []
    for key, value in lazy.kwargs.items():
        if isinstance(value, LazyResult):
            kwarg_slots.append((key, index_of[id(value)]))
        elif isinstance(value, _CONTAINERS) and (inner := _nested(lazy, key, value)):
            nested_kwargs.append(key)
            value_deps += [index_of[id(x)] for x in inner]
    value_deps.extend(arg_inputs)
    value_deps.extend(d for _, d in kwarg_slots)
    condition = -1
    if isinstance(lazy.condition, LazyResult):
        condition = index_of[id(lazy.condition)]
        value_deps.append(condition)
    values = tuple(set(value_deps))
    if lazy.after_deps:
        deps = set(value_deps)
        deps.update(index_of[id(x)] for x in lazy.after_deps)
        all_deps = tuple(deps)
    else:  # the same set, so the same order: one tuple serves as both
        all_deps = values
    kind = KIND_MAP if isinstance(lazy, MappedLazyResult) else KIND_TASK
    return Node(
        index,
        lazy,
        kind,
        all_deps,
        tuple(arg_positions),
        tuple(arg_inputs),
        tuple(kwarg_slots),
        tuple(nested_args),
        tuple(nested_kwargs),
        condition,
        values,
    )


# Stack entries of ``build_graph``: a LazyResult not visited yet, one whose inputs are pushed,
# to be made into a node once they are (by the fast path or by ``_make_node``), or a run of
# one-input calls (a chain's steps, last first), made once the call they start from is.
_VISIT = 0
_MAKE_PLAIN = 1
_MAKE_GENERAL = 2
_MAKE_RUN = 3
# ``index_of`` holds this for a node whose inputs are still being visited: meeting it again
# before it is made means the graph has a cycle.
_OPEN = -1
#: Inputs from which a call counts as a fan-in, whose leading leaves ``build_graph`` makes
#: at once (fewer, and the test would cost more than the stack entries it saves).
_FAN_IN = 8
#: ``arg_positions`` of calls whose arguments are all LazyResults, shared by every such node.
_POSITIONS = [tuple(range(count)) for count in range(17)]


def _plain_inputs(lazy: Any) -> int:
    """How many LazyResults a plain call (a ``LazyResult`` with positional arguments only, no
    condition, no ``after``) takes as top-level arguments; -1 when an argument is a container
    (which may hold some) or the call is not plain."""
    if (
        type(lazy) is not LazyResult
        or lazy.kwargs
        or lazy.after_deps
        or lazy.condition is not MISSING
    ):
        return -1
    inputs = 0
    for value in lazy.args:
        if isinstance(value, LazyResult):
            inputs += 1
        elif isinstance(value, _CONTAINERS):
            return -1
    return inputs


def build_graph(targets: list[LazyResult[Any]]) -> Graph:
    """Collect every node reachable from ``targets`` (shared LazyResults once) in topological
    order, with each node's dependents filled in.

    Graph building is the largest cost Cascade adds on top of the event loop on long chains
    and wide fan-outs (``benchmarks/run.py``: the graph-build row, and the fan-outs and the
    chain, which time building as users pay it), so the shapes almost every call has are made
    inline here; every other shape goes through ``_make_node``, as ``extend_graph`` makes all
    of them (``tests/core/graph/test_graph_build_paths.py`` checks the two agree):

    - a plain call whose arguments are all plain values (a fan-out's leaves) is made at once;
    - a chain of plain one-input calls is walked down in one loop and made back up in one,
      with no stack entry per step, and one tuple per step serving as the step's inputs and
      as the dependents of the step before it;
    - a plain call whose inputs are LazyResults passed positionally (the mixed DAG's nodes)
      is made without building a list of its inputs.

    Objects per node matter as much as steps: the collector's passes during a build are
    paid per object allocated, and its full pass per object alive.
    """
    index_of: dict[int, int] = {}
    nodes: list[Node] = []
    # Per node: None, the one node that takes it as an input, or a list of them. A chain's
    # steps hold the next step from the start, their ``Node.dependents`` set already.
    dependents: list[int | list[int] | None] = []
    # The nodes whose ``dependents`` entry was set or grown by the loop below (some twice):
    # the ones whose ``Node.dependents`` the end of the build fills in.
    touched: list[int] = []
    # Pairs of entries (LazyResult or run, step), pushed flat: no tuple per visit.
    stack: list[Any] = []
    for target in reversed(targets):
        stack += (target, _VISIT)
    pop, push = stack.pop, stack.append
    steps = _POSITIONS[1]
    while stack:
        step = pop()
        lazy = pop()
        if step == _VISIT:
            key = id(lazy)
            state = index_of.get(key)
            if state is not None:
                if state == _OPEN:
                    raise ValueError(f"the graph has a cycle through {lazy!r}")
                continue
            # ``_plain_inputs(lazy)``, inline: this runs once per node.
            inputs = -1
            if (
                type(lazy) is LazyResult
                and not lazy.kwargs
                and not lazy.after_deps
                and lazy.condition is MISSING
            ):
                inputs = 0
                for value in lazy.args:
                    if isinstance(value, LazyResult):
                        inputs += 1
                    elif isinstance(value, _CONTAINERS):
                        inputs = -1
                        break
            if inputs == 0:
                # Plain values only (a fan-out's leaves): made at once.
                index = len(nodes)
                index_of[key] = index
                nodes.append(_plain_node(index, lazy, (), (), ()))
                dependents.append(None)
                continue
            args = lazy.args
            if inputs == 1 and len(args) == 1:
                # A chain: walk down its unvisited steps, then make them in one loop once
                # the call the run starts from is made.
                index_of[key] = _OPEN
                run = [lazy]
                upstream = args[0]
                state = index_of.get(id(upstream))
                # The steps below the first are not marked open (a dictionary entry each, a
                # tenth of a microsecond per step): nothing reaches them before they are made
                # but through a cycle, which meets the first step or the open call the run
                # starts from, or, if it lies within the run, Brent's check: ``upstream``
                # comes back to ``tortoise``, moved down the run at every power of two.
                tortoise = lazy
                limit = 2
                # While the call met is a chain's step (as ``_plain_inputs`` would say, inline:
                # this runs once per step).
                while (
                    state is None
                    and type(upstream) is LazyResult
                    and len(step_args := upstream.args) == 1
                    and isinstance(step_args[0], LazyResult)
                    and not upstream.kwargs
                    and not upstream.after_deps
                    and upstream.condition is MISSING
                ):
                    run.append(upstream)
                    upstream = step_args[0]
                    if upstream is tortoise:
                        raise ValueError(f"the graph has a cycle through {upstream!r}")
                    if len(run) == limit:
                        tortoise = upstream
                        limit *= 2
                    state = index_of.get(id(upstream))
                if state == _OPEN:
                    raise ValueError(f"the graph has a cycle through {upstream!r}")
                push(run)
                push(_MAKE_RUN)
                if state is None:
                    push(upstream)
                    push(_VISIT)
                continue
            if inputs > 0:
                step = _MAKE_PLAIN
                deps: list[Any] = [value for value in args if isinstance(value, LazyResult)]
            else:
                step = _MAKE_GENERAL
                deps = direct_dependencies(lazy)
            # Inputs not made yet are made first, in the order they are passed. For a fan-in
            # (many inputs), leading ones with plain values only are made here, without a
            # stack entry each; from the first other one on, they are pushed, and the call is
            # made once they are.
            fan_in = len(deps) >= _FAN_IN
            waiting: list[Any] | None = None
            for dep in deps:
                state = index_of.get(id(dep))
                if state is None:
                    if waiting is None:
                        if fan_in and _plain_inputs(dep) == 0:
                            index = len(nodes)
                            index_of[id(dep)] = index
                            nodes.append(_plain_node(index, dep, (), (), ()))
                            dependents.append(None)
                            continue
                        waiting = []
                    waiting.append(dep)
                elif state == _OPEN:
                    raise ValueError(f"the graph has a cycle through {dep!r}")
            if waiting is not None:
                # Made when its inputs are: below them on the stack.
                index_of[key] = _OPEN
                push(lazy)
                push(step)
                for dep in reversed(waiting):
                    push(dep)
                    push(_VISIT)
                continue
            # Every input is made already: made at once.
        if step == _MAKE_RUN:
            # ``lazy`` is the run, last step first: each step's input is the step before,
            # each step's dependent (so far) the step after.
            first = index = len(nodes)
            upstream_index = index_of[id(lazy[-1].args[0])]
            inputs_tuple: tuple[int, ...] = (upstream_index,)
            previous: Node | None = None
            for call in reversed(lazy):
                index_of[id(call)] = index
                node = _plain_node(index, call, inputs_tuple, steps, inputs_tuple)
                nodes.append(node)
                inputs_tuple = (index,)
                if previous is not None:
                    previous.dependents = inputs_tuple
                previous = node
                index += 1
            dependents.extend(range(first + 1, index))
            dependents.append(None)
            known = dependents[upstream_index]
            if known is None:
                dependents[upstream_index] = first
                touched.append(upstream_index)
            elif type(known) is int:
                dependents[upstream_index] = [known, first]
                touched.append(upstream_index)
            else:
                known.append(first)  # type: ignore[union-attr]
            continue
        index = len(nodes)
        if step == _MAKE_PLAIN:
            args = lazy.args
            arg_inputs = tuple([index_of[id(v)] for v in args if isinstance(v, LazyResult)])
            count = len(arg_inputs)
            if len(set(arg_inputs)) == count:
                inputs_tuple = arg_inputs
            else:  # an input passed twice is waited for once
                inputs_tuple = tuple(dict.fromkeys(arg_inputs))
            if count == len(args) and count < len(_POSITIONS):
                arg_positions = _POSITIONS[count]
            else:
                arg_positions = tuple(
                    [pos for pos, v in enumerate(args) if isinstance(v, LazyResult)]
                )
            node = _plain_node(index, lazy, inputs_tuple, arg_positions, arg_inputs)
        else:
            node = _make_node(lazy, index, index_of)
        index_of[id(lazy)] = index
        nodes.append(node)
        dependents.append(None)
        # The same bookkeeping as the chain's above, written out in both places: a function
        # call per edge would cost more than these lines (graph-build row of benchmarks/run.py).
        for upstream_index in node.deps:
            known = dependents[upstream_index]
            if known is None:
                dependents[upstream_index] = index
                touched.append(upstream_index)
            elif type(known) is int:
                dependents[upstream_index] = [known, index]
                touched.append(upstream_index)
            else:
                known.append(index)  # type: ignore[union-attr]
    # A node's dependents as a tuple. The nodes that feed one node (a fan-out's leaves, made
    # one after another) share one tuple, so a wide fan-in allocates one instead of one each.
    # An entry is cleared once used, so a node touched twice is filled in once.
    last: Any = None
    shared: tuple[int, ...] = ()
    for upstream_index in touched:
        known = dependents[upstream_index]
        if known is None:
            continue
        dependents[upstream_index] = None
        if type(known) is int:
            if known != last:
                last, shared = known, (known,)  # type: ignore[assignment]
            nodes[upstream_index].dependents = shared
        else:
            nodes[upstream_index].dependents = tuple(known)  # type: ignore[arg-type]
    return Graph(nodes, index_of, [index_of[id(t)] for t in targets])


def resolve_nested(value: Any, results: Sequence[Any], index_of: dict[int, int]) -> Any:
    """Rebuild a container, replacing each LazyResult inside it with its result.

    Containers without LazyResults inside are passed through as the same object, so literals
    reach the task untouched. Iterative (no recursion, however deep the nesting); a container
    that appears several times is rebuilt once and shared the same way in the copy, and lists
    and dicts that contain themselves are rebuilt with the same cycle. Lists and dicts come
    back as plain ``list`` and ``dict``; tuples keep their class (named tuples too). A tuple
    subclass that cannot be rebuilt from its items raises a ``TypeError`` naming it.
    """
    if isinstance(value, LazyResult):
        return results[index_of[id(value)]]
    if not isinstance(value, _CONTAINERS):
        return value
    flat = _resolve_flat(value, results, index_of)
    if flat is not _NOT_FLAT:
        return flat
    return _Rebuild(results, index_of).run(value)


_NOT_FLAT: Any = object()


def _resolve_flat(value: Any, results: Sequence[Any], index_of: dict[int, int]) -> Any:
    """The common case, a container of LazyResults and plain values with no container inside:
    one pass. ``_NOT_FLAT`` when it holds containers."""
    items = value.values() if isinstance(value, dict) else value
    found = False
    for item in items:
        if isinstance(item, LazyResult):
            found = True
        elif isinstance(item, _CONTAINERS):
            return _NOT_FLAT
    if not found:
        return value

    def swap(item: Any) -> Any:
        return results[index_of[id(item)]] if isinstance(item, LazyResult) else item

    if isinstance(value, dict):
        return {k: swap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [swap(v) for v in value]
    return _rebuild_tuple(value, [swap(v) for v in value])


class _Rebuild:
    """``resolve_nested`` for containers holding containers: find every container reachable
    (once each), mark those with a LazyResult somewhere below, and rebuild only those."""

    def __init__(self, results: Sequence[Any], index_of: dict[int, int]) -> None:
        self.results = results
        self.index_of = index_of

    def run(self, root: Any) -> Any:
        containers: dict[int, Any] = {}
        parents: dict[int, list[int]] = {}
        holders: list[int] = []
        stack = [root]
        containers[id(root)] = root
        while stack:
            container = stack.pop()
            key = id(container)
            direct = False
            for item in container.values() if isinstance(container, dict) else container:
                if isinstance(item, LazyResult):
                    direct = True
                elif isinstance(item, _CONTAINERS):
                    child = id(item)
                    parents.setdefault(child, []).append(key)
                    if child not in containers:
                        containers[child] = item
                        stack.append(item)
            if direct:
                holders.append(key)
        # A container is rebuilt if a LazyResult is reachable from it: walk up from holders.
        rebuilt: set[int] = set(holders)
        while holders:
            for parent in parents.get(holders.pop(), ()):
                if parent not in rebuilt:
                    rebuilt.add(parent)
                    holders.append(parent)
        if id(root) not in rebuilt:
            return root
        # Lists and dicts are made empty first (so cycles through them close), tuples once
        # their items exist (children first: tuples alone cannot form a cycle), and the
        # lists and dicts are filled last.
        made: dict[int, Any] = {}
        for key in rebuilt:
            container = containers[key]
            if isinstance(container, list):
                made[key] = []
            elif isinstance(container, dict):
                made[key] = {}
        for key in self._tuples_children_first(rebuilt, containers):
            container = containers[key]
            made[key] = _rebuild_tuple(container, [self._swap(x, made, rebuilt) for x in container])
        for key in rebuilt:
            container = containers[key]
            if isinstance(container, list):
                made[key].extend(self._swap(x, made, rebuilt) for x in container)
            elif isinstance(container, dict):
                target = made[key]
                for k, v in container.items():
                    target[k] = self._swap(v, made, rebuilt)
        return made[id(root)]

    def _swap(self, item: Any, made: dict[int, Any], rebuilt: set[int]) -> Any:
        if isinstance(item, LazyResult):
            return self.results[self.index_of[id(item)]]
        if isinstance(item, _CONTAINERS) and id(item) in rebuilt:
            return made[id(item)]
        return item

    @staticmethod
    def _tuples_children_first(rebuilt: set[int], containers: dict[int, Any]) -> list[int]:
        order: list[int] = []
        placed: set[int] = set()
        for start in rebuilt:
            if start in placed or not isinstance(containers[start], tuple):
                continue
            stack: list[tuple[int, bool]] = [(start, False)]
            while stack:
                key, expanded = stack.pop()
                if expanded:
                    if key not in placed:
                        placed.add(key)
                        order.append(key)
                    continue
                if key in placed:
                    continue
                stack.append((key, True))
                for item in containers[key]:
                    child = id(item)
                    if isinstance(item, tuple) and child in rebuilt and child not in placed:
                        stack.append((child, False))
        return order


def _rebuild_tuple(original: tuple[Any, ...], items: list[Any]) -> tuple[Any, ...]:
    """A tuple of ``original``'s class holding ``items``: a named tuple through ``_make``,
    another subclass through its constructor, checked to hold exactly ``items``."""
    kind = type(original)
    if kind is tuple:
        return tuple(items)
    try:
        make = getattr(kind, "_make", None)
        rebuilt = make(items) if callable(make) else kind(items)
    except Exception as exc:
        raise TypeError(
            f"an argument of type {kind.__module__}.{kind.__qualname__} (a tuple subclass) "
            f"holds a LazyResult, and it cannot be rebuilt with the result in its place: "
            f"{kind.__qualname__}(items) raised {type(exc).__name__}: {exc}. Pass a plain "
            "tuple or list, or give the class a constructor that takes one iterable."
        ) from exc
    if (
        not isinstance(rebuilt, kind)
        or len(rebuilt) != len(items)
        or any(a is not b for a, b in zip(rebuilt, items, strict=True))
    ):
        raise TypeError(
            f"an argument of type {kind.__module__}.{kind.__qualname__} (a tuple subclass) "
            f"holds a LazyResult, and {kind.__qualname__}(items) does not rebuild it with the "
            "result in its place. Pass a plain tuple or list, or give the class a "
            "constructor that takes one iterable."
        )
    return rebuilt  # type: ignore[no-any-return]


__all__ = ["KIND_MAP", "KIND_PARAM", "KIND_TASK", "Graph", "Node", "build_graph", "resolve_nested"]
