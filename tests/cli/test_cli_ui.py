"""``cascade ui`` (issue 25): the installed command serving a real SQLite run store on a free
port of 127.0.0.1, driven by Debian's Chromium through Playwright for Python (launched with the
system browser's path: nothing is downloaded).

Runs are recorded by the real ``cascade run`` into a temporary ``CASCADE_HOME``: one that
succeeds (a map, a param), one that fails after a retry, a dynamic graph, and a resume. The
live test starts a run in another process while the pages are open, and synchronises on
marker files the pipeline writes, never on sleeps.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import base_env, cascade_script, png_colours, run_cascade, wait_for_marker

from cascade.records import RecordBatch, RecordedRun, RunEnd, SQLiteRunStore
from cascade_ui.columns import unpack_columns

pytestmark = pytest.mark.timeout(240)

#: How long a page may take to show what the store holds (generous: the machine is shared).
WAIT_MS = 30_000

FLOW = """
import logging
import os
import pathlib
import time

import cascade as cs

note = cs.Param("note", default="hello")


@cs.task
def load(i: int) -> int:
    return i * 10


@cs.task(retries=1)
def check(values: list, note: str) -> list:
    if os.environ.get("UI_FAIL") == "check":
        logging.getLogger("flow").warning("checking <i>%d</i> values", len(values))
        raise ValueError("check failed: <b>not bold</b>")
    return values


@cs.task
def total(values: list) -> int:
    return sum(values)


flow = total(check(load.map(range(4)), note))


@cs.task
def parse(name: str) -> int:
    return len(name)


@cs.task(dynamic=True)
def fan(names: list) -> list:
    return [parse(n) for n in names]


@cs.task
def add(values: list) -> int:
    return sum(values)


dynamic = add(fan(["a", "bb", "ccc"]))


@cs.task
def first() -> int:
    return 1


@cs.task
def gate(x: int) -> int:
    marker = pathlib.Path(os.environ["UI_GATE"])
    with open(str(marker) + ".log", "a") as log:
        log.write("gate started\\n")
    while not marker.exists():  # released by the test
        time.sleep(0.01)
    return x + 1


@cs.task
def after(x: int) -> int:
    return x * 2


live = after(gate(first()))

wide = total(load.map(range(300)))
"""


@dataclass
class Folder:
    """A folder with the pipeline and its own run store (``CASCADE_HOME``)."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "home" / "runs.sqlite3"

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(CASCADE_HOME=str(self.root / "home"), **extra)

    def cascade(self, *args: str, **extra: str) -> Any:
        return run_cascade(*args, env=self.env(**extra), cwd=self.root, timeout=120)

    def runs(self) -> list[dict[str, Any]]:
        listed = self.cascade("runs", "list", "--output", "json")
        assert listed.code == 0, listed.stderr
        return list(listed.json()["runs"])


class Server:
    """The installed ``cascade ui`` on a free port, in its own process group (as a terminal
    starts it), stopped with Ctrl-C (SIGINT)."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [cascade_script(), "ui", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.banner = self.process.stdout.readline()
        found = re.search(r"http://([\d.]+):(\d+)/", self.banner)
        if found is None:
            self.process.kill()
            _, err = self.process.communicate(timeout=30)
            raise AssertionError(f"cascade ui did not start: {self.banner!r} {err}")
        self.host, self.port = found.group(1), int(found.group(2))
        self.url = found.group(0)

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C; the exit code and what it printed after the banner."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err

    def exchange(
        self, path: str, *, host: str | None = None, method: str = "GET"
    ) -> tuple[int, bytes, dict[str, str]]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            headers = {"Host": host} if host is not None else {}
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()

    def request(
        self, path: str, *, host: str | None = None, method: str = "GET"
    ) -> tuple[int, str, dict[str, str]]:
        status, body, headers = self.exchange(path, host=host, method=method)
        return status, body.decode(), headers

    def raw(self, path: str) -> tuple[bytes, str]:
        """A 200 response's body as bytes, and its content type."""
        status, body, headers = self.exchange(path)
        assert status == 200, (path, status, body[:500])
        return body, headers["content-type"]

    def api(self, path: str) -> Any:
        status, body, _ = self.request(path)
        assert status == 200, (path, status, body)
        return json.loads(body)


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    (tmp_path / "flow.py").write_text(FLOW)
    return Folder(tmp_path)


