"""Classification metrics and trivial baselines: pure functions on label arrays.

Every number a run reports comes from here, so that the model, the baselines and the
paper's suites are scored the same way.

Conventions
-----------
* Labels are integer class indices, ``ndarray of int, shape (n,)``; multi-label targets are
  ``ndarray of {0, 1}, shape (n, n_labels)``.
* Macro averages run over the classes present in ``y_true`` or ``y_pred`` (scikit-learn's
  default): a class that occurs in neither cannot be scored and is not counted as 0.
  Undefined precision (a class never predicted) counts as 0 (``zero_division=0``).
* The confusion matrix always has all ``n_classes`` rows and columns (rows = true class,
  columns = predicted class).
* For the 9-class ordinal tasks the classes are 1-point bins of the 1-9 rating scale, so
  ``|pred - true|`` in classes is an error in rating units (:func:`ordinal_metrics`).
* Aggregation over folds and seeds reports the mean and the sample standard deviation
  (``ddof=1``; 0 for a single value).
* Comparisons (model vs majority baseline, model vs model) are paired over *test
  subjects*, the unit that is sampled: :func:`per_subject_accuracy` per test set,
  :func:`mean_by_subject` to pool a subject's test sets (folds x seeds), then
  :func:`paired_comparison` (a percentile bootstrap confidence interval of the mean
  difference, :func:`paired_bootstrap_ci`, and a two-sided sign-flip permutation test,
  :func:`sign_flip_test`). Randomness comes only from an explicit ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

SCALAR_KEYS: tuple[str, ...] = (
    "acc",
    "macro_f1",
    "macro_precision",
    "weighted_f1",
    "weighted_precision",
)
"""The metrics :func:`classification_metrics` returns for every single-label task."""

ORDINAL_KEYS: tuple[str, ...] = ("mae", "within_one")
MULTILABEL_KEYS: tuple[str, ...] = ("subset_acc", "macro_f1", "hamming_acc")


def _as_labels(y: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {a.shape}")
    return a.astype(np.int64, copy=False)


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if y_true.size == 0:
        raise ValueError("cannot score an empty set of windows")


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int
) -> dict:
    """Accuracy, macro and weighted F1 / precision, and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (n,)
        True and predicted class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes (fixes the confusion matrix's size).

    Returns
    -------
    dict
        ``acc``, ``macro_f1``, ``macro_precision``, ``macro_recall``, ``weighted_f1``,
        ``weighted_precision`` (floats in [0, 1]), ``n`` (int) and ``confusion``
        (list of lists, shape (n_classes, n_classes), rows true, columns predicted).
    """
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    _check_pair(y_true, y_pred)
    p_m, r_m, f_m, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    p_w, _, f_w, _ = precision_recall_fscore_support(
        y_true, y_pred, average="weighted", zero_division=0
    )
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))
    return {
        "acc": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f_m),
        "macro_precision": float(p_m),
        "macro_recall": float(r_m),
        "weighted_f1": float(f_w),
        "weighted_precision": float(p_w),
        "n": int(y_true.size),
        "confusion": cm.astype(int).tolist(),
    }


def ordinal_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Errors of an ordinal task whose classes are 1-point rating bins.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (n,)

    Returns
    -------
    dict
        ``mae``: mean ``|pred - true|`` in rating units (classes); ``within_one``: the
        fraction of windows predicted within one class of the truth.
    """
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    _check_pair(y_true, y_pred)
    err = np.abs(y_pred - y_true)
    return {"mae": float(err.mean()), "within_one": float((err <= 1).mean())}


def multilabel_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, *, label_names: Sequence[str]
) -> dict:
    """Subset (exact-match) accuracy, per-label F1 and Hamming accuracy.

    Parameters
    ----------
    y_true, y_pred : ndarray of {0, 1}, shape (n, n_labels)
    label_names : sequence of str, length n_labels

    Returns
    -------
    dict
        ``subset_acc``, ``hamming_acc``, ``macro_f1`` (mean of the per-label F1),
        ``per_label_f1`` ({name: float}), ``per_label_precision``, ``n``.
    """
    yt = np.asarray(y_true).astype(np.int64)
    yp = np.asarray(y_pred).astype(np.int64)
    if yt.ndim != 2 or yt.shape[1] != len(label_names):
        raise ValueError(f"y_true must have shape (n, {len(label_names)}), got {yt.shape}")
    _check_pair(yt, yp)
    f1 = f1_score(yt, yp, average=None, zero_division=0)
    prec, _, _, _ = precision_recall_fscore_support(yt, yp, average=None, zero_division=0)
    return {
        "subset_acc": float((yt == yp).all(axis=1).mean()),
        "hamming_acc": float((yt == yp).mean()),
        "macro_f1": float(np.mean(f1)),
        "per_label_f1": {n: float(v) for n, v in zip(label_names, f1)},
        "per_label_precision": {n: float(v) for n, v in zip(label_names, prec)},
        "n": int(yt.shape[0]),
    }


