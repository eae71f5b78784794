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
