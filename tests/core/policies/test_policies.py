"""Task policies behave the same on every executor: retries, timeouts, conditions and
ordering. Task functions are module-level so process workers can import them; attempts are
counted in files so they are visible across processes."""

import asyncio
import os
import time
from pathlib import Path

import pytest
from core_helpers import alive, bump, flaky, run_collecting, square

import cascade as cs
from cascade.events import (
    TaskRetrying,
    TaskSkipped,
)
from cascade.executors.local import LocalExecutor

pytestmark = pytest.mark.timeout(60)


@cs.task(retries=2)
def flaky_by_default(counter: str, fail_times: int):
    attempt = bump(counter)
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@cs.task
def wrong_type(counter: str):
    bump(counter)
    raise KeyError("not retried")


@cs.task
def sleeper(seconds: float, counter: str | None = None):
    if counter:
        bump(counter)
    time.sleep(seconds)
    return seconds


@cs.task
async def async_sleeper(seconds: float):
    await asyncio.sleep(seconds)
    return seconds


@cs.task
def is_positive(x):
    return x > 0


@cs.task
def append_line(path: str, text: str):
    with open(path, "a") as handle:
        handle.write(text + "\n")
    return text


# -- retries -----------------------------------------------------------------------------


def test_retry_makes_exactly_n_plus_one_attempts_then_succeeds(executor, tmp_path):
    counter = str(tmp_path / "count")
    result, events = run_collecting(flaky(counter, 2).with_retry(retries=2), executor)
    assert result == 3
    retries = [e for e in events if isinstance(e, TaskRetrying)]
    assert [(e.attempt, e.task_name) for e in retries] == [(1, "flaky"), (2, "flaky")]
    assert retries[0].error == "ConnectionError: attempt 1 failed"


def test_when_attempts_run_out_the_last_exception_surfaces(executor, tmp_path):
    counter = str(tmp_path / "count")
    with pytest.raises(ConnectionError, match="attempt 3 failed"):
        run_collecting(flaky(counter, 5).with_retry(retries=2), executor)
    assert Path(counter).stat().st_size == 3


def test_task_level_retries_are_the_default_and_calls_override(executor, tmp_path):
    counter = str(tmp_path / "a")
    assert run_collecting(flaky_by_default(counter, 2), executor)[0] == 3
    counter = str(tmp_path / "b")
    with pytest.raises(ConnectionError):
        run_collecting(flaky_by_default(counter, 2).with_retry(retries=0), executor)
    assert Path(counter).stat().st_size == 1


def test_only_matching_exceptions_are_retried(executor, tmp_path):
    counter = str(tmp_path / "count")
    with pytest.raises(KeyError):
        run_collecting(wrong_type(counter).with_retry(retries=3, on=ConnectionError), executor)
    assert Path(counter).stat().st_size == 1


