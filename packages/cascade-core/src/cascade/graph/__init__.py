"""Graph views, a public module: DOT and Mermaid text, the dry-run plan, and run targets.

``build`` turns LazyResults into the DAG the runtime schedules; it is internal.
"""

from __future__ import annotations

from cascade.graph.render import dry_run, plan, visualize
from cascade.graph.targets import normalize_target

__all__ = ["dry_run", "normalize_target", "plan", "visualize"]
