"""The ``cascade`` entry point of cascade-ui: adds the ``ui`` command to the command line
(hook ``cascade_register_commands`` of cascade-cli).

Only the command's definition is imported here; Starlette, uvicorn and the store load when
``cascade ui`` runs, so other commands pay nothing for the plugin being installed."""

from __future__ import annotations

from typing import Any

import cascade as cs


@cs.hookimpl
def cascade_register_commands(cli: Any) -> None:
    """Add ``cascade ui`` (see ``cascade_ui.cli``)."""
    from cascade_ui.cli import ui

    cli.add_command(ui)
