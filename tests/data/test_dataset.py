"""The torch Dataset: item and batch paths, shapes, dtypes, ids, channel order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symaffect.data.dataset import WindowDataset, collate
from symaffect.data.labels import PRESETS
from symaffect.data.normalize import NormConfig
from symaffect.data.prepare import STORAGE_CHANNELS, prepare_records
from symaffect.data.records import SubjectRecord
from symaffect.data.windows import WindowConfig, non_overlapping
from symaffect.errors import ConfigError
from symaffect.spec import MODALITIES

SF = 128.0
WIN = WindowConfig(window_seconds=2.0, stride_seconds=0.5)
T = 256


def make_prepared(norm="none", n_subjects=3, n_trials=4, seconds=6, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for k, s in enumerate((4, 9, 17)[:n_subjects]):
        n_samp = 384 + int(seconds * SF)
        # channel c carries 1000 * c + trial * 10 + (sample / n_samp): channel, trial and time are readable
        c = np.arange(40)[None, :, None] * 1000.0
        t = np.arange(n_trials)[:, None, None] * 10.0
        time = np.arange(n_samp)[None, None, :] / n_samp
        data = (c + t + time + k * 0.001).astype(np.float32)
        labels = rng.uniform(1, 9, (n_trials, 4)).astype(np.float32)
        recs.append(SubjectRecord(subject=s, data=data, labels=labels, sfreq=SF,
                                  trial_ids=np.arange(n_trials) + 11, source=f"s{s:02d}"))
    return prepare_records(recs, window=WIN, norm=NormConfig(norm)), recs


def test_item_shapes_dtypes_ids_and_channels():
    p, recs = make_prepared()
    idx = p.window_index()
    ds = p.dataset(idx)
    assert len(ds) == len(idx) == 3 * 4 * ((6 * 128 - T) // 64 + 1)
    k = 37
    item = ds[k]
    s_idx, t_idx, start = idx[k]
    assert set(item["x"]) == {"eeg", "peripheral", "eog"}
    for m, spec in MODALITIES.items():
        x = item["x"][m]
        assert x.dtype == torch.float32 and tuple(x.shape) == (spec.n_chans, T)
        # channel identity: each row is the DEAP channel the spec names, in the spec's order
        np.testing.assert_array_equal(np.floor(x[:, 0].numpy() / 1000), spec.deap_indices)
    assert item["subject"] == recs[s_idx].subject
    assert item["trial"] == 11 + t_idx
    assert item["window"] == k and item["start"] == start
    # time axis: the window starts `start` samples after the (dropped) 3-s baseline
    eeg = item["x"]["eeg"].numpy()
    expected_time = (384 + start + np.arange(T)) / (384 + 6 * 128)
    np.testing.assert_allclose(eeg[0] - eeg[0, 0], expected_time - expected_time[0], atol=2e-3)
    for task in ("valence", "arousal", "liking"):
        y = item["y"][task]
        assert y.dtype == torch.long and y.shape == ()
        assert int(y) == PRESETS["multitask9"][task](recs[s_idx].labels)[t_idx]


def test_batch_path_equals_item_path():
    p, _ = make_prepared()
    ds = p.dataset(p.window_index(), tasks="quadrant_multilabel")
    pos = np.random.default_rng(3).choice(len(ds), 20, replace=False)
    batch = ds.get_batch(pos)
    items = [ds[int(i)] for i in pos]
    stacked = collate(items)
    for m in ds.modalities:
        assert batch["x"][m].shape == (20, MODALITIES[m].n_chans, T)
        assert batch["x"][m].is_contiguous()
        torch.testing.assert_close(batch["x"][m], stacked["x"][m], rtol=0, atol=0)
    y = batch["y"]["quadrant"]
    assert y.dtype == torch.float32 and y.shape == (20, 5)
    torch.testing.assert_close(y, stacked["y"]["quadrant"])
    for key in ("subject", "trial", "window", "start"):
        assert torch.equal(batch[key], stacked[key]), key
    assert collate(batch) is batch


def test_dataloader_uses_batch_path():
    p, _ = make_prepared()
    ds = p.dataset(p.window_index(), modalities=("eeg",))
    sampler = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(ds), batch_size=8, drop_last=False)
    dl = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    batches = list(dl)
    assert sum(len(b["window"]) for b in batches) == len(ds)
    assert set(batches[0]["x"]) == {"eeg"}
    torch.testing.assert_close(batches[1]["x"]["eeg"], ds.get_batch(np.arange(8, 16))["x"]["eeg"])


def test_iter_batches_covers_every_window_once_and_is_seeded():
    p, _ = make_prepared()
    ds = p.dataset(p.window_index())
    seen = torch.cat([b["window"] for b in ds.iter_batches(32, seed=5)])
    assert sorted(seen.tolist()) == list(range(len(ds)))
    again = torch.cat([b["window"] for b in ds.iter_batches(32, seed=5)])
    other = torch.cat([b["window"] for b in ds.iter_batches(32, seed=6)])
    assert torch.equal(seen, again) and not torch.equal(seen, other)
    sizes = [len(b["window"]) for b in ds.iter_batches(32, shuffle=False, drop_last=True)]
    assert all(s == 32 for s in sizes) and sum(sizes) == len(ds) // 32 * 32


def test_eval_index_and_targets():
    p, recs = make_prepared(norm="per_subject")
    ev = p.window_index(non_overlapping(WIN))
    ds = p.dataset(ev, tasks="binary_arousal")
    assert len(ds) == 3 * 4 * 3
    t = ds.targets("arousal")
    expected = np.concatenate([(r.labels[:, 1] > 5).astype(int) for r in recs])
    assert np.array_equal(t, np.repeat(expected, 3))
    assert np.array_equal(np.unique(ds.subject_ids), [4, 9, 17])


def test_bad_arguments():
    p, _ = make_prepared()
    idx = p.window_index()
    with pytest.raises(ConfigError, match="modalities"):
        p.dataset(idx, modalities=("ecg",))
    bad = idx[:3].copy()
    bad[0, 2] = 6 * 128 - T + 1
    with pytest.raises(ConfigError, match="runs past"):
        p.dataset(bad)
    bad = idx[:3].copy()
    bad[0, 1] = 4
    with pytest.raises(ConfigError, match="trial_idx"):
        WindowDataset(p, bad)
    with pytest.raises(ConfigError, match="baseline"):
        p.window_index(WindowConfig(window_seconds=2.0, baseline="keep"))
    assert p.ch_names == STORAGE_CHANNELS