@pytest.fixture
def serve(folder: Folder) -> Iterator[Any]:
    started: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(*args, env=folder.env(), cwd=folder.root)
        started.append(server)
        return server

    yield start
    for server in started:
        code, out, err = server.stop()
        assert code == 0, (code, out, err)


@pytest.fixture
def browser(chromium_browser: Any) -> Any:
    return chromium_browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # Without the Content Security Policy: stored markup must show as text by escaping alone
    # (and the checks below evaluate script in the page).
    opened = browser.new_page(viewport={"width": 1300, "height": 1000}, bypass_csp=True)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("dialog", lambda dialog: problems.append(f"a dialog opened: {dialog.message}"))
    opened.on(
        "request",
        lambda r: None if r.url.startswith("http://127.0.0.1") else problems.append(r.url),
    )
    yield opened
    opened.close()
    assert not problems, problems


def record_four_runs(folder: Folder) -> dict[str, str]:
    """A succeeded run (map, param holding markup), a failed one (a retry), a dynamic graph
    and a resume of the failed one: their run ids by kind."""
    script = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"
    assert folder.cascade("run", "flow.py:flow", "--param", f"note={script}").code == 0
    assert folder.cascade("run", "flow.py:flow", UI_FAIL="check").code == 1
    assert folder.cascade("run", "flow.py:dynamic").code == 0
    assert folder.cascade("run", "flow.py:flow", "--resume", "last").code == 0
    resumed, dynamic, failed, succeeded = (r["run_id"] for r in folder.runs())
    return {"succeeded": succeeded, "failed": failed, "dynamic": dynamic, "resumed": resumed}


def only(page: Any, run_id: str) -> None:
    """Wait until the runs list shows ``run_id`` and nothing else."""
    page.wait_for_function(
        "(id) => { const rows = document.querySelectorAll('#runs tbody tr');"
        " return rows.length === 1 && rows[0].dataset.runId === id; }",
        arg=run_id,
        timeout=WAIT_MS,
    )


def node(page: Any, name: str) -> Any:
    return page.locator(f"#graph g.node:has(text.label:text-is('{name}'))")


