"""End-to-end runs on tiny synthetic data: files, splits, metrics, model.pt, re-evaluation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from symaffect.errors import ConfigError
from symaffect.train.config import RunConfig
from symaffect.eval.scoring import score_run, train_and_score

from .conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tiny_data, cache_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    return train_and_score(tiny_config(), tiny_data, out, cache_dir=cache_dir)


def test_run_folder_files(run_dir):
    for name in ("config.yaml", "splits.json", "metrics.json", "model.pt"):
        assert (run_dir / name).is_file(), name
    assert RunConfig.from_yaml(run_dir / "config.yaml") == tiny_config()
    fdir = run_dir / "fold0-seed0"
    assert (fdir / "checkpoints" / "best.ckpt").is_file()
    assert (fdir / "checkpoints" / "last.ckpt").is_file()
    assert list((fdir / "logs").glob("version_*/metrics.csv"))


def test_splits_are_disjoint_subject_lists(run_dir):
    splits = json.loads((run_dir / "splits.json").read_text())
    (fold,) = splits["folds"]
    tr, va, te = (set(fold[p]) for p in ("train", "val", "test"))
    assert tr and va and te
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == set(range(1, 7))
    assert splits["protocol"]["leaky"] is False


def test_metrics_hold_model_and_baselines(run_dir, tiny_data, cache_dir):
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["protocol"]["name"] == "subject-holdout" and m["protocol"]["leaky"] is False
    assert m["tasks"] == ["valence", "arousal", "liking"]
    assert m["seeds"] == [0]
    (run,) = m["runs"]
    assert m["n_test_windows"] == run["n_test_windows"] > 0
    for task in m["tasks"]:
        rep = run["tasks"][task]
        for src in ("model", "majority", "majority_test_oracle", "prior_random"):
            assert 0.0 <= rep[src]["acc"] <= 1.0
        for key in ("macro_f1", "macro_precision", "weighted_f1", "mae", "within_one"):
            assert key in rep["model"]
        cm = np.asarray(rep["model"]["confusion"])
        assert cm.shape == (9, 9) and cm.sum() == run["n_test_windows"]
        assert m["summary"][task]["model"]["acc"]["n"] == 1
        assert m["summary"][task]["majority"]["acc"]["mean"] == rep["majority"]["acc"]

    # the majority baseline is the most frequent class of the TRAINING windows
    from symaffect.data.labels import PRESETS
    from symaffect.train.rundata import load_data, make_folds

    cfg = tiny_config()
    prepared = load_data(cfg, tiny_data, cache_dir=cache_dir)
    _, (fold,) = make_folds(cfg, prepared)
    assert list(fold.test_subjects) == run["test_subjects"]
    rule = PRESETS["multitask9"]["valence"]
    y_train = rule(prepared.ratings[prepared.offsets[fold.train[:, 0]] + fold.train[:, 1]])
    y_test = rule(prepared.ratings[prepared.offsets[fold.test[:, 0]] + fold.test[:, 1]])
    k = np.bincount(y_train, minlength=9).argmax()
    rep = run["tasks"]["valence"]
    assert rep["majority"]["class"] == k
    assert rep["majority"]["acc"] == pytest.approx(np.mean(y_test == k))


def test_model_pt_loads_without_trainer_and_matches_best_checkpoint(run_dir):
    from symaffect.models.checkpoint import load_checkpoint
    from symaffect.train.checkpoints import load_lightning_weights

    model, info = load_checkpoint(run_dir / "model.pt")
    extra = info["extra"]
    assert extra["window_seconds"] == 2.0
    assert extra["tasks"] == ["valence", "arousal", "liking"]
    assert extra["preprocess"]["norm"] == "per_subject"
    assert RunConfig.from_dict(extra["config"]) == tiny_config()
    assert "package_version" in extra
    best, _ = load_lightning_weights(
        run_dir / "fold0-seed0" / "checkpoints" / "best.ckpt", info["model_name"], info["kwargs"]
    )
    torch.manual_seed(0)
    x = {"eeg": torch.randn(3, 32, 256), "peripheral": torch.randn(3, 6, 256), "eog": torch.randn(3, 2, 256)}
    a, b = model(x), best(x)
    for t in a:
        torch.testing.assert_close(a[t], b[t])
    # the population a listener's calibration works against, from the same training windows
    from symaffect.models.calibration import stored_pool

    pool = stored_pool(model, extra)
    mean = np.asarray(extra["embedding_mean"])
    assert pool.z.shape[1] == mean.shape[0] == model.heads.layers["valence"].in_features
    assert set(pool.targets) == {"valence", "arousal", "liking"} and all(len(v) == len(pool.z) for v in pool.targets.values())
    np.testing.assert_allclose(pool.z.mean(axis=0), mean, atol=1e-4)  # every training window: the same mean


def test_evaluate_run_reproduces_metrics(run_dir, tiny_data, cache_dir):
    before = json.loads((run_dir / "metrics.json").read_text())
    after = score_run(run_dir, tiny_data, cache_dir=cache_dir)
    assert after["runs"][0]["tasks"] == before["runs"][0]["tasks"]
    assert after["summary"] == before["summary"]
    assert json.loads((run_dir / "metrics.json").read_text())["summary"] == before["summary"]


def test_rerun_of_finished_run_is_kept_and_other_config_refused(run_dir, tiny_data, cache_dir):
    kept = [run_dir / "fold0-seed0" / "fit.json", run_dir / "fold0-seed0" / "checkpoints" / "best.ckpt"]
    stamps = [p.stat().st_mtime_ns for p in kept]
    train_and_score(tiny_config(), tiny_data, run_dir, cache_dir=cache_dir)  # trains nothing, scores again
    assert [p.stat().st_mtime_ns for p in kept] == stamps
    with pytest.raises(ConfigError, match="different config"):
        train_and_score(tiny_config(**{"optim.lr": 0.5}), tiny_data, run_dir, cache_dir=cache_dir)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_and_score(tiny_config(), tiny_data, run_dir, cache_dir=cache_dir, resume=False)


def test_xgboost_run(tiny_data, cache_dir, tmp_path):
    cfg = tiny_config(**{"model.name": "xgboost", "model.kwargs": {"n_estimators": 20, "max_depth": 3, "n_jobs": 1}})
    out = train_and_score(cfg, tiny_data, tmp_path / "xgb", cache_dir=cache_dir)
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "xgboost"
    assert set(m["summary"]) == {"valence", "arousal", "liking"}
    assert (out / "fold0-seed0" / "xgboost" / "valence.json").is_file()
    assert not (out / "model.pt").exists()
    again = score_run(out, tiny_data, cache_dir=cache_dir)
    assert again["summary"] == m["summary"]


def test_xgboost_multilabel_quadrant(tiny_data, cache_dir, tmp_path):
    cfg = tiny_config(
        **{
            "model.name": "xgboost",
            "model.kwargs": {"n_estimators": 10, "max_depth": 2, "n_jobs": 1},
            "data.task_set": "quadrant_multilabel",
        }
    )
    m = json.loads((train_and_score(cfg, tiny_data, tmp_path / "q", cache_dir=cache_dir) / "metrics.json").read_text())
    rep = m["runs"][0]["tasks"]["quadrant"]
    assert rep["kind"] == "multilabel"
    assert set(rep["model"]["per_label_f1"]) == {"Q1", "Q2", "Q3", "Q4", "Neutral"}
    assert 0 <= rep["majority"]["subset_acc"] <= 1
    assert m["summary"]["quadrant"]["model"]["subset_acc"]["n"] == 1


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import lightning as L
    sys.path.insert(0, {tests!r})
    from train.conftest import tiny_config
    from symaffect.eval.scoring import train_and_score

    class Slow(L.Callback):  # parks the run at the start of its second epoch
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch >= 1:
                time.sleep({sleep})

    cfg = tiny_config(**{{"optim.max_epochs": 4, "optim.patience": 50}})
    train_and_score(cfg, {data!r}, {out!r}, cache_dir={cache!r}, callbacks=[Slow()])
    """
)


