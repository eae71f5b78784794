"""Scoring: a trained run's test windows, its baselines and ``metrics.json``.

Training (:func:`symaffect.train.run.train_run`) fits and writes checkpoints; this module
scores them: :func:`score_run` predicts every fold/seed's test windows with its best
model, writes ``result.json`` and ``predictions.npz`` per fold/seed and aggregates
``metrics.json``. :func:`train_and_score` is the two in a row (what ``symaffect train``,
the suites and the demo do).

``metrics.json``::

    {"format": "symaffect-metrics", "version": 1,
     "model": name, "task_set": ..., "tasks": [...],
     "protocol": {"name", "kind", "params", "leaky"},
     "norm": {"mode", "transductive"},
     "windows": {"window_seconds", "train_stride_seconds", "eval_stride_seconds"},
     "seeds": [...], "monitor": "val/valence_loss",
     "n_test_windows": total over runs,
     "runs": [{"fold", "seed", "train_subjects", "val_subjects", "test_subjects",
               "n_train_windows", "n_val_windows", "n_test_windows", "best_epoch",
               "epochs_trained", "resumed_from_epoch", "checkpoint",
               "learning_curves" (PNG path relative to the run folder; None if no logs;
               absent for xgboost), "train_majority_rate": {task: share},
               "tasks": {task: report}}],
     "summary": {task: {"model" | "majority" | "majority_test_oracle" | "prior_random":
                        {metric: {"mean", "std", "n"}}, "kind", "n_classes"}},
     "provenance": {...}}

``provenance`` is :func:`symaffect.provenance.provenance` (package versions, python,
platform) with ``config`` (the run's ``config.yaml``: path relative to the run folder and
SHA-256), ``data`` (the SHA-256 fingerprint and per-file rows of the ``sNN.dat`` / ``.mat``
files the prepared data was read from; absent when the data came from records in memory)
and ``prepared`` ({"fingerprint": the prepared data's cache key, "source"}).

:func:`metrics_frame` reads ``metrics.json`` into a tidy pandas DataFrame.

A task ``report`` is :func:`symaffect.eval.metrics.task_report` (single-label: ``model``,
``majority`` -- the most frequent class of the *training* windows scored on the same
test windows --, ``majority_test_oracle`` -- the most frequent *test* class, an optimistic
oracle --, ``prior_random`` -- guessing with the training class frequencies) or
:func:`~symaffect.eval.metrics.multilabel_task_report` (quadrant branch).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from rich.table import Table

from symaffect._io import atomic_write, read_json, write_json
from symaffect.data.deap import list_subject_files
from symaffect.data.labels import majority_rate
from symaffect.errors import DataError
from symaffect.extras import require
from symaffect.eval.metrics import (
    aggregate_reports,
    multilabel_task_report,
    task_report,
)
from symaffect.provenance import provenance
from symaffect.run_folder import RunFolder
from symaffect.spec import task_set as task_set_spec
from symaffect.train import xgb
from symaffect.train.checkpoints import load_lightning_weights
from symaffect.train.config import RunConfig
from symaffect.train.datamodule import batches
from symaffect.train.module import predict_logits
from symaffect.train.run import NON_TORCH_MODELS, is_global_zero, train_run
from symaffect.train.rundata import RunData

log = logging.getLogger(__name__)

METRICS_FORMAT = "symaffect-metrics"
METRICS_VERSION = 1
TRAINING_KEYS = ("best_epoch", "epochs_trained", "resumed_from_epoch", "checkpoint", "monitor",
                 "best_score", "learning_curves")
"""Keys of a fold/seed's ``fit.json`` carried into its ``result.json``."""


def score(task_set: str, y_true: Mapping, y_pred: Mapping, y_train: Mapping, *, seed: int = 0) -> dict:
    """Per-task reports (model + trivial baselines) for one test set.

    Parameters
    ----------
    task_set : str
        A :data:`symaffect.spec.TASK_SETS` name.
    y_true, y_pred, y_train : dict of str to ndarray
        Test targets, predictions (class ids, or multi-hot for multi-label tasks) and
        training targets per task.
    seed : int
        Seed of the class-prior simulation.
    """
    out = {}
    for t in task_set_spec(task_set).tasks:
        if t.kind == "multilabel":
            out[t.name] = multilabel_task_report(
                y_true[t.name], y_pred[t.name], y_train[t.name], label_names=t.class_names
            )
        else:
            out[t.name] = task_report(
                y_true[t.name], y_pred[t.name], y_train[t.name],
                n_classes=t.n_classes, ordinal=t.rule == "nine_class", seed=seed,
            )
            out[t.name]["class_names"] = list(t.class_names)
    return out