# -- what the pages show ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_runs_list_and_the_run_pages_show_the_recorded_runs(
    folder: Folder, serve: Any, page: Any
) -> None:
    ids = record_four_runs(folder)
    server = serve()

    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 4
    listed = [rows.nth(i).get_attribute("data-run-id") for i in range(4)]
    assert listed == [ids["resumed"], ids["dynamic"], ids["failed"], ids["succeeded"]]
    failed_row = page.locator(f"tr[data-run-id='{ids['failed']}']")
    assert failed_row.get_attribute("data-status") == "Failed"
    assert failed_row.locator("td").first.inner_text() == ids["failed"][:8]
    assert failed_row.locator(".chip[data-status='Succeeded']").get_attribute("data-count") == "4"
    assert failed_row.locator(".chip[data-status='Failed']").get_attribute("data-count") == "1"
    resumed_row = page.locator(f"tr[data-run-id='{ids['resumed']}']")
    assert resumed_row.locator("td").last.inner_text() == ids["failed"][:8]

    # Filters: status, target, run id prefix (the list follows them without a reload).
    page.select_option("#f-status", "Failed")
    only(page, ids["failed"])
    page.select_option("#f-status", "")
    page.fill("#f-target", "flow.py:dynamic")
    only(page, ids["dynamic"])
    page.fill("#f-target", "")
    page.fill("#f-q", ids["succeeded"][:6])
    only(page, ids["succeeded"])
    assert "q=" in page.url  # the filters are in the address, to share or reload

    # The failed run: a map node with its counts, the retried then failed check, the tasks
    # that did not run, the error shown as text.
    page.goto(f"{server.url}runs/{ids['failed'][:8]}")
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    assert page.locator("#run-status").inner_text() == "Failed"
    load = node(page, "load [map]")
    assert load.get_attribute("data-status") == "Succeeded"
    assert load.get_attribute("data-counts") == "4 ✓4"
    check = node(page, "check")
    assert check.get_attribute("data-status") == "Failed"
    assert check.get_attribute("data-counts") == "2 attempts"
    assert node(page, "total").get_attribute("data-status") == "NotRun"
    failures = page.locator("#failures details")
    assert failures.count() == 2
    assert [failures.nth(i).locator(".badge").inner_text() for i in range(2)] == [
        "Retried",
        "Failed",
    ]
    failures.nth(1).locator("summary").click()
    assert (
        "ValueError: check failed: <b>not bold</b>"
        in failures.nth(1).locator("pre").first.inner_text()
    )
    assert page.locator("#failures b").count() == 0
    # With its traceback (from the task's own frame) and what it logged, as text.
    traceback = failures.nth(1).locator("pre.traceback").inner_text()
    assert "in check" in traceback and "ValueError: check failed" in traceback
    logs = failures.nth(1).locator("table.logs").inner_text()
    assert "WARNING" in logs and "checking <i>4</i> values" in logs
    assert page.locator("#failures i").count() == 0
    assert page.locator("#timeline").get_attribute("data-bars") == "6"  # 4 loads, 2 checks
    assert json.loads(page.locator("#timeline").get_attribute("data-states")) == {
        "Succeeded": 4,
        "Retried": 1,
        "Failed": 1,
    }
    assert page.locator("#tasks").get_attribute("data-total") == "6"  # 4 loads, check, total
    page.select_option("#t-status", "NotRun")
    page.wait_for_selector("#tasks[data-total='1']", timeout=WAIT_MS)
    assert page.locator("#tasks tbody tr td").first.inner_text() == "total"
    page.select_option("#t-status", "")
    page.fill("#t-name", "load")
    page.wait_for_selector("#tasks[data-total='4']", timeout=WAIT_MS)

    # The dynamic run: the tasks fan added are one node with their count, under fan.
    page.goto(f"{server.url}runs/{ids['dynamic']}")
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    parse = node(page, "parse ×3")
    assert parse.get_attribute("data-kind") == "dynamic"
    assert parse.get_attribute("data-status") == "Succeeded"
    assert parse.get_attribute("data-counts") == "3 ✓3"
    assert node(page, "fan").get_attribute("data-status") == "Succeeded"
    assert node(page, "add").get_attribute("data-status") == "Succeeded"

    # The resume: the loads came from the checkpoint; it links the run it resumed.
    page.goto(f"{server.url}runs/{ids['resumed']}")
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    assert page.locator("#run-status").inner_text() == "Succeeded"
    assert node(page, "load [map]").get_attribute("data-status") == "Checkpoint"
    assert node(page, "check").get_attribute("data-status") == "Succeeded"
    link = page.locator("tr[data-fact='Resumed from'] a")
    assert link.inner_text() == ids["failed"]
    link.click()
    page.wait_for_url(f"**/runs/{ids['failed']}")


@pytest.mark.slow
def test_stored_markup_shows_as_text_and_a_screenshot_is_not_blank(
    folder: Folder, serve: Any, page: Any
) -> None:
    script = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"
    assert folder.cascade("run", "flow.py:flow", "--param", f"note={script}").code == 0
    (run,) = folder.runs()
    server = serve()
    page.goto(f"{server.url}runs/{run['run_id']}")
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    assert page.locator("tr[data-param='note'] pre").inner_text() == json.dumps(script)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#params img, #params script").count() == 0
    shot = folder.root / "run.png"
    page.screenshot(path=str(shot), full_page=True)
    assert len(png_colours(shot)) >= 4, "the run page's screenshot looks blank"


