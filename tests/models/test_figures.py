from __future__ import annotations

import numpy as np
import pytest
import torch

from symaffect.models import build_model


def test_explain_figures_are_written_for_present_modalities(tmp_path):
    pytest.importorskip("mne")
    from matplotlib.image import imread

    from symaffect.models.figures import write_explain_figures

    torch.manual_seed(0)
    model = build_model("symaffect", n_times=128, d=8, tau=8, n_heads=2, n_tokens="paper")
    x = {m: torch.randn(3, s.n_chans, s.n_times) for m, s in model.specs.items() if m != "eog"}
    mask = torch.tensor([[True, True, True], [True, False, True], [False, True, True]])
    paths = write_explain_figures(model, x, tmp_path / "fig", mask=mask)
    names = sorted(p.name for p in paths)
    assert names == sorted([
        "eeg_affinity_matrix.png", "eeg_affinity_scalp.png", "peripheral_affinity_matrix.png",
        "isi_gate.png", "temporal_attention.png", "cross_modal_attention.png",
    ])
    for p in paths:
        img = imread(p)
        assert img.shape[0] > 200 and img.shape[1] > 200
        assert np.ptp(img[..., :3]) > 0.1  # not blank


def test_cross_modal_figure_rows_are_distributions():
    from symaffect.models.figures import plot_cross_modal

    fig = plot_cross_modal(np.array([[0.7, 0.3], [0.4, 0.6]]), ["eeg", "eog"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.70", "0.30", "0.40", "0.60"]
