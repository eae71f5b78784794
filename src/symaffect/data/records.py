"""In-memory records shared by every reader: one subject's trials, and a whole data set."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symaffect.spec import DEAP_CHANNELS, LABEL_COLUMNS


@dataclass(frozen=True, eq=False)
class SubjectRecord:
    """One subject's trials in DEAP's preprocessed layout, held once in memory.

    Parameters
    ----------
    subject : int
        DEAP participant id (1-based; ``s07.dat`` -> 7).
    data : ndarray, shape (n_trials, n_channels, n_samples), float32
        Signals in the channel order ``ch_names`` (DEAP's 40 channels by default),
        including the 3-s pre-trial baseline at the start of each trial.
    labels : ndarray, shape (n_trials, 4), float32
        Continuous ratings in [1, 9]: valence, arousal, dominance, liking.
    sfreq : float
        Sampling rate in Hz.
    source : str
        The file the record was read from.
    trial_ids : ndarray of int, shape (n_trials,)
        1-based trial (video) ids; ``arange(1, n_trials + 1)`` by default.
    ch_names : tuple of str
        Channel names of the C axis.
    """

    subject: int
    data: np.ndarray
    labels: np.ndarray
    sfreq: float
    source: str = ""
    trial_ids: np.ndarray | None = None
    ch_names: tuple[str, ...] = DEAP_CHANNELS

    def __post_init__(self) -> None:
        if self.trial_ids is None:
            object.__setattr__(self, "trial_ids", np.arange(1, self.data.shape[0] + 1))

    @property
    def n_trials(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[2])

    def rating(self, name: str) -> np.ndarray:
        """Ratings of one label column (``"valence"``, ``"arousal"``, ...), shape (n_trials,)."""
        return self.labels[:, LABEL_COLUMNS.index(name)]


@dataclass(frozen=True, eq=False)
class DeapData:
    """A data set: subject records (sorted by subject id) and optional metadata.

    Parameters
    ----------
    subjects : list of SubjectRecord
    ratings : dict or None
        ``participant_ratings.csv`` as column name -> ndarray, when present.
    root : str
        The folder that was read.
    """

    subjects: list[SubjectRecord]
    ratings: dict[str, np.ndarray] | None = None
    root: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def subject_ids(self) -> list[int]:
        return [s.subject for s in self.subjects]

    @property
    def sfreq(self) -> float:
        return self.subjects[0].sfreq

    def __len__(self) -> int:
        return len(self.subjects)
