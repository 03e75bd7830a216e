"""A post-mortem from the command line, with the installed ``cascade`` and a real SQLite file:
``cascade runs show RUN --task`` shows a failed task's traceback (worker-side frames too) and
logs, ``--status``/``--limit`` filter, ``cascade run --resume auto`` is the line a cron job
needs, ``--explain`` says before a resume which tasks run again and why, ``runs list`` shows
what each run stores, ``runs prune --keep`` and ``cache info`` tell checkpoints from cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_helpers import base_env, run_cascade

pytestmark = pytest.mark.timeout(240)

NIGHTLY = """
import logging
import os

import cascade as cs

log = logging.getLogger("nightly")


def fetch(day):
    if os.environ.get("ORDERS_API") == "down":
        raise ConnectionError(f"the orders API is down on {day}")
    return [120, 80, 45]


@cs.task
def load_customers(day: str) -> int:
    log.info("loading customers for %s", day)
    return 3


@cs.task(retries=1)
def load_orders(day: str) -> list:
    log.warning("calling the orders API for %s", day)
    return fetch(day)


@cs.task(executor="processes")
def parse(day: str) -> str:
    if os.environ.get("PARSE") == "bad":
        int(day)
    return day


@cs.task
def report(customers: int, orders: list, day: str) -> str:
    return f"{customers} customers, {sum(orders)} in orders on {day}"


day = cs.Param("day", default="2026-01-31")
nightly = report(load_customers(day), load_orders(day), parse(day))


@cs.task
def item(i: int) -> int:
    if i % 10 == 3:
        raise ValueError(f"item {i} is bad")
    return i


@cs.task
def count(values: list) -> int:
    return len(values)


