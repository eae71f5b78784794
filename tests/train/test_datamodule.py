"""Seeded, distributed-aware batch order of the training loader."""

from __future__ import annotations

import numpy as np

from symaffect.train.datamodule import AffectDataModule, EpochBatchSampler, FoldWindows
from symaffect.train.rundata import load_data, make_folds

from .conftest import tiny_config


def _batches(n, bs, *, epoch=0, rank=0, world=1, max_windows=None, seed=7):
    s = EpochBatchSampler(n, batch_size=bs, seed=seed, epoch_fn=lambda: epoch,
                          max_windows=max_windows, rank=rank, world_size=world)
    out = list(s)
    assert len(out) == len(s)
    return out


def test_epochs_differ_and_repeat():
    a0, a0b, a1 = _batches(50, 8), _batches(50, 8), _batches(50, 8, epoch=1)
    assert a0 == a0b
    assert a0 != a1
    assert sorted(sum(a0, [])) == list(range(50))


def test_two_processes_together_make_the_single_process_batch():
    single = _batches(64, 8)
    r0, r1 = _batches(64, 4, rank=0, world=2), _batches(64, 4, rank=1, world=2)
    assert len(r0) == len(r1) == len(single)
    for s, a, b in zip(single, r0, r1):
        assert sorted(s) == sorted(a + b)
    # uneven counts are cut to a multiple of the world size: equal batch counts per rank
    assert len(_batches(63, 4, rank=0, world=2)) == len(_batches(63, 4, rank=1, world=2))


def test_max_windows_per_epoch_subsamples():
    b = _batches(100, 16, max_windows=30)
    flat = sum(b, [])
    assert len(flat) == 30 and len(set(flat)) == 30
    assert set(flat) != set(sum(_batches(100, 16, max_windows=30, epoch=1), []))


def test_datamodule_loaders(tiny_data, cache_dir):
    cfg = tiny_config()
    prepared = load_data(cfg, tiny_data, cache_dir=cache_dir)
    _, (fold,) = make_folds(cfg, prepared)
    dm = AffectDataModule(prepared, FoldWindows(fold.train, fold.val, fold.test),
                          modalities=("eeg", "eog"), task_set="binary_valence", batch_size=5, seed=0)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch["x"]) == {"eeg", "eog"}
    assert tuple(batch["x"]["eeg"].shape) == (5, 32, 256)
    assert set(batch["y"]) == {"valence"} and batch["y"]["valence"].dtype.is_floating_point is False
    n_test = sum(len(b["y"]["valence"]) for b in dm.test_dataloader())
    assert n_test == len(fold.test)
    # evaluation windows do not overlap: starts are multiples of the window length
    assert np.all(fold.test[:, 2] % 256 == 0) and np.all(fold.val[:, 2] % 256 == 0)
    assert np.any(fold.train[:, 2] % 256 != 0)  # training windows at the 1-s stride
