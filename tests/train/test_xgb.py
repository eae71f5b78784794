"""XGBoost baseline: features and the per-task classifier."""

from __future__ import annotations

import numpy as np

from symaffect.spec import EEG_BANDS
from symaffect.train import xgb


def test_feature_names_match_columns():
    rng = np.random.default_rng(0)
    x = {"eeg": rng.normal(size=(3, 32, 512)), "peripheral": rng.normal(size=(3, 6, 512)),
         "eog": rng.normal(size=(3, 2, 512))}
    f = xgb.window_features(x, sfreq=128.0)
    names = xgb.feature_names(list(x))
    assert f.shape == (3, len(names)) == (3, 32 * 4 + 8 * 7)
    assert f.dtype == np.float32 and np.isfinite(f).all()


def test_alpha_sine_peaks_in_alpha_band_and_slope_is_measured():
    t = np.arange(1280) / 128.0
    eeg = np.tile(np.sin(2 * np.pi * 10.0 * t), (1, 32, 1))
    f = xgb.window_features({"eeg": eeg}, sfreq=128.0).reshape(32, len(EEG_BANDS))
    assert np.all(f.argmax(axis=1) == list(EEG_BANDS).index("alpha"))
    per = np.tile(0.5 * t, (1, 6, 1))  # a ramp of 0.5 per second
    g = xgb.window_features({"peripheral": per}, sfreq=128.0).reshape(6, 7)
    np.testing.assert_allclose(g[:, 2], 0.5, rtol=1e-6)  # slope column
    np.testing.assert_allclose(g[:, 0], per.mean(), rtol=1e-6)


def test_classifier_with_absent_classes_and_single_class(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = np.where(X[:, 0] > 0, 7, 2)  # only classes 2 and 7 of 9
    c = xgb.TaskClassifier(n_classes=9, params={"n_estimators": 20, "n_jobs": 1}).fit(X, y, X, y)
    p = c.predict_proba(X)
    assert p.shape == (60, 9)
    assert set(np.unique(c.predict(X))) <= {2, 7}
    assert (c.predict(X) == y).mean() > 0.9
    c.save(tmp_path / "t.ubj")
    back = xgb.TaskClassifier.load(tmp_path / "t.ubj")
    np.testing.assert_array_equal(back.predict(X), c.predict(X))
    one = xgb.TaskClassifier(n_classes=9).fit(X, np.full(60, 4))
    assert np.all(one.predict(X) == 4)
