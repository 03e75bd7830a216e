"""``cascade run --pool NAME=SIZE`` and ``--keep-going``, through the installed console
script."""

from __future__ import annotations

import pytest
from cli_helpers import base_env, run_cascade

pytestmark = pytest.mark.timeout(120)


def test_pools_come_from_the_command_line() -> None:
    refused = run_cascade("run", "pipelines/pooled.py:calls", env=base_env())
    assert refused.code == 2
    assert "task 'call' needs pool 'api', which this run does not define" in refused.stderr
    assert "--pool api=N" in refused.stderr
    done = run_cascade("run", "pipelines/pooled.py:calls", "--pool", "api=2", env=base_env())
    assert done.code == 0, done.stderr
    assert "Result: [0, 1, 2, 3]" in done.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--pool", "api"], "--pool 'api': use NAME=SIZE"),
        (["--pool", "api=0"], "--pool 'api=0': use NAME=SIZE"),
        (["--pool", "api=2", "--pool", "api=3"], "pool 'api' is given twice with different sizes"),
    ],
)
def test_a_bad_pool_option_is_a_usage_error(options: list[str], message: str) -> None:
    refused = run_cascade("run", "pipelines/pooled.py:calls", *options, env=base_env())
    assert refused.code == 2 and message in refused.stderr
    assert "Traceback" not in refused.stderr


def test_keep_going_runs_independent_branches_and_reports_every_failure() -> None:
    stopped = run_cascade("run", "pipelines/pooled.py:mixed", "--output", "json", env=base_env())
    assert stopped.code == 1
    done = run_cascade(
        "run", "pipelines/pooled.py:mixed", "--keep-going", "--output", "json", env=base_env()
    )
    assert done.code == 1
    document = done.json()
    assert document["error"]["type"] == "RunFailed"
    statuses = [(row["task"], row["status"]) for row in document["tasks"]]
    assert statuses.count(("boom", "Failed")) == 2
    assert statuses.count(("ok", "Succeeded")) == 2, "the independent branches ran to the end"
    assert ("ok", "Skipped") in statuses, "the task downstream of a failure did not run"
