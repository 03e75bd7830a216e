"""How long the page of a 100,000-task run takes to load in ``cascade ui``. Target: under 3 s.

Run with ``python benchmarks/bench_ui.py`` (it needs cascade-ui, Playwright for Python and
Debian's Chromium at /usr/bin/chromium, as the tests do). It records one run into a temporary
store: a ``map`` of 100,000 items into one sum (100,001 tasks), then serves that store with the
installed ``cascade ui`` on a free port of 127.0.0.1 and opens the run's page in headless
Chromium, timing from navigation until the graph, the timeline (every attempt) and the task
table (by task, as it first shows) are drawn (the page sets ``data-ready`` on its body then).

"cold" is a fresh ``cascade ui`` process (the server reads and aggregates the record for the
first time); "warm" is the same page opened again (the server keeps a finished run's view). The
baseline is the page of a 10-task run in the same store, loaded the same way: the ratio says
what the size costs. Also shown, as what other work on the machine changes least: the CPU time
the server spent on the cold page, and how long the page's main thread in Chromium was busy.
Best of ``REPEAT``; nothing asserts on time. Chromium is launched as the tests launch it
(``tests/headless_chromium.py``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

import cascade as cs

# How the tests launch Chromium (its path and flags), shared with them: tests/headless_chromium.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from headless_chromium import CHROMIUM, installed, launch

N = 100_000
REPEAT = 3


@cs.task
async def inc(x: int) -> int:
    return x + 1


@cs.task
def add_up(values: list[int]) -> int:
    return sum(values)


def record(store: Path, size: int) -> str:
    """Record a run of a ``size``-item map into ``store``; its run id."""
    assert cs.run(add_up(inc.map(range(size))), record=str(store), log_level=None) == sum(
        range(1, size + 1)
    )
    from cascade.records import SQLiteRunStore

    return SQLiteRunStore(store).runs(limit=1)[0].run_id


class Server:
    """``cascade ui`` on a free port, for as long as the ``with`` block."""

    def __init__(self, store: Path) -> None:
        script = Path(sys.executable).with_name("cascade")
        self.process = subprocess.Popen(
            [str(script), "ui", "--store", str(store), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"http://[\d.]+:\d+/", line)
        if found is None:
            self.process.kill()
            raise RuntimeError(f"cascade ui did not start: {line}{self.process.stdout.read()}")
        self.url = found.group(0)

    def cpu(self) -> float:
        """CPU seconds the server process has used so far (user and system)."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)


def load_time(browser: object, url: str) -> tuple[float, float]:
    """Seconds from navigation until the page is drawn, and how long the page's main thread
    was busy meanwhile (Chromium's ``TaskDuration``: parsing, script, layout, painting)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    try:
        devtools = page.context.new_cdp_session(page)
        devtools.send("Performance.enable")
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        took = time.perf_counter() - started
        metrics = devtools.send("Performance.getMetrics")["metrics"]
        busy = next(m["value"] for m in metrics if m["name"] == "TaskDuration")
        return took, float(busy)
    finally:
        page.close()


def main() -> int:
    if not installed():
        print(f"{CHROMIUM} is not installed (python dev.py test installs it); skipped")
        return 0
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="cascade-bench-ui-") as folder:
        os.environ["CASCADE_HOME"] = folder
        store = Path(folder) / "runs.sqlite3"
        began = time.perf_counter()
        big = record(store, N)
        print(f"recorded a {N + 1:,}-task run in {time.perf_counter() - began:.1f} s")
        small = record(store, 9)
        cold: dict[str, list[float]] = {big: [], small: []}
        warm: dict[str, list[float]] = {big: [], small: []}
        server_cpu: dict[str, list[float]] = {big: [], small: []}
        page_busy: dict[str, list[float]] = {big: [], small: []}
        with sync_playwright() as playwright:
            browser = launch(playwright)
            for _ in range(REPEAT):
                for run_id in (small, big):
                    with Server(store) as server:
                        url = f"{server.url}runs/{run_id}"
                        before = server.cpu()
                        took, busy = load_time(browser, url)
                        server_cpu[run_id].append(server.cpu() - before)
                        cold[run_id].append(took)
                        page_busy[run_id].append(busy)
                        warm[run_id].append(load_time(browser, url)[0])
            browser.close()
    for label, times in (("cold", cold), ("warm", warm)):
        big_best, small_best = min(times[big]), min(times[small])
        print(
            f"{label}: the {N + 1:,}-task run's page loads in {big_best:.2f} s "
            f"(the 10-task run's: {small_best:.2f} s, ratio {big_best / small_best:.1f}x)"
        )
    print(
        f"the server's CPU time for the cold page: {min(server_cpu[big]):.2f} s "
        f"(the 10-task run's: {min(server_cpu[small]):.2f} s)"
    )
    print(
        f"the page's main thread, busy for the cold page: {min(page_busy[big]):.2f} s "
        f"(the 10-task run's: {min(page_busy[small]):.2f} s)"
    )
    best = min(cold[big])
    print(f"target: under 3 s cold: {'met' if best < 3 else 'NOT met'} ({best:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
