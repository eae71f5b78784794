"""Run configuration: nested frozen dataclasses that round-trip to YAML.

A run is fully described by one :class:`RunConfig`; ``config.yaml`` in a run folder is
``RunConfig.to_yaml()`` and ``RunConfig.from_yaml`` reads it back (unknown keys raise
:class:`~symaffect.errors.ConfigError` naming the key).

Two presets (:func:`preset`):

``"paper"``
    The paper's section 4.2: Adam, lr 1e-4, batch 32, weight decay 1e-5, up to 120
    epochs, early stopping on the validation valence loss (patience 10: the paper gives
    none), 10-s windows at a 1-s training stride, non-overlapping evaluation windows,
    learnable task weights, focal loss gamma 2 and label smoothing 0.1, the model's
    default (paper) hyper-parameters, subject-wise 8:2 hold-out with validation subjects.
``"quick"``
    For a CPU in a few minutes on a small set (8 subjects x 16 trials). Changes against
    ``"paper"``, all of them listed in :data:`QUICK_CHANGES`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from symaffect._io import read_text, write_text
from symaffect.data.normalize import NormConfig
from symaffect.data.windows import WindowConfig
from symaffect.errors import ConfigError, DataError
from symaffect.models.registry import constructor_defaults

PROTOCOLS: tuple[str, ...] = (
    "subject_holdout",
    "subject_kfold",
    "loso",
    "trial_holdout",
    "window_random",
)
"""Protocol names a config may use (``window_random`` is the leaky one)."""

ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "gpu", "cuda", "mps")
"""``trainer.accelerator`` values (Lightning's names)."""

SEED_MAX = 2**32 - 1
"""Largest seed (numpy's and Lightning's ``seed_everything`` range is 0 .. 2**32 - 1)."""


def _check_seed(seed: int, where: str) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"{where}: {seed} is not in 0..{SEED_MAX}")


