"""A torch Dataset of windows over :class:`~symaffect.data.prepare.Prepared` data.

Items are read from the prepared float32 array at access time (windows are never
materialised for the whole data set). Two access paths give identical values:

* ``ds[i]`` — one window: ``{"x": {modality: Tensor(C, T)}, "y": {task: Tensor},
  "subject": int, "trial": int, "window": int, "start": int}``.
* ``ds.get_batch(positions)`` / ``ds.__getitems__`` / :meth:`WindowDataset.iter_batches` —
  a whole batch gathered with one numpy fancy-index per modality over a strided
  sliding-window view: ``{"x": {modality: Tensor(B, C, T)}, "y": {task: Tensor(B, ...)},
  "subject": LongTensor(B), "trial": ..., "window": ..., "start": ...}``.

``"subject"`` is the DEAP id, ``"trial"`` the 1-based trial id, ``"window"`` the position
of the window in this dataset's index, ``"start"`` its first sample in the stored
(post-baseline) trial. Targets are int64 class ids for multi-class rules and float32
multi-hot vectors for multi-label rules.

With ``norm.mode == "train_subjects"`` the prepared array holds the raw signal and the
dataset needs the fold's :class:`~symaffect.data.normalize.NormStats` (``norm=``); each
window or batch is normalised on the fly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from symaffect.data.labels import LabelRule, TaskSet
from symaffect.data.normalize import NormStats
from symaffect.errors import ConfigError
from symaffect.spec import MODALITIES


def _channel_selector(ch_names: Sequence[str], names: Sequence[str]) -> tuple[np.ndarray, slice | None]:
    try:
        idx = np.asarray([list(ch_names).index(c) for c in names], dtype=np.int64)
    except ValueError as e:
        raise ConfigError(f"modalities: channel missing from the prepared data ({e})") from None
    if len(idx) and np.all(np.diff(idx) == 1):
        return idx, slice(int(idx[0]), int(idx[-1]) + 1)
    return idx, None


class WindowDataset(torch.utils.data.Dataset):
    """Windows of prepared DEAP data, per modality, with labels and ids.

    Parameters
    ----------
    prepared : Prepared
    index : ndarray of int64, shape (n_windows, 3)
        Rows (subject_idx, trial_idx, start) as made by :meth:`Prepared.window_index`.
    modalities : sequence of str
        Keys of :data:`symaffect.spec.MODALITIES` to return (any subset).
    tasks : str or mapping of str -> LabelRule or TaskSet
        A preset name of :data:`symaffect.data.labels.PRESETS` or explicit rules.
    norm : NormStats, optional
        Required when the prepared data use ``norm.mode == "train_subjects"``.
    window_samples : int, optional
        Window length T; default from ``prepared.window``.
    """

    def __init__(
        self,
        prepared,
        index: np.ndarray,
        *,
        modalities: Sequence[str] = ("eeg", "peripheral", "eog"),
        tasks: str | Mapping[str, LabelRule] | TaskSet = "multitask9",
        norm: NormStats | None = None,
        window_samples: int | None = None,
    ):
        self.prepared = prepared
        self.index = np.ascontiguousarray(index, dtype=np.int64).reshape(-1, 3)
        self.T = int(window_samples or prepared.window.window_samples(prepared.sfreq))
        self.modalities = tuple(modalities)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise ConfigError(f"modalities: {unknown or 'none given'}; known: {tuple(MODALITIES)}")
        self.tasks = TaskSet.of(tasks)
        self._channels = {
            m: _channel_selector(prepared.ch_names, MODALITIES[m].ch_names) for m in self.modalities
        }
        # per stored trial: targets of every task
        self._targets = self.tasks.apply(prepared.ratings)
        self._check_index()
        self._g = prepared.offsets[self.index[:, 0]] + self.index[:, 1]  # global trial row per window
        self._norm = None
        if prepared.norm.mode == "train_subjects":
            if norm is None:
                raise ConfigError("norm: 'train_subjects' data need the fold's statistics (prepared.fit_norm(train))")
        if norm is not None:
            norm.check(prepared.norm, prepared.fingerprint)
            if prepared.norm.mode == "train_subjects":
                self._norm = norm
                self._norm_rows = np.asarray([norm.row(s) for s in prepared.subjects], dtype=np.int64)
        # (n_total_trials, C, S' - T + 1, T) strided view: windows by (trial row, start)
        self._sw = np.lib.stride_tricks.sliding_window_view(prepared.array, self.T, axis=2)

    def _check_index(self) -> None:
        idx, p = self.index, self.prepared
        if len(idx) == 0:
            return
        s, t, start = idx[:, 0], idx[:, 1], idx[:, 2]
        if s.min() < 0 or s.max() >= p.n_subjects:
            raise ConfigError("index: subject_idx out of range")
        if t.min() < 0 or np.any(t >= p.n_trials[s]):
            raise ConfigError("index: trial_idx out of range")
        if start.min() < 0 or start.max() + self.T > p.n_stored:
            raise ConfigError(f"index: a {self.T}-sample window runs past the {p.n_stored}-sample trial")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def subject_ids(self) -> np.ndarray:
        """DEAP id of each window, shape (n_windows,)."""
        return np.asarray(self.prepared.subjects, dtype=np.int64)[self.index[:, 0]]

    def targets(self, task: str) -> np.ndarray:
        """Target of every window for ``task``, shape (n_windows,) or (n_windows, n_classes)."""
        return self._targets[task][self._g]

    # -- one window -------------------------------------------------------------------
    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if i < 0:
            i += len(self)
        s_idx, _, start = (int(v) for v in self.index[i])
        g = int(self._g[i])
        x = {}
        for m, (idx, sl) in self._channels.items():
            sel = sl if sl is not None else idx
            w = np.array(self.prepared.array[g, sel, start : start + self.T], dtype=np.float32)  # (C, T) copy
            if self._norm is not None:
                self._norm.transform(w[None], self._norm_rows[[s_idx]], idx)
            x[m] = torch.from_numpy(w)
        y = {}
        for task, rule in self.tasks.tasks:
            v = self._targets[task][g]
            y[task] = torch.tensor(v, dtype=torch.float32 if rule.kind == "multilabel" else torch.long)
        return {
            "x": x,
            "y": y,
            "subject": int(self.prepared.subjects[s_idx]),
            "trial": int(self.prepared.trial_ids[g]),
            "window": i,
            "start": start,
        }

    # -- batches ----------------------------------------------------------------------
    def get_batch(self, positions: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Gather the windows at ``positions`` into batch tensors (one fancy-index per modality)."""
        pos = np.asarray(positions, dtype=np.int64)
        rows = self.index[pos]
        g = self._g[pos]
        start = rows[:, 2]
        x = {}
        for m, (idx, sl) in self._channels.items():
            if sl is not None:
                arr = self._sw[g, sl, start]  # (B, C, T)
            else:
                arr = self._sw[g[:, None], idx[None, :], start[:, None]]  # (B, C, T)
            if arr.dtype != np.float32:
                arr = arr.astype(np.float32)
            if self._norm is not None:
                self._norm.transform(arr, self._norm_rows[rows[:, 0]], idx)
            x[m] = torch.from_numpy(arr)
        y = {}
        for task, rule in self.tasks.tasks:
            v = self._targets[task][g]
            y[task] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32 if rule.kind == "multilabel" else np.int64))
        subjects = np.asarray(self.prepared.subjects, dtype=np.int64)
        return {
            "x": x,
            "y": y,
            "subject": torch.from_numpy(subjects[rows[:, 0]]),
            "trial": torch.from_numpy(self.prepared.trial_ids[g].copy()),
            "window": torch.from_numpy(pos.copy()),
            "start": torch.from_numpy(start.copy()),
        }

    def __getitems__(self, positions: list[int]) -> dict[str, Any]:
        """Batch access used by ``torch.utils.data.DataLoader`` (pair with :func:`collate`)."""
        return self.get_batch(positions)

    def iter_batches(
        self, batch_size: int = 32, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Yield batches covering every window once (shuffled by ``np.random.default_rng(seed)``)."""
        n = len(self)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for b in range(0, stop, batch_size):
            yield self.get_batch(order[b : b + batch_size])


def collate(batch: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """``collate_fn`` for a DataLoader: passes a ready batch through, stacks a list of items."""
    if isinstance(batch, dict):
        return batch
    if not batch:
        raise ValueError("empty batch")
    first = batch[0]
    return {
        "x": {m: torch.stack([b["x"][m] for b in batch]) for m in first["x"]},
        "y": {t: torch.stack([b["y"][t] for b in batch]) for t in first["y"]},
        **{k: torch.as_tensor([b[k] for b in batch], dtype=torch.long) for k in ("subject", "trial", "window", "start")},
    }
