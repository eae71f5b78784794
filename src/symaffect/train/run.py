"""Train and evaluate one run: all folds of a protocol x all seeds, in one run folder.

Run folder layout (``train_run(cfg, data_dir, out_dir)``)::

    RUN_DIR/
      config.yaml            the RunConfig (RunConfig.from_yaml reads it back)
      splits.json            subject ids (and trials / windows) of every fold
      metrics.json           everything measured (format below)
      model.pt               best model of the first fold and seed (models.save_checkpoint;
                             loadable without the trainer); absent for xgboost
      fold0-seed0/
        checkpoints/best.ckpt  Lightning checkpoint with the lowest monitored val loss
        checkpoints/last.ckpt  end of the latest epoch (a killed run resumes from it)
        logs/version_N/        CSVLogger: metrics.csv, hparams.yaml (one version per attempt)
        result.json            this fold/seed's test report (written when it finished)
        predictions.npz        per test window: subject, trial, start, true_<task>, pred_<task>
        learning_curves.png    loss and accuracy per epoch from the CSV logs (symaffect.train.curves)
        xgboost/               (xgboost only) one booster per task

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
                        {metric: {"mean", "std", "n"}}, "kind", "n_classes"}}}

A task ``report`` is :func:`symaffect.eval.metrics.task_report` (single-label: ``model``,
``majority`` — the most frequent class of the *training* windows scored on the same
test windows —, ``majority_test_oracle`` — the most frequent *test* class, an optimistic
oracle —, ``prior_random`` — guessing with the training class frequencies) or
:func:`~symaffect.eval.metrics.multilabel_task_report` (quadrant branch).

Distributed training: ``trainer.strategy="ddp"`` with ``devices`` / ``num_nodes`` > 1, best
launched with ``torchrun`` (one process per device; every process calls
:func:`train_run`, only global rank 0 writes files and scores the test set). The
batch size is per process. With Lightning's own launcher (no ``torchrun``) keep to one
fold and one seed per call: it re-launches the script for each ``fit``.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symaffect._io import read_json, write_json
from symaffect.errors import ConfigError, DataError, Interrupted
from symaffect.train.config import RunConfig, resolve_monitor

log = logging.getLogger(__name__)

METRICS_FORMAT = "symaffect-metrics"
METRICS_VERSION = 1

PROTOCOL_CLASSES: dict[str, str] = {
    "subject_holdout": "SubjectHoldout",
    "subject_kfold": "SubjectKFold",
    "loso": "LeaveOneSubjectOut",
    "trial_holdout": "TrialHoldout",
    "window_random": "WindowRandom",
}
"""Config protocol names -> classes of :mod:`symaffect.data.protocols`."""

NON_TORCH_MODELS: tuple[str, ...] = ("xgboost",)
"""Model names trained outside Lightning (see :mod:`symaffect.train.xgb`)."""


# --- helpers ---------------------------------------------------------------------------
def is_global_zero() -> bool:
    """Whether this process is global rank 0, from the launcher's environment.

    ``torchrun`` sets ``RANK``; Lightning's own launcher sets ``LOCAL_RANK`` and
    ``NODE_RANK`` in the processes it starts. Not distributed: True.
    """
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def check_model_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is registered or a non-torch model."""
    from symaffect.models.registry import list_models

    known = [*list_models(), *NON_TORCH_MODELS]
    if name not in known:
        raise ConfigError(f"model.name: {name!r} is not a registered model; known: {', '.join(known)}")


def make_protocol(cfg: RunConfig):
    """The :mod:`symaffect.data.protocols` object of ``cfg.protocol``."""
    import warnings

    from symaffect.data import protocols as P

    p = cfg.protocol
    cls = getattr(P, PROTOCOL_CLASSES[p.name])
    kwargs: dict[str, Any] = {"val_ratio": p.val_ratio, "seed": p.seed}
    if p.name in ("subject_holdout", "trial_holdout", "window_random"):
        kwargs["test_ratio"] = p.test_ratio
    if p.name == "subject_kfold":
        kwargs["n_splits"] = p.n_splits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", P.LeakyProtocolWarning)  # warned once by split()
        return cls(**kwargs)


