"""Errors that the CLI turns into one line and exit code 2."""

from __future__ import annotations

from pathlib import Path


class SymaffectError(Exception):
    """Base class of user-facing errors: the message is one line a user can act on."""


class DataError(SymaffectError, ValueError):
    """Bad input data: names the file (or field) and what is wrong with it.

    Parameters
    ----------
    source : str or Path or None
        The file or field at fault.
    problem : str
        What is wrong, in a few words.
    """

    def __init__(self, source: str | Path | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        msg = problem if source is None else f"{source}: {problem}"
        super().__init__(msg.replace("\n", " "))


class ConfigError(SymaffectError, ValueError):
    """An invalid configuration value: names the field and what is allowed."""
