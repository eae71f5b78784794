"""One prediction per hop: class probabilities, expected ratings, quadrant, confidence.

This module is import-light (numpy only) so that :mod:`symaffect.stream.store` and the
dashboard can use :class:`Prediction` without importing torch; pandas is imported only by
:func:`predictions_frame`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symaffect.extras import require
from symaffect.spec import QUADRANT_RULE, RATING_COLUMNS, quadrant_of


def expected_rating(probs: Sequence[float]) -> float:
    """Expected rating of a 9-class ordinal distribution: ``sum_k p_k (k + 1)`` in [1, 9].

    For a task with ``n != 9`` classes the classes are mapped linearly onto [1, 9]
    (binary: class 0 -> 1, class 1 -> 9).
    """
    p = np.asarray(probs, dtype=np.float64)
    n = p.size
    if n == 9:
        ratings = np.arange(1, 10, dtype=np.float64)
    else:
        ratings = np.linspace(1.0, 9.0, n) if n > 1 else np.array([5.0])
    return float(np.dot(p, ratings) / max(p.sum(), 1e-12))


def rating_spread(probs: Sequence[float]) -> float:
    """Standard deviation of the rating under a class distribution (same scale as
    :func:`expected_rating`): the width of the band drawn around a trajectory.

    0 when the model puts all its probability on one class; 2.58 for a uniform 9-class
    distribution; up to 4 for half on 1 and half on 9.
    """
    p = np.asarray(probs, dtype=np.float64)
    n = p.size
    ratings = np.arange(1, 10, dtype=np.float64) if n == 9 else (np.linspace(1.0, 9.0, n) if n > 1 else np.array([5.0]))
    w = p / max(p.sum(), 1e-12)
    mu = float(np.dot(w, ratings))
    return float(np.sqrt(max(float(np.dot(w, (ratings - mu) ** 2)), 0.0)))


def rating_spreads(probabilities: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """:func:`rating_spread` of each rating task of :data:`symaffect.spec.RATING_COLUMNS` present."""
    return {k: rating_spread(p) for k, p in probabilities.items() if k in RATING_COLUMNS}


@dataclass
class Prediction:
    """The model's output for one window (one hop).

    Parameters
    ----------
    t : float
        Time of the last sample of the window, in seconds since the start of the
        recording / session (stream time, not wall-clock time).
    probabilities : dict of str to list of float
        Per-task class probabilities (``{"valence": [p_1, ..., p_9], ...}``).
    expected : dict of str to float
        Per-task expected rating in [1, 9] (see :func:`expected_rating`).
    quadrant : str or None
        ``"Q1"``..``"Q4"`` or ``"Neutral"``: :data:`symaffect.spec.QUADRANT_RULE` applied to
        the expected valence and arousal (the rule the training labels use), or the most
        probable class of a quadrant model; None if the model predicts neither.
    confidence : float
        In [0, 1]: mean over tasks of the rescaled top probability
        ``(max p - 1/n) / (1 - 1/n)`` (0 = uniform, 1 = certain), multiplied by the
        fraction of the model's modalities that were used (a prediction from one
        modality out of three counts one third).
    modalities_used : tuple of str
        Modalities given to the model for this window.
    flags : list of str
        Quality flags of this window, ``"modality:flag"`` (e.g. ``"eeg:flat"``).
    latency_ms : float or None
        Time from the window's last sample becoming available to the prediction
        (set by the streamer / storer; None offline).
    embedding : ndarray of float32, shape (D,), or None
        The fused embedding the heads read (``model.embed(x)``): the session store keeps
        it so that a listener's calibration can be fitted from stored hops. None for a
        model without one. Not part of :meth:`to_dict`.
    model_label : str or None
        Which model produced the prediction: ``"base model"`` or
        :func:`symaffect.models.calibration.describe` of the active calibration
        (``"calibrated (bias, K = 3)"``); None when unknown.
    calibration_id : int or None
        Session-store id of the calibration that produced it (None: none, or one loaded
        from a file).
    """

    t: float
    probabilities: dict[str, list[float]]
    expected: dict[str, float]
    quadrant: str | None
    confidence: float
    modalities_used: tuple[str, ...]
    flags: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    model_label: str | None = None
    calibration_id: int | None = None

    @classmethod
    def from_probabilities(
        cls,
        t: float,
        probabilities: Mapping[str, Sequence[float]],
        *,
        modalities_used: Sequence[str],
        n_modalities: int,
        flags: Sequence[str] = (),
        latency_ms: float | None = None,
        coverage: float | None = None,
        multilabel: bool = False,
        embedding: np.ndarray | None = None,
        model_label: str | None = None,
        calibration_id: int | None = None,
    ) -> Prediction:
        """Build a prediction (expected ratings, quadrant, confidence) from probabilities.

        Parameters
        ----------
        t : float
        probabilities : mapping of str to sequence of float, shape (n_classes,) each
        modalities_used : sequence of str
        n_modalities : int
            Number of modalities the model accepts (for the confidence penalty).
        flags : sequence of str
        latency_ms : float or None
        coverage : float or None
            Fraction of the model's input that was present (e.g. counting a modality
            with half its channels as one half); default
            ``len(modalities_used) / n_modalities``.
        multilabel : bool
            The ``"quadrant"`` outputs are independent (sigmoid) probabilities.
        embedding : ndarray, shape (D,), optional
        model_label : str, optional
        calibration_id : int, optional
            See the class docstring.
        """
        probs = {k: [float(v) for v in p] for k, p in probabilities.items()}
        expected = {k: expected_rating(p) for k, p in probs.items() if k in RATING_COLUMNS}
        quadrant = None
        if "valence" in expected and "arousal" in expected:
            quadrant = QUADRANT_RULE.code(expected["valence"], expected["arousal"])
        elif "quadrant" in probs:
            quadrant = quadrant_of(probs["quadrant"], multilabel=multilabel)
        tops = []
        for p in probs.values():
            n = len(p)
            tops.append((max(p) - 1.0 / n) / (1.0 - 1.0 / n) if n > 1 else 1.0)
        conf = float(np.clip(np.mean(tops), 0.0, 1.0)) if tops else 0.0
        if coverage is None:
            coverage = len(modalities_used) / max(n_modalities, 1)
        conf *= float(np.clip(coverage, 0.0, 1.0))
        return cls(
            t=float(t),
            probabilities=probs,
            expected=expected,
            quadrant=quadrant,
            confidence=conf,
            modalities_used=tuple(modalities_used),
            flags=list(flags),
            latency_ms=latency_ms,
            embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32).reshape(-1),
            model_label=model_label,
            calibration_id=None if calibration_id is None else int(calibration_id),
        )

    @property
    def valence(self) -> float | None:
        return self.expected.get("valence")

    @property
    def arousal(self) -> float | None:
        return self.expected.get("arousal")

    @property
    def liking(self) -> float | None:
        return self.expected.get("liking")

    def to_dict(self) -> dict:
        """Plain JSON-able dict (the same keys as :meth:`SessionStore.predictions` rows);
        ``spread`` is :func:`rating_spreads` (the rating's standard deviation per task)."""
        return {
            "t": self.t,
            "valence": self.valence,
            "arousal": self.arousal,
            "liking": self.liking,
            "quadrant": self.quadrant,
            "confidence": self.confidence,
            "modalities_used": list(self.modalities_used),
            "flags": list(self.flags),
            "latency_ms": self.latency_ms,
            "probabilities": self.probabilities,
            "spread": rating_spreads(self.probabilities),
        }

    def is_close(self, other: Prediction, *, atol: float = 1e-3) -> bool:
        """True if both have the same t, tasks and modalities and ratings within ``atol``."""
        if abs(self.t - other.t) > 1e-6 or self.modalities_used != other.modalities_used:
            return False
        if self.expected.keys() != other.expected.keys():
            return False
        return all(
            math.isclose(self.expected[k], other.expected[k], abs_tol=atol) for k in self.expected
        )


FRAME_COLUMNS = ("t", "valence", "arousal", "liking", "quadrant", "confidence")
"""The first columns of :func:`predictions_frame`; then ``spread_<task>``, ``modalities_used``,
``flags``, ``latency_ms``, ``model_label``, ``calibration_id`` and ``p_<task>_<k>``."""


def predictions_frame(preds: Sequence[Any]):
    """Predictions as a :class:`pandas.DataFrame`, one row per hop.

    Parameters
    ----------
    preds : sequence of Prediction or PredictionRow
        Anything with the attributes of :class:`Prediction` (``t``, ``valence``,
        ``arousal``, ``liking``, ``quadrant``, ``confidence``, ``modalities_used``,
        ``flags``, ``latency_ms``, ``probabilities``, ``model_label``,
        ``calibration_id``): the list :func:`symaffect.stream.pipeline.predict_recording`
        returns, or :meth:`symaffect.stream.store.SessionStore.predictions` rows.

    Returns
    -------
    pandas.DataFrame
        Columns, in order: ``t``, ``valence``, ``arousal``, ``liking`` (float64; NaN for a
        task the model does not predict), ``quadrant`` (string; missing when none),
        ``confidence`` (float64), ``spread_<task>`` per rating task (float64:
        :func:`rating_spread`), ``modalities_used`` (string, ``"eeg+peripheral"``),
        ``flags`` (string, ``"eeg:flat;peripheral:clipping"``, ``""`` when none; the CSV's
        encoding of both), ``latency_ms`` (float64), ``model_label`` (string),
        ``calibration_id`` (Int64, nullable) and ``p_<task>_<k>`` (float64, k from 1), the
        tasks in the model's order. Full precision (the CSV rounds to 6 decimals).

    Raises
    ------
    MissingExtra
        pandas is not installed.
    """
    pd = require("pandas", "a DataFrame of predictions")
    tasks: dict[str, int] = {}
    for p in preds:
        for task, probs in p.probabilities.items():
            tasks[task] = max(tasks.get(task, 0), len(probs))
    spread_tasks = [t for t in tasks if t in RATING_COLUMNS]
    cols: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    cols.update({f"spread_{t}": [] for t in spread_tasks})
    for c in ("modalities_used", "flags", "latency_ms", "model_label", "calibration_id"):
        cols[c] = []
    prob_cols = [(t, k) for t, n in tasks.items() for k in range(n)]
    cols.update({f"p_{t}_{k + 1}": [] for t, k in prob_cols})
    nan = float("nan")
    for p in preds:
        for c in ("t", "valence", "arousal", "liking", "confidence", "latency_ms"):
            v = getattr(p, c)
            cols[c].append(nan if v is None else float(v))
        cols["quadrant"].append(p.quadrant)
        for t in spread_tasks:
            cols[f"spread_{t}"].append(rating_spread(p.probabilities[t]) if t in p.probabilities else nan)
        cols["modalities_used"].append("+".join(p.modalities_used))
        cols["flags"].append(";".join(p.flags))
        cols["model_label"].append(p.model_label)
        cols["calibration_id"].append(p.calibration_id)
        for t, k in prob_cols:
            probs = p.probabilities.get(t, ())
            cols[f"p_{t}_{k + 1}"].append(float(probs[k]) if k < len(probs) else nan)
    types = {c: "float64" for c in cols if c not in ("quadrant", "modalities_used", "flags", "model_label",
                                                      "calibration_id")}
    types.update({c: "string" for c in ("quadrant", "modalities_used", "flags", "model_label")})
    types["calibration_id"] = "Int64"
    return pd.DataFrame(cols).astype(types)
