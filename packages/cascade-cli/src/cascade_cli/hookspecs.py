"""The hooks the command line adds to Cascade's plugin system: subcommands
(``cascade_register_commands``) and options of ``cascade run`` for a plugin's executor
(``cascade_register_run_options``).

The CLI adds this module to the plugin manager with ``add_hookspecs`` the first time it needs
either, so core Cascade knows nothing about click.
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


@hookspec
def cascade_register_run_options(register: Any) -> None:
    """Add options to ``cascade run`` for an executor your plugin registers.

    Call ``register(executor, options, apply)`` (once per executor):

    - ``executor``: the executor's name, as ``cascade_register_executors`` registered it;
    - ``options``: a list of ``click.Option``; name them after the executor
      (``--dask-address``) and give each a ``help``, and an ``envvar`` if it should also be read
      from the environment. ``cascade run --help`` lists them under the executor's name. A name
      that a built-in option or another plugin already uses is refused with a warning naming
      your plugin;
    - ``apply(values)``: called once before the run starts, only when the run uses the
      executor (``--executor NAME``, or a task's ``executor="NAME"``), with a dict of your
      options' values by parameter name (defaults and environment variables filled in). Make
      what your executor factory builds from then on use them: the ``cascade`` process runs
      one graph, so a process-wide setting is right. Raise ``click.UsageError`` to refuse a
      combination (the command exits 2 with your message).

    An option given on the command line to a run that does not use its executor is a usage
    error naming the executor. Called once per ``cascade run`` (for parsing and for ``--help``),
    never for other commands; keep it cheap and import heavy modules inside ``apply``.
    """


__all__ = ["cascade_register_commands", "cascade_register_run_options"]
