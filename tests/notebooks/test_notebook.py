"""Cascade in a real Jupyter kernel: a notebook is executed cell by cell with ``nbclient`` and an
``ipykernel`` of this environment's Python, and the outputs are what a user would see: a run's
value (``cs.run`` inside the kernel's running loop), a graph drawn as SVG, the dry-run table,
a failed run's table, and a run interrupted from the kernel manager that tore its resource
down and raised ``KeyboardInterrupt`` in its cell, with the kernel fine afterwards.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

KERNEL = "cascade-test-python"

CELLS = {
    "setup": """
        import asyncio
        import pathlib

        import cascade as cs

        MARKERS = pathlib.Path({markers!r})

        @cs.task
        def load(n: int) -> list[int]:
            return list(range(n))

        @cs.task
        async def total(rows: list[int], scale: int = 1) -> int:
            await asyncio.sleep(0)
            return sum(rows) * scale

        @cs.task
        def explode(x: int) -> int:
            raise ValueError(f"row {{x}} is broken")

        @cs.resource(name="warehouse")
        def warehouse():
            (MARKERS / "setup").write_text("up")
            yield "connection"
            (MARKERS / "teardown").write_text("down")

        @cs.task
        async def wait_forever(conn: str = cs.inject("warehouse")) -> str:
            (MARKERS / "started").write_text("started")
            await asyncio.Event().wait()
            return conn
        """,
    "run": "cs.run(total(load(4), cs.Param('scale', type=int)), params={'scale': '10'})",
    "graph": "total(load(4), cs.Param('scale', type=int))",
    "visualize": "cs.visualize(total(load(4)))",
    "dry_run": "cs.dry_run(total(load(4)))",
    "failed": """
        try:
            cs.run([explode(1), load(2), explode(3)], on_failure="continue", log_level=None)
        except cs.RunFailed as error:
            failure = error
        failure
        """,
    "interrupted": "cs.run(wait_forever(), log_level=None)",
    "after": """
        print((MARKERS / "teardown").read_text())
        cs.run(total(load(3)), log_level=None)
        """,
}
INTERRUPTED = list(CELLS).index("interrupted")


def _kernel_manager(tmp_path: Path) -> AsyncKernelManager:
    """A kernel of the Python running the tests (the venv's), whatever `python` is on PATH."""
    spec_dir = tmp_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Cascade tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


async def _appears(path: Path, within: float = 120.0) -> None:
    """Wait for a marker file the kernel's task writes (polled; bounded only as a safety net)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not path.exists():
        assert loop.time() < deadline, f"{path.name} never appeared"
        await asyncio.sleep(0.05)


async def _execute(nb: Any, tmp_path: Path, markers: Path) -> None:
    client = NotebookClient(
        nb,
        km=_kernel_manager(tmp_path),
        timeout=240,
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    async with client.async_setup_kernel():
        for index, cell in enumerate(nb.cells):
            if index != INTERRUPTED:
                await client.async_execute_cell(cell, index)
                continue
            running = asyncio.ensure_future(client.async_execute_cell(cell, index))
            await _appears(markers / "started")
            assert client.km is not None
            await client.km.interrupt_kernel()
            await running


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The notebook's outputs, by cell name."""
    tmp_path = tmp_path_factory.mktemp("notebook")
    markers = tmp_path / "markers"
    markers.mkdir()
    nb = nbformat.v4.new_notebook()
    for name, source in CELLS.items():
        text = textwrap.dedent(source).strip()
        if name == "setup":
            text = text.format(markers=str(markers))
        nb.cells.append(nbformat.v4.new_code_cell(text))
    asyncio.run(_execute(nb, tmp_path, markers))
    nbformat.validate(nb)
    return {name: cell.outputs for name, cell in zip(CELLS, nb.cells, strict=True)}


def _result(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    results = [o for o in outputs if o["output_type"] == "execute_result"]
    assert len(results) == 1, outputs
    data: dict[str, Any] = results[0]["data"]
    return data


def _text(outputs: list[dict[str, Any]], stream: str) -> str:
    return "".join(o["text"] for o in outputs if o.get("name") == stream)


def test_setup_runs_cleanly(executed: dict[str, list[dict[str, Any]]]) -> None:
    assert [o for o in executed["setup"] if o["output_type"] == "error"] == []


def test_cs_run_in_the_kernel_returns_the_value_and_logs_in_the_cell(
    executed: dict[str, list[dict[str, Any]]],
) -> None:
    outputs = executed["run"]
    assert _result(outputs)["text/plain"] == "60"
    log = _text(outputs, "stderr")
    assert "total" in log and "load" in log, outputs


def test_a_lazy_result_is_drawn_as_svg(executed: dict[str, list[dict[str, Any]]]) -> None:
    data = _result(executed["graph"])
    assert data["text/plain"].startswith("<LazyResult total-")
    svg = data["image/svg+xml"]
    assert svg.startswith("<svg")
    for label in ("load", "total", "param:scale"):
        assert f">{label}</text>" in svg


def test_visualize_is_drawn_as_svg(executed: dict[str, list[dict[str, Any]]]) -> None:
    data = _result(executed["visualize"])
    assert data["text/plain"].startswith("'digraph cascade {")  # IPython shows a str's repr
    assert ">total</text>" in data["image/svg+xml"]


def test_the_dry_run_is_a_table(executed: dict[str, list[dict[str, Any]]]) -> None:
    outputs = executed["dry_run"]
    assert "2 task(s) would run, in this order:" in _text(outputs, "stdout")
    table = _result(outputs)["text/html"]
    assert table.startswith('<table class="cascade"><caption>2 task(s) would run')
    assert '<td style="text-align:left">load(4)</td>' in table


def test_a_failed_run_is_a_table_of_its_failures(
    executed: dict[str, list[dict[str, Any]]],
) -> None:
    data = _result(executed["failed"])
    table = data["text/html"]
    assert "<caption>2 task(s) failed</caption>" in table
    assert table.count(">ValueError</td>") == 2
    assert "row 1 is broken" in table and "row 3 is broken" in table
    assert "RunFailed('2 task(s) failed: explode-" in data["text/plain"]


def test_an_interrupt_tears_the_resource_down_and_raises_keyboard_interrupt(
    executed: dict[str, list[dict[str, Any]]],
) -> None:
    errors = [o for o in executed["interrupted"] if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["KeyboardInterrupt"]
    after = executed["after"]
    assert _text(after, "stdout") == "down\n"
    assert _result(after)["text/plain"] == "3"  # the kernel runs on, and so does cs.run
