"""Shared tiny synthetic data and a tiny run config for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from symaffect.train.config import RunConfig

TINY_MODEL = {"d": 8, "tau": 8, "mixer": "lowrank", "mixer_rank": 4, "n_heads": 2}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """6 subjects x 4 trials x 13 s (3-s baseline + 10 s) of synthetic DEAP-format data."""
    from symaffect.data.synth import generate

    out = tmp_path_factory.mktemp("tiny_deap")
    generate(out, n_subjects=6, n_trials=4, seconds=13.0, seed=3)
    return out


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prepared_cache")


def tiny_config(**changes) -> RunConfig:
    """2-s windows (T = 256), a tiny model, 2 epochs on the CPU."""
    base = {
        "data.window.window_seconds": 2.0,
        "data.window.stride_seconds": 1.0,
        "model.kwargs": dict(TINY_MODEL),
        "optim.lr": 1e-3,
        "optim.batch_size": 16,
        "optim.max_epochs": 2,
        "optim.patience": 5,
        "protocol.test_ratio": 0.34,
        "protocol.val_ratio": 0.25,
        "trainer.accelerator": "cpu",
    }
    base.update(changes)
    return RunConfig().replace(**base)