def load_data(cfg: RunConfig, data_dir: str | Path, *, cache_dir: str | Path | None = None):
    """Prepare ``data_dir`` as ``cfg.data`` says (cached; see :func:`symaffect.data.prepare.prepare`)."""
    from symaffect.data.prepare import prepare

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "data folder not found")
    return prepare(data_dir, window=cfg.data.window, norm=cfg.data.norm, cache_dir=cache_dir)


def make_folds(cfg: RunConfig, prepared) -> tuple[Any, list]:
    """(protocol, folds) for ``cfg`` on ``prepared`` (each fold already guarded)."""
    protocol = make_protocol(cfg)
    folds = protocol.split_prepared(prepared, cfg.data.window, cfg.data.eval_window())
    return protocol, folds


def model_kwargs(cfg: RunConfig, prepared) -> dict:
    """Build kwargs of the run's model: ``model.kwargs`` + modalities, task set, window length."""
    return {
        **cfg.model.kwargs,
        "modalities": list(cfg.data.modalities),
        "task_set": cfg.data.task_set,
        "n_times": cfg.data.window.window_samples(prepared.sfreq),
    }


def _fold_dir(out: Path, fold: int, seed: int) -> Path:
    return out / f"fold{fold}-seed{seed}"


def _task_rules(task_set: str):
    from symaffect.data.labels import TaskSet

    return TaskSet.of(task_set)


def score(task_set: str, y_true: dict, y_pred: dict, y_train: dict, *, seed: int = 0) -> dict:
    """Per-task reports (model + trivial baselines) for one test set.

    Parameters
    ----------
    task_set : str
    y_true, y_pred, y_train : dict of str to ndarray
        Test targets, predictions (class ids, or multi-hot for multi-label tasks) and
        training targets per task.
    seed : int
        Seed of the class-prior simulation.
    """
    from symaffect.eval import metrics as M

    out = {}
    for task, rule in _task_rules(task_set).tasks:
        if rule.kind == "multilabel":
            out[task] = M.multilabel_task_report(
                y_true[task], y_pred[task], y_train[task], label_names=rule.class_names
            )
        else:
            out[task] = M.task_report(
                y_true[task],
                y_pred[task],
                y_train[task],
                n_classes=rule.n_classes,
                ordinal=rule.rule == "nine_class",
                seed=seed,
            )
            out[task]["class_names"] = list(rule.class_names)
    return out


def logits_to_pred(logits: dict, task_set: str) -> dict[str, np.ndarray]:
    """Class ids (argmax) or multi-hot (logit > 0) per task."""
    kinds = {t: r.kind for t, r in _task_rules(task_set).tasks}
    out = {}
    for t, v in logits.items():
        v = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
        out[t] = (v > 0).astype(np.int64) if kinds[t] == "multilabel" else v.argmax(axis=1)
    return out