@dataclass(frozen=True)
class DataConfig:
    """What windows the model sees.

    Parameters
    ----------
    window : WindowConfig
        Window length, *training* stride and baseline handling.
    norm : NormConfig
        Normalisation (per-subject z-score by default, as in the paper).
    eval_stride : float or str
        Stride of validation and test windows in seconds, or ``"non_overlapping"``
        (stride = window length).
    modalities : tuple of str
        Modalities given to the model.
    task_set : str
        Label preset of :mod:`symaffect.data.labels` (``"multitask9"``, ...).
    """

    window: WindowConfig = field(default_factory=WindowConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    eval_stride: float | str = "non_overlapping"
    modalities: tuple[str, ...] = ("eeg", "peripheral", "eog")
    task_set: str = "multitask9"

    def __post_init__(self) -> None:
        if isinstance(self.eval_stride, str) and self.eval_stride != "non_overlapping":
            raise ConfigError(
                f"data.eval_stride: {self.eval_stride!r} is neither seconds nor 'non_overlapping'"
            )
        if not isinstance(self.eval_stride, str) and not self.eval_stride > 0:
            raise ConfigError(f"data.eval_stride: must be > 0, got {self.eval_stride}")
        if not self.modalities:
            raise ConfigError("data.modalities: at least one modality is needed")

    @property
    def eval_stride_seconds(self) -> float:
        """The evaluation stride in seconds."""
        if self.eval_stride == "non_overlapping":
            return float(self.window.window_seconds)
        return float(self.eval_stride)

    def eval_window(self) -> WindowConfig:
        """The :class:`WindowConfig` of validation and test windows."""
        return dataclasses.replace(self.window, stride_seconds=self.eval_stride_seconds)


@dataclass(frozen=True)
class ProtocolConfig:
    """How subjects (or trials, or windows) are split into train / val / test.

    Parameters
    ----------
    name : str
        One of :data:`PROTOCOLS`.
    test_ratio : float
        Fraction of subjects (trials, windows) in the test set (hold-out protocols).
    val_ratio : float
        Fraction of the *training* subjects (trials, windows) held out for validation
        and early stopping (0.125: 32 DEAP subjects at 8:2 give 21 / 4 / 7).
    n_splits : int
        Number of folds of ``subject_kfold``.
    seed : int
        Seed of the split.
    """

    name: str = "subject_holdout"
    test_ratio: float = 0.2
    val_ratio: float = 0.125
    n_splits: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise ConfigError(f"protocol.name: {self.name!r}; allowed: {', '.join(PROTOCOLS)}")
        if not 0 < self.test_ratio < 1:
            raise ConfigError(f"protocol.test_ratio: must be in (0, 1), got {self.test_ratio}")
        if not 0 <= self.val_ratio < 1:
            raise ConfigError(f"protocol.val_ratio: must be in [0, 1), got {self.val_ratio}")
        if self.n_splits < 2:
            raise ConfigError(f"protocol.n_splits: must be >= 2, got {self.n_splits}")
        _check_seed(self.seed, "protocol.seed")


@dataclass(frozen=True)
class ModelConfig:
    """A registered model and its constructor's keyword arguments.

    ``modalities`` and ``task_set`` are passed from :class:`DataConfig`; do not repeat
    them in ``kwargs``.
    """

    name: str = "symaffect"
    kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k in ("modalities", "task_set"):
            if k in self.kwargs:
                raise ConfigError(f"model.kwargs.{k}: set it in data.{k} instead")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser, schedule and stopping rule (Adam; early stopping on ``monitor``).

    ``monitor`` names a logged validation metric; when it names a task the run does not
    have (for example ``val/valence_loss`` for single-task arousal) the run monitors
    the loss of its first task instead (:func:`resolve_monitor`).

    ``schedule``, ``warmup`` and ``grad_clip`` are the training recipe of
    :mod:`symaffect.train.recipe`: a linear warm-up over ``warmup`` of the planned
    optimiser steps, then a cosine decay to zero at ``max_epochs`` (or a constant
    rate), and gradient-norm clipping. The paper's plain Adam is ``schedule:
    constant, warmup: 0, grad_clip: null``.
    """

    lr: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 32
    max_epochs: int = 120
    patience: int = 10
    monitor: str = "val/valence_loss"
    schedule: str = "cosine"
    warmup: float = 0.05
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"optim.lr: must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay: must be >= 0, got {self.weight_decay}")
        if self.batch_size < 1:
            raise ConfigError(f"optim.batch_size: must be >= 1, got {self.batch_size}")
        if self.max_epochs < 1:
            raise ConfigError(f"optim.max_epochs: must be >= 1, got {self.max_epochs}")
        if self.patience < 1:
            raise ConfigError(f"optim.patience: must be >= 1, got {self.patience}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"optim.schedule: {self.schedule!r}; allowed: cosine, constant")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"optim.warmup: must be in [0, 1), got {self.warmup}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"optim.grad_clip: must be > 0 or null, got {self.grad_clip}")


@dataclass(frozen=True)
class LossConfig:
    """Multi-task loss: task weighting and focal loss (eq. 28-29)."""

    weighting: str = "learnable"
    gamma: float = 2.0
    alpha: float = 0.1

    def __post_init__(self) -> None:
        if self.weighting not in ("learnable", "fixed", "softmax"):
            raise ConfigError(
                f"loss.weighting: {self.weighting!r}; allowed: learnable, fixed, softmax"
            )
        if self.gamma < 0 or not 0 <= self.alpha < 1:
            raise ConfigError("loss: gamma must be >= 0 and alpha in [0, 1)")


@dataclass(frozen=True)
class TrainerConfig:
    """Lightning Trainer settings.

    Parameters
    ----------
    accelerator, devices, num_nodes, strategy, precision, deterministic
        Passed to :class:`lightning.Trainer` (``strategy="ddp"`` with ``devices`` /
        ``num_nodes`` > 1 for distributed training, or launch with ``torchrun``).
    max_train_windows_per_epoch : int or None
        If set, each epoch trains on a fresh seeded random subset of this many training
        windows (a CPU economy; ``None`` = all windows every epoch).
    num_workers : int
        DataLoader workers (0 = the main process; windows are cheap numpy views).
    """

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    deterministic: bool = True
    max_train_windows_per_epoch: int | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(f"trainer.accelerator: {self.accelerator!r}; allowed: {', '.join(ACCELERATORS)}")
        if self.devices < 1 or self.num_nodes < 1:
            raise ConfigError("trainer: devices and num_nodes must be >= 1")
        if self.max_train_windows_per_epoch is not None and self.max_train_windows_per_epoch < 1:
            raise ConfigError("trainer.max_train_windows_per_epoch: must be >= 1 or null")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run (all folds x all seeds)."""

    data: DataConfig = field(default_factory=DataConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("seeds: at least one seed is needed")
        for s in self.seeds:
            _check_seed(s, "seeds")

    # --- conversions ------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain dict (tuples as lists) that :meth:`from_dict` reads back."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> RunConfig:
        """Build from a (possibly partial) dict; missing keys keep their defaults.

        Raises
        ------
        ConfigError
            On an unknown key (named with its dotted path) or a value of the wrong type.
        """
        return _from_mapping(cls, data, "")

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of :meth:`to_dict`; also written (atomically) to ``path`` if given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> RunConfig:
        """Read a YAML file (a path) or YAML text (a string holding a newline or ``:``).

        Raises
        ------
        ConfigError
            Unreadable file, invalid YAML, unknown key or bad value; the message names
            the file (when reading one) and the key.
        """
        if isinstance(source, Path) or ("\n" not in source and ":" not in source):

            path = Path(source)
            if not path.is_file():
                raise ConfigError(f"{path}: no such config file")
            try:
                text = read_text(path, max_bytes=16 << 20)
            except DataError as e:
                raise ConfigError(str(e)) from None
            where = f"{path}: "
        else:
            text, where = source, ""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}config is not valid YAML: {str(e).splitlines()[0]}") from None
        except RecursionError:
            raise ConfigError(f"{where}config is nested too deeply") from None
        if data is None:
            data = {}
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            if not where:
                raise
            raise ConfigError(f"{where}{e}") from None

    def replace(self, **changes: Any) -> RunConfig:
        """Copy with nested changes by dotted key: ``cfg.replace(**{"optim.lr": 1e-3})``."""
        d = self.to_dict()
        for key, value in changes.items():
            node = d
            *head, last = key.split(".")
            for h in head:
                if not isinstance(node.get(h), dict):
                    raise ConfigError(f"{key}: unknown key")
                node = node[h]
            if last not in node:
                raise ConfigError(f"{key}: unknown key")
            node[last] = _to_plain(value)
        return RunConfig.from_dict(d)


QUICK_CHANGES: dict[str, str] = {
    "data.window.stride_seconds": "5 s training stride instead of 1 s (5x fewer windows)",
    "trainer.max_train_windows_per_epoch": "at most 1024 (a fresh random subset) training windows per epoch",
    "optim.lr": "1e-3 instead of 1e-4 (few epochs)",
    "optim.max_epochs": "10 instead of 120",
    "optim.patience": "3 instead of 10",
    "protocol.val_ratio": "0.25 instead of 0.125 of the training subjects for validation: with "
    "the few subjects of a CPU-sized set, 0.125 leaves one validation subject, whose loss "
    "picks an essentially random epoch",
    "model.kwargs": "a smaller model: d = tau = 32 and the low-rank temporal mixer for "
    "symaffect (see quick_model_kwargs)",
}
"""What the ``"quick"`` preset changes against ``"paper"``, and why."""


def quick_model_kwargs(name: str) -> dict:
    """Smaller hyper-parameters for the ``"quick"`` preset of a model (may be empty).

    Only keyword arguments the model's constructor accepts are returned.
    """
    wanted = {"d": 32, "tau": 32, "dim": 32, "hidden": 32, "d_model": 32, "mixer": "lowrank"}
    if name == "xgboost":
        return {"n_estimators": 100, "max_depth": 4}

    try:
        params = set(constructor_defaults(name))
    except ValueError:
        return {}
    return {k: v for k, v in wanted.items() if k in params}


def preset(name: str, *, model: str = "symaffect") -> RunConfig:
    """The ``"paper"`` or ``"quick"`` configuration for ``model``.

    Parameters
    ----------
    name : {"paper", "quick"}
    model : str
        Registered model name.
    """
    if name == "paper":
        return RunConfig(model=ModelConfig(name=model))
    if name == "quick":
        base = RunConfig()
        return RunConfig(
            data=dataclasses.replace(
                base.data, window=dataclasses.replace(base.data.window, stride_seconds=5.0)
            ),
            protocol=dataclasses.replace(base.protocol, val_ratio=0.25),
            model=ModelConfig(name=model, kwargs=quick_model_kwargs(model)),
            optim=dataclasses.replace(base.optim, lr=1e-3, max_epochs=10, patience=3),
            trainer=dataclasses.replace(base.trainer, max_train_windows_per_epoch=1024),
        )
    raise ConfigError(f"preset: {name!r}; allowed: paper, quick")


def resolve_monitor(monitor: str, tasks: list[str] | tuple[str, ...]) -> str:
    """The metric early stopping watches: ``monitor``, or the first task's loss.

    ``val/<task>_loss`` for a task not in ``tasks`` falls back to ``val/<tasks[0]>_loss``.
    """
    if monitor.startswith("val/") and monitor.endswith("_loss") and monitor != "val/loss":
        task = monitor[len("val/") : -len("_loss")]
        if task not in tasks:
            return f"val/{tasks[0]}_loss"
    return monitor


# --- generic dataclass <-> plain data ---------------------------------------------------


def _to_plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj) if f.init}
    if isinstance(obj, (tuple, list)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _from_mapping(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"{path}: unknown key; allowed: {', '.join(names)}")
        kwargs[key] = _convert(hints[key], value, path)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or 'config'}: {e}") from e


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if is_dataclass(tp):
        return _from_mapping(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if not -(2**63) <= value < 2**63:
            raise ConfigError(f"{where}: {value} is out of the 64-bit integer range")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{where}: {value} is too large for a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r}; allowed: {', '.join(map(str, args))}")
        return value
    return value


def _type_name(tp: Any) -> str:
    return " or ".join(
        getattr(a, "__name__", str(a)) for a in typing.get_args(tp) if a is not type(None)
    )
