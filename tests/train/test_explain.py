"""`symaffect explain`: figures from a trained run's own test windows."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from symaffect.errors import DataError
from symaffect.eval.explain import explain_run
from symaffect.train.run import train_run

from .conftest import tiny_config


def test_explain_writes_every_figure(tiny_data, cache_dir, tmp_path):
    run = train_run(tiny_config(**{"optim.max_epochs": 1}), tiny_data, tmp_path / "run", cache_dir=cache_dir)
    paths = explain_run(run, tiny_data, n_windows=8, cache_dir=cache_dir)
    names = sorted(p.name for p in paths)
    assert names == sorted([
        "eeg_affinity_matrix.png", "eeg_affinity_scalp.png", "peripheral_affinity_matrix.png",
        "eog_affinity_matrix.png", "isi_gate.png", "temporal_attention.png", "cross_modal_attention.png",
    ])
    for p in paths:
        assert p.parent == run / "explain"
        w, h = Image.open(p).size
        assert w > 200 and h > 200


def test_explain_rejects_a_folder_that_is_not_a_run(tiny_data, tmp_path):
    with pytest.raises(DataError, match="not a trained run folder"):
        explain_run(tmp_path, tiny_data)
    r = subprocess.run([sys.executable, "-m", "symaffect.cli", "explain", str(tmp_path), "--data", str(tiny_data)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "not a trained run folder" in r.stderr