def logits_to_pred(logits: Mapping, task_set: str) -> dict[str, np.ndarray]:
    """Class ids (argmax) or multi-hot (logit > 0) per task."""
    multilabel = task_set_spec(task_set).kind == "multilabel"
    out = {}
    for t, v in logits.items():
        v = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
        out[t] = (v > 0).astype(np.int64) if multilabel else v.argmax(axis=1)
    return out


def _device(cfg: RunConfig) -> str:
    wants_gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto")
    return "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"


def predict_fold(data: RunData, fold, seed: int, run: RunFolder, fit: Mapping) -> dict[str, np.ndarray]:
    """Predictions of the fold/seed's trained model on its test windows."""
    cfg = data.cfg
    test_ds = data.dataset(fold, "test")
    where = run.resolve(str(fit.get("checkpoint", "")))
    if cfg.model.name in NON_TORCH_MODELS:
        models = xgb.load_tasks(where, {t.name: t for t in data.tasks.tasks})
        fs = xgb.peripheral_feature_set(data.cfg.model.kwargs)
        return xgb.predict_tasks(models, xgb.dataset_features(test_ds, data.prepared.sfreq, peripheral_features=fs))
    model, _ = load_lightning_weights(where, cfg.model.name, data.model_kwargs(), root=run.root)
    device = _device(cfg)
    logits = predict_logits(model.to(device), batches(test_ds, 256), device=device)
    return logits_to_pred(logits, cfg.data.task_set)


def score_fold(data: RunData, fold, seed: int, run: RunFolder, fit: Mapping) -> dict:
    """Score one trained fold/seed: writes its ``predictions.npz`` (per test window:
    ``subject``, ``trial``, ``start``, ``true_<task>``, ``pred_<task>``) and
    ``result.json``, and returns the result."""
    tasks = list(data.tasks.names)
    y_pred = predict_fold(data, fold, seed, run, fit)
    train_ds, test_ds = data.dataset(fold, "train"), data.dataset(fold, "test")
    y_true = {t: test_ds.targets(t) for t in tasks}
    y_train = {t: train_ds.targets(t) for t in tasks}
    rows = np.asarray(test_ds.index)
    arrays = {
        "subject": np.asarray(test_ds.subject_ids),
        "trial": fold.meta.trial_of(rows) if len(rows) else np.zeros(0, np.int64),
        "start": rows[:, 2] if len(rows) else np.zeros(0, np.int64),
        **{f"true_{t}": np.asarray(y_true[t]) for t in tasks},
        **{f"pred_{t}": np.asarray(y_pred[t]) for t in tasks},
    }
    with atomic_write(run.predictions_path(fold.fold, seed), "wb") as f:
        np.savez_compressed(f, **arrays)
    result = {k: v for k, v in fit.items() if k not in TRAINING_KEYS}
    result["train_majority_rate"] = {t: majority_rate(y_train[t]) for t in tasks}
    result["tasks"] = score(data.cfg.data.task_set, y_true, y_pred, y_train, seed=seed)
    result.update({k: fit[k] for k in TRAINING_KEYS if k in fit})
    write_json(run.result_path(fold.fold, seed), result)
    return result


def score_run(
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    data: RunData | None = None,
) -> dict:
    """Score every trained fold/seed of a run folder and write its ``metrics.json``.

    The folds are rebuilt from the run's ``splits.json`` (not re-drawn) unless ``data``
    (what :func:`~symaffect.train.run.train_run` returned) is given.

    Parameters
    ----------
    run_dir : path
    data_dir : path, optional
        The data the run was trained on (needed unless ``data`` is given).
    cache_dir : path, optional
    data : RunData, optional

    Returns
    -------
    dict
        The metrics (as written).

    Raises
    ------
    DataError
        ``run_dir`` is not a run folder, or a fold/seed was not trained.
    """
    run = RunFolder(Path(run_dir)).require()
    if data is None:
        if data_dir is None:
            raise DataError(run.root, "scoring needs the data folder the run was trained on")
        cfg = RunConfig.from_yaml(run.config)
        data = RunData.from_splits(cfg, run.splits, data_dir, cache_dir=cache_dir)
    runs = []
    for fold in data.folds:
        for seed in data.cfg.seeds:
            fit = run.read_fit(fold.fold, seed)
            if fit is None and run.result_path(fold.fold, seed).is_file():  # scored by an older version
                fit = read_json(run.result_path(fold.fold, seed))
            if fit is None:
                raise DataError(run.fold_dir(fold.fold, seed),
                                "fold was not trained (no fit.json); run train again to resume")
            runs.append(score_fold(data, fold, seed, run, fit))
    return write_metrics(run, data.cfg, data.protocol, runs, provenance=run_provenance(run, data))


