"""``cascade run`` records into the run history, ``--resume``, and ``cascade runs
list|show|delete|prune|report`` (issue 13), against a real SQLite file in a temporary
``CASCADE_HOME``: a run killed with SIGKILL halfway reads as Crashed and resumes where it
stopped, two processes record into one store at once without losing a row, and the HTML report
is opened in headless Chromium (what it rendered: the task names, one bar per attempt, a
screenshot that is not blank)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import base_env, cascade_script, png_colours, run_cascade
from headless_chromium import CHROMIUM, CHROMIUM_ARGS, installed

from cascade.records import SQLiteRunStore

pytestmark = pytest.mark.timeout(240)

FLOW = """
import os
import pathlib
import time

import cascade as cs

LOG = pathlib.Path(os.environ["RUNS_LOG"])


def note(name):
    with LOG.open("a") as handle:
        handle.write(name + "\\n")


@cs.task
def load(i: int) -> int:
    note(f"load {i}")
    return i * 10


@cs.task(retries=1)
def check(values: list) -> list:
    note("check")
    if os.environ.get("RUNS_FAIL") == "check":
        raise ValueError("check failed")
    return values


@cs.task
def slow(values: list) -> int:
    note("slow")
    marker = os.environ.get("RUNS_MARKER")
    if marker:
        pathlib.Path(marker).write_text("started")
        time.sleep(600)  # killed here
    return sum(values)


flow = slow(check(load.map([1, 2, 3])))


@cs.task
def inc(x: int) -> int:
    return x + 1


@cs.task
def gate(values: list) -> list:
    # Both processes are in the middle of their runs once each sees the other's marker.
    pathlib.Path(os.environ["RUNS_MINE"]).write_text("here")
    other = pathlib.Path(os.environ["RUNS_OTHER"])
    deadline = time.monotonic() + 120
    while not other.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the other run never got here")
        time.sleep(0.01)
    return values


@cs.task
def total(values: list) -> int:
    return sum(values)


busy = total(inc.map(gate(inc.map(list(range(300))))))
"""


class Folder:
    """A scratch folder with the pipeline, its own CASCADE_HOME and a log of task calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "flow.py").write_text(FLOW)
        self.home = root / "home"
        self.log = root / "calls.log"
        self.log.touch()

    def env(self, **extra: str) -> dict[str, str]:
        env = base_env(CASCADE_HOME=str(self.home), RUNS_LOG=str(self.log), **extra)
        env.pop("CASCADE_CACHE_DIR", None)
        return env

    def cascade(self, *args: str, **extra: str) -> Any:
        return run_cascade(*args, cwd=self.root, env=self.env(**extra), timeout=120)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def runs(self) -> list[dict[str, Any]]:
        result = self.cascade("runs", "list", "--output", "json")
        assert result.code == 0, result.stderr
        return result.json()["runs"]  # type: ignore[no-any-return]

    def show(self, run_id: str) -> dict[str, Any]:
        result = self.cascade("runs", "show", run_id, "--output", "json")
        assert result.code == 0, result.stderr
        return result.json()  # type: ignore[no-any-return]

    def store(self) -> SQLiteRunStore:
        return SQLiteRunStore(self.home / "runs.sqlite3")


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


