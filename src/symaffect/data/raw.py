"""Reader for DEAP's raw BioSemi recordings (``data_original/sNN.bdf``), built on MNE.

It turns one recording into the same :class:`~symaffect.data.records.SubjectRecord`
that the preprocessed reader returns: ``(n_trials, 40, 8064)`` float32 at 128 Hz in
DEAP's 40-channel order, each trial = the 3-s pre-trial baseline followed by the 60-s
video.

Processing, in order (choices marked *ours* differ from or are not described by DEAP):

1. Status channel (named ``Status``, ``""`` or ``"-1"``): low byte (``& 0xFF``); a trial
   starts where the low byte becomes 4 (music video, 60 s). Its baseline is the 3 s just
   before that onset, i.e. the end of the code-3 fixation (a warning is logged when
   those 3 s are not code 3).
2. Channels (1 -> 40): EEG in Geneva order; ``hEOG = EXG1 - EXG2``,
   ``vEOG = EXG3 - EXG4``, ``zEMG = EXG5 - EXG6``, ``tEMG = EXG7 - EXG8``,
   ``GSR = GSR1``, ``Resp``, ``BVP = Plet``, ``Temp``. Values are in the header's
   physical units (uV for EEG/EXG, as in DEAP's preprocessed files). EEG channels are
   found by their 10-20 labels (whatever the site order) when the file uses 10-20
   labels (all 32 must then be there); when none of the 32 names is in the file
   (*ours*: e.g. BioSemi's ``A1..A32`` labels) the first 32 channels are taken in the
   recording site's order, Twente (s01-s22) or Geneva (s23-s32), and reordered to
   Geneva. ``eeg_order`` forces one of the two.
3. Each trial is cut at the input rate with a margin (default 5 s each side; reflected
   when the recording is shorter), so the whole recording is never loaded (MNE reads
   lazily). *Ours*: cut first, then resample, rather than resampling the whole raw.
4. Resampling to 128 Hz with MNE's polyphase resampler (anti-alias FIR; sample 0 of
   the output is sample 0 of the input, so the trial onsets stay exact for 512 -> 128).
5. EEG band-pass 4-45 Hz (MNE's default zero-phase FIR, at 128 Hz, inside the margin),
   then common average reference over the 32 EEG channels. Peripheral and EOG channels
   are only resampled, as in DEAP.
6. *Not done*: DEAP's EOG-artefact removal from the EEG.

Labels: a :class:`SubjectRecord` cannot hold NaN, so ratings come from ``ratings``
(the :func:`~symaffect.data.deap.read_ratings` mapping of ``participant_ratings.csv``).
With ratings, the k-th video onset is the row with ``Trial == k`` of that participant,
and trials are returned in ``Experiment_id`` order with ``trial_ids = Experiment_id``,
like the preprocessed files. Without ratings, trials stay in presentation order
(``trial_ids = 1..n``), every label is 5.0 (the scale's midpoint) and a warning is
logged: such a record is fine for signal work, never for training.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import mne
import numpy as np

from symaffect.data.bdf import read_bdf_header
from symaffect.data.deap import subject_id_from_name
from symaffect.data.records import SubjectRecord
from symaffect.errors import DataError
from symaffect.spec import (
    DEAP_CHANNELS,
    EEG_CHANNELS,
    EEG_CHANNELS_TWENTE,
    N_CHANNELS,
    SFREQ,
)

__all__ = ["BIPOLAR", "SINGLE", "STATUS_NAMES", "find_video_onsets", "read_raw_subject"]

logger = logging.getLogger(__name__)

STATUS_NAMES = ("status", "", "-1")
"""Labels (lower-cased) under which BioSemi files carry the Status channel."""
CODE_FIXATION, CODE_VIDEO = 3, 4
BASELINE_SECONDS, VIDEO_SECONDS = 3.0, 60.0
LAST_TWENTE_SUBJECT = 22
BIPOLAR: dict[str, tuple[str, str]] = {
    "hEOG": ("EXG1", "EXG2"),
    "vEOG": ("EXG3", "EXG4"),
    "zEMG": ("EXG5", "EXG6"),
    "tEMG": ("EXG7", "EXG8"),
}
"""DEAP channels computed as a difference of two BioSemi EXG channels."""
SINGLE: dict[str, str] = {"GSR": "GSR1", "Resp": "Resp", "BVP": "Plet", "Temp": "Temp"}
"""DEAP channels copied from one raw channel."""
_MICRO = ("uv", "\u00b5v", "\u03bcv")
_TAL = ("edf annotations", "bdf annotations")


def find_video_onsets(status: np.ndarray) -> np.ndarray:
    """Sample indices where the low byte of the status word becomes 4 (video start).

    Parameters
    ----------
    status : ndarray of int, shape (n_times,)
        Raw status words (high bits are ignored).

    Returns
    -------
    ndarray of int, shape (n_onsets,)
    """
    code = np.asarray(status).astype(np.int64) & 0xFF
    is4 = code == CODE_VIDEO
    onsets = np.flatnonzero(is4[1:] & ~is4[:-1]) + 1
    if is4.size and is4[0]:
        onsets = np.concatenate([[0], onsets])
    return onsets


def _unit_factor(unit: str) -> float:
    """Factor from MNE's SI value back to the header's physical unit."""
    u = unit.strip().lower()
    if u in _MICRO:
        return 1e6
    if u == "mv":
        return 1e3
    return 1.0


def _subject_ratings(ratings: Mapping[str, np.ndarray], subject: int, path: Path, n_trials: int):
    pid = np.asarray(ratings["Participant_id"])
    rows = np.flatnonzero(pid == subject)
    if rows.size != n_trials:
        raise DataError(
            path,
            f"{n_trials} video onsets but {rows.size} rows for participant {subject} in the ratings",
        )
    trial = np.asarray(ratings["Trial"])[rows]
    rows = rows[np.argsort(trial, kind="stable")]  # presentation order
    exp = np.asarray(ratings["Experiment_id"])[rows].astype(np.int64)
    labels = np.stack(
        [np.asarray(ratings[c], dtype=np.float64)[rows] for c in ("Valence", "Arousal", "Dominance", "Liking")],
        axis=1,
    )
    if not np.all((labels >= 1) & (labels <= 9)):
        raise DataError(path, f"ratings of participant {subject} are missing or outside [1, 9]")
    return exp, labels


def read_raw_subject(
    path: str | Path,
    *,
    subject: int | None = None,
    ratings: Mapping[str, np.ndarray] | None = None,
    eeg_band: tuple[float, float] | None = (4.0, 45.0),
    sfreq: float = SFREQ,
    car: bool = True,
    eeg_order: str = "auto",
    margin_seconds: float = 5.0,
) -> SubjectRecord:
    """Read one raw DEAP recording into DEAP's preprocessed layout.

    Parameters
    ----------
    path : str or Path
        ``data_original/sNN.bdf``.
    subject : int, optional
        DEAP participant id; default from the file name (``s07.bdf`` -> 7). Decides the
        site order (Twente for 1-22) when the EEG labels are not 10-20 names.
    ratings : mapping of str -> ndarray, optional
        ``participant_ratings.csv`` as read by :func:`~symaffect.data.deap.read_ratings`
        (all participants; this subject's rows are selected). Default: labels 5.0 and a
        warning (see the module docstring).
    eeg_band : (float, float) or None
        EEG band-pass in Hz; None skips it.
    sfreq : float
        Output rate in Hz (DEAP: 128).
    car : bool
        Re-reference the EEG to the common average.
    eeg_order : {"auto", "labels", "site"}
        How EEG channels are found: by 10-20 label, by position in the site's order,
        or ("auto") by label when any of the 32 names is in the file, else by position.
    margin_seconds : float
        Extra signal cut on each side of a trial before resampling and filtering.

    Returns
    -------
    SubjectRecord
        ``data`` float32, shape (n_trials, 40, round((3 + 60) * sfreq)) (8064 at
        128 Hz); ``labels`` float32, shape (n_trials, 4); ``sfreq``; ``trial_ids``.

    Raises
    ------
    DataError
        Not a BDF file; no Status channel; no video onsets (code 4); missing channels
        (all listed); a trial running past the end of the recording (or its baseline
        before the start); ratings that do not match the number of trials.
    """

    path = Path(path)
    if eeg_order not in ("auto", "labels", "site"):
        raise ValueError(f"eeg_order must be 'auto', 'labels' or 'site', got {eeg_order!r}")
    header = read_bdf_header(path)  # checked against the file: truncation and corruption are errors
    # MNE drops annotation (TAL) signals; map header positions to MNE's
    keep = [i for i, lab in enumerate(header.labels) if lab.lower() not in _TAL]
    # MNE keeps a 0-samples-per-record signal as zeros: name it "missing" instead
    empty = {header.labels[i] for i in keep if header.samples_per_record[i] == 0}
    labels = [header.labels[i] if header.samples_per_record[i] else "" for i in keep]
    units = [header.units[i] for i in keep]
    if empty:
        logger.warning("%s: no samples (0 per record) in %s: treated as missing", path, ", ".join(sorted(empty)))
    status_idx = next(
        (i for i, lab in enumerate(labels) if lab.lower() in STATUS_NAMES and header.samples_per_record[keep[i]]),
        None,
    )
    if status_idx is None:
        raise DataError(path, "no Status channel (expected a channel labelled Status, '' or -1)")
    try:
        raw = mne.io.read_raw_bdf(path, stim_channel=status_idx, preload=False, verbose="error")
    except Exception as e:
        raise DataError(path, f"MNE cannot read this BDF file: {type(e).__name__}: {e}") from None
    sf_in = float(raw.info["sfreq"])
    n_times = raw.n_times
    status = raw.get_data(picks=[status_idx])[0]
    onsets = find_video_onsets(np.rint(status).astype(np.int64))
    if onsets.size == 0:
        raise DataError(
            path,
            "no video onsets in the Status channel (low byte never becomes 4): "
            "not a DEAP recording, or its triggers are missing",
        )

    # ---- channels
    name_to_idx = {lab: i for i, lab in enumerate(labels)}
    need = [c for pair in BIPOLAR.values() for c in pair] + list(SINGLE.values())
    any_eeg_label = any(c in name_to_idx for c in EEG_CHANNELS)
    use_labels = eeg_order == "labels" or (eeg_order == "auto" and any_eeg_label)
    missing = [c for c in need if c not in name_to_idx]
    if use_labels:
        missing = [c for c in EEG_CHANNELS if c not in name_to_idx] + missing
    if missing:
        no_data = [c for c in missing if c in empty]
        why = f" ({', '.join(no_data)}: 0 samples per record)" if no_data else ""
        raise DataError(path, f"missing channel(s): {', '.join(missing)}{why}")
    if subject is None:
        subject = subject_id_from_name(path)
    subject = int(subject)
    if use_labels:
        eeg_idx = [name_to_idx[c] for c in EEG_CHANNELS]
        how = "by label"
    else:
        site = EEG_CHANNELS_TWENTE if subject <= LAST_TWENTE_SUBJECT else EEG_CHANNELS
        taken = set(name_to_idx[c] for c in need) | {status_idx}
        if any(i in taken for i in range(32)) or len(labels) < 32:
            raise DataError(path, "the first 32 channels are not all EEG: cannot take EEG by position")
        no_data = [header.labels[keep[i]] or f"#{i + 1}" for i in range(32) if not labels[i]]
        if no_data:
            raise DataError(path, f"EEG channel(s) {', '.join(no_data)}: 0 samples per record (no data)")
        pos = {name: j for j, name in enumerate(site)}
        eeg_idx = [pos[c] for c in EEG_CHANNELS]  # file position of each Geneva channel
        how = "by position, " + ("Twente" if site is EEG_CHANNELS_TWENTE else "Geneva") + " order"
    logger.info("%s: subject %d, EEG %s, %d video onsets, %g Hz", path.name, subject, how, onsets.size, sf_in)

    # ---- labels and trial order
    n_trials = int(onsets.size)
    if ratings is not None:
        trial_ids, labels_arr = _subject_ratings(ratings, subject, path, n_trials)
        order = np.argsort(trial_ids, kind="stable")
        trial_ids, labels_arr, onsets = trial_ids[order], labels_arr[order], onsets[order]
    else:
        logger.warning(
            "%s: no ratings given: labels set to 5.0 and trials kept in presentation order", path
        )
        trial_ids = np.arange(1, n_trials + 1)
        labels_arr = np.full((n_trials, 4), 5.0)

    # ---- cut, resample, filter
    picks = eeg_idx + [name_to_idx[c] for c in need]
    scale = np.array([_unit_factor(units[i]) for i in picks])[:, None]
    ratio = Fraction(sfreq / sf_in).limit_denominator(10_000)
    base_in = int(round(BASELINE_SECONDS * sf_in))
    video_in = int(round(VIDEO_SECONDS * sf_in))
    margin_in = int(round(margin_seconds * sf_in))
    n_out = int(round((BASELINE_SECONDS + VIDEO_SECONDS) * sfreq))
    margin_out = int(round(margin_in * float(ratio)))
    out = np.empty((n_trials, N_CHANNELS, n_out), dtype=np.float32)
    code = np.rint(status).astype(np.int64) & 0xFF
    for k, onset in enumerate(onsets):
        start, stop = int(onset) - base_in, int(onset) + video_in
        if start < 0:
            raise DataError(path, f"trial {k + 1}: less than {BASELINE_SECONDS:g} s of baseline before the video onset")
        if stop > n_times:
            raise DataError(path, f"trial {k + 1}: the recording ends before the {VIDEO_SECONDS:g}-s video does")
        if not np.all(code[start:onset] == CODE_FIXATION):
            logger.warning(
                "%s: trial %d: the %g s before the video are not all fixation (code 3)",
                path, k + 1, BASELINE_SECONDS,
            )
        lo, hi = max(0, start - margin_in), min(n_times, stop + margin_in)
        seg = raw.get_data(picks=picks, start=lo, stop=hi) * scale
        pad = ((0, 0), (margin_in - (start - lo), margin_in - (hi - stop)))
        if pad[1] != (0, 0):
            seg = np.pad(seg, pad, mode="reflect")
        x = _to_deap_channels(seg, picks_eeg=32)
        if ratio != 1:
            x = mne.filter.resample(
                x, up=ratio.numerator, down=ratio.denominator, method="polyphase", verbose="error"
            )
        eeg = x[:32]
        if eeg_band is not None:
            eeg[:] = mne.filter.filter_data(eeg, sfreq, eeg_band[0], eeg_band[1], verbose="error")
        if car:
            eeg -= eeg.mean(axis=0, keepdims=True)
        out[k] = x[:, margin_out : margin_out + n_out]
    return SubjectRecord(
        subject=subject,
        data=out,
        labels=labels_arr.astype(np.float32),
        sfreq=float(sfreq),
        source=str(path),
        trial_ids=np.asarray(trial_ids, dtype=np.int64),
    )


def _to_deap_channels(seg: np.ndarray, *, picks_eeg: int) -> np.ndarray:
    """(32 EEG + EXG1..8 + GSR1, Resp, Plet, Temp) rows -> DEAP's 40 channels."""
    eeg = seg[:picks_eeg]
    rest = seg[picks_eeg:]
    exg = rest[:8]
    bip = exg[0::2] - exg[1::2]  # hEOG, vEOG, zEMG, tEMG
    single = rest[8:12]  # GSR, Resp, BVP, Temp
    x = np.concatenate([eeg, bip, single], axis=0)
    assert x.shape[0] == len(DEAP_CHANNELS)
    return x
