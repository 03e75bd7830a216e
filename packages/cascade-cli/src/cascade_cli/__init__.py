"""The ``cascade`` command line. Importing this package stays cheap (no Cascade, no rich) so
``cascade --help`` and ``cascade --version`` start fast; commands import what they use."""

from __future__ import annotations

from cascade_cli._version import __version__

__all__ = ["__version__"]
