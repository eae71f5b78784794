"""Reader of DEAP's preprocessed files (``sNN.dat`` / ``sNN.mat``) and ratings CSV.

A ``data_preprocessed_python/sNN.dat`` file is a Python-2 pickle of
``{"data": float64 (40, 40, 8064), "labels": float64 (40, 4)}`` (see
``docs/DEAP_FORMAT.md`` in the shared folder). It is read without running code: through
the size-checked fast path or the restricted unpickler of :mod:`symaffect.data.unpickle`
(only the few numpy globals such a file holds; nothing allocated before it is checked
against the file's size). A ``data_preprocessed_matlab/sNN.mat`` file is read with
SciPy after :func:`~symaffect.data.matfile.check_mat_sizes`.

Every reader returns the same in-memory structure, :class:`SubjectRecord` (float32,
each subject held once); :func:`read_deap` reads a folder into :class:`DeapData`, with
``participant_ratings.csv`` (:func:`read_ratings`) when it is there. Reading validates
shapes, finiteness and label ranges and raises a one-line
:class:`~symaffect.errors.DataError` naming the file (and trial and channel where that
applies).

The writer of the format, :func:`write_subject`, lives in
:mod:`symaffect.data.deap_writer`; it and the unpickler's public names are re-exported
here.
"""

from __future__ import annotations

import csv
import errno
import io
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from symaffect.data.deap_writer import write_subject
from symaffect.data.matfile import check_mat_sizes
from symaffect.data.records import DeapData, SubjectRecord
from symaffect.data.unpickle import (
    ALLOC_FACTOR,
    ALLOC_SLACK,
    MAX_OPCODES,
    OUT_OF_MEMORY,
    RestrictedUnpickler,
    check_pickle_stream,
    load_pickle,
    load_pickle_fast,
    shorten,
)
from symaffect.errors import DataError
from symaffect.spec import (
    BASELINE_SAMPLES,
    DEAP_CHANNELS,
    LABEL_COLUMNS,
    N_CHANNELS,
    SFREQ,
)

__all__ = [
    "ALLOC_FACTOR",
    "ALLOC_SLACK",
    "DeapData",
    "MAX_OPCODES",
    "RATING_COLUMNS",
    "RestrictedUnpickler",
    "SUBJECT_FILE_RE",
    "check_pickle_stream",
    "find_ratings_file",
    "SubjectRecord",
    "iter_subjects",
    "list_subject_files",
    "load_pickle",
    "read_deap",
    "read_ratings",
    "read_subject",
    "subject_id_from_name",
    "validate_arrays",
    "write_subject",
]

logger = logging.getLogger(__name__)

SUBJECT_FILE_RE = re.compile(r"^s(\d{2})\.(dat|mat)$")
"""File names the folder readers pick up; anything else in a folder is ignored."""

LABEL_MIN, LABEL_MAX = 1.0, 9.0
RATINGS_FILE = "participant_ratings.csv"
RATING_COLUMNS: tuple[str, ...] = (
    "Participant_id", "Trial", "Experiment_id", "Start_time",
    "Valence", "Arousal", "Dominance", "Liking", "Familiarity",
)
"""Columns of DEAP's ``metadata_csv/participant_ratings.csv``."""
_INT_COLUMNS = ("Participant_id", "Trial", "Experiment_id", "Start_time")
_SCORE_COLUMNS = ("Valence", "Arousal", "Dominance", "Liking")
_FAMILIARITY_RANGE = (1.0, 5.0)


# ------------------------------------------------------------------ validation


