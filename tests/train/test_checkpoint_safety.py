"""No file in a run folder can run code: every Lightning checkpoint is read data-only."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from symaffect.errors import DataError
from symaffect.train.checkpoints import load_lightning_checkpoint, resume_point


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _crafted(path):
    with open(path, "wb") as f:
        pickle.dump({"epoch": 3, "state_dict": {}, "x": _Boom()}, f)


def test_crafted_checkpoint_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ck = tmp_path / "run" / "fold0-seed0" / "checkpoints" / "last.ckpt"
    ck.parent.mkdir(parents=True)
    _crafted(ck)
    with pytest.raises(DataError, match="data-only"):
        load_lightning_checkpoint(ck)
    assert not (tmp_path / "PWNED").exists()
    # resuming treats it as damaged: moved aside, never loaded, training starts fresh
    assert resume_point(ck.parent) == (None, None)
    assert not (tmp_path / "PWNED").exists() and (ck.parent / "last.ckpt.damaged").exists()


def test_checkpoint_outside_the_run_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    outside = tmp_path / "elsewhere.ckpt"
    torch.save({"epoch": 1, "state_dict": {}}, outside)
    assert load_lightning_checkpoint(outside)["epoch"] == 1  # a data-only file reads fine
    for path in (outside, run / ".." / "elsewhere.ckpt"):
        with pytest.raises(DataError, match="outside the run folder"):
            load_lightning_checkpoint(path, root=run)


def test_evaluate_refuses_a_fit_json_pointing_outside(tiny_data, cache_dir, tmp_path, monkeypatch):
    """``evaluate`` follows fit.json's checkpoint only inside the run folder."""
    from symaffect.eval.scoring import score_run, train_and_score
    from .conftest import tiny_config

    monkeypatch.chdir(tmp_path)
    run = train_and_score(tiny_config(**{"optim.max_epochs": 1}), tiny_data, tmp_path / "run", cache_dir=cache_dir)
    res = run / "fold0-seed0" / "fit.json"
    doc = json.loads(res.read_text())
    evil = tmp_path / "evil.ckpt"
    _crafted(evil)
    doc["checkpoint"] = str(evil)  # absolute path outside the run
    res.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="outside the run folder"):
        score_run(run, tiny_data, cache_dir=cache_dir)
    assert not (tmp_path / "PWNED").exists()


def test_weights_that_do_not_fit_the_model_are_a_data_error(tmp_path):
    from symaffect.train.checkpoints import load_lightning_weights

    ck = tmp_path / "best.ckpt"
    torch.save({"epoch": 0, "state_dict": {"model.heads.layers.valence.weight": torch.zeros(3, 3)}}, ck)
    kwargs = {"n_times": 64, "d": 8, "tau": 8, "n_heads": 2}
    with pytest.raises(DataError, match="do not fit the run's model 'symaffect'"):
        load_lightning_weights(ck, "symaffect", kwargs)
