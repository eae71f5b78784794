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
    assert info["kwargs"] == KW
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
