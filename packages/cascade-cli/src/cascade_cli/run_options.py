"""Options that plugins add to ``cascade run`` for their executors (hook
``cascade_register_run_options`` in ``cascade_cli.hookspecs``).

``RunOptions.load`` asks every plugin once; ``apply`` hands each executor's values to its
plugin before the run, when the run uses that executor.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click


@dataclass
class ExecutorOptions:
    """The options one plugin added for one executor."""

    executor: str
    plugin: str
    options: list[click.Option]
    apply: Callable[[dict[str, Any]], Any]


@dataclass
class RunOptions:
    """Every plugin's run options, by executor."""

    groups: list[ExecutorOptions] = field(default_factory=list)

    @property
    def params(self) -> list[click.Option]:
        return [option for group in self.groups for option in group.options]

    def owner(self, name: str) -> ExecutorOptions | None:
        for group in self.groups:
            if any(option.name == name for option in group.options):
                return group
        return None

    @classmethod
    def load(cls, taken: Iterable[str]) -> RunOptions:
        """Ask the plugins (the hookspec is added to Cascade's plugin manager first). Options
        whose names or flags are ``taken`` (built-in ones, or another plugin's) are refused
        with a warning naming the plugin."""
        from cascade.plugins import CascadePluginWarning, get_plugin_manager
        from cascade_cli.main import add_cli_hookspecs

        manager = get_plugin_manager()
        if not add_cli_hookspecs(manager):
            return cls()
        found = cls()
        used = set(taken)

        def register(
            executor: str,
            options: list[click.Option],
            apply: Callable[[dict[str, Any]], Any],
        ) -> None:
            plugin = getattr(manager, "current_plugin", None) or "a plugin"
            if not isinstance(executor, str) or not executor:
                raise TypeError(f"register() needs an executor name, got {executor!r}")
            if not callable(apply):
                raise TypeError(f"register() needs an apply(values) function, got {apply!r}")
            accepted = []
            for option in options:
                if not isinstance(option, click.Option):
                    raise TypeError(f"register() takes click.Option objects, got {option!r}")
                names = {option.name or "", *option.opts, *option.secondary_opts}
                clash = sorted(names & used)
                if clash:
                    warnings.warn(
                        f"Cascade plugin '{plugin}' cannot add option {clash[0]} to "
                        "`cascade run`: a built-in option or another plugin's has that name; "
                        "prefix it with the executor's name",
                        CascadePluginWarning,
                        stacklevel=2,
                    )
                    continue
                used.update(names)
                accepted.append(option)
            found.groups.append(ExecutorOptions(executor, plugin, accepted, apply))

        manager.call_each("cascade_register_run_options", register=register)
        return found

    def apply(self, ctx: click.Context, values: Mapping[str, Any], used: set[str]) -> None:
        """Hand each executor's option values to its plugin when the run uses the executor; an
        option typed on the command line for an executor the run does not use is an error."""
        for group in self.groups:
            mine = {option.name: values.get(option.name) for option in group.options if option.name}
            if group.executor in used:
                group.apply(dict(mine))
                continue
            for option in group.options:
                name = option.name or ""
                if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
                    raise click.UsageError(
                        f"{option.opts[0]} is an option of executor '{group.executor}', which "
                        f"this run does not use; add --executor {group.executor}"
                    )


__all__ = ["ExecutorOptions", "RunOptions"]
