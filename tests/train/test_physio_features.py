"""NeuroKit2 peripheral features (symaffect.data.physio_features) and their use in the
XGBoost baseline (``peripheral_features``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symaffect.data import physio_features as pf
from symaffect.errors import ConfigError
from symaffect.spec import PERIPHERAL
from symaffect.train import xgb
from symaffect.train.rundata import RunData

from .conftest import tiny_config

nk = pytest.importorskip("neurokit2")

SF = 128.0
T = 1280  # 10 s
CH = list(PERIPHERAL.ch_names)
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


def _block(**signals) -> np.ndarray:
    """One window (1, 6, T) of peripheral channels: the given ones, the rest a slow ramp."""
    x = np.tile(np.linspace(0.0, 1.0, T), (1, len(CH), 1))
    for name, sig in signals.items():
        x[0, CH.index(name)] = sig
    return x


def _col(f: np.ndarray, name: str) -> np.ndarray:
    return f[:, pf.feature_names(CH).index(f"peripheral:{name}")]


def test_heart_rate_and_hrv_on_simulated_ppg_at_72_bpm():
    ppg = nk.ppg_simulate(duration=60, sampling_rate=int(SF), heart_rate=72, frequency_modulation=0.0,
                          ibi_randomness=0.05, random_state=0)
    x = np.concatenate([_block(BVP=ppg[i * T:(i + 1) * T]) for i in range(5)])
    f = pf.physio_features(x, sfreq=SF)
    assert f.shape == (5, 8) and f.dtype == np.float32
    np.testing.assert_allclose(_col(f, "BVP:hr_mean"), 72.0, atol=3.0)
    sdnn, rmssd = _col(f, "BVP:hrv_sdnn"), _col(f, "BVP:hrv_rmssd")
    assert np.isfinite(sdnn).all() and np.isfinite(rmssd).all()
    assert (sdnn > 1.0).all() and (sdnn < 200.0).all() and (rmssd > 1.0).all() and (rmssd < 300.0).all()


def test_hrv_matches_neurokit_hrv_time_on_the_same_peaks():
    ppg = nk.ppg_simulate(duration=12, sampling_rate=int(SF), heart_rate=70, random_state=3)[:T]
    peaks = nk.ppg_findpeaks(nk.ppg_clean(ppg, sampling_rate=SF), sampling_rate=SF)["PPG_Peaks"]
    ref = nk.hrv_time(peaks, sampling_rate=SF)
    f = pf.physio_features(_block(BVP=ppg), sfreq=SF)
    np.testing.assert_allclose(_col(f, "BVP:hrv_sdnn")[0], ref["HRV_SDNN"].iloc[0], rtol=1e-4)
    np.testing.assert_allclose(_col(f, "BVP:hrv_rmssd")[0], ref["HRV_RMSSD"].iloc[0], rtol=1e-4)


def test_scr_count_on_simulated_eda_and_none_on_flat_conductance_from_ohm():
    eda = nk.eda_simulate(duration=12, sampling_rate=int(SF), scr_number=3, noise=0.0, drift=0.0,
                          random_state=0)[:T]  # uS
    flat = np.full(T, 2.0) + 1e-4 * np.random.default_rng(0).normal(size=T)
    x = np.concatenate([_block(GSR=1e6 / eda), _block(GSR=eda), _block(GSR=1e6 / flat)])
    f = pf.physio_features(x, sfreq=SF)
    count = _col(f, "GSR:scr_count")
    assert count[0] >= 2 and count[0] == count[1]  # Ohm converted: the same responses as in uS
    np.testing.assert_allclose(_col(f, "GSR:scl")[:2], np.median(eda), rtol=1e-4)
    assert _col(f, "GSR:scr_amplitude")[0] > pf.SCR_MIN_AMPLITUDE
    assert count[2] == 0 and np.isnan(_col(f, "GSR:scr_amplitude")[2])
    np.testing.assert_allclose(_col(f, "GSR:scl")[2], 2.0, rtol=1e-3)


def test_breathing_rate_on_simulated_rsp():
    rsp = nk.rsp_simulate(duration=12, sampling_rate=int(SF), respiratory_rate=15, random_state=0)[:T]
    f = pf.physio_features(_block(Resp=rsp), sfreq=SF)
    np.testing.assert_allclose(_col(f, "Resp:rsp_rate"), 15.0, atol=2.0)
    assert _col(f, "Resp:rsp_amplitude")[0] > 0.1 * np.ptp(rsp)


def test_bad_windows_give_nan_not_exceptions():
    rng = np.random.default_rng(0)
    flat = np.zeros((1, 6, T))
    nan = np.full((1, 6, T), np.nan)
    noise = rng.normal(size=(1, 6, T))  # GSR of unknown units (z-scored), no pulse, no breathing
    short = rng.normal(size=(1, 6, 64))  # 0.5 s
    for x in (flat, nan, short):
        f = pf.physio_features(x, sfreq=SF)
        assert f.shape == (1, 8) and np.isnan(f).all()
    f = pf.physio_features(noise, sfreq=SF)
    assert np.isnan(_col(f, "GSR:scl")).all() and np.isnan(_col(f, "GSR:scr_count")).all()
    assert pf.physio_features(np.zeros((0, 6, T)), sfreq=SF).shape == (0, 8)
    with pytest.raises(ValueError, match="expected shape"):
        pf.physio_features(np.zeros((1, 5, T)), sfreq=SF)


def test_a_few_missing_samples_are_filled_in():
    ppg = nk.ppg_simulate(duration=12, sampling_rate=int(SF), heart_rate=72, frequency_modulation=0.0,
                          ibi_randomness=0.0, random_state=1)[:T].copy()
    ppg[500:520] = np.nan
    f = pf.physio_features(_block(BVP=ppg), sfreq=SF)
    np.testing.assert_allclose(_col(f, "BVP:hr_mean"), 72.0, atol=3.0)


def test_feature_names_and_columns_of_the_three_sets():
    rng = np.random.default_rng(0)
    x = {"eeg": rng.normal(size=(2, 32, T)), "peripheral": rng.normal(size=(2, 6, T))}
    basic = xgb.window_features(x, sfreq=SF)
    for fs, n_per in (("basic", 42), ("neurokit", 8), ("both", 50)):
        names = xgb.feature_names(list(x), peripheral_features=fs)
        f = xgb.window_features(x, sfreq=SF, peripheral_features=fs)
        assert f.shape == (2, len(names)) == (2, 128 + n_per)
        np.testing.assert_array_equal(f[:, :128], basic[:, :128])  # EEG unchanged
    both = xgb.window_features(x, sfreq=SF, peripheral_features="both")
    np.testing.assert_array_equal(both[:, :170], basic)  # "both" = basic, then NeuroKit2
    with pytest.raises(ConfigError, match="peripheral_features"):
        xgb.feature_names(["peripheral"], peripheral_features="fancy")


def test_raw_windows_undo_per_subject_normalisation(tiny_data, cache_dir):
    cfg = tiny_config(**{"data.window.window_seconds": 10.0, "data.window.stride_seconds": 10.0})
    data = RunData.split(cfg, tiny_data, cache_dir=cache_dir)
    assert data.prepared.norm.mode == "per_subject"
    ds = data.dataset(data.folds[0], "train")
    raw = pf.raw_windows(ds, np.arange(len(ds)))
    gsr = raw[:, CH.index("GSR")]
    assert np.median(gsr) > 1000  # back in Ohm (synthetic GSR is a skin resistance)
    z = ds.get_batch(np.arange(len(ds)))["x"]["peripheral"].numpy()
    assert abs(float(np.median(z[:, CH.index("GSR")]))) < 5  # what the dataset returns: z-scores
    f = pf.dataset_physio_features(ds, data.prepared.sfreq)
    assert f.shape == (len(ds), 8)
    hr = _col(f, "BVP:hr_mean")
    assert np.isfinite(hr).mean() > 0.8 and 40 < np.nanmedian(hr) < 120
    scl = _col(f, "GSR:scl")
    np.testing.assert_allclose(scl, np.median(1e6 / gsr, axis=1), rtol=1e-3)
    assert np.isfinite(_col(f, "Resp:rsp_rate")).mean() > 0.8


def test_xgboost_trains_end_to_end_with_neurokit_features(tiny_data, cache_dir, tmp_path):
    kwargs = {"n_estimators": 10, "max_depth": 2, "n_jobs": 1, "peripheral_features": "both"}
    cfg = tiny_config(**{"model.name": "xgboost", "model.kwargs": kwargs,
                         "data.window.window_seconds": 10.0, "data.window.stride_seconds": 10.0})
    data = RunData.split(cfg, tiny_data, cache_dir=cache_dir)
    fs = xgb.peripheral_feature_set(cfg.model.kwargs)
    fold = data.folds[0]
    tr, va, te = (data.dataset(fold, p) for p in ("train", "val", "test"))
    sf = data.prepared.sfreq
    X = xgb.dataset_features(tr, sf, peripheral_features=fs)
    names = xgb.feature_names(cfg.data.modalities, peripheral_features=fs)
    assert X.shape == (len(tr), len(names))
    hr = X[:, names.index("peripheral:BVP:hr_mean")]
    assert 40 < np.nanmedian(hr) < 120
    spec = data.tasks
    models = xgb.fit_tasks(X, {t: tr.targets(t) for t in spec.names},
                           xgb.dataset_features(va, sf, peripheral_features=fs),
                           {t: va.targets(t) for t in spec.names},
                           n_outputs=spec.n_outputs, multilabel=False, seed=0, params=cfg.model.kwargs,
                           features=fs)
    assert "peripheral_features" not in models["valence"].params  # not passed on to XGBoost
    xgb.save_tasks(models, tmp_path / "m")
    back = xgb.load_tasks(tmp_path / "m", {t.name: t for t in spec.tasks})
    pred = xgb.predict_tasks(back, xgb.dataset_features(te, sf, peripheral_features=fs))
    assert set(pred) == set(spec.names)
    for t in spec.names:
        assert pred[t].shape == (len(te),) and ((pred[t] >= 0) & (pred[t] < spec.n_outputs[t])).all()
    with pytest.raises(ConfigError, match="computed as 'basic'"):  # never silently the basic set
        xgb.fit_tasks(xgb.dataset_features(tr, sf), {t: tr.targets(t) for t in spec.names}, None, None,
                      n_outputs=spec.n_outputs, multilabel=False, seed=0, params=cfg.model.kwargs)


def _real_csv(name: str):
    path = REAL / "neurokit" / name
    if not path.is_file():
        pytest.skip(f"real recordings absent: {path} (see ../shared/data/real/README.md)")
    import pandas as pd

    return pd.read_csv(path)


def _windows(sig: np.ndarray, sfreq: float) -> np.ndarray:
    """Non-overlapping 10-s windows of a signal at ``sfreq`` resampled to 128 Hz, (N, T)."""
    t_new = np.arange(int(sig.size / sfreq * SF)) / SF
    res = np.interp(t_new, np.arange(sig.size) / sfreq, sig)
    n = res.size // T
    return res[: n * T].reshape(n, T)


def test_real_resting_ppg_and_rsp_give_plausible_rates():
    df = _real_csv("bio_resting_5min_100hz.csv")
    ppg, rsp = _windows(df["PPG"].to_numpy(float), 100.0), _windows(df["RSP"].to_numpy(float), 100.0)
    x = np.zeros((len(ppg), 6, T))
    x[:, CH.index("BVP")], x[:, CH.index("Resp")] = ppg, rsp
    f = pf.physio_features(x, sfreq=SF)
    hr, rr = _col(f, "BVP:hr_mean"), _col(f, "Resp:rsp_rate")
    # whole-recording references from NeuroKit2's own pipelines
    ref_hr = float(nk.ppg_process(df["PPG"].to_numpy(float), sampling_rate=100)[0]["PPG_Rate"].mean())
    ref_rr = float(nk.rsp_process(df["RSP"].to_numpy(float), sampling_rate=100)[0]["RSP_Rate"].mean())
    assert np.isfinite(hr).mean() > 0.9 and np.isfinite(rr).mean() > 0.7
    assert abs(np.nanmedian(hr) - ref_hr) < 5.0 and 40 < np.nanmin(hr) and np.nanmax(hr) < 140
    assert abs(np.nanmedian(rr) - ref_rr) < 3.0 and 4 <= np.nanmin(rr) and np.nanmax(rr) <= 40
    sdnn = _col(f, "BVP:hrv_sdnn")
    assert np.isfinite(sdnn).mean() > 0.9 and 1 < np.nanmedian(sdnn) < 200


def test_real_eda_gives_plausible_level_and_responses():
    df = _real_csv("bio_eventrelated_100hz.csv")
    eda = _windows(df["EDA"].to_numpy(float), 100.0)
    x = np.zeros((len(eda), 6, T))
    x[:, CH.index("GSR")] = 1e6 / eda  # as DEAP stores it: resistance in Ohm
    f = pf.physio_features(x, sfreq=SF)
    scl, count = _col(f, "GSR:scl"), _col(f, "GSR:scr_count")
    np.testing.assert_allclose(scl, np.median(eda, axis=1), rtol=1e-3)
    assert np.isfinite(count).all() and count.max() >= 1 and count.max() <= 6
    amp = _col(f, "GSR:scr_amplitude")
    assert (np.isnan(amp) == (count == 0)).all() and np.nanmin(amp) >= pf.SCR_MIN_AMPLITUDE


def test_a_run_with_neurokit_features_trains_and_scores_with_them(tiny_data, cache_dir, tmp_path):
    """The run path (train_run, then score_run) computes the configured feature set on
    both sides: the run trains, scores, and the saved classifiers read the NeuroKit2 width."""
    import json

    from symaffect.eval.scoring import train_and_score

    kwargs = {"n_estimators": 10, "max_depth": 2, "n_jobs": 1, "peripheral_features": "neurokit"}
    cfg = tiny_config(**{"model.name": "xgboost", "model.kwargs": kwargs,
                         "data.window.window_seconds": 10.0, "data.window.stride_seconds": 10.0})
    run = train_and_score(cfg, tiny_data, tmp_path / "run", cache_dir=cache_dir)
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    assert metrics["model"] == "xgboost"
    width = len(xgb.feature_names(cfg.data.modalities, peripheral_features="neurokit"))
    assert width != len(xgb.feature_names(cfg.data.modalities))  # the two sets differ in width
    import xgboost

    boosters = sorted(Path(run).glob("fold*-seed*/xgboost/*.ubj"))
    assert boosters
    for path in boosters:  # every saved classifier read the NeuroKit2-width feature vector
        booster = xgboost.Booster()
        booster.load_model(path)
        assert booster.num_features() == width
    assert (Path(run) / "fold0-seed0" / "predictions.npz").is_file()  # and it was scored with the same width
