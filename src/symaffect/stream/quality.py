"""Signal quality per modality and window: what is flagged, and which modalities are dropped.

Checks per channel on the *unfiltered* 128-Hz window (:class:`WindowBuffer` ``raw``),
computed on the samples actually received (``missing == 0``):

* ``nan``      -- non-finite samples in the input (held at the last finite value);
* ``dropped``  -- samples missing from a stream (timestamp gaps shorter than an outage);
* ``gap``      -- a stream outage (no data for longer than the streamer's gap timeout);
* ``flat``     -- the channel does not move: its standard deviation is below
  ``flat_abs + flat_rel * |mean|`` over the window, **or** it stays constant (every step
  within ``flat_abs + flat_run_rel * range``) for at least ``flat_run_s`` seconds in a
  row anywhere in the window (a sensor that came off, a frozen stream). The detail says
  for how long, e.g. ``"constant for 5.0 s"``.
* ``clipping`` -- an amplifier or ADC saturating: the signal *repeatedly* hits one
  ceiling (or floor) value, i.e. at least ``clip_min_runs`` separate plateaus of at least
  ``clip_min_run`` identical samples at the window's maximum (or minimum), or more than
  ``clip_fraction`` of the samples at the extreme in runs all shorter than
  ``flat_run_s``. A single long stretch at one value is ``flat``, not ``clipping``;
  when both apply (a saturating signal that also rests on the rail for a while) the
  channel is reported ``clipping``, the more specific finding.

The run-based checks (constant run, plateaus) are skipped for a coarsely quantised
channel, one with fewer than ``min_levels`` quantisation steps between its minimum and
maximum in the window (e.g. a 0.1-degree thermometer over 10 s): it sits on one value, and
on its maximum, for long stretches legitimately. The whole-window check still applies.

A modality with any channel flagged by one of these is **dropped** from that window's
prediction (the model takes whole-modality masks only), and the prediction's confidence
falls with the fraction of modalities used. A modality with only some of its channels in
the recording is kept and flagged ``partial`` (informational; see
:mod:`symaffect.stream.pipeline` for how the missing channels are filled).
If every modality is dropped the hop has no prediction and one ``no_prediction`` row.

Windows are taken at :data:`symaffect.spec.SFREQ` (128 Hz), which converts the
thresholds in seconds into samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from symaffect.spec import SFREQ
from symaffect.stream.preprocess import MISSING_CODES

DROP_FLAGS = ("nan", "dropped", "gap", "flat", "clipping")
"""Flags that drop the modality from the prediction."""


@dataclass(frozen=True)
class QualityFlag:
    """One finding for one modality in one window.

    Parameters
    ----------
    modality : str
        Modality name, or ``"all"`` for a hop without prediction.
    flag : str
        ``nan``, ``dropped``, ``gap``, ``flat``, ``clipping``, ``partial`` or
        ``no_prediction``.
    detail : str
        Which channels and how much, for a human.
    """

    modality: str
    flag: str
    detail: str = ""

    @property
    def drops(self) -> bool:
        return self.flag in DROP_FLAGS

    def __str__(self) -> str:
        return f"{self.modality}:{self.flag}"


@dataclass(frozen=True)
class QualityThresholds:
    """Thresholds of the checks (see the module docstring).

    Parameters
    ----------
    flat_abs, flat_rel : float
        Whole-window flatness: standard deviation at most ``flat_abs + flat_rel * |mean|``.
    flat_run_s : float
        Seconds a channel may stay constant before it is ``flat``.
    flat_run_rel : float
        Steps within ``flat_abs + flat_run_rel * range`` (range of the window) count as
        "constant".
    min_levels : int
        The run-based checks need at least this many quantisation steps between the
        window's minimum and maximum (coarsely quantised slow signals sit on one value, and
        on their maximum, legitimately).
    clip_fraction : float
        Fraction of samples at the extreme above which short runs there mean ``clipping``.
    clip_min_run : int
        Samples in a row at the extreme that make a plateau (a clean peak touches its
        maximum in one sample).
    clip_min_runs : int
        Separate plateaus at the same extreme that mean ``clipping``.
    """

    flat_abs: float = 1e-10
    flat_rel: float = 1e-7
    flat_run_s: float = 1.0
    flat_run_rel: float = 1e-6
    min_levels: int = 8
    clip_fraction: float = 0.1
    clip_min_run: int = 2
    clip_min_runs: int = 3


def _runs(b: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a boolean vector."""
    if not b.any():
        return np.zeros(0, dtype=np.int64)
    d = np.diff(np.concatenate([[0], b.astype(np.int8), [0]]))
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


def _longest_constant(x: np.ndarray, ok: np.ndarray, tol: float) -> int:
    """Longest run of received samples that stay within ``tol`` of their neighbour."""
    if x.size < 2:
        return int(x.size)
    same = (np.abs(np.diff(x)) <= tol) & ok[1:] & ok[:-1]
    runs = _runs(same)
    return int(runs.max()) + 1 if runs.size else 1


def _levels(xs: np.ndarray, tol: float) -> float:
    """Range of ``xs`` in units of the smallest gap above ``tol`` between its distinct
    values (its quantisation step)."""
    gaps = np.diff(np.unique(xs))
    gaps = gaps[gaps > tol]
    if not gaps.size:
        return 0.0
    return float((xs.max() - xs.min()) / gaps.min())


