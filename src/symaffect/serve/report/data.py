"""What a session report shows, computed once from the session store's rows (no drawing).

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
  least-squares line, in rating points per minute; needs at least
  :data:`MIN_TREND_POINTS` predictions spanning at least :data:`MIN_TREND_SPAN_S` s) and
  the change of the mean from the baseline mean.
* **Quadrant time share**: the fraction of predictions with each code of
  :data:`symaffect.spec.QUADRANT_CODES` (predictions are one per hop, so this is the
  fraction of monitored time). A prediction stored without a quadrant gets
  :data:`symaffect.spec.QUADRANT_RULE` of its valence and arousal; one without either
  rating has none and is left out.
* **Gaps**: intervals between consecutive predictions longer than
  :data:`GAP_FACTOR` times the median hop.
* **The listener's own ratings** of a segment (1-9, entered by the therapist) are shown
  beside the model's mean estimates over the same predictions.
* **Which model**: every prediction records the model that made it (``"base model"`` or
  ``"calibrated (bias, K = 3)"``); a segment (or the session) whose predictions came from
  more than one is ``"mixed: base until 2:31, then calibrated (bias, K = 3)"``, the time
  being the first prediction of the next model. Predictions stored before the model was
  recorded say :data:`NOT_RECORDED`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symaffect.errors import DataError
from symaffect.serve.report.formatting import fmt_clock, fmt_dur
from symaffect.spec import (
    QUADRANT_CODES,
    QUADRANT_DESCRIPTIONS,
    QUADRANT_RULE,
    RATING_COLUMNS,
)
from symaffect.stream.store import (
    PredictionRow,
    QualityRow,
    SegmentRatingRow,
    SegmentRow,
    SessionRow,
    SessionStore,
)

FALLBACK_BASELINE_S = 60.0
"""Baseline length (s) when there is no usable period before the first segment."""
MIN_BASELINE_POINTS = 3
"""Fewest predictions before the first segment for it to serve as the baseline."""
MIN_TREND_POINTS = 3
MIN_TREND_SPAN_S = 10.0
GAP_FACTOR = 2.5
"""A gap is an interval between predictions longer than this many median hops."""
LOW_CONFIDENCE = 0.5
"""Predictions with a confidence below this are counted in the quality notes."""

NOT_RECORDED = "not recorded"
"""What the report says for predictions stored without their model (before schema v3)."""
BASE_LABEL = "base model"

CAVEAT = (
    "Trained on DEAP-format data; cross-subject accuracy is limited — see metrics. "
    "The values below are model estimates from physiology, not the listener's own "
    "ratings; read trends and changes, not single numbers."
)


@dataclass(frozen=True)
class SessionSeries:
    """A session's predictions as arrays.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Seconds since session start, increasing.
    ratings : dict of str to ndarray, shape (n,)
        Expected rating (1-9) per rating of :data:`symaffect.spec.RATING_COLUMNS`; NaN
        where it was not predicted.
    quadrant : list of str or None, length n
        Code of :data:`symaffect.spec.QUADRANT_CODES` per prediction; None without one.
    confidence : ndarray, shape (n,)
        Confidence in [0, 1].
    modalities_used : list of tuple of str, length n
        Modalities that went into each prediction.
    model_labels : list of str or None, length n
        The model that made each prediction (None: not recorded).
    """

    t: np.ndarray
    ratings: dict[str, np.ndarray]
    quadrant: list[str | None]
    confidence: np.ndarray
    modalities_used: list[tuple[str, ...]]
    model_labels: list[str | None] = field(default_factory=list)

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
    """Per-segment statistics (see the module docstring for definitions).

    ``end`` is where the statistics stop: the segment's end, or for an open segment the
    last prediction. ``own`` holds the listener's own ratings of the segment (None for one
    not given; empty when the segment was not rated) and ``model`` which model made the
    segment's estimates (:func:`describe_models`).
    """

    segment: SegmentRow
    end: float
    n: int
    means: dict[str, float]
    slopes_per_min: dict[str, float]
    changes: dict[str, float]
    own: dict[str, float | None] = field(default_factory=dict)
    model: str = ""


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

    session: SessionRow
    series: SessionSeries
    segments: list[SegmentRow]
    baseline: Baseline | None
    summaries: list[SegmentSummary]
    quadrant_shares: dict[str, float]
    quality: QualityNotes
    duration_s: float
    summary: list[str]
    models: str = ""
    n_rated: int = 0


def _nan(x: float | None) -> float:
    return float("nan") if x is None else x


def series_from_rows(rows: Sequence[PredictionRow]) -> SessionSeries:
    """Turn the store's prediction rows into arrays, sorted by ``t``.

    Parameters
    ----------
    rows : sequence of PredictionRow

    Returns
    -------
    SessionSeries
    """
    rows = sorted(rows, key=lambda r: r.t)
    ratings = {
        k: np.asarray([_nan(getattr(r, k)) for r in rows], dtype=float) for k in RATING_COLUMNS
    }
    quadrant = [
        r.quadrant if r.quadrant is not None else QUADRANT_RULE.code(r.valence, r.arousal) for r in rows
    ]
    return SessionSeries(
        t=np.asarray([r.t for r in rows], dtype=float),
        ratings=ratings,
        quadrant=quadrant,
        confidence=np.asarray([r.confidence for r in rows], dtype=float),
        modalities_used=[r.modalities_used for r in rows],
        model_labels=[r.model_label for r in rows],
    )


def _short(label: str | None) -> str:
    if label is None:
        return NOT_RECORDED
    return "base" if label == BASE_LABEL else label


def describe_models(t: np.ndarray, labels: Sequence[str | None]) -> str:
    """Which model made predictions at times ``t`` (sorted) with ``labels``.

    Returns
    -------
    str
        One label (``"base model"``, ``"calibrated (bias, K = 3)"``, :data:`NOT_RECORDED`),
        ``"mixed: base until 2:31, then calibrated (bias, K = 3)"`` when it changed (the
        time is the next model's first prediction), or ``"—"`` without predictions.
    """
    runs: list[tuple[str | None, float]] = []
    for ti, lab in zip(t, labels):
        if not runs or runs[-1][0] != lab:
            runs.append((lab, float(ti)))
    if not runs:
        return "—"
    if len(runs) == 1:
        return NOT_RECORDED if runs[0][0] is None else runs[0][0]
    out = _short(runs[0][0])
    for lab, start in runs[1:]:
        out += f" until {fmt_clock(start)}, then {_short(lab)}"
    return "mixed: " + out


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def compute_baseline(
    series: SessionSeries, segments: Sequence[SegmentRow], *, fallback_s: float = FALLBACK_BASELINE_S
) -> Baseline | None:
    """The session's baseline period and its mean ratings.

    Parameters
    ----------
    series : SessionSeries
    segments : sequence of SegmentRow
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
    series: SessionSeries, segments: Sequence[SegmentRow], baseline: Baseline | None,
    ratings: Sequence[SegmentRatingRow] = (),
) -> list[SegmentSummary]:
    """Mean, trend (points per minute) and change from baseline for each segment, by start;
    with the listener's own ratings (current ``ratings`` rows) and which model estimated it."""
    own = {r.segment_id: {k: getattr(r, k) for k in RATING_COLUMNS} for r in ratings if r.superseded_at is None}
    labels = series.model_labels or [None] * len(series)
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
            for k in RATING_COLUMNS
        }
        idx = np.flatnonzero(mask)
        model = describe_models(series.t[idx], [labels[i] for i in idx])
        out.append(SegmentSummary(seg, float(end), int(mask.sum()), means, slopes, changes,
                                  own.get(seg.id, {}), model))
    return out


