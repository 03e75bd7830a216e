"""The ``cascade`` entry point of cascade-dask: registers the ``"dask"`` executor.

``distributed`` is imported only when a run uses the executor, so installing the plugin costs
nothing to programs that do not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cascade as cs


@cs.hookimpl
def cascade_register_executors(register: Callable[[str, Callable[[], Any]], None]) -> None:
    from cascade_dask.executor import DaskExecutor

    register("dask", DaskExecutor)