def validate_arrays(
    data: Any, labels: Any, source: str | Path, *, n_channels: int = N_CHANNELS
) -> tuple[np.ndarray, np.ndarray]:
    """Check one subject's arrays and return them as float32.

    Parameters
    ----------
    data : ndarray, shape (n_trials, n_channels, n_samples), float32 or float64
    labels : ndarray, shape (n_trials, 4), float32 or float64, values in [1, 9]
    source : str or Path
        Named in every error.
    n_channels : int
        Required channel count (40 for DEAP).

    Returns
    -------
    data : ndarray, shape (n_trials, n_channels, n_samples), float32
        ``data`` itself when it already was C-contiguous float32, else one converted copy.
    labels : ndarray, shape (n_trials, 4), float32

    Raises
    ------
    DataError
        Wrong type, dtype or shape; a NaN/inf sample (naming trial and channel); a label
        outside [1, 9] (naming trial and column).
    """
    for name, arr in (("data", data), ("labels", labels)):
        if not isinstance(arr, np.ndarray):
            raise DataError(source, f"'{name}' is a {type(arr).__name__}, expected a numpy array")
        if arr.dtype not in (np.float32, np.float64):
            raise DataError(source, f"'{name}' has dtype {arr.dtype}, expected float32 or float64")
    if data.ndim != 3 or data.shape[0] < 1 or data.shape[1] != n_channels or data.shape[2] <= BASELINE_SAMPLES:
        raise DataError(
            source,
            f"'data' has shape {data.shape}, expected (n_trials >= 1, {n_channels}, "
            f"n_samples > {BASELINE_SAMPLES}) (DEAP: (40, 40, 8064))",
        )
    if labels.ndim != 2 or labels.shape[1] != len(LABEL_COLUMNS):
        raise DataError(source, f"'labels' has shape {labels.shape}, expected (n_trials, 4) (DEAP: (40, 4))")
    if labels.shape[0] != data.shape[0]:
        raise DataError(
            source, f"'data' has {data.shape[0]} trials but 'labels' has {labels.shape[0]} rows"
        )
    bad = ~((labels >= LABEL_MIN) & (labels <= LABEL_MAX))  # NaN counts as bad
    if bad.any():
        t, c = np.argwhere(bad)[0]
        raise DataError(
            source,
            f"label {LABEL_COLUMNS[c]} of trial {t + 1} is {float(labels[t, c]):g}, "
            f"outside [{LABEL_MIN:g}, {LABEL_MAX:g}]",
        )
    labels32 = np.ascontiguousarray(labels, dtype=np.float32)
    with np.errstate(over="ignore"):  # beyond float32's range -> inf, reported below
        data32 = np.ascontiguousarray(data, dtype=np.float32)  # no copy when already float32
    # checked on the float32 values: a float64 beyond float32's range is caught too
    for t in range(data32.shape[0]):
        _check_finite(data32[t], data[t], t, source)
    return data32, labels32


def _check_finite(trial32: np.ndarray, orig: np.ndarray, t: int, source: str | Path) -> None:
    """Raise DataError naming trial, channel and sample of the first non-finite value.

    ``trial32`` (n_channels, n_samples) is the float32 trial, ``orig`` the values it was
    converted from (so a float64 beyond float32's range is reported as such).
    """
    finite = np.isfinite(trial32)
    if finite.all():
        return
    c, s = np.argwhere(~finite)[0]
    val = float(orig[c, s])
    what = "NaN" if np.isnan(val) else ("inf" if np.isinf(val) else f"{val:g} (beyond float32 range)")
    ch = DEAP_CHANNELS[c] if trial32.shape[0] == N_CHANNELS else f"#{c}"
    raise DataError(source, f"trial {t + 1}, channel {ch} (index {c}): sample {s} is {what} (samples must be finite)")


# ------------------------------------------------------------------ one subject


def subject_id_from_name(path: str | Path) -> int:
    """DEAP participant id from a file name such as ``s07.dat`` (-> 7).

    Raises
    ------
    DataError
        The name is not ``sNN.dat`` / ``sNN.mat`` / ``sNN.bdf`` or NN is 00.
    """
    m = re.match(r"^s(\d{2})\.(dat|mat|bdf)$", Path(path).name, flags=re.IGNORECASE)
    if not m:
        raise DataError(path, "file name is not sNN.dat / sNN.mat / sNN.bdf: cannot tell the subject id")
    sid = int(m.group(1))
    if sid < 1:
        raise DataError(path, "subject ids start at 1 (s01)")
    return sid


