"""Train one run: all folds of a protocol x all seeds, into one run folder.

Training fits and writes; it does not score. :func:`train_run` writes the run folder's
training half (``config.yaml``, ``splits.json``, per fold/seed the checkpoints, logs,
learning curves and ``fit.json``, and ``model.pt``); :func:`symaffect.eval.scoring.score_run`
then writes the scores (``result.json``, ``predictions.npz``, ``metrics.json``). The layout
and its file names belong to :class:`symaffect.run_folder.RunFolder`.

``fit.json`` (one per fold/seed; its presence marks the fold/seed finished)::

    {"fold", "seed", "train_subjects", "val_subjects", "test_subjects",
     "n_train_windows", "n_val_windows", "n_test_windows",
     "best_epoch", "epochs_trained", "resumed_from_epoch",
     "checkpoint" (relative to the run folder: best.ckpt, last.ckpt or xgboost/),
     "monitor", "best_score", "learning_curves" (PNG, relative; None without logs)}

Distributed training: ``trainer.strategy="ddp"`` with ``devices`` / ``num_nodes`` > 1, best
launched with ``torchrun`` (one process per device; every process calls
:func:`train_run`, only global rank 0 writes files). The batch size is per process. With
Lightning's own launcher (no ``torchrun``) keep to one fold and one seed per call: it
re-launches the script for each ``fit``.
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

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.loggers import CSVLogger

from symaffect import __version__
from symaffect.data.protocols import save_splits
from symaffect.errors import ConfigError, Interrupted
from symaffect.models.calibration import POOL_WINDOWS, CalibrationPool
from symaffect.models.checkpoint import save_checkpoint
from symaffect.models.registry import is_import_path, list_models, model_class
from symaffect.run_folder import RunFolder
from symaffect.train import xgb
from symaffect.train.checkpoints import best_score, load_lightning_weights, resume_point
from symaffect.train.config import RunConfig, resolve_monitor
from symaffect.train.curves import write_learning_curves
from symaffect.train.datamodule import AffectDataModule, FoldWindows
from symaffect.train.module import AffectModule, predict_embeddings
from symaffect.train.rundata import RunData

log = logging.getLogger(__name__)

NON_TORCH_MODELS: tuple[str, ...] = ("xgboost",)
"""Model names trained outside Lightning (see :mod:`symaffect.train.xgb`)."""


def is_global_zero() -> bool:
    """Whether this process is global rank 0, from the launcher's environment.

    ``torchrun`` sets ``RANK``; Lightning's own launcher sets ``LOCAL_RANK`` and
    ``NODE_RANK`` in the processes it starts. Not distributed: True.
    """
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def check_model_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a non-torch model or a model the
    registry resolves (registered, an installed entry point, or a trusted import path);
    an untrusted import path keeps the registry's one-line hint on how to allow it."""
    if name in NON_TORCH_MODELS:
        return
    if is_import_path(name):
        model_class(name)  # UntrustedModel / DataError: one line naming the model and the fix
        return
    known = [*list_models(), *NON_TORCH_MODELS]
    if name not in known:
        raise ConfigError(f"model.name: {name!r} is not a registered model; known: {', '.join(known)}")


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
    data: RunData | None = None,
) -> RunData:
    """Train every fold x seed of ``cfg`` on ``data_dir`` and write the run folder's training half.

    Parameters
    ----------
    cfg : RunConfig
    data_dir : path
        A folder of DEAP ``sNN.dat`` files.
    out_dir : path
        The run folder (created). If it already holds a run of the same config, finished
        folds are kept and an unfinished one resumes from its ``last.ckpt`` -- also after
        the folder was moved or copied.
    resume : bool
        False: refuse a folder that already holds a run.
    progress : bool
        Show Lightning's progress bars.
    cache_dir : path, optional
        Cache of prepared data (default: ``$SYMAFFECT_CACHE`` or ``~/.cache/symaffect``).
    callbacks : sequence of lightning.Callback
        Extra callbacks given to every Trainer.
    data : RunData, optional
        The run's data and folds, if the caller has them already.

    Returns
    -------
    RunData
        The data and folds trained on (score them with
        :func:`symaffect.eval.scoring.score_run`).

    Raises
    ------
    ConfigError
        The folder holds a run of another config, or ``resume`` is False and it holds one.
    Interrupted
        SIGTERM arrived (the finished epochs are saved; a rerun resumes).
    """
    run = RunFolder(Path(out_dir).resolve())
    check_model_name(cfg.model.name)
    rank0 = is_global_zero()
    if run.config.exists():
        if not resume:
            raise ConfigError(f"{run.root}: already holds a run; use another folder or resume")
        if RunConfig.from_yaml(run.config) != cfg:
            raise ConfigError(f"{run.root}: holds a run of a different config; use another folder")
    data = data if data is not None else RunData.split(cfg, data_dir, cache_dir=cache_dir)
    if rank0:
        run.root.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(run.config)
        save_splits(run.splits, data.folds, data.protocol)
    first: tuple | None = None
    trained_now = False
    for fold in data.folds:
        for seed in cfg.seeds:
            fit = run.read_fit(fold.fold, seed)
            if fit is not None:
                log.info("fold %d seed %d: already trained", fold.fold, seed)
            else:
                if cfg.model.name in NON_TORCH_MODELS:
                    fit = _xgb_fold(data, fold, seed, run) if rank0 else None
                else:
                    fit = _torch_fold(data, fold, seed, run, progress, callbacks)
                if fit is None:  # not global rank 0
                    continue
                run.write_fit(fold.fold, seed, fit)
                trained_now = True
            first = first or (fold, seed, fit)
    stale = trained_now or not run.model.is_file()  # a rerun of a finished run rewrites nothing
    if rank0 and first is not None and stale and cfg.model.name not in NON_TORCH_MODELS:
        fold, seed, fit = first
        _export_model(data, fold, seed, run.resolve(fit["checkpoint"]), run)
    return data


