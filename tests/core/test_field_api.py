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
