"""Read a recording (DEAP .dat/.mat trial, EDF/BDF, CSV, BioSPPy text) into DEAP channels.

Every reader returns a :class:`Recording`: the *mapped* channels only (DEAP names), at the
file's native sampling rate, in float64. Resampling to 128 Hz and filtering happen later,
causally, in :mod:`symaffect.stream.preprocess` (the same code path as the live stream).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np

from symaffect._io import read_text
from symaffect.data.bdf import ANNOTATION_LABELS, read_bdf_header
from symaffect.data.deap import read_subject
from symaffect.errors import DataError
from symaffect.spec import BASELINE_SAMPLES, DEAP_CHANNELS, SFREQ
from symaffect.stream.channel_map import ChannelMap, load_channel_map

log = logging.getLogger(__name__)

TIME_COLUMNS = ("time", "t", "timestamp", "timestamps", "time_s", "seconds")
MIN_SFREQ, MAX_SFREQ = 1.0, 100_000.0
"""Sampling rates accepted (Hz): everything is resampled to 128 Hz, so a rate from a
corrupt time column or header (1e-9 or 1e12 Hz) is refused before any buffer is sized."""


@dataclass(frozen=True, eq=False)
class Recording:
    """Signals of one recording, mapped to DEAP channel names.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples), float64
        Signals (NaN where the file has missing values).
    ch_names : tuple of str
        DEAP channel name of each row.
    sfreq : float
        Native sampling rate (Hz).
    source : str
        The file read.
    markers : list of (str, float, float or None)
        Music segments ``(track, start_s, end_s)`` known from the file (DEAP: the trial).
    notes : list of str
        Channels left out and why.
    source_names : tuple of str
        The file's name of each row.
    """

    data: np.ndarray
    ch_names: tuple[str, ...]
    sfreq: float
    source: str = ""
    markers: list[tuple[str, float, float | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_names: tuple[str, ...] = ()

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sfreq


def _mapped(
    data: np.ndarray,
    names: list[str],
    sfreq: float,
    cmap: ChannelMap,
    source: Path,
    *,
    markers: list | None = None,
) -> Recording:
    mapping, notes = cmap.resolve(names)
    for n in notes:
        log.info("%s: %s", source.name, n)
    if not mapping:
        raise DataError(
            source,
            f"no channel maps to a model channel with map {cmap.name!r} (channels: {', '.join(names[:12])});"
            " give --channel-map",
        )
    if not np.isfinite(sfreq) or not MIN_SFREQ <= sfreq <= MAX_SFREQ:
        raise DataError(source, f"sampling rate {sfreq:g} Hz is outside [{MIN_SFREQ:g}, {MAX_SFREQ:g}] Hz")
    rows = [names.index(s) for s in mapping]
    arr = np.asarray(data, dtype=np.float64)[rows]
    return Recording(
        data=np.ascontiguousarray(arr),
        ch_names=tuple(mapping.values()),
        sfreq=float(sfreq),
        source=str(source),
        markers=list(markers or []),
        notes=notes,
        source_names=tuple(mapping),
    )


def read_recording(
    path: str | Path,
    channel_map: str | Path | ChannelMap | None = None,
    *,
    trial: int | None = None,
    sfreq: float | None = None,
) -> Recording:
    """Read a recording and map its channels.

    Parameters
    ----------
    path : str or Path
        ``sNN.dat`` / ``sNN.mat`` (DEAP preprocessed), ``.edf`` / ``.bdf``, ``.csv`` with a
        header row, or a BioSPPy "Simple Text Format" ``.txt``.
    channel_map : str, Path, ChannelMap or None
        YAML path or shipped map name; None uses ``deap`` for DEAP files and ``default``
        otherwise.
    trial : int, optional
        1-based trial of a DEAP file (default 1).
    sfreq : float, optional
        Sampling rate of a CSV without a time column (overrides any other source).

    Returns
    -------
    Recording
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "recording not found")
    ext = path.suffix.lower()
    if ext in (".dat", ".mat"):
        return _read_deap(path, load_channel_map(channel_map or "deap"), trial)
    cmap = load_channel_map(channel_map)
    if ext in (".edf", ".bdf", ".gdf"):
        return _read_mne(path, cmap)
    if ext in (".csv", ".tsv"):
        return _read_csv(path, cmap, sfreq)
    if ext == ".txt":
        return _read_biosppy(path, cmap, sfreq)
    raise DataError(path, f"unknown recording format {ext!r} (.dat .mat .edf .bdf .csv .txt)")


def _read_deap(path: Path, cmap: ChannelMap, trial: int | None) -> Recording:
    rec = read_subject(path, subject=0)
    trial = 1 if trial is None else int(trial)
    if not 1 <= trial <= rec.n_trials:
        raise DataError("trial", f"{trial} is out of range 1..{rec.n_trials} for {path}")
    data = rec.data[trial - 1]
    base = BASELINE_SAMPLES / SFREQ
    markers = [("baseline", 0.0, base), (f"trial {trial}", base, data.shape[1] / rec.sfreq)]
    return _mapped(data, list(rec.ch_names), rec.sfreq, cmap, path, markers=markers)


