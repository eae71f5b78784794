"""Evaluation protocols whose splits are checked, not trusted.

A protocol assigns *units* to train / validation / test partitions — subjects for the
subject protocols, (subject, trial) pairs for the within-subject trial protocol — and then
takes the windows of each partition: training windows from the training window index
(the training stride, 1 s in the paper) and validation/test windows from the evaluation
index (non-overlapping windows by default, see :meth:`Protocol.split_prepared`).

Every split runs :func:`guard` before it is returned. It raises :class:`LeakageError`
when a subject (subject protocols) or a trial (trial protocols) is in two partitions, or
when any window of one partition overlaps a window of another in time (same subject,
same trial, intersecting sample intervals).

:class:`WindowRandom` is the one deliberately leaky protocol: a random split of
overlapping windows, for the leakage audit only. Using it warns (``warnings`` and
``logging``), its ``leaky`` attribute is True and its name is ``"window-random"`` in
every output; its guard runs in *measure* mode and stores the overlap statistics in
``Fold.overlap`` instead of raising.

``save_splits`` writes ``splits.json`` (atomically) and ``load_splits`` rebuilds the
folds from it.

Every protocol is also a scikit-learn splitter: ``cross_validate(est, X, y, groups=subject,
cv=protocol)`` and ``GridSearchCV(est, grid, cv=protocol)`` work, with the same guard
(see :meth:`Protocol.split` for the two call forms and what ``groups`` must hold).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    LeaveOneGroupOut,
    ShuffleSplit,
)
from sklearn.utils.metadata_routing import MetadataRequest

from symaffect._io import write_json
from symaffect.data.windows import non_overlapping
from symaffect.errors import ConfigError, DataError, SymaffectError
from symaffect.run_folder import SPLITS

log = logging.getLogger(__name__)

PARTITIONS = ("train", "val", "test")


class LeakageError(SymaffectError):
    """A split lets information cross from training into evaluation."""


class LeakyProtocolWarning(UserWarning):
    """A deliberately leaky protocol is in use; its results are inflated by design."""


# -- window metadata --------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class WindowMeta:
    """The windows a protocol splits, with the ids needed to name them.

    Parameters
    ----------
    index : ndarray of int64, shape (n_windows, 3)
        Rows (subject_idx, trial_idx, start).
    subjects : ndarray of int64, shape (n_subjects,)
        DEAP id of each subject_idx.
    trial_ids : tuple of ndarray of int64
        ``trial_ids[subject_idx][trial_idx]`` is the 1-based trial id.
    window_samples : int
        Window length T in samples.
    stride_samples : int, optional
        Stride the index was made with (recorded in ``splits.json``).
    """

    index: np.ndarray
    subjects: np.ndarray
    trial_ids: tuple[np.ndarray, ...]
    window_samples: int
    stride_samples: int | None = None

    @classmethod
    def from_ids(
        cls,
        subject: Sequence[int] | np.ndarray,
        trial: Sequence[int] | np.ndarray,
        start: Sequence[int] | np.ndarray,
        *,
        window_samples: int,
        stride_samples: int | None = None,
    ) -> WindowMeta:
        """Build from per-window DEAP subject ids, trial ids and start samples."""
        subject = np.asarray(subject, dtype=np.int64)
        trial = np.asarray(trial, dtype=np.int64)
        subjects, s_idx = np.unique(subject, return_inverse=True)
        t_idx = np.empty_like(trial)
        trial_ids = []
        for i in range(len(subjects)):
            m = s_idx == i
            ids, inv = np.unique(trial[m], return_inverse=True)
            t_idx[m] = inv
            trial_ids.append(ids)
        index = np.stack([s_idx.astype(np.int64), t_idx, np.asarray(start, dtype=np.int64)], axis=1)
        return cls(index, subjects, tuple(trial_ids), int(window_samples), stride_samples)

    def subject_of(self, rows: np.ndarray) -> np.ndarray:
        """DEAP ids of index rows (n, 3) -> (n,)."""
        return self.subjects[rows[:, 0]]

    def trial_of(self, rows: np.ndarray) -> np.ndarray:
        """Trial ids of index rows (n, 3) -> (n,)."""
        out = np.empty(len(rows), dtype=np.int64)
        for s in np.unique(rows[:, 0]):
            m = rows[:, 0] == s
            out[m] = self.trial_ids[s][rows[m, 1]]
        return out

    def compatible(self, other: WindowMeta) -> bool:
        return (
            np.array_equal(self.subjects, other.subjects)
            and len(self.trial_ids) == len(other.trial_ids)
            and all(np.array_equal(a, b) for a, b in zip(self.trial_ids, other.trial_ids, strict=True))
            and self.window_samples == other.window_samples
        )


def _trial_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 per (subject_idx, trial_idx)."""
    return rows[:, 0] * (1 << 32) + rows[:, 1]