@pytest.mark.slow
def test_a_wide_map_is_one_node_a_drawn_lane_and_a_table_by_task_or_paged(
    folder: Folder, serve: Any, page: Any
) -> None:
    assert folder.cascade("run", "flow.py:wide").code == 0
    (run,) = folder.runs()
    server = serve()
    page.goto(f"{server.url}runs/{run['run_id']}")
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    assert node(page, "load [map]").get_attribute("data-counts") == "300 ✓300"
    timeline = page.locator("#timeline")
    assert timeline.get_attribute("data-bars") == "301"  # every attempt, in two lanes
    assert timeline.get_attribute("data-lanes") == "2"
    assert json.loads(timeline.get_attribute("data-states") or "{}") == {"Succeeded": 301}

    # Hovering a bar of the map's lane names its item (the ids come when first needed).
    box = timeline.bounding_box()
    assert box is not None
    tip = page.locator("#tip")
    for x in range(212, int(box["width"]), 4):
        page.mouse.move(box["x"] + x, box["y"] + 30)
        if tip.is_visible():
            break
    assert tip.is_visible(), "no bar of the map's lane answered the mouse"
    page.wait_for_function(
        "() => /^load-\\w+\\[\\d+\\], attempt 1: Succeeded/.test("
        "document.getElementById('tip').textContent)",
        timeout=WAIT_MS,
    )

    # The table, by task (the default): a row per node with its counts, from the run's
    # document; a row opens to its items, 20 at a time.
    tasks = page.locator("#tasks")
    assert tasks.get_attribute("data-form") == "grouped"
    assert tasks.get_attribute("data-total") == "301"
    rows = page.locator("#tasks tbody tr.group-row")
    assert [rows.nth(i).get_attribute("data-group-id") for i in range(rows.count())] == [
        node(page, "load [map]").get_attribute("data-group-id"),
        node(page, "total").get_attribute("data-group-id"),
    ]
    load_row = rows.first
    assert load_row.get_attribute("data-units") == "300"
    assert load_row.locator(".chip[data-status='Succeeded']").get_attribute("data-count") == "300"
    members = page.locator("#tasks tbody tr.member")
    assert members.count() == 0
    load_row.locator("button.expand").click()
    page.wait_for_function("() => document.querySelectorAll('#tasks tr.member').length === 20")
    more = page.locator("#tasks tr.more-row button")
    assert more.inner_text() == "Show 20 more (20 of 300 shown)"
    ids = [members.nth(i).get_attribute("data-task-id") or "" for i in range(20)]
    assert all(re.fullmatch(r"load-\w+\[\d+\]", i) for i in ids) and len(set(ids)) == 20
    more.click()
    page.wait_for_function("() => document.querySelectorAll('#tasks tr.member').length === 40")
    assert more.inner_text() == "Show 20 more (40 of 300 shown)"
    shown = [members.nth(i).get_attribute("data-task-id") for i in range(40)]
    assert shown[:20] == ids and len(set(shown)) == 40
    # The items sit under their node's row, before the next node's.
    order = page.eval_on_selector_all(
        "#tasks tbody tr", "rows => rows.map(r => r.className || 'task')"
    )
    assert order == ["group-row", *["member"] * 40, "more-row", "group-row"]
    load_row.locator("button.expand").click()
    page.wait_for_function("() => document.querySelectorAll('#tasks tr.member').length === 0")

    # One row per task instead: 100 a page, every item reachable.
    page.uncheck("#t-by-task")
    page.wait_for_selector("#tasks[data-form='tasks']", timeout=WAIT_MS)
    assert page.locator("#t-range").inner_text() == "1–100 of 301"
    assert page.locator("#tasks tbody tr").count() == 100
    assert page.locator("#t-prev").is_disabled()
    first_page = page.locator("#tasks tbody tr").first.get_attribute("data-task-id")
    page.click("#t-next")
    page.wait_for_function(
        "() => document.getElementById('t-range').textContent === '101–200 of 301'",
        timeout=WAIT_MS,
    )
    assert page.locator("#tasks tbody tr").first.get_attribute("data-task-id") != first_page
    for shown_range in ("201–300 of 301", "301–301 of 301"):
        page.click("#t-next")
        page.wait_for_function(
            "(shown) => document.getElementById('t-range').textContent === shown",
            arg=shown_range,
            timeout=WAIT_MS,
        )
    assert page.locator("#t-next").is_disabled()
    assert page.locator("#tasks tbody tr").count() == 1
    assert page.locator("#tasks tbody tr td").first.inner_text() == "total"  # it ran last
    page.check("#t-by-task")
    page.wait_for_selector("#tasks[data-form='grouped']", timeout=WAIT_MS)
    assert page.locator("#tasks tbody tr.group-row").count() == 2


