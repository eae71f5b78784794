"""`symaffect explain`: figures from a trained run's own test windows."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from symaffect.errors import DataError
from symaffect.eval.explain import explain_run
from symaffect.eval.scoring import train_and_score

from .conftest import tiny_config


def test_explain_writes_every_figure(tiny_data, cache_dir, tmp_path):
    run = train_and_score(tiny_config(**{"optim.max_epochs": 1}), tiny_data, tmp_path / "run", cache_dir=cache_dir)
    figs = explain_run(run, tiny_data, n_windows=8, cache_dir=cache_dir)
    names = sorted(p.name for p in figs.paths)
    assert names == sorted([
        "eeg_affinity_matrix.png", "eeg_affinity_scalp.png", "peripheral_affinity_matrix.png",
        "eog_affinity_matrix.png", "isi_gate.png", "temporal_attention.png", "cross_modal_attention.png",
    ])
    for p in figs.paths:
        assert p.parent == run / "explain"
        w, h = Image.open(p).size
        assert w > 200 and h > 200
    assert not any("ISI gate" in n for n in figs.notes)  # the band-pass bank has a shape per series


def test_explain_says_when_a_learned_gate_has_no_structure(tiny_data, cache_dir, tmp_path):
    """A shared gate starts at ones; with a tiny learning rate it stays flat, and the
    command says so (on the figure and in its output) instead of drawing noise."""
    from typer.testing import CliRunner

    from symaffect.cli import app
    from symaffect.models.interpretability import gate_structure

    cfg = tiny_config(**{"optim.max_epochs": 1, "optim.lr": 1e-6,
                         "model.kwargs": {**tiny_config().model.kwargs, "gate": "shared"}})
    run = train_and_score(cfg, tiny_data, tmp_path / "run", cache_dir=cache_dir)
    res = CliRunner().invoke(app, ["explain", str(run), "--data", str(tiny_data), "--n-windows", "4",
                                   "--out", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    for mod in ("eeg", "peripheral", "eog"):
        assert f"note: {mod} ISI gate: no structure: gate within 1 % of flat" in flat
    assert (tmp_path / "fig" / "isi_gate.png").is_file()
    from symaffect.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(run / "model.pt")
    assert gate_structure(model.encoders["eeg"].gate().numpy())["all_flat"]


def test_explain_rejects_a_folder_that_is_not_a_run(tiny_data, tmp_path):
    with pytest.raises(DataError, match="not a run folder"):
        explain_run(tmp_path, tiny_data)
    r = subprocess.run([sys.executable, "-m", "symaffect.cli", "explain", str(tmp_path), "--data", str(tiny_data)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "not a run folder" in r.stderr
