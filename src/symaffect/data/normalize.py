"""Per-channel z-score normalisation, with statistics keyed by the data and config that made them.

Modes (:class:`NormConfig`):

``"per_subject"`` (default; the paper's choice)
    Each subject's channels are z-scored with that subject's own mean and standard
    deviation over all of its (post-baseline) samples. This is **transductive**: the
    statistics of a test subject come from that test subject's *unlabelled* signal, so a
    model evaluated this way has seen the test subject's signal distribution (never its
    labels). It is what the paper does; a deployed system can do the same after a short
    calibration recording.
``"train_subjects"``
    One mean and standard deviation per channel, pooled over the *training* subjects of
    a fold only, applied to every subject (train, validation, test). Nothing about the
    test subjects is used. Needs the fold's training subjects, so it is applied lazily
    (per batch) rather than baked into the stored array.
``"none"``
    No normalisation.

Statistics are computed over the post-baseline signal of all trials of a subject, with
float64 accumulation, and never from labels. A :class:`NormStats` carries the key it was
made under (config, data fingerprint, subject set); applying it to other data raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from symaffect.errors import ConfigError

NORM_MODES = ("per_subject", "train_subjects", "none")


@dataclass(frozen=True)
class NormConfig:
    """Normalisation mode (module docstring).

    Parameters
    ----------
    mode : {"per_subject", "train_subjects", "none"}
    eps : float
        Floor of the standard deviation (a flat channel is centred, not blown up).
    """

    mode: str = "per_subject"
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.mode not in NORM_MODES:
            raise ConfigError(f"norm.mode: {self.mode!r} is not one of {NORM_MODES}")
        if not self.eps > 0:
            raise ConfigError(f"norm.eps: must be > 0, got {self.eps}")

    @property
    def transductive(self) -> bool:
        """True when a test subject's own (unlabelled) signal shapes its normalisation."""
        return self.mode == "per_subject"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class ChannelMoments:
    """Per-channel count, mean and sum of squared deviations of one subject's signal.

    Parameters
    ----------
    count : int
        Samples per channel (n_trials * n_samples).
    mean : ndarray, shape (n_channels,), float64
    m2 : ndarray, shape (n_channels,), float64
        Sum of squared deviations from ``mean``.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0), shape (n_channels,)."""
        return np.sqrt(self.m2 / self.count)

    @classmethod
    def of(cls, x: np.ndarray) -> ChannelMoments:
        """Moments of ``x``, shape (n_trials, n_channels, n_samples), over trials and samples.

        Each trial's mean and centred sum of squares are computed in float64 while the
        trial is hot in cache (one pass over ``x``); trials are then merged exactly.
        """
        means, m2 = trial_moments(x)
        return cls.from_trials(x.shape[2], means, m2)

    @classmethod
    def from_trials(cls, n_samples: int, means: np.ndarray, m2: np.ndarray) -> ChannelMoments:
        """Merge per-trial moments (equal ``n_samples`` per trial), shapes (n_trials, n_channels)."""
        n = means.shape[0]
        mean = means.mean(axis=0)
        total_m2 = m2.sum(axis=0) + n_samples * ((means - mean) ** 2).sum(axis=0)
        return cls(count=int(n * n_samples), mean=mean, m2=total_m2)

    @staticmethod
    def pool(parts: Iterable[ChannelMoments]) -> ChannelMoments:
        """Moments of the union of the samples of ``parts`` (exact, Chan et al.'s merge)."""
        parts = list(parts)
        if not parts:
            raise ValueError("no moments to pool")
        count = sum(p.count for p in parts)
        mean = sum(p.mean * p.count for p in parts) / count
        m2 = sum(p.m2 + p.count * (p.mean - mean) ** 2 for p in parts)
        return ChannelMoments(count=count, mean=np.asarray(mean), m2=np.asarray(m2))


@dataclass(frozen=True, eq=False)
class NormStats:
    """Fitted normalisation: per-subject mean and std per channel, keyed by what made them.

    Parameters
    ----------
    config : NormConfig
    fingerprint : str
        Fingerprint of the prepared data the statistics were computed on.
    fitted_on : tuple of int
        DEAP ids of the subjects whose signal entered the statistics.
    subjects : tuple of int
        DEAP ids of the subjects the statistics apply to (rows of ``mean``/``std``).
    mean, std : ndarray, shape (n_subjects, n_channels), float64
        ``std`` already floored at ``config.eps``.
    """

    config: NormConfig
    fingerprint: str
    fitted_on: tuple[int, ...]
    subjects: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray

    @property
    def key(self) -> tuple:
        """(config, data fingerprint, subject set) — what these statistics are valid for."""
        return (self.config, self.fingerprint, self.fitted_on)

    def check(self, config: NormConfig, fingerprint: str) -> None:
        """Raise :class:`ConfigError` unless these statistics were made for this data and config."""
        if config != self.config:
            raise ConfigError(f"norm: statistics made under {self.config} cannot be applied under {config}")
        if fingerprint != self.fingerprint:
            raise ConfigError(
                f"norm: statistics were computed on data {self.fingerprint[:12]}, not on {fingerprint[:12]}"
            )

    def row(self, subject: int) -> int:
        try:
            return self.subjects.index(int(subject))
        except ValueError:
            raise ConfigError(f"norm: no statistics for subject {subject}") from None

    def transform(self, x: np.ndarray, subject_rows: np.ndarray, channels: np.ndarray | slice) -> np.ndarray:
        """Normalise a batch in place.

        Parameters
        ----------
        x : ndarray, shape (B, C, T), float32
        subject_rows : ndarray of int, shape (B,)
            Row of each batch element in ``subjects``.
        channels : index into the channel axis of ``mean``/``std`` giving the C channels.
        """
        mean = self.mean[:, channels][subject_rows].astype(np.float32)  # (B, C)
        inv = (1.0 / self.std[:, channels][subject_rows]).astype(np.float32)
        x -= mean[:, :, None]
        x *= inv[:, :, None]
        return x


