"""The shared contract: DEAP's channel layout and one frozen spec per modality.

Both :mod:`symaffect.data` and :mod:`symaffect.models` read this module; neither
imports the other. A model takes ``{modality: Tensor(B, C, T)}`` where the channel
order of each tensor is :attr:`ModalitySpec.ch_names`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SFREQ = 128.0
"""Sampling rate of DEAP's preprocessed data (Hz)."""

N_TRIALS = 40
N_CHANNELS = 40
N_SAMPLES = 8064
"""63 s at 128 Hz: a 3-s pre-trial baseline, then the 60-s music video."""
BASELINE_SAMPLES = 384
WINDOW_SAMPLES = 1280
"""The paper's 10-s window at 128 Hz."""

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7",
    "PO3", "O1", "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz",
    "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)
"""DEAP's EEG channels in the Geneva order of the preprocessed files (indices 0-31)."""

EEG_CHANNELS_TWENTE: tuple[str, ...] = (
    "Fp1", "AF3", "F7", "F3", "FC1", "FC5", "T7", "C3", "CP1", "CP5", "P7", "P3",
    "Pz", "PO3", "O1", "Oz", "O2", "PO4", "P4", "P8", "CP6", "CP2", "C4", "T8",
    "FC6", "FC2", "F4", "F8", "AF4", "Fp2", "Fz", "Cz",
)
"""EEG order of the raw BDF files recorded in Twente (s01-s22)."""

DEAP_CHANNELS: tuple[str, ...] = EEG_CHANNELS + (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Resp", "BVP", "Temp",
)
"""All 40 channels of ``data_preprocessed_python/sNN.dat`` in file order."""

LABEL_COLUMNS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")
"""Columns of the ``labels`` array of a preprocessed file."""

CH_INDEX: dict[str, int] = {name: i for i, name in enumerate(DEAP_CHANNELS)}


@dataclass(frozen=True)
class ModalitySpec:
    """One modality of the model's input.

    Parameters
    ----------
    name : str
        Key of the modality in the ``{modality: Tensor(B, C, T)}`` mapping.
    ch_names : tuple of str
        Channel names, in the order of the tensor's C axis.
    ch_types : tuple of str
        MNE channel type of each channel (``"eeg"``, ``"eog"``, ``"emg"``, ``"gsr"``,
        ``"resp"``, ``"bio"``, ``"temperature"``).
    sfreq : float
        Sampling rate in Hz.
    n_times : int
        Window length in samples.
    """

    name: str
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...]
    sfreq: float = SFREQ
    n_times: int = WINDOW_SAMPLES

    @property
    def n_chans(self) -> int:
        return len(self.ch_names)

    @property
    def deap_indices(self) -> tuple[int, ...]:
        """Indices of this modality's channels in DEAP's 40-channel layout."""
        return tuple(CH_INDEX[c] for c in self.ch_names)


EEG = ModalitySpec("eeg", EEG_CHANNELS, ("eeg",) * 32)
PERIPHERAL = ModalitySpec(
    "peripheral",
    ("GSR", "BVP", "zEMG", "tEMG", "Resp", "Temp"),
    ("gsr", "bio", "emg", "emg", "resp", "temperature"),
)
"""The paper's six peripheral signals (GSR, BVP, zygomatic and trapezius EMG,
respiration, temperature), in the paper's order."""
EOG = ModalitySpec("eog", ("hEOG", "vEOG"), ("eog", "eog"))

MODALITIES: dict[str, ModalitySpec] = {m.name: m for m in (EEG, PERIPHERAL, EOG)}
"""The three modalities of the paper, by name."""

EEG_BANDS: dict[str, tuple[float, float]] = {
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}
"""EEG bands used for band-power features and marked on figures (Hz)."""

TASKS: tuple[str, ...] = ("valence", "arousal", "liking")
"""The multi-task model's three 9-class targets."""


# --------------------------------------------------------------------------- tasks
#
# One place for the task rules. The label rules (symaffect.data.labels), the heads and
# losses (symaffect.models), the live predictor (symaffect.stream), the session store
# and the report all read the specs below; none of them writes its own copy.

RATING_COLUMNS: tuple[str, ...] = ("valence", "arousal", "liking")
"""Ratings the model estimates (DEAP's dominance is never a target)."""

QUADRANT_CODES: tuple[str, ...] = ("Q1", "Q2", "Q3", "Q4", "Neutral")
"""Quadrant classes in output order: Q1 = HV-HA, Q2 = LV-HA, Q3 = LV-LA, Q4 = HV-LA, then
Neutral."""

