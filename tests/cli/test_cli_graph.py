"""`cascade graph` and `cascade dry-run` through the installed console script."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from cli_helpers import base_env, run_cascade

pytestmark = pytest.mark.timeout(60)

# pipelines/basic.py:report is numbers -> times.map (with param scale) -> total -> label.
EXPECTED_NODES = {"numbers", "param:scale", "times [map]", "total", "label"}
EXPECTED_EDGES = {
    ("numbers", "times [map]"),
    ("param:scale", "times [map]"),
    ("times [map]", "total"),
    ("total", "label"),
}


def mermaid_graph(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    nodes = dict(re.findall(r'^\s+(n\d+)\(?\["([^"]+)"\]\)?$', text, re.M))
    edges = {
        (nodes[a], nodes[b]) for a, b in re.findall(r"^\s+(n\d+) -\.?->\s*(n\d+)$", text, re.M)
    }
    return nodes, edges


def dot_graph(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    nodes = dict(re.findall(r'^\s+(n\d+) \[label="([^"]+)"', text, re.M))
    edges = {(nodes[a], nodes[b]) for a, b in re.findall(r"^\s+(n\d+) -> (n\d+)", text, re.M)}
    return nodes, edges


def test_mermaid_has_the_nodes_and_edges() -> None:
    result = run_cascade("graph", "pipelines/basic.py:report")  # mermaid is the default
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("graph LR\n")
    nodes, edges = mermaid_graph(result.stdout)
    assert set(nodes.values()) == EXPECTED_NODES
    assert edges == EXPECTED_EDGES
    assert re.search(r'n\d+\(\["param:scale"\]\)', result.stdout)  # params are rounded


def test_dot_has_the_nodes_and_edges_and_ordering_edges_are_dashed() -> None:
    result = run_cascade("graph", "pipelines/basic.py:report", "--format", "dot")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("digraph cascade {")
    nodes, edges = dot_graph(result.stdout)
    assert set(nodes.values()) == EXPECTED_NODES
    assert edges == EXPECTED_EDGES

    ordering = run_cascade("graph", "pipelines/slow.py:waiting", "-f", "dot")
    nodes, edges = dot_graph(ordering.stdout)
    assert edges == {("quick", "wait_forever")}
    assert re.search(r"n\d+ -> n\d+ \[style=dashed\];", ordering.stdout)


def test_output_file(tmp_path: Path) -> None:
    target = tmp_path / "graph.mmd"
    result = run_cascade("graph", "pipelines/basic.py:report", "-o", str(target))
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote {target}" in result.stderr
    assert mermaid_graph(target.read_text())[1] == EXPECTED_EDGES


@pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz `dot` is not installed (python dev.py test installs it with apt as root)",
)
def test_svg_and_png_through_graphviz(tmp_path: Path) -> None:
    result = run_cascade("graph", "pipelines/basic.py:report", "--format", "svg")
    assert result.code == 0, result.stderr
    assert "<svg" in result.stdout
    texts = set(re.findall(r"<text[^>]*>([^<]+)</text>", result.stdout))
    assert texts >= EXPECTED_NODES
    assert result.stdout.count('class="edge"') == len(EXPECTED_EDGES)

    png = tmp_path / "graph.png"
    result = run_cascade("graph", "pipelines/basic.py:report", "-f", "png", "-o", str(png))
    assert result.code == 0, result.stderr
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_svg_without_graphviz_says_how_to_install_it(tmp_path: Path) -> None:
    # The console script's shebang names its interpreter, so an empty PATH hides only `dot`.
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_cascade(
        "graph", "pipelines/basic.py:report", "-f", "svg", env=base_env(PATH=str(empty))
    )
    assert result.code == 1
    assert "Graphviz's `dot` program is needed for --format svg" in result.stderr
    assert "apt-get install graphviz" in result.stderr and "brew install graphviz" in result.stderr
    assert "--format dot or --format mermaid" in result.stderr
    assert result.stdout == ""


def test_graph_of_a_bad_target_is_a_usage_error() -> None:
    result = run_cascade("graph", "pipelines/basic.py:nope")
    assert result.code == 2
    assert "'basic' has no 'nope'" in result.stderr
    result = run_cascade("graph", "pipelines/basic.py:report", "-f", "jpeg")
    assert result.code == 2
    assert "'jpeg' is not one of 'mermaid', 'dot', 'svg', 'png'" in result.stderr


def test_dry_run_lists_the_order_with_literal_inputs_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    result = run_cascade(
        "dry-run", "pipelines/slow.py:waiting", env=base_env(CASCADE_TEST_MARKER=str(marker))
    )
    assert result.code == 0, result.stderr
    assert not marker.exists()  # no resource was set up, no task ran
    lines = result.stdout.splitlines()
    assert lines[0] == "2 task(s) would run, in this order:"
    assert re.match(r"\s+1\. quick\(\)\s+-> <quick-\d+>", lines[1])
    assert re.match(
        r"\s+2\. wait_forever\(\)\s+-> <wait_forever-\d+>\s+\[after <quick-\d+>\]", lines[2]
    )
    assert lines[3] == "        resources: connection (run scope)"

    result = run_cascade("dry-run", "pipelines/basic.py:report")
    numbered = [line for line in result.stdout.splitlines() if re.match(r"\s+\d+\. ", line)]
    calls = [line.split(". ", 1)[1].split("   ->")[0] for line in numbered]
    assert calls[0] == "numbers(4)"
    assert re.fullmatch(r"times\.map\(<numbers-\d+>, factor=<param scale=1>\)", calls[1])
    assert [c.split("(")[0] for c in calls] == ["numbers", "times.map", "total", "label"]


def test_dry_run_json() -> None:
    result = run_cascade("dry-run", "pipelines/basic.py:report", "--output", "json")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["target"] == "pipelines/basic.py:report"
    steps = document["steps"]
    assert [s["task"] for s in steps] == ["numbers", "times", "total", "label"]
    assert steps[1]["map"] is True
    assert steps[1]["depends_on"] == [steps[0]["task_id"], "param:scale"]
    assert steps[3]["depends_on"] == [steps[2]["task_id"]]


def test_graph_needs_no_params() -> None:
    result = run_cascade("graph", "pipelines/typed_params.py:described", "-f", "dot")
    assert result.code == 0, result.stderr
    nodes, edges = dot_graph(result.stdout)
    assert {label for label in nodes.values() if label.startswith("param:")} == {
        "param:count", "param:ratio", "param:name", "param:verbose", "param:price",
        "param:tags", "param:anything",
    }  # fmt: skip
    assert len(edges) == 7