def _fit_record(fold, seed: int) -> dict:
    return {
        "fold": int(fold.fold),
        "seed": int(seed),
        "train_subjects": list(fold.train_subjects),
        "val_subjects": list(fold.val_subjects),
        "test_subjects": list(fold.test_subjects),
        "n_train_windows": int(len(fold.train)),
        "n_val_windows": int(len(fold.val)),
        "n_test_windows": int(len(fold.test)),
    }


def _torch_fold(data: RunData, fold, seed: int, run: RunFolder, progress: bool, callbacks) -> dict | None:
    cfg = data.cfg
    L.seed_everything(seed, workers=True, verbose=False)
    kwargs = data.model_kwargs()
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
    dm = AffectDataModule(
        data.prepared,
        FoldWindows(fold.train, fold.val, fold.test),
        modalities=cfg.data.modalities,
        task_set=cfg.data.task_set,
        batch_size=cfg.optim.batch_size,
        seed=seed,
        max_train_windows_per_epoch=cfg.trainer.max_train_windows_per_epoch,
        norm_stats=data.norm_stats(fold),
        num_workers=cfg.trainer.num_workers,
    )
    has_val = len(fold.val) > 0
    monitor = resolve_monitor(cfg.optim.monitor, list(module.tasks)) if has_val else None
    if not has_val:
        log.warning("fold %d has no validation windows: no early stopping, the last epoch is kept", fold.fold)
    fdir = run.fold_dir(fold.fold, seed)
    ckpt_dir = run.checkpoint_dir(fold.fold, seed)
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
    resume_from, resumed_from = resume_point(ckpt_dir)
    if resume_from is not None:
        log.info("fold %d seed %d: resuming from %s (epoch %d)", fold.fold, seed, resume_from, resumed_from)
    trainer.fit(module, datamodule=dm, ckpt_path=None if resume_from is None else str(resume_from),
                weights_only=True)
    if not trainer.is_global_zero:
        return None
    # the files by name, not Lightning's remembered absolute paths (a moved folder resumes)
    best = ckpt_dir / "best.ckpt"
    if monitor is None or not best.is_file():
        best = ckpt_dir / "last.ckpt"
    _, ck = load_lightning_weights(best, cfg.model.name, kwargs, root=run.root)
    fit = _fit_record(fold, seed)
    fit.update(
        best_epoch=int(ck["epoch"]),
        epochs_trained=int(trainer.current_epoch),
        resumed_from_epoch=resumed_from,
        checkpoint=run.relative(best),
        monitor=monitor,
        best_score=best_score(ck) if monitor is not None else None,
        train_majority_rate=data.train_majority_rate(fold),
    )
    fit["learning_curves"] = _learning_curves(run, fdir, fit, cfg.model.name)
    return fit


def _learning_curves(run: RunFolder, fdir: Path, fit: dict, model_name: str) -> str | None:
    """Write ``fdir/learning_curves.png`` from the CSV logs; its path relative to the run
    folder, or None (with a warning) when the logs are missing or hold no epoch row."""
    try:
        path = write_learning_curves(
            fdir,
            majority=fit.get("train_majority_rate"),
            best_epoch=fit.get("best_epoch"),
            title=f"{model_name} · fold {fit['fold']} seed {fit['seed']} · "
                  f"dashed: training-set majority rate",
        )
    except (FileNotFoundError, ValueError) as e:
        log.warning("%s: no learning curves (%s)", fdir, e)
        return None
    return run.relative(path)


