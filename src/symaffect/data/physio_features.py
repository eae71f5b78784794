"""Peripheral-physiology features per window from NeuroKit2: heart, skin, breathing.

Features of one window of DEAP's peripheral channels (any length; the project's windows
are 10 s at 128 Hz), for the XGBoost baseline (:mod:`symaffect.train.xgb`,
``peripheral_features="neurokit"`` or ``"both"``). A window that cannot be analysed
(flat, NaN, too few beats or breaths, units unknown) gives NaN in the affected
columns, never an exception; XGBoost treats NaN as missing.

Columns (:data:`FEATURES`, named ``peripheral:<channel>:<feature>``)
--------------------------------------------------------------------
``BVP`` (plethysmograph, any units): ``ppg_clean`` (Elgendi, 0.5-8 Hz) ->
``ppg_findpeaks`` (Elgendi) -> inter-beat intervals (IBI, ms); intervals outside
300-2000 ms (200-30 bpm) are dropped as missed or extra beats.

* ``hr_mean`` (bpm): ``60000 / mean(IBI)``; needs 2 intervals (3 beats).
* ``hrv_sdnn`` (ms): standard deviation of the IBIs (ddof = 1, as ``nk.hrv_time``);
  needs 3 intervals.
* ``hrv_rmssd`` (ms): root mean square of successive IBI differences (as
  ``nk.hrv_time``); needs 3 intervals.

  HRV on 10 s is **coarse**: a window holds 8-20 beats, whereas short-term HRV norms
  are defined on 5 minutes (Task Force 1996) and ultra-short (10-s) RMSSD is at best a
  noisy correlate of them; SDNN on 10 s sees almost only respiratory sinus arrhythmia.
  Use them as features, not as clinical HRV values.

``GSR`` (DEAP: skin *resistance* in Ohm): converted to skin conductance in uS first
(:func:`skin_conductance`: a median above 1000 is a resistance in Ohm, ``1e6 / R``;
0-100 is taken as uS already; anything else, e.g. a z-scored or baseline-subtracted
channel, has unknown units and gives NaN in every GSR column).
``eda_clean`` (3-Hz low-pass) -> ``eda_phasic`` (``"highpass"``, 0.05 Hz) ->
``eda_findpeaks`` (``"neurokit"``); a skin conductance response (SCR) counts when its
onset-to-peak amplitude of the phasic signal is at least :data:`SCR_MIN_AMPLITUDE` uS.

* ``scl`` (uS): tonic level, the median conductance of the window.
* ``scr_count``: responses in the window (0 is a value, not missing).
* ``scr_amplitude`` (uS): their mean amplitude; NaN with no response.

  A response that began before the window may be missed, and the high-pass phasic
  estimate is rough at the window's edges (as for the live view,
  ``symaffect.stream.physio``).

``Resp`` (breathing belt, any units): ``rsp_clean`` (Khodadad 2018, 0.05-3 Hz) ->
``rsp_findpeaks`` (Khodadad 2018).

* ``rsp_rate`` (breaths/min): ``60 / median`` breath length over successive inhalation
  peaks and troughs; when the detector finds no full breath (it drops incomplete ones
  at the edges) the dominant frequency of the cleaned belt signal in
  ``[1.5 / seconds, 1]`` Hz instead; NaN outside 4-60 per minute. A 10-s window holds
  1-7 breaths: rates below about 9 per minute cannot be measured.
* ``rsp_amplitude`` (belt units): median peak-to-trough depth of the cleaned signal;
  NaN with no full breath.

References
----------
Makowski et al. (2021). NeuroKit2: A Python toolbox for neurophysiological signal
processing. Behavior Research Methods 53, 1689-1696.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np

from symaffect.extras import require
from symaffect.spec import PERIPHERAL

log = logging.getLogger(__name__)

FEATURES: dict[str, tuple[str, ...]] = {
    "BVP": ("hr_mean", "hrv_sdnn", "hrv_rmssd"),
    "GSR": ("scl", "scr_count", "scr_amplitude"),
    "Resp": ("rsp_rate", "rsp_amplitude"),
}
"""NeuroKit2 features per peripheral channel, in column order."""

SCR_MIN_AMPLITUDE = 0.05
"""Smallest skin conductance response counted (uS, onset to peak of the phasic signal),
the same criterion as the live view's ``scr_rate``."""

IBI_RANGE_MS: tuple[float, float] = (300.0, 2000.0)
"""Inter-beat intervals kept (ms): 200 to 30 bpm."""

RSP_RATE_RANGE: tuple[float, float] = (4.0, 60.0)
"""Breathing rates kept (per minute)."""

_NK_ERRORS = (ValueError, IndexError, KeyError, ZeroDivisionError, TypeError, np.linalg.LinAlgError)
"""What NeuroKit2 raises on too-short or degenerate input (e.g. no peaks at all)."""


