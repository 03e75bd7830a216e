"""The slot through which a ``LazyResult`` shows its graph in a notebook.

Drawing a graph needs the graph layer (``cascade.graph``), which sits above the spec layer and
imports it, so ``LazyResult._repr_mimebundle_`` cannot import it. ``cascade.graph`` registers
its display function here when it is imported (``import cascade`` always imports it); until
then a LazyResult has no rich display and notebooks show its ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GraphDisplay = Callable[[Any], dict[str, str]]

_graph_display: list[GraphDisplay] = []


def register_graph_display(display: GraphDisplay) -> None:
    """Make ``display(target)`` (a MIME bundle of the graph behind ``target``) the one used."""
    _graph_display[:] = [display]


def graph_display(target: Any) -> dict[str, str]:
    """The registered display of the graph behind ``target``, or an empty bundle."""
    return _graph_display[0](target) if _graph_display else {}


__all__ = ["GraphDisplay", "graph_display", "register_graph_display"]