def _xgb_fold(data: RunData, fold, seed: int, run: RunFolder) -> dict:
    """The XGBoost branch: features per window, one classifier per task."""
    cfg, spec = data.cfg, data.tasks
    train_ds, val_ds = data.dataset(fold, "train"), data.dataset(fold, "val")
    has_val = len(val_ds) > 0
    fs = xgb.peripheral_feature_set(cfg.model.kwargs)
    models = xgb.fit_tasks(
        xgb.dataset_features(train_ds, data.prepared.sfreq, peripheral_features=fs),
        {t: train_ds.targets(t) for t in spec.names},
        xgb.dataset_features(val_ds, data.prepared.sfreq, peripheral_features=fs) if has_val else None,
        {t: val_ds.targets(t) for t in spec.names} if has_val else None,
        n_outputs=spec.n_outputs,
        multilabel=spec.kind == "multilabel",
        seed=seed,
        params=cfg.model.kwargs,
        features=fs,
    )
    folder = run.xgboost_dir(fold.fold, seed)
    xgb.save_tasks(models, folder)
    fit = _fit_record(fold, seed)
    fit.update(best_epoch=None, epochs_trained=None, resumed_from_epoch=None,
               checkpoint=run.relative(folder), monitor=None, best_score=None)
    return fit


def _export_model(data: RunData, fold, seed: int, ckpt_path: Path, run: RunFolder) -> None:
    """``model.pt``: the best model of one fold/seed, loadable without the trainer, with the
    preprocessing contract the live path applies (:mod:`symaffect.data.contract`)."""
    cfg = data.cfg
    kwargs = data.model_kwargs()
    model, _ = load_lightning_weights(ckpt_path, cfg.model.name, kwargs, root=run.root)
    extra = {
        "config": cfg.to_dict(),
        "window_seconds": float(cfg.data.window.window_seconds),
        "preprocess": data.contract(fold).to_dict(),
        "tasks": list(model.tasks),
        "task_set": cfg.data.task_set,
        "class_names": {t: list(c) for t, c in data.tasks.class_names.items()},
        "package_version": __version__,
        "fold": int(fold.fold),
        "seed": int(seed),
    }
    if hasattr(model, "embed"):  # the population a listener's calibration re-centres onto
        train_ds = data.dataset(fold, "train")
        mean, pool = population(model, train_ds, fold.meta.subject_of(np.asarray(train_ds.index)), data.tasks.names)
        extra["embedding_mean"] = mean.tolist()
        extra["calibration_pool"] = pool.to_extra()
    save_checkpoint(run.model, model, name=cfg.model.name, kwargs=kwargs, extra=extra)


POPULATION_WINDOWS = 4096
"""Most training windows the population mean embedding is computed on (evenly spaced)."""


def _evenly(n: int, k: int) -> np.ndarray:
    """Up to ``k`` evenly spaced indices of ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64)) if n else np.zeros(0, np.int64)


def population(model, train_ds, subjects: np.ndarray, tasks) -> tuple[np.ndarray, CalibrationPool]:
    """The training population a listener's calibration works against, from one pass of
    ``model.embed`` over (evenly spaced) training windows.

    Parameters
    ----------
    model : nn.Module
        A model with ``embed``.
    train_ds : WindowDataset
    subjects : ndarray, shape (len(train_ds),)
        The subject of every training window.
    tasks : sequence of str

    Returns
    -------
    mean : ndarray, shape (D,)
        Mean embedding over up to :data:`POPULATION_WINDOWS` windows (what ``recentre``
        moves a listener onto; ``model.pt extra.embedding_mean``).
    pool : CalibrationPool
        Up to :data:`~symaffect.models.calibration.POOL_WINDOWS` windows' embeddings, every
        training listener re-centred on their own mean (over their windows among these)
        and moved onto the pool's mean, with the windows' targets (what ``pooled`` refits
        on; ``model.pt extra.calibration_pool``).
    """
    n = len(train_ds)
    mean_idx, pool_idx = _evenly(n, POPULATION_WINDOWS), _evenly(n, POOL_WINDOWS)
    idx = np.union1d(mean_idx, pool_idx)
    z = predict_embeddings(model, (train_ds.get_batch(idx[i:i + 256]) for i in range(0, len(idx), 256)))
    z = z.double().numpy()
    mean = z[np.searchsorted(idx, mean_idx)].mean(axis=0)
    zp = z[np.searchsorted(idx, pool_idx)]
    subj = np.asarray(subjects)[pool_idx]
    out = zp + zp.mean(axis=0)
    for s in np.unique(subj):
        m = subj == s
        out[m] -= zp[m].mean(axis=0)
    return mean, CalibrationPool(z=out, targets={t: np.asarray(train_ds.targets(t))[pool_idx] for t in tasks})


__all__ = ["NON_TORCH_MODELS", "check_model_name", "is_global_zero", "population", "train_run"]
