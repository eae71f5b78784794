"""The synthetic DEAP-format generator: format, determinism, plausibility, label effects."""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import welch
from scipy.stats import spearmanr

from symaffect.data import synth
from symaffect.errors import ConfigError
from symaffect.spec import CH_INDEX, DEAP_CHANNELS, LABEL_COLUMNS, SFREQ

SMALL = dict(n_subjects=3, n_trials=4, seconds=20.0, seed=7)


def _load(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("synth") / "out", **SMALL)


def test_files_have_the_exact_preprocessed_format(small_set):
    names = sorted(p.name for p in small_set.iterdir())
    assert names == ["participant_ratings.csv", "s01.dat", "s02.dat", "s03.dat", "synth_meta.json"]
    n_samples = int(round(SMALL["seconds"] * SFREQ))
    for k in (1, 2, 3):
        d = _load(small_set / f"s{k:02d}.dat")
        assert isinstance(d, dict) and set(d) == {"data", "labels"}
        assert d["data"].dtype == np.float64 and d["labels"].dtype == np.float64
        assert d["data"].shape == (SMALL["n_trials"], 40, n_samples)
        assert d["labels"].shape == (SMALL["n_trials"], 4)
        assert np.isfinite(d["data"]).all()
        assert d["labels"].min() >= 1.0 and d["labels"].max() <= 9.0
    with open(small_set / "s01.dat", "rb") as f:
        assert f.read(2) == b"\x80\x02"  # pickle protocol 2


def test_files_load_with_the_project_reader(small_set):
    from symaffect.data.deap import read_deap

    data = read_deap(small_set)
    assert data.subject_ids == [1, 2, 3]
    raw = _load(small_set / "s02.dat")
    np.testing.assert_allclose(data.subjects[1].labels, raw["labels"], rtol=1e-6)
    np.testing.assert_allclose(data.subjects[1].data[:, :32], raw["data"][:, :32], rtol=1e-5, atol=1e-3)
    assert data.ratings is not None and len(data.ratings["Valence"]) == 3 * SMALL["n_trials"]