def class_distribution(y: np.ndarray, *, n_classes: int) -> np.ndarray:
    """Relative class frequencies, shape (n_classes,), summing to 1."""
    y = _as_labels(y, "y")
    if y.size == 0:
        raise ValueError("cannot take the class distribution of no windows")
    return np.bincount(y, minlength=n_classes)[:n_classes] / y.size


def majority_class(y: np.ndarray, *, n_classes: int) -> int:
    """The most frequent class of ``y`` (the smallest index on a tie)."""
    return int(np.argmax(np.bincount(_as_labels(y, "y"), minlength=n_classes)))


def majority_baseline(
    y_train: np.ndarray, y_test: np.ndarray, *, n_classes: int, ordinal: bool = False
) -> dict:
    """Always predict the most frequent class of the *training* windows.

    This is the honest trivial baseline: it uses only what a model may see.

    Parameters
    ----------
    y_train : ndarray of int, shape (n_train,)
    y_test : ndarray of int, shape (n_test,)
    n_classes : int
    ordinal : bool
        Also report :func:`ordinal_metrics`.

    Returns
    -------
    dict
        The :func:`classification_metrics` of the constant prediction (plus ``mae`` /
        ``within_one`` when ``ordinal``), and ``class`` (the predicted class).
    """
    k = majority_class(y_train, n_classes=n_classes)
    return _constant_baseline(k, y_test, n_classes=n_classes, ordinal=ordinal)


def majority_test_oracle(
    y_test: np.ndarray, *, n_classes: int, ordinal: bool = False
) -> dict:
    """Always predict the most frequent class of the *test* windows (an optimistic oracle).

    Not a baseline a model could reach without seeing the test labels; reported, labelled
    as an oracle, because some papers compare against it.
    """
    k = majority_class(y_test, n_classes=n_classes)
    return _constant_baseline(k, y_test, n_classes=n_classes, ordinal=ordinal)


def _constant_baseline(k: int, y_test: np.ndarray, *, n_classes: int, ordinal: bool) -> dict:
    y_test = _as_labels(y_test, "y_test")
    pred = np.full_like(y_test, k)
    out = classification_metrics(y_test, pred, n_classes=n_classes)
    if ordinal:
        out.update(ordinal_metrics(y_test, pred))
    out["class"] = int(k)
    return out


def prior_random_baseline(
    y_train: np.ndarray,
    y_test: np.ndarray,
    *,
    n_classes: int,
    ordinal: bool = False,
    n_draws: int = 200,
    seed: int = 0,
) -> dict:
    """Guess each test window's class at random with the training class frequencies.

    The expected accuracy is exact: ``sum_k p_train(k) p_test(k)``. Macro / weighted
    F1 and precision (and, when ``ordinal``, MAE and within-one accuracy) are the means
    over ``n_draws`` simulated guesses drawn with ``np.random.default_rng(seed)``.

    Parameters
    ----------
    y_train : ndarray of int, shape (n_train,)
    y_test : ndarray of int, shape (n_test,)
    n_classes : int
    ordinal : bool
    n_draws : int
    seed : int

    Returns
    -------
    dict
        ``acc`` (exact expectation), ``acc_simulated``, ``macro_f1``, ``macro_precision``,
        ``weighted_f1``, ``weighted_precision`` (simulated means), ``n_draws``, ``seed``
        and, when ``ordinal``, ``mae`` (exact expectation) and ``within_one`` (exact).
    """
    y_test = _as_labels(y_test, "y_test")
    p_train = class_distribution(y_train, n_classes=n_classes)
    p_test = class_distribution(y_test, n_classes=n_classes)
    rng = np.random.default_rng(seed)
    draws = rng.choice(n_classes, size=(n_draws, y_test.size), p=p_train)
    sims = np.array([_fast_scores(y_test, d, n_classes) for d in draws])
    mean = sims.mean(axis=0)
    out = {
        "acc": float(p_train @ p_test),
        "acc_simulated": float(mean[0]),
        "macro_f1": float(mean[1]),
        "macro_precision": float(mean[2]),
        "weighted_f1": float(mean[3]),
        "weighted_precision": float(mean[4]),
        "n": int(y_test.size),
        "n_draws": int(n_draws),
        "seed": int(seed),
    }
    if ordinal:
        k = np.arange(n_classes)
        dist = np.abs(k[:, None] - k[None, :])  # (true, pred)
        out["mae"] = float(p_test @ dist @ p_train)
        out["within_one"] = float(p_test @ (dist <= 1) @ p_train)
    return out


