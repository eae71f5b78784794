"""RunConfig <-> YAML round trip, presets, and errors naming the bad key."""

from __future__ import annotations

import dataclasses

import pytest

from symaffect.errors import ConfigError
from symaffect.train.config import (
    QUICK_CHANGES,
    ModelConfig,
    RunConfig,
    preset,
    resolve_monitor,
)


@pytest.mark.parametrize("name", ["paper", "quick"])
def test_yaml_round_trip(tmp_path, name):
    cfg = preset(name)
    path = tmp_path / "config.yaml"
    cfg.to_yaml(path)
    back = RunConfig.from_yaml(path)
    assert back == cfg
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(back.seeds, tuple) and isinstance(back.data.modalities, tuple)


def test_round_trip_of_non_defaults():
    cfg = RunConfig().replace(
        **{
            "data.eval_stride": 2.5,
            "data.window.stride_seconds": 2.0,
            "protocol.name": "subject_kfold",
            "model.kwargs": {"dim": 16, "tokens": [4, 2, 1]},
            "optim.lr": 3e-4,
            "trainer.max_train_windows_per_epoch": 100,
            "seeds": (1, 2, 3),
        }
    )
    back = RunConfig.from_yaml(cfg.to_yaml())
    assert back == cfg
    assert back.data.eval_stride == 2.5
    assert back.seeds == (1, 2, 3)
    assert back.data.eval_window().stride_seconds == 2.5


def test_paper_preset_is_the_paper():
    cfg = preset("paper")
    assert (cfg.optim.lr, cfg.optim.batch_size, cfg.optim.weight_decay) == (1e-4, 32, 1e-5)
    assert cfg.optim.max_epochs == 120
    assert cfg.optim.monitor == "val/valence_loss"
    assert cfg.data.window.stride_seconds == 1.0 and cfg.data.window.window_seconds == 10.0
    assert cfg.protocol.name == "subject_holdout" and cfg.protocol.test_ratio == 0.2
    assert cfg.loss.weighting == "learnable"
    assert cfg.model.name == "symaffect"


def test_quick_preset_documents_every_change():
    paper, quick = preset("paper").to_dict(), preset("quick").to_dict()

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v and k != "kwargs":
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    changed = {k for (k, v), (_, w) in zip(flat(paper), flat(quick)) if v != w}
    assert changed, "quick must differ from paper"
    assert changed <= set(QUICK_CHANGES), changed - set(QUICK_CHANGES)
    assert preset("quick").optim.monitor == "val/valence_loss"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"optim\.learning_rate"):
        RunConfig.from_yaml("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"data\.window\.size"):
        RunConfig.from_dict({"data": {"window": {"size": 3}}})
    with pytest.raises(ConfigError, match="bogus"):
        RunConfig.from_dict({"bogus": 1})


def test_bad_values_raise_config_error():
    with pytest.raises(ConfigError, match="optim.batch_size"):
        RunConfig.from_dict({"optim": {"batch_size": "many"}})
    with pytest.raises(ConfigError, match="protocol.name"):
        RunConfig.from_dict({"protocol": {"name": "random"}})
    with pytest.raises(ConfigError, match="eval_stride"):
        RunConfig.from_dict({"data": {"eval_stride": "sometimes"}})
    with pytest.raises(ConfigError, match="model.kwargs.task_set"):
        ModelConfig(kwargs={"task_set": "multitask9"})
    with pytest.raises(ConfigError):
        preset("slow")


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().seeds = (1,)  # type: ignore[misc]


def test_resolve_monitor():
    assert resolve_monitor("val/valence_loss", ["valence", "arousal"]) == "val/valence_loss"
    assert resolve_monitor("val/valence_loss", ["arousal"]) == "val/arousal_loss"
    assert resolve_monitor("val/loss", ["quadrant"]) == "val/loss"
