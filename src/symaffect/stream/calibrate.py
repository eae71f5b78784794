"""Live calibration: fit a listener's calibration from the segments they rated in a session.

During a session the therapist enters the listener's own valence / arousal / liking (1-9)
for a music segment once it has ended (:meth:`SessionStore.rate_segment`). Once at least
:data:`MIN_RATED_SEGMENTS` segments are rated, :func:`calibrate_session` fits a
:class:`~symaffect.models.calibration.Calibration` from the session's stored hops, stores
it under the listener's pseudonym and activates it for the session; the live session
(:class:`~symaffect.stream.session.LiveSession`) picks it up at its next hop.

What the fit sees
-----------------
* **Windows of a rated segment**: the stored hops with ``start <= t <= end`` (``t`` is the
  stream time of a window's last sample; an open segment of an ended session runs to the
  last hop), each with its stored fused embedding ``z``; the segment id is its track, so
  every segment weighs the same whatever its number of hops.
* **Targets**: the segment's ratings through the label rules of the model's task set
  (:data:`symaffect.data.labels.PRESETS`), dominance 5. A task whose ratings were not all
  given for a segment (valence for ``binary_valence``; valence and arousal for a quadrant
  task) leaves that segment out of that task's fit; a task no rated segment informs keeps
  its base head (re-centred only).
* **Re-centring**: onto the training population's mean embedding (``model.pt``
  ``extra["embedding_mean"]``) from the mean of *all* the session's stored hops. A model
  saved without that mean is re-centred onto the session's own mean (shift 0), which is
  logged.

The method is :data:`LIVE_METHOD` (``"threshold"``: the heads' biases refitted with each
rated class weighing the same, weights kept; see :mod:`symaffect.models.calibration`),
the one that is safe with a handful of rated segments.
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symaffect._io import read_text
from symaffect.data.labels import PRESETS
from symaffect.errors import DataError
from symaffect.models.calibration import (
    Calibration,
    base_heads,
    describe,
    fit_calibration,
    save_calibration,
)
from symaffect.spec import LABEL_COLUMNS, RATING_COLUMNS, TASK_SETS
from symaffect.stream.lsl import read_markers_csv
from symaffect.stream.pipeline import Predictor, run_recording
from symaffect.stream.recording import Recording
from symaffect.stream.store import (
    RATINGS,
    SegmentRatingRow,
    SegmentRow,
    SessionRow,
    SessionStore,
)

log = logging.getLogger(__name__)

MIN_RATED_SEGMENTS = 2
"""Fewest rated segments a live calibration is fitted from."""
LIVE_METHOD = "threshold"
"""The method of a live calibration (``models.calibration``: biases only, anchored)."""
LIVE_METHODS = ("threshold", "bias", "heads", "pooled")
"""Methods a live calibration may use (all need rated segments; ``pooled`` also the
model's calibration pool)."""
DOMINANCE = 5.0
"""Dominance is not asked for: the middle of the scale."""


@dataclass(frozen=True)
class SessionCalibration:
    """A calibration fitted from a session's rated segments.

    Attributes
    ----------
    calibration : Calibration
    calibration_id : int or None
        Its id in the store (None when not stored).
    label : str
        ``describe(calibration)``, e.g. ``"calibrated (bias, K = 3)"``.
    segments : tuple of int
        The rated segments it was fitted on.
    n_windows : int
        Stored hops inside those segments.
    n_unlabelled : int
        Stored hops of the whole session (the re-centring pool).
    tasks : tuple of str
        Tasks whose heads were refitted (the others keep their base head, re-centred).
    recentred_on : {"population", "session"}
        The training population's mean embedding, or (a model without one) the session's own.
    seconds : float
        Time the fit took.
    """

    calibration: Calibration
    calibration_id: int | None
    label: str
    segments: tuple[int, ...]
    n_windows: int
    n_unlabelled: int
    tasks: tuple[str, ...]
    recentred_on: str
    seconds: float

    def to_dict(self) -> dict:
        """Plain JSON-able summary (no weights)."""
        return {
            "calibration_id": self.calibration_id, "label": self.label, "method": self.calibration.method,
            "k": self.calibration.k, "segments": list(self.segments), "n_windows": self.n_windows,
            "n_unlabelled": self.n_unlabelled, "tasks": list(self.tasks), "recentred_on": self.recentred_on,
            "seconds": round(self.seconds, 3),
        }


def task_columns(task_set: str) -> dict[str, tuple[str, ...]]:
    """The rating columns each task of a task set reads.

    Parameters
    ----------
    task_set : str
        A key of :data:`symaffect.spec.TASK_SETS`.

    Returns
    -------
    dict of str to tuple of str
        E.g. ``{"valence": ("valence",)}`` or ``{"quadrant": ("valence", "arousal")}``.
    """
    if task_set not in TASK_SETS:
        raise DataError("task_set", f"{task_set!r} is not one of {tuple(TASK_SETS)}")
    out = {}
    for t in TASK_SETS[task_set].tasks:
        out[t.name] = (t.column,) if t.rule in ("nine_class", "binary") else ("valence", "arousal")
    return out


def segment_targets(task_set: str, rating: SegmentRatingRow) -> dict[str, np.ndarray]:
    """The targets of one rated segment for every task its ratings inform.

    Parameters
    ----------
    task_set : str
    rating : SegmentRatingRow

    Returns
    -------
    dict of str to ndarray
        Per task, the target of the segment (a class id, shape (), or a multi-hot vector,
        shape (n_classes,)); tasks whose ratings were not given are absent.
    """
    given = rating.given()
    row = np.full((1, len(LABEL_COLUMNS)), DOMINANCE)
    for k, v in given.items():
        row[0, LABEL_COLUMNS.index(k)] = v
    rules = PRESETS[task_set]
    return {task: rules[task](row)[0] for task, cols in task_columns(task_set).items()
            if all(c in given for c in cols)}


def rated_windows(
    segments: Sequence[SegmentRow], t: np.ndarray
) -> dict[int, np.ndarray]:
    """The hops inside each segment.

    Parameters
    ----------
    segments : sequence of SegmentRow
    t : ndarray, shape (n,)
        Stream time of each hop (s).

    Returns
    -------
    dict of int to ndarray of int
        Per segment id, the indices of the hops with ``start <= t <= end`` (an open
        segment runs to the last hop).
    """
    out = {}
    for seg in segments:
        end = np.inf if seg.end is None else seg.end
        out[seg.id] = np.flatnonzero((t >= seg.start) & (t <= end))
    return out


def fit_session_calibration(
    store: SessionStore, session_id: int, predictor: Predictor, *, method: str = LIVE_METHOD,
) -> SessionCalibration:
    """Fit the listener's calibration from the session's rated segments (nothing is stored).

    Parameters
    ----------
    store : SessionStore
    session_id : int
    predictor : Predictor
        The session's model (its base heads, task set and population mean embedding).
    method : {"threshold", "bias", "heads", "pooled"}

    Returns
    -------
    SessionCalibration
        With ``calibration_id`` None.

    Raises
    ------
    DataError
        One line: fewer than :data:`MIN_RATED_SEGMENTS` rated segments (or rated segments
        with stored hops), no stored embeddings, a model that cannot be calibrated, or
        ratings that inform none of the model's tasks.
    """
    t0 = time.perf_counter()
    if method not in LIVE_METHODS:
        raise DataError("method", f"{method!r} is not one of {LIVE_METHODS}")
    session = store.session(session_id)
    ratings = store.segment_ratings(session_id)
    if len(ratings) < MIN_RATED_SEGMENTS:
        raise DataError(None, f"calibration needs at least {MIN_RATED_SEGMENTS} rated segments, "
                              f"{len(ratings)} so far")
    if not predictor.can_embed:
        raise DataError("model", f"{predictor.name} has no fused embedding and linear heads; "
                                 "it cannot be calibrated")
    task_set = predictor.task_set
    if task_set is None:
        raise DataError("model", "does not say its task set; it cannot be calibrated")
    emb = store.embeddings(session_id)
    if len(emb) == 0:
        raise DataError(None, f"session {session_id} has no stored embeddings (its predictions were "
                              "stored without them): it cannot be calibrated")
    if emb.z.shape[1] != predictor.embedding_dim:
        raise DataError(None, f"session {session_id}'s embeddings have {emb.z.shape[1]} dimensions, "
                              f"the model's {predictor.embedding_dim}: another model made them")
    segments = {s.id: s for s in store.segments(session_id)}
    rated = [r for r in ratings if r.segment_id in segments]
    inside = rated_windows([segments[r.segment_id] for r in rated], emb.t)
    with_hops = [r for r in rated if inside[r.segment_id].size]
    if len(with_hops) < MIN_RATED_SEGMENTS:
        raise DataError(None, f"calibration needs at least {MIN_RATED_SEGMENTS} rated segments with stored "
                              f"predictions, {len(with_hops)} so far")

    targets = {r.segment_id: segment_targets(task_set, r) for r in with_hops}
    base = base_heads(predictor.model)
    # tasks grouped by the rated segments that inform them: one fit per group
    groups: dict[tuple[int, ...], list[str]] = {}
    for task in base:
        segs = tuple(sid for sid in targets if task in targets[sid])
        if segs:
            groups.setdefault(segs, []).append(task)
    if not groups:
        given = sorted({k for r in with_hops for k in r.given()})
        raise DataError(None, f"the ratings given ({', '.join(given)}) inform none of the model's tasks "
                              f"({', '.join(base)})")

    unlabelled = emb.z.astype(np.float64)
    pop = predictor.population_mean
    recentred_on = "population"
    if pop is None:
        recentred_on = "session"
        pop = unlabelled.mean(axis=0)
        log.info("model %s has no embedding_mean (trained before it was stored): re-centring onto the "
                 "session's own mean embedding (shift 0)", predictor.base_path)
    multilabel = predictor.task_kind == "multilabel"
    pool = predictor.calibration_pool if method == "pooled" else None
    heads = dict(base)
    shift = None
    used: set[int] = set()
    for segs, tasks in groups.items():
        idx = [inside[sid] for sid in segs]
        z = np.concatenate([unlabelled[i] for i in idx])
        tracks = np.concatenate([np.full(i.size, sid) for sid, i in zip(segs, idx)])
        y = {task: np.concatenate([np.repeat(targets[sid][task][None], i.size, axis=0) for sid, i in zip(segs, idx)])
             for task in tasks}
        part = fit_calibration(method, {t: base[t] for t in tasks}, pop, unlabelled=unlabelled, z=z, y=y,
                               tracks=[str(x) for x in tracks], multilabel=multilabel,
                               listener=session.participant, pool=pool)
        heads.update(part.heads)
        shift = part.shift
        used.update(segs)
    order = [r.segment_id for r in with_hops if r.segment_id in used]
    n_windows = int(sum(inside[sid].size for sid in order))
    cal = Calibration(method=method, k=len(order), shift=shift, heads={t: heads[t] for t in base},
                      listener=session.participant, tracks=tuple(str(sid) for sid in order))
    seconds = time.perf_counter() - t0
    refitted = tuple(t for tasks in groups.values() for t in tasks)
    log.info("session %d: fitted %s for %s from %d hops of %d rated segments (tasks %s; re-centred on the %s "
             "mean) in %.2f s", session_id, describe(cal), session.participant, n_windows, len(order),
             ", ".join(refitted), recentred_on, seconds)
    return SessionCalibration(cal, None, describe(cal), tuple(order), n_windows, len(emb), refitted,
                              recentred_on, seconds)


def calibrate_session(
    store: SessionStore, session_id: int, predictor: Predictor, *, method: str = LIVE_METHOD,
    activate: bool = True,
) -> SessionCalibration:
    """Fit the listener's calibration from the session's rated segments, store it under
    their pseudonym and (``activate``) make it the session's model from its next hop.

    Parameters
    ----------
    store : SessionStore
    session_id : int
    predictor : Predictor
        The session's model.
    method : {"threshold", "bias", "heads", "pooled"}
    activate : bool

    Returns
    -------
    SessionCalibration
        With the stored ``calibration_id``.

    Raises
    ------
    DataError
        See :func:`fit_session_calibration`; nothing is stored then.
    """
    t0 = time.perf_counter()
    fit = fit_session_calibration(store, session_id, predictor, method=method)
    session = store.session(session_id)
    cid = store.add_calibration(
        session.participant, fit.calibration.to_dict(), method=fit.calibration.method, k=fit.calibration.k,
        label=fit.label, session_id=session_id, base_model=str(predictor.base_path),
        base_digest=predictor.digest, activate=activate,
    )
    seconds = time.perf_counter() - t0
    log.info("session %d: stored calibration %d (%s) for %s%s in %.2f s", session_id, cid, fit.label,
             session.participant, ", active from the next hop" if activate else "", seconds)
    return SessionCalibration(fit.calibration, cid, fit.label, fit.segments, fit.n_windows, fit.n_unlabelled,
                              fit.tasks, fit.recentred_on, seconds)


def session_model_path(session: SessionRow) -> Path:
    """The checkpoint (or run folder) a session's predictions came from.

    Parameters
    ----------
    session : SessionRow

    Returns
    -------
    Path
        ``meta["model_path"]`` (absolute, written by :class:`LiveSession`), else the
        session's ``run_dir``.

    Raises
    ------
    DataError
        Neither names an existing file or folder on this machine.
    """
    meta: Mapping = session.meta or {}
    for cand in (meta.get("model_path"), session.run_dir):
        if isinstance(cand, str) and cand and Path(cand).exists():
            return Path(cand)
    shown = meta.get("model_path") or session.run_dir
    raise DataError(None, f"session {session.id}'s model ({shown!r}) is not on this machine: "
                          "calibration needs it")


def check_session_calibration(session: SessionRow, calibration_digest: str | None,
                              predictor: Predictor | None = None, calibration: Calibration | None = None) -> None:
    """Check that a stored calibration fits a session's model.

    Parameters
    ----------
    session : SessionRow
        Its ``meta["model_sha256"]`` names the session's model when ``predictor`` is None.
    calibration_digest : str or None
        SHA-256 of the model the calibration was fitted on (``CalibrationRow.base_digest``).
    predictor : Predictor, optional
        The session's model, when it is on this machine.
    calibration : Calibration, optional
        Checked against ``predictor``'s tasks and shapes.

    Raises
    ------
    DataError
        One line: another base model (when both digests are known), or other tasks or
        shapes.
    """
    digest = (session.meta or {}).get("model_sha256")
    if predictor is not None:
        digest = predictor.digest
    if digest and calibration_digest and digest != calibration_digest:
        raise DataError("calibration", "it was fitted on another model than this session's")
    if predictor is not None and calibration is not None:
        predictor.check_calibration(calibration)


__all__ = [
    "LIVE_METHOD",
    "LIVE_METHODS",
    "MIN_RATED_SEGMENTS",
    "RATINGS",
    "SessionCalibration",
    "calibrate_session",
    "check_session_calibration",
    "fit_session_calibration",
    "rated_windows",
    "segment_targets",
    "session_model_path",
    "task_columns",
]


RATING_FILE_COLUMNS = ("track", "start", "end", *RATING_COLUMNS)
"""Columns of a ratings file for :func:`calibrate_recording` (``end`` and any rating may be empty)."""


def read_ratings_csv(path: str | Path) -> list[tuple[str, float, float | None, dict[str, float]]]:
    """Rated music segments of a recording: a CSV with header
    ``track,start,end,valence,arousal,liking`` (seconds from the recording's start; ratings
    1-9, any subset per row).

    Raises
    ------
    DataError
        Naming the file and line: the segment columns as :func:`~symaffect.stream.lsl.
        read_markers_csv` checks them, a rating that is not a number, or a row without
        any rating.
    """
    path = Path(path)
    segments = read_markers_csv(path)
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    out = []
    for (track, start, end), row in zip(segments, reader):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}
        given = {}
        for k in RATING_COLUMNS:
            if row.get(k):
                try:
                    given[k] = float(row[k])
                except ValueError:
                    raise DataError(path, f"line {reader.line_num}: {k} {row[k]!r} is not a number") from None
        if not given:
            raise DataError(path, f"line {reader.line_num}: no rating ({', '.join(RATING_COLUMNS)})")
        out.append((track, start, end, given))
    return out