def run_provenance(run: RunFolder, data: RunData) -> dict:
    """:func:`symaffect.provenance.provenance` of a run scored on ``data``: its
    ``config.yaml``, the data files its prepared data was read from (hashed: SHA-256 of
    every byte) and the prepared data's fingerprint (cache key) and source."""
    prepared = data.prepared
    folder = Path(prepared.source) if prepared.source and not prepared.source.startswith("<") else None
    files = list_subject_files(folder) if folder is not None and folder.is_dir() else None
    return provenance(
        config=run.config if run.config.is_file() else data.cfg.to_dict(),
        config_root=run.root,
        data_files=files,
        data_root=folder,
        extra={"prepared": {"fingerprint": prepared.fingerprint, "source": prepared.source}},
    )


def train_and_score(cfg: RunConfig, data_dir: str | Path, out_dir: str | Path, **train_kwargs) -> Path:
    """:func:`~symaffect.train.run.train_run`, then :func:`score_run` on the same data;
    returns the run folder (only global rank 0 scores)."""
    data = train_run(cfg, data_dir, out_dir, **train_kwargs)
    out = Path(out_dir).resolve()
    if is_global_zero():
        score_run(out, data=data)
    return out


def write_metrics(run: RunFolder, cfg: RunConfig, protocol, runs: list[dict], *,
                  provenance: dict | None = None) -> dict:
    """Aggregate per-run reports into the run's ``metrics.json`` (atomically) and return it.

    ``provenance`` (default: :func:`symaffect.provenance.provenance` of the run's config
    alone) is stored under the ``"provenance"`` key; see :func:`run_provenance`.
    """
    runs = sorted(runs, key=lambda r: (r["fold"], r["seed"]))
    tasks = list(runs[0]["tasks"]) if runs else []
    summary = {}
    for t in tasks:
        reps = [r["tasks"][t] for r in runs]
        summary[t] = {
            "kind": reps[0]["kind"],
            **({"n_classes": reps[0]["n_classes"]} if "n_classes" in reps[0] else {}),
            **aggregate_reports(reps),
        }
    w = cfg.data.window
    metrics = {
        "format": METRICS_FORMAT,
        "version": METRICS_VERSION,
        "model": cfg.model.name,
        "task_set": cfg.data.task_set,
        "tasks": tasks,
        "protocol": protocol.to_json(),
        "norm": {"mode": cfg.data.norm.mode, "transductive": cfg.data.norm.transductive},
        "windows": {
            "window_seconds": float(w.window_seconds),
            "train_stride_seconds": float(w.stride_seconds),
            "eval_stride_seconds": float(cfg.data.eval_stride_seconds),
        },
        "seeds": list(cfg.seeds),
        "monitor": cfg.optim.monitor,
        "n_test_windows": int(sum(r["n_test_windows"] for r in runs)),
        "runs": runs,
        "summary": summary,
        "provenance": provenance if provenance is not None else _config_provenance(run, cfg),
    }
    write_json(run.metrics, metrics)
    return metrics


def _config_provenance(run: RunFolder, cfg: RunConfig) -> dict:
    return provenance(config=run.config if run.config.is_file() else cfg.to_dict(), config_root=run.root)


SOURCES = ("model", "majority", "majority_test_oracle", "prior_random")
"""What a task report scores: the model and the trivial baselines."""


