"""Subject records from a lab's own MNE recordings and a ratings table.

:func:`records_from_mne` turns any list of MNE recordings (``mne.io.BaseRaw`` objects,
or paths ``mne.io.read_raw`` reads: ``.fif``, ``.edf``, ``.bdf``, ``.vhdr``, ...) plus a
table of self-ratings into the same :class:`~symaffect.data.records.SubjectRecord` list
the DEAP readers give, so :func:`~symaffect.data.prepare.prepare_records` and a training
run take them unchanged -- no DEAP ``.dat`` files need to be written first.

The ratings table
-----------------
A CSV path (read with the :mod:`csv` module; pandas is not needed), a pandas
``DataFrame`` or a mapping of column -> sequence. One row per trial; column names are
matched case-insensitively:

==================  ==========================================================================
column              meaning
==================  ==========================================================================
``subject``         participant id, a positive integer (``subject_column``)
``trial``           trial id, a positive integer, unique within a subject (``trial_column``)
``valence``,        self-ratings in [1, 9]
``arousal``,
``liking``
``dominance``       optional; 5.0 (the scale's midpoint) where the column or cell is empty
``recording``       which recording holds the trial (``recording_column``); may be left out
                    when only one recording is given
``onset``           trial (stimulus) onset in seconds from the recording's first sample
``duration``        trial length in seconds (or pass ``trial_seconds``)
``track``           with no ``onset`` column: the description of the MNE annotation that
                    marks the trial (``annotation_column``; default ``track`` when present,
                    else the trial column); the annotation's onset and duration are used
==================  ==========================================================================

A ``recording`` cell names a recording: with ``recordings`` a mapping, its key; with a
sequence, a recording's file name (``sub01.fif``) or its name without extensions
(``sub01``) -- a Raw built in memory has no file name, so pass it in a mapping; with
``recordings=None``, a path read with ``mne.io.read_raw`` (relative to the CSV's folder).

Each trial
----------
1. Cut from ``onset - baseline_seconds`` to ``onset + duration`` (DEAP: a 3-s pre-trial
   baseline before each 60-s video). The baseline is what
   :class:`~symaffect.data.windows.WindowConfig` drops (``"drop"``, the default),
   keeps or subtracts (``"subtract_mean"``): its ``baseline_seconds`` must equal the one
   used here. A trial whose baseline starts before the recording, or which ends after
   it, is an error. A margin (``margin_seconds``, reflected at the recording's edges) is
   cut around it for resampling and filtering.
2. Channels picked and ordered to DEAP's 40 (:data:`symaffect.spec.DEAP_CHANNELS`):
   ``channel_names`` (recording name -> DEAP name) first, then the DEAP name in any case,
   the old 10-20 names ``T3 T4 T5 T6`` -> ``T7 T8 P7 P8`` and a few peripheral aliases
   (:data:`ALIASES`); ``stim`` channels and ``info["bads"]`` are left out. Two recording
   channels for one DEAP channel are an error. A DEAP channel no recording channel gives
   is an error naming them all, unless ``fill_missing`` is ``"zeros"`` or ``"nan"``.
   The model masks whole modalities, never single channels: zeros are a flat channel
   (z-scoring leaves it 0); NaN propagates into normalisation statistics and training,
   so use ``"nan"`` for signal work only.
3. Units, from MNE's SI values as the live path (:mod:`symaffect.stream.recording`)
   converts them, so that training and prediction see the same numbers: a channel
   whose file gave a voltage unit, or of MNE type ``eeg``/``eog``/``emg``/``ecg`` without
   a file unit, -> µV (x 1e6, DEAP's preprocessed unit); MNE type ``gsr`` without a file
   unit (siemens) -> µS; everything else (a GSR in ``Ohm``, ``degC``, respiration,
   BVP, ``misc``) is kept in the recording's unit. DEAP's own GSR is skin resistance
   in Ohm; a conductance GSR differs in sign of response and scale, which per-subject
   z-scoring absorbs only in scale.
4. Resampled to ``sfreq`` (128 Hz) with MNE's polyphase resampler; EEG band-passed
   (``eeg_band``, 4-45 Hz like DEAP's preprocessed files and the preprocessing
   contract's default) and re-referenced to the common average of the present EEG
   channels (``car``), as :mod:`symaffect.data.raw` does.

All trials must have the same length (a record is one array, and prepared data hold
one trial length): differing durations are an error unless ``trial_seconds`` crops
every trial to a common length.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import mne
import numpy as np

from symaffect.data.records import SubjectRecord
from symaffect.errors import DataError
from symaffect.spec import DEAP_CHANNELS, EEG_CHANNELS, LABEL_COLUMNS, N_CHANNELS, SFREQ

__all__ = ["ALIASES", "FILL_MODES", "match_channels", "read_ratings_table", "records_from_mne"]

log = logging.getLogger(__name__)

ALIASES: dict[str, str] = {
    "t3": "T7", "t4": "T8", "t5": "P7", "t6": "P8",
    "eda": "GSR", "ppg": "BVP", "plet": "BVP", "pleth": "BVP",
    "rsp": "Resp", "resp": "Resp", "temperature": "Temp",
}
"""Lower-cased recording names -> DEAP names, tried after the DEAP names themselves
(the old 10-20 names of DEAP's temporal/parietal positions and common sensor names)."""
FILL_MODES = (None, "zeros", "nan")
RATING_NAMES = ("valence", "arousal", "dominance", "liking")
VOLT_TYPES = ("eeg", "eog", "emg", "ecg", "seeg", "ecog", "dbs")
_VOLT_UNITS = ("v", "mv", "\u00b5v", "uv")
_N_EEG = len(EEG_CHANNELS)
_DEAP_LOWER = {c.lower(): c for c in DEAP_CHANNELS}


# -- the ratings table ------------------------------------------------------------------
@dataclass(frozen=True)
class _Table:
    """A ratings table as columns (lower-cased names) of strings, plus row labels for errors."""

    source: str
    folder: Path | None
    columns: dict[str, list[str]]
    rows: list[str]  # "ratings.csv line 3" / "ratings row 7"

    def __len__(self) -> int:
        return len(self.rows)

    def has(self, name: str) -> bool:
        return name.lower() in self.columns

    def col(self, name: str) -> list[str]:
        return self.columns[name.lower()]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    return str(v).strip()


def read_ratings_table(table: str | Path | Mapping | Any) -> _Table:
    """Read a ratings table: a CSV path, a pandas DataFrame or a mapping of column -> sequence.

    Cells are kept as stripped strings (empty for a missing value); column names are
    lower-cased. A CSV row is named by its line number, a DataFrame row by its index label.
    """
    if isinstance(table, (str, Path)):
        path = Path(table)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise DataError(path, f"cannot read the ratings table: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise DataError(path, "the ratings table is not a UTF-8 text CSV file") from None
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if not header:
            raise DataError(path, "empty ratings table (expected a header line)")
        names = [h.strip().lower() for h in header]
        cols: dict[str, list[str]] = {n: [] for n in names}
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) > len(names):
                raise DataError(path, f"line {line_no}: {len(row)} cells but {len(names)} columns")
            row = row + [""] * (len(names) - len(row))
            for n, c in zip(names, row):
                cols[n].append(c.strip())
            rows.append(f"{path.name} line {line_no}")
        return _Table(str(path), path.parent, cols, rows)
    if hasattr(table, "to_dict") and hasattr(table, "columns") and hasattr(table, "index"):  # a DataFrame
        labels = [str(i) for i in table.index]
        data = {str(k): list(v.values()) for k, v in table.to_dict(orient="dict").items()}
        src = "ratings table"
    elif isinstance(table, Mapping):
        data = {str(k): list(v) for k, v in table.items()}
        n = len(next(iter(data.values()), []))
        labels = [str(i) for i in range(n)]
        src = "ratings table"
    else:
        raise TypeError(f"ratings: expected a CSV path, a DataFrame or a mapping, got {type(table).__name__}")
    lens = {len(v) for v in data.values()}
    if len(lens) > 1:
        raise DataError(src, f"columns of different lengths {sorted(lens)}")
    cols = {k.strip().lower(): [_cell(c) for c in v] for k, v in data.items()}
    return _Table(src, None, cols, [f"{src} row {i}" for i in labels])


@dataclass
class _Trial:
    row: str
    subject: int
    trial: int
    labels: tuple[float, float, float, float]
    recording: str
    onset: float | None = None
    duration: float | None = None
    annotation: str | None = None


def _number(s: str, row: str, column: str, *, integer: bool = False) -> float:
    try:
        v = float(s)
    except ValueError:
        raise DataError(row, f"column {column!r}: {s!r} is not a number") from None
    if not math.isfinite(v):
        raise DataError(row, f"column {column!r}: {s!r} is not a finite number")
    if integer and (v != int(v) or v < 1):
        raise DataError(row, f"column {column!r}: {s!r} is not a positive integer id")
    return v


def _trials(tab: _Table, *, subject_column: str, trial_column: str, recording_column: str,
            annotation_column: str | None, single_recording: str | None) -> list[_Trial]:
    need = [subject_column, trial_column, "valence", "arousal", "liking"]
    if not tab.has(recording_column) and single_recording is None:
        need.append(recording_column)
    missing = [c for c in need if not tab.has(c)]
    if missing:
        raise DataError(tab.source, f"the ratings table lacks column(s) {', '.join(missing)}")
    by_onset = tab.has("onset")
    if not by_onset:
        annotation_column = annotation_column or ("track" if tab.has("track") else trial_column)
        if not tab.has(annotation_column):
            raise DataError(tab.source, f"the ratings table lacks column {annotation_column!r} "
                                        "(no 'onset' column, so trials are found by annotation)")
    out: list[_Trial] = []
    seen: dict[tuple[int, int], str] = {}
    for i, row in enumerate(tab.rows):
        subject = int(_number(tab.col(subject_column)[i], row, subject_column, integer=True))
        trial = int(_number(tab.col(trial_column)[i], row, trial_column, integer=True))
        if (subject, trial) in seen:
            raise DataError(row, f"subject {subject} trial {trial} is also in {seen[subject, trial]}")
        seen[subject, trial] = row
        labels = []
        for name in RATING_NAMES:
            s = tab.col(name)[i] if tab.has(name) else ""
            if name == "dominance" and s == "":
                labels.append(5.0)
                continue
            if s == "":
                raise DataError(row, f"column {name!r} is empty")
            v = _number(s, row, name)
            if not 1.0 <= v <= 9.0:
                raise DataError(row, f"{name} {v:g} is outside [1, 9]")
            labels.append(v)
        rec = tab.col(recording_column)[i] if tab.has(recording_column) else ""
        rec = rec or (single_recording or "")
        if not rec:
            raise DataError(row, f"column {recording_column!r} is empty")
        t = _Trial(row, subject, trial, tuple(labels), rec)
        if by_onset:
            t.onset = _number(tab.col("onset")[i], row, "onset")
            d = tab.col("duration")[i] if tab.has("duration") else ""
            t.duration = _number(d, row, "duration") if d != "" else None
        else:
            t.annotation = tab.col(annotation_column)[i]
            if not t.annotation:
                raise DataError(row, f"column {annotation_column!r} is empty")
        out.append(t)
    if not out:
        raise DataError(tab.source, "the ratings table has no rows")
    return out


# -- recordings ---------------------------------------------------------------------------
def _names_of(path: str | Path) -> list[str]:
    p = Path(path)
    stem = p.name.split(".", 1)[0]
    return [str(path), p.name, stem]


def _raw_path(raw: mne.io.BaseRaw) -> str | None:
    files = [f for f in (getattr(raw, "filenames", None) or ()) if f]
    return str(files[0]) if files else None


def _open(x, where: str) -> mne.io.BaseRaw:
    if isinstance(x, mne.io.BaseRaw):
        return x
    if isinstance(x, (str, Path)):
        path = Path(x)
        if not path.exists():
            raise DataError(path, f"recording not found ({where})")
        try:
            return mne.io.read_raw(path, preload=False, verbose="error")
        except Exception as e:  # noqa: BLE001 - any reader failure is bad input
            raise DataError(path, f"MNE cannot read this recording: {type(e).__name__}: {e}") from None
    raise TypeError(f"recordings: expected mne.io.BaseRaw or a path, got {type(x).__name__}")


class _Recordings:
    """Recording name -> opened Raw (paths opened lazily, once)."""

    def __init__(self, recordings, table_folder: Path | None):
        self.items: dict[str, Any] = {}
        self.opened: dict[str, mne.io.BaseRaw] = {}
        self.folder = table_folder
        self.from_table = recordings is None
        if recordings is None:
            return
        if isinstance(recordings, (str, Path, mne.io.BaseRaw)):
            recordings = [recordings]
        if isinstance(recordings, Mapping):
            self.items = {str(k): v for k, v in recordings.items()}
            return
        for k, x in enumerate(recordings):
            path = _raw_path(x) if isinstance(x, mne.io.BaseRaw) else x if isinstance(x, (str, Path)) else None
            if path is None:  # a Raw built in memory: usable only as the one recording
                self.items[f"#{k}"] = x
                continue
            for name in _names_of(path):
                if name in self.items and self.items[name] is not x:
                    self.items[name] = _AMBIGUOUS
                else:
                    self.items[name] = x

    def single_name(self) -> str | None:
        """The name of the one recording given, when only one is (the table then needs no column)."""
        if self.from_table:
            return None
        distinct = {id(v) for v in self.items.values() if v is not _AMBIGUOUS}
        if len(distinct) == 1:
            return next(iter(self.items))
        return None

    def get(self, name: str, row: str) -> tuple[str, mne.io.BaseRaw]:
        if self.from_table:
            path = Path(name)
            if not path.is_absolute() and self.folder is not None:
                path = self.folder / path
            key = str(path)
            if key not in self.opened:
                self.opened[key] = _open(path, row)
            return key, self.opened[key]
        x = self.items.get(name)
        if x is None and Path(name).name != name:
            x = self.items.get(Path(name).name)
        if x is _AMBIGUOUS:
            raise DataError(row, f"recording {name!r} names more than one of the recordings given")
        if x is None:
            known = sorted(k for k in self.items if not k.startswith("#"))
            hint = "; a Raw built in memory has no file name: pass recordings as a mapping" if any(
                k.startswith("#") for k in self.items) else ""
            raise DataError(row, f"recording {name!r} is not among the recordings given "
                                 f"({', '.join(known[:8]) or 'none named'}){hint}")
        key = str(id(x))
        if key not in self.opened:
            self.opened[key] = _open(x, row)
        return key, self.opened[key]


_AMBIGUOUS = object()


# -- channels -----------------------------------------------------------------------------
def match_channels(
    ch_names: Sequence[str],
    channel_names: Mapping[str, str] | None = None,
    *,
    where: str = "recording",
    strict: bool = True,
) -> dict[str, str]:
    """DEAP channel name -> recording channel name, for the channels found.

    Parameters
    ----------
    ch_names : sequence of str
        The recording's channel names (already without stim channels and bads).
    channel_names : mapping of str -> str, optional
        Explicit recording name -> DEAP name (tried first; exact recording names).
    where : str
        Named in errors.
    strict : bool
        An explicit name the recording lacks is an error (False: ignored, so that one
        mapping serves recordings of different montages).

    Returns
    -------
    dict of str -> str
        Only DEAP channels that were found.

    Raises
    ------
    DataError
        An explicit mapping names a non-DEAP target or (``strict``) an absent channel;
        two recording channels give the same DEAP channel.
    """
    found: dict[str, str] = {}
    explicit = dict(channel_names or {})
    for src, dst in explicit.items():
        if dst not in DEAP_CHANNELS:
            raise DataError("channel_names", f"{dst!r} (for {src!r}) is not a DEAP channel name")
    claimed = {dst for src, dst in explicit.items() if src in ch_names}  # taken by explicit names
    for name in ch_names:
        if name in explicit:
            dst = explicit[name]
        else:
            low = name.strip().lower()
            dst = _DEAP_LOWER.get(low) or ALIASES.get(low)
            if dst is None or dst in claimed:
                continue
        if dst in found:
            raise DataError(where, f"channels {found[dst]!r} and {name!r} both give DEAP channel {dst}; "
                                   "name one with channel_names")
        found[dst] = name
    absent = [s for s in explicit if s not in ch_names]
    if absent and strict:
        raise DataError(where, f"channel_names names channel(s) {', '.join(absent)} the recording lacks")
    return found


def unit_factors(raw: mne.io.BaseRaw | mne.BaseEpochs, picks: Sequence[int]) -> np.ndarray:
    """Per pick, the factor from MNE's value to DEAP's unit, for training and the live path
    alike (:mod:`symaffect.stream.recording` uses it): a unit the file records decides
    (volts -> µV; BrainVision siemens -> µS; anything else kept); without one, the MNE
    channel type (:data:`VOLT_TYPES` V -> µV, ``gsr`` S -> µS, others kept)."""
    orig = getattr(raw, "_orig_units", None) or {}
    brainvision = type(raw).__name__ == "RawBrainVision"
    types = raw.get_channel_types(picks=list(picks)) if len(picks) else []
    out = np.ones(len(picks))
    for k, (i, t) in enumerate(zip(picks, types)):
        unit = orig.get(raw.ch_names[i])
        if unit is not None:
            u = unit.strip().replace("\u03bc", "\u00b5").lower()
            volts = u in _VOLT_UNITS or (brainvision and u == "nv")
            siemens = brainvision and u in ("s", "\u00b5s", "us")
            out[k] = 1e6 if volts or siemens else 1.0
        elif t in VOLT_TYPES or t == "gsr":
            out[k] = 1e6
    return out


@dataclass
class _Layout:
    """How one recording gives DEAP's 40 channels."""

    rows: np.ndarray  # DEAP indices present, shape (n_present,)
    picks: list[int]  # recording channel indices, same order
    scale: np.ndarray  # (n_present, 1)
    missing: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)  # recording channel names taken