# -- folds ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Fold:
    """One split: window index rows per partition and the units they come from.

    Parameters
    ----------
    fold : int
    train, val, test : ndarray of int64, shape (n, 3)
        Window index rows (subject_idx, trial_idx, start) of each partition (training
        and evaluation partitions may use different strides).
    meta : WindowMeta
        Names the subjects and trials of the rows.
    train_subjects, val_subjects, test_subjects : tuple of int
        DEAP ids in each partition.
    train_trials, val_trials, test_trials : tuple of (int, int) or None
        (subject id, trial id) pairs, for trial protocols.
    eval_stride_samples : int, optional
    overlap : dict, optional
        Guard statistics measured on a leaky split.
    """

    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    meta: WindowMeta
    train_subjects: tuple[int, ...]
    val_subjects: tuple[int, ...]
    test_subjects: tuple[int, ...]
    train_trials: tuple[tuple[int, int], ...] | None = None
    val_trials: tuple[tuple[int, int], ...] | None = None
    test_trials: tuple[tuple[int, int], ...] | None = None
    eval_stride_samples: int | None = None
    overlap: dict | None = None

    def partition(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def to_json(self, *, windows: bool = False) -> dict:
        """JSON-ready dict: subject ids per partition (and trials / windows where they define the split)."""
        d: dict[str, Any] = {"fold": self.fold}
        for p in PARTITIONS:
            d[p] = [int(s) for s in getattr(self, f"{p}_subjects")]
        if self.train_trials is not None:
            for p in PARTITIONS:
                d[f"{p}_trials"] = [[int(s), int(t)] for s, t in getattr(self, f"{p}_trials")]
        if windows:
            for p in ("val", "test"):
                rows = getattr(self, p)
                d[f"{p}_windows"] = np.stack(
                    [self.meta.subject_of(rows), self.meta.trial_of(rows), rows[:, 2]], axis=1
                ).tolist()
        d["n_windows"] = {p: int(len(getattr(self, p))) for p in PARTITIONS}
        d["window_samples"] = int(self.meta.window_samples)
        d["train_stride_samples"] = self.meta.stride_samples
        d["eval_stride_samples"] = self.eval_stride_samples
        if self.overlap is not None:
            d["overlap"] = self.overlap
        return d


# -- guard ------------------------------------------------------------------------------
def overlapping(a: np.ndarray, b: np.ndarray, window_samples: int) -> np.ndarray:
    """For each window row of ``a``, whether it intersects in time any window row of ``b``.

    Two windows intersect when they share subject and trial and their sample intervals
    ``[start, start + T)`` intersect.

    Parameters
    ----------
    a : ndarray of int64, shape (n_a, 3)
    b : ndarray of int64, shape (n_b, 3)
    window_samples : int

    Returns
    -------
    ndarray of bool, shape (n_a,)
    """
    T = int(window_samples)
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    M = int(max(a[:, 2].max(), b[:, 2].max())) + 2 * T + 1  # > any start + T, so keys never collide
    ga, gb = _trial_keys(a), _trial_keys(b)
    # compress trial keys to small ints so that group * M stays well inside int64
    uniq, inv = np.unique(np.concatenate([ga, gb]), return_inverse=True)
    ga, gb = inv[: len(a)].astype(np.int64), inv[len(a) :].astype(np.int64)
    kb = np.sort(gb * M + b[:, 2])
    q = ga * M + a[:, 2] + (T - 1)  # latest start in b that can still intersect
    pos = np.searchsorted(kb, q, side="right") - 1
    ok = pos >= 0
    cand = kb[np.clip(pos, 0, None)]
    same_trial = ok & (cand // M == ga)
    return same_trial & (cand % M > a[:, 2] - T)


def guard(fold: Fold, *, protocol_kind: str, mode: str = "raise") -> dict:
    """Check a fold for leakage.

    Parameters
    ----------
    fold : Fold
    protocol_kind : {"subject", "trial", "window"}
        ``subject``: no subject in two partitions. ``trial``: no (subject, trial) in two
        partitions. All kinds: no window of one partition intersects in time a window
        of another (same subject & trial, overlapping samples).
    mode : {"raise", "measure"}
        ``raise``: raise :class:`LeakageError` on the first violation. ``measure``:
        return the statistics without raising (the leakage audit).

    Returns
    -------
    dict
        ``test_overlapping_train`` / ``val_overlapping_train``: fraction of test / val
        windows that intersect a training window; ``shared_subjects`` and
        ``shared_trials`` per partition pair.
    """
    if protocol_kind not in ("subject", "trial", "window"):
        raise ConfigError(f"guard: protocol_kind {protocol_kind!r} is not subject/trial/window")
    if mode not in ("raise", "measure"):
        raise ConfigError(f"guard: mode {mode!r} is not raise/measure")
    T = fold.meta.window_samples
    parts = {p: fold.partition(p) for p in PARTITIONS}
    stats: dict[str, Any] = {"shared_subjects": {}, "shared_trials": {}}
    pairs = (("train", "test"), ("train", "val"), ("val", "test"))
    for p, q in pairs:
        declared = set(getattr(fold, f"{p}_subjects")) & set(getattr(fold, f"{q}_subjects"))
        in_windows = set(parts[p][:, 0].tolist()) & set(parts[q][:, 0].tolist())
        ss = sorted(declared | {int(fold.meta.subjects[s]) for s in in_windows})
        st = np.intersect1d(_trial_keys(parts[p]), _trial_keys(parts[q]))
        stats["shared_subjects"][f"{p}-{q}"] = len(ss)
        stats["shared_trials"][f"{p}-{q}"] = int(len(st))
        if mode == "raise" and protocol_kind == "subject" and ss:
            raise LeakageError(f"fold {fold.fold}: subject(s) {ss} in both {p} and {q}")
        if mode == "raise" and protocol_kind == "trial" and len(st):
            s0, t0 = int(st[0] >> 32), int(st[0] & 0xFFFFFFFF)
            raise LeakageError(
                f"fold {fold.fold}: {len(st)} trial(s) in both {p} and {q}, e.g. subject "
                f"{int(fold.meta.subjects[s0])} trial {int(fold.meta.trial_ids[s0][t0])}"
            )
    for p, q in (("test", "train"), ("val", "train"), ("test", "val")):
        m = overlapping(parts[p], parts[q], T)
        frac = float(m.mean()) if len(m) else 0.0
        stats[f"{p}_overlapping_{q}"] = frac
        if mode == "raise" and m.any():
            r = parts[p][int(np.argmax(m))]
            raise LeakageError(
                f"fold {fold.fold}: {int(m.sum())} {p} window(s) overlap {q} windows in time, e.g. subject "
                f"{int(fold.meta.subjects[r[0]])} trial {int(fold.meta.trial_ids[r[0]][r[1]])} start {int(r[2])}"
            )
    return stats


# -- protocols --------------------------------------------------------------------------
def _check_ratio(name: str, value: float, *, allow_zero: bool) -> None:
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (lo_ok and value < 1):
        raise ConfigError(f"protocol.{name}: must be in {'[0' if allow_zero else '(0'}, 1), got {value}")


def _rs(seed: int, *extra: int) -> int:
    """A deterministic sklearn random_state from a seed and sub-stream ids."""
    return int(np.random.default_rng([seed, *extra]).integers(2**31 - 1))


class Protocol:
    """Base of evaluation protocols (configs are frozen dataclasses with plain fields)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "subject"
    leaky: ClassVar[bool] = False

    def params(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "params": self.params(), "leaky": self.leaky}

    def split(self, X, y=None, groups=None, *, eval_meta: WindowMeta | None = None):
        """Split windows: the metadata form (a list of folds) or the scikit-learn form.

        **Metadata form** — ``split(meta, eval_meta=None)``, chosen when the first argument
        is a :class:`WindowMeta`: training windows of ``meta`` (e.g. 1-s stride),
        validation and test windows of ``eval_meta`` (default ``meta``; same subjects and
        trials). Returns a list of :class:`Fold`, each already passed :func:`guard`.

        **scikit-learn form** — ``split(X, y=None, groups=None)``, for any other first
        argument: yields ``(train_idx, test_idx)`` pairs of sorted int64 positions into
        ``X``, so a protocol is a ``cv`` for ``cross_val_score``, ``cross_validate`` and
        ``GridSearchCV``. Each sample of ``X`` is one window and ``groups`` names where it
        comes from:

        * shape ``(n,)``: the subject of each window (subject protocols);
        * shape ``(n, 2)``: columns (subject, trial);
        * a structured array or a pandas DataFrame with fields / columns ``"subject"`` and
          optionally ``"trial"`` (other fields are ignored).

        Subject protocols need the subjects, :class:`TrialHoldout` needs subjects *and*
        trials; without them the split is refused with :class:`LeakageError` (nothing
        would keep a subject, or a trial, on one side). The units are assigned exactly as
        in the metadata form (same seed, same subjects -> same test subjects); the fold is
        then checked by the same :func:`guard`, so a split that puts a subject (a trial,
        for trial protocols) in train and test raises the same :class:`LeakageError`. The
        windows of one unit all land on one side, so no test window can overlap a training
        window in time. There is no validation partition in scikit-learn: the protocol's
        validation units go back to ``train_idx`` (``val_ratio`` does not change which
        units are tested; use a nested ``GridSearchCV`` for model selection).
        Non-integer subject or trial labels are replaced by their rank among the sorted
        labels (error messages then name the rank). :class:`WindowRandom` accepts
        ``groups=None`` and warns as in the metadata form.

        Why one ``split`` with two forms and not an adapter: scikit-learn takes any object
        with ``split`` and ``get_n_splits`` as ``cv``, so ``cv=protocol`` works as is; the
        forms are told apart by the type of the first argument alone (a
        :class:`WindowMeta` is never a feature matrix), and the metadata form keeps its
        positional ``split(meta, eval_meta)`` call.

        Parameters
        ----------
        X : WindowMeta or array-like, shape (n_samples, ...)
            Windows to split (metadata form) or the features (scikit-learn form; only
            its length is used).
        y : WindowMeta or array-like or None
            ``eval_meta`` in the metadata form (positional, as before); ignored in the
            scikit-learn form.
        groups : array-like, structured array or DataFrame, optional
            scikit-learn form only: subject (and trial) of each sample, see above.
        eval_meta : WindowMeta, optional
            Metadata form, keyword spelling of ``y``.

        Returns
        -------
        list of Fold
            Metadata form.
        iterator of (ndarray of int64, ndarray of int64)
            scikit-learn form: (train_idx, test_idx) per fold, computed and guarded before
            the first is yielded (so a refused split raises at the call).
        """
        if isinstance(X, WindowMeta):
            if groups is not None:
                raise ConfigError("protocol.split: groups are for the scikit-learn form; a WindowMeta names its own subjects and trials")
            if y is not None and eval_meta is not None:
                raise ConfigError("protocol.split: eval_meta given twice (positionally and by keyword)")
            em = eval_meta if eval_meta is not None else y
            if em is not None and not isinstance(em, WindowMeta):
                raise ConfigError(f"protocol.split(meta, eval_meta): eval_meta must be a WindowMeta, got {type(em).__name__}")
            return self._split_meta(X, X if em is None else em)
        if eval_meta is not None:
            raise ConfigError("protocol.split: eval_meta is for the metadata form (a WindowMeta first)")
        return iter(self._sklearn_folds(X, groups))

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds ``split`` gives (scikit-learn API).

        Fixed for every protocol but :class:`LeaveOneSubjectOut`, whose count is the number
        of distinct subjects in ``groups`` (or in ``X`` when ``X`` is a :class:`WindowMeta`).
        """
        if isinstance(X, WindowMeta):
            return len(self.split(X, y))
        n = self._fixed_n_splits()
        if n is not None:
            return n
        subject, _ = _parse_groups(groups, None, protocol=self, need_trial=False)
        return int(len(np.unique(subject)))

    def get_metadata_routing(self) -> MetadataRequest:
        """scikit-learn metadata routing: ``split`` consumes ``groups`` (as GroupKFold does)."""
        req = MetadataRequest(owner=type(self).__name__)
        req.split.add_request(param="groups", alias=True)
        return req

    def _fixed_n_splits(self) -> int | None:
        return 1

    def _split_meta(self, meta: WindowMeta, eval_meta: WindowMeta) -> list[Fold]:
        if not meta.compatible(eval_meta):
            raise ConfigError("protocol: training and evaluation windows come from different data")
        if len(meta.index) == 0:
            raise DataError(None, "protocol: no windows to split")
        folds = self._split(meta, eval_meta)
        for f in folds:
            guard(f, protocol_kind=self.kind)
        return folds

    def _sklearn_folds(self, X, groups) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train_idx, test_idx) per fold: the metadata split of one window per sample.

        Window ``i`` is (subject_i, trial_i, start ``i``) with a window length of 1 sample,
        so a fold's rows carry their sample positions in the start column and windows of
        different samples never overlap in time.
        """
        n = None if X is None else _num_samples(X)
        subject, trial = _parse_groups(groups, n, protocol=self, need_trial=self.kind == "trial")
        n = len(subject)
        if trial is None:
            trial = np.zeros(n, dtype=np.int64)
        meta = WindowMeta.from_ids(subject, trial, np.arange(n), window_samples=1)
        out = []
        for f in self._split_meta(meta, meta):
            train = np.sort(np.concatenate([f.train[:, 2], f.val[:, 2]]))
            out.append((train.astype(np.int64), np.sort(f.test[:, 2]).astype(np.int64)))
        return out

    def split_prepared(self, prepared, window=None, eval_window=None) -> list[Fold]:
        """Split a :class:`~symaffect.data.prepare.Prepared`: training windows of ``window``
        (default ``prepared.window``), evaluation windows of ``eval_window`` (default: the
        same length, non-overlapping)."""

        window = window or prepared.window
        eval_window = eval_window or non_overlapping(window)
        return self.split(prepared.meta(window), prepared.meta(eval_window))

    def _split(self, meta: WindowMeta, eval_meta: WindowMeta) -> list[Fold]:  # pragma: no cover
        raise NotImplementedError


def _num_samples(X) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        raise ConfigError(f"protocol.split: X must be array-like with a length, got {type(X).__name__}") from None


def _as_ids(values, what: str) -> np.ndarray:
    """int64 ids, shape (n,): integers as they are, other labels by rank among the sorted labels."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise ConfigError(f"protocol.split: groups {what} must be one value per sample, got shape {a.shape}")
    if a.dtype.kind in "iub":
        return a.astype(np.int64)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    try:
        return np.unique(a, return_inverse=True)[1].astype(np.int64).reshape(-1)
    except TypeError:
        raise ConfigError(f"protocol.split: groups {what} labels cannot be sorted ({a.dtype})") from None


def _parse_groups(groups, n: int | None, *, protocol: Protocol, need_trial: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """scikit-learn ``groups`` -> (subject ids (n,), trial ids (n,) or None); see :meth:`Protocol.split`."""
    if groups is None:
        if protocol.leaky and n is not None:  # the leaky protocol needs nothing to split windows at random
            return np.zeros(n, dtype=np.int64), None
        raise LeakageError(
            f"{protocol.name}: groups=None; pass each window's subject"
            f"{' and trial' if need_trial else ''} as groups (without them nothing keeps a "
            f"{'trial' if need_trial else 'subject'} on one side of the split)"
        )
    subject = trial = None
    columns = getattr(groups, "columns", None)
    names = getattr(getattr(groups, "dtype", None), "names", None)
    if columns is not None or names:  # DataFrame or structured array
        fields = [str(c) for c in (columns if columns is not None else names)]
        if "subject" not in fields:
            raise ConfigError(f"protocol.split: groups has no 'subject' field (fields: {fields})")
        subject = _as_ids(np.asarray(groups["subject"]), "subject")
        if "trial" in fields:
            trial = _as_ids(np.asarray(groups["trial"]), "trial")
    else:
        g = np.asarray(groups)
        if g.ndim == 1:
            subject = _as_ids(g, "subject")
        elif g.ndim == 2 and g.shape[1] == 2:
            subject, trial = _as_ids(g[:, 0], "subject"), _as_ids(g[:, 1], "trial")
        else:
            raise ConfigError(
                f"protocol.split: groups must have shape (n,) (subject) or (n, 2) (subject, trial), got {g.shape}"
            )
    if n is not None and len(subject) != n:
        raise ConfigError(f"protocol.split: groups has {len(subject)} rows but X has {n} samples")
    if need_trial and trial is None:
        raise LeakageError(
            f"{protocol.name}: groups give no trial ids; pass (subject, trial) per window (an (n, 2) array, "
            "or a DataFrame / structured array with 'subject' and 'trial') so that no trial is on both sides"
        )
    return subject, trial


def _subject_fold(k: int, meta: WindowMeta, eval_meta: WindowMeta, tr, va, te) -> Fold:
    def rows(m: WindowMeta, units) -> np.ndarray:
        return m.index[np.isin(m.index[:, 0], units)]

    def ids(units) -> tuple[int, ...]:
        return tuple(sorted(int(meta.subjects[u]) for u in units))

    return Fold(
        fold=k,
        train=rows(meta, tr),
        val=rows(eval_meta, va),
        test=rows(eval_meta, te),
        meta=meta,
        train_subjects=ids(tr),
        val_subjects=ids(va),
        test_subjects=ids(te),
        eval_stride_samples=eval_meta.stride_samples,
    )


def _carve_val(units: np.ndarray, val_ratio: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``units`` into (train, val) with GroupShuffleSplit; val empty when val_ratio == 0."""
    if val_ratio == 0:
        return units, units[:0]
    if len(units) < 2:
        raise ConfigError(f"protocol.val_ratio: {len(units)} training unit(s) cannot give up a validation set")
    gss = GroupShuffleSplit(n_splits=1, test_size=val_ratio, random_state=random_state)
    tr, va = next(gss.split(units, groups=units))
    return units[tr], units[va]


class _SubjectProtocol(Protocol):
    kind: ClassVar[str] = "subject"

    @staticmethod
    def _units(meta: WindowMeta) -> np.ndarray:
        return np.unique(meta.index[:, 0])


@dataclass(frozen=True)
class SubjectHoldout(_SubjectProtocol):
    """Subject-wise hold-out: ``test_ratio`` of the subjects for test, a ``val_ratio``
    fraction of the remaining (training) subjects for validation.

    The paper's ratios are presets: ``SubjectHoldout.paper("8:2")``, ``"7:3"``, ``"6:4"``.
    Counts follow scikit-learn's GroupShuffleSplit (test = ceil(ratio * n)).
    """

    test_ratio: float = 0.2
    val_ratio: float = 0.125
    seed: int = 0
    name: ClassVar[str] = "subject-holdout"

    def __post_init__(self) -> None:
        _check_ratio("test_ratio", self.test_ratio, allow_zero=False)
        _check_ratio("val_ratio", self.val_ratio, allow_zero=True)

    @classmethod
    def paper(cls, ratio: str = "8:2", **kwargs) -> SubjectHoldout:
        """The paper's train:test subject ratios ``"8:2"``, ``"7:3"``, ``"6:4"``."""
        presets = {"8:2": 0.2, "7:3": 0.3, "6:4": 0.4}
        if ratio not in presets:
            raise ConfigError(f"protocol: ratio {ratio!r} is not one of {tuple(presets)}")
        return cls(test_ratio=presets[ratio], **kwargs)

    def _split(self, meta, eval_meta):
        units = self._units(meta)
        if len(units) < 2:
            raise ConfigError(f"protocol: subject hold-out needs >= 2 subjects, got {len(units)}")
        gss = GroupShuffleSplit(n_splits=1, test_size=self.test_ratio, random_state=_rs(self.seed, 0))
        tr, te = next(gss.split(units, groups=units))
        tr, va = _carve_val(units[tr], self.val_ratio, _rs(self.seed, 1))
        return [_subject_fold(0, meta, eval_meta, tr, va, units[te])]


@dataclass(frozen=True)
class SubjectKFold(_SubjectProtocol):
    """Subject-grouped k-fold (GroupKFold with shuffled subjects); validation subjects are
    carved out of each fold's training subjects."""

    n_splits: int = 5
    val_ratio: float = 0.125
    seed: int = 0
    name: ClassVar[str] = "subject-kfold"

    def __post_init__(self) -> None:
        if self.n_splits < 2:
            raise ConfigError(f"protocol.n_splits: must be >= 2, got {self.n_splits}")
        _check_ratio("val_ratio", self.val_ratio, allow_zero=True)

    def _fixed_n_splits(self) -> int:
        return self.n_splits

    def _split(self, meta, eval_meta):
        units = self._units(meta)
        if len(units) < self.n_splits:
            raise ConfigError(f"protocol.n_splits: {self.n_splits} folds need >= {self.n_splits} subjects, got {len(units)}")
        gkf = GroupKFold(n_splits=self.n_splits, shuffle=True, random_state=_rs(self.seed, 0))
        folds = []
        for k, (tr, te) in enumerate(gkf.split(units, groups=units)):
            tr, va = _carve_val(units[tr], self.val_ratio, _rs(self.seed, 1, k))
            folds.append(_subject_fold(k, meta, eval_meta, tr, va, units[te]))
        return folds


@dataclass(frozen=True)
class LeaveOneSubjectOut(_SubjectProtocol):
    """One fold per subject (LeaveOneGroupOut); validation subjects carved from the rest."""

    val_ratio: float = 0.125
    seed: int = 0
    name: ClassVar[str] = "loso"

    def __post_init__(self) -> None:
        _check_ratio("val_ratio", self.val_ratio, allow_zero=True)

    def _fixed_n_splits(self) -> None:
        return None  # one fold per subject of the data

    def _split(self, meta, eval_meta):
        units = self._units(meta)
        if len(units) < 2:
            raise ConfigError(f"protocol: leave-one-subject-out needs >= 2 subjects, got {len(units)}")
        folds = []
        for k, (tr, te) in enumerate(LeaveOneGroupOut().split(units, groups=units)):
            tr, va = _carve_val(units[tr], self.val_ratio, _rs(self.seed, 1, k))
            folds.append(_subject_fold(k, meta, eval_meta, tr, va, units[te]))
        return folds


@dataclass(frozen=True)
class TrialHoldout(Protocol):
    """Within-subject trial hold-out: each subject's trials are split into train / val /
    test (ShuffleSplit per subject); every window of a trial lies in one partition.

    Not subject-independent: the same subjects are in every partition (by design).
    """

    test_ratio: float = 0.2
    val_ratio: float = 0.125
    seed: int = 0
    name: ClassVar[str] = "trial-holdout"
    kind: ClassVar[str] = "trial"

    def __post_init__(self) -> None:
        _check_ratio("test_ratio", self.test_ratio, allow_zero=False)
        _check_ratio("val_ratio", self.val_ratio, allow_zero=True)

    def _split(self, meta, eval_meta):
        part_keys: dict[str, list[np.ndarray]] = {p: [] for p in PARTITIONS}
        for s in np.unique(meta.index[:, 0]):
            trials = np.unique(meta.index[meta.index[:, 0] == s, 1])
            if len(trials) < 2:
                raise ConfigError(f"protocol: subject {int(meta.subjects[s])} has {len(trials)} trial(s); need >= 2")
            ss = ShuffleSplit(n_splits=1, test_size=self.test_ratio, random_state=_rs(self.seed, 0, int(s)))
            tr, te = next(ss.split(trials))
            tr, va = _carve_val(trials[tr], self.val_ratio, _rs(self.seed, 1, int(s)))
            for p, t in zip(PARTITIONS, (tr, va, trials[te]), strict=True):
                part_keys[p].append(s * (1 << 32) + t)
        keys = {p: np.concatenate(v) if v else np.empty(0, np.int64) for p, v in part_keys.items()}

        def rows(m: WindowMeta, p: str) -> np.ndarray:
            return m.index[np.isin(_trial_keys(m.index), keys[p])]

        def trials_of(p: str) -> tuple[tuple[int, int], ...]:
            k = np.sort(keys[p])
            s, t = k >> 32, k & 0xFFFFFFFF
            return tuple((int(meta.subjects[a]), int(meta.trial_ids[a][b])) for a, b in zip(s, t, strict=True))

        tr_rows, va_rows, te_rows = rows(meta, "train"), rows(eval_meta, "val"), rows(eval_meta, "test")
        subj = lambda r: tuple(sorted({int(x) for x in meta.subjects[np.unique(r[:, 0])]}))  # noqa: E731
        return [
            Fold(
                fold=0,
                train=tr_rows,
                val=va_rows,
                test=te_rows,
                meta=meta,
                train_subjects=subj(tr_rows),
                val_subjects=subj(va_rows),
                test_subjects=subj(te_rows),
                train_trials=trials_of("train"),
                val_trials=trials_of("val"),
                test_trials=trials_of("test"),
                eval_stride_samples=eval_meta.stride_samples,
            )
        ]


@dataclass(frozen=True)
class WindowRandom(Protocol):
    """LEAKY, for the leakage audit only: a random split of (overlapping) windows.

    Test windows share trials with — and overlap in time — training windows, so scores
    under this protocol are inflated. Constructing or using it warns; ``leaky`` is True
    and the fold's ``overlap`` holds the measured overlap fractions.
    """

    test_ratio: float = 0.2
    val_ratio: float = 0.1
    seed: int = 0
    name: ClassVar[str] = "window-random"
    kind: ClassVar[str] = "window"
    leaky: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_ratio("test_ratio", self.test_ratio, allow_zero=False)
        _check_ratio("val_ratio", self.val_ratio, allow_zero=True)
        _warn_leaky()

    def _split_meta(self, meta: WindowMeta, eval_meta: WindowMeta) -> list[Fold]:
        """Random split of the windows of ``meta`` (``eval_meta`` is ignored: test windows
        are drawn from the same overlapping windows). The guard only measures."""
        _warn_leaky(stacklevel=4)
        if len(meta.index) < 3:
            raise DataError(None, "protocol: too few windows to split")
        rows = np.arange(len(meta.index))
        ss = ShuffleSplit(n_splits=1, test_size=self.test_ratio, random_state=_rs(self.seed, 0))
        tr, te = next(ss.split(rows))
        tr, va = _carve_val(rows[tr], self.val_ratio, _rs(self.seed, 1))
        te = rows[te]
        subj = lambda r: tuple(sorted({int(x) for x in meta.subjects[np.unique(meta.index[r, 0])]}))  # noqa: E731
        fold = Fold(
            fold=0,
            train=meta.index[np.sort(tr)],
            val=meta.index[np.sort(va)],
            test=meta.index[np.sort(te)],
            meta=meta,
            train_subjects=subj(tr),
            val_subjects=subj(va),
            test_subjects=subj(te),
            eval_stride_samples=meta.stride_samples,
        )
        stats = guard(fold, protocol_kind=self.kind, mode="measure")
        log.warning(
            "window-random: %.1f%% of test windows overlap a training window in time",
            100 * stats["test_overlapping_train"],
        )
        return [dataclasses.replace(fold, overlap=stats)]


def _warn_leaky(stacklevel: int = 3) -> None:
    msg = "window-random is a LEAKY protocol (overlapping windows in train and test): use it only for the leakage audit"
    warnings.warn(msg, LeakyProtocolWarning, stacklevel=stacklevel)
    log.warning(msg)


PROTOCOLS: dict[str, type[Protocol]] = {
    p.name: p for p in (SubjectHoldout, SubjectKFold, LeaveOneSubjectOut, TrialHoldout, WindowRandom)
}
"""Protocol classes by name."""


def protocol_from_json(d: dict) -> Protocol:
    """Inverse of :meth:`Protocol.to_json`."""
    if d.get("name") not in PROTOCOLS:
        raise ConfigError(f"protocol: {d.get('name')!r} is not one of {tuple(PROTOCOLS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakyProtocolWarning)
        return PROTOCOLS[d["name"]](**d.get("params", {}))


# -- splits.json ------------------------------------------------------------------------
def save_splits(path: str | Path, folds: Sequence[Fold], protocol: Protocol) -> Path:
    """Write ``splits.json`` (``path`` may be the file or its folder), atomically.

    Layout: ``{"protocol": {"name", "kind", "params", "leaky"}, "folds": [{"train": [subject
    ids], "val": [...], "test": [...], ("train_trials", ... for trial protocols),
    ("val_windows", "test_windows" for the window protocol), "n_windows", ...}]}``.
    """
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / SPLITS
    obj = {
        "protocol": protocol.to_json(),
        "folds": [f.to_json(windows=protocol.kind == "window") for f in folds],
    }
    write_json(path, obj)
    return path


def load_splits(path: str | Path, meta: WindowMeta, eval_meta: WindowMeta | None = None) -> tuple[Protocol, list[Fold]]:
    """Rebuild the folds of a ``splits.json`` over ``meta`` / ``eval_meta`` (guard included).

    Returns
    -------
    protocol : Protocol
    folds : list of Fold
    """
    path = Path(path)
    if path.is_dir():
        path = path / SPLITS
    try:
        obj = json.loads(path.read_text())
        protocol = protocol_from_json(obj["protocol"])
        fold_dicts = obj["folds"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(path, f"not a splits file ({e.__class__.__name__}: {e})") from None
    eval_meta = meta if eval_meta is None else eval_meta
    sid = {int(s): i for i, s in enumerate(meta.subjects)}

    def subject_rows(m: WindowMeta, ids) -> np.ndarray:
        try:
            units = [sid[int(s)] for s in ids]
        except KeyError as e:
            raise DataError(path, f"subject {e} is not in the data") from None
        return m.index[np.isin(m.index[:, 0], units)]

    tid = [{int(t): j for j, t in enumerate(ids)} for ids in meta.trial_ids]

    def unit(s: int, t: int) -> tuple[int, int]:
        try:
            i = sid[int(s)]
            return i, tid[i][int(t)]
        except KeyError:
            raise DataError(path, f"subject {s} trial {t} is not in the data") from None

    def trial_key(s: int, t: int) -> int:
        i, j = unit(s, t)
        return i * (1 << 32) + j

    def window_rows(m: WindowMeta, triples) -> np.ndarray:
        if not triples:
            return m.index[:0]
        rows = np.asarray([(*unit(s, t), st) for s, t, st in triples], dtype=np.int64)
        return m.index[_row_in(m.index, rows)]

    folds = []
    for d in fold_dicts:
        kw: dict[str, Any] = {f"{p}_subjects": tuple(int(s) for s in d[p]) for p in PARTITIONS}
        if protocol.kind == "subject":
            parts = {p: subject_rows(meta if p == "train" else eval_meta, d[p]) for p in PARTITIONS}
        elif protocol.kind == "trial":
            parts = {}
            for p in PARTITIONS:
                m = meta if p == "train" else eval_meta
                keys = np.asarray([trial_key(s, t) for s, t in d[f"{p}_trials"]], dtype=np.int64)
                parts[p] = m.index[np.isin(_trial_keys(m.index), keys)]
                kw[f"{p}_trials"] = tuple((int(s), int(t)) for s, t in d[f"{p}_trials"])
        else:
            parts = {p: window_rows(meta, d[f"{p}_windows"]) for p in ("val", "test")}
            held = np.concatenate([parts["val"], parts["test"]])
            keep = ~_row_in(meta.index, held)
            parts["train"] = meta.index[keep]
        fold = Fold(
            fold=int(d["fold"]),
            meta=meta,
            eval_stride_samples=d.get("eval_stride_samples"),
            **parts,
            **kw,
        )
        if protocol.leaky:
            fold = dataclasses.replace(fold, overlap=guard(fold, protocol_kind=protocol.kind, mode="measure"))
        else:
            guard(fold, protocol_kind=protocol.kind)
        folds.append(fold)
    return protocol, folds


def _row_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each row of ``a`` (n, 3) appears in ``b`` (m, 3)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    M = int(max(a[:, 2].max(), b[:, 2].max())) + 1
    NT = int(max(a[:, 1].max(), b[:, 1].max())) + 1

    def key(r: np.ndarray) -> np.ndarray:
        return (r[:, 0] * NT + r[:, 1]) * M + r[:, 2]

    return np.isin(key(a), key(b))