QUADRANT_AXES: dict[str, str] = {"Q1": "HV-HA", "Q2": "LV-HA", "Q3": "LV-LA", "Q4": "HV-LA"}
"""High/low valence (V) and arousal (A) of each quadrant."""

QUADRANT_DESCRIPTIONS: dict[str, str] = {
    "Q1": "high valence, high arousal (e.g. joyful, excited)",
    "Q2": "low valence, high arousal (e.g. tense, agitated)",
    "Q3": "low valence, low arousal (e.g. sad, tired)",
    "Q4": "high valence, low arousal (e.g. calm, content)",
    "Neutral": "near the middle of both scales",
}
"""A plain-language reading of each code. The example words are the usual circumplex
landmarks, not something the model measures."""


@dataclass(frozen=True)
class QuadrantRule:
    """The valence-arousal quadrant and the Neutral box, in one function.

    A rating is *high* when it is strictly above ``threshold`` (5.0 is low). A point is
    *Neutral* when both ``|valence - threshold|`` and ``|arousal - threshold|`` are
    ``<= neutral_band``, i.e. with the defaults both ratings lie in [4, 6]. Neutral is
    our definition (the paper gives none); training labels, the live predictor and the
    report all use this rule.

    Parameters
    ----------
    threshold : float
    neutral_band : float
    """

    threshold: float = 5.0
    neutral_band: float = 1.0

    def ids(self, valence, arousal, *, with_neutral: bool = True):
        """Class ids (int64 array): 0-3 for Q1..Q4, 4 for Neutral (if ``with_neutral``).

        Parameters
        ----------
        valence, arousal : array-like of float, same shape
        with_neutral : bool
            False: never Neutral (a 4-class quadrant).
        """
        v = np.asarray(valence, dtype=np.float64)
        a = np.asarray(arousal, dtype=np.float64)
        hv, ha = v > self.threshold, a > self.threshold
        out = np.where(ha, np.where(hv, 0, 1), np.where(hv, 3, 2)).astype(np.int64)
        if with_neutral:
            out[self.is_neutral(v, a)] = 4
        return out

    def is_neutral(self, valence, arousal):
        """Boolean array: inside the Neutral box."""
        v = np.asarray(valence, dtype=np.float64)
        a = np.asarray(arousal, dtype=np.float64)
        return (np.abs(v - self.threshold) <= self.neutral_band) & (
            np.abs(a - self.threshold) <= self.neutral_band
        )

    def code(self, valence: float, arousal: float) -> str | None:
        """The code (``"Q1"``..``"Q4"`` or ``"Neutral"``) of one point; None if either
        rating is missing or not finite."""
        if valence is None or arousal is None:
            return None
        if not (math.isfinite(valence) and math.isfinite(arousal)):
            return None
        return QUADRANT_CODES[int(self.ids([valence], [arousal])[0])]


QUADRANT_RULE = QuadrantRule()
"""The default rule: threshold 5, Neutral band 1 (both ratings in [4, 6])."""


def quadrant(valence: float, arousal: float, rule: QuadrantRule = QUADRANT_RULE) -> str | None:
    """The quadrant code of one (valence, arousal) point under ``rule`` (see
    :class:`QuadrantRule`); None when a rating is missing."""
    return rule.code(valence, arousal)