wide = count(item.map(list(range(60))))
"""


class Folder:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "nightly.py").write_text(NIGHTLY)
        self.home = root / "home"

    def cascade(self, *args: str, **extra: str) -> Any:
        env = base_env(CASCADE_HOME=str(self.home), **extra)
        env.pop("CASCADE_CACHE_DIR", None)
        return run_cascade(*args, cwd=self.root, env=env, timeout=180)

    def json(self, *args: str) -> Any:
        result = self.cascade(*args, "--output", "json")
        assert result.code == 0, result.stderr
        return result.json()


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


def test_runs_show_task_gives_the_traceback_and_logs_of_every_attempt(folder: Folder) -> None:
    failed = folder.cascade("run", "nightly.py:nightly", ORDERS_API="down")
    assert failed.code == 1
    text = folder.cascade("runs", "show", "last", "--task", "load_orders")
    assert text.code == 0, text.stderr
    out = text.stdout
    assert out.count("Traceback (most recent call last)") == 2  # one per attempt
    assert "ConnectionError: the orders API is down on 2026-01-31" in out
    assert 'File "' in out and "in fetch" in out and "nightly.py" in out
    assert out.count("WARNING  nightly: calling the orders API for 2026-01-31") == 2
    assert "cascade/runtime" not in out

    document = folder.json("runs", "show", "last", "--task", "load_orders")
    attempts = document["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert all("in fetch" in a["traceback"] for a in attempts)
    assert [line["message"] for line in attempts[0]["logs"]] == [
        "calling the orders API for 2026-01-31"
    ]
    assert attempts[0]["logs"][0]["level"] == "WARNING"
    unknown = folder.cascade("runs", "show", "last", "--task", "nope")
    assert unknown.code == 2 and "has no task 'nope'" in unknown.stderr


def test_a_failure_on_processes_keeps_the_worker_side_frames(folder: Folder) -> None:
    assert folder.cascade("run", "nightly.py:nightly", PARSE="bad").code == 1
    document = folder.json("runs", "show", "last", "--task", "parse")
    (attempt,) = document["attempts"]
    assert "in parse" in attempt["traceback"] and "int(day)" in attempt["traceback"]
    assert "ValueError: invalid literal for int()" in attempt["traceback"]


def test_resume_auto_and_explain(folder: Folder) -> None:
    fresh = folder.cascade("run", "nightly.py:nightly", "--resume", "auto", "--explain")
    assert fresh.code == 0, fresh.stderr
    assert "a fresh run, nothing to explain" in fresh.stdout
    assert folder.cascade("run", "nightly.py:nightly", ORDERS_API="down").code == 1
    failed_id = folder.json("runs", "list")["runs"][0]["run_id"]

    explained = folder.cascade(
        "run", "nightly.py:nightly", "--resume", "auto", "--explain", "--param", "day=2026-02-01"
    )
    assert explained.code == 0, explained.stderr
    lines = explained.stdout
    assert f"resuming run {failed_id[:8]} (Failed)" in lines
    orders = next(line for line in lines.splitlines() if line.strip().startswith("load_orders"))
    assert orders.endswith(f"runs again: it failed in run {failed_id[:8]}")
    assert 'runs again: param \'day\' changed ("2026-01-31" -> "2026-02-01")' in lines
    latest = folder.json("runs", "list")["runs"][0]
    assert latest["resumed_from"] == failed_id and latest["status"] == "Succeeded"

    again = folder.cascade("run", "nightly.py:nightly", "--resume", "auto")
    assert again.code == 0
    assert folder.json("runs", "list")["runs"][0]["resumed_from"] is None  # the last succeeded

    shown = folder.json("runs", "show", latest["run_id"][:8])
    why = {t["task"]: t["why_ran"] for t in shown["tasks"]}
    assert why["load_orders"] == f"it failed in run {failed_id[:8]}"
    assert why["load_customers"] is not None and "param 'day' changed" in why["load_customers"]


def test_show_merges_a_wide_run_and_filters_by_status_and_limit(folder: Folder) -> None:
    assert folder.cascade("run", "nightly.py:wide", "--keep-going").code == 1
    text = folder.cascade("runs", "show", "last")
    assert text.code == 0
    row = next(line for line in text.stdout.splitlines() if line.startswith("item "))
    assert "54 ✓ 6 ✗" in row and "60 calls" in row
    failed = folder.json("runs", "show", "last", "--status", "failed")
    assert sorted(t["task_id"].split("[")[1] for t in failed["tasks"]) == sorted(
        f"{i}]" for i in (3, 13, 23, 33, 43, 53)
    )
    limited = folder.json("runs", "show", "last", "--status", "failed", "--limit", "2")
    assert len(limited["tasks"]) == 2


def test_list_shows_stored_size_prune_keeps_the_latest_and_cache_info_separates(
    folder: Folder,
) -> None:
    for _ in range(3):
        assert folder.cascade("run", "nightly.py:nightly").code == 0
    runs = folder.json("runs", "list")["runs"]
    assert all(run["checkpoint_bytes"] and run["checkpoint_bytes"] > 0 for run in runs)
    text = folder.cascade("runs", "list")
    assert "Stored" in text.stdout

    # checkpoints live in the cache directory beside the run store ($CASCADE_HOME/cache)
    info = folder.json("cache", "info", "--dir", str(folder.home / "cache"))
    assert info["checkpoints"]["entries"] >= 3 and info["cache"]["entries"] == 0

    pruned = folder.json("runs", "prune", "--keep", "1")
    assert len(pruned["deleted"]) == 2 and pruned["keep"] == 1
    assert [r["run_id"] for r in folder.json("runs", "list")["runs"]] == [runs[0]["run_id"]]
    usage = folder.cascade("runs", "prune")
    assert usage.code == 2 and "--older-than AGE, --keep N, or both" in usage.stderr


CACHED = """
import cascade as cs


@cs.task(cache=cs.InputHashCache())
def load(day: str) -> str:
    return f"rows of {day}"


@cs.task(cache=cs.InputHashCache())
def summary(rows: str) -> str:
    return rows.upper()


