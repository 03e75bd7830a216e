"""``cascade run`` options of executor ``dask`` (hook ``cascade_register_run_options`` of
cascade-cli), and the executor the command line runs with.

- ``--dask-address ADDRESS`` (or ``CASCADE_DASK_ADDRESS``): use the running scheduler at
  ADDRESS instead of starting a temporary local cluster.
- ``--dask-dashboard``: serve the temporary cluster's dashboard on a free port of 127.0.0.1
  and print its address (with ``--dask-address``, print the cluster's own dashboard address).

The temporary cluster of a ``cascade run`` keeps Dask's own logs off the terminal: the
workers ignore Ctrl-C (the command stops them itself, after tearing the run down, so they do
not print ``KeyboardInterrupt`` tracebacks of their own), and what Dask logs, on the workers
("Compute Failed" for every failed attempt) and in the scheduler and nannies, goes to the
``cascade.dask.workers`` and ``cascade.dask.cluster`` loggers at DEBUG: ``--log-level DEBUG``
shows it.

This module is also the workers' preload (``dask_setup``), so it imports click only inside the
functions that need it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from cascade.executors import ExecutorRun, RunInfo
from cascade_dask.executor import DaskExecutor

#: The Dask event topic on which the workers of a command-line cluster send their log lines.
LOG_TOPIC = "cascade.worker-logs"
worker_log = logging.getLogger("cascade.dask.workers")
cluster_log = logging.getLogger("cascade.dask.cluster")

#: Set by ``apply`` for the run of this ``cascade`` process; ``None`` outside the command line.
settings: dict[str, Any] | None = None


def run_options() -> list[Any]:
    """The ``click`` options of executor ``dask``."""
    import click

    return [
        click.Option(
            ["--dask-address"],
            metavar="ADDRESS",
            envvar="CASCADE_DASK_ADDRESS",
            help="Run on the Dask scheduler at ADDRESS (tcp://host:8786) instead of a "
            "temporary local cluster; also read from $CASCADE_DASK_ADDRESS.",
        ),
        click.Option(
            ["--dask-dashboard"],
            is_flag=True,
            default=False,
            help="Serve the temporary cluster's dashboard on a free port of 127.0.0.1 and print "
            "its address (with --dask-address: print that cluster's dashboard address).",
        ),
    ]


def apply(values: dict[str, Any]) -> None:
    """Called by ``cascade run`` before a run that uses executor ``dask``."""
    import click

    global settings
    address = values.get("dask_address") or None
    if address is not None:
        address = address.strip()
        if "://" not in address and ":" not in address:
            raise click.BadParameter(
                f"'{address}' is not a scheduler address; write tcp://host:port "
                "(a Dask scheduler listens on 8786 by default)",
                param_hint="'--dask-address' / CASCADE_DASK_ADDRESS",
            )
    settings = {"address": address, "dashboard": bool(values.get("dask_dashboard"))}


def make_executor() -> DaskExecutor:
    """What ``executor="dask"`` builds: a plain ``DaskExecutor()`` in programs; under
    ``cascade run`` one with the command line's options and a quiet temporary cluster."""
    if settings is None:
        return DaskExecutor()
    return CommandLineDaskExecutor(
        address=settings["address"], dashboard=bool(settings["dashboard"])
    )


class CommandLineDaskExecutor(DaskExecutor):
    """The executor ``cascade run`` uses for ``dask``: a temporary cluster whose workers ignore
    Ctrl-C and whose logs go to the ``cascade.dask.*`` loggers at DEBUG; optionally its
    dashboard, whose address is printed once the cluster is up."""

    def __init__(self, address: str | None = None, *, dashboard: bool = False) -> None:
        options: dict[str, Any] = {}
        if address is None:
            options = {
                # Workers: Dask's stream handlers silenced (their records are forwarded),
                # SIGINT ignored, from the preload below.
                "silence_logs": logging.CRITICAL + 1,
                "preload": [__name__],
            }
            if dashboard:
                options["dashboard_address"] = "127.0.0.1:0"
        super().__init__(address, cluster_options=options)
        self.dashboard = dashboard
        self._saved_handlers: tuple[list[logging.Handler], bool] | None = None
        self._announced = False

    @contextlib.asynccontextmanager
    async def open_run(self, run: RunInfo) -> AsyncIterator[ExecutorRun]:
        local = self.address is None
        if local:
            self._route_cluster_logs()
        try:
            async with super().open_run(run) as handle:
                client = self.client
                if local and client is not None:
                    client.subscribe_topic(LOG_TOPIC, _on_worker_log)
                if self.dashboard and not self._announced and client is not None:
                    self._announced = True
                    _announce_dashboard(str(client.dashboard_link))
                yield handle
        finally:
            if self.client is None:
                self._restore_cluster_logs()

    def _route_cluster_logs(self) -> None:
        """The scheduler and nannies run in this process: their records go to
        ``cascade.dask.cluster`` at DEBUG instead of Dask's own handler on stderr."""
        import distributed  # noqa: F401 - configures Dask's logging first, so it can be replaced

        dask_logger = logging.getLogger("distributed")
        if self._saved_handlers is None:
            self._saved_handlers = (list(dask_logger.handlers), dask_logger.propagate)
        dask_logger.handlers = [_ToDebug(cluster_log)]
        dask_logger.propagate = False

    def _restore_cluster_logs(self) -> None:
        if self._saved_handlers is None:
            return
        handlers, propagate = self._saved_handlers
        self._saved_handlers = None
        dask_logger = logging.getLogger("distributed")
        dask_logger.handlers = handlers
        dask_logger.propagate = propagate


class _ToDebug(logging.Handler):
    """Re-logs every record at DEBUG on another logger, with where it came from."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if not self.target.isEnabledFor(logging.DEBUG):
            return
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        self.target.debug("%s %s: %s", record.levelname, record.name, message)


def _on_worker_log(event: Any) -> None:
    """Dask event handler (on the driver): one log record of a worker."""
    try:
        _, record = event
        worker_log.debug(
            "%s %s %s: %s", record["worker"], record["level"], record["name"], record["text"]
        )
    except Exception:
        pass


def _announce_dashboard(link: str) -> None:
    import importlib.util

    note = ""
    if importlib.util.find_spec("bokeh") is None:
        note = " (its plots need bokeh: pip install 'bokeh>=3.1')"
    print(f"[cascade] Dask dashboard: {link}{note}", file=sys.stderr, flush=True)


# -- on the workers of a command-line cluster ---------------------------------------------------


def dask_setup(worker: Any) -> None:
    """Dask preload, run in each worker process as it starts: ignore Ctrl-C (the terminal
    signals every process in its foreground group, and the command stops the workers itself)
    and send Dask's log records to the driver instead of the terminal."""
    if threading.current_thread() is threading.main_thread():
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except (ValueError, OSError):
            pass
    logging.getLogger("distributed").addHandler(_Forward(worker))


class _Forward(logging.Handler):
    """Sends each record to the driver as a Dask event on ``LOG_TOPIC``."""

    def __init__(self, worker: Any) -> None:
        super().__init__(logging.INFO)
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            where = str(getattr(self.worker, "address", None) or "a worker")
            log_event: Callable[[str, Any], None] = self.worker.log_event
            log_event(
                LOG_TOPIC,
                {"worker": where, "level": record.levelname, "name": record.name, "text": text},
            )
        except Exception:
            pass  # the worker may not be connected yet, or any more: the record is dropped


__all__ = ["CommandLineDaskExecutor", "apply", "dask_setup", "make_executor", "run_options"]