# --- the run ---------------------------------------------------------------------------
def _stops_on_sigterm(fn):
    """Make SIGTERM stop ``fn`` within moments by raising :class:`Interrupted` in the main thread.

    Lightning 2.6 on its own only sets ``trainer.received_sigterm`` and raises its
    ``SIGTERMException`` (a ``SystemExit`` with exit code 0) after the current batch or hook
    returns -- a long step, a slow callback or the data loading before ``fit`` delays it
    indefinitely, and the shell then sees success. Here the handler raises at once (Lightning
    calls it after its own notifier); nothing half-written stays behind (every file is
    written atomically, Lightning's checkpoints through an fsspec transaction), so a rerun
    resumes from the last finished epoch's ``last.ckpt``, exactly as after SIGKILL. A second
    SIGTERM during the clean-up ends the process at once.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)  # signal handlers live in the main thread only
        received = False

        def on_sigterm(signum, frame):
            nonlocal received
            if received:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            received = True
            raise Interrupted(signum)

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            return fn(*args, **kwargs)
        except SystemExit as e:
            if type(e).__name__ == "SIGTERMException":  # Lightning's (e.g. broadcast to a DDP rank)
                raise Interrupted(signal.SIGTERM) from None
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


@_stops_on_sigterm
def train_run(
    cfg: RunConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = False,
    cache_dir: str | Path | None = None,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Train every fold x seed of ``cfg`` on ``data_dir``, score the test windows, write the run.

    Parameters
    ----------
    cfg : RunConfig
    data_dir : path
        A folder of DEAP ``sNN.dat`` files.
    out_dir : path
        The run folder (created). If it already holds a run of the same config, finished
        folds are kept and an unfinished one resumes from its ``last.ckpt``.
    resume : bool
        False: refuse a folder that already holds a run.
    progress : bool
        Show Lightning's progress bars.
    cache_dir : path, optional
        Cache of prepared data (default: ``$SYMAFFECT_CACHE`` or ``~/.cache/symaffect``).
    callbacks : sequence of lightning.Callback
        Extra callbacks given to every Trainer.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ConfigError
        The folder holds a run of another config, or ``resume`` is False and it holds one.
    Interrupted
        SIGTERM arrived (the finished epochs are saved; a rerun resumes).
    """
    out = Path(out_dir).resolve()
    check_model_name(cfg.model.name)
    rank0 = is_global_zero()
    cfg_path = out / "config.yaml"
    if cfg_path.exists():
        if not resume:
            raise ConfigError(f"{out}: already holds a run; use another folder or resume")
        old = RunConfig.from_yaml(cfg_path)
        if old != cfg:
            raise ConfigError(f"{out}: holds a run of a different config; use another folder")
    prepared = load_data(cfg, data_dir, cache_dir=cache_dir)
    protocol, folds = make_folds(cfg, prepared)
    if rank0:
        out.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(cfg_path)
        from symaffect.data.protocols import save_splits

        save_splits(out / "splits.json", folds, protocol)
    runs = []
    for fold in folds:
        for seed in cfg.seeds:
            fdir = _fold_dir(out, fold.fold, seed)
            done = fdir / "result.json"
            if done.exists():
                log.info("fold %d seed %d: already finished", fold.fold, seed)
                runs.append(read_json(done))
                continue
            if cfg.model.name in NON_TORCH_MODELS:
                result = _xgb_fold(cfg, prepared, fold, seed, fdir) if rank0 else None
            else:
                result = _torch_fold(cfg, prepared, fold, seed, fdir, progress, callbacks)
            if result is None:  # not global rank 0
                continue
            write_json(done, result)
            runs.append(result)
    if not rank0:
        return out
    if cfg.model.name not in NON_TORCH_MODELS:
        first = runs[0]
        _export_model(cfg, prepared, out / first["checkpoint"], out / "model.pt",
                      fold=first["fold"], seed=first["seed"])
    write_metrics(out, cfg, protocol, runs)
    return out


