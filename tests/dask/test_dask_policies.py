"""The engine's policies behave the same on ``local``, ``processes`` and ``dask``: retries,
timeouts, caching, ``run_if``, ``map`` and concurrency limits.

Self-contained: every test takes the ``executor`` fixture, parametrized over the three executors
(``dask`` runs on this module's two-worker LocalCluster). Task functions are module-level so
worker processes import them; attempts and overlaps are recorded in files in ``tmp_path`` so
they are visible from any process."""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
from dask_helpers import bump, size, wait_until

import cascade as cs
from cascade.caching import CacheContext
from cascade.events import Event, TaskRetrying, TaskSkipped
from cascade_dask import DaskExecutor

pytestmark = pytest.mark.timeout(90)

STOPPABLE = {"processes", "dask"}  # a sync call on "local" runs in a thread, which cannot stop


@pytest.fixture(params=["local", "processes", "dask"])
def executor(request: pytest.FixtureRequest) -> Any:
    if request.param == "dask":
        client = request.getfixturevalue("dask_client")
        client.wait_for_workers(2, timeout=30)
        return DaskExecutor(client=client)
    return request.param


def executor_name(executor: Any) -> str:
    return executor if isinstance(executor, str) else str(executor.name)


def run(target: Any, executor: Any, **options: Any) -> Any:
    return cs.run(target, executor=executor, log_level=None, **options)


def run_with_events(target: Any, executor: Any, **options: Any) -> tuple[Any, list[Event]]:
    bus = cs.MessageBus()
    events: list[Event] = []
    bus.subscribe(Event, events.append)
    return run(target, executor, bus=bus, **options), events


# -- tasks ----------------------------------------------------------------------------------


@cs.task
def flaky(counter: str, fail_times: int) -> int:
    attempt = bump(counter)
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@cs.task
def wrong_kind(counter: str) -> None:
    bump(counter)
    raise KeyError("not retried")


@cs.task
def heartbeat(seconds: float, path: str) -> float:
    """Busy for ``seconds``, appending to ``path`` every 20 ms (so we can see it stop)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bump(path)
        time.sleep(0.02)
    return seconds


@cs.task
def slow_first_time(counter: str, seconds: float) -> int:
    attempt = bump(counter)
    if attempt == 1:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
    return attempt


@cs.task
def is_positive(x: int) -> bool:
    return x > 0


@cs.task
def identity(x: Any) -> Any:
    return x


@cs.task
def square(x: int) -> int:
    return x * x


@cs.task
def power(x: int, exponent: int) -> int:
    return int(x**exponent)


@cs.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


@cs.task
def interval(directory: str, i: int, seconds: float) -> int:
    """Record when this call ran, as ``start end`` in its own file."""
    start = time.time()
    time.sleep(seconds)
    Path(directory, f"interval-{i}").write_text(f"{start} {time.time()}")
    return i


@cs.task
def counted_square(counter: str, x: int) -> int:
    bump(counter)
    return x * x


def max_overlap(directory: Path) -> int:
    spans = [tuple(map(float, p.read_text().split())) for p in directory.glob("interval-*")]
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


class FileCache:
    """A minimal cache policy (the ``CachePolicy`` protocol) keeping pickled results in files,
    so hits are visible across runs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, context: CacheContext) -> Path:
        inputs = repr((context.args, sorted(context.kwargs.items()))).encode()
        return self.directory / f"{context.task_name}-{hashlib.sha256(inputs).hexdigest()}"

    def lookup(self, context: CacheContext) -> tuple[bool, Any]:
        path = self._path(context)
        if path.exists():
            return True, pickle.loads(path.read_bytes())
        return False, None

    def save(self, context: CacheContext, value: Any) -> None:
        self._path(context).write_bytes(pickle.dumps(value))


# -- retries --------------------------------------------------------------------------------


def test_retry_makes_exactly_n_plus_one_attempts_then_succeeds(
    executor: Any, tmp_path: Path
) -> None:
    counter = str(tmp_path / "attempts")
    result, events = run_with_events(flaky(counter, 2).with_retry(2), executor)
    assert result == 3
    assert size(counter) == 3
    assert [e.attempt for e in events if isinstance(e, TaskRetrying)] == [1, 2]


def test_when_attempts_run_out_the_last_exception_surfaces(executor: Any, tmp_path: Path) -> None:
    counter = str(tmp_path / "attempts")
    with pytest.raises(ConnectionError, match="attempt 2 failed"):
        run(flaky(counter, 5).with_retry(1), executor)
    assert size(counter) == 2


def test_only_matching_exceptions_are_retried(executor: Any, tmp_path: Path) -> None:
    counter = str(tmp_path / "attempts")
    with pytest.raises(KeyError, match="not retried"):
        run(wrong_kind(counter).with_retry(3, on=ConnectionError), executor)
    assert size(counter) == 1


# -- timeouts -------------------------------------------------------------------------------


