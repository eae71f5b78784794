"""Session reports: what a music therapist reads after a monitored session.

``symaffect report SESSION_ID`` reads one session from the SQLite session store
(:class:`symaffect.stream.store.SessionStore`) and writes a self-contained HTML page
(figures are inline PNGs drawn with matplotlib; no external resources), and optionally
a PDF of the same content (matplotlib's ``PdfPages``).

Definitions used in the report
------------------------------
* **Ratings** are the model's *expected* ratings on DEAP's 1-9 scales (the
  probability-weighted mean of the 9 classes), one per prediction hop.
* **Baseline**: the predictions before the first music segment starts, when there are
  at least :data:`MIN_BASELINE_POINTS` of them; otherwise (no segments, or music from the
  very start) the first :data:`FALLBACK_BASELINE_S` seconds of the session. The report
  states which rule was used.
* **Per-segment summary**: over the predictions with ``start <= t < end`` of a segment
  (an open segment ends at the last prediction): the mean, the trend (slope of a
  least-squares line, in rating points per minute; needs at least 3 predictions
  spanning at least 10 s) and the change of the mean from the baseline mean.
* **Quadrant time share**: the fraction of predictions in each quadrant (predictions
  are one per hop, so this is the fraction of monitored time).
* **Gaps**: intervals between consecutive predictions longer than
  :data:`GAP_FACTOR` times the median hop.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symaffect._io import atomic_write, write_text
from symaffect.errors import DataError
from symaffect.spec import QUADRANT_DESCRIPTIONS, QUADRANT_RULE

log = logging.getLogger(__name__)

RATINGS: tuple[str, ...] = ("valence", "arousal", "liking")
"""The three rated dimensions (expected ratings on 1-9)."""
RATING_COLORS: dict[str, str] = {"valence": "#1b7837", "arousal": "#c2410c", "liking": "#2b5c9e"}
FALLBACK_BASELINE_S = 60.0
"""Baseline length (s) when there is no usable period before the first segment."""
MIN_BASELINE_POINTS = 3
"""Fewest predictions before the first segment for it to serve as the baseline."""
MIN_TREND_POINTS = 3
MIN_TREND_SPAN_S = 10.0
GAP_FACTOR = 2.5
"""A gap is an interval between predictions longer than this many median hops."""

QUADRANTS: dict[str, str] = QUADRANT_DESCRIPTIONS
"""Quadrant codes and their plain-language reading (:data:`symaffect.spec.QUADRANT_DESCRIPTIONS`)."""
QUADRANT_COLORS: dict[str, str] = {
    "Q1": "#e6a11a", "Q2": "#c0392b", "Q3": "#4a6fa5", "Q4": "#3e9b6a", "Neutral": "#9a9a9a",
}

CAVEAT = (
    "Trained on DEAP-format data; cross-subject accuracy is limited — see metrics. "
    "The values below are model estimates from physiology, not the listener's own "
    "ratings; read trends and changes, not single numbers."
)


# --- data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One music segment (times in s since session start; ``end`` None while open)."""

    track: str
    start: float
    end: float | None


@dataclass(frozen=True)
class SessionSeries:
    """A session's predictions as arrays.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Seconds since session start, increasing.
    ratings : dict of str to ndarray, shape (n,)
        Expected rating (1-9) per task; NaN where a task was not predicted.
    quadrant : list of str, length n
        Quadrant code per prediction (``"Q1"``..``"Q4"`` or ``"Neutral"``).
    confidence : ndarray, shape (n,)
        Confidence in [0, 1] (NaN where not stored).
    modalities_used : list of tuple of str, length n
        Modalities that went into each prediction.
    """

    t: np.ndarray
    ratings: dict[str, np.ndarray]
    quadrant: list[str]
    confidence: np.ndarray
    modalities_used: list[tuple[str, ...]]

    def __len__(self) -> int:
        return int(self.t.size)


@dataclass(frozen=True)
class Baseline:
    """The reference period: ``start <= t < end``; ``rule`` says how it was chosen."""

    start: float
    end: float
    rule: str
    means: dict[str, float]
    n: int