def wait_for(what: str, condition: Any, proc: subprocess.Popen[Any], timeout: float = 90) -> None:
    """Poll ``condition`` (generously: this machine may be busy) while ``proc`` lives."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"cascade ended ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- recording, show, list ---------------------------------------------------------------------


def test_cascade_run_records_by_default_and_no_record_leaves_no_trace(folder: Folder) -> None:
    assert folder.cascade("run", "flow.py:flow", "--no-record").code == 0
    assert not (folder.home / "runs.sqlite3").exists()
    done = folder.cascade("run", "flow.py:flow")
    assert done.code == 0, done.stderr
    (recorded,) = folder.runs()
    assert recorded["label"] == "flow.py:flow" and recorded["target"] == "slow"
    assert recorded["status"] == "Succeeded"
    assert recorded["tasks"] == {"Succeeded": 5}
    assert recorded["run_id"][:8] in done.stdout  # the summary's "run 1a2b3c4d"
    clash = folder.cascade("run", "flow.py:flow", "--no-record", "--resume", "last")
    assert clash.code == 2 and "leave out --no-record" in clash.stderr


def test_list_and_show_describe_runs_as_text_and_as_one_json_document(folder: Folder) -> None:
    failed = folder.cascade("run", "flow.py:flow", RUNS_FAIL="check")
    assert failed.code == 1
    assert folder.cascade("run", "flow.py:flow").code == 0
    runs = folder.runs()
    assert [r["status"] for r in runs] == ["Succeeded", "Failed"]
    failed_id = runs[1]["run_id"]

    only = folder.cascade("runs", "list", "--status", "failed", "--since", "1h", "--output", "json")
    assert [r["run_id"] for r in only.json()["runs"]] == [failed_id]
    assert (
        folder.cascade("runs", "list", "--target", "nope", "--output", "json").json()["runs"] == []
    )
    limited = folder.cascade("runs", "list", "--target", "flow.py:flow", "--limit", "1")
    assert limited.code == 0 and runs[0]["run_id"][:8] in limited.stdout
    assert failed_id[:8] not in limited.stdout

    shown = folder.show(failed_id[:8])
    assert set(shown) == {"store", "run", "tasks", "attempts"}
    assert shown["run"]["error"] == "ValueError: check failed"
    tasks = {t["task"]: t for t in shown["tasks"] if t["task"] != "load"}
    assert tasks["check"]["status"] == "Failed" and tasks["check"]["attempts"] == 2
    assert tasks["check"]["error"] == "ValueError: check failed"
    loads = [t for t in shown["tasks"] if t["task"] == "load"]
    assert [t["status"] for t in loads] == ["Succeeded"] * 3
    text = folder.cascade("runs", "show", failed_id)
    assert text.code == 0
    for expected in ("check", "✗ Failed", "ValueError: check failed", "load[2]", failed_id):
        assert expected in text.stdout
    unknown = folder.cascade("runs", "show", "feedface")
    assert unknown.code == 2 and "no run 'feedface'" in unknown.stderr
    assert runs[0]["run_id"] in unknown.stderr  # the latest runs are listed


def test_resume_last_runs_only_what_did_not_succeed(folder: Folder) -> None:
    assert folder.cascade("run", "flow.py:flow", RUNS_FAIL="check").code == 1
    assert sorted(folder.calls()) == ["check", "check", "load 1", "load 2", "load 3"]
    folder.log.write_text("")
    resumed = folder.cascade("run", "flow.py:flow", "--resume", "last")
    assert resumed.code == 0, resumed.stderr
    assert "Result: 60" in resumed.stdout
    assert folder.calls() == ["check", "slow"]
    newest, failed = folder.runs()
    assert newest["resumed_from"] == failed["run_id"]
    unknown = folder.cascade("run", "flow.py:flow", "--resume", "0badc0de")
    assert unknown.code == 2
    assert "there is no such run" in unknown.stderr
    assert "recent runs of 'slow'" in unknown.stderr and newest["run_id"] in unknown.stderr


def test_delete_and_prune_remove_runs_and_their_checkpoints(folder: Folder) -> None:
    for _ in range(3):
        assert folder.cascade("run", "flow.py:flow").code == 0
    first, second, third = (r["run_id"] for r in folder.runs())
    cache = folder.home / "cache"
    assert list(cache.rglob("*.entry"))
    deleted = folder.cascade("runs", "delete", first[:10], "--output", "json")
    assert deleted.code == 0
    assert deleted.json()["deleted"] == [first] and deleted.json()["not_found"] == []
    missing = folder.cascade("runs", "delete", first)
    assert missing.code == 2 and "nothing deleted" in missing.stderr
    kept = folder.cascade("runs", "prune", "--older-than", "30d", "--output", "json")
    assert kept.json()["deleted"] == []
    dry = folder.cascade("runs", "prune", "--older-than", "0s", "--dry-run", "--output", "json")
    assert sorted(dry.json()["would_delete"]) == sorted([second, third])
    pruned = folder.cascade("runs", "prune", "--older-than", "0s")
    assert pruned.code == 0 and "deleted 2 runs" in pruned.stdout
    assert folder.runs() == []
    assert not list(cache.rglob("*.entry"))
    bad = folder.cascade("runs", "prune", "--older-than", "a month")
    assert bad.code == 2 and "not a duration" in bad.stderr


# -- crashes and concurrent writers --------------------------------------------------------------


def test_a_run_killed_with_sigkill_reads_as_crashed_and_resumes_where_it_stopped(
    folder: Folder,
) -> None:
    marker = folder.root / "slow-started"
    with open(folder.root / "killed.out", "w") as out:
        proc = subprocess.Popen(
            [cascade_script(), "run", "flow.py:flow"],
            cwd=folder.root,
            env=folder.env(RUNS_MARKER=str(marker)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for("the slow task to start", marker.exists, proc)
            store = folder.store()

            def finished_are_recorded() -> bool:
                runs = store.runs()
                return bool(runs) and runs[0].tasks.get("Succeeded") == 4  # 3 loads and check

            wait_for("the finished tasks to be recorded", finished_are_recorded, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (crashed,) = folder.runs()
    assert crashed["status"] == "Crashed"
    shown = folder.show(crashed["run_id"])
    assert sorted(t["task"] for t in shown["tasks"]) == ["check", "load", "load", "load"]
    assert {t["status"] for t in shown["tasks"]} == {"Succeeded"}
    crashed_only = folder.cascade("runs", "list", "--status", "Crashed", "--output", "json")
    assert [r["run_id"] for r in crashed_only.json()["runs"]] == [crashed["run_id"]]

    folder.log.write_text("")
    resumed = folder.cascade("run", "flow.py:flow", "--resume", crashed["run_id"][:8])
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert folder.calls() == ["slow"]
    newest = folder.runs()[0]
    assert newest["resumed_from"] == crashed["run_id"] and newest["status"] == "Succeeded"
    store.close()


def test_two_processes_recording_into_one_store_at_once_lose_nothing(folder: Folder) -> None:
    markers = [folder.root / "first-here", folder.root / "second-here"]
    procs = []
    for mine, other in (markers, markers[::-1]):
        out = open(folder.root / f"{mine.name}.out", "w")  # noqa: SIM115 - closed below
        procs.append(
            (
                subprocess.Popen(
                    [cascade_script(), "run", "flow.py:busy"],
                    cwd=folder.root,
                    env=folder.env(RUNS_MINE=str(mine), RUNS_OTHER=str(other)),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                ),
                out,
            )
        )
    for proc, out in procs:
        proc.wait(timeout=200)
        out.close()
        log = Path(out.name).read_text()
        assert proc.returncode == 0, log
    runs = folder.runs()
    assert len(runs) == 2
    for recorded in runs:
        assert recorded["status"] == "Succeeded"
        assert recorded["tasks"] == {"Succeeded": 300 + 1 + 300 + 1}
        attempts = folder.show(recorded["run_id"])["attempts"]
        assert len(attempts) == 602
        assert len({a["task_id"] for a in attempts}) == 602
    pids = {r["pid"] for r in runs}
    assert pids == {proc.pid for proc, _ in procs}


# -- the report, rendered ------------------------------------------------------------------------


def chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_ARGS, "--disable-quic", f"--user-data-dir={user_data}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.slow
def test_the_html_report_renders_in_headless_chromium(folder: Folder) -> None:
    if not installed():
        pytest.skip(
            f"{CHROMIUM} is not installed: `python dev.py test` installs Debian's chromium "
            "package with apt-get when it runs as root; this machine could not (not root, no "
            "apt-get, or the install failed)"
        )
    assert folder.cascade("run", "flow.py:flow", RUNS_FAIL="check").code == 1
    (recorded,) = folder.runs()
    attempts = folder.show(recorded["run_id"])["attempts"]
    assert len(attempts) == 3 + 2  # three loads, two attempts of check
    report = folder.root / "run.html"
    written = folder.cascade("runs", "report", recorded["run_id"][:8], "-o", str(report))
    assert written.code == 0 and "wrote" in written.stdout
    html = report.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html

    profile = folder.root / "chromium-profile"
    dom = chromium("--dump-dom", report.as_uri(), user_data=profile)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    for name in ("load", "check", "slow", recorded["run_id"]):
        assert name in page, f"{name!r} is not in the rendered page"
    assert page.count('class="bar"') == len(attempts)
    assert page.count('data-status="Retried"') == 1 and 'data-status="Failed"' in page
    assert "ValueError: check failed" in page

    shot = folder.root / "run.png"
    taken = chromium(
        f"--screenshot={shot}", "--window-size=1200,800", report.as_uri(), user_data=profile
    )
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    colours = png_colours(shot)
    assert len(colours) >= 4, f"the screenshot looks blank: colours {colours}"


def test_report_json_and_a_bad_output_path(folder: Folder) -> None:
    assert folder.cascade("run", "flow.py:flow").code == 0
    made = folder.cascade("runs", "report", "last", "--output", "json")
    assert made.code == 0
    document = made.json()
    assert Path(document["path"]).is_file() and document["run_id"] == folder.runs()[0]["run_id"]
    bad = folder.cascade("runs", "report", "last", "-o", str(folder.root / "no" / "x.html"))
    assert bad.code == 2 and "cannot write" in bad.stderr


def test_runs_help_lists_the_subcommands() -> None:
    result = run_cascade("runs", "--help")
    assert result.code == 0
    for name in ("list", "show", "delete", "prune", "report"):
        assert name in result.stdout
    assert "--resume" in run_cascade("run", "--help").stdout