@pytest.mark.slow
def test_resume_after_sigkill(tiny_data, cache_dir, tmp_path):
    out = tmp_path / "killed"
    script = _KILL_SCRIPT.format(
        tests=str(REPO / "tests"), data=str(tiny_data), out=str(out), cache=str(cache_dir), sleep=30
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = out / "fold0-seed0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    try:
        while not last.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.1)
        time.sleep(1.0)  # the run is now parked at the start of epoch 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    epoch_at_kill = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert epoch_at_kill == 0  # killed while parked after the first epoch

    cfg = tiny_config(**{"optim.max_epochs": 4, "optim.patience": 50})
    train_and_score(cfg, tiny_data, out, cache_dir=cache_dir)
    result = json.loads((out / "fold0-seed0" / "result.json").read_text())
    assert result["resumed_from_epoch"] == epoch_at_kill
    assert result["epochs_trained"] == 4
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] >= 3
    assert (out / "metrics.json").is_file()
    # the resumed attempt logged only the remaining epochs, in a new log version
    import csv

    logs = sorted((out / "fold0-seed0" / "logs").glob("version_*/metrics.csv"))
    assert len(logs) == 2
    epochs = {int(r["epoch"]) for r in csv.DictReader(logs[-1].open()) if r["epoch"]}  # lr rows have none
    assert epochs == {1, 2, 3}


