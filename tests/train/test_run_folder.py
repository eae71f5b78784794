"""The run folder owns its layout; paths inside it are relative, so a moved or copied
folder resumes, scores and serves."""

from __future__ import annotations

import json
import shutil

import pytest

from symaffect.errors import DataError
from symaffect.eval.scoring import score_run, train_and_score
from symaffect.run_folder import RunFolder, model_file

from .conftest import tiny_config


def test_paths_are_relative_and_stay_inside(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.fold_dir(0, 0).mkdir(parents=True)
    ck = run.checkpoint_dir(0, 0) / "best.ckpt"
    assert run.relative(ck) == "fold0-seed0/checkpoints/best.ckpt"
    assert run.resolve("fold0-seed0/checkpoints/best.ckpt") == ck.resolve()
    with pytest.raises(DataError, match="outside the run folder"):
        run.resolve("../elsewhere/best.ckpt")
    with pytest.raises(DataError, match="outside the run folder"):
        run.resolve(str(tmp_path / "evil.ckpt"))
    with pytest.raises(DataError, match="outside the run folder"):
        run.relative(tmp_path / "evil.ckpt")
    # an absolute path written by an older version inside a folder since moved
    old = "/old/place/run/fold0-seed0/checkpoints/best.ckpt"
    assert run.resolve(old) == ck.resolve()
    with pytest.raises(DataError, match="not a run folder"):
        run.require()
    with pytest.raises(DataError, match="not found"):
        model_file(tmp_path / "nothing")


@pytest.mark.slow
def test_a_moved_run_folder_resumes_scores_and_serves(tiny_data, cache_dir, tmp_path):
    from symaffect.stream.pipeline import Predictor

    cfg = tiny_config()
    first = train_and_score(cfg, tiny_data, tmp_path / "a" / "run", cache_dir=cache_dir)
    before = RunFolder(first).read_metrics()
    for r in before["runs"]:  # nothing absolute is stored
        assert not r["checkpoint"].startswith("/") and not r["learning_curves"].startswith("/")

    moved = tmp_path / "b" / "moved-run"
    shutil.move(str(first), moved)
    assert not first.exists()
    run = RunFolder(moved)
    # scoring the moved folder reproduces the metrics
    assert score_run(moved, tiny_data, cache_dir=cache_dir)["summary"] == before["summary"]
    # an unfinished fold (killed after its last epoch was saved) resumes in the new place
    run.fit_path(0, 0).unlink()
    run.metrics.unlink()
    train_and_score(cfg, tiny_data, moved, cache_dir=cache_dir)
    fit = run.read_fit(0, 0)
    assert fit["resumed_from_epoch"] == cfg.optim.max_epochs - 1
    assert run.resolve(fit["checkpoint"]).is_relative_to(moved.resolve())
    assert run.read_metrics()["summary"] == before["summary"]
    # a copy is independent of the original and serves predictions
    copy = tmp_path / "c" / "copy"
    shutil.copytree(moved, copy)
    shutil.rmtree(moved)
    assert score_run(copy, tiny_data, cache_dir=cache_dir)["summary"] == before["summary"]
    pred = Predictor(copy)
    assert pred.n_times == 256
    stored = json.loads(RunFolder(copy).fit_path(0, 0).read_text())
    assert stored["checkpoint"] == "fold0-seed0/checkpoints/best.ckpt"


@pytest.mark.slow
def test_training_writes_the_contract_the_live_path_applies(tiny_data, cache_dir, tmp_path):
    """Round trip: train with the training subjects' statistics; the live path reads the
    very same numbers from model.pt and z-scores with them."""
    import numpy as np

    from symaffect.stream.pipeline import Predictor, SessionPipeline
    from symaffect.train.rundata import RunData

    cfg = tiny_config(**{"data.norm.mode": "train_subjects", "optim.max_epochs": 1})
    run = train_and_score(cfg, tiny_data, tmp_path / "run", cache_dir=cache_dir)
    data = RunData.from_splits(cfg, RunFolder(run).splits, tiny_data, cache_dir=cache_dir)
    stats = data.norm_stats(data.folds[0])
    pred = Predictor(run)
    assert pred.contract == data.contract(data.folds[0])
    assert pred.contract.live_norm == "fixed" and pred.contract.eeg_band == (4.0, 45.0)
    names = list(data.prepared.ch_names)
    mean, std = pred.contract.channel_stats(names)
    np.testing.assert_allclose(mean, stats.mean[0]) and np.testing.assert_allclose(std, stats.std[0])
    pipe = SessionPipeline(pred, names, 128.0, eeg_band=None)
    assert pipe.buf.norm == "fixed"
