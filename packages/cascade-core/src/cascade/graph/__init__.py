"""Graph views, a public module: DOT and Mermaid text, the dry-run plan, drawing with Graphviz
(``graphviz``, also behind the notebook displays of ``cascade.graph.display``), run targets, and
``returns_graph`` (whether a task's value holds LazyResults the run must go on to run: what
an executor that keeps results elsewhere checks before keeping one).

``build`` turns LazyResults into the DAG the runtime schedules; it is internal.
"""

from __future__ import annotations

from cascade.graph.display import GraphvizError, graphviz
from cascade.graph.extend import returns_graph
from cascade.graph.render import dry_run, plan, visualize
from cascade.graph.targets import normalize_target

__all__ = [
    "GraphvizError",
    "dry_run",
    "graphviz",
    "normalize_target",
    "plan",
    "returns_graph",
    "visualize",
]
