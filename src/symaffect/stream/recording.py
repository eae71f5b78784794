"""Read a recording (DEAP .dat/.mat trial, EDF/BDF, FIF, BrainVision, CSV, BioSPPy text, or
an MNE object) into DEAP channels.

Every reader returns a :class:`Recording`: the *mapped* channels only (DEAP names), at the
file's native sampling rate, in float64. Resampling to 128 Hz and filtering happen later,
causally, in :mod:`symaffect.stream.preprocess` (the same code path as the live stream).

Units the model expects
-----------------------
The model was trained on DEAP's preprocessed files, so a :class:`Recording` holds each
DEAP channel in DEAP's unit:

==========================================  =================================================
DEAP channels                               unit
==========================================  =================================================
32 EEG, ``hEOG``, ``vEOG``, ``zEMG``,        microvolts (µV)
``tEMG``
``GSR``                                      skin resistance in Ohm (DEAP's) or skin
                                             conductance in µS (both recognised by level,
                                             see :mod:`symaffect.stream.physio`)
``Temp``                                     degrees Celsius
``Resp``, ``BVP``                            the sensor's own units (no physical unit; the
                                             model sees them z-scored)
==========================================  =================================================

Units matter: a model whose preprocessing contract normalises with fixed training
statistics, the quality checks (flat-line limits) and the vital signs read the values as
they are; a Recording built by hand must follow this table.

MNE objects and files MNE reads (:func:`recording_from_mne`, :func:`recordings_from_epochs`;
:func:`read_recording` for ``.edf .bdf .gdf .fif .fif.gz .vhdr`` and any other extension
``mne.io.read_raw`` knows) are converted from MNE's SI units, channel by channel:

* a channel whose file gave a unit (``raw._orig_units``: MNE's EDF/BDF/GDF and
  BrainVision readers): a voltage (``V``, ``mV``, ``µV``/``uV``; and ``nV`` in BrainVision)
  was turned into volts by MNE and is given in µV (x 1e6); BrainVision's siemens
  (``S``, ``µS``) were turned into S and are given in µS (x 1e6); any other unit (``Ohm``,
  ``degC``, none) was passed through by MNE and is kept as the file has it. This is the
  same rule for an EDF in which MNE types every channel ``eeg``: a GSR in ``Ohm`` stays in
  Ohm.
* otherwise (a Raw built in memory, FIF, Epochs) by MNE channel type: ``eeg``, ``eog``,
  ``emg``, ``ecg``, ``seeg``, ``ecog``, ``dbs`` (volts) -> µV (x 1e6); ``gsr`` (siemens)
  -> µS (x 1e6); ``temperature`` (°C), ``resp``, ``bio``, ``misc`` and all others are kept
  as MNE holds them (MNE's nominal unit for these is arbitrary). So a ``RawArray`` must be
  in volts for its ``eeg``/``eog``/``emg`` channels, as MNE requires, and gives µV.

Left out: ``stim`` channels and channels in ``info["bads"]`` (each with a note).

Annotations -> markers: every MNE annotation becomes a music-segment marker
``(description, start_s, end_s)`` with start in seconds from the recording's first sample,
``end_s = start_s + duration`` (None for a zero-duration annotation, i.e. only the onset
is known), except annotations whose description starts with ``BAD`` or ``EDGE``
(case-insensitive: MNE's rejected spans and the boundaries of concatenated raws) or is
``boundary`` (EEGLAB's), also after a BrainVision type prefix (``Comment/BAD_x``): those
are not music.

Channel matching goes through :class:`~symaffect.stream.channel_map.ChannelMap`; the
:class:`~symaffect.stream.channel_map.MatchReport` (which input name -> which DEAP
channel, by which rule; which were left out and why) is :attr:`Recording.match` and is
logged once per recording (INFO, ``symaffect.stream.recording``).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np

from symaffect._io import read_text
from symaffect.data.bdf import ANNOTATION_LABELS, read_bdf_header
from symaffect.data.deap import read_subject
from symaffect.data.mne_records import unit_factors
from symaffect.errors import DataError
from symaffect.spec import BASELINE_SAMPLES, DEAP_CHANNELS, SFREQ
from symaffect.stream.channel_map import ChannelMap, MatchReport, load_channel_map

log = logging.getLogger(__name__)

TIME_COLUMNS = ("time", "t", "timestamp", "timestamps", "time_s", "seconds")
MIN_SFREQ, MAX_SFREQ = 1.0, 100_000.0
"""Sampling rates accepted (Hz): everything is resampled to 128 Hz, so a rate from a
corrupt time column or header (1e-9 or 1e12 Hz) is refused before any buffer is sized."""

MNE_EXTENSIONS = (".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".vhdr")
"""Extensions read through MNE by name; any other extension is tried with ``mne.io.read_raw``."""
NOT_MUSIC = ("bad", "edge")
"""Annotation description prefixes (case-insensitive) that are not markers."""


@dataclass(frozen=True, eq=False)
class Recording:
    """Signals of one recording, mapped to DEAP channel names.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples), float64
        Signals (NaN where the file has missing values), each in its DEAP unit (EEG, EOG
        and EMG in µV; see the module docstring).
    ch_names : tuple of str
        DEAP channel name of each row.
    sfreq : float
        Native sampling rate (Hz).
    source : str
        The file read.
    markers : list of (str, float, float or None)
        Music segments ``(track, start_s, end_s)`` known from the file (DEAP: the trial;
        MNE: annotations; Epochs: the epoch's event or metadata).
    notes : list of str
        Channels left out and why.
    source_names : tuple of str
        The file's name of each row.
    match : MatchReport or None
        How the channel map matched the file's channels (None for in-memory DEAP arrays).
    """

    data: np.ndarray
    ch_names: tuple[str, ...]
    sfreq: float
    source: str = ""
    markers: list[tuple[str, float, float | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_names: tuple[str, ...] = ()
    match: MatchReport | None = None

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sfreq

    @classmethod
    def from_mne(cls, inst, channel_map: str | Path | ChannelMap | None = None, **kwargs) -> Recording:
        """:func:`recording_from_mne` (a Raw); for Epochs use :func:`recordings_from_epochs`."""
        return recording_from_mne(inst, channel_map, **kwargs)


def _match(names: Sequence[str], cmap: ChannelMap, source: str | Path) -> MatchReport:
    """Match names, log the report once, and refuse a recording with no model channel."""
    report = cmap.match(names)
    log.info("%s: %s", Path(str(source)).name or source, report.summary())
    if not report.mapping:
        raise DataError(
            source,
            f"no channel maps to a model channel with map {cmap.name!r} (channels: {', '.join(names[:12])});"
            " give --channel-map",
        )
    return report


def _check_sfreq(sfreq: float, source: str | Path) -> None:
    if not np.isfinite(sfreq) or not MIN_SFREQ <= sfreq <= MAX_SFREQ:
        raise DataError(source, f"sampling rate {sfreq:g} Hz is outside [{MIN_SFREQ:g}, {MAX_SFREQ:g}] Hz")


def _mapped(
    data: np.ndarray,
    names: list[str],
    sfreq: float,
    cmap: ChannelMap,
    source: str | Path,
    *,
    markers: list | None = None,
    notes: Sequence[str] = (),
) -> Recording:
    report = _match(names, cmap, source)
    _check_sfreq(sfreq, source)
    mapping = report.mapping
    rows = [names.index(s) for s in mapping]
    arr = np.asarray(data, dtype=np.float64)[rows]
    return Recording(
        data=np.ascontiguousarray(arr),
        ch_names=tuple(mapping.values()),
        sfreq=float(sfreq),
        source=str(source),
        markers=list(markers or []),
        notes=list(notes) + report.notes,
        source_names=tuple(mapping),
        match=report,
    )


def _extension(path: Path) -> str:
    name = path.name.lower()
    return ".fif.gz" if name.endswith(".fif.gz") else path.suffix.lower()


def read_recording(
    path: str | Path | mne.io.BaseRaw,
    channel_map: str | Path | ChannelMap | None = None,
    *,
    trial: int | None = None,
    sfreq: float | None = None,
) -> Recording:
    """Read a recording and map its channels.

    Parameters
    ----------
    path : str, Path or mne.io.BaseRaw
        ``sNN.dat`` / ``sNN.mat`` (DEAP preprocessed), ``.edf`` / ``.bdf`` / ``.gdf``,
        ``.fif`` / ``.fif.gz``, BrainVision ``.vhdr``, any other file ``mne.io.read_raw``
        reads, ``.csv`` / ``.tsv`` with a header row, a BioSPPy "Simple Text Format"
        ``.txt``; or an MNE Raw object (:func:`recording_from_mne`). Epochs: use
        :func:`recordings_from_epochs`.
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
        Channels in DEAP units (EEG/EOG/EMG in µV; see the module docstring).
    """
    if isinstance(path, mne.io.BaseRaw):
        return recording_from_mne(path, channel_map)
    if isinstance(path, mne.BaseEpochs):
        raise DataError("recording", "an mne.Epochs holds several recordings: use recordings_from_epochs(epochs)")
    if not isinstance(path, (str, Path)):
        raise DataError("recording", f"expected a file path or an mne.io.Raw, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "recording not found")
    ext = _extension(path)
    if ext in (".dat", ".mat"):
        return _read_deap(path, load_channel_map(channel_map or "deap"), trial)
    cmap = load_channel_map(channel_map)
    if ext in (".csv", ".tsv"):
        return _read_csv(path, cmap, sfreq)
    if ext == ".txt":
        return _read_biosppy(path, cmap, sfreq)
    return _read_mne(path, cmap)


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
    ext = _extension(path)
    empty: set[int] = set()  # MNE positions of signals with no samples (MNE fills them with zeros)
    notes: list[str] = []
    if ext in (".edf", ".bdf"):
        header = read_bdf_header(path)  # truncated or corrupt header / data records: DataError
        kept = [i for i, lab in enumerate(header.labels) if lab.lower() not in ANNOTATION_LABELS]
        empty = {j for j, i in enumerate(kept) if header.samples_per_record[i] == 0}
        notes = [f"{header.labels[kept[j]] or f'signal {kept[j] + 1}'}: 0 samples per record in the header"
                 " (no data); left out" for j in sorted(empty)]
    try:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
        msg = (str(e).splitlines() or [""])[0]
        if ext not in MNE_EXTENSIONS and msg.startswith("Unsupported file type"):
            raise DataError(path, f"unknown recording format {ext!r} (.dat .mat .edf .bdf .gdf .fif .vhdr"
                            " .csv .txt, or any format mne.io.read_raw reads)") from None
        if ext in (".fif", ".fif.gz") and _holds_epochs(path):
            raise DataError(path, "holds epochs, not a continuous recording: read it with mne.read_epochs"
                            " and use recordings_from_epochs") from None
        raise DataError(path, f"not readable by MNE ({type(e).__name__}: {msg})") from None
    for n in notes:
        log.warning("%s: %s", path.name, n)
    return _from_raw(raw, cmap, path, skip=empty, notes=notes)


def _holds_epochs(path: Path) -> bool:
    try:
        mne.read_epochs(path, preload=False, verbose="error")
    except Exception:  # noqa: BLE001 - not epochs either
        return False
    return True


def _mne_picks(inst, skip: set[int] = frozenset()) -> tuple[list[int], list[str]]:
    """Signal channels (no stim, no bads, not ``skip``) and notes on the bads."""
    bads = set(inst.info["bads"])
    picks = [i for i, t in enumerate(inst.get_channel_types())
             if t != "stim" and i not in skip and inst.ch_names[i] not in bads]
    notes = [f"{n}: marked bad in info['bads']; left out" for n in inst.ch_names if n in bads]
    return picks, notes


def _markers(annotations: mne.Annotations, offset: float) -> list[tuple[str, float, float | None]]:
    out = []
    for onset, dur, desc in zip(annotations.onset, annotations.duration, annotations.description):
        d = str(desc).strip()
        last = d.rsplit("/", 1)[-1].strip().lower()  # BrainVision: "<type>/<description>"
        if d.lower().startswith(NOT_MUSIC) or last.startswith(NOT_MUSIC) or "boundary" in (d.lower(), last):
            continue
        start = float(onset) - offset
        out.append((d, start, start + float(dur) if dur > 0 else None))
    return out


def recording_from_mne(
    raw: mne.io.BaseRaw,
    channel_map: str | Path | ChannelMap | None = None,
    *,
    source: str = "",
) -> Recording:
    """A :class:`Recording` from an MNE Raw (units, channel types and annotations converted).

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Any Raw (read from a file, or built with ``mne.io.RawArray``); it need not be
        preloaded. ``eeg``/``eog``/``emg``/``ecg`` channels in volts (MNE's unit), ``gsr``
        in siemens, ``temperature`` in °C.
    channel_map : str, Path, ChannelMap or None
        YAML path or shipped map name (None: ``default``).
    source : str
        Name for messages and :attr:`Recording.source` (default: the Raw's file, or
        ``"<RawArray>"``).

    Returns
    -------
    Recording
        The mapped channels in DEAP units (µV for EEG/EOG/EMG, µS for ``gsr``; see the
        module docstring), annotations as markers (``BAD*``/``EDGE*``/``boundary`` left
        out), the :class:`~symaffect.stream.channel_map.MatchReport` in ``match``.
    """
    if isinstance(raw, mne.BaseEpochs):
        raise DataError("recording", "an mne.Epochs holds several recordings: use recordings_from_epochs(epochs)")
    if not isinstance(raw, mne.io.BaseRaw):
        raise DataError("recording", f"expected an mne.io.BaseRaw, got {type(raw).__name__}")
    if not source:
        files = [f for f in (getattr(raw, "filenames", None) or ()) if f]
        source = str(files[0]) if files else f"<{type(raw).__name__}>"
    return _from_raw(raw, load_channel_map(channel_map), source)


def _from_raw(raw: mne.io.BaseRaw, cmap: ChannelMap, source: str | Path, *, skip: set[int] = frozenset(),
              notes: Sequence[str] = ()) -> Recording:
    picks, bad_notes = _mne_picks(raw, skip)
    if not picks:
        raise DataError(source, "no signal with samples (every channel is a trigger channel, bad or empty)")
    names = [raw.ch_names[i] for i in picks]
    report = _match(names, cmap, source)
    sfreq = float(raw.info["sfreq"])
    _check_sfreq(sfreq, source)
    mapped = [picks[names.index(s)] for s in report.mapping]
    data = raw.get_data(picks=mapped) * unit_factors(raw, mapped)[:, None]  # (C, T) in DEAP units
    offset = raw.first_time if raw.annotations.orig_time is not None else 0.0
    return Recording(
        data=np.ascontiguousarray(data, dtype=np.float64),
        ch_names=tuple(report.mapping.values()),
        sfreq=sfreq,
        source=str(source),
        markers=_markers(raw.annotations, offset),
        notes=list(notes) + bad_notes + report.notes,
        source_names=tuple(report.mapping),
        match=report,
    )


def recordings_from_epochs(
    epochs: mne.BaseEpochs,
    channel_map: str | Path | ChannelMap | None = None,
    *,
    track: str | None = None,
    source: str = "",
) -> list[Recording]:
    """One :class:`Recording` per epoch, each named by its event or metadata.

    Parameters
    ----------
    epochs : mne.BaseEpochs
        Units and channel types as for :func:`recording_from_mne` (epochs carry no file
        units, so the MNE channel type decides).
    channel_map : str, Path, ChannelMap or None
        YAML path or shipped map name (None: ``default``).
    track : str, optional
        Column of ``epochs.metadata`` that names the track. Default: the ``track`` column
        when the metadata has one, else the epoch's event name (``epochs.event_id`` key;
        the event code as text when it has none).
    source : str
        Name for messages (default: ``"<Epochs>"``); epoch ``i`` is ``"<source>[i]"``.

    Returns
    -------
    list of Recording
        In epoch order (after MNE drops bad epochs). The first sample is the epoch's
        ``tmin``; markers are ``("baseline", 0, -tmin)`` when ``tmin < 0``, then
        ``(track, max(0, -tmin), duration)``: the epoch from its event on.
    """
    if not isinstance(epochs, mne.BaseEpochs):
        raise DataError("epochs", f"expected an mne.Epochs, got {type(epochs).__name__}")
    source = source or "<Epochs>"
    cmap = load_channel_map(channel_map)
    picks, bad_notes = _mne_picks(epochs)
    if not picks:
        raise DataError(source, "no signal (every channel is a trigger channel or bad)")
    names = [epochs.ch_names[i] for i in picks]
    report = _match(names, cmap, source)
    sfreq = float(epochs.info["sfreq"])
    _check_sfreq(sfreq, source)
    mapped = [picks[names.index(s)] for s in report.mapping]
    data = epochs.get_data(picks=mapped) * unit_factors(epochs, mapped)[None, :, None]  # (E, C, T)
    meta = epochs.metadata
    if track is not None and (meta is None or track not in meta.columns):
        raise DataError(source, f"epochs.metadata has no column {track!r}")
    column = track if track is not None else ("track" if meta is not None and "track" in meta.columns else None)
    names_of = {v: k for k, v in epochs.event_id.items()}
    tmin, dur = float(epochs.tmin), data.shape[2] / sfreq
    out = []
    for i in range(data.shape[0]):
        name = str(meta[column].iloc[i]) if column else names_of.get(int(epochs.events[i, 2]),
                                                                       str(int(epochs.events[i, 2])))
        markers = ([("baseline", 0.0, -tmin)] if tmin < 0 else []) + [(name, max(0.0, -tmin), dur)]
        out.append(Recording(
            data=np.ascontiguousarray(data[i], dtype=np.float64),
            ch_names=tuple(report.mapping.values()),
            sfreq=sfreq,
            source=f"{source}[{i}]",
            markers=markers,
            notes=bad_notes + report.notes,
            source_names=tuple(report.mapping),
            match=report,
        ))
    return out


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