def test_ratings_csv_matches_the_labels(small_set):
    with open(small_set / "participant_ratings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(synth.RATING_COLUMNS)
    assert len(rows) == SMALL["n_subjects"] * SMALL["n_trials"]
    for k in (1, 2, 3):
        labels = _load(small_set / f"s{k:02d}.dat")["labels"]
        mine = [r for r in rows if int(r["Participant_id"]) == k]
        assert sorted(int(r["Trial"]) for r in mine) == list(range(1, SMALL["n_trials"] + 1))
        assert sorted(int(r["Experiment_id"]) for r in mine) == list(range(1, SMALL["n_trials"] + 1))
        starts = [int(r["Start_time"]) for r in sorted(mine, key=lambda r: int(r["Trial"]))]
        assert starts == sorted(starts) and starts[0] > 0
        for r in mine:
            row = labels[int(r["Experiment_id"]) - 1]
            got = [float(r[c]) for c in ("Valence", "Arousal", "Dominance", "Liking")]
            np.testing.assert_allclose(got, row, atol=1e-9)
            fam = r["Familiarity"]
            if k in synth.NO_FAMILIARITY:
                assert fam == ""
            else:
                assert 1 <= int(fam) <= 5


def test_meta_describes_the_run_and_the_true_effects(small_set):
    meta = json.loads((small_set / "synth_meta.json").read_text())
    assert meta["version"] == synth.GENERATOR_VERSION and meta["seed"] == SMALL["seed"]
    assert meta["n_samples"] == int(round(SMALL["seconds"] * SFREQ))
    assert [e["name"] for e in meta["effects"]] == list(synth.EFFECTS)
    assert set(meta["gains"]) == {"s01", "s02", "s03"}
    assert set(meta["gains"]["s01"]) == set(synth.EFFECTS)
    assert set(meta["channel_units"]) == set(DEAP_CHANNELS)


def test_same_seed_gives_byte_identical_files(small_set, tmp_path):
    again = synth.generate(tmp_path / "again", **SMALL)
    assert _digests(again) == _digests(small_set)
    other = synth.generate(tmp_path / "other", **{**SMALL, "seed": SMALL["seed"] + 1})
    assert _digests(other)["s01.dat"] != _digests(small_set)["s01.dat"]


def test_subject_data_does_not_depend_on_n_subjects_or_jobs(small_set, tmp_path):
    fewer = synth.generate(tmp_path / "fewer", **{**SMALL, "n_subjects": 2}, n_jobs=2)
    a, b = _digests(fewer), _digests(small_set)
    assert a["s01.dat"] == b["s01.dat"] and a["s02.dat"] == b["s02.dat"]
    assert not (fewer / "s03.dat").exists()


def test_invalid_arguments_are_config_errors(tmp_path):
    for bad in (dict(n_subjects=0), dict(n_trials=0), dict(seconds=3.5), dict(effect_scale=-1.0),
                dict(n_jobs=0)):
        with pytest.raises(ConfigError):
            synth.generate(tmp_path, **{**SMALL, **bad})
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------- plausibility


@pytest.fixture(scope="module")
def one_subject() -> synth.SyntheticSubject:
    return synth.synth_subject(3, n_trials=6, seconds=40.0, seed=1)


def _psd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, p = welch(x, fs=SFREQ, nperseg=int(8 * SFREQ), axis=-1)
    return f, p.reshape(-1, f.size).mean(0)


def _peak(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = _psd(x)
    m = (f >= lo) & (f <= hi)
    return float(f[m][np.argmax(p[m])])


def test_eeg_is_microvolt_common_average_with_posterior_alpha(one_subject):
    eeg = one_subject.data[:, :32]
    sd = eeg.std(axis=-1)
    assert 3.0 < sd.min() and sd.max() < 60.0  # tens of microvolts
    np.testing.assert_allclose(eeg.sum(axis=1), 0.0, atol=1e-3)  # common average reference
    posterior = eeg[:, [CH_INDEX[c] for c in ("O1", "O2", "Oz", "PO3", "PO4")]]
    assert 7.5 <= _peak(posterior, 3.0, 45.0) <= 13.0  # individual alpha frequency
    f, p = _psd(eeg[:, CH_INDEX["Oz"]])
    assert p[(f >= 8) & (f <= 13)].mean() > 3 * p[(f >= 20) & (f <= 30)].mean()
    assert p[f < 1.0].mean() < 0.05 * p[(f >= 4) & (f <= 45)].mean()  # band-limited 4-45 Hz
    assert p[f > 55].mean() < 0.05 * p[(f >= 4) & (f <= 45)].mean()
    # spatial correlation falls with distance
    c = np.corrcoef(eeg.transpose(1, 0, 2).reshape(32, -1))
    assert c[CH_INDEX["O1"], CH_INDEX["Oz"]] > c[CH_INDEX["O1"], CH_INDEX["Fp2"]] + 0.3


def test_peripheral_rhythms_and_ranges(one_subject):
    d = one_subject.data
    assert 0.8 <= _peak(d[:, CH_INDEX["BVP"]], 0.5, 3.0) <= 1.7  # 48-102 bpm
    assert 0.15 <= _peak(d[:, CH_INDEX["Resp"]], 0.05, 1.0) <= 0.4  # 9-24 breaths/min
    temp = d[:, CH_INDEX["Temp"]]
    assert 29.0 < temp.min() and temp.max() < 36.0
    conductance = 1e6 / d[:, CH_INDEX["GSR"]]  # microsiemens
    assert 0.3 < conductance.min() and conductance.max() < 40.0
    veog = d[:, CH_INDEX["vEOG"]]
    assert np.percentile(veog - np.median(veog, axis=-1, keepdims=True), 99.9) > 80.0  # blinks
    for ch in ("zEMG", "tEMG"):
        f, p = _psd(d[:, CH_INDEX[ch]])
        assert p[f >= 20].sum() > 0.9 * p.sum(), ch  # broadband, above 20 Hz


def test_ratings_are_distributed_like_deaps():
    lab = np.concatenate([synth.synth_ratings(k, n_trials=40, seed=0)["labels"] for k in range(1, 33)])
    assert lab.min() >= 1 and lab.max() <= 9
    assert np.all((4.5 < lab.mean(0)) & (lab.mean(0) < 5.8))
    assert np.all((1.5 < lab.std(0)) & (lab.std(0) < 2.6))
    assert ((lab > 3) & (lab < 7)).mean() > 0.4  # many mid-scale ratings
    r = np.corrcoef(lab.T)
    v, a, lik = (LABEL_COLUMNS.index(n) for n in ("valence", "arousal", "liking"))
    assert 0.45 < r[v, lik] < 0.75
    assert abs(r[v, a]) < 0.35


# ----------------------------------------------------------------------- label effects


def _trial_features(s: synth.SyntheticSubject) -> dict[str, np.ndarray]:
    x = s.data[:, :, synth.BASELINE_SAMPLES:]
    f, p = welch(x[:, CH_INDEX["BVP"]], fs=SFREQ, nperseg=x.shape[-1], nfft=8 * x.shape[-1], axis=-1)
    m = (f > 0.7) & (f < 2.5)
    return {
        "heart_rate": 60 * f[m][np.argmax(p[:, m], axis=-1)],
        "gsr_resistance": np.log(x[:, CH_INDEX["GSR"]]).mean(-1),
        "zemg": _burst_fraction(x[:, CH_INDEX["zEMG"]]),
    }


def _burst_fraction(emg: np.ndarray) -> np.ndarray:
    """Fraction of 125-ms blocks whose rms exceeds 3x the trial's median block rms."""
    blocks = emg[:, : emg.shape[1] // 16 * 16].reshape(emg.shape[0], -1, 16)
    rms = np.sqrt((blocks**2).mean(-1))
    return (rms > 3 * np.median(rms, axis=1, keepdims=True)).mean(1)


def _pooled_r(effect_scale: float) -> dict[str, float]:
    """Within-subject correlations, pooled over subjects, of trial features with ratings."""
    feats: dict[str, list] = {}
    labs = []
    for k in range(1, 9):
        s = synth.synth_subject(k, n_trials=20, seconds=40.0, seed=3, effect_scale=effect_scale)
        for name, v in _trial_features(s).items():
            feats.setdefault(name, []).append((v - v.mean()) / (v.std() + 1e-12))
        labs.append(s.labels - s.labels.mean(0))
    lab = np.concatenate(labs)
    col = {n: lab[:, LABEL_COLUMNS.index(n)] for n in LABEL_COLUMNS}
    pairs = {"heart_rate": "arousal", "gsr_resistance": "arousal", "zemg": "valence"}
    return {n: float(spearmanr(np.concatenate(feats[n]), col[pairs[n]])[0]) for n in pairs}


def test_label_effects_have_the_documented_sign_and_vanish_at_scale_zero():
    r = _pooled_r(1.0)
    assert r["heart_rate"] > 0.2  # heart_rate_arousal: + bpm
    assert r["gsr_resistance"] < -0.2  # scl_arousal / scr_rate_arousal: conductance up
    assert r["zemg"] > 0.2  # zemg_bursts_valence
    r0 = _pooled_r(0.0)
    assert all(abs(v) < 0.2 for v in r0.values()), r0


def test_effect_scale_zero_changes_only_the_label_effects():
    a = synth.synth_subject(2, n_trials=3, seconds=10.0, seed=5, effect_scale=1.0)
    b = synth.synth_subject(2, n_trials=3, seconds=10.0, seed=5, effect_scale=0.0)
    np.testing.assert_array_equal(a.labels, b.labels)
    base = synth.BASELINE_SAMPLES
    # the baseline carries no label effect: identical up to the fade into the video
    np.testing.assert_allclose(a.data[:, :, :base], b.data[:, :, :base], rtol=1e-6, atol=1e-6)
    assert not np.allclose(a.data[:, :32, base + 128:], b.data[:, :32, base + 128:])


# ----------------------------------------------------------------------- writing


@pytest.mark.slow
def test_a_killed_run_leaves_no_half_written_file(tmp_path):
    out = tmp_path / "killed"
    code = ("from symaffect.data.synth import generate; "
            f"generate({str(out)!r}, n_subjects=60, n_trials=10, seconds=63.0, seed=0)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120
        while not (out / "s03.dat").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.15)  # most likely in the middle of writing the next file
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    files = sorted(out.glob("s*.dat"))
    assert len(files) >= 3
    for p in files:
        d = _load(p)
        assert d["data"].shape == (10, 40, 8064) and np.isfinite(d["data"]).all()
    assert not (out / "synth_meta.json").exists()  # written last: marks a finished run
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert all(n.startswith(".") for n in leftovers)  # hidden, never an sNN.dat name


def test_cli_synth_writes_and_reports(tmp_path):
    from typer.testing import CliRunner

    from symaffect.cli import app

    res = CliRunner().invoke(app, ["synth", str(tmp_path / "cli"), "--subjects", "2", "--trials", "2",
                                   "--seconds", "12", "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert "s02.dat" in res.output and "participant_ratings.csv" in res.output
    assert _load(tmp_path / "cli" / "s02.dat")["data"].shape == (2, 40, 1536)
    bad = CliRunner().invoke(app, ["synth", str(tmp_path / "bad"), "--seconds", "2"])
    assert bad.exit_code != 0 and isinstance(bad.exception, ConfigError)