def read_subject(path: str | Path, *, subject: int | None = None) -> SubjectRecord:
    """Read one preprocessed subject file (``sNN.dat`` pickle or ``sNN.mat``).

    Parameters
    ----------
    path : str or Path
        ``data_preprocessed_python/sNN.dat`` or ``data_preprocessed_matlab/sNN.mat``.
    subject : int, optional
        Subject id; by default taken from the file name (``s07.dat`` -> 7).

    Returns
    -------
    SubjectRecord
        ``data`` float32 (n_trials, 40, n_samples), ``labels`` float32 (n_trials, 4),
        ``sfreq`` 128.0 (the preprocessed files carry no rate; DEAP's is 128 Hz).

    Notes
    -----
    Pickles whose arrays are stored as raw bytes (DEAP's own Python-2 files, files from
    :func:`~symaffect.data.deap_writer.write_subject`, Python-3 protocol 3/4 dumps) are
    read without unpickling the big array: it is converted to float32 one trial at a
    time straight from the file (peak memory: the float32 result plus one trial). Other
    pickles go through :class:`~symaffect.data.unpickle.RestrictedUnpickler` and one
    float64 copy.

    Raises
    ------
    DataError
        Unreadable file, forbidden pickle content, missing keys, wrong shapes, non-finite
        samples, labels outside [1, 9].
    """
    path = Path(path)
    sid = subject_id_from_name(path) if subject is None else int(subject)
    try:
        return _read_subject(path, sid)
    except MemoryError:
        raise DataError(path, OUT_OF_MEMORY) from None


def _load_fast(path: Path) -> dict | None:
    """:func:`~symaffect.data.unpickle.load_pickle_fast`, each trial checked finite as it is converted."""
    return load_pickle_fast(path, check_trial=_check_finite)


def _read_subject(path: Path, sid: int) -> SubjectRecord:
    problem = not_a_regular_file(path) if os.path.lexists(path) else None
    if problem:  # a folder or a pipe: never open it (a pipe would block)
        raise DataError(path, problem)
    if path.suffix.lower() == ".mat":
        obj = _load_mat(path)
    else:
        obj = _load_fast(path)
        if obj is None:  # not the common layout: the general (restricted) unpickler
            obj = load_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(path, f"holds a {type(obj).__name__}, expected a dict with keys 'data' and 'labels'")
    missing = [k for k in ("data", "labels") if k not in obj]
    if missing:
        keys = ", ".join(repr(k) for k in list(obj)[:6] if not str(k).startswith("__"))
        raise DataError(path, f"missing key(s) {', '.join(map(repr, missing))} (has: {keys or 'none'})")
    data, labels = obj.pop("data"), obj.pop("labels")
    del obj
    data32, labels32 = validate_arrays(data, labels, path)
    del data  # the float64 array (if any) is freed here: one subject at a time
    return SubjectRecord(subject=sid, data=data32, labels=labels32, sfreq=SFREQ, source=str(path))


def _load_mat(path: Path) -> dict:

    check_mat_sizes(path)  # SciPy allocates declared sizes before reading them
    try:
        mat = scipy.io.loadmat(path, variable_names=("data", "labels"))
    except NotImplementedError:
        raise DataError(path, "MATLAB v7.3 (HDF5) files are not supported; save with -v7") from None
    except Exception as e:
        reason = shorten(str(e) or type(e).__name__)
        raise DataError(path, f"not a readable MATLAB file (truncated or corrupt): {reason}") from None
    return {k: v for k, v in mat.items() if not k.startswith("__")}