def _layout(raw: mne.io.BaseRaw, name: str, channel_names, fill_missing) -> _Layout:
    bads = set(raw.info["bads"])
    types = raw.get_channel_types()
    usable = [n for n, t in zip(raw.ch_names, types) if t != "stim" and n not in bads]
    found = match_channels(usable, channel_names, where=name, strict=False)
    missing = [c for c in DEAP_CHANNELS if c not in found]
    if missing and fill_missing is None:
        raise DataError(name, f"missing DEAP channel(s) {', '.join(missing)} "
                              "(map them with channel_names, or pass fill_missing='zeros'/'nan')")
    if missing:
        log.warning("%s: DEAP channel(s) %s absent: filled with %s", name, ", ".join(missing), fill_missing)
    renamed = [f"{v}->{k}" for k, v in found.items() if v != k]
    if renamed:
        log.info("%s: channels matched by name: %s", name, ", ".join(renamed))
    rows = np.asarray([i for i, c in enumerate(DEAP_CHANNELS) if c in found], dtype=np.int64)
    picks = [raw.ch_names.index(found[DEAP_CHANNELS[i]]) for i in rows]
    return _Layout(rows, picks, unit_factors(raw, picks)[:, None], missing, set(found.values()))


# -- records ------------------------------------------------------------------------------
def records_from_mne(
    recordings: Mapping[str, Any] | Sequence[Any] | mne.io.BaseRaw | str | Path | None,
    ratings: str | Path | Mapping | Any,
    *,
    subject_column: str = "subject",
    trial_column: str = "trial",
    recording_column: str = "recording",
    annotation_column: str | None = None,
    trial_seconds: float | None = None,
    baseline_seconds: float = 3.0,
    channel_names: Mapping[str, str] | None = None,
    fill_missing: str | None = None,
    sfreq: float | None = SFREQ,
    eeg_band: tuple[float, float] | None = (4.0, 45.0),
    car: bool = True,
    margin_seconds: float = 5.0,
) -> list[SubjectRecord]:
    """Subject records from MNE recordings and a ratings table (see the module docstring).

    Parameters
    ----------
    recordings : mapping of str -> (mne.io.BaseRaw or path), sequence of them, one, or None
        The recordings the table's ``recording`` column names. None: that column holds
        paths (relative to the CSV's folder), read with ``mne.io.read_raw``.
    ratings : path, pandas.DataFrame or mapping of column -> sequence
        One row per trial (columns in the module docstring).
    subject_column, trial_column, recording_column : str
        Column names (case-insensitive).
    annotation_column : str, optional
        Without an ``onset`` column: the column whose value is the trial's annotation
        description (default ``track`` when present, else ``trial_column``).
    trial_seconds : float, optional
        Cut every trial to this length from its onset (default: the table's ``duration``
        or the annotation's; all must then be equal).
    baseline_seconds : float
        Pre-trial baseline cut before each onset (DEAP: 3 s); equal to the run config's
        ``data.window.baseline_seconds``.
    channel_names : mapping of str -> str, optional
        Recording channel name -> DEAP channel name, tried before the automatic match.
    fill_missing : {None, "zeros", "nan"}
        DEAP channels no recording channel gives: an error (None) or filled.
    sfreq : float or None
        Output rate in Hz (DEAP: 128). None keeps the recordings' rate.
    eeg_band : (float, float) or None
        EEG band-pass in Hz (None: none).
    car : bool
        Re-reference the EEG to the common average of the present EEG channels.
    margin_seconds : float
        Signal cut on each side of a trial for resampling and filtering.

    Returns
    -------
    list of SubjectRecord
        By subject id; each ``data`` float32, shape
        (n_trials, 40, round((baseline_seconds + trial length) * sfreq)), trials in
        trial-id order, ``labels`` float32 (n_trials, 4) = the table's valence, arousal,
        dominance, liking; ``trial_ids`` the table's trial ids; ``source`` the recordings.

    Raises
    ------
    DataError
        One line naming the table row or recording: a missing column or empty cell; a
        rating outside [1, 9]; a duplicate (subject, trial); an unknown recording; no or
        several annotations matching a trial; a trial (with its baseline) outside its
        recording; trials of different lengths; one subject's recordings at different
        sampling rates; missing channels (without ``fill_missing``).
    """
    if fill_missing not in FILL_MODES:
        raise ValueError(f"fill_missing must be one of {FILL_MODES}, got {fill_missing!r}")
    if not baseline_seconds >= 0:
        raise ValueError(f"baseline_seconds must be >= 0, got {baseline_seconds}")
    if trial_seconds is not None and not trial_seconds > 0:
        raise ValueError(f"trial_seconds must be > 0, got {trial_seconds}")
    tab = read_ratings_table(ratings)
    recs = _Recordings(recordings, tab.folder)
    trials = _trials(tab, subject_column=subject_column, trial_column=trial_column,
                     recording_column=recording_column, annotation_column=annotation_column,
                     single_recording=None if tab.has(recording_column) else recs.single_name())

    # ---- resolve every trial to (recording, onset, duration) before reading any signal
    resolved = []  # (trial, key, raw, onset_s, duration_s)
    for t in trials:
        key, raw = recs.get(t.recording, t.row)
        if t.annotation is not None:
            t.onset, dur = _annotation_onset(raw, t.annotation, t.row, t.recording)
            t.duration = dur if dur > 0 else None
        dur = t.duration
        if trial_seconds is not None:
            if dur is not None and dur + 1e-9 < trial_seconds:
                raise DataError(t.row, f"the trial lasts {dur:g} s, shorter than trial_seconds={trial_seconds:g}")
            dur = trial_seconds
        if dur is None:
            raise DataError(t.row, "no trial duration (add a 'duration' column or pass trial_seconds)")
        if not dur > 0:
            raise DataError(t.row, f"duration {dur:g} s is not positive")
        resolved.append((t, key, raw, float(t.onset), float(dur)))

    # ---- one rate per subject, one trial length for all
    rates: dict[int, tuple[float, str]] = {}
    for t, _, raw, _, _ in resolved:
        sf = float(raw.info["sfreq"])
        first = rates.setdefault(t.subject, (sf, t.recording))
        if sf != first[0]:
            raise DataError(t.row, f"subject {t.subject}: recording {t.recording!r} is at {sf:g} Hz but "
                                   f"{first[1]!r} is at {first[0]:g} Hz")
    sf_out_all = {rates[t.subject][0] if sfreq is None else float(sfreq) for t, *_ in resolved}
    if len(sf_out_all) > 1:
        raise DataError(tab.source, f"sfreq=None keeps the recordings' rates, which differ ({sorted(sf_out_all)} Hz)")
    sf_out = sf_out_all.pop()
    base_out = baseline_seconds * sf_out
    if abs(base_out - round(base_out)) > 1e-6:
        raise ValueError(f"baseline_seconds={baseline_seconds} is not a whole number of samples at {sf_out:g} Hz")
    lengths: dict[int, list[str]] = {}
    for t, _, _, _, dur in resolved:
        lengths.setdefault(round((baseline_seconds + dur) * sf_out), []).append(t.row)
    if len(lengths) > 1:
        desc = "; ".join(f"{n} samples: {rows[0]}" + (f" and {len(rows) - 1} more" if len(rows) > 1 else "")
                         for n, rows in sorted(lengths.items()))
        raise DataError(tab.source, f"trials differ in length at {sf_out:g} Hz ({desc}); "
                                    "pass trial_seconds to cut all to one length")
    n_out = next(iter(lengths))

    # ---- cut, convert, resample, filter
    layouts: dict[str, _Layout] = {}
    by_subject: dict[int, list] = {}
    for item in resolved:
        by_subject.setdefault(item[0].subject, []).append(item)
    out = []
    for t, key, raw, _, _ in resolved:  # every channel layout first: errors before any signal is read
        if key not in layouts:
            layouts[key] = _layout(raw, t.recording, channel_names, fill_missing)
    unused = [n for n in (channel_names or {}) if not any(n in lay.used for lay in layouts.values())]
    if unused:
        raise DataError("channel_names", f"{', '.join(unused)}: in none of the recordings (usable channels)")
    for subject in sorted(by_subject):
        items = sorted(by_subject[subject], key=lambda it: it[0].trial)
        data = np.empty((len(items), N_CHANNELS, n_out), dtype=np.float32)
        for k, (t, key, raw, onset, _dur) in enumerate(items):
            data[k] = _cut_trial(raw, layouts[key], t, onset, baseline_seconds, n_out, sf_out,
                                 fill_missing=fill_missing, eeg_band=eeg_band, car=car,
                                 margin_seconds=margin_seconds)
        names = list(dict.fromkeys(it[0].recording for it in items))
        log.info("subject %d: %d trials from %s", subject, len(items), ", ".join(names))
        out.append(SubjectRecord(
            subject=subject,
            data=data,
            labels=np.asarray([it[0].labels for it in items], dtype=np.float32).reshape(-1, len(LABEL_COLUMNS)),
            sfreq=sf_out,
            source=", ".join(names),
            trial_ids=np.asarray([it[0].trial for it in items], dtype=np.int64),
        ))
    return out