def _fast_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(acc, macro F1, macro precision, weighted F1, weighted precision) from a bincount.

    Same conventions as scikit-learn (classes present in either array, zero_division=0);
    used for the many simulated draws of :func:`prior_random_baseline`.
    """
    cm = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    cm = cm.reshape(n_classes, n_classes).astype(np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(predicted > 0, tp / predicted, 0.0)
        rec = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    present = (support > 0) | (predicted > 0)
    w = support / support.sum()
    return np.array(
        [
            tp.sum() / cm.sum(),
            f1[present].mean(),
            prec[present].mean(),
            (f1 * w).sum(),
            (prec * w).sum(),
        ]
    )


def task_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray,
    *,
    n_classes: int,
    ordinal: bool = False,
    seed: int = 0,
) -> dict:
    """Everything reported for one single-label task on one test set.

    Parameters
    ----------
    y_true : ndarray of int, shape (n_test,)
        Test labels.
    y_pred : ndarray of int, shape (n_test,)
        The model's predictions.
    y_train : ndarray of int, shape (n_train,)
        Training labels (for the majority and class-prior baselines).
    n_classes : int
    ordinal : bool
        Add MAE and within-one accuracy (9-class rating tasks).
    seed : int
        Seed of the class-prior simulation.

    Returns
    -------
    dict
        ``{"kind": "multiclass", "n_classes", "model": {...}, "majority": {...},
        "majority_test_oracle": {...}, "prior_random": {...}}``.
    """
    model = classification_metrics(y_true, y_pred, n_classes=n_classes)
    if ordinal:
        model.update(ordinal_metrics(y_true, y_pred))
    return {
        "kind": "multiclass",
        "n_classes": int(n_classes),
        "ordinal": bool(ordinal),
        "model": model,
        "majority": majority_baseline(y_train, y_true, n_classes=n_classes, ordinal=ordinal),
        "majority_test_oracle": majority_test_oracle(
            y_true, n_classes=n_classes, ordinal=ordinal
        ),
        "prior_random": prior_random_baseline(
            y_train, y_true, n_classes=n_classes, ordinal=ordinal, seed=seed
        ),
    }


def multilabel_task_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray,
    *,
    label_names: Sequence[str],
) -> dict:
    """Everything reported for a multi-label task (the quadrant branch).

    The majority baseline predicts, for every window, the most frequent *label vector*
    of the training windows; the test oracle does the same with the test windows.

    Parameters
    ----------
    y_true, y_pred : ndarray of {0, 1}, shape (n_test, n_labels)
    y_train : ndarray of {0, 1}, shape (n_train, n_labels)
    label_names : sequence of str

    Returns
    -------
    dict
        ``{"kind": "multilabel", "labels", "model", "majority", "majority_test_oracle"}``.
    """
    yt = np.asarray(y_true).astype(np.int64)

    def constant(rows: np.ndarray) -> dict:
        vecs, counts = np.unique(np.asarray(rows).astype(np.int64), axis=0, return_counts=True)
        v = vecs[int(np.argmax(counts))]
        out = multilabel_metrics(yt, np.broadcast_to(v, yt.shape), label_names=label_names)
        out["vector"] = v.tolist()
        return out

    return {
        "kind": "multilabel",
        "labels": list(label_names),
        "model": multilabel_metrics(yt, y_pred, label_names=label_names),
        "majority": constant(y_train),
        "majority_test_oracle": constant(yt),
    }


def aggregate(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (``ddof=1``; 0 for one value) and count."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        raise ValueError("nothing to aggregate")
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {"mean": float(a.mean()), "std": std, "n": int(a.size)}


def aggregate_reports(reports: Sequence[Mapping]) -> dict:
    """Mean +- std over folds / seeds of the scalar metrics of :func:`task_report` outputs.

    Parameters
    ----------
    reports : sequence of dict
        Outputs of :func:`task_report` or :func:`multilabel_task_report` for one task.

    Returns
    -------
    dict
        ``{source: {metric: {"mean", "std", "n"}}}`` for every source (``model``,
        ``majority``, ...) and every float metric it holds; for confusion matrices, the
        sum over reports under ``{"model": {"confusion_sum": ...}}``.
    """
    if not reports:
        raise ValueError("nothing to aggregate")
    out: dict = {}
    for source in ("model", "majority", "majority_test_oracle", "prior_random"):
        if source not in reports[0]:
            continue
        keys = [
            k
            for k, v in reports[0][source].items()
            if isinstance(v, float) and all(k in r[source] for r in reports)
        ]
        out[source] = {k: aggregate([r[source][k] for r in reports]) for k in keys}
    if "confusion" in reports[0]["model"]:
        out["model"]["confusion_sum"] = (
            np.sum([np.asarray(r["model"]["confusion"]) for r in reports], axis=0)
            .astype(int)
            .tolist()
        )
    return out


# --- uncertainty over test subjects ------------------------------------------------------
BOOTSTRAP_RESAMPLES = 2000
"""Default number of bootstrap resamples of the test subjects."""

PERMUTATIONS = 10000
"""Default number of random sign flips when the exact test would be too large."""

EXACT_SIGN_FLIP_MAX = 16
"""Up to this many subjects the sign-flip test enumerates all ``2**n`` sign vectors."""


def per_subject_accuracy(
    subjects: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of each subject's windows (exact match of the label vector if multi-label).

    Parameters
    ----------
    subjects : ndarray of int, shape (n,)
        Subject id of every window.
    y_true, y_pred : ndarray of int, shape (n,) or (n, n_labels)
        Class ids, or multi-hot rows (a window is right when all its labels are).

    Returns
    -------
    ids : ndarray of int, shape (n_subjects,)
        The subjects, sorted.
    acc : ndarray of float, shape (n_subjects,)
        Fraction of each subject's windows predicted right.
    """
    subjects = _as_labels(subjects, "subjects")
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    _check_pair(yt, yp)
    if yt.shape[0] != subjects.size:
        raise ValueError(f"subjects has {subjects.size} windows, y_true {yt.shape[0]}")
    right = (yt == yp) if yt.ndim == 1 else (yt == yp).reshape(yt.shape[0], -1).all(axis=1)
    return mean_by_subject(subjects, right.astype(np.float64))