# ------------------------------------------------------------------ folders


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a data file (a folder, a link loop, ...), or None."""
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop: it cannot be read"
        if path.is_symlink():
            return "symbolic link to a missing file"
        return f"cannot be read: {e.strerror or e}"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a subject file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a pipe, socket or device)"
    return None


def list_subject_files(folder: str | Path) -> list[Path]:
    """The ``sNN.dat`` / ``sNN.mat`` files of ``folder``, sorted by subject id.

    Anything else (a README, ``.DS_Store``, ``s01.dat.bak``, hidden temporary files) is
    ignored. An entry named like a subject file that is not a readable regular file (a
    folder, a symbolic link loop or to nothing, a pipe) is an error, never skipped.

    Raises
    ------
    DataError
        ``folder`` is missing or not a folder, holds no subject file, holds both
        ``sNN.dat`` and ``sNN.mat`` for one subject, or an ``sNN.dat`` / ``sNN.mat``
        entry that is not a regular file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder" if folder.exists() else "no such folder")
    found: dict[int, Path] = {}
    for p in folder.iterdir():
        m = SUBJECT_FILE_RE.match(p.name)
        if not m:
            continue
        problem = not_a_regular_file(p)
        if problem:  # named like a subject file but unreadable: say so, never skip it silently
            raise DataError(p, problem)
        sid = int(m.group(1))
        if sid in found:
            raise DataError(folder, f"both {found[sid].name} and {p.name}: keep one format per folder")
        found[sid] = p
    if not found:
        raise DataError(folder, "no DEAP subject files (sNN.dat or sNN.mat) in this folder")
    return [found[k] for k in sorted(found)]


def _select(files: list[Path], subjects: Iterable[int] | None, folder: Path) -> list[Path]:
    if subjects is None:
        return files
    want = [int(s) for s in subjects]
    by_id = {subject_id_from_name(p): p for p in files}
    missing = [s for s in want if s not in by_id]
    if missing:
        raise DataError(folder, f"no file for subject(s) {', '.join(f's{s:02d}' for s in missing)}")
    return [by_id[s] for s in sorted(set(want))]


def iter_subjects(folder: str | Path, *, subjects: Iterable[int] | None = None) -> Iterator[SubjectRecord]:
    """Read a folder one subject at a time (for streaming use: one subject in memory).

    Parameters
    ----------
    folder : str or Path
        A folder of ``sNN.dat`` (or ``sNN.mat``) files.
    subjects : iterable of int, optional
        Subject ids to read (default: all).

    Yields
    ------
    SubjectRecord
        In subject-id order. Every record is checked against the first: a different
        sampling rate, channel count or ``n_samples`` raises DataError naming the file.
    """
    folder = Path(folder)
    files = _select(list_subject_files(folder), subjects, folder)
    first: SubjectRecord | None = None
    for p in files:
        rec = read_subject(p)
        if first is None:
            first = rec
        else:
            _check_consistent(first, rec)
        logger.debug("read %s: %s", p, rec.data.shape)
        yield rec


def _check_consistent(first: SubjectRecord, rec: SubjectRecord) -> None:
    if rec.sfreq != first.sfreq:
        raise DataError(
            rec.source, f"sampling rate {rec.sfreq:g} Hz differs from {first.sfreq:g} Hz of {Path(first.source).name}"
        )
    if rec.data.shape[1:] != first.data.shape[1:]:
        raise DataError(
            rec.source,
            f"{rec.n_samples} samples x {rec.data.shape[1]} channels per trial differs from "
            f"{first.n_samples} x {first.data.shape[1]} of {Path(first.source).name} (mixed recordings)",
        )


def find_ratings_file(folder: str | Path) -> Path | None:
    """``participant_ratings.csv`` in ``folder`` or in ``folder/../metadata_csv``, if any."""
    folder = Path(folder)
    for cand in (folder / RATINGS_FILE, folder.parent / "metadata_csv" / RATINGS_FILE):
        if cand.is_file():
            return cand
    return None


