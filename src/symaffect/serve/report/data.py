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
* **Duration** is stream time: the time of the last stored hop (a prediction, or a quality
  row such as a hop without a prediction), as ``SessionRow.stream_seconds``; never the wall
  clock; a replay at 2x covers its stream time in half the
  wall-clock time, which the report names separately when the session meta has a
  ``replay_speed``.
* **Dropped modality**: a prediction lacks a modality that some other prediction of the
  session used. **Hops without a prediction**: quality rows flagged ``no_prediction``
  (every modality was dropped). **Low confidence**: confidence below
  :data:`LOW_CONFIDENCE` (see :data:`CONFIDENCE_EXPLAINED`).
* **Level words** follow :data:`symaffect.spec.QUADRANT_RULE`: a rating in
  ``[threshold - neutral_band, threshold + neutral_band]`` (4-6) is "in the neutral
  range", above or below it "high" or "low" (see :func:`rating_level`), so that they agree
  with the quadrants.
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
from symaffect.provenance import provenance
from symaffect.serve.report.formatting import (
    NOISE_POINTS,
    fmt_clock,
    fmt_dur,
    fmt_num,
    fmt_pct,
    modality_label,
)
from symaffect.spec import (
    QUADRANT_CODES,
    QUADRANT_DESCRIPTIONS,
    QUADRANT_RULE,
    RATING_COLUMNS,
)
from symaffect.stream.prediction import rating_spreads
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
"""Predictions with a confidence below this are low-confidence (counted, and shaded)."""
NO_PREDICTION = "no_prediction"
"""Quality flag of a hop that had no prediction (every modality dropped)."""
NEAR_EDGE = 0.5
"""A rating within this of the neutral range (outside it) is "just above" / "just below" it."""

CONFIDENCE_EXPLAINED = (
    "Confidence says how sure the model was of an estimate, from 0 (no better than a uniform "
    "guess over the nine rating levels) to 1 (certain): the top class probability, rescaled so "
    "that a uniform guess is 0, averaged over the ratings and multiplied by the share of the "
    "model's modalities that were used; a prediction below "
    f"{LOW_CONFIDENCE:g} counts as low-confidence."
)
"""One plain sentence on what confidence means (the definition is
:meth:`symaffect.stream.prediction.Prediction.from_probabilities`)."""

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
    spread : dict of str to ndarray, shape (n,)
        Standard deviation of each rating's predicted distribution
        (:func:`symaffect.stream.prediction.rating_spread`); NaN where not predicted.
    """

    t: np.ndarray
    ratings: dict[str, np.ndarray]
    quadrant: list[str | None]
    confidence: np.ndarray
    modalities_used: list[tuple[str, ...]]
    model_labels: list[str | None] = field(default_factory=list)
    spread: dict[str, np.ndarray] = field(default_factory=dict)

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
    """What went wrong with the signals during a session.

    ``dropped`` counts, per modality used somewhere in the session, the predictions it was
    left out of; ``flags`` counts the quality rows by (modality, flag); ``no_prediction``
    the hops without any prediction; ``absent`` the modalities the recording lacked
    altogether (session meta ``absent_modalities``); ``low_confidence`` the predictions with
    confidence below ``low_confidence_threshold``.
    """

    n_predictions: int
    dropped: dict[str, int]
    flags: dict[tuple[str, str], int]
    gaps: list[tuple[float, float]]
    low_confidence: int
    notes: list[str] = field(default_factory=list)
    no_prediction: int = 0
    absent: tuple[str, ...] = ()
    low_confidence_threshold: float = LOW_CONFIDENCE


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, computed once (rendering only formats it).

    ``duration_s`` is stream time (the last stored hop); ``wall_s`` the wall-clock length
    when the session was replayed faster or slower (``replay_speed`` in its meta, not 1),
    else None.
    """

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
    wall_s: float | None = None
    replay_speed: float | None = None
    provenance: dict = field(default_factory=dict)