def _torch_fold(cfg, prepared, fold, seed: int, fdir: Path, progress: bool, callbacks) -> dict | None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from symaffect.train.datamodule import AffectDataModule, FoldWindows
    from symaffect.train.module import AffectModule

    L.seed_everything(seed, workers=True, verbose=False)
    kwargs = model_kwargs(cfg, prepared)
    module = AffectModule(
        model_name=cfg.model.name,
        model_kwargs=kwargs,
        weighting=cfg.loss.weighting,
        gamma=cfg.loss.gamma,
        alpha=cfg.loss.alpha,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        schedule=cfg.optim.schedule,
        warmup=cfg.optim.warmup,
    )
    norm_stats = prepared.fit_norm(fold.train_subjects) if cfg.data.norm.mode == "train_subjects" else None
    dm = AffectDataModule(
        prepared,
        FoldWindows(fold.train, fold.val, fold.test),
        modalities=cfg.data.modalities,
        task_set=cfg.data.task_set,
        batch_size=cfg.optim.batch_size,
        seed=seed,
        max_train_windows_per_epoch=cfg.trainer.max_train_windows_per_epoch,
        norm_stats=norm_stats,
        num_workers=cfg.trainer.num_workers,
    )
    has_val = len(fold.val) > 0
    monitor = resolve_monitor(cfg.optim.monitor, list(module.tasks)) if has_val else None
    if not has_val:
        log.warning("fold %d has no validation windows: no early stopping, the last epoch is kept", fold.fold)
    ckpt_dir = fdir / "checkpoints"
    ckpt = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=monitor,
        mode="min",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    cbs = [ckpt, LearningRateMonitor(logging_interval="epoch"), *callbacks]
    if monitor is not None:
        cbs.append(EarlyStopping(monitor=monitor, mode="min", patience=cfg.optim.patience))
    n_batches = max(1, len(dm.train_dataloader()))
    t = cfg.trainer
    trainer = L.Trainer(
        max_epochs=cfg.optim.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        deterministic=t.deterministic,
        gradient_clip_val=cfg.optim.grad_clip,
        callbacks=cbs,
        logger=CSVLogger(save_dir=str(fdir), name="logs"),
        default_root_dir=str(fdir),
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=min(50, n_batches),
        use_distributed_sampler=False,
    )
    last = ckpt_dir / "last.ckpt"
    resume_from, resumed_from = _resume_point(ckpt_dir)
    if resume_from is not None:
        log.info("fold %d seed %d: resuming from %s (epoch %d)", fold.fold, seed, resume_from, resumed_from)
    trainer.fit(module, datamodule=dm, ckpt_path=None if resume_from is None else str(resume_from),
                weights_only=True)
    if not trainer.is_global_zero:
        return None
    best = Path(ckpt.best_model_path) if monitor is not None and ckpt.best_model_path else last
    model = _load_lightning_weights(best, cfg.model.name, kwargs)
    result = _evaluate_fold(cfg, prepared, fold, seed, model, norm_stats, fdir)
    ck = load_lightning_checkpoint(best)
    result.update(
        best_epoch=int(ck["epoch"]),
        epochs_trained=int(trainer.current_epoch),
        resumed_from_epoch=resumed_from,
        checkpoint=str(best.relative_to(fdir.parent)),
        monitor=monitor,
        best_score=None if ckpt.best_model_score is None else float(ckpt.best_model_score),
    )
    result["learning_curves"] = _learning_curves(fdir, result, cfg.model.name)
    return result


def _learning_curves(fdir: Path, result: dict, model_name: str) -> str | None:
    """Write ``fdir/learning_curves.png`` from the CSV logs; its path relative to the run
    folder, or None (with a warning) when the logs are missing or hold no epoch row."""
    from symaffect.train.curves import write_learning_curves

    try:
        path = write_learning_curves(
            fdir,
            majority=result.get("train_majority_rate"),
            best_epoch=result.get("best_epoch"),
            title=f"{model_name} · fold {result['fold']} seed {result['seed']} · "
                  f"dashed: training-set majority rate",
        )
    except (FileNotFoundError, ValueError) as e:
        log.warning("%s: no learning curves (%s)", fdir, e)
        return None
    return str(path.relative_to(fdir.parent))


def _resume_point(ckpt_dir: Path) -> tuple[Path | None, int | None]:
    """The checkpoint to resume from (``last.ckpt``, or ``best.ckpt`` if ``last`` is
    unreadable, e.g. cut by a kill mid-write) and its epoch; (None, None) to start fresh."""
    import torch

    for name in ("last.ckpt", "best.ckpt"):
        path = ckpt_dir / name
        if not path.exists():
            continue
        try:
            return path, int(load_lightning_checkpoint(path)["epoch"])
        except DataError as e:  # damaged or not data-only: never loaded, moved aside
            log.warning("cannot resume from %s (%s); ignoring it", path, e)
            path.replace(path.with_suffix(".ckpt.damaged"))
    return None, None