def trial_moments(x: np.ndarray, *, chunk: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial, per-channel mean and centred sum of squares, in float64.

    Parameters
    ----------
    x : ndarray, shape (n_trials, n_channels, n_samples)
    chunk : int
        Trials per step (a few trials at a time stay in cache; no full-size temporary).

    Returns
    -------
    means, m2 : ndarray, shape (n_trials, n_channels), float64
    """
    if x.ndim != 3:
        raise ValueError(f"expected (n_trials, n_channels, n_samples), got shape {x.shape}")
    n, C, S = x.shape
    means = np.empty((n, C))
    m2 = np.empty((n, C))
    buf = np.empty((min(chunk, max(n, 1)), C, S))
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        v = buf[: b - a]
        np.copyto(v, x[a:b])
        means[a:b] = v.sum(axis=2) / S
        v -= means[a:b, :, None]
        m2[a:b] = np.einsum("kcs,kcs->kc", v, v)
    return means, m2


def fit_norm(
    config: NormConfig,
    moments: Mapping[int, ChannelMoments],
    fingerprint: str,
    *,
    train_subjects: Iterable[int] | None = None,
) -> NormStats:
    """Fit normalisation statistics.

    Parameters
    ----------
    config : NormConfig
    moments : mapping of DEAP subject id -> ChannelMoments
        Moments of every subject's post-baseline signal.
    fingerprint : str
        Fingerprint of the data the moments came from.
    train_subjects : iterable of int, optional
        Required for ``"train_subjects"``: only these subjects' moments are pooled.

    Returns
    -------
    NormStats
        Rows for every subject in ``moments``.
    """
    subjects = tuple(int(s) for s in moments)
    C = len(next(iter(moments.values())).mean) if moments else 0
    if config.mode == "per_subject":
        mean = np.stack([moments[s].mean for s in subjects])
        std = np.stack([moments[s].std for s in subjects])
        fitted_on = subjects
    elif config.mode == "train_subjects":
        if train_subjects is None:
            raise ConfigError("norm.mode: 'train_subjects' needs the fold's training subjects")
        fitted_on = tuple(sorted(int(s) for s in train_subjects))
        missing = [s for s in fitted_on if s not in moments]
        if missing or not fitted_on:
            raise ConfigError(f"norm: no moments for training subjects {missing or '(none given)'}")
        pooled = ChannelMoments.pool(moments[s] for s in fitted_on)
        mean = np.tile(pooled.mean, (len(subjects), 1))
        std = np.tile(pooled.std, (len(subjects), 1))
    else:
        mean = np.zeros((len(subjects), C))
        std = np.ones((len(subjects), C))
        fitted_on = ()
    std = np.maximum(std, config.eps)
    return NormStats(config, fingerprint, fitted_on, subjects, mean, std)


def normalize_inplace(
    x: np.ndarray, mean: np.ndarray, std: np.ndarray, *, eps: float = 1e-6, chunk: int = 4
) -> np.ndarray:
    """Z-score ``x`` in place per channel: ``(x - mean) / max(std, eps)``.

    Parameters
    ----------
    x : ndarray, shape (n_trials, n_channels, n_samples), float32
    mean, std : ndarray, shape (n_channels,)
        Float64 statistics (applied in float32, a few trials at a time).
    """
    mean = np.asarray(mean, dtype=np.float64)
    # the float64 mean as a float32 pair (hi + lo): x - hi is exact for x near the mean,
    # so large channel offsets (GSR ~ 1e4) do not cost accuracy of the centred signal
    hi = mean.astype(x.dtype)
    lo = (mean - hi.astype(np.float64)).astype(x.dtype)[:, None]
    hi = hi[:, None]
    inv = (1.0 / np.maximum(np.asarray(std, dtype=np.float64), eps)).astype(x.dtype)[:, None]
    for a in range(0, x.shape[0], chunk):
        v = x[a : a + chunk]
        v -= hi
        v -= lo
        v *= inv
    return x
