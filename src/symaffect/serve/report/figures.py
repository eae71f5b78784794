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
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MultipleLocator

from symaffect.serve.palette import QUADRANT_COLORS, RATING_COLORS
from symaffect.serve.report.data import (
    LOW_CONFIDENCE,
    ReportData,
    dropped_mask,
    flag_spans,
    left_out_phrase,
    low_confidence_mask,
    median_hop,
)
from symaffect.serve.report.formatting import fmt_clock, fmt_pct, modality_label
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
            "Valence, arousal and liking over time", trajectory_caption(data),
            (10.0, 6.6), lambda fig: draw_trajectories(fig, data),
        ),
        "quadrants": ReportFigure(
            "Quadrant time shares", quadrant_caption(), (10.0, 4.0), lambda fig: draw_quadrants(fig, data),
        ),
    }


# --- trajectories ------------------------------------------------------------------------

DROPPED_STYLE = {"facecolor": "none", "edgecolor": "none", "hatch": "////", "hatchcolor": "#c0392b",
                 "alpha": 0.45}
"""Full-height hatching where a modality was left out of the predictions."""
LOW_CONF_STYLE = {"facecolor": "#6a3d9a", "edgecolor": "none", "alpha": 0.55}
"""A bar along the bottom of each panel where confidence was low."""
LOW_CONF_BAR = 0.06
"""Height of the low-confidence bar, as a fraction of the panel."""
SPREAD_ALPHA = 0.16
CLOCK_STEPS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
MAX_TICKS = 8


def trajectory_spans(data: ReportData) -> dict[str, list[tuple[float, float]]]:
    """The stretches of stream time shaded on the trajectories.

    Returns
    -------
    dict
        ``"dropped"``: predictions that lack a modality used elsewhere in the session
        (:func:`~symaffect.serve.report.data.dropped_mask`); ``"low_confidence"``:
        confidence below :data:`~symaffect.serve.report.data.LOW_CONFIDENCE`; each a list of
        (start, end) in seconds from :func:`~symaffect.serve.report.data.flag_spans`.
    """
    s = data.series
    hop = median_hop(s.t)
    return {
        "dropped": flag_spans(s.t, dropped_mask(s), hop=hop),
        "low_confidence": flag_spans(s.t, low_confidence_mask(s, data.quality.low_confidence_threshold), hop=hop),
    }


def trajectory_caption(data: ReportData | None = None) -> str:
    """Caption of :func:`draw_trajectories` (with ``data``: what this session's shading covers)."""
    thr = LOW_CONFIDENCE if data is None else data.quality.low_confidence_threshold
    text = (
        "The model's expected ratings on 1-9 (5 = middle of the scale) over stream time (m:ss): thin "
        f"lines every hop, thick lines a {SMOOTH_S:g}-s moving mean; the pale band around each thin line "
        "is ± one standard deviation of the model's predicted rating distribution (wide = unsure). "
        "Coloured areas are music segments (labelled at the top); the grey area is the baseline and the "
        "dashed line its mean. Red hatching marks stretches where a modality was left out of the "
        "predictions (a change there may come from the missing signal, not from the listener); a purple "
        f"bar along the bottom marks predictions with confidence below {thr:g}. Lines break where no "
        "predictions arrived."
    )
    if data is not None and len(data.series):
        spans = trajectory_spans(data)
        n = len(data.series)
        left_out = left_out_phrase(data.quality) or "every modality was used in every prediction"
        n_low = len(spans["low_confidence"])
        text += (f" In this session {left_out}; confidence was below {thr:g} in "
                 f"{fmt_pct(data.quality.low_confidence / n)} of the predictions "
                 f"({n_low} stretch{'es' if n_low != 1 else ''}).")
    return text


def _clock_axis(ax, x_end: float) -> None:
    """Ticks on whole steps of seconds, labelled as m:ss (:func:`fmt_clock`)."""
    step = next((st for st in CLOCK_STEPS_S if x_end / st <= MAX_TICKS), CLOCK_STEPS_S[-1])
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_clock(x)))


def _legend_handles(data: ReportData, spans: dict[str, list[tuple[float, float]]]) -> list:
    thr = data.quality.low_confidence_threshold
    grey = "#555555"
    return [
        Line2D([], [], color=grey, lw=1.0, alpha=0.6, label="estimate, every hop"),
        Line2D([], [], color=grey, lw=2.2, label=f"{SMOOTH_S:g}-s moving mean"),
        Patch(facecolor=grey, alpha=SPREAD_ALPHA + 0.1, label="± 1 SD of the predicted rating"),
        Line2D([], [], color="#777777", lw=0.9, ls="--", label="baseline mean (grey area: baseline)"),
        Patch(**{**DROPPED_STYLE, "edgecolor": "#c0392b", "facecolor": "none", "alpha": 0.8, "lw": 0},
              label="a modality left out" + ("" if spans["dropped"] else " (none)")),
        Patch(**LOW_CONF_STYLE, label=f"confidence < {thr:g}" + ("" if spans["low_confidence"] else " (none)")),
    ]