def load_lightning_checkpoint(path: Path, *, root: Path | None = None) -> dict:
    """Read a Lightning checkpoint as data only: tensors and plain containers, never code.

    Every checkpoint the package reads goes through here (``torch.load`` with
    ``weights_only=True``: a crafted pickle raises instead of running).

    Parameters
    ----------
    path : Path
    root : Path, optional
        The run folder: ``path`` must resolve inside it (a ``result.json`` cannot point
        the loader at a file elsewhere).

    Raises
    ------
    DataError
        ``path`` is outside ``root``, missing, or not a data-only checkpoint.
    """
    import pickle

    import torch

    path = Path(path)
    if root is not None and not path.resolve().is_relative_to(Path(root).resolve()):
        raise DataError(path, f"checkpoint is outside the run folder {root}; refusing to read it")
    if not path.is_file():
        raise DataError(path, "checkpoint missing")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, IndexError,
            KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:  # undecodable bytes
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(path, f"not a data-only checkpoint ({msg})") from e
    if not isinstance(ck, dict) or "state_dict" not in ck or "epoch" not in ck:
        raise DataError(path, "not a Lightning checkpoint (no state_dict / epoch)")
    return ck


def _load_lightning_weights(path: Path, name: str, kwargs: dict, *, root: Path | None = None):
    """The registered model inside a Lightning checkpoint of :class:`AffectModule`."""
    from symaffect.models.registry import build_model

    ck = load_lightning_checkpoint(path, root=root)
    if not isinstance(ck["state_dict"], dict):
        raise DataError(path, "state_dict is not a mapping of tensors")
    state = {k[len("model."):]: v for k, v in ck["state_dict"].items() if str(k).startswith("model.")}
    model = build_model(name, **kwargs)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as e:  # missing / unexpected / mis-shaped weights
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(path, f"weights do not fit the run's model {name!r} ({first})") from e
    model.eval()
    return model


def _datasets(cfg, prepared, fold, norm_stats):
    mk = lambda idx: prepared.dataset(  # noqa: E731
        idx, modalities=cfg.data.modalities, tasks=cfg.data.task_set, norm=norm_stats
    )
    return mk(fold.train), mk(fold.test)


def _evaluate_fold(cfg, prepared, fold, seed: int, model, norm_stats, fdir: Path) -> dict:
    """Score ``model`` on the fold's test windows (with the baselines)."""
    import torch

    from symaffect.train.datamodule import batches
    from symaffect.train.module import predict_logits

    train_ds, test_ds = _datasets(cfg, prepared, fold, norm_stats)
    device = "cuda" if cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
    model.to(device)
    logits = predict_logits(model, batches(test_ds, 256), device=device)
    model.to("cpu")
    tasks = list(logits)
    y_pred = logits_to_pred(logits, cfg.data.task_set)
    return _result(cfg, fold, seed, train_ds, test_ds, y_pred, tasks, fdir)


def _result(cfg, fold, seed, train_ds, test_ds, y_pred, tasks, fdir: Path) -> dict:
    """The fold/seed's report; also writes ``fdir/predictions.npz`` (per test window:
    ``subject``, ``trial``, ``start`` and ``true_<task>`` / ``pred_<task>``)."""
    y_true = {t: test_ds.targets(t) for t in tasks}
    y_train = {t: train_ds.targets(t) for t in tasks}
    rows = np.asarray(test_ds.index)
    arrays = {
        "subject": np.asarray(test_ds.subject_ids),
        "trial": fold.meta.trial_of(rows) if len(rows) else np.zeros(0, np.int64),
        "start": rows[:, 2],
        **{f"true_{t}": np.asarray(y_true[t]) for t in tasks},
        **{f"pred_{t}": np.asarray(y_pred[t]) for t in tasks},
    }
    from symaffect._io import atomic_write

    with atomic_write(fdir / "predictions.npz", "wb") as f:
        np.savez_compressed(f, **arrays)
    return {
        "fold": int(fold.fold),
        "seed": int(seed),
        "train_subjects": list(fold.train_subjects),
        "val_subjects": list(fold.val_subjects),
        "test_subjects": list(fold.test_subjects),
        "n_train_windows": int(len(fold.train)),
        "n_val_windows": int(len(fold.val)),
        "n_test_windows": int(len(fold.test)),
        "train_majority_rate": {t: train_majority_rate(y_train[t]) for t in tasks},
        "tasks": score(cfg.data.task_set, y_true, y_pred, y_train, seed=seed),
    }