def read_deap(folder: str | Path, *, subjects: Iterable[int] | None = None) -> DeapData:
    """Read a folder of DEAP preprocessed files.

    Parameters
    ----------
    folder : str or Path
        ``data_preprocessed_python`` (``sNN.dat``) or ``data_preprocessed_matlab``
        (``sNN.mat``). Other files in it are ignored.
    subjects : iterable of int, optional
        Subject ids to read (default: all).

    Returns
    -------
    DeapData
        ``subjects``: one :class:`SubjectRecord` per subject, sorted by id;
        ``ratings``: ``participant_ratings.csv`` (see :func:`read_ratings`) when it is in
        ``folder`` or ``folder/../metadata_csv``, else None.

    Raises
    ------
    DataError
        Any problem of :func:`read_subject`, an empty folder, mixed ``n_samples`` or
        sampling rates across subjects, an invalid ratings file.
    """
    folder = Path(folder)
    records = list(iter_subjects(folder, subjects=subjects))
    rfile = find_ratings_file(folder)
    ratings = read_ratings(rfile) if rfile is not None else None
    extra = {"ratings_file": str(rfile)} if rfile is not None else {}
    return DeapData(subjects=records, ratings=ratings, root=str(folder), extra=extra)


# ------------------------------------------------------------------ ratings


def read_ratings(csv_path: str | Path) -> dict[str, np.ndarray]:
    """Read DEAP's ``participant_ratings.csv``.

    Parameters
    ----------
    csv_path : str or Path

    Returns
    -------
    dict of str -> ndarray, shape (n_rows,)
        Keys :data:`RATING_COLUMNS`. ``Participant_id``, ``Trial``, ``Experiment_id``,
        ``Start_time`` (microseconds) are int64; the ratings are float64; an empty
        ``Familiarity`` is NaN (DEAP lacks it for participants 2, 15 and 23).

    Raises
    ------
    DataError
        Missing column, a non-numeric cell, Valence/Arousal/Dominance/Liking outside
        [1, 9] or missing, Familiarity outside [1, 5] — naming file, column and line.
    """
    path = Path(csv_path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise DataError(path, "not a text (UTF-8) CSV file") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise DataError(path, "empty file (expected a header line)")
    norm = {h.strip().lower(): i for i, h in enumerate(header)}
    missing = [c for c in RATING_COLUMNS if c.lower() not in norm]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}")
    idx = {c: norm[c.lower()] for c in RATING_COLUMNS}
    cols: dict[str, list] = {c: [] for c in RATING_COLUMNS}
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        for c in RATING_COLUMNS:
            cell = row[idx[c]].strip() if idx[c] < len(row) else ""
            cols[c].append(_parse_cell(cell, c, line_no, path))
    out: dict[str, np.ndarray] = {}
    for c in RATING_COLUMNS:
        if c in _INT_COLUMNS:
            out[c] = np.asarray(cols[c], dtype=np.int64)
        else:
            out[c] = np.asarray(cols[c], dtype=np.float64)
    return out


def _parse_cell(cell: str, col: str, line_no: int, path: Path) -> float | int:
    where = f"column {col}, line {line_no}"
    if cell == "":
        if col == "Familiarity":
            return float("nan")
        raise DataError(path, f"{where}: empty cell")
    try:
        val = float(cell)
    except ValueError:
        raise DataError(path, f"{where}: {cell!r} is not a number") from None
    if col in _INT_COLUMNS:
        if not val.is_integer():
            raise DataError(path, f"{where}: {cell!r} is not an integer")
        return int(val)
    lo, hi = _FAMILIARITY_RANGE if col == "Familiarity" else (LABEL_MIN, LABEL_MAX)
    if not (lo <= val <= hi):
        raise DataError(path, f"{where}: rating {cell} is outside [{lo:g}, {hi:g}]")
    return val