@dataclass(frozen=True)
class SegmentSummary:
    """Per-segment statistics (see the module docstring for definitions)."""

    segment: Segment
    end: float
    n: int
    means: dict[str, float]
    slopes_per_min: dict[str, float]
    changes: dict[str, float]


@dataclass(frozen=True)
class QualityNotes:
    """What went wrong with the signals during a session."""

    n_predictions: int
    dropped: dict[str, int]
    flags: dict[tuple[str, str], int]
    gaps: list[tuple[float, float]]
    low_confidence: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, computed once (rendering only formats it)."""

    session: dict[str, Any]
    series: SessionSeries
    segments: list[Segment]
    baseline: Baseline | None
    summaries: list[SegmentSummary]
    quadrant_shares: dict[str, float]
    quality: QualityNotes
    duration_s: float
    summary: list[str]


def _quadrant_code(q: Any, valence: float, arousal: float) -> str:
    """The stored code; for a row stored without one, :data:`symaffect.spec.QUADRANT_RULE`."""
    if isinstance(q, str) and q in QUADRANTS:
        return q
    return QUADRANT_RULE.code(valence, arousal) or "n/a"  # "n/a": neither rating predicted


def _rating(row: Mapping[str, Any], task: str) -> float:
    """Expected rating of ``task`` from a stored prediction row (NaN when absent)."""
    for key in (task, f"{task}_rating", f"expected_{task}"):
        v = row.get(key)
        if v is not None:
            return float(v)
    for key in ("expected", "ratings", "expected_ratings"):
        d = row.get(key)
        if isinstance(d, Mapping) and d.get(task) is not None:
            return float(d[task])
    return float("nan")


def series_from_rows(rows: Sequence[Mapping[str, Any]]) -> SessionSeries:
    """Turn stored prediction rows (``SessionStore.predictions``) into arrays.

    Parameters
    ----------
    rows : sequence of mapping
        Each with ``t`` and the expected ratings; ``quadrant``, ``confidence`` and
        ``modalities_used`` are used when present.

    Returns
    -------
    SessionSeries
        Sorted by ``t``.
    """
    rows = sorted(rows, key=lambda r: float(r["t"]))
    t = np.asarray([float(r["t"]) for r in rows], dtype=float)
    ratings = {k: np.asarray([_rating(r, k) for r in rows], dtype=float) for k in RATINGS}
    quadrant = [
        _quadrant_code(r.get("quadrant"), ratings["valence"][i], ratings["arousal"][i])
        for i, r in enumerate(rows)
    ]
    conf = np.asarray(
        [float(r["confidence"]) if r.get("confidence") is not None else np.nan for r in rows]
    )
    used = [tuple(r.get("modalities_used") or ()) for r in rows]
    return SessionSeries(t=t, ratings=ratings, quadrant=quadrant, confidence=conf, modalities_used=used)


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def compute_baseline(
    series: SessionSeries, segments: Sequence[Segment], *, fallback_s: float = FALLBACK_BASELINE_S
) -> Baseline | None:
    """The session's baseline period and its mean ratings.

    Parameters
    ----------
    series : SessionSeries
    segments : sequence of Segment
    fallback_s : float
        Length of the fallback baseline (first seconds of the session).

    Returns
    -------
    Baseline or None
        None when the session has no predictions.
    """
    if len(series) == 0:
        return None
    t0 = float(series.t[0])
    first = min((s.start for s in segments), default=None)
    if first is not None:
        mask = series.t < first
        if int(mask.sum()) >= MIN_BASELINE_POINTS:
            return Baseline(
                start=t0, end=float(first), rule="before the first music segment",
                means={k: _nanmean(v[mask]) for k, v in series.ratings.items()}, n=int(mask.sum()),
            )
        rule = f"first {fallback_s:g} s (too little signal before the first segment)"
    else:
        rule = f"first {fallback_s:g} s (no music segments marked)"
    end = t0 + fallback_s
    mask = series.t < end
    return Baseline(
        start=t0, end=end, rule=rule,
        means={k: _nanmean(v[mask]) for k, v in series.ratings.items()}, n=int(mask.sum()),
    )


def _slope_per_min(t: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    if t.size < MIN_TREND_POINTS or (t.max() - t.min()) < MIN_TREND_SPAN_S:
        return float("nan")
    slope, _ = np.polyfit(t / 60.0, y, 1)
    return float(slope)


def segment_summaries(
    series: SessionSeries, segments: Sequence[Segment], baseline: Baseline | None
) -> list[SegmentSummary]:
    """Mean, trend (points per minute) and change from baseline for each segment."""
    out = []
    t_last = float(series.t[-1]) if len(series) else 0.0
    for seg in sorted(segments, key=lambda s: s.start):
        end = seg.end if seg.end is not None else max(t_last, seg.start)
        mask = (series.t >= seg.start) & (series.t < end)
        if seg.end is None:
            mask |= series.t == end
        means = {k: _nanmean(v[mask]) for k, v in series.ratings.items()}
        slopes = {k: _slope_per_min(series.t[mask], v[mask]) for k, v in series.ratings.items()}
        changes = {
            k: (means[k] - baseline.means[k]) if baseline is not None else float("nan")
            for k in RATINGS
        }
        out.append(SegmentSummary(seg, float(end), int(mask.sum()), means, slopes, changes))
    return out


def quadrant_shares(quadrants: Sequence[str]) -> dict[str, float]:
    """Fraction of predictions per quadrant code, in the order of :data:`QUADRANTS`.

    Predictions without a quadrant (``"n/a"``: no valence or arousal output) are left out.
    """
    counts = Counter(q for q in quadrants if q in QUADRANTS)
    n = sum(counts.values())
    return {q: (counts.get(q, 0) / n if n else 0.0) for q in QUADRANTS}


def quality_notes(
    series: SessionSeries, quality_rows: Sequence[Mapping[str, Any]], *, low_conf: float = 0.5
) -> QualityNotes:
    """Summarise dropped modalities, quality flags, gaps and low-confidence predictions.

    A modality counts as dropped from a prediction when it was used in some prediction of
    the session but not in this one.
    """
    n = len(series)
    seen = sorted({m for used in series.modalities_used for m in used})
    dropped = {m: sum(1 for used in series.modalities_used if m not in used) for m in seen}
    flags: Counter[tuple[str, str]] = Counter(
        (str(r.get("modality") or "stream"), str(r.get("flag") or "unknown")) for r in quality_rows
    )
    gaps: list[tuple[float, float]] = []
    if n >= 3:
        dt = np.diff(series.t)
        hop = float(np.median(dt))
        if hop > 0:
            idx = np.flatnonzero(dt > GAP_FACTOR * hop)
            gaps = [(float(series.t[i]), float(series.t[i + 1])) for i in idx]
    conf = series.confidence
    n_low = int(np.sum(np.isfinite(conf) & (conf < low_conf)))
    notes = []
    for m in seen:
        if dropped[m]:
            notes.append(
                f"{m}: left out of {dropped[m]} of {n} predictions ({100 * dropped[m] / n:.0f} %)."
            )
        else:
            notes.append(f"{m}: used in every prediction.")
    for (mod, flag), c in sorted(flags.items()):
        notes.append(f"{mod}: flagged '{flag}' {c} time{'s' if c != 1 else ''}.")
    if gaps:
        total = sum(b - a for a, b in gaps)
        notes.append(
            f"{len(gaps)} gap{'s' if len(gaps) != 1 else ''} without predictions "
            f"({_fmt_dur(total)} in total; longest {_fmt_dur(max(b - a for a, b in gaps))})."
        )
    else:
        notes.append("No gaps in the prediction stream.")
    if n:
        notes.append(
            f"{n_low} of {n} predictions ({100 * n_low / n:.0f} %) had confidence below {low_conf:g}."
        )
    return QualityNotes(n, dropped, dict(flags), gaps, n_low, notes)


def _level(x: float) -> str:
    if not np.isfinite(x):
        return "unknown"
    if x >= 6.5:
        return "high"
    if x > 5.5:
        return "moderately high"
    if x >= 4.5:
        return "middling"
    if x > 3.5:
        return "moderately low"
    return "low"


def plain_summary(data_series: SessionSeries, baseline: Baseline | None,
                  summaries: Sequence[SegmentSummary], shares: Mapping[str, float],
                  quality: QualityNotes, duration_s: float) -> list[str]:
    """A few plain sentences for the top of the report (no numbers beyond one decimal)."""
    if len(data_series) == 0:
        return ["No predictions were stored for this session."]
    out = []
    means = {k: _nanmean(v) for k, v in data_series.ratings.items()}
    parts = [f"{k} {_level(m)} ({m:.1f})" for k, m in means.items() if np.isfinite(m)]
    if parts:
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        out.append(f"Over {_fmt_dur(duration_s)} of monitoring, estimated {listed} on the 1-9 scales.")
    if any(shares.values()):
        top = max(shares, key=lambda q: shares[q])
        out.append(f"The model most often placed the listener in {top} — {QUADRANTS[top]} "
                   f"({100 * shares[top]:.0f} % of the time).")
    tasks = [k for k in RATINGS if np.isfinite(means[k])]
    valid = [s for s in summaries if s.n > 0 and any(np.isfinite(s.changes[k]) for k in tasks)]
    if valid and baseline is not None:
        def biggest(s: SegmentSummary) -> float:
            return max(abs(s.changes[k]) if np.isfinite(s.changes[k]) else -1.0 for k in tasks)

        best = max(valid, key=biggest)
        k = max(tasks, key=lambda k: abs(best.changes[k]) if np.isfinite(best.changes[k]) else -1.0)
        d = best.changes[k]
        out.append(
            f"The largest change from baseline was during “{best.segment.track}”: "
            f"{k} {'rose' if d > 0 else 'fell'} by {abs(d):.1f} points."
        )
        small = all(abs(s.changes[k]) < 0.5 for s in valid for k in tasks if np.isfinite(s.changes[k]))
        if small:
            out.append("All segment changes from baseline were under half a point: "
                       "treat them as no clear change.")
    elif not summaries:
        out.append("No music segments were marked, so no per-segment comparison is possible.")
    dropped = [m for m, c in quality.dropped.items() if c / max(quality.n_predictions, 1) >= 0.1]
    if dropped or quality.gaps:
        bits = []
        if dropped:
            bits.append(", ".join(dropped) + " often dropped")
        if quality.gaps:
            bits.append(f"{len(quality.gaps)} gap{'s' if len(quality.gaps) != 1 else ''}")
        out.append("Signal quality: " + "; ".join(bits) + " — see the quality notes.")
    else:
        out.append("Signal quality was good throughout.")
    return out


def _segments_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[Segment]:
    segs = []
    for r in rows:
        end = r.get("end")
        segs.append(Segment(str(r.get("track", "")), float(r["start"]),
                            None if end is None else float(end)))
    return sorted(segs, key=lambda s: s.start)


def _session_duration(session: Mapping[str, Any], series: SessionSeries) -> float:
    start, end = session.get("started_at"), session.get("ended_at")
    last = float(series.t[-1]) if len(series) else 0.0
    if start is not None and end is not None:
        try:
            return max(float(end) - float(start), last)
        except (TypeError, ValueError):
            pass
    return last


def build_report_data(
    session: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    segments: Sequence[Mapping[str, Any]],
    quality: Sequence[Mapping[str, Any]],
) -> ReportData:
    """Compute everything a report shows from the store's rows (no I/O).

    Parameters
    ----------
    session : mapping
        ``SessionStore.session(id)``.
    predictions, segments, quality : sequence of mapping
        ``SessionStore.predictions(id)``, ``.segments(id)``, ``.quality(id)``.
    """
    series = series_from_rows(predictions)
    segs = _segments_from_rows(segments)
    baseline = compute_baseline(series, segs)
    summaries = segment_summaries(series, segs, baseline)
    shares = quadrant_shares(series.quadrant)
    qual = quality_notes(series, quality)
    duration = _session_duration(session, series)
    summary = plain_summary(series, baseline, summaries, shares, qual, duration)
    return ReportData(dict(session), series, segs, baseline, summaries, shares, qual, duration, summary)


def load_report_data(db_path: str | Path, session_id: int) -> ReportData:
    """Read one session from the store at ``db_path`` and compute its report data.

    Raises
    ------
    DataError
        When the database does not exist or has no such session.
    """
    from symaffect.stream.store import SessionStore

    db_path = Path(db_path)
    if not db_path.exists():
        raise DataError(db_path, "no session database here (run a session first, or pass --db)")
    sid = int(session_id)
    with SessionStore(db_path) as store:
        try:
            session = store.session(sid)
        except DataError as e:
            if e.source != "session":  # a corrupt row or file: its own message names it
                raise
            raise DataError(f"session {sid}", f"not found in {db_path}") from None
        return build_report_data(session, store.predictions(sid), store.segments(sid), store.quality(sid))


# --- figures ---------------------------------------------------------------------------


def _fmt_dur(s: float) -> str:
    s = max(float(s), 0.0)
    if s < 60:
        return f"{s:.0f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s" if sec else f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _fmt_clock(s: float) -> str:
    m, sec = divmod(int(round(max(s, 0.0))), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def trajectory_figure(data: ReportData):
    """Valence, arousal and liking over time, music segments shaded and labelled.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    s = data.series
    fig = Figure(figsize=(10, 6.6), dpi=110, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    tm = s.t / 60.0
    x_end = max(data.duration_s, float(s.t[-1]) if len(s) else 1.0) / 60.0
    seg_colors = ["#d9e6f5", "#f6e3cf"]
    for i, (ax, k) in enumerate(zip(axes, RATINGS)):
        if data.baseline is not None:
            ax.axvspan(data.baseline.start / 60, data.baseline.end / 60, color="#eeeeee", lw=0, zorder=0)
            ax.axhline(data.baseline.means[k], color="#777777", lw=0.9, ls="--", zorder=1)
        for j, seg in enumerate(data.segments):
            end = seg.end if seg.end is not None else x_end * 60
            ax.axvspan(seg.start / 60, end / 60, color=seg_colors[j % 2], lw=0, zorder=0)
        y = s.ratings[k]
        tm_g, y_g = _break_gaps(tm, y, data.quality.gaps)
        ax.plot(tm_g, y_g, color=RATING_COLORS[k], lw=1.0, alpha=0.45, zorder=2)
        if y.size >= 5:
            w = _smooth_window(s.t)
            ax.plot(*_break_gaps(tm, _moving_mean(y, w), data.quality.gaps), color=RATING_COLORS[k], lw=2.2, zorder=3)
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
    for j, seg in enumerate(data.segments):
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
    fig.suptitle(f"Estimated ratings over the session (thin: every hop; thick: {SMOOTH_S:g}-s "
                 "moving mean; dashed: baseline mean)", fontsize=10, color="#444444")
    return fig


def _break_gaps(tm: np.ndarray, y: np.ndarray, gaps: Sequence[tuple[float, float]]):
    """Insert a NaN inside every gap so that lines are not drawn across it."""
    if not gaps:
        return tm, y
    starts = np.asarray([a for a, _ in gaps]) / 60.0
    idx = np.searchsorted(tm, starts, side="right")
    return np.insert(tm, idx, starts), np.insert(y.astype(float), idx, np.nan)


SMOOTH_S = 15.0
"""Width of the centred moving mean drawn over the trajectories (s)."""


def _smooth_window(t: np.ndarray) -> int:
    """Odd number of hops covering about :data:`SMOOTH_S` seconds (at least 3)."""
    hop = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    w = int(round(SMOOTH_S / hop)) if hop > 0 else 3
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


def quadrant_figure(data: ReportData):
    """Quadrant time shares (horizontal bars) beside the valence-arousal plane.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=110, layout="constrained")
    ax_bar, ax_va = fig.subplots(1, 2, width_ratios=[1.5, 1])
    names = [q for q in QUADRANTS if q != "Neutral" or data.quadrant_shares[q] > 0]
    vals = [100 * data.quadrant_shares[q] for q in names]
    ylabels = [f"{q}: {QUADRANTS[q].split(' (')[0]}" for q in names]
    bars = ax_bar.barh(range(len(names)), vals, color=[QUADRANT_COLORS[q] for q in names])
    ax_bar.set_yticks(range(len(names)), ylabels, fontsize=9)
    ax_bar.invert_yaxis()
    ax_bar.set_xlim(0, 105)
    ax_bar.set_xlabel("Share of monitored time (%)")
    for b, v in zip(bars, vals):
        ax_bar.text(b.get_width() + 1, b.get_y() + b.get_height() / 2, f"{v:.0f} %", va="center", fontsize=9)
    for side in ("top", "right"):
        ax_bar.spines[side].set_visible(False)
    ax_bar.set_title("Time in each quadrant", fontsize=10)

    s = data.series
    ax_va.axhline(5, color="#999999", lw=0.8)
    ax_va.axvline(5, color="#999999", lw=0.8)
    if len(s):
        sc = ax_va.scatter(s.ratings["valence"], s.ratings["arousal"], c=s.t / 60, cmap="viridis",
                           s=8, alpha=0.6)
        cb = fig.colorbar(sc, ax=ax_va, shrink=0.85)
        cb.set_label("min", fontsize=8)
    for q, (x, y) in {"Q1": (8.4, 8.5), "Q2": (1.6, 8.5), "Q3": (1.6, 1.5), "Q4": (8.4, 1.5)}.items():
        ax_va.text(x, y, q, ha="center", va="center", fontsize=9, color=QUADRANT_COLORS[q], weight="bold")
    ax_va.set_xlim(1, 9)
    ax_va.set_ylim(1, 9)
    ax_va.set_aspect("equal")
    ax_va.set_xlabel("Valence")
    ax_va.set_ylabel("Arousal")
    ax_va.set_title("Every estimate on the valence-arousal plane", fontsize=10)
    return fig


def _png_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --- HTML ------------------------------------------------------------------------------

_CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;max-width:1060px;margin:24px auto;
padding:0 18px;color:#222;line-height:1.45}
h1{font-size:1.55em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd;
padding-bottom:.2em}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;font-size:.95em}
.meta dt{color:#666}.meta dd{margin:0}
.caveat{background:#fff7e0;border-left:4px solid #e0a800;padding:8px 12px;margin:14px 0;font-size:.92em}
.summary li{margin:.25em 0}
table{border-collapse:collapse;font-size:.9em;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:right}
th{background:#f5f5f5}td.l,th.l{text-align:left}
.up{color:#1b7837}.down{color:#b2182b}.muted{color:#888}
img{max-width:100%}.note{font-size:.88em;color:#555}
footer{margin-top:2em;font-size:.8em;color:#888}
"""


def _fmt_num(x: float, signed: bool = False, digits: int = 1) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    x = round(float(x), digits) + 0.0  # no "-0.0"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _cls(x: float) -> str:
    if not np.isfinite(x) or abs(x) < 0.5:
        return "muted" if np.isfinite(x) else ""
    return "up" if x > 0 else "down"


def _fmt_when(v: Any) -> str:
    if v is None:
        return "—"
    try:
        ts = float(v)
        return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(v)


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page (inline PNG figures, inline CSS).

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    str
    """
    e = html.escape
    ses = data.session
    sid = ses.get("id", "?")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Session {e(str(sid))} report — symaffect</title><style>{_CSS}</style></head><body>",
        f"<h1>Session report: {e(str(ses.get('participant', '?')))}</h1>",
        "<dl class='meta'>",
        f"<dt>Session</dt><dd>#{e(str(sid))}</dd>",
        f"<dt>Participant (pseudonym)</dt><dd>{e(str(ses.get('participant', '?')))}</dd>",
        f"<dt>Started</dt><dd>{e(_fmt_when(ses.get('started_at')))}</dd>",
        f"<dt>Duration monitored</dt><dd>{e(_fmt_dur(data.duration_s))}"
        f"{'' if ses.get('ended_at') is not None else ' (session still open)'}</dd>",
        f"<dt>Predictions</dt><dd>{len(data.series)}</dd>",
        f"<dt>Model</dt><dd>{e(str(ses.get('model', '?')))}</dd>",
        "</dl>",
        f"<div class='caveat'><b>Please read:</b> {e(CAVEAT)}</div>",
        "<h2>Summary</h2><ul class='summary'>",
        *[f"<li>{e(line)}</li>" for line in data.summary],
        "</ul>",
    ]
    if len(data.series):
        parts += [
            "<h2>Trajectories</h2>",
            f"<img alt='valence, arousal and liking over time' src='data:image/png;base64,{_png_b64(trajectory_figure(data))}'>",
            "<p class='note'>Shaded bands are music segments (labelled at the top); the grey band "
            "is the baseline. Ratings are the model's expected ratings on 1-9 (5 = middle of the scale).</p>",
        ]
    parts.append("<h2>Music segments</h2>")
    b = data.baseline
    if b is not None:
        parts.append(
            f"<p class='note'>Baseline: {e(b.rule)} — {_fmt_clock(b.start)}–{_fmt_clock(b.end)}, "
            f"{b.n} predictions; mean valence {_fmt_num(b.means['valence'])}, arousal "
            f"{_fmt_num(b.means['arousal'])}, liking {_fmt_num(b.means['liking'])}.</p>"
        )
    if data.summaries:
        parts.append(
            "<table><tr><th class='l'>Track</th><th>Time</th><th>n</th>"
            + "".join(f"<th>{k.capitalize()} mean</th><th>Δ baseline</th><th>trend /min</th>" for k in RATINGS)
            + "</tr>"
        )
        for s in data.summaries:
            end_txt = _fmt_clock(s.end) + ("" if s.segment.end is not None else " (open)")
            row = (f"<tr><td class='l'>{e(s.segment.track)}</td>"
                   f"<td>{_fmt_clock(s.segment.start)}–{end_txt}</td><td>{s.n}</td>")
            for k in RATINGS:
                row += (f"<td>{_fmt_num(s.means[k])}</td>"
                        f"<td class='{_cls(s.changes[k])}'>{_fmt_num(s.changes[k], signed=True)}</td>"
                        f"<td>{_fmt_num(s.slopes_per_min[k], signed=True, digits=2)}</td>")
            parts.append(row + "</tr>")
        parts.append(
            "</table><p class='note'>Δ baseline: segment mean minus baseline mean (changes under "
            "0.5 points are greyed: within the model's noise). Trend: slope of a straight-line fit, "
            "in rating points per minute (— when the segment has too few predictions).</p>"
        )
    else:
        parts.append("<p>No music segments were marked in this session.</p>")
    if len(data.series):
        parts += [
            "<h2>Quadrants</h2>",
            f"<img alt='quadrant time shares' src='data:image/png;base64,{_png_b64(quadrant_figure(data))}'>",
            "<p class='note'>" + " ".join(
                f"<b>{q}</b>: {e(d)}." for q, d in QUADRANTS.items()
                if q != "Neutral" or data.quadrant_shares[q] > 0) + "</p>",
        ]
    parts += ["<h2>Signal quality</h2><ul>", *[f"<li>{e(n)}</li>" for n in data.quality.notes], "</ul>"]
    if data.quality.gaps:
        parts.append("<p class='note'>Gaps: " + ", ".join(
            f"{_fmt_clock(a)}–{_fmt_clock(b)}" for a, b in data.quality.gaps[:20]) + "</p>")
    parts.append(
        f"<footer>Generated by symaffect on {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M')}. "
        "Definitions (baseline, trend, gaps) are in the documentation of symaffect.stream.report.</footer>"
        "</body></html>"
    )
    return "\n".join(parts)


# --- PDF -------------------------------------------------------------------------------


def write_pdf(data: ReportData, path: str | Path) -> Path:
    """Write the report as a PDF: a text page, then the figures (matplotlib ``PdfPages``).

    Returns
    -------
    Path
    """
    from matplotlib.backends.backend_pdf import PdfPages

    path = Path(path)
    with atomic_write(path, "wb") as f, PdfPages(f) as pdf:
        pdf.savefig(text_page(data))
        if len(data.series):
            pdf.savefig(trajectory_figure(data))
            pdf.savefig(quadrant_figure(data))
    return path


def text_page(data: ReportData):
    """The PDF's first page (A4): header, caveat, summary, segment table, quality notes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import textwrap

    from matplotlib.figure import Figure

    ses = data.session
    text_fig = Figure(figsize=(8.27, 11.69))
    y = 0.95

    def line(txt: str, size: float = 10, weight: str = "normal", color: str = "#222222", dy: float = 0.022):
        nonlocal y
        if y < 0.04:
            return
        if y < 0.07:
            text_fig.text(0.07, y, "(continued in the HTML report)", fontsize=8, color="#888888", va="top")
            y = 0.0
            return
        for chunk in textwrap.wrap(txt, width=int(95 * 10 / size)) or [""]:
            text_fig.text(0.07, y, chunk, fontsize=size, weight=weight, color=color, va="top")
            y -= dy * size / 10

    line(f"Session report: {ses.get('participant', '?')}", 16, "bold", dy=0.03)
    line(f"Session #{ses.get('id', '?')} · started {_fmt_when(ses.get('started_at'))} · "
         f"{_fmt_dur(data.duration_s)} · {len(data.series)} predictions")
    line(f"Model: {ses.get('model', '?')}")
    y -= 0.01
    line("Please read: " + CAVEAT, 9, color="#7a5b00")
    y -= 0.01
    line("Summary", 12, "bold")
    for s in data.summary:
        line("• " + s)
    y -= 0.01
    line("Music segments", 12, "bold")
    if data.baseline is not None:
        b = data.baseline
        line(f"Baseline: {b.rule} ({_fmt_clock(b.start)}–{_fmt_clock(b.end)}, {b.n} predictions).", 9)
    for s in data.summaries:
        line(f"{s.segment.track} ({_fmt_clock(s.segment.start)}–{_fmt_clock(s.end)}, n={s.n}): " + "; ".join(
            f"{k} {_fmt_num(s.means[k])} (Δ {_fmt_num(s.changes[k], True)}, trend "
            f"{_fmt_num(s.slopes_per_min[k], True, 2)}/min)" for k in RATINGS), 9)
    if not data.summaries:
        line("No music segments were marked.", 9)
    y -= 0.01
    line("Signal quality", 12, "bold")
    for n in data.quality.notes:
        line("• " + n, 9)
    return text_fig


def write_report(
    db_path: str | Path, session_id: int, out: str | Path | None = None, *, pdf: bool = False
) -> list[Path]:
    """Render the report of one session to HTML (and PDF beside it when ``pdf``).

    Parameters
    ----------
    db_path : str or Path
        The session store (SQLite file).
    session_id : int
    out : str or Path, optional
        HTML path; default ``session-<id>-report.html`` in the working directory.
    pdf : bool
        Also write ``<out>.pdf``.

    Returns
    -------
    list of Path
        The files written.
    """
    data = load_report_data(db_path, session_id)
    out = Path(out) if out is not None else Path(f"session-{int(session_id)}-report.html")
    write_text(out, render_html(data))
    written = [out]
    if pdf:
        written.append(write_pdf(data, out.with_suffix(".pdf")))
    log.info("wrote %s", ", ".join(map(str, written)))
    return written
