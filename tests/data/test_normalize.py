"""Normalisation statistics: exact, never crossing from test into train, keyed by their data."""

from __future__ import annotations

import numpy as np
import pytest

from symaffect.data.normalize import ChannelMoments, NormConfig, fit_norm, normalize_inplace, trial_moments
from symaffect.data.prepare import STORAGE_CHANNELS, prepare_records
from symaffect.data.records import SubjectRecord
from symaffect.data.windows import WindowConfig
from symaffect.errors import ConfigError

SF = 128.0
WIN = WindowConfig(window_seconds=2.0, stride_seconds=1.0)


def records(n_subjects=4, n_trials=3, seconds=8, seed=0, scale=None):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(1, n_subjects + 1):
        k = s if scale is None else scale(s)
        # channel offsets of very different size (GSR-like ~1e4) to exercise accuracy
        offset = np.linspace(-5, 1e4, 40)[None, :, None]
        data = (rng.normal(size=(n_trials, 40, 384 + int(seconds * SF))) * k + offset * k).astype(np.float32)
        labels = rng.uniform(1, 9, (n_trials, 4)).astype(np.float32)
        out.append(SubjectRecord(subject=s, data=data, labels=labels, sfreq=SF, source=f"s{s:02d}"))
    return out


def test_moments_match_numpy_float64():
    x = records(1, 5)[0].data
    m = ChannelMoments.of(x)
    ref = x.astype(np.float64)
    np.testing.assert_allclose(m.mean, ref.mean(axis=(0, 2)), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(m.std, ref.std(axis=(0, 2)), rtol=1e-10)
    assert m.count == 5 * x.shape[2]
    means, m2 = trial_moments(x, chunk=2)
    np.testing.assert_allclose(means, ref.mean(axis=2), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(m2, ref.var(axis=2) * x.shape[2], rtol=1e-9)


def test_pool_is_exact():
    rs = records(3, 2)
    pooled = ChannelMoments.pool(ChannelMoments.of(r.data) for r in rs)
    allx = np.concatenate([r.data for r in rs]).astype(np.float64)
    np.testing.assert_allclose(pooled.mean, allx.mean(axis=(0, 2)), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(pooled.std, allx.std(axis=(0, 2)), rtol=1e-10)


def test_per_subject_prepared_is_zscored_and_stats_are_the_subjects_own():
    rs = records(3, 2)
    p = prepare_records(rs, window=WIN, norm=NormConfig("per_subject"))
    perm = [rs[0].ch_names.index(c) for c in STORAGE_CHANNELS]
    for i, r in enumerate(rs):
        post = r.data[:, perm, 384:].astype(np.float64)
        np.testing.assert_allclose(p.moments[r.subject].mean, post.mean(axis=(0, 2)), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(p.moments[r.subject].std, post.std(axis=(0, 2)), rtol=1e-10)
        z = p.data[i].astype(np.float64)
        np.testing.assert_allclose(z.mean(axis=(0, 2)), 0, atol=2e-4)
        np.testing.assert_allclose(z.std(axis=(0, 2)), 1, atol=2e-4)
        expected = (post - post.mean(axis=(0, 2))[None, :, None]) / post.std(axis=(0, 2))[None, :, None]
        np.testing.assert_allclose(z, expected, atol=2e-3)
    assert NormConfig("per_subject").transductive and not NormConfig("train_subjects").transductive


def test_train_subject_stats_never_see_test_subjects():
    rs = records(4, 2)
    train = [1, 2]
    p = prepare_records(rs, window=WIN, norm=NormConfig("train_subjects"))
    st = p.fit_norm(train)
    assert st.fitted_on == (1, 2)
    pool = np.concatenate([r.data[:, :, 384:] for r in rs[:2]]).astype(np.float64)
    perm = [rs[0].ch_names.index(c) for c in STORAGE_CHANNELS]
    np.testing.assert_allclose(st.mean[0], pool.mean(axis=(0, 2))[perm], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(st.std[3], pool.std(axis=(0, 2))[perm], rtol=1e-10)
    # blow up the test subjects: the training statistics do not move
    rs2 = rs[:2] + [
        SubjectRecord(subject=r.subject, data=r.data * 1000 + 5, labels=r.labels, sfreq=SF) for r in rs[2:]
    ]
    p2 = prepare_records(rs2, window=WIN, norm=NormConfig("train_subjects"))
    st2 = p2.fit_norm(train)
    np.testing.assert_array_equal(st2.mean, st.mean)
    np.testing.assert_array_equal(st2.std, st.std)
    # the stored array stays raw (normalisation is applied per batch)
    np.testing.assert_array_equal(p.data[0][:, :32], rs[0].data[:, :32, 384:])
    with pytest.raises(ConfigError, match="training subjects"):
        p.fit_norm()


def test_stats_are_keyed_by_data_and_config():
    p_a = prepare_records(records(2, 2, seed=0), window=WIN, norm=NormConfig("train_subjects"))
    p_b = prepare_records(records(2, 2, seed=1), window=WIN, norm=NormConfig("train_subjects"))
    st = p_a.fit_norm([1])
    assert st.key == (NormConfig("train_subjects"), p_a.fingerprint, (1,))
    st.check(p_a.norm, p_a.fingerprint)
    with pytest.raises(ConfigError, match="computed on data"):
        st.check(p_b.norm, p_b.fingerprint)
    with pytest.raises(ConfigError, match="under"):
        st.check(NormConfig("train_subjects", eps=1e-3), p_a.fingerprint)
    idx = p_b.window_index()
    with pytest.raises(ConfigError):
        p_b.dataset(idx, norm=st)
    with pytest.raises(ConfigError, match="fold's statistics"):
        p_a.dataset(p_a.window_index())


def test_lazy_train_norm_in_dataset_matches_manual():
    rs = records(3, 2)
    p = prepare_records(rs, window=WIN, norm=NormConfig("train_subjects"))
    st = p.fit_norm([1, 3])
    idx = p.window_index()
    ds = p.dataset(idx, norm=st)
    pos = np.arange(0, len(idx), 7)
    batch = ds.get_batch(pos)
    for j, k in enumerate(pos):
        s, t, start = idx[k]
        raw = p.data[s][t, :, start : start + 256].astype(np.float64)
        z = (raw - st.mean[s][:, None]) / st.std[s][:, None]
        np.testing.assert_allclose(batch["x"]["eeg"][j].numpy(), z[:32], atol=1e-4)
        np.testing.assert_allclose(ds[int(k)]["x"]["peripheral"].numpy(), z[32:38], atol=1e-4)


def test_none_and_helpers():
    rs = records(2, 2)
    p = prepare_records(rs, window=WIN, norm=NormConfig("none"))
    np.testing.assert_array_equal(p.data[1][:, :32], rs[1].data[:, :32, 384:])
    st = p.fit_norm()
    assert np.all(st.mean == 0) and np.all(st.std == 1)
    x = np.ones((2, 3, 4), np.float32) * np.array([1, 2, 3], np.float32)[None, :, None]
    normalize_inplace(x, np.array([1.0, 2, 3]), np.array([0.0, 2, 4]), eps=0.5)
    assert np.all(x == 0)
    with pytest.raises(ConfigError):
        NormConfig("global")
    assert fit_norm(NormConfig("per_subject"), {7: ChannelMoments.of(rs[0].data)}, "fp").subjects == (7,)
