"""Atomic file writes: a killed process never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from symaffect.errors import DataError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    On any exception (or a kill) the destination is untouched and the temporary file
    is removed (or, after SIGKILL, left as a hidden ``.tmp`` file that no reader picks up).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not thread-safe


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def read_text(path: str | Path, *, max_bytes: int | None = None) -> str:
    """The UTF-8 text of ``path`` (a BOM is skipped); a :class:`~symaffect.errors.DataError`
    naming it otherwise.

    The reader of every text file the package reads (configs, JSON, channel maps, CSV
    recordings, marker lists). Missing, unreadable (a folder, no permission), not UTF-8
    (the error names the line), larger than ``max_bytes``, or too large for memory:
    every failure is one line naming the file.
    """
    path = Path(path)
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise DataError(path, f"larger than {max_bytes} bytes; not a file this program wrote")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not a file") from None
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from None
    except MemoryError:
        raise DataError(path, "too large to read into memory") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(path, f"line {line}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None


def read_json(path: str | Path, *, expect: type | None = dict, max_bytes: int | None = 256 << 20) -> Any:
    """Parse the JSON file ``path``; a :class:`~symaffect.errors.DataError` naming it otherwise.

    Parameters
    ----------
    path : str or Path
    expect : type or None
        The type the top-level value must have (default ``dict``; None: any).
    max_bytes : int or None
        Refuse larger files (default 256 MiB).
    """

    text = read_text(path, max_bytes=max_bytes)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (RecursionError, MemoryError):
        raise DataError(path, "JSON nested too deeply or too large") from None
    if expect is not None and not isinstance(obj, expect):
        raise DataError(path, f"expected a JSON {_JSON_NAMES.get(expect, expect.__name__)}, "
                              f"got {_JSON_NAMES.get(type(obj), type(obj).__name__)}")
    return obj


def read_npz(path: str | Path) -> dict:
    """All arrays of the ``.npz`` file ``path`` (no pickled objects); a one-line
    :class:`~symaffect.errors.DataError` naming it when it is missing or damaged."""

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(path, "missing") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(path, f"not a readable .npz file ({first})") from None


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


def _json_default(o: Any) -> Any:

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
