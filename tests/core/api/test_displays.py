"""Rich displays in notebooks: a LazyResult and ``cs.visualize`` draw their graph (SVG with
Graphviz, Mermaid without), ``cs.dry_run`` is a table, ``cs.RunFailed`` a table of failures;
plain ``repr`` stays one short line. (tests/notebooks runs them in a real kernel.)"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

import cascade as cs
from cascade.graph import GraphvizError, graphviz
from cascade.graph.display import MAX_DRAWN_NODES


@cs.task
def load(source: str) -> list[int]:
    return [1, 2, 3]


@cs.task
def total(rows: list[int], scale: int) -> int:
    return sum(rows) * scale


@cs.task
def explode(x: int) -> int:
    raise ValueError(f"row <{x}> is broken")


def pipeline() -> cs.LazyResult[int]:
    return total(load("db"), cs.Param("scale", type=int))


@pytest.fixture
def no_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH without Graphviz's ``dot`` (the displays must fall back to text)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("dot") is None


def test_a_lazy_result_displays_its_graph_as_svg() -> None:
    assert shutil.which("dot"), "Graphviz is installed by dev.py"
    bundle = pipeline()._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"]
    drawing = bundle["image/svg+xml"]
    assert drawing.startswith("<svg") and drawing.rstrip().endswith("</svg>")
    for label in ("load", "total", "param:scale"):
        assert f">{label}</text>" in drawing


def test_without_graphviz_the_graph_is_mermaid_text(no_graphviz: None) -> None:
    bundle = pipeline()._repr_mimebundle_()
    assert list(bundle) == ["text/markdown"]
    text = bundle["text/markdown"]
    assert text.startswith("```mermaid\ngraph LR\n") and text.endswith("```\n")
    assert '["load"]' in text and '(["param:scale"])' in text


def test_plain_repr_stays_short() -> None:
    lazy = pipeline()
    assert repr(lazy) == f"<LazyResult {lazy.id}>"
    assert "\n" not in repr(cs.Param("scale"))


def test_a_graph_too_large_to_draw_says_so_instead() -> None:
    @cs.task
    def step(x: int) -> int:
        return x

    chain = step(0)
    for _ in range(MAX_DRAWN_NODES):
        chain = step(chain)
    bundle = chain._repr_mimebundle_()
    assert list(bundle) == ["text/markdown"]
    assert f"A graph of {MAX_DRAWN_NODES + 1} nodes: too large to draw" in bundle["text/markdown"]


def test_visualize_is_still_text_and_displays_drawn() -> None:
    dot = cs.visualize(pipeline())
    assert isinstance(dot, str) and dot.startswith("digraph cascade {")
    assert dot.replace("x", "y").startswith("digraph")  # every str method still works
    bundle = dot._repr_mimebundle_()
    assert bundle["text/plain"] == str(dot)
    assert bundle["image/svg+xml"].startswith("<svg")
    mermaid = cs.visualize(pipeline(), format="mermaid")
    assert mermaid._repr_mimebundle_()["text/markdown"] == f"```mermaid\n{mermaid}```\n"


def test_visualize_without_graphviz_displays_the_dot_text(no_graphviz: None) -> None:
    dot = cs.visualize(pipeline())
    assert dot._repr_mimebundle_() == {"text/plain": str(dot)}


def test_dry_run_is_a_list_of_steps_displayed_as_a_table() -> None:
    steps = cs.dry_run(pipeline(), stream=io.StringIO())
    assert isinstance(steps, list) and [s["task"] for s in steps] == ["load", "total"]
    table = steps._repr_html_()
    assert table.startswith('<table class="cascade"><caption>2 task(s) would run')
    assert table.count("<tr>") == 3  # the header and one row per step
    assert "load(&#x27;db&#x27;)" in table  # escaped: the call shows literal inputs
    assert "total(&lt;load-" in table


def test_run_failed_displays_a_table_of_the_failures() -> None:
    with pytest.raises(cs.RunFailed) as info:
        cs.run([explode(1), explode(2), load("x")], on_failure="continue", log_level=None)
    failed = info.value
    table = failed._repr_html_()
    assert "<caption>2 task(s) failed</caption>" in table
    assert table.count("<td") == 3 * 2
    for task_id in failed.failures:
        assert f">{task_id}</td>" in table
    assert ">ValueError</td>" in table and "row &lt;1&gt; is broken" in table
    assert repr(failed).startswith("RunFailed(")


def test_graphviz_names_the_missing_program(no_graphviz: None) -> None:
    with pytest.raises(GraphvizError, match="Graphviz's `dot` program is needed for svg"):
        graphviz("digraph { a -> b }")


def test_graphviz_carries_dots_own_error() -> None:
    with pytest.raises(GraphvizError, match=r"dot -Tsvg` failed \(1\): .*syntax error"):
        graphviz("digraph { a -> }")