def _read_mne(path: Path, cmap: ChannelMap) -> Recording:
    empty: set[int] = set()  # MNE positions of signals with no samples (MNE fills them with zeros)
    notes: list[str] = []
    if path.suffix.lower() in (".edf", ".bdf"):
        header = read_bdf_header(path)  # truncated or corrupt header / data records: DataError
        kept = [i for i, lab in enumerate(header.labels) if lab.lower() not in ANNOTATION_LABELS]
        empty = {j for j, i in enumerate(kept) if header.samples_per_record[i] == 0}
        notes = [f"{header.labels[kept[j]] or f'signal {kept[j] + 1}'}: 0 samples per record in the header"
                 " (no data); left out" for j in sorted(empty)]
    try:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
        msg = (str(e).splitlines() or [""])[0]
        raise DataError(path, f"not readable by MNE ({type(e).__name__}: {msg})") from None
    for n in notes:
        log.warning("%s: %s", path.name, n)
    picks = [i for i, t in enumerate(raw.get_channel_types()) if t != "stim" and i not in empty]
    if not picks:
        raise DataError(path, "no signal with samples (every channel is a trigger channel or empty)")
    data = raw.get_data(picks=picks)
    names = [raw.ch_names[i] for i in picks]
    # MNE gives SI units (V); DEAP's EEG/EOG/EMG are in microvolts
    types = raw.get_channel_types(picks=picks)
    for i, t in enumerate(types):
        if t in ("eeg", "eog", "emg", "ecg"):
            data[i] *= 1e6
    markers = [(str(d), float(o), float(o + dur)) for o, dur, d in
               zip(raw.annotations.onset, raw.annotations.duration, raw.annotations.description)]
    rec = _mapped(data, names, raw.info["sfreq"], cmap, path, markers=markers)
    rec.notes[:0] = notes
    return rec


def _parse_float(cell: str) -> float:
    """A sample: a finite number, or NaN for an empty / ``nan`` / ``na`` / ``null`` cell."""
    cell = cell.strip()
    if cell == "" or cell.lower() in ("nan", "na", "null", "none"):
        return float("nan")
    v = float(cell)
    if not np.isfinite(v):
        raise ValueError(f"{cell!r} is not finite")
    return v


def _read_csv(path: Path, cmap: ChannelMap, sfreq: float | None) -> Recording:
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delim)
    try:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(path, "empty CSV") from None
        if not header or all(_is_number(h) for h in header):
            raise DataError(path, "CSV needs a header row of channel names")
        rows = []
        for row in reader:
            line_no = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(path, f"line {line_no}: {len(row)} cells, header has {len(header)}")
            try:
                rows.append([_parse_float(c) for c in row])
            except ValueError:
                bad = next(c for c in row if not _is_sample(c))
                raise DataError(path, f"line {line_no}: cell {_clip(bad)!r} is not a finite number") from None
    except csv.Error as e:
        raise DataError(path, f"line {reader.line_num}: not a readable CSV row ({e})") from None
    if len(rows) < 2:
        raise DataError(path, "CSV has fewer than 2 data rows")
    arr = np.asarray(rows, dtype=np.float64).T  # (C, S)
    tcol = next((i for i, h in enumerate(header) if h.lower() in TIME_COLUMNS), None)
    if sfreq is None and tcol is not None:
        dt = np.diff(arr[tcol])
        if not np.all(np.isfinite(dt)) or np.median(dt) <= 0:
            raise DataError(path, f"time column {header[tcol]!r} is not increasing")
        sfreq = 1.0 / float(np.median(dt))
        if np.max(np.abs(dt - 1 / sfreq)) > 0.5 / sfreq:
            log.warning("%s: irregular time column; assuming %.3f Hz", path.name, sfreq)
    if sfreq is None:
        m = re.search(r"(\d+(?:\.\d+)?)\s*hz", path.stem, flags=re.IGNORECASE)
        if m is None:
            raise DataError(path, "no time column and no sampling rate: give --sfreq")
        sfreq = float(m.group(1))
        log.info("%s: sampling rate %.6g Hz taken from the file name", path.name, sfreq)
    names = [h for i, h in enumerate(header) if i != tcol]
    data = np.delete(arr, tcol, axis=0) if tcol is not None else arr
    return _mapped(data, names, float(sfreq), cmap, path)


def _is_sample(cell: str) -> bool:
    try:
        _parse_float(cell)
    except ValueError:
        return False
    return True


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_biosppy(path: Path, cmap: ChannelMap, sfreq: float | None) -> Recording:
    header: dict[str, str] = {}
    values: list[float] = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if ":=" in s:
                k, v = s[1:].split(":=", 1)
                header[k.strip().lower()] = v.strip()
            continue
        cells = s.split()
        try:
            values.extend(_parse_float(c) for c in cells[:1])
        except ValueError:
            raise DataError(path, f"line {line_no}: value {_clip(cells[0])!r} is not a finite number") from None
    if sfreq is None:
        rate = header.get("sampling rate (hz)")
        if rate is None:
            raise DataError(path, "no '# Sampling Rate (Hz):=' header: give --sfreq")
        try:
            sfreq = float(rate)
        except ValueError:
            raise DataError(path, f"bad sampling rate {_clip(rate)!r}") from None
    if len(values) < 2:
        raise DataError(path, "fewer than 2 samples")
    label = header.get("labels", path.stem).split(",")[0].strip() or path.stem
    return _mapped(np.asarray(values, dtype=np.float64)[None, :], [label], float(sfreq), cmap, path)


def deap_recording(data: np.ndarray, *, sfreq: float = SFREQ, source: str = "") -> Recording:
    """A :class:`Recording` from an in-memory (40, n_samples) array in DEAP order."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != len(DEAP_CHANNELS):
        raise DataError(source or "data", f"expected shape (40, n_samples), got {data.shape}")
    return Recording(data=data, ch_names=DEAP_CHANNELS, sfreq=float(sfreq), source=source,
                     source_names=DEAP_CHANNELS)
