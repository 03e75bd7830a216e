"""Dynamic workflows: tasks that return graphs, and runs that keep going past a failure.

Counters recorded inside tasks say what ran; nothing waits on time."""

from __future__ import annotations

import collections
import pickle
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import cascade as cs
from cascade.caching import CacheContext, CacheWarning
from cascade.events import (
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskSkipped,
)

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:
    from exceptiongroup import ExceptionGroup

pytestmark = pytest.mark.timeout(120)

ran: collections.Counter[str] = collections.Counter()
lock = threading.Lock()
api_up = {"value": False}  # whether fetch_remote's API answers


def mark(name: str) -> None:
    with lock:
        ran[name] += 1


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    ran.clear()
    api_up["value"] = False
    yield


# Module-level tasks, so the processes executor can find them by name.


@cs.task
def load_fast(x: int) -> str:
    mark("fast")
    return f"fast:{x}"


@cs.task
def load_chunked(x: int) -> str:
    mark("chunked")
    return f"chunked:{x}"


@cs.task
def route(x: int) -> Any:
    mark("route")
    return load_fast(x) if x < 10 else load_chunked(x)


@cs.task
async def route_async(x: int) -> Any:
    mark("route")
    return load_fast(x) if x < 10 else load_chunked(x)


@cs.task
def poll(n: int) -> Any:
    mark("poll")
    return "ready" if n >= 3 else poll(n + 1)


@cs.task
def read_manifest(count: int) -> list[str]:
    return [f"file{i}" for i in range(count)]


@cs.task
def parse(name: str) -> dict[str, Any]:
    mark("parse")
    return {"name": name, "size": len(name)}


@cs.task
def enrich(record: dict[str, Any]) -> dict[str, Any]:
    mark("enrich")
    return {**record, "big": record["size"] > 5}


@cs.task
def fan_out(files: list[str]) -> list[Any]:
    return [enrich(parse(name)) for name in files]  # a small pipeline per file


@cs.task
def summarize(records: list[dict[str, Any]]) -> int:
    return sum(r["size"] for r in records)


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_a_branch_chosen_at_run_time_runs_only_that_branch(executor: str) -> None:
    assert cs.run([route(3), route(30)], executor=executor, log_level=None) == [
        "fast:3",
        "chunked:30",
    ]
    if executor != "processes":  # counters live in this process
        assert ran == {"route": 2, "fast": 1, "chunked": 1}


def test_an_async_task_can_return_a_branch() -> None:
    assert cs.run(route_async(4), log_level=None) == "fast:4"
    assert ran == {"route": 1, "fast": 1}


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_loops_by_returning_a_call_of_itself(executor: str) -> None:
    assert cs.run(poll(0), executor=executor, log_level=None) == "ready"
    if executor != "processes":
        assert ran["poll"] == 4


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_dynamic_fan_out_of_small_pipelines_feeds_a_static_task(executor: str) -> None:
    records = fan_out(read_manifest(4))
    assert cs.run(summarize(records), executor=executor, log_level=None) == 4 * 5
    if executor != "processes":
        assert ran == {"parse": 4, "enrich": 4}


def test_a_subflow_is_a_function_that_builds_a_graph_called_from_a_task() -> None:
    def cleaning_subflow(name: str) -> cs.LazyResult[dict[str, Any]]:
        return enrich(parse(name))

    @cs.task
    def each(names: list[str]) -> dict[str, Any]:
        return {name: cleaning_subflow(name) for name in names}

    result = cs.run(each(["ab", "abcdefg"]), log_level=None)
    assert result == {
        "ab": {"name": "ab", "size": 2, "big": False},
        "abcdefg": {"name": "abcdefg", "size": 7, "big": True},
    }


def test_a_lazy_result_runs_once_whether_static_or_returned() -> None:
    shared = parse("shared")

    @cs.task
    def returns_shared(_: Any) -> Any:
        return [shared, shared, (shared,)]

    result = cs.run([returns_shared(shared), shared], log_level=None)
    record = {"name": "shared", "size": 6}
    assert result == [[record, record, (record,)], record]
    assert ran["parse"] == 1


