"""`cascade run --executor dask` from the command line: an existing scheduler given with
`--dask-address` (or $CASCADE_DASK_ADDRESS), the temporary cluster's dashboard, Dask's own
logs kept off the terminal (shown at --log-level DEBUG), and Ctrl-C through a pipe. The
options come from cascade-dask through the CLI's `cascade_register_run_options` hook."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import (
    HERE,
    PIPELINES,
    base_env,
    cascade_script,
    run_cascade,
    start_piped,
    wait_for_marker,
)

distributed = pytest.importorskip("distributed")

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.name == "nt", reason="process groups and SIGINT are POSIX"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A real LocalCluster on 127.0.0.1 whose workers (and scheduler, in this process) can
    import the test pipelines."""
    import sys

    import dask

    sys.path.insert(0, str(PIPELINES))

    with dask.config.set({"distributed.nanny.pre-spawn-environ": {"PYTHONPATH": str(PIPELINES)}}):
        cluster = distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
    try:
        yield cluster
    finally:
        cluster.close()
        sys.path.remove(str(PIPELINES))


def test_dask_address_runs_on_the_given_scheduler_and_leaves_it_running(cluster: Any) -> None:
    workers = set(cluster.scheduler_info["workers"])
    result = run_cascade(
        "run", "pipelines/dask_work.py:ran_where", "--executor", "dask",
        "--dask-address", cluster.scheduler_address, "--output", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["result"] in workers
    assert set(cluster.scheduler_info["workers"]) == workers  # still there, still running

    from_env = run_cascade(
        "run", "pipelines/dask_work.py:ran_where", "-e", "dask", "--output", "json",
        env=base_env(CASCADE_DASK_ADDRESS=cluster.scheduler_address),
    )  # fmt: skip
    assert from_env.code == 0, from_env.stderr
    assert from_env.json()["result"] in workers


def test_dask_options_need_the_dask_executor(cluster: Any) -> None:
    result = run_cascade(
        "run", "pipelines/basic.py:report", "--dask-address", cluster.scheduler_address
    )
    assert result.code == 2
    assert (
        "--dask-address is an option of executor 'dask', which this run does not use; add "
        "--executor dask" in result.stderr
    )
    # From the environment it only applies when the run uses dask.
    quiet = run_cascade(
        "run", "pipelines/basic.py:report",
        env=base_env(CASCADE_DASK_ADDRESS=cluster.scheduler_address),
    )  # fmt: skip
    assert quiet.code == 0, quiet.stderr
    bad = run_cascade("run", "pipelines/basic.py:report", "-e", "dask", "--dask-address", "nope")
    assert bad.code == 2 and "'nope' is not a scheduler address" in bad.stderr
    listed = run_cascade("run", "--help")
    assert "Options of executor 'dask':" in listed.stdout
    assert "--dask-address ADDRESS" in listed.stdout and "--dask-dashboard" in listed.stdout


def test_worker_logs_stay_off_the_terminal_unless_debug(tmp_path: Path) -> None:
    env = base_env(CASCADE_TEST_MARKER=str(tmp_path / "marker.txt"))
    result = run_cascade("run", "pipelines/dask_work.py:retried", "-e", "dask", env=env)
    assert result.code == 0, result.stderr
    assert "Result: ok on the second attempt" in result.stdout
    assert "↻ flaky attempt 1 failed" in result.stdout
    everything = result.stdout + result.stderr
    assert "Compute Failed" not in everything and "distributed." not in everything

    (tmp_path / "marker.txt").unlink()
    debug = run_cascade(
        "run", "pipelines/dask_work.py:retried", "-e", "dask", "--log-level", "DEBUG", env=env
    )
    assert debug.code == 0, debug.stderr
    assert re.search(r"DEBUG cascade\.dask\.workers: tcp://127\.0\.0\.1:\d+ ERROR "
                     r"distributed\.worker: Compute Failed", debug.stderr)  # fmt: skip


def test_the_dashboard_of_the_temporary_cluster_is_printed_and_served(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    process = subprocess.Popen(
        [cascade_script(), "run", "pipelines/dask_work.py:waiting", "-e", "dask",
         "--dask-dashboard"],
        cwd=HERE, env=base_env(CASCADE_TEST_MARKER=str(marker)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.match(r"\[cascade\] Dask dashboard: (http://127\.0\.0\.1:\d+/status)", line)
        assert found, line
        wait_for_marker(marker, "waiting 0", "waiting 1")  # the cluster is up and working
        with urllib.request.urlopen(found.group(1), timeout=30) as response:
            assert response.status == 200
    finally:
        Path(str(marker) + ".release").write_text("go")
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "Result: [0, 1]" in out


def test_ctrl_c_through_a_pipe_with_dask_tears_down_and_exits_130(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    piped = start_piped(
        ["run", "pipelines/dask_work.py:waiting", "-e", "dask"], ["tail", "-3"], tmp_path,
        env=base_env(CASCADE_TEST_MARKER=str(marker)),
    )  # fmt: skip
    wait_for_marker(marker, "set up", "waiting 0", "waiting 1")
    piped.interrupt()  # the workers are in the same process group, as under a shell
    code, err = piped.wait(timeout=120)
    assert code == 130, err
    assert "torn down" in marker.read_text().splitlines()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "Compute Failed" not in err
