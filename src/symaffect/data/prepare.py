"""The one-call data pipeline: DEAP folder -> baseline-handled, normalised float32, held once.

:func:`prepare` reads one subject at a time and copies its post-baseline signal into one
preallocated float32 array of all trials (channels reordered so that each modality is contiguous, see
:data:`STORAGE_CHANNELS`), computes per-trial float64 moments while the trials are hot
in cache and z-scores in place. With caching on, that array is the memory-mapped data
file of the new cache entry, so the data are written exactly once. Peak memory is
that array plus one subject. A repeat preparation with the same files and config
opens the cached array with ``mmap_mode="r"`` (see :mod:`symaffect.data.cache`).

Normalisation (see :mod:`symaffect.data.normalize`):

* ``per_subject`` is applied eagerly: the stored array is already z-scored.
* ``train_subjects`` depends on the fold, so the stored array is the raw post-baseline
  float32 signal plus per-subject moments; :meth:`Prepared.fit_norm` pools the training
  subjects' moments and the Dataset normalises each batch lazily (a few flops per
  sample, no second copy of the data).
* ``none`` stores the raw post-baseline signal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from symaffect.data import cache as _cache
from symaffect.data import deap
from symaffect.data.dataset import WindowDataset
from symaffect.data.normalize import (
    ChannelMoments,
    NormConfig,
    NormStats,
    fit_norm,
    normalize_inplace,
    trial_moments,
)
from symaffect.data.protocols import WindowMeta
from symaffect.data.records import SubjectRecord
from symaffect.data.windows import WindowConfig, make_window_index
from symaffect.errors import ConfigError, DataError
from symaffect.spec import MODALITIES

log = logging.getLogger(__name__)


class Prepared:
    """Prepared data: every subject's trials once, as views into one float32 array.

    Parameters
    ----------
    array : ndarray, shape (n_total_trials, n_channels, n_stored), float32
        All trials of all subjects, subject after subject (may be a read-only memmap).
    offsets : ndarray of int64, shape (n_subjects + 1,)
        Subject ``i``'s trials are ``array[offsets[i]:offsets[i + 1]]``.
    subjects : sequence of int
        DEAP ids, by subject index.
    trial_ids : ndarray of int64, shape (n_total_trials,)
        1-based trial (video) id of each stored trial.
    ratings : ndarray, shape (n_total_trials, 4), float32
        Valence, arousal, dominance, liking.
    sfreq : float
    ch_names : tuple of str
        Channel order of the C axis: :data:`STORAGE_CHANNELS` (EEG, peripheral, EOG, each
        in its :data:`symaffect.spec.MODALITIES` order), not DEAP's file order.
    window : WindowConfig
        The default window config (its baseline fields made the stored array).
    norm : NormConfig
    moments : dict of int -> ChannelMoments
        Per-subject moments of the post-baseline signal *before* normalisation.
    fingerprint : str
        Identity of the prepared data (input content + storage config).
    source : str
        Where the data came from.

    Attributes
    ----------
    data : tuple of ndarray, shape (n_trials, n_channels, n_stored)
        ``data[subject_idx]``, views into ``array``.
    labels : tuple of ndarray, shape (n_trials, 4)
        ``labels[subject_idx]``, views into ``ratings``.
    """

    def __init__(
        self,
        *,
        array: np.ndarray,
        offsets: np.ndarray,
        subjects: Sequence[int],
        trial_ids: np.ndarray,
        ratings: np.ndarray,
        sfreq: float,
        ch_names: Sequence[str],
        window: WindowConfig,
        norm: NormConfig,
        moments: dict[int, ChannelMoments],
        fingerprint: str,
        source: str = "",
        cache_path: str | None = None,
    ):
        self.array = array
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.subjects = tuple(int(s) for s in subjects)
        self.trial_ids = np.asarray(trial_ids, dtype=np.int64)
        self.ratings = np.asarray(ratings, dtype=np.float32)
        self.sfreq = float(sfreq)
        self.ch_names = tuple(ch_names)
        self.window = window
        self.norm = norm
        self.moments = moments
        self.fingerprint = fingerprint
        self.source = source
        self.cache_path = cache_path
        o = self.offsets
        self.data = tuple(array[o[i] : o[i + 1]] for i in range(len(self.subjects)))
        self.labels = tuple(self.ratings[o[i] : o[i + 1]] for i in range(len(self.subjects)))
        self.subject_of_trial = np.repeat(np.arange(len(self.subjects)), np.diff(o))

    # -- shape ------------------------------------------------------------------------
    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @property
    def n_trials(self) -> np.ndarray:
        """Trials per subject, shape (n_subjects,)."""
        return np.diff(self.offsets)

    @property
    def n_stored(self) -> int:
        """Samples per stored trial (after baseline handling)."""
        return int(self.array.shape[-1])

    @property
    def normalized(self) -> bool:
        """True when the stored array is already z-scored (``per_subject``)."""
        return self.norm.mode == "per_subject"

    def __repr__(self) -> str:
        return (
            f"Prepared({self.n_subjects} subjects, {self.array.shape[0]} trials, "
            f"{self.array.shape[1]} channels x {self.n_stored} samples @ {self.sfreq:g} Hz, "
            f"norm={self.norm.mode}, baseline={self.window.baseline})"
        )

    # -- windows, protocols, datasets -------------------------------------------------
    def _check_window(self, cfg: WindowConfig) -> None:
        if cfg.storage_key() != self.window.storage_key():
            raise ConfigError(
                f"window: baseline settings {cfg.storage_key()} differ from the prepared data's "
                f"{self.window.storage_key()}; prepare again with them"
            )

    def window_index(self, cfg: WindowConfig | None = None) -> np.ndarray:
        """Window index (n_windows, 3) of rows (subject_idx, trial_idx, start) for ``cfg``.

        ``cfg`` may change window length and stride, not the baseline handling.
        """
        cfg = cfg or self.window
        self._check_window(cfg)
        return make_window_index([int(n) for n in self.n_trials], self.n_stored, self.sfreq, cfg)

    def meta(self, cfg: WindowConfig | None = None):
        """:class:`~symaffect.data.protocols.WindowMeta` of the windows of ``cfg``, for protocols."""

        cfg = cfg or self.window
        return WindowMeta(
            index=self.window_index(cfg),
            subjects=np.asarray(self.subjects, dtype=np.int64),
            trial_ids=tuple(self.trial_ids[self.offsets[i] : self.offsets[i + 1]] for i in range(self.n_subjects)),
            window_samples=cfg.window_samples(self.sfreq),
        )

    def fit_norm(self, train_subjects: Iterable[int] | None = None) -> NormStats:
        """Normalisation statistics for this data (``train_subjects``: DEAP ids of a fold's training set)."""
        return fit_norm(self.norm, self.moments, self.fingerprint, train_subjects=train_subjects)

    def dataset(self, index: np.ndarray, **kwargs):
        """A :class:`~symaffect.data.dataset.WindowDataset` over ``index`` (keyword options pass through)."""

        return WindowDataset(self, index, **kwargs)


# -- building ---------------------------------------------------------------------------
STORAGE_CHANNELS: tuple[str, ...] = tuple(c for m in MODALITIES.values() for c in m.ch_names)
"""Channel order of the stored array: each modality's channels, contiguous and in the
modality's own order (EEG 32, peripheral 6, EOG 2), so that a batch of one modality is a
single slice."""


def _alloc(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array; on Linux pre-faulted in one go (``MAP_POPULATE``).

    Touching 1.5 GB of fresh memory page by page was measured to cost 1-3 s on this
    kind of VM; populating the mapping up front costs about 0.6 s.
    """
    nbytes = int(np.prod(shape)) * 4
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if nbytes < (64 << 20) or not populate:
        return np.empty(shape, dtype=np.float32)
    try:
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | populate)
    except (OSError, ValueError):  # pragma: no cover - fall back to ordinary memory
        return np.empty(shape, dtype=np.float32)
    return np.frombuffer(buf, dtype=np.float32).reshape(shape)


def _runs(perm: np.ndarray) -> list[tuple[int, int, int]]:
    """Split a channel permutation into runs (dst_start, src_start, length) of consecutive indices."""
    runs = []
    start = 0
    for k in range(1, len(perm) + 1):
        if k == len(perm) or perm[k] != perm[k - 1] + 1:
            runs.append((start, int(perm[start]), k - start))
            start = k
    return runs


class _Builder:
    """Fills one (n_total_trials, C, S') float32 array, one subject at a time.

    Per subject: copy the post-baseline signal into the array in storage channel order,
    per-trial float64 moments while each block of trials is hot in cache, optional
    in-place z-scoring. With a cache writer the array is the entry's memory-mapped data
    file. The array grows (one copy) only if subjects have unequal trial counts.
    """

    def __init__(self, window: WindowConfig, norm: NormConfig, n_subjects: int, writer=None):
        # writer: a cache.CacheWriter whose file-backed array is filled in place, or None
        self.window, self.norm, self.n_subjects, self.writer = window, norm, n_subjects, writer
        self.array: np.ndarray | None = None
        self.used = 0
        self.offsets = [0]
        self.subjects: list[int] = []
        self.trial_ids: list[np.ndarray] = []
        self.ratings: list[np.ndarray] = []
        self.moments: dict[int, ChannelMoments] = {}
        self.sfreq = 0.0
        self.raw_shape: tuple[int, int] = (0, 0)
        self.perm_runs: list[tuple[int, int, int]] = []
        self.perm = np.empty(0, dtype=np.int64)
        self.src_names: tuple[str, ...] = ()

    def _first(self, rec: SubjectRecord) -> None:
        n, C, S = rec.data.shape
        self.sfreq, self.raw_shape, self.src_names = float(rec.sfreq), (C, S), tuple(rec.ch_names)
        missing = [c for c in STORAGE_CHANNELS if c not in self.src_names]
        if missing:
            raise DataError(rec.source or f"subject {rec.subject}", f"channels {missing} are missing")
        self.perm = np.asarray([self.src_names.index(c) for c in STORAGE_CHANNELS], dtype=np.int64)
        self.perm_runs = _runs(self.perm)
        S_out = self.window.stored_samples(S, self.sfreq)
        if S_out <= 0:
            raise DataError(rec.source, f"{S}-sample trials are not longer than the baseline")
        shape = (n * self.n_subjects, len(STORAGE_CHANNELS), S_out)
        self.array = self.writer.alloc(shape) if self.writer is not None else _alloc(shape)

    def add(self, rec: SubjectRecord) -> None:
        data = rec.data
        where = rec.source or f"subject {rec.subject}"
        if data.ndim != 3:
            raise DataError(where, f"data must be 3-D, got shape {data.shape}")
        n, C, S = data.shape
        if self.array is None:
            self._first(rec)
        elif float(rec.sfreq) != self.sfreq:
            raise DataError(where, f"sampling rate {rec.sfreq:g} Hz differs from {self.sfreq:g} Hz of the others")
        elif (C, S) != self.raw_shape or tuple(rec.ch_names) != self.src_names:
            raise DataError(
                where, f"(channels, samples) = {(C, S)} differs from {self.raw_shape} of the other subjects"
            )
        if int(rec.subject) in self.moments:
            raise DataError(where, f"subject {rec.subject} appears twice")
        if self.used + n > self.array.shape[0]:
            self._grow(self.used + n + n * max(self.n_subjects - len(self.subjects) - 1, 0))
        slot = self.array[self.used : self.used + n]  # (n, C', S')
        b = 0 if self.window.baseline == "keep" else self.window.baseline_samples(self.sfreq)
        for dst, src, k in self.perm_runs:
            slot[:, dst : dst + k] = data[:, src : src + k, b:]
        if self.window.baseline == "subtract_mean" and b > 0:
            base = data[:, self.perm, :b].mean(axis=2, dtype=np.float64)  # (n, C')
            slot -= base.astype(np.float32)[:, :, None]
        means, m2 = trial_moments(slot)
        mom = ChannelMoments.from_trials(slot.shape[2], means, m2)
        if self.norm.mode == "per_subject":
            normalize_inplace(slot, mom.mean, mom.std, eps=self.norm.eps)
        self.moments[int(rec.subject)] = mom
        self.subjects.append(int(rec.subject))
        self.trial_ids.append(np.asarray(rec.trial_ids, dtype=np.int64))
        self.ratings.append(np.asarray(rec.labels, dtype=np.float32))
        self.used += n
        self.offsets.append(self.used)

    def _grow(self, n_trials: int) -> None:
        log.info("subjects have unequal trial counts; growing the prepared array to %d trials", n_trials)
        shape = (n_trials, *self.array.shape[1:])
        if self.writer is not None:
            self.array = self.writer.alloc(shape, keep=self.used)
            return
        new = _alloc(shape)
        new[: self.used] = self.array[: self.used]
        self.array = new

    def moments_arrays(self) -> dict[str, np.ndarray]:
        s = self.subjects
        return {
            "subjects": np.asarray(s, dtype=np.int64),
            "count": np.asarray([self.moments[i].count for i in s], dtype=np.int64),
            "mean": np.stack([self.moments[i].mean for i in s]),
            "m2": np.stack([self.moments[i].m2 for i in s]),
        }

    def manifest(self, **extra) -> dict:
        return {
            "subjects": self.subjects,
            "offsets": self.offsets,
            "trial_ids": [int(t) for ids in self.trial_ids for t in ids],
            "sfreq": self.sfreq,
            "ch_names": list(STORAGE_CHANNELS),
            **extra,
        }

    def result(self, fingerprint: str, source: str, cache_path: str | None = None) -> Prepared:
        if self.array is None:
            raise DataError(source, "no subjects to prepare")
        array = self.array[: self.used]
        array.flags.writeable = False  # prepared data are shared by every dataset: read-only
        return Prepared(
            array=array,
            offsets=np.asarray(self.offsets),
            subjects=self.subjects,
            trial_ids=np.concatenate(self.trial_ids),
            ratings=np.concatenate(self.ratings),
            sfreq=self.sfreq,
            ch_names=STORAGE_CHANNELS,
            window=self.window,
            norm=self.norm,
            moments=self.moments,
            fingerprint=fingerprint,
            source=source,
            cache_path=cache_path,
        )


def _pipeline(paths: Sequence[Path], read, builder: _Builder) -> None:
    """Read and process one subject at a time (one subject's raw arrays alive at once).

    Sequential on purpose: a reader thread beside a processing thread was measured to be
    slower here (each thread's many short GIL hand-overs wait on the other).
    """
    for path in paths:
        builder.add(read(path))


def _storage_config(window: WindowConfig, norm: NormConfig) -> dict:
    return {"window": window.storage_key(), "norm": norm.to_dict()}


def _records_fingerprint(records: Sequence[SubjectRecord], config: dict) -> str:
    """Identity of in-memory records: shapes, ids, labels and (for large arrays) a strided sample."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"config": config, "version": _cache.CACHE_VERSION}, sort_keys=True).encode())
    for r in records:
        d = np.ascontiguousarray(r.data)
        h.update(json.dumps([int(r.subject), list(d.shape), str(d.dtype), float(r.sfreq)]).encode())
        flat = d.reshape(-1)
        step = max(1, flat.size // (1 << 20))
        h.update(np.ascontiguousarray(flat[::step]).tobytes())
        h.update(np.ascontiguousarray(r.labels, dtype=np.float32).tobytes())
        h.update(np.asarray(r.trial_ids, dtype=np.int64).tobytes())
    return h.hexdigest()


def prepare_records(
    records: Iterable[SubjectRecord],
    *,
    window: WindowConfig = WindowConfig(),
    norm: NormConfig = NormConfig(),
) -> Prepared:
    """Prepare in-memory subject records (no cache).

    Parameters
    ----------
    records : iterable of SubjectRecord
        Raw trials (baseline included), any float dtype.
    window, norm : WindowConfig, NormConfig

    Returns
    -------
    Prepared
    """
    records = sorted(records, key=lambda r: r.subject)
    config = _storage_config(window, norm)
    b = _Builder(window, norm, len(records))
    for r in records:
        b.add(r)
    return b.result(_records_fingerprint(records, config), source="<records>")


def prepare(
    folder: str | Path,
    *,
    window: WindowConfig = WindowConfig(),
    norm: NormConfig = NormConfig(),
    cache_dir: str | Path | None = None,
    cache: bool = True,
) -> Prepared:
    """Read, baseline-handle and normalise a folder of DEAP ``sNN.dat`` files, with a cache.

    Parameters
    ----------
    folder : path
        A ``data_preprocessed_python`` folder (only ``sNN.dat`` files are read).
    window : WindowConfig
        Its baseline fields shape the stored array; window length and stride only set
        the default for :meth:`Prepared.window_index`.
    norm : NormConfig
    cache_dir : path, optional
        Cache location; default ``$SYMAFFECT_CACHE`` or ``~/.cache/symaffect``.
    cache : bool
        False: no cache read or write (everything in memory).

    Returns
    -------
    Prepared
    """

    folder = Path(folder)
    files = list(deap.list_subject_files(folder))
    if not files:
        raise DataError(folder, "no sNN.dat files found")
    config = _storage_config(window, norm)
    fps = _cache.files_fingerprint(files)
    key = _cache.cache_key(fps, config)
    if not cache:
        b = _Builder(window, norm, len(files))
        _pipeline(files, deap.read_subject, b)
        return b.result(key, source=str(folder))

    cache_dir = Path(cache_dir) if cache_dir is not None else _cache.default_cache_dir()
    hit = _cache.load_entry(cache_dir, key)
    if hit is not None:
        log.info("prepared data from cache %s", _cache.entry_dir(cache_dir, key))
        return _from_entry(hit, window, norm, key, folder, cache_dir)

    writer = _cache.CacheWriter(cache_dir, key)
    try:
        b = _Builder(window, norm, len(files), writer=writer)
        _pipeline(files, deap.read_subject, b)
        if b.array is None:
            raise DataError(folder, "no subjects to prepare")
        manifest = b.manifest(files=fps, config=config, window=window.to_dict(), norm=norm.to_dict(), source=str(folder))
        entry = writer.commit(b.used, np.concatenate(b.ratings), b.moments_arrays(), manifest)
    except BaseException:
        writer.abort()
        raise
    return b.result(key, source=str(folder), cache_path=str(entry))


def _from_entry(hit, window: WindowConfig, norm: NormConfig, key: str, folder: Path, cache_dir: Path) -> Prepared:
    manifest, data, labels, mom = hit
    moments = {
        int(s): ChannelMoments(count=int(c), mean=m, m2=q)
        for s, c, m, q in zip(mom["subjects"], mom["count"], mom["mean"], mom["m2"], strict=True)
    }
    return Prepared(
        array=data,
        offsets=np.asarray(manifest["offsets"]),
        subjects=manifest["subjects"],
        trial_ids=np.asarray(manifest["trial_ids"]),
        ratings=labels,
        sfreq=manifest["sfreq"],
        ch_names=manifest["ch_names"],
        window=window,
        norm=norm,
        moments=moments,
        fingerprint=key,
        source=str(folder),
        cache_path=str(_cache.entry_dir(cache_dir, key)),
    )