def mean_by_subject(subjects: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` per subject (pools one subject's several test sets).

    Parameters
    ----------
    subjects : ndarray of int, shape (n,)
    values : ndarray of float, shape (n,)

    Returns
    -------
    ids : ndarray of int, shape (n_subjects,)
        Sorted.
    means : ndarray of float, shape (n_subjects,)
    """
    subjects = _as_labels(subjects, "subjects")
    values = np.asarray(values, dtype=np.float64)
    if values.shape != subjects.shape:
        raise ValueError(f"subjects {subjects.shape} and values {values.shape} differ in shape")
    if subjects.size == 0:
        raise ValueError("no subjects to average over")
    ids, inv = np.unique(subjects, return_inverse=True)
    return ids, np.bincount(inv, weights=values) / np.bincount(inv)


def _paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired scores must be 1-D of one length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no paired subjects to compare")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired scores must be finite")
    return a - b


def paired_bootstrap_ci(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Percentile bootstrap confidence interval of ``mean(a - b)`` over paired subjects.

    The subjects (pairs) are resampled with replacement ``n_resamples`` times with
    ``np.random.default_rng(seed)``.

    Parameters
    ----------
    a, b : ndarray of float, shape (n_subjects,)
        Scores of the same subjects under two systems (e.g. model and majority baseline).
    n_resamples : int
    confidence : float
        In (0, 1).
    seed : int

    Returns
    -------
    dict
        ``delta`` (observed mean difference), ``ci_low``, ``ci_high``, ``confidence``,
        ``n_resamples``, ``seed``, ``n_subjects``.
    """
    d = _paired(a, b)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_resamples, d.size))
    means = d[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    delta = float(d.mean())
    if np.ptp(d) == 0:  # every resample has this mean (up to rounding in the last bit)
        lo = hi = delta
    return {
        "delta": delta,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "confidence": float(confidence),
        "n_resamples": int(n_resamples),
        "seed": int(seed),
        "n_subjects": int(d.size),
    }


def sign_flip_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_permutations: int = PERMUTATIONS,
    seed: int = 0,
    exact_max: int = EXACT_SIGN_FLIP_MAX,
) -> dict:
    """Two-sided paired sign-flip (permutation) test of ``mean(a - b) = 0``.

    Under the null hypothesis each subject's difference is as likely to have either sign.
    With at most ``exact_max`` subjects all ``2**n`` sign vectors are enumerated and the
    p-value is exact (the smallest possible is ``2 / 2**n``); otherwise ``n_permutations``
    random sign vectors are drawn with ``np.random.default_rng(seed)`` and
    ``p = (1 + #{|mean*| >= |mean|}) / (1 + n_permutations)``.

    Parameters
    ----------
    a, b : ndarray of float, shape (n_subjects,)
    n_permutations : int
    seed : int
    exact_max : int

    Returns
    -------
    dict
        ``p_value``, ``test`` (``"sign-flip permutation"``), ``exact`` (bool),
        ``n_permutations`` (sign vectors used), ``n_subjects``.
    """
    d = _paired(a, b)
    n = d.size
    obs = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    exact = n <= exact_max
    if exact:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1  # (2**n, n)
    else:
        if n_permutations < 1:
            raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
        signs = np.random.default_rng(seed).choice(np.array([-1, 1]), size=(n_permutations, n))
    hits = int((np.abs(signs @ d / n) >= obs - tol).sum())
    p = hits / signs.shape[0] if exact else (1 + hits) / (1 + signs.shape[0])
    return {
        "p_value": float(min(1.0, p)),
        "test": "sign-flip permutation",
        "exact": bool(exact),
        "n_permutations": int(signs.shape[0]),
        "n_subjects": int(n),
    }


def paired_comparison(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    n_permutations: int = PERMUTATIONS,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Mean difference of paired per-subject scores with a bootstrap CI and a p-value.

    Parameters
    ----------
    a, b : ndarray of float, shape (n_subjects,)
        Scores of the same subjects (e.g. per-subject accuracy of a model and of the
        majority baseline); positive ``delta`` means ``a`` is higher.
    n_resamples, confidence
        See :func:`paired_bootstrap_ci`.
    n_permutations
        See :func:`sign_flip_test`.
    seed : int
        Seed of both the bootstrap and (when not exact) the sign flips.

    Returns
    -------
    dict
        ``mean_a``, ``mean_b`` (subject-averaged), ``delta``, ``ci_low``, ``ci_high``,
        ``confidence``, ``p_value``, ``test``, ``exact``, ``n_subjects``,
        ``n_resamples``, ``n_permutations``, ``seed``, ``wins`` / ``losses`` / ``ties``
        (subjects with ``a`` above / below / equal to ``b``).
    """
    d = _paired(a, b)
    ci = paired_bootstrap_ci(a, b, n_resamples=n_resamples, confidence=confidence, seed=seed)
    test = sign_flip_test(a, b, n_permutations=n_permutations, seed=seed)
    return {
        "mean_a": float(np.mean(a)),
        "mean_b": float(np.mean(b)),
        **ci,
        "p_value": test["p_value"],
        "test": test["test"],
        "exact": test["exact"],
        "n_permutations": test["n_permutations"],
        "wins": int((d > 0).sum()),
        "losses": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
    }
