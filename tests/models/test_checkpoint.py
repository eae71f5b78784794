from __future__ import annotations

import pytest
import torch

from symaffect.errors import DataError
from symaffect.models import build_model, load_checkpoint, save_checkpoint

KW = {"n_times": 64, "d": 8, "tau": 8, "n_heads": 2, "n_tokens": "paper", "task_set": "quadrant_multilabel"}


def test_round_trip_keeps_kwargs_and_version(tmp_path):
    model = build_model("symaffect", **KW)
    path = save_checkpoint(tmp_path / "a" / "m.pt", model, name="symaffect", kwargs=KW,
                           extra={"norm_mean": torch.arange(3.0), "config": {"lr": 1e-4}})
    loaded, info = load_checkpoint(path)
    assert {k: info["kwargs"][k] for k in KW} == KW  # plus every default, written out
    assert info["kwargs"]["gate"] == "bank"
    assert loaded.task_set == "quadrant_multilabel" and loaded.tokens_for("eeg") == 4
    assert torch.equal(info["extra"]["norm_mean"], torch.arange(3.0))
    assert isinstance(info["symaffect_version"], str)
    assert not list(tmp_path.joinpath("a").glob(".*.tmp"))


def test_non_plain_extra_is_refused_at_save(tmp_path):
    model = build_model("symaffect", **KW)
    with pytest.raises(ValueError, match="plain values"):
        save_checkpoint(tmp_path / "m.pt", model, name="symaffect", kwargs=KW, extra={"x": object()})
    assert not (tmp_path / "m.pt").exists()


def test_bad_files_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pt"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(DataError, match="not a symaffect checkpoint"):
        load_checkpoint(other)


def test_weights_that_do_not_fit_raise_data_error(tmp_path):
    model = build_model("symaffect", **KW)
    path = save_checkpoint(tmp_path / "m.pt", model, name="symaffect", kwargs={**KW, "d": 16})
    with pytest.raises(DataError, match="do not fit"):
        load_checkpoint(path)


def test_checkpoint_stores_every_default_so_a_changed_default_cannot_change_the_model(tmp_path):
    import torch

    from symaffect.models import build_model
    from symaffect.models.checkpoint import load_checkpoint, save_checkpoint

    model = build_model("symaffect", n_times=64, d=8, tau=8, n_heads=2)
    path = save_checkpoint(tmp_path / "m.pt", model, name="symaffect", kwargs={"n_times": 64, "d": 8, "tau": 8, "n_heads": 2})
    stored = torch.load(path, weights_only=True)["kwargs"]
    assert stored["gate"] == "bank" and stored["pool"] == "attention+power" and stored["mixer"] == "full"
    assert stored["d"] == 8 and stored["task_set"] == "multitask9"
    again = load_checkpoint(path)
    model_out = again[0] if isinstance(again, tuple) else again
    x = {m: torch.randn(2, s.n_chans, s.n_times) for m, s in model.specs.items()}
    torch.testing.assert_close(model_out.eval()(x)["valence"], model.eval()(x)["valence"])
