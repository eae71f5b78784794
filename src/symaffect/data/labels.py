"""Label rules: small explicit objects that turn DEAP ratings into targets.

A rule is called on a ratings array ``(n, 4)`` (valence, arousal, dominance, liking;
continuous in [1, 9]) and returns one target per row. Rules never look at signals.

* :class:`NineClass` — 9 ordinal classes: ``clip(floor(r + 0.5), 1, 9) - 1``. Ratings
  are rounded **half up** (4.5 -> 5 -> class 4), not with numpy's half-to-even
  ``round`` (which would send 4.5 to 4).
* :class:`Binary` — high (1) when ``r > threshold`` (default 5), else low (0); 5.0 is low.
* :class:`Quadrant5` — one of five classes: Q1 HV-HA, Q2 LV-HA, Q3 LV-LA, Q4 HV-LA
  (high/low as in :class:`Binary`), and Neutral.
* :class:`QuadrantMultiLabel` — the 5-dim multi-hot target of the quadrant branch:
  the quadrant's bit, plus the Neutral bit when the point is neutral (both can be 1).

Neutral is **our definition** (the paper does not give one): ``|v - c| <= band`` and
``|a - c| <= band`` with ``c = threshold`` (5) and ``band = neutral_band`` (1.0), i.e.
both valence and arousal within [4, 6]. Both numbers are configurable. The rule itself
is :class:`symaffect.spec.QuadrantRule`, the one the live predictor and the report use;
the named presets (:data:`PRESETS`) are built from :data:`symaffect.spec.TASK_SETS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from symaffect.errors import ConfigError
from symaffect.spec import (
    LABEL_COLUMNS,
    QUADRANT_CODES,
    TASK_SETS,
    QuadrantRule,
    TaskSpec,
)

QUADRANT_NAMES = QUADRANT_CODES
"""Quadrant class names (:data:`symaffect.spec.QUADRANT_CODES`)."""


def _column(labels: np.ndarray, column: str) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != len(LABEL_COLUMNS):
        raise ValueError(f"ratings must have shape (n, {len(LABEL_COLUMNS)}), got {labels.shape}")
    return labels[:, LABEL_COLUMNS.index(column)]


def _check_column(column: str) -> None:
    if column not in LABEL_COLUMNS:
        raise ConfigError(f"label column: {column!r} is not one of {LABEL_COLUMNS}")


class LabelRule:
    """Base of label rules.

    Attributes
    ----------
    kind : {"multiclass", "multilabel"}
        ``multiclass`` targets are int64 class ids, shape (n,); ``multilabel`` targets
        are float32 multi-hot vectors, shape (n, n_classes).
    """

    kind: ClassVar[str] = "multiclass"
    rule: ClassVar[str] = ""

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_names(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, labels: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"rule": self.rule, **dataclasses.asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class NineClass(LabelRule):
    """9 ordinal classes from one rating column: ``clip(floor(r + 0.5), 1, 9) - 1``."""

    column: str = "valence"
    rule: ClassVar[str] = "nine_class"

    def __post_init__(self) -> None:
        _check_column(self.column)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(i) for i in range(1, 10))

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        r = _column(labels, self.column)
        return (np.clip(np.floor(r + 0.5), 1, 9) - 1).astype(np.int64)


@dataclass(frozen=True)
class Binary(LabelRule):
    """High (1) when the rating is strictly above ``threshold``, else low (0)."""

    column: str = "valence"
    threshold: float = 5.0
    rule: ClassVar[str] = "binary"

    def __post_init__(self) -> None:
        _check_column(self.column)

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("low", "high")

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        return (_column(labels, self.column) > self.threshold).astype(np.int64)


def _quadrant_parts(labels: np.ndarray, threshold: float, band: float) -> tuple[np.ndarray, np.ndarray]:
    v = _column(labels, "valence")
    a = _column(labels, "arousal")
    rule = QuadrantRule(threshold, band)
    return rule.ids(v, a, with_neutral=False), rule.is_neutral(v, a)


@dataclass(frozen=True)
class Quadrant5(LabelRule):
    """Single-label valence-arousal quadrant: Q1..Q4 (ids 0-3), Neutral (id 4).

    Parameters
    ----------
    threshold : float
        High when the rating is > threshold; also the centre of the neutral box.
    neutral_band : float
        Neutral when both ``|v - threshold|`` and ``|a - threshold|`` are <= this.
    with_neutral : bool
        True: neutral points get class 4 (Neutral wins over the quadrant).
        False: no Neutral class; a 4-class quadrant task (ids 0-3).
    """

    threshold: float = 5.0
    neutral_band: float = 1.0
    with_neutral: bool = True
    rule: ClassVar[str] = "quadrant5"

    @property
    def class_names(self) -> tuple[str, ...]:
        return QUADRANT_NAMES if self.with_neutral else QUADRANT_NAMES[:4]

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        v, a = _column(labels, "valence"), _column(labels, "arousal")
        return QuadrantRule(self.threshold, self.neutral_band).ids(v, a, with_neutral=self.with_neutral)


@dataclass(frozen=True)
class QuadrantMultiLabel(LabelRule):
    """5-dim multi-hot target: one quadrant bit (always) plus the Neutral bit when neutral."""

    threshold: float = 5.0
    neutral_band: float = 1.0
    kind: ClassVar[str] = "multilabel"
    rule: ClassVar[str] = "quadrant_multilabel"

    @property
    def class_names(self) -> tuple[str, ...]:
        return QUADRANT_NAMES

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        quadrant, neutral = _quadrant_parts(labels, self.threshold, self.neutral_band)
        out = np.zeros((len(quadrant), 5), dtype=np.float32)
        out[np.arange(len(quadrant)), quadrant] = 1.0
        out[:, 4] = neutral
        return out


RULES: dict[str, type[LabelRule]] = {
    c.rule: c for c in (NineClass, Binary, Quadrant5, QuadrantMultiLabel)
}


def rule_from_dict(d: Mapping) -> LabelRule:
    """Inverse of :meth:`LabelRule.to_dict`."""
    d = dict(d)
    name = d.pop("rule", None)
    if name not in RULES:
        raise ConfigError(f"label rule: {name!r} is not one of {tuple(RULES)}")
    return RULES[name](**d)


@dataclass(frozen=True)
class TaskSet(Mapping):
    """An ordered mapping task name -> label rule.

    Parameters
    ----------
    tasks : tuple of (str, LabelRule)
    """

    tasks: tuple[tuple[str, LabelRule], ...]

    def __post_init__(self) -> None:
        names = [n for n, _ in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"tasks: duplicate task names in {names}")

    def __getitem__(self, name: str) -> LabelRule:
        for n, r in self.tasks:
            if n == name:
                return r
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (n for n, _ in self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def apply(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Targets of every task for ratings ``labels`` (n, 4)."""
        return {n: r(labels) for n, r in self.tasks}

    def to_dict(self) -> dict:
        return {n: r.to_dict() for n, r in self.tasks}

    @classmethod
    def from_dict(cls, d: Mapping) -> TaskSet:
        return cls(tuple((n, rule_from_dict(r)) for n, r in d.items()))

    @classmethod
    def of(cls, tasks: str | Mapping[str, LabelRule] | TaskSet) -> TaskSet:
        """A TaskSet from a preset name, a mapping, or a TaskSet."""
        if isinstance(tasks, TaskSet):
            return tasks
        if isinstance(tasks, str):
            if tasks not in PRESETS:
                raise ConfigError(f"tasks: {tasks!r} is not one of {tuple(PRESETS)}")
            return PRESETS[tasks]
        return cls(tuple(tasks.items()))


