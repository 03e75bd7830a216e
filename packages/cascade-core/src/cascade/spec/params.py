"""Run inputs declared with ``cs.Param``: the error raised for a missing, unknown or badly
typed param, and how given values are checked against a param's ``type``."""

from __future__ import annotations


class ParamError(ValueError):
    """A required param is missing, an unknown one was given, or a value does not convert."""


__all__ = ["ParamError"]
