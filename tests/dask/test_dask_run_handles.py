"""cascade-dask with a handle per run, on a real ``LocalCluster``: what a task logs on a Dask
worker in a recorded run is shipped back and stored with its attempt (read from the real
SQLite run store and from the installed ``cascade runs show RUN --task ID``), nothing is
collected when the run captures nothing, and two runs at once on one ``DaskExecutor`` each
keep their own resources on the workers."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dask_helpers import set_env

import cascade as cs
from cascade.records import SQLiteRunStore
from cascade_dask import DaskExecutor

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(180)

log = logging.getLogger("tests.dask_logs")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("CASCADE_HOME", str(home))
    monkeypatch.delenv("CASCADE_CAPTURE_LOGS", raising=False)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # the application lets INFO through
    try:
        yield home
    finally:
        root.setLevel(level)


def _collecting() -> bool:
    return any(type(h).__name__ == "_WorkerLogHandler" for h in logging.getLogger().handlers)


@cs.task
def chatty_on_dask(x: int) -> dict[str, Any]:
    log.info("dask worker %d got %d", os.getpid(), x)
    log.debug("not kept at INFO")
    logging.getLogger("cascade.internal").warning("not the task's")
    return {"pid": os.getpid(), "collecting": _collecting()}


@cs.task
async def async_chatty_on_dask(x: int) -> int:
    await asyncio.sleep(0)
    log.warning("async %d", x)
    return x


@cs.task
def fails_on_dask(x: int) -> int:
    log.warning("about to fail on %d", x)
    raise ValueError(f"bad value {x}")


def _latest() -> tuple[Any, dict[str, Any]]:
    store = SQLiteRunStore()
    found = store.runs(limit=1)[0]
    return found, {a.task_name: a for a in store.attempts(found.run_id)}


def test_logs_of_tasks_on_dask_workers_are_stored_with_their_attempts(
    client: Any, home: Path
) -> None:
    executor = DaskExecutor(client=client)
    result, doubled = cs.run(
        [chatty_on_dask(1), async_chatty_on_dask(2)], executor=executor, record=True
    )
    assert result["pid"] != os.getpid() and result["collecting"] and doubled == 2
    _, attempts = _latest()
    lines = attempts["chatty_on_dask"].logs
    assert [(line.level, line.logger, line.message) for line in lines] == [
        ("INFO", "tests.dask_logs", f"dask worker {result['pid']} got 1")
    ]
    assert [line.message for line in attempts["async_chatty_on_dask"].logs] == ["async 2"]

    with pytest.raises(ValueError, match="bad value 5"):
        cs.run(fails_on_dask(5), executor=executor, record=True, log_level=None)
    run, attempts = _latest()
    failed = attempts["fails_on_dask"]
    assert [line.message for line in failed.logs] == ["about to fail on 5"]
    shown = subprocess.run(
        [
            str(Path(sys.executable).with_name("cascade")),
            "runs",
            "show",
            run.run_id,
            "--task",
            failed.task_id,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "CASCADE_HOME": str(home)},
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"WARNING +tests\.dask_logs: about to fail on 5", shown.stdout)
    assert "ValueError: bad value 5" in shown.stdout


def test_nothing_is_collected_on_the_workers_when_the_run_captures_nothing(client: Any) -> None:
    executor = DaskExecutor(client=client)
    assert not cs.run(chatty_on_dask(3), executor=executor, log_level=None)["collecting"]
    options = cs.RecordOptions(logs=None)
    result = cs.run(chatty_on_dask(4), executor=executor, record=True, record_options=options)
    assert not result["collecting"]
    _, attempts = _latest()
    assert attempts["chatty_on_dask"].logs == ()


# -- two runs at once -----------------------------------------------------------------------------


@cs.resource(name="dask_runs_session")
def dask_runs_session() -> Iterator[str]:
    directory = Path(os.environ["CASCADE_DASK_TEST_DIR"])
    ident = f"{os.getpid()}-{os.urandom(4).hex()}"
    (directory / f"setup-{ident}").touch()
    yield ident
    (directory / f"teardown-{ident}").touch()


@cs.task
def dask_session_of(i: int, session: str = cs.inject("dask_runs_session")) -> str:
    return session


@cs.task
def dask_hold(session: str = cs.inject("dask_runs_session")) -> tuple[str, bool]:
    """Holds its worker until the test says so; then whether its session is still up."""
    import time

    directory = Path(os.environ["CASCADE_DASK_TEST_DIR"])
    (directory / "holding").touch()
    while not (directory / "go").exists():
        time.sleep(0.01)
    return session, not (directory / f"teardown-{session}").exists()


def _names(directory: Path, prefix: str) -> set[str]:
    return {p.name[len(prefix) + 1 :] for p in directory.glob(f"{prefix}-*")}


def test_two_runs_at_once_on_one_dask_executor_keep_their_own_resources(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.run(set_env, "CASCADE_DASK_TEST_DIR", str(tmp_path))
    monkeypatch.setenv("CASCADE_DASK_TEST_DIR", str(tmp_path))
    executor = DaskExecutor(client=client)
    engine = cs.Engine(executor=executor, log_level=None)

    async def scenario() -> tuple[Any, list[str], set[str]]:
        long_run = asyncio.ensure_future(engine.run(dask_hold()))
        while not (tmp_path / "holding").exists():
            await asyncio.sleep(0.01)
        short = await engine.run([dask_session_of(1), dask_session_of(2)])
        torn_down = _names(tmp_path, "teardown")  # the short run has ended, the long has not
        (tmp_path / "go").touch()
        return await long_run, short, torn_down

    (long_session, still_up), short, torn_down_between = asyncio.run(scenario())
    assert len(set(short)) == 1 and short[0] != long_session
    assert torn_down_between == {short[0]}  # the short run's end tore down its own only
    assert still_up
    assert _names(tmp_path, "setup") == _names(tmp_path, "teardown") == {short[0], long_session}
    assert not executor._open_runs and executor.client is None
