"""Run Cascade graphs on a Dask distributed cluster.

    import cascade as cs
    from cascade_dask import DaskExecutor

    cs.run(target, executor="dask")                          # a temporary local cluster
    cs.run(target, executor=DaskExecutor("tcp://host:8786"))  # an existing cluster

See ``docs/dask.md`` for how results, resources, events and faults behave on the cluster.
"""

from __future__ import annotations

from cascade_dask._version import __version__
from cascade_dask.executor import DaskExecutor, DaskResult, DaskTaskCancelled
from cascade_dask.worker import TaskInterrupted

__all__ = ["DaskExecutor", "DaskResult", "DaskTaskCancelled", "TaskInterrupted", "__version__"]