def majority_rate(y) -> float | None:
    """Share of targets ``y`` in their most frequent class (for multi-hot targets: the most
    frequent label vector); None when ``y`` is empty.

    The accuracy reached by predicting one class: the bar a model's *training* accuracy
    must clear before it has learned more than the class prior.
    """
    y = np.asarray(y)
    if len(y) == 0:
        return None
    if y.ndim == 1:
        return float(np.bincount(y.astype(np.int64)).max() / len(y))
    _, counts = np.unique(y.astype(np.int64), axis=0, return_counts=True)
    return float(counts.max() / len(y))


def rule_for(task: TaskSpec) -> LabelRule:
    """The label rule of one task of :data:`symaffect.spec.TASK_SETS`."""
    if task.rule == "nine_class":
        return NineClass(task.column)
    if task.rule == "binary":
        return Binary(task.column, task.threshold)
    if task.rule == "quadrant":
        return Quadrant5(task.threshold, task.neutral_band, task.with_neutral)
    return QuadrantMultiLabel(task.threshold, task.neutral_band)


PRESETS: dict[str, TaskSet] = {
    name: TaskSet(tuple((t.name, rule_for(t)) for t in spec.tasks)) for name, spec in TASK_SETS.items()
}
"""Named task sets, one per :data:`symaffect.spec.TASK_SETS` entry: the paper's multi-task
9-class model and the single-task protocols."""