def test_tail_recursion_100000_levels_deep() -> None:
    @cs.task
    def countdown(n: int) -> Any:
        return n if n == 0 else countdown(n - 1)

    assert cs.run(countdown(100_000), log_level=None) == 0


def test_a_param_inside_a_returned_graph_takes_the_run_value() -> None:
    region = cs.Param("region", default="north")

    @cs.task
    def label(prefix: str, where: str) -> str:
        return f"{prefix}-{where}"

    @cs.task
    def build(prefix: str) -> Any:
        return label(prefix, region)

    assert cs.run([build("a"), label("b", region)], params={"region": "south"}, log_level=None) == [
        "a-south",
        "b-south",
    ]


def test_added_tasks_have_events_naming_the_task_that_returned_them() -> None:
    bus = cs.MessageBus()
    started: list[TaskExecutionStarted] = []
    finished: list[TaskExecutionFinished] = []
    bus.subscribe(TaskExecutionStarted, started.append)
    bus.subscribe(TaskExecutionFinished, finished.append)
    target = route(3)
    assert cs.run(target, bus=bus, log_level=None) == "fast:3"
    parents = {e.task_name: e.parent_task_id for e in started}
    assert parents == {"route": None, "load_fast": target.id}
    by_name = {e.task_name: e for e in finished}
    assert by_name["route"].returned_graph and not by_name["load_fast"].returned_graph
    assert by_name["load_fast"].parent_task_id == target.id


def test_a_parents_timeout_bounds_its_function_not_the_returned_graph() -> None:
    release = threading.Event()

    @cs.task
    def slow_child() -> str:
        release.wait(30)
        return "child done"

    @cs.task(timeout=0.5)
    async def parent() -> Any:
        return slow_child()

    bus = cs.MessageBus()
    # The child is released only after the parent's own attempt ended well.
    bus.subscribe(
        TaskExecutionFinished,
        lambda e: release.set() if e.task_name == "parent" and e.status == "Succeeded" else None,
    )
    assert cs.run(parent(), bus=bus, log_level=None) == "child done"


def test_a_parents_retries_rerun_its_function() -> None:
    attempts = {"n": 0}

    @cs.task(retries=2)
    def flaky_parent() -> Any:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError("try again")
        return parse("abc")

    assert cs.run(flaky_parent(), log_level=None) == {"name": "abc", "size": 3}
    assert attempts["n"] == 3 and ran["parse"] == 1


def test_a_parents_cache_stores_the_graph_it_returned(tmp_path: Any) -> None:
    cache = cs.InputHashCache(store=cs.caching.DirectoryStore(tmp_path))

    @cs.task(cache=cache)
    def cached_parent(name: str) -> Any:
        mark("cached_parent")
        return enrich(parse(name))

    first = cs.run(cached_parent("xyz"), log_level=None)
    second = cs.run(cached_parent("xyz"), log_level=None)
    assert first == second == {"name": "xyz", "size": 3, "big": False}
    # The parent's cache skips its own body; the tasks it returned run under their own
    # policies, and they have no cache here.
    assert ran == {"cached_parent": 1, "parse": 2, "enrich": 2}


@cs.task(cache=cs.InputHashCache())  # the default store: $CASCADE_CACHE_DIR
def parse_cached(name: str) -> dict[str, Any]:
    mark("parse")
    return {"name": name, "size": len(name)}


@cs.task(cache=cs.InputHashCache())
def enrich_cached(record: dict[str, Any]) -> dict[str, Any]:
    mark("enrich")
    return {**record, "big": record["size"] > 5}