def feature_names(ch_names: Sequence[str] = PERIPHERAL.ch_names) -> list[str]:
    """Names of the columns of :func:`physio_features` for a peripheral block with channels ``ch_names``."""
    return [f"peripheral:{c}:{f}" for c in FEATURES if c in ch_names for f in FEATURES[c]]


def physio_features(
    x: np.ndarray, *, sfreq: float, ch_names: Sequence[str] = PERIPHERAL.ch_names
) -> np.ndarray:
    """NeuroKit2 features of a batch of peripheral windows (module docstring).

    Parameters
    ----------
    x : ndarray, shape (N, C, T)
        Peripheral windows in recorded units (GSR in Ohm or uS, not z-scored).
    sfreq : float
        Sampling rate in Hz.
    ch_names : sequence of str, length C
        Channel names of ``x``'s rows; channels of :data:`FEATURES` absent here give no
        columns.

    Returns
    -------
    ndarray, shape (N, n_features), float32
        Columns named by :func:`feature_names` ``(ch_names)``; NaN where a window cannot
        be analysed.
    """
    nk = require("neurokit2", "NeuroKit2 peripheral features")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != len(ch_names):
        raise ValueError(f"x: expected shape (N, {len(ch_names)}, T), got {x.shape}")
    fns = {"BVP": _heart, "GSR": _skin, "Resp": _breathing}
    chans = [(list(ch_names).index(c), fns[c], len(FEATURES[c])) for c in FEATURES if c in ch_names]
    out = np.full((x.shape[0], sum(len(FEATURES[c]) for c in FEATURES if c in ch_names)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NeuroKit2 warns on every short or odd window
        for n in range(x.shape[0]):
            cols = [f for i, fn, k in chans for f in _safe(fn, k, nk, x[n, i], sfreq)]
            out[n] = cols
    return out.astype(np.float32)


def _safe(fn, n_out: int, nk, x: np.ndarray, sfreq: float) -> tuple[float, ...]:
    """``fn``'s ``n_out`` features of one channel, or NaN when the window cannot be analysed."""
    good = np.isfinite(x)
    if good.mean() < 0.9 or x.size < 2 * sfreq:
        return (np.nan,) * n_out
    if not good.all():  # a few missing samples: interpolate over them
        idx = np.arange(x.size)
        x = np.interp(idx, idx[good], x[good])
    if float(x.max() - x.min()) <= 1e-9 * max(1.0, abs(float(np.median(x)))):
        return (np.nan,) * n_out  # flat: no sensor
    try:
        return fn(nk, x, sfreq)
    except _NK_ERRORS as e:
        log.debug("neurokit2 features: %s failed: %s", fn.__name__, e)
        return (np.nan,) * n_out


def _heart(nk, x: np.ndarray, sfreq: float) -> tuple[float, float, float]:
    clean = np.asarray(nk.ppg_clean(x, sampling_rate=sfreq), dtype=np.float64)
    peaks = np.asarray(nk.ppg_findpeaks(clean, sampling_rate=sfreq)["PPG_Peaks"], dtype=np.int64)
    ibi = np.diff(peaks) * 1000.0 / sfreq
    ibi = ibi[(ibi >= IBI_RANGE_MS[0]) & (ibi <= IBI_RANGE_MS[1])]
    hr = 60000.0 / float(ibi.mean()) if ibi.size >= 2 else np.nan
    if ibi.size < 3:
        return hr, np.nan, np.nan
    return hr, float(np.std(ibi, ddof=1)), float(np.sqrt(np.mean(np.diff(ibi) ** 2)))


def skin_conductance(x: np.ndarray) -> np.ndarray | None:
    """A GSR channel as skin conductance in uS: ``1e6 / x`` for a resistance in Ohm
    (median above 1000), ``x`` for a conductance in uS (median in (0, 100]), None when the
    units are unknown (e.g. z-scored or baseline-subtracted)."""
    m = float(np.median(x))
    if m > 1000.0:
        return None if np.any(x <= 0) else 1e6 / x
    if 0.0 < m <= 100.0:
        return x
    return None


def _skin(nk, x: np.ndarray, sfreq: float) -> tuple[float, float, float]:
    us = skin_conductance(x)
    if us is None:
        return np.nan, np.nan, np.nan
    scl = float(np.median(us))
    clean = np.asarray(nk.eda_clean(us, sampling_rate=sfreq), dtype=np.float64)
    phasic = nk.eda_phasic(clean, sampling_rate=sfreq, method="highpass")["EDA_Phasic"].to_numpy()
    try:
        info = nk.eda_findpeaks(phasic, sampling_rate=sfreq, method="neurokit", amplitude_min=0.1)
        peaks = np.asarray(info["SCR_Peaks"], dtype=np.float64)
        onsets = np.asarray(info["SCR_Onsets"], dtype=np.float64)
    except _NK_ERRORS:  # no local maximum at all: no response
        peaks = onsets = np.zeros(0)
    ok = np.isfinite(peaks) & np.isfinite(onsets)
    amp = phasic[peaks[ok].astype(np.int64)] - phasic[onsets[ok].astype(np.int64)]
    amp = amp[amp >= SCR_MIN_AMPLITUDE]
    return scl, float(amp.size), float(amp.mean()) if amp.size else np.nan


def _breathing(nk, x: np.ndarray, sfreq: float) -> tuple[float, float]:
    clean = np.asarray(nk.rsp_clean(x, sampling_rate=sfreq), dtype=np.float64)
    try:
        info = nk.rsp_findpeaks(clean, sampling_rate=sfreq)
        pk = np.asarray(info["RSP_Peaks"], dtype=np.int64)
        tr = np.asarray(info["RSP_Troughs"], dtype=np.int64)
    except _NK_ERRORS:  # the detector fails on windows with under two breaths
        pk = tr = np.zeros(0, dtype=np.int64)
    cycles = np.concatenate([np.diff(pk), np.diff(tr)]) / sfreq
    cycles = cycles[cycles > 0]
    depth = np.nan
    if pk.size and tr.size:
        k = min(pk.size, tr.size)  # the detector alternates troughs and peaks
        depth = float(np.median(np.abs(clean[pk[:k]] - clean[tr[:k]])))
    if cycles.size:
        rate = 60.0 / float(np.median(cycles))
    else:  # under one full breath detected: the dominant rhythm with >= 1.5 cycles in the window
        n_fft = max(8192, 1 << int(np.ceil(np.log2(clean.size))))
        p = np.abs(np.fft.rfft((clean - clean.mean()) * np.hanning(clean.size), n_fft)) ** 2
        f = np.fft.rfftfreq(n_fft, 1.0 / sfreq)
        band = (f >= 1.5 * sfreq / clean.size) & (f <= 1.0)
        rate = 60.0 * float(f[band][np.argmax(p[band])]) if band.any() and p[band].max() > 0 else np.nan
    if not RSP_RATE_RANGE[0] <= rate <= RSP_RATE_RANGE[1]:
        rate = np.nan
    return rate, depth


def raw_windows(ds, positions: np.ndarray, ch_names: Sequence[str] = PERIPHERAL.ch_names) -> np.ndarray:
    """Windows of a :class:`~symaffect.data.dataset.WindowDataset` in recorded units.

    The dataset returns normalised windows (z-scored per subject, or with the training
    subjects' statistics); NeuroKit2's detectors and the GSR unit conversion need the
    recorded signal. ``per_subject`` data are de-normalised with the subject's stored
    moments (the inverse of :func:`symaffect.data.normalize.normalize_inplace`);
    ``train_subjects`` and ``none`` data are stored raw. A ``"subtract_mean"`` baseline
    has removed the level, so GSR units cannot be told and its features come out NaN.

    Parameters
    ----------
    ds : WindowDataset
    positions : ndarray of int, shape (B,)
        Window positions in ``ds``.
    ch_names : sequence of str
        Channels to read (names of ``ds.prepared.ch_names``).

    Returns
    -------
    ndarray, shape (B, C, T), float64
    """
    p = ds.prepared
    rows = ds.index[np.asarray(positions, dtype=np.int64)]  # (B, 3): subject_idx, trial_idx, start
    idx = np.asarray([list(p.ch_names).index(c) for c in ch_names], dtype=np.int64)
    g = p.offsets[rows[:, 0]] + rows[:, 1]
    take = rows[:, 2, None] + np.arange(ds.T)[None, :]  # (B, T)
    x = p.array[g[:, None, None], idx[None, :, None], take[:, None, :]].astype(np.float64)  # (B, C, T)
    if p.norm.mode == "per_subject":
        subjects = np.asarray(p.subjects, dtype=np.int64)[rows[:, 0]]
        for s in np.unique(subjects):
            mom = p.moments[int(s)]
            sel = subjects == s
            std = np.maximum(mom.std[idx], p.norm.eps)
            x[sel] = x[sel] * std[None, :, None] + mom.mean[idx][None, :, None]
    return x


def dataset_physio_features(ds, sfreq: float, chunk: int = 256) -> np.ndarray:
    """:func:`physio_features` of every window of a ``WindowDataset``, in recorded units
    (:func:`raw_windows`), shape (n_windows, n_features)."""
    ch = PERIPHERAL.ch_names
    parts = [
        physio_features(raw_windows(ds, np.arange(b, min(b + chunk, len(ds))), ch), sfreq=sfreq, ch_names=ch)
        for b in range(0, len(ds), chunk)
    ]
    if not parts:
        return np.zeros((0, len(feature_names(ch))), dtype=np.float32)
    return np.concatenate(parts)