def calibrate_recording(
    run: str | Path,
    recording: Recording,
    ratings: str | Path,
    *,
    participant: str = "listener",
    method: str = LIVE_METHOD,
    out: str | Path | None = None,
    hop: float = 1.0,
) -> tuple[Path, SessionCalibration]:
    """Calibrate a run's model to the listener of a recording with their ratings file.

    The recording is predicted hop by hop into a temporary session store (real SQLite,
    deleted afterwards), its rated segments are added with their ratings, and the same
    fit as a live session's (:func:`fit_session_calibration`) makes the calibration.

    Parameters
    ----------
    run : path
        Run folder or checkpoint.
    recording : Recording
    ratings : path
        CSV of :func:`read_ratings_csv`.
    participant : str
        The listener's pseudonym (stored in the file).
    method : {"threshold", "bias", "heads", "pooled"}
    out : path, optional
        Default ``<run folder>/calibrations/<participant>-<method>-k<K>.json``.

    Returns
    -------
    path : Path
        The calibration file (it points to the run's model; ``predict``, ``stream`` and
        ``serve`` take it like a run).
    fit : SessionCalibration
    """
    predictor = Predictor(run)
    rated = read_ratings_csv(ratings)
    with tempfile.TemporaryDirectory(prefix="symaffect-calibrate-") as tmp:
        with SessionStore(Path(tmp) / "calibration.db") as store:
            sid = store.create_session(participant, predictor.name, run_dir=str(run))
            for h in run_recording(predictor, recording, hop=hop):
                if h.prediction is not None:
                    store.add_prediction(sid, h.prediction)
            for track, start, end, given in rated:
                seg = store.add_segment(sid, track, start, end, source="api")
                store.rate_segment(sid, seg, **given)
            store.end_session(sid)
            fit = fit_session_calibration(store, sid, predictor, method=method)
    base = predictor.base_path
    folder = base.parent
    path = Path(out) if out is not None else folder / "calibrations" / f"{_slug(participant)}-{method}-k{fit.calibration.k}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_calibration(path, fit.calibration, base=base)
    return path, fit


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:64] or "listener"
