"""Windows: counts, bounds, views (never copies), baseline handling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symaffect.data.records import SubjectRecord
from symaffect.data.windows import (
    WindowConfig,
    apply_baseline,
    make_window_index,
    n_windows,
    non_overlapping,
    sliding_windows,
    window_view,
)
from symaffect.errors import ConfigError
from symaffect.spec import N_SAMPLES, SFREQ


def test_paper_window_counts():
    cfg = WindowConfig()  # 10 s windows, 1 s stride, 3 s baseline dropped
    stored = cfg.stored_samples(N_SAMPLES, SFREQ)
    assert stored == 7680 and cfg.window_samples(SFREQ) == 1280
    idx = make_window_index([40], stored, SFREQ, cfg)
    assert idx.shape == (40 * 51, 3) and idx.dtype == np.int64
    assert (idx[:, 1] == 0).sum() == 51
    ev = make_window_index([40], stored, SFREQ, non_overlapping(cfg))
    assert (ev[:, 1] == 0).sum() == 6
    assert np.array_equal(ev[ev[:, 1] == 0, 2], np.arange(6) * 1280)


def test_keep_baseline_windows_cover_whole_trial():
    cfg = WindowConfig(baseline="keep")
    stored = cfg.stored_samples(N_SAMPLES, SFREQ)
    assert stored == N_SAMPLES
    assert n_windows(stored, 1280, 128) == 54


def test_index_from_records_and_order():
    recs = [
        SubjectRecord(subject=s, data=np.zeros((n, 40, 384 + 128 * 12), np.float32),
                      labels=np.full((n, 4), 5.0, np.float32), sfreq=128.0)
        for s, n in ((1, 2), (2, 3))
    ]
    cfg = WindowConfig(window_seconds=4, stride_seconds=2)
    idx = make_window_index(recs, 0, 128.0, cfg)
    per_trial = n_windows(128 * 12, 512, 256)
    assert per_trial == 5
    assert len(idx) == (2 + 3) * per_trial
    assert np.array_equal(np.unique(idx[:, 0]), [0, 1])
    assert (idx[:, 0] == 1).sum() == 3 * per_trial
    # sorted by subject, trial, start
    assert np.array_equal(idx, idx[np.lexsort((idx[:, 2], idx[:, 1], idx[:, 0]))])


def test_windows_are_views_not_copies():
    data = np.random.default_rng(0).normal(size=(3, 5, 1000)).astype(np.float32)
    sw = sliding_windows(data, 100, 50)
    assert sw.shape == (3, 19, 5, 100)
    assert np.shares_memory(sw, data)
    assert np.array_equal(sw[2, 4], data[2, :, 200:300])
    w = window_view(data, (0, 1, 300), 100)
    assert np.shares_memory(w, data) and np.array_equal(w, data[1, :, 300:400])
    with pytest.raises(IndexError):
        window_view(data, (0, 1, 950), 100)


def test_apply_baseline_modes():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(2, 3, 10)).astype(np.float32) + 7
    sf = 1.0
    drop = apply_baseline(data, sf, WindowConfig(window_seconds=2, baseline="drop", baseline_seconds=3))
    assert drop.shape == (2, 3, 7) and np.shares_memory(drop, data)
    keep = apply_baseline(data, sf, WindowConfig(window_seconds=2, baseline="keep", baseline_seconds=3))
    assert keep is data
    sub = apply_baseline(data, sf, WindowConfig(window_seconds=2, baseline="subtract_mean", baseline_seconds=3))
    expected = data[..., 3:] - data[..., :3].mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(sub, expected, rtol=1e-6, atol=1e-6)
    out = np.empty((2, 3, 7), np.float32)
    apply_baseline(data, sf, WindowConfig(window_seconds=2, baseline="subtract_mean", baseline_seconds=3), out=out)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_config_validation():
    with pytest.raises(ConfigError, match="baseline"):
        WindowConfig(baseline="nope")
    with pytest.raises(ConfigError, match="stride"):
        WindowConfig(stride_seconds=0)
    with pytest.raises(ConfigError, match="whole number"):
        WindowConfig(window_seconds=0.001).window_samples(128.0)
    with pytest.raises(ConfigError, match="does not fit"):
        make_window_index([1], 100, 128.0, WindowConfig())
    cfg = WindowConfig(stride_seconds=2.5)
    assert non_overlapping(cfg).stride_seconds == cfg.window_seconds
    assert WindowConfig(**cfg.to_dict()) == cfg


@settings(max_examples=60, deadline=None)
@given(
    n_trials=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    n_samples=st.integers(1, 400),
    window=st.integers(1, 120),
    stride=st.integers(1, 60),
)
def test_index_property(n_trials, n_samples, window, stride):
    cfg = WindowConfig(window_seconds=float(window), stride_seconds=float(stride), baseline="keep")
    if n_samples < window:
        with pytest.raises(ConfigError):
            make_window_index(n_trials, n_samples, 1.0, cfg)
        return
    idx = make_window_index(n_trials, n_samples, 1.0, cfg)
    per_trial = (n_samples - window) // stride + 1
    assert len(idx) == sum(n_trials) * per_trial
    if len(idx):
        assert idx[:, 2].min() >= 0 and (idx[:, 2] + window).max() <= n_samples
        assert np.all(idx[:, 2] % stride == 0)
        # the last window leaves less than one stride unused
        assert n_samples - (idx[:, 2].max() + window) < stride
        assert len(np.unique(idx, axis=0)) == len(idx)
        for s, n in enumerate(n_trials):
            rows = idx[idx[:, 0] == s]
            assert len(rows) == n * per_trial
            if n:
                assert rows[:, 1].max() == n - 1
