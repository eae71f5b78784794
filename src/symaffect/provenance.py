"""Provenance: which code, which config and which data made a result.

``metrics.json`` (:func:`symaffect.eval.scoring.write_metrics`) and the session report
(:mod:`symaffect.serve.report`) carry the dict of :func:`provenance`::

    {"format": "symaffect-provenance", "version": 1,
     "created_at": "2025-01-31T12:00:00+00:00",           # UTC, ISO 8601
     "python": "3.12.3", "platform": "Linux-6.8-x86_64-with-glibc2.39",
     "packages": {"symaffect": "0.1.0", "torch": "2.13.0", ...},   # installed ones only
     "config": {"path": "config.yaml", "sha256": "..."},           # when given
     "data": {"fingerprint": "...", "n_files": 32, "n_bytes": ...,
              "files": [{"path": "s01.dat", "size": ..., "sha256": "..."}, ...]},
     ...}                                                           # any ``extra`` keys

The data fingerprint (:func:`data_fingerprint`) is the SHA-256 of the sorted list of
``(relative path, size, SHA-256 of the content)`` of the files actually read: it changes
with any byte of any file and not with the order the files are listed in, their
modification times or the folder they were copied to.

This is a shared module: it imports only the other shared modules and the standard
library (no torch: the versions come from the installed distributions' metadata).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import platform
import threading
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from symaffect.errors import DataError

PROVENANCE_FORMAT = "symaffect-provenance"
PROVENANCE_VERSION = 1

PACKAGES: tuple[str, ...] = (
    "symaffect", "torch", "numpy", "scipy", "mne", "lightning", "scikit-learn",
    "neurokit2", "mne-lsl", "pandas", "pyarrow", "xgboost-cpu", "xgboost", "onnxruntime",
)
"""Distributions whose versions are recorded (those not installed are left out)."""

CHUNK = 1 << 20

_SHA_MEMO: dict[tuple, str] = {}
_SHA_LOCK = threading.Lock()


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` of each of ``names`` that is installed (read once per
    process: the dashboard renders reports often)."""
    return dict(_versions(tuple(names)))


@functools.lru_cache(maxsize=8)
def _versions(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for name in names:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file's content.

    Remembered for the process by (path, device, inode, size, mtime_ns): scoring many runs
    on the same 3 GB of DEAP hashes it once. A rewrite changes mtime or size and is
    hashed again.

    Raises
    ------
    DataError
        The file cannot be read (names it).
    """
    path = Path(path)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _SHA_LOCK:
            if key in _SHA_MEMO:
                return _SHA_MEMO[key]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from None
    digest = h.hexdigest()
    with _SHA_LOCK:
        _SHA_MEMO[key] = digest
    return digest


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
        except ValueError:  # another drive (Windows)
            pass
    return path.name


def data_files(paths: Iterable[str | Path], *, root: str | Path | None = None) -> list[dict]:
    """``[{"path", "size", "sha256"}]`` of ``paths``, sorted by path.

    Parameters
    ----------
    paths : iterable of path
        The data files read.
    root : path, optional
        Paths are stored relative to it (default: the common folder of ``paths``).
    """
    paths = [Path(p) for p in paths]
    if root is None and paths:
        root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    root = None if root is None else Path(root)
    rows = []
    for p in paths:
        digest = file_sha256(p)  # a missing or unreadable file: DataError naming it
        rows.append({"path": _relative(p, root), "size": int(p.stat().st_size), "sha256": digest})
    return sorted(rows, key=lambda r: (r["path"], r["sha256"]))


def fingerprint_of(files: Iterable[Mapping[str, Any]]) -> str:
    """The SHA-256 of the sorted ``(path, size, sha256)`` triples of :func:`data_files` rows."""
    triples = sorted((str(f["path"]), int(f["size"]), str(f["sha256"])) for f in files)
    return hashlib.sha256(json.dumps(triples, separators=(",", ":")).encode()).hexdigest()


def data_fingerprint(paths: Iterable[str | Path], *, root: str | Path | None = None) -> str:
    """One hex SHA-256 naming the content of ``paths`` (module docstring).

    Parameters
    ----------
    paths : iterable of path
    root : path, optional
        See :func:`data_files`.
    """
    return fingerprint_of(data_files(paths, root=root))


def config_record(config: str | Path | Mapping[str, Any], *, relative_to: str | Path | None = None) -> dict:
    """``{"path", "sha256"}`` of a config file (its bytes), or ``{"sha256"}`` of a config
    dict (its canonical JSON: sorted keys)."""
    if isinstance(config, Mapping):
        blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
        return {"sha256": hashlib.sha256(blob).hexdigest()}
    path = Path(config)
    shown = _relative(path, Path(relative_to)) if relative_to is not None else str(path)
    return {"path": shown, "sha256": file_sha256(path)}


def provenance(
    *,
    config: str | Path | Mapping[str, Any] | None = None,
    config_root: str | Path | None = None,
    data_files: Iterable[str | Path] | None = None,
    data_root: str | Path | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """The provenance dict (module docstring).

    Parameters
    ----------
    config : path or dict, optional
        The config file (hashed, path stored relative to ``config_root``) or dict.
    config_root : path, optional
    data_files : iterable of path, optional
        The data files actually read; gives ``data`` (fingerprint and per-file rows).
    data_root : path, optional
        Data paths are stored relative to it.
    extra : mapping, optional
        More keys (e.g. ``"model_sha256"``, ``"prepared"``); they may not replace the
        standard ones.
    """
    out: dict[str, Any] = {
        "format": PROVENANCE_FORMAT,
        "version": PROVENANCE_VERSION,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }
    if config is not None:
        out["config"] = config_record(config, relative_to=config_root)
    if data_files is not None:
        files = _files(data_files, root=data_root)
        out["data"] = {"fingerprint": fingerprint_of(files), "n_files": len(files),
                       "n_bytes": int(sum(f["size"] for f in files)), "files": files}
    for k, v in (extra or {}).items():
        if k in out:
            raise ValueError(f"provenance key {k!r} is set by provenance() itself")
        out[k] = v
    return out


_files = data_files  # provenance()'s argument shadows the function's name


__all__ = [
    "PACKAGES",
    "PROVENANCE_FORMAT",
    "PROVENANCE_VERSION",
    "config_record",
    "data_files",
    "data_fingerprint",
    "file_sha256",
    "fingerprint_of",
    "package_versions",
    "provenance",
]
