"""Recordings, channel maps, causal preprocessing, quality, offline prediction, CLI."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from symaffect.cli import app
from symaffect.errors import DataError
from symaffect.spec import DEAP_CHANNELS
from symaffect.stream.channel_map import load_channel_map, shipped_maps
from symaffect.stream.pipeline import Predictor, predict_recording, run_recording, write_predictions
from symaffect.stream.preprocess import StreamPreprocessor, WindowBuffer
from symaffect.stream.recording import deap_recording, read_recording



def _write_dat(path, data):
    labels = np.full((data.shape[0], 4), 5.0)
    with open(path, "wb") as f:
        pickle.dump({"data": data.astype(np.float64), "labels": labels}, f, protocol=2)


# --- channel maps and readers --------------------------------------------------------


def test_shipped_maps_and_resolution():
    assert {"default", "deap", "eeg", "neurokit", "biosppy"} <= set(shipped_maps())
    m, notes = load_channel_map("neurokit").resolve(["ECG", "EDA", "Photosensor", "RSP"])
    assert m == {"EDA": "GSR", "RSP": "Resp"}
    assert any("ECG" in n and "no DEAP channel" in n for n in notes)
    m, _ = load_channel_map("eeg").resolve(["fp1", "CZ", "GSR"])
    assert m == {"fp1": "Fp1", "CZ": "Cz"}
    m, notes = load_channel_map("default").resolve(["EDA", "GSR1"])  # both map to GSR: first wins
    assert m == {"EDA": "GSR"} and "already taken" in notes[0]


def test_channel_map_yaml_errors(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("channels: {EDA: NotAChannel}\n")
    with pytest.raises(DataError, match="unknown target"):
        load_channel_map(p)
    p.write_text("chanels: {}\n")
    with pytest.raises(DataError, match="unknown key"):
        load_channel_map(p)
    with pytest.raises(DataError, match="not found"):
        load_channel_map(tmp_path / "missing.yaml")


def test_read_deap_trial(tmp_path, signals):
    data = np.stack([signals(5, seed=s) for s in range(3)])
    _write_dat(tmp_path / "s01.dat", data)
    rec = read_recording(tmp_path / "s01.dat", trial=2)
    assert rec.ch_names == DEAP_CHANNELS and rec.sfreq == 128.0
    np.testing.assert_allclose(rec.data, data[1].astype(np.float32), rtol=1e-6)
    assert rec.markers[1][0] == "trial 2" and rec.markers[1][1] == 3.0
    with pytest.raises(DataError, match="out of range"):
        read_recording(tmp_path / "s01.dat", trial=4)


def test_read_csv_time_column_and_sfreq(tmp_path):
    t = np.arange(500) / 250.0
    p = tmp_path / "rec.csv"
    rows = ["time,EDA,PPG,ECG"] + [f"{a},{np.sin(a)},{np.cos(a)},0" for a in t]
    p.write_text("\n".join(rows))
    rec = read_recording(p)
    assert rec.sfreq == pytest.approx(250.0) and rec.ch_names == ("GSR", "BVP")
    p2 = tmp_path / "rec2.csv"
    p2.write_text("EDA\n1\n2\n3\n")
    with pytest.raises(DataError, match="--sfreq"):
        read_recording(p2)
    assert read_recording(p2, sfreq=10).sfreq == 10


def test_read_biosppy_txt(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("# Simple Text Format\n# Sampling Rate (Hz):= 1000.00\n# Labels:= PPG\n" + "\n".join(map(str, range(50))))
    rec = read_recording(p)
    assert rec.ch_names == ("BVP",) and rec.sfreq == 1000.0 and rec.n_samples == 50


# --- preprocessing -------------------------------------------------------------------


@pytest.mark.parametrize("sfreq", [128.0, 100.0, 1000.0, 2048.0])
def test_preprocess_chunk_invariant(sfreq):
    rng = np.random.default_rng(1)
    names = ("Fp1", "GSR", "BVP")
    x = rng.standard_normal((3, int(sfreq * 4))) + 3.0
    x[1, 50:60] = np.nan
    whole = StreamPreprocessor(names, sfreq).push(x)
    pre = StreamPreprocessor(names, sfreq)
    parts, i = [], 0
    while i < x.shape[1]:
        n = int(rng.integers(1, 200))
        parts.append(pre.push(x[:, i:i + n]))
        i += n
    model = np.concatenate([p.model for p in parts], axis=1)
    missing = np.concatenate([p.missing for p in parts], axis=1)
    assert model.shape == whole.model.shape and abs(model.shape[1] - 4 * 128) <= 1
    np.testing.assert_array_equal(model, whole.model)
    np.testing.assert_array_equal(missing, whole.missing)
    assert missing[1].any() and not missing[0].any()  # the NaNs are tracked, not spread
    assert np.isfinite(model).all()


def test_resampled_sine_keeps_frequency():
    fs = 1000.0
    t = np.arange(int(fs * 8)) / fs
    out = StreamPreprocessor(("GSR",), fs).push(np.sin(2 * np.pi * 5 * t)[None]).model[0]
    spec = np.abs(np.fft.rfft(out[256:]))
    freqs = np.fft.rfftfreq(out[256:].size, 1 / 128)
    assert freqs[spec.argmax()] == pytest.approx(5.0, abs=0.2)


@pytest.mark.parametrize("sfreq", [100.0, 128.0, 1000.0])
def test_input_index_is_the_sample_that_completes_an_output(sfreq):
    """What the streamer's latency relies on: output k appears when input ``input_index(k)`` arrives."""
    pre = StreamPreprocessor(("GSR",), sfreq)
    for i in range(int(sfreq)):
        before = pre.n_out
        pre.push(np.zeros((1, 1)))
        assert all(pre.input_index(k) == i for k in range(before, pre.n_out))
    assert pre.n_out >= 127