def _annotation_onset(raw: mne.io.BaseRaw, desc: str, row: str, rec: str) -> tuple[float, float]:
    """(onset s from the first sample, duration s) of the one annotation described ``desc``."""
    ann = raw.annotations
    want = desc.strip().lower()
    hits = [i for i, d in enumerate(ann.description)
            if str(d).strip().lower() == want or str(d).rsplit("/", 1)[-1].strip().lower() == want]
    if not hits:
        raise DataError(row, f"no annotation {desc!r} in recording {rec!r}")
    if len(hits) > 1:
        raise DataError(row, f"{len(hits)} annotations {desc!r} in recording {rec!r} (expected one)")
    offset = raw.first_time if ann.orig_time is not None else 0.0
    i = hits[0]
    return float(ann.onset[i]) - offset, float(ann.duration[i])


def _cut_trial(raw, lay: _Layout, t: _Trial, onset: float, baseline_seconds: float, n_out: int,
               sf_out: float, *, fill_missing, eeg_band, car, margin_seconds) -> np.ndarray:
    """One trial (baseline + trial) as (40, n_out) in DEAP channels, units and rate."""
    sf_in = float(raw.info["sfreq"])
    ratio = Fraction(sf_out / sf_in).limit_denominator(10_000)
    n_in = math.ceil(n_out / ratio - 1e-9)  # input samples that give n_out output samples
    start = round((onset - baseline_seconds) * sf_in)
    stop = start + n_in
    n_times = raw.n_times
    length = n_times / sf_in
    if start < 0:
        raise DataError(t.row, f"the trial's {baseline_seconds:g}-s baseline (from {onset - baseline_seconds:g} s) "
                               f"starts before recording {t.recording!r}")
    if stop > n_times:
        raise DataError(t.row, f"the trial ends at {onset + (n_out / sf_out - baseline_seconds):g} s, after "
                               f"recording {t.recording!r} ({length:g} s) ends")
    den = ratio.denominator
    margin_in = math.ceil(margin_seconds * sf_in / den) * den if ratio != 1 or eeg_band else 0
    lo, hi = max(0, start - margin_in), min(n_times, stop + margin_in)
    seg = np.zeros((N_CHANNELS, margin_in + n_in + margin_in))
    if fill_missing == "nan":
        seg[:] = np.nan
    present = raw.get_data(picks=lay.picks, start=lo, stop=hi) * lay.scale
    pad = (margin_in - (start - lo), margin_in - (hi - stop))
    if pad != (0, 0):
        present = np.pad(present, ((0, 0), pad), mode="reflect" if min(present.shape[1], 2) > 1 else "edge")
    seg[lay.rows] = present
    if ratio != 1:
        res = mne.filter.resample(seg[lay.rows], up=ratio.numerator, down=ratio.denominator,
                                  method="polyphase", verbose="error")
        x = np.full((N_CHANNELS, res.shape[1]), np.nan if fill_missing == "nan" else 0.0)
        x[lay.rows] = res
    else:
        x = seg
    eeg = lay.rows[lay.rows < _N_EEG]
    if eeg_band is not None and eeg.size:
        x[eeg] = mne.filter.filter_data(x[eeg], sf_out, eeg_band[0], eeg_band[1], verbose="error")
    if car and eeg.size:
        x[eeg] -= x[eeg].mean(axis=0, keepdims=True)
    margin_out = round(margin_in * ratio)
    return x[:, margin_out : margin_out + n_out]