def train_majority_rate(y_train) -> float | None:
    """Share of the training windows in their most frequent class (for a multi-hot task:
    the most frequent label vector); None without training windows.

    The accuracy a model reaches on its training data by predicting one class: the bar
    its *training* accuracy must clear before it has learned more than the class prior.
    """
    y = np.asarray(y_train)
    if len(y) == 0:
        return None
    if y.ndim == 1:
        return float(np.bincount(y.astype(np.int64)).max() / len(y))
    _, counts = np.unique(y.astype(np.int64), axis=0, return_counts=True)
    return float(counts.max() / len(y))


def _xgb_fold(cfg, prepared, fold, seed: int, fdir: Path) -> dict:
    """The XGBoost branch: features per window, one classifier per task."""
    from symaffect.train import xgb

    norm_stats = prepared.fit_norm(fold.train_subjects) if cfg.data.norm.mode == "train_subjects" else None
    mk = lambda idx: prepared.dataset(  # noqa: E731
        idx, modalities=cfg.data.modalities, tasks=cfg.data.task_set, norm=norm_stats
    )
    train_ds, val_ds, test_ds = mk(fold.train), mk(fold.val), mk(fold.test)
    tasks = [t for t, _ in _task_rules(cfg.data.task_set).tasks]
    multilabel = _task_rules(cfg.data.task_set)[tasks[0]].kind == "multilabel"
    n_out = {t: _task_rules(cfg.data.task_set)[t].n_classes for t in tasks}
    feats = lambda ds: _features(ds, prepared.sfreq)  # noqa: E731
    X_tr, X_te = feats(train_ds), feats(test_ds)
    has_val = len(val_ds) > 0
    X_va = feats(val_ds) if has_val else None
    models = xgb.fit_tasks(
        X_tr,
        {t: train_ds.targets(t) for t in tasks},
        X_va,
        {t: val_ds.targets(t) for t in tasks} if has_val else None,
        n_outputs=n_out,
        multilabel=multilabel,
        seed=seed,
        params=cfg.model.kwargs,
    )
    xgb.save_tasks(models, fdir / "xgboost")
    result = _result(cfg, fold, seed, train_ds, test_ds, xgb.predict_tasks(models, X_te), tasks, fdir)
    result.update(best_epoch=None, epochs_trained=None, resumed_from_epoch=None,
                  checkpoint=str((fdir / "xgboost").relative_to(fdir.parent)), monitor=None)
    return result


def _features(ds, sfreq: float, chunk: int = 256) -> np.ndarray:
    from symaffect.train.xgb import window_features

    parts = []
    for b in range(0, len(ds), chunk):
        batch = ds.get_batch(np.arange(b, min(b + chunk, len(ds))))
        parts.append(window_features({m: v.numpy() for m, v in batch["x"].items()}, sfreq=sfreq))
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts)


def _export_model(cfg, prepared, ckpt_path: Path, dest: Path, *, fold: int, seed: int) -> None:
    """``model.pt``: the best model of one fold/seed, loadable without the trainer."""
    from symaffect import __version__
    from symaffect.models.checkpoint import save_checkpoint

    kwargs = model_kwargs(cfg, prepared)
    model = _load_lightning_weights(ckpt_path, cfg.model.name, kwargs, root=dest.parent)
    w = cfg.data.window
    extra = {
        "config": cfg.to_dict(),
        "window_seconds": float(w.window_seconds),
        "preprocess": {
            "sfreq": float(prepared.sfreq),
            "window_samples": int(w.window_samples(prepared.sfreq)),
            "baseline": w.baseline,
            "baseline_seconds": float(w.baseline_seconds),
            "norm": cfg.data.norm.mode,
            "eval_stride_seconds": float(cfg.data.eval_stride_seconds),
            "modalities": list(cfg.data.modalities),
        },
        "tasks": list(model.tasks),
        "task_set": cfg.data.task_set,
        "class_names": {t: list(r.class_names) for t, r in _task_rules(cfg.data.task_set).tasks},
        "package_version": __version__,
        "fold": int(fold),
        "seed": int(seed),
    }
    if cfg.data.norm.mode == "train_subjects":
        # pooled training-subject statistics (identical rows): the live path applies them
        _, folds = make_folds(cfg, prepared)
        stats = prepared.fit_norm(folds[fold].train_subjects)
        extra["preprocess"]["norm_mean"] = stats.mean[0].tolist()
        extra["preprocess"]["norm_std"] = stats.std[0].tolist()
        extra["preprocess"]["ch_names"] = list(prepared.ch_names)
    save_checkpoint(dest, model, name=cfg.model.name, kwargs=kwargs, extra=extra)