def test_window_buffer_running_zscore():
    buf = WindowBuffer(1, 128)
    pre = StreamPreprocessor(("GSR",), 128.0)
    x = 1000 + 5 * np.random.default_rng(0).standard_normal((1, 1000))
    buf.append(pre.push(x))
    z, raw, miss = buf.window()
    assert z.shape == (1, 128) and abs(float(z.mean())) < 0.5 and 0.5 < float(z.std()) < 1.5
    np.testing.assert_allclose(buf.stats.mean, x.mean(axis=1))


# --- quality and prediction ----------------------------------------------------------


def test_predict_recording_hops_and_chunk_invariance(run_dir, signals):
    rec = deap_recording(signals(10))
    pr = Predictor(run_dir)
    a = predict_recording(pr, rec)
    b = predict_recording(pr, rec, chunk_seconds=0.3)
    assert [p.t for p in a] == [2.0 + k for k in range(9)]  # first at the 2-s window, every 1 s
    assert [p.t for p in b] == [p.t for p in a]
    for x, y in zip(a, b):
        assert x.is_close(y, atol=1e-4)
        assert 1.0 <= x.valence <= 9.0 and x.quadrant in {"Q1", "Q2", "Q3", "Q4", "Neutral"}
        assert sum(x.probabilities["arousal"]) == pytest.approx(1.0, abs=1e-5)
        assert x.modalities_used == ("eeg", "peripheral", "eog") and not x.flags
    with pytest.raises(DataError, match="window"):
        predict_recording(pr, rec, window=10.0)


@pytest.mark.parametrize(
    ("damage", "flag"),
    [("flat", "flat"), ("nan", "nan"), ("clip", "clipping")],
)
def test_quality_flags_drop_modality(run_dir, damage, flag, signals):
    x = signals(8)
    if damage == "flat":
        x[36] = 0.0  # GSR disconnected
    elif damage == "nan":
        x[36, 300:320] = np.nan
    else:
        x[36] = np.clip(x[36], None, np.percentile(x[36], 70))
    hops = run_recording(Predictor(run_dir), deap_recording(x))
    bad = [h for h in hops if any(q.flag == flag for q in h.quality)]
    assert bad, f"no {flag} flag"
    for h in bad:
        assert h.prediction is not None and "peripheral" not in h.prediction.modalities_used
        assert f"peripheral:{flag}" in h.prediction.flags
    clean = [h for h in hops if not h.quality]
    for h in bad:  # confidence counts the dropped modality out: at most 2/3
        assert h.prediction.confidence <= 2 / 3 + 1e-9
    assert all(len(h.prediction.modalities_used) == 3 for h in clean)
    if damage == "nan":  # a 2-s window holds the NaNs for ~2 hops only
        assert 1 <= len(bad) <= 3 and clean


def test_all_modalities_bad_gives_no_prediction(run_dir):
    x = np.zeros((40, 128 * 5))
    hops = run_recording(Predictor(run_dir), deap_recording(x))
    assert hops and all(h.prediction is None for h in hops)
    assert all(any(q.flag == "no_prediction" and q.modality == "all" for q in h.quality) for h in hops)
    assert predict_recording(Predictor(run_dir), deap_recording(x)) == []


def test_partial_peripheral(run_dir, tmp_path, signals):
    """EDA + PPG + breathing only (the therapy-room case): peripheral kept, flagged partial."""
    x = signals(6)
    t = np.arange(x.shape[1]) / 128
    p = tmp_path / "room.csv"
    lines = ["time,EDA,PPG,RSP"] + [f"{a:.6f},{g},{b},{r}" for a, g, b, r in zip(t, x[36], x[38], x[37])]
    p.write_text("\n".join(lines))
    preds = predict_recording(Predictor(run_dir), read_recording(p))
    assert len(preds) == 5
    for pr in preds:
        assert pr.modalities_used == ("peripheral",) and "peripheral:partial" in pr.flags
        assert pr.confidence <= 0.5 / 3 + 1e-9  # 3 of 6 channels of 1 of 3 modalities