def quadrant_of(probabilities, *, multilabel: bool = False) -> str:
    """The quadrant code a quadrant model's outputs stand for.

    Parameters
    ----------
    probabilities : sequence of float, length 4 or 5
        Class probabilities in :data:`QUADRANT_CODES` order.
    multilabel : bool
        Independent (sigmoid) outputs: Neutral when its bit is above 0.5, else the most
        probable of Q1..Q4 (the multi-hot target sets the quadrant bit always and the
        Neutral bit on top). Otherwise (softmax) the most probable class.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or p.size not in (4, 5):
        raise ValueError(f"quadrant probabilities: expected 4 or 5 values, got shape {p.shape}")
    if multilabel and p.size == 5:
        return "Neutral" if p[4] > 0.5 else QUADRANT_CODES[int(np.argmax(p[:4]))]
    return QUADRANT_CODES[int(np.argmax(p))]


TASK_KINDS: tuple[str, ...] = ("multiclass", "multilabel")
"""``multiclass``: one class per sample (softmax, cross-entropy / focal loss);
``multilabel``: independent 0/1 outputs (sigmoid, BCE)."""

TARGET_RULES: tuple[str, ...] = ("nine_class", "binary", "quadrant", "quadrant_multilabel")


@dataclass(frozen=True)
class TaskSpec:
    """One prediction target: how it is labelled and how its outputs are read.

    Parameters
    ----------
    name : str
        Output key (``"valence"``, ``"arousal"``, ``"liking"``, ``"quadrant"``).
    rule : {"nine_class", "binary", "quadrant", "quadrant_multilabel"}
        ``nine_class``: ``clip(floor(r + 0.5), 1, 9) - 1`` of ``column``; ``binary``:
        ``r > threshold``; ``quadrant``: :class:`QuadrantRule` (with Neutral when
        ``with_neutral``); ``quadrant_multilabel``: the quadrant bit plus the Neutral bit.
    column : str or None
        Rating column of :data:`LABEL_COLUMNS` (None for the quadrant rules).
    threshold : float
        High/low threshold (binary and quadrant rules).
    neutral_band : float
        Half-width of the Neutral box (quadrant rules).
    with_neutral : bool
        Quadrant rule only: False gives 4 classes without Neutral.
    """

    name: str
    rule: str
    column: str | None = None
    threshold: float = 5.0
    neutral_band: float = 1.0
    with_neutral: bool = True

    def __post_init__(self) -> None:
        if self.rule not in TARGET_RULES:
            raise ValueError(f"task {self.name}: rule {self.rule!r} is not one of {TARGET_RULES}")
        needs_column = self.rule in ("nine_class", "binary")
        if needs_column and self.column not in LABEL_COLUMNS:
            raise ValueError(f"task {self.name}: column {self.column!r} is not one of {LABEL_COLUMNS}")

    @property
    def kind(self) -> str:
        """``"multilabel"`` for the multi-hot quadrant, else ``"multiclass"``."""
        return "multilabel" if self.rule == "quadrant_multilabel" else "multiclass"

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.rule == "nine_class":
            return tuple(str(i) for i in range(1, 10))
        if self.rule == "binary":
            return ("low", "high")
        if self.rule == "quadrant" and not self.with_neutral:
            return QUADRANT_CODES[:4]
        return QUADRANT_CODES

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def quadrant_rule(self) -> QuadrantRule:
        return QuadrantRule(self.threshold, self.neutral_band)

    @property
    def rating(self) -> str | None:
        """The rating this task estimates (``column`` when it is a rating the live path
        reports as an expected value), else None."""
        return self.column if self.column in RATING_COLUMNS else None


@dataclass(frozen=True)
class TaskSetSpec:
    """A named, ordered set of tasks: the model's output layout and the label rules.

    Parameters
    ----------
    name : str
    tasks : tuple of TaskSpec
    """

    name: str
    tasks: tuple[TaskSpec, ...]

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"task set {self.name}: task names must be unique and non-empty, got {names}")
        if len({t.kind for t in self.tasks}) != 1:
            raise ValueError(f"task set {self.name}: all tasks must be of one kind")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    @property
    def kind(self) -> str:
        """The kind shared by every task (:data:`TASK_KINDS`)."""
        return self.tasks[0].kind

    @property
    def n_outputs(self) -> dict[str, int]:
        """``{task: number of logits}``."""
        return {t.name: t.n_classes for t in self.tasks}

    @property
    def class_names(self) -> dict[str, tuple[str, ...]]:
        return {t.name: t.class_names for t in self.tasks}

    def __getitem__(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self.names


TASK_SETS: dict[str, TaskSetSpec] = {
    s.name: s
    for s in (
        TaskSetSpec("multitask9", tuple(TaskSpec(c, "nine_class", c) for c in TASKS)),
        TaskSetSpec("binary_valence", (TaskSpec("valence", "binary", "valence"),)),
        TaskSetSpec("binary_arousal", (TaskSpec("arousal", "binary", "arousal"),)),
        TaskSetSpec("quadrant5", (TaskSpec("quadrant", "quadrant"),)),
        TaskSetSpec("quadrant4", (TaskSpec("quadrant", "quadrant", with_neutral=False),)),
        TaskSetSpec("quadrant_multilabel", (TaskSpec("quadrant", "quadrant_multilabel"),)),
    )
}
"""Every named task set: the paper's multi-task 9-class model and the single-task
protocols. Models, labels, losses, the live predictor and the report read these."""


def task_set(name: str) -> TaskSetSpec:
    """The :class:`TaskSetSpec` called ``name``; ValueError naming the known ones."""
    try:
        return TASK_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"task_set: {name!r} is not one of {sorted(TASK_SETS)}") from None