def quadrant_shares(quadrants: Sequence[str | None]) -> dict[str, float]:
    """Fraction of predictions per code of :data:`symaffect.spec.QUADRANT_CODES`, in that order.

    Predictions without a quadrant (None: no valence or arousal output) are left out; all
    shares are 0 when none has one.
    """
    counts = Counter(q for q in quadrants if q is not None)
    n = sum(counts.values())
    return {q: (counts[q] / n if n else 0.0) for q in QUADRANT_CODES}


def quality_notes(
    series: SessionSeries, quality_rows: Sequence[QualityRow], *, low_conf: float = LOW_CONFIDENCE
) -> QualityNotes:
    """Summarise dropped modalities, quality flags, gaps and low-confidence predictions.

    A modality counts as dropped from a prediction when it was used in some prediction of
    the session but not in this one.
    """
    n = len(series)
    seen = sorted({m for used in series.modalities_used for m in used})
    dropped = {m: sum(1 for used in series.modalities_used if m not in used) for m in seen}
    flags = Counter((r.modality, r.flag) for r in quality_rows)
    gaps: list[tuple[float, float]] = []
    if n >= 3:
        dt = np.diff(series.t)
        hop = float(np.median(dt))
        if hop > 0:
            idx = np.flatnonzero(dt > GAP_FACTOR * hop)
            gaps = [(float(series.t[i]), float(series.t[i + 1])) for i in idx]
    n_low = int(np.sum(series.confidence < low_conf))
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
            f"({fmt_dur(total)} in total; longest {fmt_dur(max(b - a for a, b in gaps))})."
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