flow = summary(load(cs.Param("day", default="2026-01-31")))
"""


def test_runs_show_and_the_report_say_why_a_cached_task_missed(folder: Folder) -> None:
    (folder.root / "cached.py").write_text(CACHED)
    assert folder.cascade("run", "cached.py:flow").code == 0
    first = folder.json("runs", "show", "last")
    assert [t["why_ran"] for t in first["tasks"]] == [None, None]  # no earlier entry

    assert folder.cascade("run", "cached.py:flow", "--param", "day=2026-02-01").code == 0
    shown = folder.json("runs", "show", "last")
    why = {t["task"]: t["why_ran"] for t in shown["tasks"]}
    assert why["load"] == "param 'day' changed (\"2026-01-31\" -> \"2026-02-01\"), its input 'day'"
    assert why["summary"] == "its input 'rows' changed: it comes from task 'load', a dependency"
    assert [a["why_ran"] for a in shown["attempts"]] == [why["load"], why["summary"]]
    text = folder.cascade("runs", "show", "last")
    assert text.code == 0
    assert "ran because param 'day' changed" in " ".join(text.stdout.split())

    report = folder.root / "report.html"
    assert folder.cascade("runs", "report", "last", "-o", str(report)).code == 0
    html = report.read_text()
    assert "param &#x27;day&#x27; changed" in html or "param 'day' changed" in html
    assert "it comes from task &#x27;load&#x27;" in html or "it comes from task 'load'" in html


# -- the report in a real browser ------------------------------------------------------------


REPORTED = """
import logging

import cascade as cs

log = logging.getLogger("reported")


@cs.task(run_name="fetch-{page}", pools={"api": 1})
def fetch(page: int) -> int:
    if page in (3, 7):
        log.error("page %d came back empty", page)
        raise LookupError(f"page {page} is empty")
    return page


@cs.task
def part(i: int) -> int:
    return i * 2


@cs.task
def fan_out(n: int) -> list:
    return [part(i) for i in range(n)]


@cs.task
def total(pages: list, parts: list) -> int:
    return sum(pages) + sum(parts)


flow = total(fetch.map(list(range(10))), fan_out(5))
"""


@pytest.mark.slow
def test_the_report_opens_a_traceback_block_and_shows_map_counts_and_grouped_calls(
    folder: Folder, chromium_browser: Any
) -> None:
    (folder.root / "reported.py").write_text(REPORTED)
    assert folder.cascade("run", "reported.py:flow", "--keep-going", "--pool", "api=1").code == 1
    report = folder.root / "run.html"
    assert folder.cascade("runs", "report", "last", "-o", str(report)).code == 0

    page = chromium_browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(report.as_uri())
        # the header names the real failures
        facts = page.locator("table.facts").inner_text()
        assert "fetch-3: LookupError: page 3 is empty" in facts
        assert "fetch-7: LookupError: page 7 is empty" in facts
        # a traceback block opens on click, with the worker-side frame and the log line
        block = page.locator("details.error").filter(has_text="fetch-3").first
        traceback = block.locator("pre.traceback")
        assert not traceback.is_visible()
        block.locator("summary").click()
        assert traceback.is_visible()
        text = traceback.inner_text()
        assert "in fetch" in text and "LookupError: page 3 is empty" in text
        assert "page 3 came back empty" in block.inner_text()
        # the map node shows its counts; the five calls fan_out returned are one node
        mapped = page.locator("g.node[data-kind='map']")
        # (SVG text: text_content, an SVG element has no inner_text)
        assert mapped.locator("text.counts").text_content() == "8/10 ✓ 2 ✗"
        grouped = page.locator("g.node[data-kind='calls']")
        assert grouped.count() == 1 and grouped.get_attribute("data-count") == "5"
        assert "part ×5" in (grouped.text_content() or "")
        # round ticks, none cut off at the right edge
        ticks = page.locator("svg.timeline text.tick").all_text_contents()
        assert ticks[0] == "0" and len(ticks) >= 3
        width = page.locator("svg.timeline").bounding_box()
        last = page.locator("svg.timeline text.tick").last.bounding_box()
        assert width is not None and last is not None
        assert last["x"] + last["width"] <= width["x"] + width["width"]
        # a skipped-upstream call is a circle, not a diamond
        assert page.locator("circle.skip.not-run").count() >= 1
        # calls that waited for the pool show the wait, hatched, before their bar
        waits = page.locator("rect.wait")
        assert waits.count() >= 1
        assert "for pool 'api'" in (waits.first.locator("title").text_content() or "")
    finally:
        page.close()
