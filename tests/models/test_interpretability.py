from __future__ import annotations

import numpy as np
import pytest
import torch

from symaffect.models import build_model
from symaffect.models import interpretability as F


def _texts(fig) -> str:
    """All text drawn in the axes, with line breaks (notes are wrapped) as spaces."""
    return " ".join(" ".join(t.get_text().split()) for ax in fig.axes for t in ax.texts)


@pytest.mark.parametrize("gate", ["shared", "bank"])
def test_explain_figures_are_written_for_present_modalities(tmp_path, gate):
    pytest.importorskip("mne")
    from matplotlib.image import imread

    torch.manual_seed(0)
    model = build_model("symaffect", n_times=128, d=8, tau=8, n_heads=2, n_tokens="paper", gate=gate)
    x = {m: torch.randn(3, s.n_chans, s.n_times) for m, s in model.specs.items() if m != "eog"}
    mask = torch.tensor([[True, True, True], [True, False, True], [False, True, True]])
    figs = F.write_explain_figures(model, x, tmp_path / "fig", mask=mask)
    names = sorted(p.name for p in figs.paths)
    assert names == sorted([
        "eeg_affinity_matrix.png", "eeg_affinity_scalp.png", "peripheral_affinity_matrix.png",
        "isi_gate.png", "temporal_attention.png", "cross_modal_attention.png",
    ])
    for p in figs.paths:
        img = imread(p)
        assert img.shape[0] > 200 and img.shape[1] > 200
        assert np.ptp(img[..., :3]) > 0.1  # not blank
    gate_notes = [n for n in figs.notes if "ISI gate" in n]
    if gate == "shared":  # initialised to ones, untrained: flat
        assert len(gate_notes) == 3 and all("no structure" in n for n in gate_notes)
        assert {n.split()[0] for n in gate_notes} == {"eeg", "peripheral", "eog"}
    else:  # band-pass initialised bank: every series has a shape
        assert gate_notes == []


def test_affinity_structure_and_fixed_colour_scale_when_uniform():
    c = 8
    rng = np.random.default_rng(0)
    noise = np.full((c, c), 1 / c) * (1 + 0.004 * rng.standard_normal((c, c)))
    noise /= noise.sum(axis=1, keepdims=True)
    st = F.affinity_structure(noise)
    assert st["uniform"] and st["max_rel_dev"] < 0.01 and st["uniform_value"] == pytest.approx(1 / c)
    names = [f"ch{i}" for i in range(c)]
    fig = F.plot_channel_affinity(noise, names)
    (im,) = fig.axes[0].images
    assert im.get_clim() == pytest.approx((0.0, 2 / c))  # noise drawn as one flat colour
    assert "no structure: every entry within 1 % of uniform (1/C = 1/8" in _texts(fig)
    assert "colour scale fixed at [0, 2/C]" in _texts(fig)
    assert "no structure" in F.affinity_note(noise)

    peaked = np.full((c, c), 0.5 / (c - 1))
    np.fill_diagonal(peaked, 0.5)
    assert not F.affinity_structure(peaked)["uniform"] and F.affinity_note(peaked) is None
    fig = F.plot_channel_affinity(peaked, names)
    (im,) = fig.axes[0].images
    assert im.get_clim() == pytest.approx((0.0, peaked.max()))  # from 0: contrast = value, not min-max
    assert "no structure" not in _texts(fig)
    # just outside the tolerance: structure (by this definition)
    edge = np.full((2, 2), 0.5)
    edge[0] = [0.5 * 1.011, 1 - 0.5 * 1.011]
    assert not F.affinity_structure(edge)["uniform"]


def test_scalp_connectivity_draws_no_lines_for_a_uniform_affinity():
    pytest.importorskip("mne")
    names = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "O1", "O2"]
    uniform = np.full((8, 8), 1 / 8)
    fig = F.plot_scalp_connectivity(uniform, names)
    assert "no structure" in _texts(fig) and "no lines drawn" in _texts(fig)
    n_plain = len(fig.axes[0].lines)
    peaked = np.full((8, 8), 0.3 / 7)
    np.fill_diagonal(peaked, 0.7)
    peaked[0, 1] = peaked[1, 0] = 0.2
    peaked[0] /= peaked[0].sum()
    peaked[1] /= peaked[1].sum()
    fig2 = F.plot_scalp_connectivity(peaked, names, n_lines=5)
    assert len(fig2.axes[0].lines) == n_plain + 5 and "no structure" not in _texts(fig2)


def test_gate_structure_shared_and_bank():
    f = np.linspace(0, 64, 65)
    flat = np.ones(65) + 0.002 * np.sin(f)
    st = F.gate_structure(flat)
    assert st["all_flat"] and st["n_series"] == 1 and float(st["ratio"]) < 0.01
    assert F.gate_note(flat).startswith("no structure: gate within 1 % of flat")
    bump = 0.2 + np.exp(-((f - 10) / 3) ** 2)
    assert F.gate_structure(bump)["n_flat"] == 0 and F.gate_note(bump) is None
    assert F.gate_structure(np.zeros(65))["n_flat"] == 0  # max/min undefined: not called flat

    bank = np.stack([bump, flat, 0.2 + np.exp(-((f - 30) / 3) ** 2)])
    st = F.gate_structure(bank)
    assert st["flat"].tolist() == [False, True, False] and st["n_series"] == 3
    assert F.gate_note(bank) == "1 of 3 series' gates within 1 % of flat (no frequency selectivity in those series)"
    assert F.gate_note(np.stack([flat, flat])).startswith("no structure: all 2 series' gates within 1 % of flat")


def test_plot_gates_bank_is_an_image_sorted_by_peak_frequency():
    f = np.linspace(0, 64, 65)
    centres = [30.0, 6.0, 45.0, 12.0]
    bank = np.stack([0.1 + np.exp(-((f - c) / 2) ** 2) for c in centres])
    fig = F.plot_gates({"eeg": (bank, f), "eog": (np.ones(65), f)})
    ax_bank, ax_shared = fig.axes[0], fig.axes[1]
    (im,) = ax_bank.images
    shown = im.get_array()
    assert shown.shape == (4, 65)
    peaks = f[np.argmax(shown, axis=1)]
    assert peaks.tolist() == sorted(centres)
    lo, hi = im.get_clim()
    assert lo == 0.0 and hi >= 1.0  # fixed from 0, not min-max
    assert "no structure" not in " ".join(t.get_text() for t in ax_bank.texts)
    # the flat shared gate of the other panel is noted there, drawn from 0
    assert "no structure: gate within 1 % of flat" in " ".join(" ".join(t.get_text().split()) for t in ax_shared.texts)
    assert ax_shared.get_ylim()[0] == 0.0


def test_temporal_attention_note_when_uniform():
    t = 128
    att = np.full((2, t), 1 / t) * (1 + 0.001 * np.cos(np.arange(t)))
    att /= att.sum(axis=1, keepdims=True)
    fig = F.plot_temporal_attention({"eeg": att}, sfreq=128.0)
    ax = fig.axes[0]
    assert "no structure: every weight within 1 % of uniform" in _texts(fig)
    assert ax.get_ylim() == pytest.approx((0.0, 2 / t))
    peaked = np.full((1, t), 0.5 / (t - 1))
    peaked[0, 10] = 0.5
    assert F.attention_note(peaked) is None


def test_cross_modal_figure_rows_are_distributions():
    fig = F.plot_cross_modal(np.array([[0.7, 0.3], [0.4, 0.6]]), ["eeg", "eog"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.70", "0.30", "0.40", "0.60"]
