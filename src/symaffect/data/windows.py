"""Windows over per-trial arrays: a config, baseline handling and an index of window starts.

A window is never materialised for the whole data set. It is a row
``(subject_idx, trial_idx, start)`` of an int64 *window index*, where ``start`` counts
samples of the **stored** per-trial array (the signal after baseline handling, see
:func:`apply_baseline`). Reading a window is a slice ``data[trial, :, start:start + T]``
(a view), and :func:`sliding_windows` gives all windows of an array as one strided view.

Baseline handling (``WindowConfig.baseline``):

``"drop"`` (default)
    The first ``baseline_seconds`` of every trial (DEAP's 3-s pre-trial fixation) are
    removed; windows cover the 60-s video only.
``"keep"``
    The stored array is the whole trial, baseline included.
``"subtract_mean"``
    The baseline is removed *and* each trial's per-channel baseline mean is subtracted
    from the rest of that trial (a per-trial offset correction).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from symaffect.errors import ConfigError

BASELINE_MODES = ("drop", "keep", "subtract_mean")
INDEX_COLUMNS = ("subject_idx", "trial_idx", "start")
"""Columns of a window index (all int64)."""


@dataclass(frozen=True)
class WindowConfig:
    """How trials are cut into windows.

    Parameters
    ----------
    window_seconds : float
        Window length (the paper: 10 s = 1280 samples at 128 Hz).
    stride_seconds : float
        Distance between consecutive window starts (the paper trains with 1 s; evaluation
        uses non-overlapping windows, see :func:`non_overlapping`).
    baseline : {"drop", "keep", "subtract_mean"}
        Baseline handling (module docstring).
    baseline_seconds : float
        Length of the pre-trial baseline at the start of every trial (DEAP: 3 s).
    """

    window_seconds: float = 10.0
    stride_seconds: float = 1.0
    baseline: str = "drop"
    baseline_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.baseline not in BASELINE_MODES:
            raise ConfigError(f"window.baseline: {self.baseline!r} is not one of {BASELINE_MODES}")
        if not self.window_seconds > 0:
            raise ConfigError(f"window.window_seconds: must be > 0, got {self.window_seconds}")
        if not self.stride_seconds > 0:
            raise ConfigError(f"window.stride_seconds: must be > 0, got {self.stride_seconds}")
        if not self.baseline_seconds >= 0:
            raise ConfigError(f"window.baseline_seconds: must be >= 0, got {self.baseline_seconds}")

    def window_samples(self, sfreq: float) -> int:
        """Window length T in samples."""
        return _to_samples(self.window_seconds, sfreq, "window_seconds", minimum=1)

    def stride_samples(self, sfreq: float) -> int:
        """Stride in samples."""
        return _to_samples(self.stride_seconds, sfreq, "stride_seconds", minimum=1)

    def baseline_samples(self, sfreq: float) -> int:
        """Length of the pre-trial baseline in samples."""
        return _to_samples(self.baseline_seconds, sfreq, "baseline_seconds", minimum=0)

    def stored_samples(self, n_samples: int, sfreq: float) -> int:
        """Samples per trial of the stored array for a raw trial of ``n_samples``."""
        if self.baseline == "keep":
            return int(n_samples)
        return int(n_samples) - self.baseline_samples(sfreq)

    def storage_key(self) -> dict:
        """The fields that change the stored array (window length and stride do not)."""
        return {"baseline": self.baseline, "baseline_seconds": float(self.baseline_seconds)}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def non_overlapping(cfg: WindowConfig) -> WindowConfig:
    """The same config with ``stride = window`` (evaluation windows)."""
    return dataclasses.replace(cfg, stride_seconds=cfg.window_seconds)


def _to_samples(seconds: float, sfreq: float, field: str, *, minimum: int) -> int:
    n = seconds * sfreq
    r = int(round(n))
    if abs(n - r) > 1e-6:
        raise ConfigError(f"window.{field}: {seconds} s is not a whole number of samples at {sfreq} Hz")
    if r < minimum:
        raise ConfigError(f"window.{field}: {seconds} s is fewer than {minimum} sample(s) at {sfreq} Hz")
    return r


def n_windows(n_samples: int, window: int, stride: int) -> int:
    """Number of windows of ``window`` samples at ``stride`` in ``n_samples``: ``(S - T) // stride + 1``."""
    if n_samples < window:
        return 0
    return (n_samples - window) // stride + 1


