"""The report's figures (matplotlib), each with its caption.

Each figure is drawn by a function ``draw_*(fig, data)`` into any figure or subfigure, so
the HTML page draws it at screen size (:meth:`ReportFigure.figure`) and the PDF draws it
onto an A4 page (:mod:`symaffect.serve.report.pdf`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure, FigureBase
from matplotlib.patches import Rectangle

from symaffect.serve.palette import QUADRANT_COLORS, RATING_COLORS
from symaffect.serve.report.data import ReportData
from symaffect.spec import (
    QUADRANT_AXES,
    QUADRANT_CODES,
    QUADRANT_DESCRIPTIONS,
    QUADRANT_RULE,
    RATING_COLUMNS,
)

SMOOTH_S = 15.0
"""Width of the centred moving mean drawn over the trajectories (s)."""
SCREEN_DPI = 110
SEGMENT_COLORS = ("#d9e6f5", "#f6e3cf")
"""Alternating fills of the music segments."""


@dataclass(frozen=True)
class ReportFigure:
    """One figure of a report: what it shows and how to draw it.

    Attributes
    ----------
    title : str
        A few words (the alt text of the HTML image, the heading in the PDF).
    caption : str
        What is drawn and how to read it.
    size : tuple of float
        (width, height) in inches at screen size; the PDF keeps the aspect ratio.
    draw : callable
        ``draw(fig)`` draws into a :class:`matplotlib.figure.Figure` or SubFigure.
    """

    title: str
    caption: str
    size: tuple[float, float]
    draw: Callable[[FigureBase], None]

    def figure(self) -> Figure:
        """The figure at screen size (constrained layout)."""
        fig = Figure(figsize=self.size, dpi=SCREEN_DPI, layout="constrained")
        self.draw(fig)
        return fig


def report_figures(data: ReportData) -> dict[str, ReportFigure]:
    """The report's figures by name, in reading order; none for a session without predictions.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    dict of str to ReportFigure
        ``"trajectories"`` and ``"quadrants"``.
    """
    if len(data.series) == 0:
        return {}
    return {
        "trajectories": ReportFigure(
            "Valence, arousal and liking over time", trajectory_caption(),
            (10.0, 6.6), lambda fig: draw_trajectories(fig, data),
        ),
        "quadrants": ReportFigure(
            "Quadrant time shares", quadrant_caption(), (10.0, 4.0), lambda fig: draw_quadrants(fig, data),
        ),
    }


# --- trajectories ------------------------------------------------------------------------


def trajectory_caption() -> str:
    """Caption of :func:`draw_trajectories`."""
    return (
        "The model's expected ratings on 1-9 (5 = middle of the scale) over the session: thin "
        f"lines every hop, thick lines a {SMOOTH_S:g}-s moving mean. Shaded bands are music "
        "segments (labelled at the top); the grey band is the baseline and the dashed line its "
        "mean. Lines break where no predictions arrived."
    )


def draw_trajectories(fig: FigureBase, data: ReportData) -> None:
    """Valence, arousal and liking over time, music segments shaded and labelled.

    Parameters
    ----------
    fig : matplotlib Figure or SubFigure
    data : ReportData
    """
    s = data.series
    axes = fig.subplots(len(RATING_COLUMNS), 1, sharex=True)
    tm = s.t / 60.0
    x_end = max(data.duration_s, float(s.t[-1]) if len(s) else 1.0) / 60.0
    for ax, k in zip(axes, RATING_COLUMNS):
        if data.baseline is not None:
            ax.axvspan(data.baseline.start / 60, data.baseline.end / 60, color="#eeeeee", lw=0, zorder=0)
            ax.axhline(data.baseline.means[k], color="#777777", lw=0.9, ls="--", zorder=1)
        for j, seg in enumerate(data.segments):
            end = seg.end if seg.end is not None else x_end * 60
            ax.axvspan(seg.start / 60, end / 60, color=SEGMENT_COLORS[j % 2], lw=0, zorder=0)
        y = s.ratings[k]
        ax.plot(*_break_gaps(tm, y, data.quality.gaps), color=RATING_COLORS[k], lw=1.0, alpha=0.45, zorder=2)
        if y.size >= 5:
            smooth = _moving_mean(y, _smooth_window(s.t))
            ax.plot(*_break_gaps(tm, smooth, data.quality.gaps), color=RATING_COLORS[k], lw=2.2, zorder=3)
        ax.set_ylim(1, 9)
        ax.set_yticks([1, 3, 5, 7, 9])
        ax.axhline(5, color="#bbbbbb", lw=0.6, zorder=1)
        ax.set_ylabel(k.capitalize(), fontsize=11)
        ax.grid(axis="x", color="#e5e5e5", lw=0.6)
        ax.set_xlim(0, max(x_end, 1e-3))
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    top = axes[0]
    x_max = max(x_end, 1e-3) * 60  # labels stay above the drawn time range (s)
    for seg in data.segments:
        end = seg.end if seg.end is not None else x_end * 60
        if seg.start >= x_max:
            continue  # marked after the last prediction: nothing of it is drawn
        end = min(end, x_max)
        label = seg.track if len(seg.track) <= 28 else seg.track[:26] + "…"
        top.text((seg.start + end) / 120, 9.25, label, ha="center", va="bottom", fontsize=8.5,
                 color="#333333", clip_on=False, rotation=0 if (end - seg.start) / 60 > x_end / 8 else 20)
    if data.baseline is not None:
        # a session shorter than the fallback baseline: centre the label on what is drawn
        b_end = min(data.baseline.end, x_max)
        top.text((data.baseline.start + b_end) / 120, 9.25, "baseline", ha="center",
                 va="bottom", fontsize=8.5, color="#777777", style="italic", clip_on=False)
    axes[-1].set_xlabel("Time since session start (min)")


def _break_gaps(tm: np.ndarray, y: np.ndarray, gaps: Sequence[tuple[float, float]]):
    """Insert a NaN inside every gap so that lines are not drawn across it."""
    if not gaps:
        return tm, y
    starts = np.asarray([a for a, _ in gaps]) / 60.0
    idx = np.searchsorted(tm, starts, side="right")
    return np.insert(tm, idx, starts), np.insert(y.astype(float), idx, np.nan)


def _smooth_window(t: np.ndarray) -> int:
    """Odd number of hops covering about :data:`SMOOTH_S` seconds (at least 3)."""
    hop = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    w = round(SMOOTH_S / hop) if hop > 0 else 3
    return max(3, w | 1)


def _moving_mean(y: np.ndarray, w: int) -> np.ndarray:
    """Centred mean over ``w`` points (NaN ignored), one value per point of ``y``.

    Near the ends (and when ``w`` exceeds ``len(y)``) the window is cut to the points
    that exist, so the output always has the length of ``y``.
    """
    n = y.size
    ok = np.isfinite(y)
    c_num = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    c_den = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(n)
    lo = np.clip(i - w // 2, 0, n)
    hi = np.clip(i + w // 2 + 1, 0, n)
    num, den = c_num[hi] - c_num[lo], c_den[hi] - c_den[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


# --- quadrants ---------------------------------------------------------------------------


def quadrant_caption() -> str:
    """Caption of :func:`draw_quadrants` (the rule and the codes from :mod:`symaffect.spec`)."""
    r = QUADRANT_RULE
    codes = " ".join(f"{q}: {QUADRANT_DESCRIPTIONS[q]}." for q in QUADRANT_CODES)
    return (
        "Left: share of the monitored time the model placed the listener in each quadrant. "
        "Right: every estimate on the valence-arousal plane, coloured by minutes since the start. "
        f"A rating above {r.threshold:g} is high; the dashed box is Neutral (valence and arousal "
        f"both within {r.neutral_band:g} of {r.threshold:g}), which takes precedence over the "
        f"quadrants. {codes}"
    )


def draw_quadrants(fig: FigureBase, data: ReportData) -> None:
    """Quadrant time shares (horizontal bars) beside the valence-arousal plane.

    Parameters
    ----------
    fig : matplotlib Figure or SubFigure
    data : ReportData
    """
    ax_bar, ax_va = fig.subplots(1, 2, width_ratios=[1.2, 1])
    vals = [100 * data.quadrant_shares[q] for q in QUADRANT_CODES]
    ylabels = [f"{q}: {QUADRANT_DESCRIPTIONS[q].split(' (')[0]}" for q in QUADRANT_CODES]
    bars = ax_bar.barh(range(len(vals)), vals, color=[QUADRANT_COLORS[q] for q in QUADRANT_CODES])
    ax_bar.set_yticks(range(len(vals)), ylabels, fontsize=8.5)
    ax_bar.invert_yaxis()
    ax_bar.set_xlim(0, 105)
    ax_bar.set_xlabel("Share of monitored time (%)")
    for b, v in zip(bars, vals):
        ax_bar.text(b.get_width() + 1, b.get_y() + b.get_height() / 2, f"{v:.0f} %", va="center", fontsize=9)
    for side in ("top", "right"):
        ax_bar.spines[side].set_visible(False)
    ax_bar.set_title("Time in each quadrant", fontsize=10)

    s = data.series
    thr, band = QUADRANT_RULE.threshold, QUADRANT_RULE.neutral_band
    ax_va.axhline(thr, color="#999999", lw=0.8)
    ax_va.axvline(thr, color="#999999", lw=0.8)
    ax_va.add_patch(Rectangle(
        (thr - band, thr - band), 2 * band, 2 * band, facecolor=to_rgba(QUADRANT_COLORS["Neutral"], 0.15),
        edgecolor=QUADRANT_COLORS["Neutral"], ls="--", lw=1.0, zorder=0,
    ))
    ax_va.text(thr, thr + band + 0.1, "Neutral", ha="center", va="bottom", fontsize=8,
               color="#666666", weight="bold")
    sc = ax_va.scatter(s.ratings["valence"], s.ratings["arousal"], c=s.t / 60, cmap="viridis", s=8, alpha=0.6)
    fig.colorbar(sc, ax=ax_va, shrink=0.85).set_label("min", fontsize=8)
    for q, axes in QUADRANT_AXES.items():  # each code in its corner: "HV-HA" is top right
        x = 8.4 if axes.startswith("HV") else 1.6
        y = 8.5 if axes.endswith("HA") else 1.5
        ax_va.text(x, y, q, ha="center", va="center", fontsize=9, color=QUADRANT_COLORS[q], weight="bold")
    ax_va.set_xlim(1, 9)
    ax_va.set_ylim(1, 9)
    ax_va.set_aspect("equal")
    ax_va.set_xlabel("Valence")
    ax_va.set_ylabel("Arousal")
    ax_va.set_title("Every estimate", fontsize=10)
