"""Rich displays for notebooks (Jupyter, VS Code, IPython): a graph drawn as SVG, the dry-run
plan and a failed run's failures as HTML tables.

Notebooks ask an object for ``_repr_mimebundle_``/``_repr_html_``; the objects users see
(``LazyResult``, what ``cs.visualize`` and ``cs.dry_run`` return, ``cs.RunFailed``) answer
through the helpers here (``render.graph_display`` draws a LazyResult's graph with them).
Graphs are drawn by Graphviz's ``dot`` program when it is on PATH; without it a notebook gets
the graph as Mermaid text (which JupyterLab 4.1+ draws itself, and other front ends show as
text). Plain ``repr`` is never changed by any of this, so terminals and logs stay short.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

#: Graphs with more nodes than this are not drawn in a notebook (``dot`` takes long and the
#: picture is unreadable); the display says how to get the text instead.
MAX_DRAWN_NODES = 400

#: How long ``dot`` may take to draw one graph for a display.
DOT_TIMEOUT = 30.0


class GraphvizError(RuntimeError):
    """Graphviz's ``dot`` program is missing or failed to draw a graph."""


def graphviz(source: str, fmt: str = "svg") -> bytes:
    """Draw DOT ``source`` with Graphviz's ``dot -T<fmt>`` and return what it wrote.

    ``GraphvizError`` says how to install Graphviz when ``dot`` is not on PATH, and carries
    ``dot``'s own message when it fails."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizError(
            f"Graphviz's `dot` program is needed for {fmt} but is not on PATH. Install "
            "Graphviz (`apt install graphviz`, `brew install graphviz`, "
            "`conda install graphviz`), or use DOT or Mermaid text."
        )
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}"],
            input=source.encode(),
            capture_output=True,
            check=False,
            timeout=DOT_TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        raise GraphvizError(f"Graphviz `dot -T{fmt}` took more than {DOT_TIMEOUT:g} s") from error
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()
        raise GraphvizError(f"Graphviz `dot -T{fmt}` failed ({done.returncode}): {detail}")
    return done.stdout


def svg(dot_source: str) -> str | None:
    """The SVG element for DOT text, or None when Graphviz cannot draw it here."""
    try:
        drawn = graphviz(dot_source, "svg").decode("utf-8", errors="replace")
    except GraphvizError:
        return None
    start = drawn.find("<svg")  # without the XML prolog and DOCTYPE, for inline HTML too
    return drawn[start:] if start >= 0 else None


def mermaid_markdown(mermaid: str) -> str:
    """Mermaid text as a Markdown code block, which JupyterLab 4.1+ draws."""
    return f"```mermaid\n{mermaid}```\n"


class GraphText(str):
    """The text ``cs.visualize`` returns: a plain ``str`` of DOT or Mermaid, which notebooks
    display drawn (DOT through Graphviz when it is installed, Mermaid by the front end)."""

    # (no __slots__: str subclasses cannot have non-empty ones)

    graph_format: str

    def __new__(cls, text: str, graph_format: str) -> GraphText:
        self = super().__new__(cls, text)
        self.graph_format = graph_format
        return self

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {"text/plain": str(self)}
        if self.graph_format == "mermaid":
            bundle["text/markdown"] = mermaid_markdown(str(self))
        elif self.graph_format == "dot" and self.count(" [label=") <= MAX_DRAWN_NODES:
            drawn = svg(str(self))
            if drawn is not None:
                bundle["image/svg+xml"] = drawn
        return bundle


def html_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None
) -> str:
    """A plain HTML table; every cell is escaped text."""
    parts = ['<table class="cascade">']
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers))
    parts.append("</tr></thead><tbody>")
    for row in rows:
        cells = "".join(
            f'<td style="text-align:left">{html.escape(str(cell))}</td>' for cell in row
        )
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


class DryRunPlan(list[dict[str, Any]]):
    """What ``cs.dry_run`` returns: the plan as a list of steps (see ``cascade.graph.plan``),
    displayed in notebooks as a table."""

    def _repr_html_(self) -> str:
        rows = [
            (
                number,
                step["task"],
                step["call"],
                step["task_id"],
                "; ".join(step["notes"]),
                ", ".join(step["depends_on"]),
            )
            for number, step in enumerate(self, 1)
        ]
        return html_table(
            ("#", "task", "call", "id", "notes", "depends on"),
            rows,
            caption=f"{len(self)} task(s) would run, in this order",
        )


__all__ = [
    "DOT_TIMEOUT",
    "MAX_DRAWN_NODES",
    "DryRunPlan",
    "GraphText",
    "GraphvizError",
    "graphviz",
    "html_table",
    "mermaid_markdown",
    "svg",
]