def session_provenance(session: SessionRow) -> dict:
    """:func:`symaffect.provenance.provenance` of a session report: package versions,
    python, platform, and the session's model (``model``, ``run_dir`` and
    ``model_sha256``: the SHA-256 of the model file the session ran, from the session
    meta; None when the session did not record it)."""
    meta = session.meta if isinstance(session.meta, Mapping) else {}
    digest = meta.get("model_sha256")
    return provenance(extra={"session_id": int(session.id), "model": session.model, "run_dir": session.run_dir,
                             "model_sha256": str(digest) if digest else None})


def provenance_rows(prov: Mapping) -> list[tuple[str, str]]:
    """(label, text) rows of a provenance dict, for the report's footer (HTML and PDF)."""
    rows = []
    if "model_sha256" in prov:
        rows.append(("Model SHA-256", prov.get("model_sha256") or "not recorded"))
    if prov.get("run_dir"):
        rows.append(("Run folder", str(prov["run_dir"])))
    if "config" in prov:
        rows.append(("Config SHA-256", f"{prov['config'].get('sha256')} ({prov['config'].get('path', 'dict')})"))
    if "data" in prov:
        rows.append(("Data fingerprint", f"{prov['data']['fingerprint']} ({prov['data']['n_files']} files)"))
    pk = prov.get("packages") or {}
    if pk:
        rows.append(("Packages", ", ".join(f"{k} {v}" for k, v in pk.items())))
    if prov.get("python"):
        rows.append(("Python", f"{prov['python']} on {prov.get('platform', '?')}"))
    return rows


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
    spreads = [rating_spreads(r.probabilities) for r in rows]
    return SessionSeries(
        t=np.asarray([r.t for r in rows], dtype=float),
        ratings=ratings,
        quadrant=quadrant,
        confidence=np.asarray([r.confidence for r in rows], dtype=float),
        modalities_used=[r.modalities_used for r in rows],
        model_labels=[r.model_label for r in rows],
        spread={k: np.asarray([sp.get(k, np.nan) if getattr(r, k) is not None else np.nan
                               for r, sp in zip(rows, spreads)], dtype=float) for k in RATING_COLUMNS},
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


def dropped_mask(series: SessionSeries) -> np.ndarray:
    """Boolean per prediction: it lacks a modality that another prediction of the session used.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    seen = {m for used in series.modalities_used for m in used}
    return np.asarray([bool(seen - set(used)) for used in series.modalities_used], dtype=bool)


def low_confidence_mask(series: SessionSeries, low_conf: float = LOW_CONFIDENCE) -> np.ndarray:
    """Boolean per prediction: confidence below ``low_conf``."""
    return np.asarray(series.confidence < low_conf, dtype=bool)


def median_hop(t: np.ndarray) -> float:
    """Median interval between predictions (s); 1.0 with fewer than two."""
    if t.size < 2:
        return 1.0
    hop = float(np.median(np.diff(t)))
    return hop if hop > 0 else 1.0


def flag_spans(t: np.ndarray, mask: np.ndarray, *, hop: float | None = None) -> list[tuple[float, float]]:
    """Stretches of stream time covered by consecutive flagged predictions.

    Each flagged prediction at ``t_i`` covers ``[t_i - hop/2, t_i + hop/2]`` (clipped at 0);
    flagged predictions next to each other (no unflagged prediction between them, and no
    gap longer than :data:`GAP_FACTOR` hops) form one stretch.

    Parameters
    ----------
    t : ndarray, shape (n,)
        Prediction times (s), increasing.
    mask : ndarray of bool, shape (n,)
    hop : float, optional
        Default: the median interval of ``t``.

    Returns
    -------
    list of (start, end) in seconds, in time order
    """
    t = np.asarray(t, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    hop = median_hop(t) if hop is None else float(hop)
    spans: list[tuple[float, float]] = []
    run_start = None
    for i in range(t.size):
        if not mask[i]:
            run_start = None
            continue
        joined = run_start is not None and t[i] - t[i - 1] <= GAP_FACTOR * hop
        if joined:
            spans[-1] = (spans[-1][0], float(t[i] + hop / 2))
        else:
            spans.append((max(float(t[i] - hop / 2), 0.0), float(t[i] + hop / 2)))
        run_start = i
    return spans


def quality_notes(
    series: SessionSeries, quality_rows: Sequence[QualityRow], *, low_conf: float = LOW_CONFIDENCE,
    absent: Sequence[str] = (),
) -> QualityNotes:
    """Summarise dropped modalities, quality flags, hops without a prediction, gaps and
    low-confidence predictions.

    A modality counts as dropped from a prediction when it was used in some prediction of
    the session but not in this one. ``absent``: modalities the recording lacked (never
    used, so never counted as dropped).
    """
    n = len(series)
    seen = sorted({m for used in series.modalities_used for m in used})
    dropped = {m: sum(1 for used in series.modalities_used if m not in used) for m in seen}
    flags = Counter((r.modality, r.flag) for r in quality_rows)
    n_none = sum(c for (_, flag), c in flags.items() if flag == NO_PREDICTION)
    gaps: list[tuple[float, float]] = []
    if n >= 3:
        dt = np.diff(series.t)
        hop = float(np.median(dt))
        if hop > 0:
            idx = np.flatnonzero(dt > GAP_FACTOR * hop)
            gaps = [(float(series.t[i]), float(series.t[i + 1])) for i in idx]
    n_low = int(np.sum(series.confidence < low_conf))
    absent = tuple(m for m in absent if m not in seen)
    notes = []
    for m in absent:
        notes.append(f"{m}: absent from the recording; no prediction used it.")
    for m in seen:
        if dropped[m]:
            notes.append(f"{m}: left out of {dropped[m]} of {n} predictions ({fmt_pct(dropped[m] / n)}).")
        else:
            notes.append(f"{m}: used in every prediction.")
    if n_none:
        notes.append(f"{n_none} hop{'s' if n_none != 1 else ''} had no prediction at all (every modality "
                     "left out).")
    for (mod, flag), c in sorted(flags.items()):
        if flag != NO_PREDICTION:
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
        notes.append(f"{n_low} of {n} predictions ({fmt_pct(n_low / n)}) had confidence below {low_conf:g}.")
    return QualityNotes(n, dropped, dict(flags), gaps, n_low, notes, n_none, absent, low_conf)


# --- the plain summary -------------------------------------------------------------------


def rating_level(x: float, rule=QUADRANT_RULE) -> str:
    """Where a rating (1-9) lies, in words that agree with ``rule`` (the quadrant rule).

    ``x`` is judged as printed (one decimal). Inside ``[threshold - band, threshold + band]``
    it is "in the neutral range 4-6" and above, at or below the threshold; outside, "high"
    or "low" (or "just above / below the neutral range" within :data:`NEAR_EDGE` of it).
    """
    if x is None or not np.isfinite(x):
        return "unknown"
    x = round(float(x), 1)
    thr, band = rule.threshold, rule.neutral_band
    lo, hi = thr - band, thr + band
    rng = f"the neutral range {lo:g}-{hi:g}"
    if x > hi:
        return f"just above {rng}" if x <= hi + NEAR_EDGE else f"high, above {rng}"
    if x < lo:
        return f"just below {rng}" if x >= lo - NEAR_EDGE else f"low, below {rng}"
    if x > thr:
        return f"in {rng}, above {thr:g}"
    if x < thr:
        return f"in {rng}, below {thr:g}"
    return f"in {rng}, at {thr:g}"


def _listed(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _examples(q: str) -> str:
    """The example words of a quadrant's description (``"sad, tired"``), or ``""``."""
    d = QUADRANT_DESCRIPTIONS[q]
    return d.split("(e.g. ", 1)[1].rstrip(")") if "(e.g. " in d else ""


def confidence_sentence(n: int, n_low: int, low_conf: float = LOW_CONFIDENCE) -> str:
    """How many predictions were low-confidence, and what that means for the rest."""
    share = fmt_pct(n_low / n) if n else "0 %"
    if n_low == n:
        return (f"All {n} predictions had confidence below {low_conf:g}: the estimates are weak, so read "
                "the levels and quadrants below as uncertain leanings, not findings.")
    if 2 * n_low > n:
        return (f"{n_low} of {n} predictions ({share}) had confidence below {low_conf:g}: most estimates "
                "are weak, so read the levels and quadrants below as uncertain leanings, not findings.")
    if n_low:
        return f"{n_low} of {n} predictions ({share}) had confidence below {low_conf:g}."
    return f"Every prediction had confidence of at least {low_conf:g}."


def quadrant_counts(quadrants: Sequence[str | None]) -> dict[str, int]:
    """Predictions per code of :data:`symaffect.spec.QUADRANT_CODES` (None left out), in order."""
    counts = Counter(q for q in quadrants if q is not None)
    return {q: int(counts[q]) for q in QUADRANT_CODES}


def quadrant_sentences(series: SessionSeries, weak: bool = False) -> list[str]:
    """Where the model placed the listener, consistent with the level words of the means.

    The most frequent code with its share (and the others); for a quadrant Q1..Q4 the mean
    valence and arousal of its predictions in the words of :func:`rating_level`, and, when
    they lie within :data:`NEAR_EDGE` of the neutral range on both scales, that this is a
    slight lean rather than a clear state; when the session means fall in another code
    than the most frequent one, that too.
    """
    counts = quadrant_counts(series.quadrant)
    n = sum(counts.values())
    if not n:
        return []
    top = max(QUADRANT_CODES, key=lambda q: counts[q])
    others = [f"{q} {fmt_pct(counts[q] / n)}" for q in QUADRANT_CODES if q != top and counts[q]]
    lead = "With low confidence, the model" if weak else "The model"
    how = "placed" if 2 * counts[top] > n else "most often placed"
    out = [f"{lead} {how} the listener in {top} — {QUADRANT_DESCRIPTIONS[top]} — in {counts[top]} of {n} "
           f"predictions ({fmt_pct(counts[top] / n)})" + (f"; {', '.join(others)}." if others else ".")]
    v, a = series.ratings["valence"], series.ratings["arousal"]
    mean_code = QUADRANT_RULE.code(_nanmean(v), _nanmean(a))
    if top != "Neutral":
        idx = np.asarray([q == top for q in series.quadrant])
        qv, qa = _nanmean(v[idx]), _nanmean(a[idx])
        if np.isfinite(qv) and np.isfinite(qa):
            thr, band = QUADRANT_RULE.threshold, QUADRANT_RULE.neutral_band
            near = abs(qv - thr) <= band + NEAR_EDGE and abs(qa - thr) <= band + NEAR_EDGE
            line = (f"Those {top} predictions averaged valence {qv:.1f} ({rating_level(qv)}) and arousal "
                    f"{qa:.1f} ({rating_level(qa)})")
            if near:
                ex = _examples(top)
                line += (" — close to the middle of both scales, so this is a slight lean, not a clear state"
                         + (f" such as “{ex}”" if ex else ""))
            out.append(line + ".")
    if mean_code is not None and mean_code != top:
        where = "in the Neutral box" if mean_code == "Neutral" else f"in {mean_code}"
        out.append(f"The session means lie {where}, but only {fmt_pct(counts[mean_code] / n)} of the single "
                   f"predictions did: the means average over predictions on different sides of the boundaries.")
    return out


def left_out_phrase(quality: QualityNotes) -> str:
    """``"EEG was left out of 8 % of the predictions, peripheral of 8 %"`` for the modalities
    left out of any prediction; ``""`` when every modality was used in every prediction."""
    n = max(quality.n_predictions, 1)
    dropped = [(m, c) for m, c in quality.dropped.items() if c]
    if not dropped:
        return ""
    (m0, c0), rest = dropped[0], dropped[1:]
    return (f"{modality_label(m0)} was left out of {fmt_pct(c0 / n)} of the predictions"
            + "".join(f", {modality_label(m)} of {fmt_pct(c / n)}" for m, c in rest))


def quality_sentence(quality: QualityNotes) -> str:
    """Signal quality in one sentence, from the counts of :class:`QualityNotes`.

    "Good throughout" only when every modality was used in every prediction, no hop went
    without a prediction, there were no gaps and nothing was flagged.
    """
    parts = []
    dropped = left_out_phrase(quality)
    if dropped:
        parts.append(dropped)
    if quality.absent:
        names = _listed([modality_label(m) for m in quality.absent])
        parts.append(f"{names} {'was' if len(quality.absent) == 1 else 'were'} absent from the recording")
    k = quality.no_prediction
    if k:
        parts.append(f"{k} hop{'s' if k != 1 else ''} had no prediction at all")
    g = quality.gaps
    if g:
        parts.append(f"{len(g)} gap{'s' if len(g) != 1 else ''} without predictions "
                     f"({fmt_dur(sum(b - a for a, b in g))})")
    n_flags = sum(c for (_, flag), c in quality.flags.items() if flag != NO_PREDICTION)
    if not parts and not n_flags:
        return "Signal quality was good throughout: every modality was used in every prediction and nothing was flagged."
    if n_flags:
        parts.append(f"the signals were flagged {n_flags} time{'s' if n_flags != 1 else ''}")
    if not dropped and not quality.absent:
        parts.insert(0, "every modality was used in every prediction")
    return "Signal quality had problems: " + "; ".join(parts) + " — see Signal quality."


def plain_summary(
    series: SessionSeries, baseline: Baseline | None, summaries: Sequence[SegmentSummary],
    shares: Mapping[str, float], quality: QualityNotes, duration_s: float,
) -> list[str]:
    """Plain sentences for the top of the report, each from the counts the report's
    sections show: confidence first, then the mean levels (words of :func:`rating_level`),
    the quadrants, the largest change from baseline, and signal quality."""
    if len(series) == 0:
        out = ["No predictions were stored for this session."]
        if quality.no_prediction:
            out.append(quality_sentence(quality))
        return out
    n = len(series)
    weak = 2 * quality.low_confidence > n
    out = [confidence_sentence(n, quality.low_confidence, quality.low_confidence_threshold)]
    means = {k: _nanmean(v) for k, v in series.ratings.items()}
    parts = [f"{k} {m:.1f} ({rating_level(m)})" for k, m in means.items() if np.isfinite(m)]
    if parts:
        what = "uncertain mean estimates" if weak else "mean estimates"
        out.append(f"Over {fmt_dur(duration_s)} of stream time ({n} predictions), the model's {what} on the "
                   f"1-9 scales were {_listed(parts)}.")
    if any(shares.values()):
        out += quadrant_sentences(series, weak)
    tasks = [k for k in RATING_COLUMNS if np.isfinite(means[k])]
    valid = [s for s in summaries if s.n > 0 and any(np.isfinite(s.changes[k]) for k in tasks)]
    if valid and baseline is not None:
        def biggest(s: SegmentSummary) -> float:
            return max(abs(s.changes[k]) if np.isfinite(s.changes[k]) else -1.0 for k in tasks)

        best = max(valid, key=biggest)
        k = max(tasks, key=lambda k: abs(best.changes[k]) if np.isfinite(best.changes[k]) else -1.0)
        d = best.changes[k]
        if abs(d) < NOISE_POINTS:
            out.append(f"All segment changes from baseline were under {NOISE_POINTS:g} points (the largest: {k} "
                       f"{fmt_num(d, signed=True)} during “{best.segment.track}”): treat them as no clear change.")
        else:
            out.append(
                f"The largest change from baseline was during “{best.segment.track}”: "
                f"{k} {'rose' if d > 0 else 'fell'} by {abs(d):.1f} points"
                + (" (uncertain: most predictions were low-confidence)." if weak else ".")
            )
    elif not summaries:
        out.append("No music segments were marked, so no per-segment comparison is possible.")
    out.append(quality_sentence(quality))
    return out


def stream_duration(series: SessionSeries, quality_rows: Sequence[QualityRow] = ()) -> float:
    """Stream time covered by a session (s): the time of its last stored hop, a prediction or
    a quality row (e.g. a hop without a prediction); 0 without either. Never wall-clock
    time; the same as the store's ``SessionRow.stream_seconds``."""
    last = float(series.t[-1]) if len(series) else 0.0
    return max([last, 0.0, *(float(r.t) for r in quality_rows)])


def replay_speed(session: SessionRow) -> float | None:
    """The session meta's ``replay_speed`` as a positive float, else None."""
    try:
        speed = float(session.meta.get("replay_speed"))
    except (TypeError, ValueError):
        return None
    return speed if np.isfinite(speed) and speed > 0 else None


def wall_clock_length(session: SessionRow, stream_s: float) -> float | None:
    """Wall-clock length of a session replayed at a speed other than 1 (None otherwise):
    end minus start of an ended session, else the stream time divided by the speed."""
    speed = replay_speed(session)
    if speed is None or speed == 1.0:
        return None
    if session.ended_at is not None:
        return max(float(session.ended_at - session.started_at), 0.0)
    return stream_s / speed


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
    absent = session.meta.get("absent_modalities") or () if isinstance(session.meta, Mapping) else ()
    qual = quality_notes(series, quality, absent=[str(m) for m in absent])
    duration = stream_duration(series, quality)
    summary = plain_summary(series, baseline, summaries, shares, qual, duration)
    models = describe_models(series.t, series.model_labels)
    n_rated = sum(1 for s in summaries if s.own)
    summary += model_sentences(series, summaries, n_rated)
    return ReportData(session, series, segs, baseline, summaries, shares, qual, duration, summary, models, n_rated,
                      wall_clock_length(session, duration), replay_speed(session), session_provenance(session))


def session_counts(data: ReportData) -> dict:
    """The counts behind the report's summary, as JSON-able values (the live view shows these).

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    dict
        ``n_predictions``; ``n_no_prediction`` (hops without any prediction);
        ``stream_seconds`` (the report's duration, stream time); ``wall_seconds`` and
        ``replay_speed`` (None unless replayed at a speed other than 1); ``dropped``
        {modality: predictions it was left out of} and ``dropped_share`` {modality:
        fraction of the predictions}; ``absent_modalities``; ``flags`` {"modality:flag":
        count}; ``gaps`` [[start, end], ...]; ``low_confidence`` (count) and
        ``low_confidence_threshold``; ``quadrant_counts`` and ``quadrant_shares`` by code of
        :data:`symaffect.spec.QUADRANT_CODES`; ``baseline`` {start, end, rule} or None;
        ``summary``: the report's summary sentences; ``confidence_explained``.
    """
    q = data.quality
    n = len(data.series)
    b = data.baseline
    return {
        "n_predictions": n,
        "n_no_prediction": int(q.no_prediction),
        "stream_seconds": float(data.duration_s),
        "wall_seconds": None if data.wall_s is None else float(data.wall_s),
        "replay_speed": data.replay_speed,
        "dropped": {m: int(c) for m, c in q.dropped.items()},
        "dropped_share": {m: (c / n if n else 0.0) for m, c in q.dropped.items()},
        "absent_modalities": list(q.absent),
        "flags": {f"{m}:{f}": int(c) for (m, f), c in sorted(q.flags.items())},
        "gaps": [[float(a), float(z)] for a, z in q.gaps],
        "low_confidence": int(q.low_confidence),
        "low_confidence_threshold": float(q.low_confidence_threshold),
        "quadrant_counts": quadrant_counts(data.series.quadrant),
        "quadrant_shares": {k: float(v) for k, v in data.quadrant_shares.items()},
        "baseline": None if b is None else {"start": float(b.start), "end": float(b.end), "rule": b.rule},
        "summary": list(data.summary),
        "confidence_explained": CONFIDENCE_EXPLAINED,
    }


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