@pytest.mark.slow
def test_a_traced_runs_page_shows_its_trace_id_host_and_version(
    folder: Folder, serve: Any, page: Any
) -> None:
    """A run recorded while an OpenTelemetry span was current keeps its trace id (cascade-otel
    tests that part); the page shows it with the host, pid and Cascade version."""
    store = SQLiteRunStore(folder.store)
    now = time.time()
    traced = RecordedRun(
        "f" * 32,
        "total",
        "Succeeded",
        started=now,
        ended=now + 1,
        duration=1.0,
        cascade_version="9.9.9",
        host="builder-7",
        pid=4242,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )
    store.write(
        RecordBatch(traced.run_id, seq=1, start=traced, end=RunEnd("Succeeded", now + 1, 1.0))
    )
    store.close()
    server = serve()
    page.goto(f"{server.url}runs/ffffffff")
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    facts = {
        row.locator("td").first.inner_text(): row.locator("td").last.inner_text()
        for row in page.locator("#facts tr").all()
    }
    assert facts["Trace id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert facts["Host / pid"] == "builder-7 / 4242"
    assert facts["Cascade"] == "9.9.9"


# -- live ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_in_another_process_appears_and_moves_without_a_reload(
    folder: Folder, serve: Any, browser: Any, page: Any
) -> None:
    assert folder.cascade("run", "flow.py:flow").code == 0  # the store exists before
    server = serve()
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    assert page.locator("#runs tbody tr").count() == 1
    page.evaluate("window.sameDocument = true")

    gate = folder.root / "gate"
    running = subprocess.Popen(
        [cascade_script(), "run", "flow.py:live"],
        cwd=folder.root,
        env=folder.env(UI_GATE=str(gate)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_marker(Path(f"{gate}.log"), "gate started")
        # The list shows the new run, running, and it was not reloaded.
        page.wait_for_selector("#runs tbody tr[data-status='Running']", timeout=WAIT_MS)
        assert page.locator("#runs tbody tr").count() == 2
        assert page.evaluate("window.sameDocument") is True
        run_id = page.locator("#runs tbody tr[data-status='Running']").get_attribute("data-run-id")

        run_page = browser.new_page(viewport={"width": 1300, "height": 1000}, bypass_csp=True)
        run_page.goto(f"{server.url}runs/{run_id}")
        run_page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
        run_page.evaluate("window.sameDocument = true")
        assert run_page.locator("#run-status").inner_text() == "Running"
        assert node(run_page, "first").get_attribute("data-status") == "Succeeded"
        assert node(run_page, "gate").get_attribute("data-status") == "Running"
        assert node(run_page, "after").get_attribute("data-status") == "Pending"

        gate.write_text("go")
        assert running.wait(timeout=120) == 0, running.stderr.read() if running.stderr else ""
        run_page.wait_for_selector("#run-status[data-status='Succeeded']", timeout=WAIT_MS)
        for name in ("first", "gate", "after"):
            assert node(run_page, name).get_attribute("data-status") == "Succeeded"
        run_page.wait_for_selector("#timeline[data-bars='3']", timeout=WAIT_MS)
        assert run_page.evaluate("window.sameDocument") is True
        run_page.close()

        page.wait_for_selector(
            f"#runs tbody tr[data-run-id='{run_id}'][data-status='Succeeded']", timeout=WAIT_MS
        )
        assert page.evaluate("window.sameDocument") is True
    finally:
        gate.write_text("go")
        if running.poll() is None:
            running.kill()
        running.wait(timeout=60)


# -- refusals, errors and stopping --------------------------------------------------------------


def test_foreign_host_headers_and_writes_are_refused(folder: Folder, serve: Any) -> None:
    assert folder.cascade("run", "flow.py:flow").code == 0
    server = serve()
    assert server.request("/")[0] == 200
    assert server.request("/", host=f"localhost:{server.port}")[0] == 200
    status, body, _ = server.request("/api/runs", host=f"rebound.example:{server.port}")
    assert status == 400 and "Invalid host header" in body
    assert server.request("/api/runs", method="POST")[0] == 405
    (run,) = folder.runs()
    assert server.request(f"/api/runs/{run['run_id']}", method="DELETE")[0] == 405
    _, _, headers = server.request("/")
    assert "default-src 'self'" in headers["content-security-policy"]


def test_an_unknown_run_is_a_404_page(folder: Folder, serve: Any) -> None:
    assert folder.cascade("run", "flow.py:flow").code == 0
    server = serve()
    status, body, headers = server.request("/runs/nosuchrun")
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert "no run &#x27;nosuchrun&#x27; is recorded in" in body
    status, body, _ = server.request("/runs/%3Cb%3Ex")
    assert status == 404 and "<b>x" not in body and "&lt;b&gt;x" in body
    status, body, _ = server.request("/api/runs/nosuchrun")
    assert status == 404 and json.loads(body)["error"].startswith("no run 'nosuchrun'")
    assert server.request("/no/such/page")[0] == 404


def test_ctrl_c_stops_the_server_with_exit_0(folder: Folder) -> None:
    server = Server(env=folder.env(), cwd=folder.root)
    assert f"store {folder.store}" in server.banner
    assert server.request("/api/runs")[0] == 200
    code, out, err = server.stop()
    assert code == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_another_host_than_loopback_prints_a_warning(folder: Folder) -> None:
    server = Server("--host", "0.0.0.0", env=folder.env(), cwd=folder.root)
    code, _, err = server.stop()
    assert code == 0
    assert "warning: listening on 0.0.0.0" in err and "no login" in err


def test_a_port_in_use_is_a_clear_error(folder: Folder, serve: Any) -> None:
    server = serve()
    result = folder.cascade("ui", "--port", str(server.port))
    assert result.code == 1
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.stderr


@pytest.mark.slow
def test_a_missing_store_is_an_empty_page_saying_how_to_record(
    folder: Folder, serve: Any, page: Any
) -> None:
    missing = folder.root / "nowhere" / "runs.sqlite3"
    server = serve("--store", str(missing))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    text = page.locator("#empty").inner_text()
    assert "No runs are recorded" in text and "cascade run" in text
    assert page.locator("#store").inner_text() == str(missing)
    assert not missing.parent.exists(), "reading a store must not create it"


# -- the JSON API -------------------------------------------------------------------------------


def test_the_json_api(folder: Folder, serve: Any) -> None:
    assert folder.cascade("run", "flow.py:flow", UI_FAIL="check").code == 1
    (run,) = folder.runs()
    server = serve()
    listed = server.api("/api/runs")
    assert listed["store"] == str(folder.store) and listed["exists"] is True
    (summary,) = listed["runs"]
    assert summary["run_id"] == run["run_id"] and summary["status"] == "Failed"
    assert summary["tasks"] == {"Succeeded": 4, "Failed": 1}
    assert server.api("/api/runs?status=Succeeded")["runs"] == []
    assert server.api(f"/api/runs?q={run['run_id'][:5]}")["runs"][0]["run_id"] == run["run_id"]
    assert server.api("/api/runs?target=flow.py:flow")["runs"][0]["run_id"] == run["run_id"]

    document = server.api(f"/api/runs/{run['run_id'][:8]}")
    assert document["run_id"] == run["run_id"]
    by_name = {g["name"]: g for g in document["groups"]}
    assert by_name["load"]["kind"] == "map" and by_name["load"]["states"] == {"Succeeded": 4}
    assert by_name["check"]["attempts"] == 2 and by_name["check"]["status"] == "Failed"
    assert by_name["total"]["status"] == "NotRun"
    assert [f["state"] for f in document["failures"]] == ["Retried", "Failed"]
    assert document["failures"][1]["error"] == "ValueError: check failed: <b>not bold</b>"

    page = server.api(f"/api/runs/{run['run_id']}/tasks?limit=2&offset=1")
    assert page["total"] == 6 and len(page["tasks"]) == 2 and page["offset"] == 1
    failed = server.api(f"/api/runs/{run['run_id']}/tasks?status=Failed")
    assert [t["task"] for t in failed["tasks"]] == ["check"]
    assert failed["tasks"][0]["attempts"] == 2
    timeline = server.api(f"/api/runs/{run['run_id']}/timeline")
    assert timeline["total"] == 6 and len(timeline["start_us"]) == 6
    assert sorted(timeline["states"][s] for s in timeline["state"]) == sorted(
        ["Succeeded"] * 4 + ["Retried", "Failed"]
    )
    details = server.api(f"/api/runs/{run['run_id']}/timeline?fields=suffix,attempt")
    assert "start_us" not in details
    assert sorted(details["suffix"]) == ["", "", "[0]", "[1]", "[2]", "[3]"]
    assert sorted(details["attempt"]) == [1, 1, 1, 1, 1, 2]
    rest = server.api(f"/api/runs/{run['run_id']}/timeline?after=4&fields=suffix")
    assert rest["suffix"] == details["suffix"][4:]
    status, body, _ = server.request(f"/api/runs/{run['run_id']}/timeline?fields=colour")
    assert status == 400 and "unknown timeline field(s) colour" in body
    # The page's form: the same columns as typed arrays.
    raw, kind = server.raw(f"/api/runs/{run['run_id']}/timeline?format=binary")
    assert kind == "application/octet-stream"
    binary = unpack_columns(raw)
    assert {k: binary[k] for k in ("group", "start_us", "duration_us", "state")} == {
        k: timeline[k] for k in ("group", "start_us", "duration_us", "state")
    }
    assert binary["total"] == 6 and binary["run_status"] == "Failed"
    status, body, _ = server.request(
        f"/api/runs/{run['run_id']}/timeline?format=binary&fields=suffix"
    )
    assert status == 400 and "not suffix: ask for those as JSON" in body
    status, body, _ = server.request(f"/api/runs/{run['run_id']}/timeline?format=xml")
    assert status == 400 and "'format' must be 'json' or 'binary', not 'xml'" in body

    status, body, _ = server.request("/api/runs?status=Sleeping")
    assert status == 400 and "unknown run status 'Sleeping'" in body
    status, body, _ = server.request(f"/api/runs/{run['run_id']}/tasks?limit=lots")
    assert status == 400 and "'limit' must be a whole number" in body


def test_cascade_plugins_lists_the_ui_and_help_shows_the_command() -> None:
    listed = run_cascade("plugins", "--output", "json")
    assert listed.code == 0
    names = json.dumps(listed.json())
    assert "cascade-ui" in names or "cascade_ui" in names
    helped = run_cascade("ui", "--help")
    assert helped.code == 0
    for option in ("--store", "--host", "--port", "--open"):
        assert option in helped.stdout