def test_timeout_fails_with_task_timeout_error_and_stops_the_attempt(
    executor: Any, tmp_path: Path
) -> None:
    beats = tmp_path / "beats"
    stoppable = executor_name(executor) in STOPPABLE
    # Where the attempt can be stopped, a heartbeat that would beat for an hour: a run that
    # waited for it would hit the test's timeout. In a thread, which cannot be stopped, 30 s.
    seconds = 3600.0 if stoppable else 30.0
    with pytest.raises(cs.TaskTimeoutError, match=r"task 'heartbeat' timed out after 0.5 s"):
        run(heartbeat(seconds, str(beats)).with_timeout(0.5), executor)
    if stoppable:
        # The attempt was stopped where it ran: the heartbeat goes quiet.
        assert wait_until(lambda: size(beats) > 0 and _quiet(beats), timeout=30)
    else:
        # The run ended without waiting for the thread: its heartbeat still beats.
        assert not _quiet(beats)


def _quiet(path: Path) -> bool:
    before = size(path)
    time.sleep(0.2)
    return size(path) == before


def test_a_timed_out_attempt_counts_as_failed_and_is_retried(executor: Any, tmp_path: Path) -> None:
    counter = str(tmp_path / "attempts")
    result = run(slow_first_time(counter, 5.0).with_timeout(0.5).with_retry(1), executor)
    assert result == 2


# -- run_if -------------------------------------------------------------------------------


def test_run_if_false_skips_the_task_and_everything_needing_it(
    executor: Any, tmp_path: Path
) -> None:
    counter = str(tmp_path / "ran")
    skipped = flaky(counter, 0).run_if(is_positive(-1))
    downstream = identity(skipped)
    result, events = run_with_events([skipped, downstream, is_positive(1)], executor)
    assert result == [None, None, True]
    assert size(counter) == 0
    reasons = {e.task_name: e.reason for e in events if isinstance(e, TaskSkipped)}
    assert reasons == {"flaky": "ConditionFalse", "identity": "UpstreamSkipped"}


def test_run_if_true_runs_and_literal_conditions_work(executor: Any) -> None:
    assert run(
        [square(3).run_if(is_positive(2)), square(4).run_if(True), square(5).run_if(0)],
        executor,
    ) == [9, 16, None]


# -- map --------------------------------------------------------------------------------------


def test_map_over_a_build_time_list_keeps_order(executor: Any) -> None:
    assert run(square.map([3, 1, 2]), executor) == [9, 1, 4]


def test_map_over_a_runtime_list_with_broadcast_arguments_feeds_downstream(
    executor: Any,
) -> None:
    powers = power.map(numbers(5), exponent=3)
    assert run([powers, total(powers)], executor) == [[0, 1, 8, 27, 64], 100]


def test_map_items_carry_the_call_policies(executor: Any, tmp_path: Path) -> None:
    counters = [str(tmp_path / f"c{i}") for i in range(3)]
    result = run(flaky.map(counters, fail_times=1).with_retry(1), executor)
    assert result == [2, 2, 2]


# -- concurrency limits -------------------------------------------------------------------------


def test_per_task_concurrency_limit_is_honoured_across_mapped_items(
    executor: Any, tmp_path: Path
) -> None:
    limited = cs.task(interval.fn, name="interval_limited", concurrency=1)
    run(limited.map(cs.unmapped(str(tmp_path)), range(4), seconds=0.15), executor)
    assert len(list(tmp_path.glob("interval-*"))) == 4
    assert max_overlap(tmp_path) == 1


def test_engine_max_concurrency_bounds_attempts_in_flight(executor: Any, tmp_path: Path) -> None:
    run(
        interval.map(cs.unmapped(str(tmp_path)), range(4), seconds=0.15),
        executor,
        max_concurrency=1,
    )
    assert max_overlap(tmp_path) == 1


def test_without_limits_calls_overlap(executor: Any, tmp_path: Path) -> None:
    run(interval.map(cs.unmapped(str(tmp_path)), range(2), seconds=0.8), executor)
    assert max_overlap(tmp_path) == 2


# -- caching ----------------------------------------------------------------------------------


def test_cache_hits_skip_the_task_in_the_next_run(executor: Any, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    counter = str(tmp_path / "ran")
    policy = FileCache(cache_dir)

    def graph() -> Any:
        first = counted_square(counter, 7).with_cache(policy)
        return [first, identity(first)]

    assert run(graph(), executor) == [49, 49]
    assert size(counter) == 1
    result, events = run_with_events(graph(), executor)
    assert result == [49, 49]
    assert size(counter) == 1  # not run again
    assert [e.reason for e in events if isinstance(e, TaskSkipped)] == ["CacheHit"]


def test_the_pid_of_a_worker_never_is_the_driver_on_remote_executors(executor: Any) -> None:
    pid = run(cs.task(os.getpid, name="getpid")(), executor)
    assert (pid == os.getpid()) == (executor_name(executor) == "local")
