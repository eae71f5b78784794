"""The calibration protocol and `symaffect calibrate`, end to end on tiny synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symaffect.data.protocols import LeakageError
from symaffect.eval import calibration as C
from symaffect.eval.suites import tiny_model_kwargs

TINY = {
    "data.window.window_seconds": 2.0, "data.window.stride_seconds": 1.0,
    "optim.max_epochs": 1, "optim.batch_size": 16, "model.kwargs": tiny_model_kwargs("symaffect"),
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from symaffect.data.synth import generate

    root = tmp_path_factory.mktemp("calibration")
    generate(root / "data", n_subjects=6, n_trials=6, seconds=13.0, seed=1)
    obj = C.run_calibration_bench(root / "data", root / "out", task_sets=("binary_arousal",), ks=(0, 1, 2),
                                  draws=2, folds=3, cache_dir=root / "cache", changes=TINY)
    return root, obj


@pytest.mark.slow
def test_bench_writes_the_table_the_figure_and_the_json(bench):
    root, obj = bench
    out = root / "out"
    doc = json.loads((out / "calibration.json").read_text())
    assert set(doc["tasks"]["arousal"]) == {"0", "1", "2"}  # tasks -> task -> "K" -> acc
    assert all(0.0 <= v <= 1.0 for v in doc["tasks"]["arousal"].values())
    s = doc["task_sets"]["binary_arousal"]["summary"]["arousal"]
    assert set(s["methods"]) == {"none", "recentre", "bias", "threshold", "heads", "pooled"}
    assert "0" not in s["methods"]["bias"] and "0" not in s["methods"]["pooled"]  # labelled: K >= 1
    # 6 subjects x 2 draws, every held-out subject once
    assert s["methods"]["none"]["1"]["n"] == 12 and s["within_subject"] is not None
    assert 0 <= s["within_subject_probe"] <= 1  # the probe on the frozen embeddings, per held-out subject
    ts = doc["task_sets"]["binary_arousal"]
    assert set(ts["gap_closed_by_method"]) == {"bias", "threshold", "heads", "pooled"}
    assert set(map(int, ts["per_subject_gain_by_method"]["pooled"]["arousal"])) == set(range(1, 7))
    paired = ts["paired_vs_none"]["arousal"]
    assert set(paired) == {"recentre@0", "bias@2", "threshold@2", "heads@2", "pooled@2"}
    assert paired["pooled@2"]["n_subjects"] == 6 and paired["pooled@2"]["ci_low"] <= paired["pooled@2"]["delta"]
    assert 0 < s["methods"]["none"]["1"]["majority_test"] <= 1
    md = (out / "calibration.md").read_text()
    assert "majority of the test trials" in md and "Within-subject ceilings" in md and "Per-subject gain" in md
    assert "linear probe on the listener's frozen embeddings" in md and "| pooled |" in md
    assert "| recentre @ K = 0 |" in md and "sign-flip p" in md and "Balanced accuracy" in md
    assert 0 <= s["methods"]["pooled"]["2"]["bacc"] <= 1 and 0 <= s["methods"]["none"]["0"]["bacc"] <= 1
    assert (out / "calibration-binary_arousal.png").stat().st_size > 10_000
    assert doc["seconds_calibrate_k8"]["n"] == 0  # no K = 8 here
    rows = json.loads((out / "calibration_rows.json").read_text())["rows"]["binary_arousal"]
    # the same draw orders the tracks for every K: K = 1's test set holds K = 2's
    r1 = {(r["fold"], r["subject"], r["draw"]): r["n_test_windows"] for r in rows if r["k"] == 1 and r["method"] == "none"}
    r2 = {(r["fold"], r["subject"], r["draw"]): r["n_test_windows"] for r in rows if r["k"] == 2 and r["method"] == "none"}
    assert all(r2[key] < r1[key] for key in r1)


def test_the_guard_refuses_a_calibration_track_in_the_test_set(tmp_path):
    from symaffect.data.protocols import Fold, WindowMeta

    meta = WindowMeta(index=np.array([[0, 0, 0], [0, 1, 0]]), subjects=np.array([3]),
                      trial_ids=(np.array([1, 2]),), window_samples=256)
    rows = meta.index
    C._guard(Fold(0, rows[:0], rows[:0], rows, meta, (), (), (3,)), rows[:1], rows[1:], 3)  # fine
    with pytest.raises(LeakageError, match="trial"):
        C._guard(Fold(0, rows[:0], rows[:0], rows, meta, (), (), (3,)), rows[:1], rows, 3)


@pytest.mark.slow
def test_calibrate_command_writes_a_file_predict_takes(bench, tmp_path):
    root, obj = bench
    run = Path(obj["task_sets"]["binary_arousal"]["runs"]["cross_subject"])
    fold0 = json.loads((run / "fold0-seed0" / "fit.json").read_text())
    listener = fold0["test_subjects"][0]
    cli = [sys.executable, "-m", "symaffect.cli"]
    r = subprocess.run([*cli, "calibrate", str(run), "--data", str(root / "data"), "--subject", str(listener),
                        "--trials", "1,2", "--cache-dir", str(root / "cache")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    path = run / "calibrations" / f"s{listener:02d}-threshold-k2.json"
    assert path.is_file() and path.name in "".join(r.stdout.split())
    doc = json.loads(path.read_text())
    assert doc["base"] == "../model.pt" and doc["k"] == 2 and doc["tracks"] == ["1", "2"]
    rec = root / "data" / f"s{listener:02d}.dat"
    p = subprocess.run([*cli, "predict", str(path), str(rec), "--trial", "3", "--out", str(tmp_path / "p.csv")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert len((tmp_path / "p.csv").read_text().splitlines()) > 2
    # pooled: the trainer stored the calibration pool in model.pt
    r = subprocess.run([*cli, "calibrate", str(run), "--data", str(root / "data"), "--subject", str(listener),
                        "--trials", "1,2", "--method", "pooled", "--cache-dir", str(root / "cache")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pooled = json.loads((run / "calibrations" / f"s{listener:02d}-pooled-k2.json").read_text())
    assert pooled["method"] == "pooled" and pooled["heads"]["arousal"]["weight"] != doc["heads"]["arousal"]["weight"]
    # bad input: one line, exit 2, nothing written
    for args, msg in ((["--trials", "99"], "not trials of subject"), (["--trials", "1", "--subject", "77"], "not in")):
        argv = [*cli, "calibrate", str(run), "--data", str(root / "data"), "--subject", str(listener), *args]
        bad = subprocess.run(argv, capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and msg in bad.stderr, bad.stderr


def test_nine_class_tables_carry_mae_and_the_plot_its_panel(tmp_path):
    rows = []
    for k in (0, 1):
        for method in ("none", "threshold"):
            if method == "threshold" and k == 0:
                continue
            for s in (1, 2):
                rows.append({"fold": 0, "subject": s, "draw": 0, "k": k, "method": method, "n_test_windows": 10,
                             "majority_test": {"valence": 0.4}, "acc": {"valence": 0.2 + 0.1 * k},
                             "mae": {"valence": 1.5 - 0.2 * k}})
    summary = C.summarise(rows, ["valence"], [0, 1], ["none", "threshold"], {"valence": {1: 0.5, 2: 0.4}})
    v = summary["valence"]
    assert v["methods"]["threshold"]["1"]["mae"] == pytest.approx(1.3) and v["within_subject"] == pytest.approx(0.45)
    assert C.gap_closed(summary, k=1, method="threshold")["valence"] == pytest.approx(0.0)
    # the gap is closed towards the higher of the two ceilings
    summary["valence"]["within_subject_probe"] = 0.6
    summary["valence"]["methods"]["threshold"]["1"]["acc"] = 0.45
    assert C.ceiling_of(summary["valence"]) == pytest.approx(0.6)
    assert C.gap_closed(summary, k=1, method="threshold")["valence"] == pytest.approx((0.45 - 0.3) / (0.6 - 0.3))
    path = C.plot(summary, [0, 1], tmp_path / "c.png", nine_class=True)
    assert path.stat().st_size > 10_000
