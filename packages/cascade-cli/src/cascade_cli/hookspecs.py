"""The hook the command line adds to Cascade's plugin system.

The CLI adds this module to the plugin manager with ``add_hookspecs`` the first time it needs
plugin commands, so core Cascade knows nothing about click.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("cascade")


@hookspec
def cascade_register_commands(cli: Any) -> None:
    """Add subcommands to the ``cascade`` command.

    ``cli`` is the root ``click.Group``: call ``cli.add_command(command)`` or decorate with
    ``@cli.command()``. Names of built-in commands (``run``, ``graph``, ``dry-run``,
    ``plugins``, ``cache``) and commands another plugin added first cannot be replaced (the
    attempt is a warning naming your plugin); prefix yours with your plugin's name
    (``example-hello``). Called once per ``cascade`` invocation, only when a command that is
    not built in is asked for or the command list is shown, so keep it cheap and import heavy
    modules inside your command's function.
    """