@pytest.mark.parametrize(
    ("protocol", "n_folds", "leaky"),
    [("subject_kfold", 3, False), ("loso", 6, False), ("trial_holdout", 1, False), ("window_random", 1, True)],
)
def test_protocols_through_the_same_run(tiny_data, cache_dir, tmp_path, protocol, n_folds, leaky):
    cfg = tiny_config(
        **{
            "model.name": "xgboost",
            "model.kwargs": {"n_estimators": 5, "max_depth": 2, "n_jobs": 1},
            "data.task_set": "binary_valence",
            "protocol.name": protocol,
            "protocol.n_splits": 3,
            "seeds": (0, 1) if protocol == "trial_holdout" else (0,),
        }
    )
    out = train_and_score(cfg, tiny_data, tmp_path / protocol, cache_dir=cache_dir)
    m = json.loads((out / "metrics.json").read_text())
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["folds"]) == n_folds
    assert m["protocol"]["leaky"] is leaky and splits["protocol"]["leaky"] is leaky
    assert len(m["runs"]) == n_folds * len(cfg.seeds)
    assert m["summary"]["valence"]["model"]["acc"]["n"] == len(m["runs"])
    assert m["n_test_windows"] == sum(r["n_test_windows"] for r in m["runs"])
    if protocol in ("subject_kfold", "loso"):
        tested = sorted(s for f in splits["folds"] for s in f["test"])
        assert tested == list(range(1, 7))  # every subject tested exactly once
    # the folds are rebuilt from splits.json, not re-drawn: re-scoring gives the same numbers
    assert score_run(out, tiny_data, cache_dir=cache_dir)["summary"] == m["summary"]


@pytest.mark.parametrize(("task_set", "monitor"), [("binary_arousal", "val/arousal_loss"),
                                                   ("quadrant_multilabel", "val/quadrant_loss")])
def test_single_task_torch_runs_monitor_their_own_loss(tiny_data, cache_dir, tmp_path, task_set, monitor):
    cfg = tiny_config(**{"data.task_set": task_set, "optim.max_epochs": 1,
                         "data.modalities": ("peripheral", "eog")})
    out = train_and_score(cfg, tiny_data, tmp_path / task_set, cache_dir=cache_dir)
    m = json.loads((out / "metrics.json").read_text())
    (run,) = m["runs"]
    assert run["monitor"] == monitor
    task = m["tasks"][0]
    key = "subset_acc" if task_set == "quadrant_multilabel" else "acc"
    assert 0 <= m["summary"][task]["model"][key]["mean"] <= 1
    from symaffect.models.checkpoint import load_checkpoint

    model, info = load_checkpoint(out / "model.pt")
    assert model.modalities == ("peripheral", "eog")
    assert info["extra"]["task_set"] == task_set


def test_unknown_model_is_a_config_error(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="model.name"):
        train_and_score(tiny_config(**{"model.name": "nope"}), tiny_data, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_damaged_last_checkpoint_falls_back_to_best(tmp_path):
    from symaffect.train.checkpoints import resume_point

    d = tmp_path / "checkpoints"
    d.mkdir()
    assert resume_point(d) == (None, None)
    torch.save({"epoch": 2, "state_dict": {}}, d / "best.ckpt")
    (d / "last.ckpt").write_bytes(b"\x80\x02truncated")
    path, epoch = resume_point(d)
    assert path == d / "best.ckpt" and epoch == 2
    assert (d / "last.ckpt.damaged").exists() and not (d / "last.ckpt").exists()


def test_predictions_file_matches_the_report(run_dir):
    p = np.load(run_dir / "fold0-seed0" / "predictions.npz")
    m = json.loads((run_dir / "metrics.json").read_text())
    run = m["runs"][0]
    assert len(p["subject"]) == run["n_test_windows"]
    assert set(p["subject"].tolist()) == set(run["test_subjects"])
    for t in m["tasks"]:
        assert np.mean(p[f"true_{t}"] == p[f"pred_{t}"]) == pytest.approx(run["tasks"][t]["model"]["acc"])
