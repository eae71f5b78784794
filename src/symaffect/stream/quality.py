"""Signal quality per modality and window: what is flagged, and which modalities are dropped.

Checks per channel on the *unfiltered* 128-Hz window (:class:`WindowBuffer` ``raw``):

* ``nan``      -- non-finite samples in the input (held at the last finite value);
* ``dropped``  -- samples missing from a stream (timestamp gaps shorter than an outage);
* ``gap``      -- a stream outage (no data for longer than the streamer's gap timeout);
* ``flat``     -- standard deviation below ``flat_abs + flat_rel * |mean|`` (disconnected
  or constant channel);
* ``clipping`` -- more than ``clip_fraction`` of the samples sit at the window's minimum
  or maximum (within ``1e-9`` of the range), with at least ``clip_min_run`` in a row.

A modality with any channel flagged by one of these is **dropped** from that window's
prediction (the model takes whole-modality masks only), and the prediction's confidence
falls with the fraction of modalities used. A modality with only some of its channels in
the recording is kept and flagged ``partial`` (informational; see
:mod:`symaffect.stream.pipeline` for how the missing channels are filled).
If every modality is dropped the hop has no prediction and one ``no_prediction`` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
    """Thresholds of the checks (see the module docstring)."""

    flat_abs: float = 1e-10
    flat_rel: float = 1e-7
    clip_fraction: float = 0.1
    clip_min_run: int = 16


def _longest_run(b: np.ndarray) -> int:
    if not b.any():
        return 0
    d = np.diff(np.concatenate([[0], b.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return int((ends - starts).max())


def channel_flags(
    raw: np.ndarray, missing: np.ndarray, *, thresholds: QualityThresholds = QualityThresholds()
) -> list[list[tuple[str, str]]]:
    """Flags of each channel of a window.

    Parameters
    ----------
    raw : ndarray, shape (C, T)
        Unfiltered signal (missing samples already held).
    missing : ndarray of uint8, shape (C, T)
        :data:`symaffect.stream.preprocess.MISSING_CODES`.

    Returns
    -------
    list (length C) of list of (flag, detail)
    """
    out: list[list[tuple[str, str]]] = []
    th = thresholds
    n = raw.shape[1]
    for c in range(raw.shape[0]):
        flags: list[tuple[str, str]] = []
        for code in (1, 2, 3):
            k = int(np.count_nonzero(missing[c] == code))
            if k:
                flags.append((MISSING_CODES[code], f"{k}/{n} samples"))
        x = raw[c]
        ok = missing[c] == 0
        xs = x[ok] if ok.any() else x
        sd = float(xs.std()) if xs.size > 1 else 0.0
        mu = float(xs.mean()) if xs.size else 0.0
        if sd <= th.flat_abs + th.flat_rel * abs(mu):
            flags.append(("flat", f"std {sd:.3g}"))
        elif xs.size:
            lo, hi = float(xs.min()), float(xs.max())
            tol = 1e-9 * (hi - lo)
            for name, at in (("max", x >= hi - tol), ("min", x <= lo + tol)):
                at &= ok
                frac = at.mean()
                if frac > th.clip_fraction and _longest_run(at) >= th.clip_min_run:
                    flags.append(("clipping", f"{100 * frac:.0f}% at {name}"))
                    break
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