def write_metrics(out: Path, cfg: RunConfig, protocol, runs: list[dict]) -> dict:
    """Aggregate per-run reports into ``out/metrics.json`` (atomically) and return it."""
    from symaffect.eval.metrics import aggregate_reports

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
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def evaluate_run(
    run_dir: str | Path, data_dir: str | Path, *, cache_dir: str | Path | None = None
) -> dict:
    """Re-score the saved best model of every fold/seed on its test windows.

    Reads ``config.yaml`` and ``splits.json`` of ``run_dir`` (the folds are rebuilt from
    the saved subject lists, not re-drawn), rewrites each ``result.json`` and
    ``metrics.json``, and returns the metrics.

    Raises
    ------
    DataError
        ``run_dir`` is not a run folder, or a fold has no checkpoint.
    """
    from symaffect.data.protocols import load_splits

    run = Path(run_dir)
    if not (run / "config.yaml").is_file() or not (run / "splits.json").is_file():
        raise DataError(run, "not a run folder (config.yaml or splits.json missing)")
    cfg = RunConfig.from_yaml(run / "config.yaml")
    prepared = load_data(cfg, data_dir, cache_dir=cache_dir)
    protocol, folds = load_splits(
        run / "splits.json",
        prepared.meta(cfg.data.window),
        None if cfg.protocol.name == "window_random" else prepared.meta(cfg.data.eval_window()),
    )
    runs = []
    for fold in folds:
        for seed in cfg.seeds:
            fdir = _fold_dir(run, fold.fold, seed)
            old_path = fdir / "result.json"
            if not old_path.is_file():
                raise DataError(fdir, "fold was not finished (no result.json); run train again to resume")
            old = read_json(old_path)
            norm_stats = (
                prepared.fit_norm(fold.train_subjects) if cfg.data.norm.mode == "train_subjects" else None
            )
            if cfg.model.name in NON_TORCH_MODELS:
                result = _xgb_evaluate(cfg, prepared, fold, seed, fdir, norm_stats)
            else:
                ckpt = run / str(old.get("checkpoint", ""))
                model = _load_lightning_weights(ckpt, cfg.model.name, model_kwargs(cfg, prepared), root=run)
                result = _evaluate_fold(cfg, prepared, fold, seed, model, norm_stats, fdir)
            for k in ("best_epoch", "epochs_trained", "resumed_from_epoch", "checkpoint", "monitor", "best_score",
                      "learning_curves"):
                if k in old:
                    result[k] = old[k]
            write_json(old_path, result)
            runs.append(result)
    return write_metrics(run, cfg, protocol, runs)


def _xgb_evaluate(cfg, prepared, fold, seed, fdir: Path, norm_stats) -> dict:
    from symaffect.train import xgb

    train_ds, test_ds = _datasets(cfg, prepared, fold, norm_stats)
    rules = _task_rules(cfg.data.task_set)
    tasks = list(rules)
    models = xgb.load_tasks(fdir / "xgboost", {t: rules[t] for t in tasks})
    preds = xgb.predict_tasks(models, _features(test_ds, prepared.sfreq))
    return _result(cfg, fold, seed, train_ds, test_ds, preds, tasks, fdir)


__all__ = [
    "evaluate_run",
    "make_folds",
    "make_protocol",
    "model_kwargs",
    "score",
    "train_run",
    "write_metrics",
]


def metrics_table(metrics: dict):
    """A :class:`rich.table.Table` of a run's ``metrics.json``: per task, the model's
    Acc / macro-F1 / macro-Prec (mean +- std over folds and seeds, in %) with the
    majority baseline (training-set majority class) beside each number.

    The title names the model, the protocol (marked LEAKY when it is) and the number of
    test windows.
    """
    from rich.table import Table

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
