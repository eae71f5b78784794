"""Errors that the CLI turns into one line and exit code 2."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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


class Interrupted(Exception):
    """A run stopped by a signal (SIGTERM): its finished epochs are on disk and a rerun resumes.

    The CLI turns it into one line and exit code ``128 + signum`` (143 for SIGTERM).

    Parameters
    ----------
    signum : int
        The signal that stopped the run.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__("interrupted; rerun the same command to resume")


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn what reading ``path`` can raise on a bad file, and is no bug, into :class:`DataError`.

    A file that is not UTF-8 text (``UnicodeDecodeError``) or too large for memory
    (``MemoryError``) becomes one line naming ``path``; everything else passes unchanged.
    """
    try:
        yield
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    except MemoryError:
        raise DataError(path, "too large to read into memory (or corrupt)") from None