def plain_summary(
    series: SessionSeries, baseline: Baseline | None, summaries: Sequence[SegmentSummary],
    shares: Mapping[str, float], quality: QualityNotes, duration_s: float,
) -> list[str]:
    """A few plain sentences for the top of the report (no numbers beyond one decimal)."""
    if len(series) == 0:
        return ["No predictions were stored for this session."]
    out = []
    means = {k: _nanmean(v) for k, v in series.ratings.items()}
    parts = [f"{k} {_level(m)} ({m:.1f})" for k, m in means.items() if np.isfinite(m)]
    if parts:
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        out.append(f"Over {fmt_dur(duration_s)} of monitoring, estimated {listed} on the 1-9 scales.")
    if any(shares.values()):
        top = max(shares, key=lambda q: shares[q])
        out.append(f"The model most often placed the listener in {top} — {QUADRANT_DESCRIPTIONS[top]} "
                   f"({100 * shares[top]:.0f} % of the time).")
    tasks = [k for k in RATING_COLUMNS if np.isfinite(means[k])]
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


def _session_duration(session: SessionRow, series: SessionSeries) -> float:
    """Wall-clock length of an ended session, at least the stream time of its last prediction."""
    last = float(series.t[-1]) if len(series) else 0.0
    if session.ended_at is None:
        return last
    return max(session.ended_at - session.started_at, last)


def build_report_data(
    session: SessionRow,
    predictions: Sequence[PredictionRow],
    segments: Sequence[SegmentRow],
    quality: Sequence[QualityRow],
    ratings: Sequence[SegmentRatingRow] = (),
) -> ReportData:
    """Compute everything a report shows from the store's rows (no I/O).

    Parameters
    ----------
    session : SessionRow
        ``SessionStore.session(id)``.
    predictions : sequence of PredictionRow
        ``SessionStore.predictions(id)``.
    segments : sequence of SegmentRow
        ``SessionStore.segments(id)``.
    quality : sequence of QualityRow
        ``SessionStore.quality(id)``.
    ratings : sequence of SegmentRatingRow
        ``SessionStore.segment_ratings(id)``: the listener's own ratings of segments.

    Returns
    -------
    ReportData
    """
    series = series_from_rows(predictions)
    segs = sorted(segments, key=lambda s: s.start)
    baseline = compute_baseline(series, segs)
    summaries = segment_summaries(series, segs, baseline, ratings)
    shares = quadrant_shares(series.quadrant)
    qual = quality_notes(series, quality)
    duration = _session_duration(session, series)
    summary = plain_summary(series, baseline, summaries, shares, qual, duration)
    models = describe_models(series.t, series.model_labels)
    n_rated = sum(1 for s in summaries if s.own)
    summary += model_sentences(series, summaries, n_rated)
    return ReportData(session, series, segs, baseline, summaries, shares, qual, duration, summary, models, n_rated)


def model_sentences(series: SessionSeries, summaries: Sequence[SegmentSummary], n_rated: int) -> list[str]:
    """Plain sentences on the listener's ratings and a calibration (none when neither)."""
    out = []
    if n_rated:
        out.append(f"The listener's own ratings were entered for {n_rated} of {len(summaries)} music segments; "
                   "they are shown beside the model's estimates.")
    labels = series.model_labels
    first = next((i for i, lab in enumerate(labels) if lab not in (None, BASE_LABEL)), None)
    if first is not None:
        when = "From the start" if first == 0 else f"From {fmt_clock(float(series.t[first]))}"
        out.append(f"{when} the estimates came from a model calibrated to this listener: {labels[first]}.")
    return out


def load_report_data(db_path: str | Path, session_id: int) -> ReportData:
    """Read one session from the store at ``db_path`` and compute its report data.

    Parameters
    ----------
    db_path : str or Path
        The session store (SQLite file); it must exist.
    session_id : int

    Returns
    -------
    ReportData

    Raises
    ------
    DataError
        When the database does not exist, has no such session, or holds a corrupt row.
    """
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
        return build_report_data(session, store.predictions(sid), store.segments(sid), store.quality(sid),
                                 ratings=store.segment_ratings(sid))