def draw_trajectories(fig: FigureBase, data: ReportData) -> None:
    """Valence, arousal and liking over stream time: music segments and the baseline shaded
    and labelled, the ± 1 SD band of each rating, stretches with a modality left out
    (hatched, ``gid="dropped"``) and with low confidence (bottom bar, ``gid="low_confidence"``),
    time in m:ss.

    Parameters
    ----------
    fig : matplotlib Figure or SubFigure
    data : ReportData
    """
    s = data.series
    axes = fig.subplots(len(RATING_COLUMNS), 1, sharex=True)
    t = s.t
    x_end = max(data.duration_s, float(s.t[-1]) if len(s) else 1.0, 1e-3)  # seconds
    spans = trajectory_spans(data)
    for ax, k in zip(axes, RATING_COLUMNS):
        if data.baseline is not None:
            ax.axvspan(data.baseline.start, data.baseline.end, color="#eeeeee", lw=0, zorder=0, gid="baseline")
            ax.axhline(data.baseline.means[k], color="#777777", lw=0.9, ls="--", zorder=1)
        for j, seg in enumerate(data.segments):
            end = seg.end if seg.end is not None else x_end
            ax.axvspan(seg.start, end, color=SEGMENT_COLORS[j % 2], lw=0, zorder=0, gid="segment")
        for a, b in spans["dropped"]:
            ax.axvspan(a, b, lw=0, zorder=1, gid="dropped", **DROPPED_STYLE)
        for a, b in spans["low_confidence"]:
            ax.axvspan(a, b, ymin=0, ymax=LOW_CONF_BAR, zorder=4, gid="low_confidence", **LOW_CONF_STYLE)
        y = s.ratings[k]
        sd = s.spread.get(k, np.full_like(y, np.nan))
        tb, lo = _break_gaps(t, np.clip(y - sd, 1, 9), data.quality.gaps)
        _, hi = _break_gaps(t, np.clip(y + sd, 1, 9), data.quality.gaps)
        if np.isfinite(lo).any():
            ax.fill_between(tb, lo, hi, color=RATING_COLORS[k], alpha=SPREAD_ALPHA, lw=0, zorder=2, gid="spread")
        ax.plot(*_break_gaps(t, y, data.quality.gaps), color=RATING_COLORS[k], lw=1.0, alpha=0.45, zorder=2)
        if y.size >= 5:
            smooth = _moving_mean(y, _smooth_window(s.t))
            ax.plot(*_break_gaps(t, smooth, data.quality.gaps), color=RATING_COLORS[k], lw=2.2, zorder=3)
        ax.set_ylim(1, 9)
        ax.set_yticks([1, 3, 5, 7, 9])
        ax.axhline(5, color="#bbbbbb", lw=0.6, zorder=1)
        ax.set_ylabel(k.capitalize(), fontsize=11)
        ax.grid(axis="x", color="#e5e5e5", lw=0.6)
        ax.set_xlim(0, x_end)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    _clock_axis(axes[-1], x_end)
    top = axes[0]
    x_max = x_end  # labels stay above the drawn time range (s)
    for seg in data.segments:
        end = seg.end if seg.end is not None else x_end
        if seg.start >= x_max:
            continue  # marked after the last prediction: nothing of it is drawn
        end = min(end, x_max)
        label = seg.track if len(seg.track) <= 28 else seg.track[:26] + "…"
        top.text((seg.start + end) / 2, 9.25, label, ha="center", va="bottom", fontsize=8.5,
                 color="#333333", clip_on=False, rotation=0 if (end - seg.start) > x_end / 8 else 20)
    if data.baseline is not None:
        # a session shorter than the fallback baseline: centre the label on what is drawn
        b_end = min(data.baseline.end, x_max)
        top.text((data.baseline.start + b_end) / 2, 9.25, "baseline", ha="center",
                 va="bottom", fontsize=8.5, color="#777777", style="italic", clip_on=False)
    seen = {m for used in s.modalities_used for m in used}
    for a, b in spans["dropped"]:  # name what was left out, where there is room for it
        if b - a < x_end / 30:
            continue
        inside = (s.t >= a) & (s.t <= b)
        missing = sorted({m for i in np.flatnonzero(inside) for m in seen - set(s.modalities_used[i])})
        top.text((a + b) / 2, 8.7, "no " + ", ".join(modality_label(m) for m in missing), ha="center", va="top",
                 fontsize=7, color=DROPPED_STYLE["hatchcolor"], gid="dropped_label",
                 bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    axes[-1].set_xlabel("Stream time since session start (m:ss)")
    axes[-1].legend(handles=_legend_handles(data, spans), loc="upper center", bbox_to_anchor=(0.5, -0.34),
                    ncol=3, fontsize=8, frameon=False)


def _break_gaps(tm: np.ndarray, y: np.ndarray, gaps: Sequence[tuple[float, float]]):
    """Insert a NaN inside every gap (times and gaps in seconds) so that lines are not drawn across it."""
    if not gaps:
        return tm, y
    starts = np.asarray([a for a, _ in gaps])
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
        "Right: every estimate on the valence-arousal plane, coloured by stream time since the start (m:ss). "
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
    sc = ax_va.scatter(s.ratings["valence"], s.ratings["arousal"], c=s.t, cmap="viridis", s=8, alpha=0.6)
    cbar = fig.colorbar(sc, ax=ax_va, shrink=0.85, format=FuncFormatter(lambda x, _: fmt_clock(x)))
    cbar.set_label("stream time (m:ss)", fontsize=8)
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
