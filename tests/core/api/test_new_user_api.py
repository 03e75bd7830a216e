"""The Python API as a new user explores it (field report): completion lists every public
name, a task written as a method is refused with a message that says why, and a span's
``error.type`` names the public class."""

from __future__ import annotations

import pytest

import cascade as cs


def test_dir_lists_the_lazily_loaded_public_names():
    names = dir(cs)
    for name in ("InputHashCache", "FileExistenceCache", "clear_cache", "cache_stats"):
        assert name in names
    assert set(cs.__all__) <= set(names)


def test_a_task_written_as_a_method_is_refused_where_it_is_declared():
    with pytest.raises(TypeError) as caught:

        class Loader:
            @cs.task
            def method(self, x: int) -> int:
                return x

    message = str(caught.value)
    assert "task 'method' is a method of class 'Loader'" in message
    assert "define the task at module level" in message


def test_static_functions_and_nested_functions_are_still_tasks():
    class Holder:
        @staticmethod
        @cs.task
        def double(x: int) -> int:
            return 2 * x

    def make() -> cs.Task[int]:
        @cs.task
        def inner(self_count: int) -> int:
            return self_count + 1

        return inner

    assert cs.run([Holder.double(2), make()(1)], log_level=None) == [4, 2]


def test_a_failed_teardown_names_the_resource_from_python():
    from cascade.events import RunFinished

    @cs.resource(name="field_conn")
    def field_conn():
        yield "connection"
        raise RuntimeError("error while closing")

    @cs.task
    def query(conn: str = cs.inject("field_conn")) -> str:
        return conn

    bus = cs.MessageBus()
    finished: list[RunFinished] = []
    bus.subscribe(RunFinished, finished.append)
    with pytest.raises(RuntimeError, match="error while closing") as caught:
        cs.run(query(), bus=bus, log_level=None)
    assert "while tearing down resource 'field_conn'" in getattr(caught.value, "__notes__", [])
    assert finished[0].failed_resource == "field_conn"


def test_run_failed_names_each_task_with_its_own_error():
    @cs.task
    def early_fail() -> None:
        raise ValueError("bad row 3")

    @cs.task
    def flaky() -> None:
        raise ConnectionError("page 3: HTTP 503")

    with pytest.raises(cs.RunFailed) as caught:
        cs.run([early_fail(), flaky()], on_failure="continue", log_level=None)
    text = str(caught.value)
    assert text.startswith("2 task(s) failed: early_fail-")
    assert "(ValueError: bad row 3)" in text and "(ConnectionError: page 3: HTTP 503)" in text
    assert "sub-exceptions" not in text
