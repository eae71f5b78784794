"""The LightningDataModule: one fold's train / val / test windows over prepared data.

Training windows come at the training stride (the paper: 1 s), validation and test
windows at the evaluation stride (non-overlapping by default). Batches are gathered with
the dataset's fast batch path (one numpy fancy-index per modality), in the main process.

Shuffling is explicit and distributed-aware: every epoch draws one permutation of the
training windows from ``np.random.default_rng([seed, epoch])`` (optionally keeping only
``max_windows_per_epoch`` of them), identical on every process; process ``r`` of ``W``
takes ``order[r::W]`` (the order cut to a multiple of ``W``). Batch ``i`` of the ``W``
processes together is then exactly batch ``i`` of a single process with a ``W`` times
larger batch, so DDP with batch ``b`` per process reproduces a single-process run with
batch ``W b``. Validation and test loaders are not sharded (every process scores all
windows; they are few).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Sampler

from symaffect.data.dataset import collate


@dataclass(frozen=True, eq=False)
class FoldWindows:
    """Window index rows ``(subject_idx, trial_idx, start)`` of one fold's partitions.

    Parameters
    ----------
    train : ndarray of int64, shape (n_train, 3)
        At the training stride.
    val, test : ndarray of int64, shape (n, 3)
        At the evaluation stride (``val`` may be empty).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


class EpochBatchSampler(Sampler[list[int]]):
    """Seeded per-epoch batches of positions, sharded over processes.

    Parameters
    ----------
    n : int
        Number of windows.
    batch_size : int
        Per-process batch size.
    seed : int
    epoch_fn : callable returning int
        The current epoch (read at the start of each ``__iter__``).
    shuffle : bool
        False: positions in order (then ``max_windows`` takes the first ones).
    max_windows : int or None
        Windows per epoch (a fresh random subset each epoch when shuffling).
    rank, world_size : int
        This process and the number of processes.
    """

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        seed: int,
        epoch_fn: Callable[[], int],
        shuffle: bool = True,
        max_windows: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.epoch_fn, self.shuffle = epoch_fn, shuffle
        self.max_windows = max_windows
        self.rank, self.world_size = int(rank), int(world_size)

    def order(self, epoch: int) -> np.ndarray:
        """This process's positions for ``epoch``, shape (n_per_process,)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.max_windows is not None:
            order = order[: self.max_windows]
        order = order[: len(order) - len(order) % self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order(int(self.epoch_fn()))
        for b in range(0, len(order), self.batch_size):
            yield order[b : b + self.batch_size].tolist()

    def __len__(self) -> int:
        m = self.n if self.max_windows is None else min(self.n, self.max_windows)
        per = (m - m % self.world_size) // self.world_size
        return -(-per // self.batch_size)


class _Sequential(Sampler[list[int]]):
    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(0, self.n, self.batch_size):
            yield list(range(b, min(b + self.batch_size, self.n)))

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


class AffectDataModule(L.LightningDataModule):
    """Train / val / test loaders of one fold.

    Parameters
    ----------
    prepared : Prepared
        From :func:`symaffect.data.prepare.prepare`.
    windows : FoldWindows
    modalities : sequence of str
    task_set : str
        Label preset (:data:`symaffect.data.labels.PRESETS`).
    batch_size : int
        Per-process batch size.
    seed : int
        Seed of the per-epoch shuffling.
    max_train_windows_per_epoch : int or None
    norm_stats : NormStats or None
        The fold's statistics (needed for ``norm.mode == "train_subjects"``).
    num_workers : int
    shuffle : bool
        Shuffle training windows (False only for tests that need a fixed order).
    """

    def __init__(
        self,
        prepared,
        windows: FoldWindows,
        *,
        modalities: Sequence[str],
        task_set: str,
        batch_size: int = 32,
        seed: int = 0,
        max_train_windows_per_epoch: int | None = None,
        norm_stats=None,
        num_workers: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.prepared = prepared
        self.windows = windows
        self.modalities = tuple(modalities)
        self.task_set = task_set
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.max_train_windows_per_epoch = max_train_windows_per_epoch
        self.norm_stats = norm_stats
        self.num_workers = int(num_workers)
        self.shuffle = shuffle
        self.train_ds = self._dataset(windows.train)
        self.val_ds = self._dataset(windows.val) if len(windows.val) else None
        self.test_ds = self._dataset(windows.test)

    def _dataset(self, index: np.ndarray):
        return self.prepared.dataset(
            index, modalities=self.modalities, tasks=self.task_set, norm=self.norm_stats
        )

    def _loader(self, ds, batch_sampler: Sampler) -> DataLoader:

        return DataLoader(
            ds,
            batch_sampler=batch_sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        sampler = EpochBatchSampler(
            len(self.train_ds),
            batch_size=self.batch_size,
            seed=self.seed,
            epoch_fn=self._epoch,
            shuffle=self.shuffle,
            max_windows=self.max_train_windows_per_epoch,
            rank=rank,
            world_size=world,
        )
        return self._loader(self.train_ds, sampler)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_ds is None:
            return []
        return self._loader(self.val_ds, _Sequential(len(self.val_ds), self.batch_size))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_ds, _Sequential(len(self.test_ds), self.batch_size))

    def predict_dataloader(self) -> DataLoader:
        """The test windows, in order (``trainer.predict(module, datamodule=dm)``)."""
        return self.test_dataloader()


def batches(ds, batch_size: int) -> Iterator[dict]:
    """Sequential batches of a dataset (no DataLoader), for evaluation."""
    for b in range(0, len(ds), batch_size):
        yield ds.get_batch(np.arange(b, min(b + batch_size, len(ds))))


def labels_of(ds, task: str) -> np.ndarray:
    """Targets of every window of ``ds`` for ``task`` (class ids or multi-hot)."""
    return np.asarray(ds.targets(task))