def metrics_frame(metrics: Mapping | str | Path, *, summary: bool = False):
    """A run's ``metrics.json`` as a tidy :class:`pandas.DataFrame`.

    Parameters
    ----------
    metrics : dict or path
        The metrics dict, the ``metrics.json`` file or the run folder holding it.
    summary : bool
        False: one row per fold x seed x task x source x metric (every scalar number of
        the per-run task reports; confusion matrices and per-class lists are left out).
        True: one row per task x source x metric of the summary (mean, std, n over folds
        and seeds).

    Returns
    -------
    pandas.DataFrame
        ``summary=False``: columns ``fold`` (int64), ``seed`` (int64), ``task``,
        ``source`` (``model``, ``majority``, ``majority_test_oracle``, ``prior_random``),
        ``metric`` (str) and ``value`` (float64). ``summary=True``: ``task``, ``source``,
        ``metric``, ``mean``, ``std`` (float64) and ``n`` (int64). Also ``model`` and
        ``protocol`` (str) on every row, so that frames of several runs concatenate.

    Raises
    ------
    DataError
        The file is missing or not a metrics file.
    MissingExtra
        pandas is not installed.
    """
    pd = require("pandas", "a DataFrame of metrics")
    if not isinstance(metrics, Mapping):
        path = Path(metrics)
        if path.is_dir():
            path = RunFolder(path).metrics
        metrics = read_json(path)
        if metrics.get("format") != METRICS_FORMAT:
            raise DataError(path, f"not a symaffect metrics file (format {metrics.get('format')!r})")
    label = {"model": str(metrics.get("model", "")), "protocol": str((metrics.get("protocol") or {}).get("name", ""))}
    rows: list[dict] = []
    if summary:
        for task, s in metrics.get("summary", {}).items():
            for source in SOURCES:
                for metric, agg in (s.get(source) or {}).items():
                    if isinstance(agg, Mapping) and "mean" in agg:
                        rows.append({**label, "task": task, "source": source, "metric": metric,
                                     "mean": agg["mean"], "std": agg["std"], "n": agg["n"]})
        cols = ["model", "protocol", "task", "source", "metric", "mean", "std", "n"]
        types = {"mean": "float64", "std": "float64", "n": "int64"}
    else:
        for r in metrics.get("runs", []):
            for task, rep in r.get("tasks", {}).items():
                for source in SOURCES:
                    for metric, v in (rep.get(source) or {}).items():
                        if isinstance(v, (int, float)) and not isinstance(v, bool):
                            rows.append({**label, "fold": r["fold"], "seed": r["seed"], "task": task,
                                         "source": source, "metric": metric, "value": v})
        cols = ["model", "protocol", "fold", "seed", "task", "source", "metric", "value"]
        types = {"fold": "int64", "seed": "int64", "value": "float64"}
    return pd.DataFrame(rows, columns=cols).astype(types)


def metrics_table(metrics: dict):
    """A :class:`rich.table.Table` of a run's ``metrics.json``: per task, the model's
    Acc / macro-F1 / macro-Prec (mean +- std over folds and seeds, in %) with the
    majority baseline (training-set majority class) beside each number.

    The title names the model, the protocol (marked LEAKY when it is) and the number of
    test windows.
    """
    proto = metrics["protocol"]
    leak = " [bold red](LEAKY)[/]" if proto.get("leaky") else ""
    n_runs = len(metrics["runs"])
    title = (
        f"{metrics['model']} · {metrics['task_set']} · protocol {proto['name']}{leak} · "
        f"{n_runs} fold/seed run(s) · {metrics['n_test_windows']} test windows"
    )
    table = Table(title=title, caption="model mean ± std (majority baseline, training-set majority class), %")
    table.add_column("task")
    for col in ("Acc", "macro-F1", "macro-Prec", "MAE (maj) / ±1 acc"):
        table.add_column(col, justify="right")

    def cell(s: dict, key: str) -> str:
        if key not in s["model"]:
            return "–"
        m = s["model"][key]
        txt = f"{100 * m['mean']:.1f}"
        if m["n"] > 1:
            txt += f" ± {100 * m['std']:.1f}"
        if key in s.get("majority", {}):
            txt += f" [dim]({100 * s['majority'][key]['mean']:.1f})[/]"
        return txt

    for task, s in metrics["summary"].items():
        if s["kind"] == "multilabel":
            table.add_row(f"{task} (subset acc)", cell(s, "subset_acc"), cell(s, "macro_f1"), "–", "–")
            continue
        ordinal = "–"
        if "mae" in s["model"]:
            mae, w1 = s["model"]["mae"]["mean"], s["model"]["within_one"]["mean"]
            maj = s["majority"]["mae"]["mean"]
            ordinal = f"{mae:.2f} [dim]({maj:.2f})[/] / {100 * w1:.0f}%"
        table.add_row(task, cell(s, "acc"), cell(s, "macro_f1"), cell(s, "macro_precision"), ordinal)
    return table


__all__ = [
    "logits_to_pred",
    "metrics_frame",
    "metrics_table",
    "predict_fold",
    "run_provenance",
    "score",
    "score_fold",
    "score_run",
    "train_and_score",
    "write_metrics",
]