def test_the_tasks_a_cached_parent_returned_skip_with_caches_of_their_own(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASCADE_CACHE_DIR", str(tmp_path))

    @cs.task(cache=cs.InputHashCache())
    def cached_all(name: str) -> Any:
        mark("cached_all")
        return enrich_cached(parse_cached(name))

    expected = {"name": "xyzzy", "size": 5, "big": False}
    assert cs.run(cached_all("xyzzy"), log_level=None) == expected
    assert cs.run(cached_all("xyzzy"), log_level=None) == expected
    assert ran == {"cached_all": 1, "parse": 1, "enrich": 1}


def test_a_returned_graph_that_cannot_be_pickled_is_not_cached_and_says_why(tmp_path: Any) -> None:
    cache = cs.InputHashCache(store=cs.caching.DirectoryStore(tmp_path))

    @cs.task
    def local_child(x: int) -> int:  # defined in a function: not importable by name
        mark("local_child")
        return x + 1

    @cs.task(cache=cache)
    def parent_of_local(x: int) -> Any:
        mark("parent_of_local")
        return local_child(x)

    for _ in range(2):
        with pytest.warns(CacheWarning, match="the graph it returned was not cached") as w:
            assert cs.run(parent_of_local(1), log_level=None) == 2
        assert "must be importable by name" in str(w[0].message)
    assert ran == {"parent_of_local": 2, "local_child": 2}


def test_a_returned_call_travels_pickled_with_its_cache_policy() -> None:
    # How a cached or checkpointed graph is stored, and how a worker ships one back.
    call = enrich_cached(parse_cached("ab"))
    copy = pickle.loads(pickle.dumps(call))
    assert copy.task is enrich_cached and copy.id != call.id
    assert copy.cache is enrich_cached.cache  # the task's own policy, not a copy of it
    own = cs.InputHashCache(store="memory", version=3)
    moved = pickle.loads(pickle.dumps(parse_cached("ab").with_cache(own)))
    assert isinstance(moved.cache, cs.InputHashCache) and moved.cache is not own
    context = CacheContext(parse_cached, "parse_cached-1", ("ab",), {})
    assert moved.cache.key_for(context) == own.key_for(context) is not None


@cs.task
def fetch_remote(n: int) -> int:
    mark("fetch_remote")
    if not api_up["value"]:
        raise ConnectionError("the API is down")
    return n * 100


@cs.task
def maybe_value(x: int) -> int:
    mark("maybe_value")
    return x


@cs.task
def after_value(value: Any) -> Any:
    mark("after_value")
    return ("after", value)


def test_a_fallback_inside_a_cached_parents_graph_is_not_cached(tmp_path: Any) -> None:
    cache = cs.InputHashCache(store=cs.caching.DirectoryStore(tmp_path))

    @cs.task(cache=cache)
    def via_remote(n: int) -> Any:
        mark("via_remote")
        return fetch_remote(n).with_fallback(-1)

    assert cs.run(via_remote(7), log_level=None) == -1
    api_up["value"] = True
    assert cs.run(via_remote(7), log_level=None) == 700  # the API is back: fetch runs again
    assert ran == {"via_remote": 1, "fetch_remote": 2}


def test_a_cache_never_changes_what_a_returned_call_skips(tmp_path: Any) -> None:
    # A task that returns a call whose condition is false is skipped, and so is what depends
    # on it, with a cache on the task or not (a cache hit included).
    cache = cs.InputHashCache(store=cs.caching.DirectoryStore(tmp_path))

    @cs.task
    def never(x: int) -> Any:
        mark("never")
        return maybe_value(x).run_if(False)

    outcomes = []
    for policy in (None, cache, cache):
        ran.clear()
        first, second = (never(x).with_cache(policy) for x in (1, 2))
        value = cs.run([first, after_value(second)], log_level=None)
        outcomes.append((value, dict(ran)))
    assert outcomes == [
        ([None, None], {"never": 2}),
        ([None, None], {"never": 2}),
        ([None, None], {}),  # both parents from the cache, and still skipped
    ]


def test_a_returned_graph_that_needs_its_parent_fails_naming_it() -> None:
    holder: dict[str, Any] = {}

    @cs.task
    def selfish() -> Any:
        return parse.map([holder["me"]])

    holder["me"] = me = selfish()
    with pytest.raises(ValueError, match="selfish"):
        cs.run(me, log_level=None)


def test_map_items_may_return_graphs() -> None:
    @cs.task
    def item(n: int) -> Any:
        return parse(f"n{n}") if n % 2 else n

    assert cs.run(item.map([1, 2, 3]), log_level=None) == [
        {"name": "n1", "size": 2},
        2,
        {"name": "n3", "size": 2},
    ]


# -- runs that survive a failure ---------------------------------------------------------------


@cs.task
def ok(x: Any) -> Any:
    mark(f"ok{x}")
    return x


@cs.task
def boom(x: Any) -> Any:
    mark(f"boom{x}")
    raise ValueError(f"bad {x}")


@cs.task
def after(x: Any) -> Any:
    mark("after")
    return x


def test_continue_runs_every_independent_branch_and_raises_run_failed() -> None:
    bus = cs.MessageBus()
    skipped: list[TaskSkipped] = []
    bus.subscribe(TaskSkipped, skipped.append)
    failing = boom(2)
    with pytest.raises(cs.RunFailed) as raised:
        cs.run(
            {"a": ok(1), "b": failing, "c": after(failing), "d": ok(ok(4))},
            on_failure="continue",
            bus=bus,
            log_level=None,
        )
    error = raised.value
    assert isinstance(error, ExceptionGroup)
    assert list(error.failures) == [failing.id]
    assert isinstance(error.failures[failing.id], ValueError)
    assert error.exceptions == (error.failures[failing.id],)
    assert error.results == {"a": 1, "b": None, "c": None, "d": 4}
    assert ran["after"] == 0 and ran["ok4"] == 2
    assert [(e.task_name, e.reason, e.upstream) for e in skipped] == [
        ("after", "UpstreamFailed", failing.id)
    ]


def test_stop_is_the_default_and_raises_the_first_failure() -> None:
    with pytest.raises(ValueError, match="bad 1"):
        cs.run([boom(1), after(boom(1))], log_level=None)


def test_on_failure_must_be_stop_or_continue() -> None:
    with pytest.raises(ValueError, match="on_failure must be 'stop' or 'continue'"):
        cs.run(ok(1), on_failure="ignore", log_level=None)


def test_a_fallback_value_lets_the_run_go_on() -> None:
    bus = cs.MessageBus()
    finished: list[TaskExecutionFinished] = []
    bus.subscribe(TaskExecutionFinished, finished.append)
    value = cs.run(after(boom(1).with_retry(1).with_fallback("default")), bus=bus, log_level=None)
    assert value == "default" and ran["boom1"] == 2
    failed = [e for e in finished if e.status == "Failed"]
    assert [(e.attempt, e.will_retry, e.fell_back) for e in failed] == [
        (1, True, False),
        (2, False, True),
    ]


def test_map_with_several_failing_items_reports_all_of_them_when_continuing() -> None:
    @cs.task
    def check(i: int) -> int:
        if i % 2:
            raise ValueError(f"item {i}")
        return i

    mapped = check.map(range(6))
    with pytest.raises(cs.RunFailed) as raised:
        cs.run([mapped, ok(7)], on_failure="continue", log_level=None)
    assert sorted(raised.value.failures) == [f"{mapped.id}[{k}]" for k in (1, 3, 5)]
    assert raised.value.results == [None, 7]
    with pytest.raises(ValueError, match="item 1"):
        cs.run(mapped, log_level=None)


def test_a_failure_inside_a_returned_graph_fails_the_parent_branch_only() -> None:
    @cs.task
    def parent() -> Any:
        return [ok(1), boom(3)]

    with pytest.raises(cs.RunFailed) as raised:
        cs.run([after(parent()), ok(5)], on_failure="continue", log_level=None)
    assert list(raised.value.failures) and all(
        isinstance(e, ValueError) for e in raised.value.failures.values()
    )
    assert raised.value.results == [None, 5] and ran["after"] == 0


def test_views_mark_only_tasks_declared_dynamic() -> None:
    @cs.task(dynamic=True)
    def declared(x: int) -> Any:
        return load_fast(x)

    graph = [declared(1), route(2)]
    dot = cs.visualize(graph)
    assert 'label="declared [dynamic]"' in dot and 'label="route"' in dot
    assert "declared [dynamic]" in cs.visualize(graph, format="mermaid")
    steps = {step["task"]: step["dynamic"] for step in cs.graph.plan(graph)}
    assert steps == {"declared": True, "route": False}
    assert cs.run(graph, log_level=None) == ["fast:1", "fast:2"], "the same behaviour"
    with pytest.raises(TypeError, match="dynamic= takes True or False"):
        cs.task(dynamic="yes")(lambda: None)  # type: ignore[call-overload]