def apply_baseline(
    data: np.ndarray, sfreq: float, cfg: WindowConfig, *, out: np.ndarray | None = None
) -> np.ndarray:
    """The stored (post-baseline) signal of raw trials.

    Parameters
    ----------
    data : ndarray, shape (..., n_channels, n_samples)
        Raw trials, baseline at the start of the last axis.
    sfreq : float
    cfg : WindowConfig
    out : ndarray, shape (..., n_channels, n_stored), optional
        Destination (any float dtype). Without it, ``"drop"`` and ``"keep"`` return a
        view of ``data`` and ``"subtract_mean"`` a new array.

    Returns
    -------
    ndarray, shape (..., n_channels, n_stored)
    """
    b = cfg.baseline_samples(sfreq)
    if data.shape[-1] <= b and cfg.baseline != "keep":
        raise ConfigError(
            f"window.baseline_seconds: baseline of {b} samples leaves nothing of {data.shape[-1]}-sample trials"
        )
    if cfg.baseline == "keep":
        src = data
    else:
        src = data[..., b:]
    if cfg.baseline == "subtract_mean" and b > 0:
        base = data[..., :b].mean(axis=-1, keepdims=True, dtype=np.float64)
        if out is None:
            return np.subtract(src, base, dtype=np.float64).astype(data.dtype, copy=False)
        np.subtract(src, base, out=out, casting="same_kind")
        return out
    if out is None:
        return src
    out[...] = src
    return out


def make_window_index(
    n_trials: Sequence[int] | Sequence[object],
    n_samples: int | Sequence[int],
    sfreq: float,
    cfg: WindowConfig,
) -> np.ndarray:
    """All windows of a data set, as rows ``(subject_idx, trial_idx, start)``.

    Parameters
    ----------
    n_trials : sequence of int, or sequence of SubjectRecord
        Trials per subject (``subject_idx`` is the position in this sequence). Given
        records, ``n_trials`` and the raw ``n_samples`` are read from them and the
        stored length is derived with ``cfg`` (baseline handling).
    n_samples : int or sequence of int
        Samples per trial of the **stored** array (after baseline handling), one value
        for all subjects or one per subject. Ignored when records are given.
    sfreq : float
        Sampling rate in Hz.
    cfg : WindowConfig

    Returns
    -------
    index : ndarray of int64, shape (n_windows, 3)
        Sorted by subject, trial, start. Every window lies inside its trial:
        ``0 <= start`` and ``start + T <= n_samples``.
    """
    items = list(n_trials)
    if items and not isinstance(items[0], int | np.integer):
        recs = items
        items = [int(r.n_trials) for r in recs]
        samples = [cfg.stored_samples(r.n_samples, sfreq) for r in recs]
    elif isinstance(n_samples, int | np.integer):
        samples = [int(n_samples)] * len(items)
    else:
        samples = [int(s) for s in n_samples]
        if len(samples) != len(items):
            raise ConfigError("n_samples: one value per subject expected")
    T = cfg.window_samples(sfreq)
    step = cfg.stride_samples(sfreq)
    blocks = []
    for s_idx, (nt, ns) in enumerate(zip(items, samples, strict=True)):
        nw = n_windows(ns, T, step)
        if nw == 0:
            raise ConfigError(
                f"window.window_seconds: a {T}-sample window does not fit in {ns}-sample trials"
            )
        starts = np.arange(nw, dtype=np.int64) * step
        block = np.empty((nt * nw, 3), dtype=np.int64)
        block[:, 0] = s_idx
        block[:, 1] = np.repeat(np.arange(nt, dtype=np.int64), nw)
        block[:, 2] = np.tile(starts, nt)
        blocks.append(block)
    if not blocks:
        return np.empty((0, 3), dtype=np.int64)
    return np.concatenate(blocks)


def sliding_windows(trial: np.ndarray, window: int, stride: int) -> np.ndarray:
    """All windows of one array as a read-only strided view (no copy).

    Parameters
    ----------
    trial : ndarray, shape (..., n_channels, n_samples)
    window, stride : int
        In samples.

    Returns
    -------
    ndarray, shape (..., n_windows, n_channels, window)
        ``out[..., w, :, :] is trial[..., :, w * stride : w * stride + window]``.
    """
    v = np.lib.stride_tricks.sliding_window_view(trial, window, axis=-1)  # (..., C, S-T+1, T)
    v = v[..., ::stride, :]  # (..., C, W, T)
    return np.swapaxes(v, -3, -2)  # (..., W, C, T)


def window_view(data: np.ndarray, row: Sequence[int] | np.ndarray, window: int) -> np.ndarray:
    """One window of one subject's stored array: ``data[trial, :, start:start + window]`` (a view).

    Parameters
    ----------
    data : ndarray, shape (n_trials, n_channels, n_samples)
    row : (subject_idx, trial_idx, start)
    window : int

    Returns
    -------
    ndarray, shape (n_channels, window)
    """
    _, t, s = (int(v) for v in row)
    if s < 0 or s + window > data.shape[-1]:
        raise IndexError(f"window [{s}, {s + window}) outside a {data.shape[-1]}-sample trial")
    return data[t, :, s : s + window]
