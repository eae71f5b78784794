"""A run's data, protocol and folds, built once from its config.

:class:`RunData` is what training (:mod:`symaffect.train.run`) and scoring
(:mod:`symaffect.eval.scoring`) share: the prepared data, the protocol, the guarded
folds, and per fold the normalisation statistics and the window datasets. Nothing
unpacks the config by hand elsewhere.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symaffect.data import protocols as P
from symaffect.data.contract import PreprocessingContract
from symaffect.data.dataset import WindowDataset
from symaffect.data.labels import majority_rate
from symaffect.data.normalize import NormStats
from symaffect.data.prepare import Prepared, prepare
from symaffect.errors import DataError
from symaffect.spec import TaskSetSpec, task_set
from symaffect.train.config import RunConfig

PROTOCOL_CLASSES: dict[str, type] = {
    "subject_holdout": P.SubjectHoldout,
    "subject_kfold": P.SubjectKFold,
    "loso": P.LeaveOneSubjectOut,
    "trial_holdout": P.TrialHoldout,
    "window_random": P.WindowRandom,
}
"""Config protocol names -> classes of :mod:`symaffect.data.protocols`."""


def make_protocol(cfg: RunConfig):
    """The :mod:`symaffect.data.protocols` object of ``cfg.protocol``."""
    p = cfg.protocol
    kwargs: dict[str, Any] = {"val_ratio": p.val_ratio, "seed": p.seed}
    if p.name in ("subject_holdout", "trial_holdout", "window_random"):
        kwargs["test_ratio"] = p.test_ratio
    if p.name == "subject_kfold":
        kwargs["n_splits"] = p.n_splits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", P.LeakyProtocolWarning)  # warned once by split()
        return PROTOCOL_CLASSES[p.name](**kwargs)


def load_data(cfg: RunConfig, data_dir: str | Path, *, cache_dir: str | Path | None = None) -> Prepared:
    """Prepare ``data_dir`` as ``cfg.data`` says (cached; see :func:`symaffect.data.prepare.prepare`)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "data folder not found")
    return prepare(data_dir, window=cfg.data.window, norm=cfg.data.norm, cache_dir=cache_dir)


def make_folds(cfg: RunConfig, prepared: Prepared) -> tuple[Any, list]:
    """(protocol, folds) for ``cfg`` on ``prepared`` (each fold already guarded)."""
    protocol = make_protocol(cfg)
    folds = protocol.split_prepared(prepared, cfg.data.window, cfg.data.eval_window())
    return protocol, folds


@dataclass
class RunData:
    """The prepared data, protocol and folds of one run.

    Parameters
    ----------
    cfg : RunConfig
    prepared : Prepared
    protocol : protocol object of :mod:`symaffect.data.protocols`
    folds : list of Fold
    """

    cfg: RunConfig
    prepared: Prepared
    protocol: Any
    folds: list

    @classmethod
    def split(cls, cfg: RunConfig, data_dir: str | Path, *, cache_dir: str | Path | None = None,
              prepared: Prepared | None = None) -> RunData:
        """Prepare ``data_dir`` (unless ``prepared`` is given) and draw the folds."""
        prepared = prepared if prepared is not None else load_data(cfg, data_dir, cache_dir=cache_dir)
        protocol, folds = make_folds(cfg, prepared)
        return cls(cfg, prepared, protocol, folds)

    @classmethod
    def from_splits(cls, cfg: RunConfig, splits: Path, data_dir: str | Path, *,
                    cache_dir: str | Path | None = None, prepared: Prepared | None = None) -> RunData:
        """Rebuild the folds saved in ``splits`` (a run's ``splits.json``), not re-drawn."""
        prepared = prepared if prepared is not None else load_data(cfg, data_dir, cache_dir=cache_dir)
        protocol, folds = P.load_splits(
            splits,
            prepared.meta(cfg.data.window),
            None if cfg.protocol.name == "window_random" else prepared.meta(cfg.data.eval_window()),
        )
        return cls(cfg, prepared, protocol, folds)

    @property
    def tasks(self) -> TaskSetSpec:
        return task_set(self.cfg.data.task_set)

    def fold(self, k: int):
        for f in self.folds:
            if f.fold == k:
                return f
        raise DataError("fold", f"{k} is not a fold of this run ({[f.fold for f in self.folds]})")

    def norm_stats(self, fold) -> NormStats | None:
        """The fold's training-subject statistics when ``norm.mode == "train_subjects"``
        (applied per batch), else None (per-subject statistics are in the stored array)."""
        if self.cfg.data.norm.mode != "train_subjects":
            return None
        return self.prepared.fit_norm(fold.train_subjects)

    def dataset(self, fold, part: str) -> WindowDataset:
        """The window dataset of ``part`` (``"train"``, ``"val"`` or ``"test"``) of ``fold``."""
        return self.prepared.dataset(
            getattr(fold, part), modalities=self.cfg.data.modalities, tasks=self.cfg.data.task_set,
            norm=self.norm_stats(fold),
        )

    def train_majority_rate(self, fold) -> dict[str, float | None]:
        """Per task, the share of the fold's training windows in their most frequent class
        (:func:`symaffect.data.labels.majority_rate`): the bar training accuracy must clear."""
        train = self.dataset(fold, "train")
        return {t: majority_rate(train.targets(t)) for t in self.tasks.names}

    def model_kwargs(self) -> dict:
        """Build kwargs of the run's model: ``model.kwargs`` + modalities, task set, window length."""
        cfg = self.cfg
        return {
            **cfg.model.kwargs,
            "modalities": list(cfg.data.modalities),
            "task_set": cfg.data.task_set,
            "n_times": cfg.data.window.window_samples(self.prepared.sfreq),
        }

    def contract(self, fold) -> PreprocessingContract:
        """What the live path must do to the signal to match this run's training data."""
        cfg, prepared = self.cfg, self.prepared
        w = cfg.data.window
        stats = self.norm_stats(fold)
        mean = std = {}
        if stats is not None:  # pooled statistics: identical rows
            mean = dict(zip(prepared.ch_names, map(float, stats.mean[0])))
            std = dict(zip(prepared.ch_names, map(float, stats.std[0])))
        return PreprocessingContract(
            sfreq=float(prepared.sfreq),
            window_samples=int(w.window_samples(prepared.sfreq)),
            modalities=tuple(cfg.data.modalities),
            baseline=w.baseline,
            baseline_seconds=float(w.baseline_seconds),
            norm=cfg.data.norm.mode,
            norm_mean=mean,
            norm_std=std,
            eval_stride_seconds=float(cfg.data.eval_stride_seconds),
        )
