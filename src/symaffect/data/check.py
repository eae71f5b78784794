"""``symaffect data check DIR``: validate a DEAP folder and summarise it as JSON."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich.table import Table

from symaffect.data.deap import find_ratings_file, iter_subjects, read_ratings
from symaffect.spec import BASELINE_SAMPLES, DEAP_CHANNELS, LABEL_COLUMNS

__all__ = ["check_folder", "count_windows"]


def count_windows(n_samples: int, window: int, stride: int, *, baseline: int = BASELINE_SAMPLES) -> int:
    """Windows per trial after dropping the baseline: ``floor((S - b - w) / s) + 1`` (>= 0)."""
    usable = n_samples - baseline
    if usable < window:
        return 0
    return (usable - window) // stride + 1


def _nine_class(r: np.ndarray) -> np.ndarray:
    """Rating -> class 0..8, rounding half up (4.5 -> 5 -> class 4), as the labels module."""
    return np.clip(np.floor(r + 0.5), 1, 9).astype(np.int64) - 1


def check_folder(
    folder: str | Path, *, window_seconds: float = 10.0, train_stride_seconds: float = 1.0
) -> dict:
    """Read and validate a folder of DEAP ``sNN.dat``/``sNN.mat`` files; summarise it.

    Subjects are read one at a time (all of :func:`~symaffect.data.deap.read_deap`'s
    validation applies, and only one subject is in memory).

    Parameters
    ----------
    folder : str or Path
    window_seconds : float
        Window length (the paper: 10 s).
    train_stride_seconds : float
        Stride of the overlapping training windows (the paper: 1 s). Evaluation
        windows do not overlap (stride = window).

    Returns
    -------
    dict
        JSON-able: ``folder``, ``n_subjects``, ``subjects`` (ids), ``n_trials`` (per
        subject id), ``n_trials_total``, ``n_channels``, ``channels``, ``n_samples``,
        ``sfreq``, ``duration_seconds``, ``baseline_seconds``, ``ratings`` (min/max
        per label column), ``class_histograms`` (9-class counts per label column),
        ``windows`` (per protocol: window/stride in samples, per trial and total),
        ``ratings_file`` (path or None).

    Raises
    ------
    DataError
        Any invalid file (the first one found), an empty folder, mixed recordings.
    """
    folder = Path(folder)
    ids: list[int] = []
    n_trials: dict[str, int] = {}
    n_ch = n_samp = 0
    sfreq = 0.0
    lo = np.full(len(LABEL_COLUMNS), np.inf)
    hi = np.full(len(LABEL_COLUMNS), -np.inf)
    hist = np.zeros((len(LABEL_COLUMNS), 9), dtype=np.int64)
    for rec in iter_subjects(folder):
        ids.append(rec.subject)
        n_trials[str(rec.subject)] = rec.n_trials
        n_ch, n_samp, sfreq = rec.data.shape[1], rec.n_samples, rec.sfreq
        lab = rec.labels.astype(np.float64)
        lo = np.minimum(lo, lab.min(axis=0))
        hi = np.maximum(hi, lab.max(axis=0))
        for j in range(len(LABEL_COLUMNS)):
            hist[j] += np.bincount(_nine_class(lab[:, j]), minlength=9)
        del rec
    rfile = find_ratings_file(folder)
    if rfile is not None:
        read_ratings(rfile)  # validated; its content is summarised by the labels above
    total = sum(n_trials.values())
    window = int(round(window_seconds * sfreq))
    stride = int(round(train_stride_seconds * sfreq))
    protocols = {
        "train (overlapping)": (window, stride),
        "evaluation (non-overlapping)": (window, window),
    }
    windows = {}
    for name, (w, s) in protocols.items():
        per = count_windows(n_samp, w, s)
        windows[name] = {"window": w, "stride": s, "per_trial": per, "total": per * total}
    return {
        "folder": str(folder),
        "n_subjects": len(ids),
        "subjects": ids,
        "n_trials": n_trials,
        "n_trials_total": total,
        "n_channels": n_ch,
        "channels": list(DEAP_CHANNELS[:n_ch]),
        "n_samples": n_samp,
        "sfreq": sfreq,
        "duration_seconds": n_samp / sfreq,
        "baseline_seconds": BASELINE_SAMPLES / sfreq,
        "ratings": {
            c: {"min": _f(lo[j]), "max": _f(hi[j])} for j, c in enumerate(LABEL_COLUMNS)
        },
        "class_histograms": {c: hist[j].tolist() for j, c in enumerate(LABEL_COLUMNS)},
        "windows": windows,
        "ratings_file": None if rfile is None else str(rfile),
    }


def _f(x: float) -> float:
    return float(x) if math.isfinite(x) else float("nan")


def render_summary(summary: dict) -> list:
    """Rich renderables for a :func:`check_folder` summary (used by the CLI)."""

    head = Table(title=f"DEAP folder {summary['folder']}", show_header=False)
    head.add_column("field")
    head.add_column("value")
    ids = summary["subjects"]
    head.add_row("subjects", f"{summary['n_subjects']} ({', '.join(f's{i:02d}' for i in ids)})")
    per = sorted(set(summary["n_trials"].values()))
    head.add_row("trials", f"{summary['n_trials_total']} (per subject: {', '.join(map(str, per))})")
    head.add_row("channels", str(summary["n_channels"]))
    head.add_row(
        "samples",
        f"{summary['n_samples']} at {summary['sfreq']:g} Hz = {summary['duration_seconds']:g} s "
        f"(baseline {summary['baseline_seconds']:g} s)",
    )
    head.add_row("ratings file", summary["ratings_file"] or "none")

    rat = Table(title="Ratings and 9-class histograms (class 1..9)")
    rat.add_column("label")
    rat.add_column("min")
    rat.add_column("max")
    rat.add_column("histogram")
    for c in LABEL_COLUMNS:
        r = summary["ratings"][c]
        rat.add_row(c, f"{r['min']:.2f}", f"{r['max']:.2f}", " ".join(map(str, summary["class_histograms"][c])))

    win = Table(title="Windows (after dropping the baseline)")
    for col in ("protocol", "window", "stride", "per trial", "total"):
        win.add_column(col)
    for name, w in summary["windows"].items():
        win.add_row(name, str(w["window"]), str(w["stride"]), str(w["per_trial"]), str(w["total"]))
    return [head, rat, win]
