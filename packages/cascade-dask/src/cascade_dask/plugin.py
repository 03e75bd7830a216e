"""The ``cascade`` entry point of cascade-dask: registers the ``"dask"`` executor, and its
``cascade run`` options (``--dask-address``, ``--dask-dashboard``; see ``cascade_dask.cli``).

``distributed`` is imported only when a run uses the executor, so installing the plugin costs
nothing to programs that do not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cascade as cs


def _make_executor() -> Any:
    from cascade_dask.cli import make_executor

    return make_executor()


@cs.hookimpl
def cascade_register_executors(register: Callable[[str, Callable[[], Any]], None]) -> None:
    register("dask", _make_executor)


@cs.hookimpl
def cascade_register_run_options(register: Callable[..., None]) -> None:
    """A hook of cascade-cli (``cascade_cli.hookspecs``): called only by ``cascade run``."""
    from cascade_dask import cli

    register("dask", cli.run_options(), cli.apply)
