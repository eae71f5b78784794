"""``symaffect data check DIR [--json]``: the summary, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symaffect.data.check import check_folder, count_windows
from symaffect.data.deap import write_subject

_SCRIPT = Path(sys.executable).with_name("symaffect")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "symaffect.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


def _write(folder: Path, sid: int, *, n_trials=2, n_samples=8064, seed=0, labels=None, data=None):
    rng = np.random.default_rng(seed)
    if data is None:
        data = rng.standard_normal((n_trials, 40, n_samples))
    if labels is None:
        labels = rng.uniform(1, 9, (n_trials, 4))
    write_subject(folder / f"s{sid:02d}.dat", data, labels)
    return labels


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deap")
    labels = {s: _write(folder, s, seed=s) for s in (1, 2, 3)}
    (folder / "README.txt").write_text("DEAP preprocessed data\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1\x00")
    return folder, labels


def test_check_json(good_folder):
    folder, labels = good_folder
    r = run_cli("data", "check", folder, "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["n_subjects"] == 3 and s["subjects"] == [1, 2, 3]
    assert s["n_trials"] == {"1": 2, "2": 2, "3": 2} and s["n_trials_total"] == 6
    assert s["n_channels"] == 40 and s["channels"][32:34] == ["hEOG", "vEOG"]
    assert s["n_samples"] == 8064 and s["sfreq"] == 128.0 and s["duration_seconds"] == 63.0
    assert s["baseline_seconds"] == 3.0
    allv = np.concatenate([labels[k] for k in (1, 2, 3)]).astype(np.float32)
    for j, c in enumerate(("valence", "arousal", "dominance", "liking")):
        assert s["ratings"][c]["min"] == pytest.approx(float(allv[:, j].min()))
        assert s["ratings"][c]["max"] == pytest.approx(float(allv[:, j].max()))
        expect = np.bincount(np.clip(np.floor(allv[:, j] + 0.5), 1, 9).astype(int) - 1, minlength=9)
        assert s["class_histograms"][c] == expect.tolist()
    train, ev = s["windows"]["train (overlapping)"], s["windows"]["evaluation (non-overlapping)"]
    assert (train["window"], train["stride"], train["per_trial"], train["total"]) == (1280, 128, 51, 306)
    assert (ev["window"], ev["stride"], ev["per_trial"], ev["total"]) == (1280, 1280, 6, 36)
    assert s["ratings_file"] is None


def test_check_human_output(good_folder):
    folder, _ = good_folder
    r = run_cli("data", "check", folder)
    assert r.returncode == 0, r.stderr
    assert "s01, s02, s03" in r.stdout and "51" in r.stdout and "306" in r.stdout


def test_check_folder_with_ratings_and_other_windows(tmp_path):
    _write(tmp_path, 4, n_trials=1, n_samples=384 + 1280 + 2 * 64)
    (tmp_path / "participant_ratings.csv").write_text(
        "Participant_id,Trial,Experiment_id,Start_time,Valence,Arousal,Dominance,Liking,Familiarity\n"
        "4,1,1,0,5,5,5,5,\n"
    )
    s = check_folder(tmp_path, window_seconds=10.0, train_stride_seconds=0.5)
    assert s["windows"]["train (overlapping)"]["per_trial"] == 3
    assert s["windows"]["evaluation (non-overlapping)"]["per_trial"] == 1
    assert s["ratings_file"].endswith("participant_ratings.csv")
    json.dumps(s)  # JSON-able


@pytest.mark.parametrize(
    "n_samples, window, stride, expected",
    [(8064, 1280, 128, 51), (8064, 1280, 1280, 6), (384 + 1279, 1280, 128, 0), (384 + 1280, 1280, 128, 1)],
)
def test_count_windows(n_samples, window, stride, expected):
    assert count_windows(n_samples, window, stride) == expected


def _bad_truncated(folder):
    _write(folder, 1, n_samples=400)
    _write(folder, 2, n_samples=400)
    p = folder / "s02.dat"
    p.write_bytes(p.read_bytes()[:3000])
    return "s02.dat", "truncated or corrupt"


def _bad_not_pickle(folder):
    _write(folder, 1, n_samples=400)
    (folder / "s03.dat").write_text("subject,trial\n1,1\n")
    return "s03.dat", "not a readable DEAP pickle"


def _bad_shape(folder):
    _write(folder, 1, data=np.zeros((2, 32, 400)), labels=np.full((2, 4), 5.0))
    return "s01.dat", "shape (2, 32, 400)"


def _bad_nan(folder):
    data = np.zeros((2, 40, 400))
    data[1, 5, 7] = np.nan
    _write(folder, 9, data=data)
    return "s09.dat", "trial 2, channel FC1 (index 5): sample 7 is NaN"


def _bad_label_0(folder):
    _write(folder, 1, n_samples=400, labels=np.array([[5, 5, 5, 5], [0, 5, 5, 5.0]]))
    return "s01.dat", "label valence of trial 2 is 0"


def _bad_label_10(folder):
    _write(folder, 1, n_samples=400, labels=np.array([[5, 5, 5, 10.0], [5, 5, 5, 5]]))
    return "s01.dat", "label liking of trial 1 is 10"


def _bad_empty(folder):
    (folder / "README").write_text("nothing here")
    return folder.name, "no DEAP subject files"


def _bad_mixed(folder):
    _write(folder, 1, n_samples=8064)
    _write(folder, 2, n_samples=8064 - 128)
    return "s02.dat", "7936 samples"


@pytest.mark.parametrize(
    "make",
    [_bad_truncated, _bad_not_pickle, _bad_shape, _bad_nan, _bad_label_0, _bad_label_10, _bad_empty, _bad_mixed],
    ids=lambda f: f.__name__[5:],
)
def test_bad_input_exits_2_with_one_line(tmp_path, make):
    folder = tmp_path / "deap"
    folder.mkdir()
    name, problem = make(folder)
    r = run_cli("data", "check", folder, "--json")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert name in lines[0] and problem in lines[0], lines[0]
    assert "Traceback" not in r.stderr