def _clipping(x: np.ndarray, ok: np.ndarray, lo: float, hi: float, th: QualityThresholds,
              flat_run: int) -> str | None:
    """Detail of a clipping finding, or None."""
    tol = 1e-9 * (hi - lo)
    for name, at in (("max", x >= hi - tol), ("min", x <= lo + tol)):
        at &= ok
        runs = _runs(at)
        plateaus = int(np.count_nonzero(runs >= th.clip_min_run))
        frac = float(at.mean())
        if plateaus >= th.clip_min_runs:
            return f"{plateaus} plateaus at {name}, {100 * frac:.0f}% of samples"
        if frac > th.clip_fraction and runs.size and runs.max() < flat_run:
            return f"{100 * frac:.0f}% at {name} in {runs.size} short runs"
    return None


def _longest_true(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a boolean (C, N) array: the length of the run of True ending at each
    position (0 where False), and the longest run."""
    n = b.shape[1]
    idx = np.arange(n)
    last_false = np.maximum.accumulate(np.where(b, -1, idx), axis=1)
    ending = np.where(b, idx - last_false, 0)
    return ending, ending.max(axis=1, initial=0)


def _suspects(raw: np.ndarray, missing: np.ndarray, th: QualityThresholds, flat_run: int) -> np.ndarray:
    """Channels that may carry a flag, for all channels at once (C,): a superset of the
    channels :func:`channel_flags` flags, so that the exact per-channel checks run only
    where something may be wrong (the common clean window costs a few array passes)."""
    ok = missing == 0
    sus = ~ok.all(axis=1)  # missing codes, or a window with nothing received: the exact path
    x = raw
    mu = x.mean(axis=1)
    sd = x.std(axis=1)
    lo, hi = x.min(axis=1), x.max(axis=1)
    sus |= sd <= th.flat_abs + th.flat_rel * np.abs(mu)
    tol = th.flat_abs + th.flat_run_rel * (hi - lo)
    _, longest = _longest_true(np.abs(np.diff(x, axis=1)) <= tol[:, None])
    sus |= longest + 1 >= flat_run
    ctol = (1e-9 * (hi - lo))[:, None]
    for at in (x >= hi[:, None] - ctol, x <= lo[:, None] + ctol):
        ending, longest = _longest_true(at)
        plateaus = np.count_nonzero(ending == th.clip_min_run, axis=1)
        sus |= plateaus >= th.clip_min_runs
        sus |= (at.mean(axis=1) > th.clip_fraction) & (longest < flat_run)
    return sus


def channel_flags(
    raw: np.ndarray, missing: np.ndarray, *, thresholds: QualityThresholds = QualityThresholds()
) -> list[list[tuple[str, str]]]:
    """Flags of each channel of a window.

    Parameters
    ----------
    raw : ndarray, shape (C, T)
        Unfiltered signal at 128 Hz (missing samples already held).
    missing : ndarray of uint8, shape (C, T)
        :data:`symaffect.stream.preprocess.MISSING_CODES`.
    thresholds : QualityThresholds

    Returns
    -------
    list (length C) of list of (flag, detail)
        At most one of ``flat`` and ``clipping`` per channel.
    """
    out: list[list[tuple[str, str]]] = []
    th = thresholds
    n = raw.shape[1]
    flat_run = max(2, round(th.flat_run_s * SFREQ))
    suspects = _suspects(raw, missing, th, flat_run) if n > 1 else np.ones(raw.shape[0], bool)
    for c in range(raw.shape[0]):
        flags: list[tuple[str, str]] = []
        if not suspects[c]:
            out.append(flags)
            continue
        for code in (1, 2, 3):
            k = int(np.count_nonzero(missing[c] == code))
            if k:
                flags.append((MISSING_CODES[code], f"{k}/{n} samples"))
        x = raw[c]
        ok = missing[c] == 0
        if not ok.any():  # nothing received: the missing codes say it all (held values are no signal)
            out.append(flags)
            continue
        xs = x[ok]
        sd = float(xs.std()) if xs.size > 1 else 0.0
        mu = float(xs.mean()) if xs.size else 0.0
        lo, hi = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 0.0)
        tol = th.flat_abs + th.flat_run_rel * (hi - lo)
        run = _longest_constant(x, ok, tol)
        if sd <= th.flat_abs + th.flat_rel * abs(mu):
            what = f"constant for {run / SFREQ:.1f} s" if run >= flat_run else f"std {sd:.3g}"
            flags.append(("flat", what))
            out.append(flags)
            continue
        clip = _clipping(x.copy(), ok, lo, hi, th, flat_run)
        found = ("clipping", clip) if clip is not None else (
            ("flat", f"constant for {run / SFREQ:.1f} s") if run >= flat_run else None)
        if found is not None and _levels(xs, tol) >= th.min_levels:  # (only computed when needed)
            flags.append(found)
        out.append(flags)
    return out


def modality_flags(
    raw: np.ndarray,
    missing: np.ndarray,
    ch_names: Sequence[str],
    groups: dict[str, list[int]],
    *,
    thresholds: QualityThresholds = QualityThresholds(),
) -> list[QualityFlag]:
    """Aggregate channel flags per modality.

    Parameters
    ----------
    raw, missing : ndarray, shape (C, T)
    ch_names : sequence of str
        Names of the C rows.
    groups : dict of str to list of int
        Row indices of each modality's channels present in the window.

    Returns
    -------
    list of QualityFlag
        One per (modality, flag), channels listed in ``detail``.
    """
    per_ch = channel_flags(raw, missing, thresholds=thresholds)
    out: list[QualityFlag] = []
    for mod, rows in groups.items():
        found: dict[str, list[str]] = {}
        for r in rows:
            for flag, detail in per_ch[r]:
                found.setdefault(flag, []).append(f"{ch_names[r]} ({detail})")
        for flag, items in found.items():
            more = f" +{len(items) - 4} more" if len(items) > 4 else ""
            out.append(QualityFlag(mod, flag, ", ".join(items[:4]) + more))
    return out
