"""Shared fixtures: a tiny real model saved as a run folder, and small recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from symaffect.models import build_model, save_checkpoint

TINY = {"n_times": 256, "d": 16, "tau": 16, "n_heads": 2}
"""A 2-s window (256 samples) keeps the tests fast; the pipeline takes the window from the model."""

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with a randomly initialised, registered model (robustness, not accuracy)."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    model = build_model("symaffect", **TINY)
    save_checkpoint(run / "model.pt", model, name="symaffect", kwargs=TINY,
                    extra={"window_seconds": 2.0, "preprocess": {}, "tasks": ["valence", "arousal", "liking"]})
    return run


def deap_like(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """(40, n) signals with DEAP-ish structure: EEG noise, slow GSR, BVP pulse, breathing."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 128)
    t = np.arange(n) / 128
    x = rng.standard_normal((40, n)) * 10.0
    x[36] = 1000 + 50 * np.sin(2 * np.pi * 0.05 * t) + rng.standard_normal(n)  # GSR
    x[37] = 200 * np.sin(2 * np.pi * 0.25 * t) + rng.standard_normal(n)  # Resp
    x[38] = 500 * np.sin(2 * np.pi * 1.2 * t) ** 9 + rng.standard_normal(n)  # BVP
    x[39] = 33 + 0.01 * t + 0.01 * rng.standard_normal(n)  # Temp
    return x


@pytest.fixture(scope="session")
def signals():
    """The :func:`deap_like` generator (tests have no package to import helpers from)."""
    return deap_like


@pytest.fixture(scope="session")
def real_dir() -> Path:
    return REAL


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Per-window inference is tiny: one thread is ~10x faster than two on a busy 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