def test_backoff_delays_grow_and_are_capped():
    policy = cs.RetryPolicy(retries=5, delay=0.1, backoff=2.0, max_delay=0.5)
    assert [policy.delay_before(k) for k in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    jittered = cs.RetryPolicy(retries=1, delay=1.0, jitter=0.5)
    samples = [jittered.delay_before(1) for _ in range(200)]
    assert all(0.5 <= s <= 1.5 for s in samples) and len(set(samples)) > 100


def test_retry_delays_are_published_and_waited(tmp_path):
    counter = str(tmp_path / "count")
    started = time.perf_counter()
    result, events = run_collecting(
        flaky(counter, 2).with_retry(retries=2, delay=0.1, backoff=2.0), "local"
    )
    elapsed = time.perf_counter() - started
    assert result == 3
    assert [e.delay for e in events if isinstance(e, TaskRetrying)] == [0.1, 0.2]
    assert elapsed >= 0.3  # the delays were waited (time is the behaviour: a lower bound only)


def test_bad_retry_settings_are_rejected_with_the_setting_named(tmp_path):
    with pytest.raises(ValueError, match="retries must be"):
        flaky("x", 1).with_retry(retries=-1)
    with pytest.raises(ValueError, match="backoff must be"):
        flaky("x", 1).with_retry(retries=1, backoff=-2)
    with pytest.raises(TypeError, match="on= takes exception classes"):
        flaky("x", 1).with_retry(retries=1, on=("nope",))


# -- timeouts ----------------------------------------------------------------------------


def test_timeout_fails_with_task_timeout_error_naming_task_and_limit(executor):
    # The attempt would sleep for a minute: the run ending at all (well inside the test's
    # own timeout) shows the attempt was cut short, however loaded the machine is.
    with pytest.raises(cs.TaskTimeoutError, match=r"task 'sleeper' timed out after 0.3 s"):
        run_collecting(sleeper(60).with_timeout(0.3), executor)
    assert issubclass(cs.TaskTimeoutError, TimeoutError)


def test_async_task_timeout_cancels_it():
    with pytest.raises(cs.TaskTimeoutError, match="async_sleeper"):
        run_collecting(async_sleeper(5).with_timeout(0.1), "local")


def test_timeout_inside_a_retry_loop_counts_as_a_failed_attempt(executor, tmp_path):
    counter = str(tmp_path / "count")
    with pytest.raises(cs.TaskTimeoutError):
        run_collecting(sleeper(5, counter).with_timeout(1.0).with_retry(retries=2), executor)
    assert Path(counter).stat().st_size == 3


def test_timeout_as_task_default():
    @cs.task(timeout=0.1)
    async def slow():
        await asyncio.sleep(3)

    with pytest.raises(cs.TaskTimeoutError):
        run_collecting(slow(), "local")
    with pytest.raises(ValueError, match="timeout must be"):
        sleeper(1).with_timeout(0)


def test_process_worker_is_stopped_on_timeout(tmp_path):
    pid_file = tmp_path / "pid"
    with pytest.raises(cs.TaskTimeoutError):
        run_collecting(write_pid_then_sleep(str(pid_file)).with_timeout(1.0), "processes")
    pid = int(pid_file.read_text())
    deadline = time.time() + 60  # only stops a broken test from hanging
    while time.time() < deadline and alive(pid):
        time.sleep(0.05)
    assert not alive(pid)


@cs.task
def write_pid_then_sleep(path: str):
    Path(path).write_text(str(os.getpid()))
    time.sleep(30)


# -- conditions ---------------------------------------------------------------------------


def test_run_if_false_skips_the_task_and_everything_needing_it(executor, tmp_path):
    out = str(tmp_path / "out")
    gate = is_positive(-1)
    skipped = append_line(out, "conditional").run_if(gate)
    downstream = append_line(out, skipped)
    unrelated = append_line(out, "unrelated")
    result, events = run_collecting([downstream, unrelated], executor)
    assert result == [None, "unrelated"]
    assert Path(out).read_text() == "unrelated\n"
    reasons = {(e.task_name, e.reason) for e in events if isinstance(e, TaskSkipped)}
    assert reasons == {("append_line", "ConditionFalse"), ("append_line", "UpstreamSkipped")}


def test_run_if_true_runs_and_literal_conditions_work(executor):
    assert run_collecting(square(3).run_if(is_positive(1)), executor)[0] == 9
    assert run_collecting(square(3).run_if(True), executor)[0] == 9
    assert run_collecting(square(3).run_if(0), executor)[0] is None


# -- ordering -----------------------------------------------------------------------------


def test_after_orders_without_passing_values(executor, tmp_path):
    out = str(tmp_path / "order")
    first = append_line(out, "first")
    second = append_line(out, "second").after(first)
    third = append_line(out, "third").after(second)
    assert run_collecting(third, executor)[0] == "third"
    assert Path(out).read_text().splitlines() == ["first", "second", "third"]


# -- a timeout counts the time a call runs, not the time it waits for a thread ----------------


def test_timeouts_count_only_running_time_in_a_busy_thread_pool() -> None:
    @cs.task
    def nap(i: int) -> int:
        time.sleep(0.2)
        return i

    # 24 items on 2 threads take about 2.4 s in all, each one 0.2 s of its 2 s (ten times what
    # it needs: time is the behaviour here): none may time out, however long it queued.
    target = nap.map(list(range(24))).with_timeout(2.0)
    assert cs.run(target, executor=LocalExecutor(max_workers=2), log_level=None) == list(range(24))
