"""The user's API: tasks, arguments, targets and the run facades."""

import asyncio
import inspect
from collections import namedtuple
from collections.abc import Iterator
from typing import Any

import pytest
from core_helpers import add

import cascade as cs


@cs.task(name="custom-name")
async def async_add(a, b):
    await asyncio.sleep(0)
    return a + b


def test_calling_a_task_builds_a_lazy_result_and_runs_nothing():
    calls = []

    @cs.task
    def record(x):
        calls.append(x)
        return x

    lazy = record(1)
    assert isinstance(lazy, cs.LazyResult)
    assert calls == []
    assert cs.run(lazy, log_level=None) == 1
    assert calls == [1]


def test_undecorated_function_stays_reachable():
    assert add.fn(2, 3) == 5
    assert asyncio.run(async_add.fn(2, 3)) == 5
    assert async_add.name == "custom-name"
    assert add.__name__ == "add" and add.__doc__ is None


def test_a_task_wraps_its_function_as_update_wrapper_does() -> None:
    def tagged(fn: Any) -> Any:
        fn.tag = "kept"
        return fn

    @cs.task
    @tagged
    def documented(a: int, b: str = "x") -> int:
        """What it does."""
        return a

    assert documented.__name__ == "documented"
    assert documented.__qualname__.endswith("documented")
    assert documented.__doc__ == "What it does."
    assert documented.__module__ == __name__
    assert documented.__annotations__ == {"a": int, "b": str, "return": int}
    assert inspect.signature(documented) == inspect.signature(documented.__wrapped__)
    assert documented.tag == "kept"
    assert documented.__wrapped__ is documented.fn
    assert cs.run(documented(3), log_level=None) == 3


def test_sync_and_async_tasks_mix():
    assert cs.run(async_add(add(1, 2), add(3, 4)), log_level=None) == 10


def test_nested_lazy_results_in_lists_tuples_and_dicts_are_resolved():
    @cs.task
    def echo(*args, **kwargs):
        return args, kwargs

    Point = namedtuple("Point", "x y")
    lazy = echo(
        [add(1, 1), (add(2, 2), {"deep": [add(3, 3)]})],
        Point(add(0, 1), 7),
        key={"k": (add(4, 4),)},
    )
    args, kwargs = cs.run(lazy, log_level=None)
    assert args == ([2, (4, {"deep": [6]})], Point(1, 7))
    assert isinstance(args[1], Point)
    assert kwargs == {"key": {"k": (8,)}}


def test_literals_pass_through_untouched():
    payload = {"rows": [1, 2, 3]}
    marker = object()

    @cs.task
    def identity(value, other=None):
        return value, other

    value, other = cs.run(identity(payload, other=marker), log_level=None)
    assert value is payload
    assert other is marker


def test_a_shared_lazy_result_runs_once():
    runs = []

    @cs.task
    def source():
        runs.append(1)
        return 2

    s = source()
    assert cs.run(add(add(s, s), s), log_level=None) == 6
    assert runs == [1]


def test_targets_list_tuple_dict():
    assert cs.run([add(1, 1), add(2, 2)], log_level=None) == [2, 4]
    assert cs.run((add(1, 1),), log_level=None) == [2]
    assert cs.run({"a": add(1, 1), "b": add(2, 2)}, log_level=None) == {"a": 2, "b": 4}


@pytest.mark.parametrize("bad", [42, "add", None, [add(1, 2), 3]])
def test_bad_targets_raise_type_error_saying_what_was_given(bad):
    with pytest.raises(TypeError, match="LazyResult"):
        cs.run(bad, log_level=None)


def test_run_inside_a_running_loop_runs_and_run_async_shares_the_loop():
    # Inside a running loop cs.run runs on a private loop (tests/core/api/test_run_in_loop.py).
    async def main():
        return cs.run(add(1, 2), log_level=None), await cs.run_async(add(1, 2), log_level=None)

    assert asyncio.run(main()) == (3, 3)


def test_wrong_arguments_fail_where_the_call_is_written():
    with pytest.raises(TypeError, match="task 'add' got an unexpected argument 'c'"):
        add(1, 2, c=3)
    with pytest.raises(TypeError, match="task 'add' takes 2 positional"):
        add(1, 2, 3)
    with pytest.raises(TypeError, match="task 'add' is missing the argument 'b'"):
        add(1)


def test_lazy_results_refuse_truth_and_iteration():
    with pytest.raises(TypeError, match="run_if"):
        bool(add(1, 2))
    with pytest.raises(TypeError, match="map"):
        list(add(1, 2))


def test_engine_is_reusable_and_concurrent_runs_share_no_state():
    engine = cs.Engine()

    @cs.task
    async def slow_value(x):
        await asyncio.sleep(0.05)
        return x

    async def main():
        return await asyncio.gather(
            engine.run(add(slow_value(1), 1)), engine.run(add(slow_value(10), 1))
        )

    assert asyncio.run(main()) == [2, 11]
    assert asyncio.run(engine.run(add(1, 1))) == 2


def test_log_subscriber_logs_lines_and_log_level_quiets_it(caplog):
    # Under pytest the application (pytest) has configured logging, so the lines go to its
    # handlers through the `cascade` loggers; tests/core/events/test_events.py checks stderr.
    caplog.set_level("INFO", logger="cascade")
    cs.run(add(1, 2))
    text = caplog.text
    assert "add started" in text and "add succeeded" in text and "run" in text
    assert {r.name for r in caplog.records} == {"cascade.run", "cascade.task"}
    caplog.clear()
    cs.run(add(1, 2), log_level="WARNING")
    assert caplog.records == []


def test_log_subscriber_writes_to_a_given_stream():
    import io

    stream = io.StringIO()
    bus = cs.MessageBus()
    cs.HumanReadableLogSubscriber(bus, stream=stream, level="INFO")

    @cs.task
    def broken():
        raise KeyError("k")

    with pytest.raises(KeyError):
        asyncio.run(cs.Engine(bus=bus).run(broken()))
    text = stream.getvalue()
    assert "broken failed: KeyError: 'k'" in text
    assert "failed" in text.splitlines()[-1]
    with pytest.raises(ValueError, match="unknown log level"):
        cs.HumanReadableLogSubscriber(bus, level="LOUD")


def test_calls_without_keywords_keep_empty_keywords_through_runs_that_inject() -> None:
    # Calls made without keywords share one empty keyword dict (one object fewer per call):
    # nothing a run does to the arguments it passes (injected resources, map items,
    # retries) may write into it.
    @cs.resource
    def shared_connection() -> Iterator[str]:
        yield "run-scoped"

    @cs.resource(scope="task")
    def own_session() -> Iterator[str]:
        yield "task-scoped"

    attempts: list[int] = []

    @cs.task(retries=1)
    def uses(
        n: int, conn: str = cs.inject("shared_connection"), s: str = cs.inject("own_session")
    ) -> str:
        attempts.append(n)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return f"{n}:{conn}:{s}"

    calls = [uses(1), *[uses(i) for i in range(2, 4)]]
    mapped = uses.map([4, 5])
    engine = cs.Engine(log_level=None)
    engine.register(shared_connection)
    engine.register(own_session)
    results = asyncio.run(engine.run([*calls, mapped]))
    assert list(results) == [
        "1:run-scoped:task-scoped",
        "2:run-scoped:task-scoped",
        "3:run-scoped:task-scoped",
        ["4:run-scoped:task-scoped", "5:run-scoped:task-scoped"],
    ]
    assert [call.kwargs for call in calls] == [{}, {}, {}]
    assert uses(6).kwargs == {} and add(1, 2).kwargs == {}