def test_write_predictions(run_dir, tmp_path, signals):
    preds = predict_recording(Predictor(run_dir), deap_recording(signals(4)))
    write_predictions(tmp_path / "p.csv", preds)
    write_predictions(tmp_path / "p.json", preds)
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].startswith("t,valence,arousal,liking,quadrant") and len(lines) == len(preds) + 1
    assert json.loads((tmp_path / "p.json").read_text())[0]["t"] == preds[0].t
    with pytest.raises(DataError):
        write_predictions(tmp_path / "p.txt", preds)


def test_cli_predict(run_dir, tmp_path, signals):
    data = np.stack([signals(5)])
    _write_dat(tmp_path / "s01.dat", data)
    r = CliRunner().invoke(app, ["predict", str(run_dir), str(tmp_path / "s01.dat"), "--trial", "1",
                                 "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 0, r.output
    assert "valence" in r.output and (tmp_path / "o.csv").is_file()


@pytest.mark.parametrize("seconds", [1, 2])
def test_recording_shorter_than_one_window_is_an_error(run_dir, tmp_path, seconds):
    """Never "0/0 hops" without a reason: a BDF shorter than the model's 2-s window is one
    clear line (exit 2 from the CLI); exactly one window gives one hop."""
    from symaffect.data.bdf import write_bdf

    rng = np.random.default_rng(0)
    p = tmp_path / "short.bdf"
    write_bdf(p, rng.standard_normal((2, 128 * seconds)) * 10, ["GSR", "Resp"], 128)
    rec = read_recording(p)
    if seconds == 2:
        assert len(run_recording(Predictor(run_dir), rec)) == 1
        return
    with pytest.raises(DataError, match=r"short\.bdf: 1\.00 s of signal is shorter than one 2-s model window"):
        run_recording(Predictor(run_dir), rec)
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "symaffect.cli", "predict", str(run_dir), str(p)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    assert "shorter than one 2-s model window" in r.stderr and "0/0" not in r.stdout + r.stderr


# --- real recordings -----------------------------------------------------------------

REAL_CASES = [
    ("neurokit/bio_eventrelated_100hz.csv", None),
    ("neurokit/bio_resting_5min_100hz.csv", None),
    ("neurokit/eog_100hz.csv", None),
    ("biosppy/eda.txt", None),
    ("biosppy/ppg.txt", None),
    ("biosppy/resp.txt", None),
    ("biosppy/emg.txt", "emg"),
    ("biosppy/eeg_ec.txt", "eeg"),
    ("biosppy/ecg.txt", None),
    ("mne/test.bdf", None),
    ("mne/test_bdf_stim_channel.bdf", None),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "extra_map"), REAL_CASES)
def test_real_recordings(run_dir, tmp_path, real_dir, name, extra_map):
    path = real_dir / name
    if not path.is_file():
        pytest.skip(f"real data not found at {path} (../shared/data/real is absent)")
    cmap = None
    if extra_map == "emg":  # BioSPPy's EMG: placement unknown; test maps it to zEMG
        (tmp_path / "m.yaml").write_text("channels: {EMG: zEMG}\n")
        cmap = tmp_path / "m.yaml"
    elif extra_map == "eeg":  # single unnamed EEG electrode: test maps it to Oz
        (tmp_path / "m.yaml").write_text("channels: {EEG: Oz}\n")
        cmap = tmp_path / "m.yaml"
    if name.endswith("ecg.txt"):  # ECG has no DEAP channel: a clear error, not a crash
        with pytest.raises(DataError, match="no channel maps"):
            read_recording(path, cmap)
        return
    rec = read_recording(path, cmap)
    if rec.duration < 2.0:  # test.bdf is 1 s long: no full window, so a clear error (never "0/0 hops")
        with pytest.raises(DataError, match=r"test\.bdf: 1\.00 s of signal is shorter than one 2-s model window"):
            run_recording(Predictor(run_dir), rec)
        return
    hops = run_recording(Predictor(run_dir), rec)
    expected = int(np.floor(rec.duration * 128 / 128)) - 1  # hops of 1 s after the 2-s window
    assert abs(len(hops) - expected) <= 1
    preds = [h.prediction for h in hops if h.prediction is not None]
    assert preds, [str(q) for h in hops for q in h.quality][:5]
    for p in preds:
        assert all(np.isfinite(v) and 1 <= v <= 9 for v in p.expected.values())
