from __future__ import annotations

import math

import pytest
import torch

from symaffect.models import build_model
from symaffect.models.base import modality_dropout_mask
from symaffect.models.dtfe import (
    DTFE,
    CrossSeriesIntersection,
    FrequencyGate,
    TemporalMixer,
    instance_norm,
)
from symaffect.models.fusion import ConcatFusion, ModalityFusion
from symaffect.models.symaffect import resolve_tokens


def test_instance_norm_standardises_each_channel_and_survives_flat_channels():
    x = torch.randn(3, 4, 100) * 7 + 5
    x[1, 2] = 3.0  # a flat channel
    x.requires_grad_(True)
    y = instance_norm(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, 4), atol=1e-5, rtol=0)
    std = y.detach().std(-1, unbiased=False)
    assert torch.allclose(std[0], torch.ones(4), atol=1e-4)
    assert float(std[1, 2]) == 0.0
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kind", ["full", "lowrank", "identity"])
def test_mixers_start_as_identity_and_row_mean_matches(kind):
    mixer = TemporalMixer(n_times=32, kind=kind, rank=4)
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(mixer(x), x)
    with torch.no_grad():
        for p in mixer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    q = mixer.matrix()
    torch.testing.assert_close(mixer(x), x @ q, rtol=1e-5, atol=1e-5)
    rm = mixer.row_mean()
    if kind == "identity":
        assert rm is None
    else:
        torch.testing.assert_close(rm.detach(), q.mean(dim=1), rtol=1e-5, atol=1e-6)


def test_row_mean_cache_follows_parameter_updates():
    mixer = TemporalMixer(n_times=16, kind="full")
    with torch.no_grad():
        first = mixer.row_mean().clone()
    opt = torch.optim.SGD(mixer.parameters(), lr=1.0)
    (mixer(torch.randn(1, 2, 16)) ** 2).sum().backward()
    opt.step()
    with torch.no_grad():
        second = mixer.row_mean()
    assert not torch.equal(first, second)
    torch.testing.assert_close(second, mixer.Q.detach().mean(dim=1))


def test_descriptors_are_eq8_mean_of_tokenized_features():
    dtfe = DTFE(n_chans=5, n_times=32, sfreq=128.0, d=8, tau=8)
    with torch.no_grad():
        dtfe.mixer.Q.add_(0.05 * torch.randn(32, 32))
    x_hat = instance_norm(torch.randn(3, 5, 32))
    f_i = dtfe.mixer(dtfe.proj(x_hat))  # eq. 6, formed explicitly
    torch.testing.assert_close(dtfe.descriptors(x_hat), f_i.mean(-1), rtol=1e-5, atol=1e-5)


def test_csi_affinity_is_a_per_sample_channel_by_channel_row_stochastic_matrix():
    csi = CrossSeriesIntersection(n_chans=32, d=8, rank=2)
    g = torch.randn(4, 8)
    x_hat = torch.randn(4, 32, 20)
    x_csi, a = csi(x_hat, g)
    assert a.shape == (4, 32, 32)
    torch.testing.assert_close(a.sum(-1), torch.ones(4, 32))
    assert (a >= 0).all()
    assert not torch.allclose(a[0], a[1])
    torch.testing.assert_close(x_csi, a @ x_hat + x_hat)  # eq. 12 in channel space


@pytest.mark.parametrize("impl", ["dft", "matrix"])
@pytest.mark.parametrize("n_times", [64, 63])
def test_matmul_gates_equal_fft_gate(n_times, impl):
    fft = FrequencyGate(n_times=n_times, sfreq=128.0, impl="fft")
    dft = FrequencyGate(n_times=n_times, sfreq=128.0, impl=impl)
    with torch.no_grad():
        fft.weight.copy_(torch.rand(fft.n_freqs) * 2 - 0.5)
        dft.weight.copy_(fft.weight)
    x = torch.randn(2, 3, n_times)
    torch.testing.assert_close(dft(x), fft(x), rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        fft.weight.fill_(1.0)
    torch.testing.assert_close(fft(x), x, rtol=1e-5, atol=1e-5)


def test_gate_bins_are_frequencies_in_hz():
    gate = FrequencyGate(n_times=256, sfreq=128.0)
    hz = gate.frequencies()
    assert hz.shape == (129,) and float(hz[1]) == 0.5 and float(hz[-1]) == 64.0
    t = torch.arange(256) / 128.0
    alpha = torch.sin(2 * math.pi * 10.0 * t)  # 10 Hz
    theta = torch.sin(2 * math.pi * 6.0 * t)  # 6 Hz
    with torch.no_grad():
        gate.weight[(hz - 10.0).abs().argmin()] = 0.0  # silence 10 Hz only
    out = gate((alpha + theta)[None, None])[0, 0]
    torch.testing.assert_close(out, theta, atol=1e-4, rtol=0)


def test_dtfe_outputs_k_tokens_and_temporal_attention():
    dtfe = DTFE(n_chans=6, n_times=64, sfreq=128.0, d=8, tau=12, n_tokens=3, mixer="lowrank", mixer_rank=4)
    y, details = dtfe(torch.randn(5, 6, 64), return_details=True)
    assert y.shape == (5, 3, 12)
    alpha = details["temporal_attention"]
    assert alpha.shape == (5, 3, 64)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(5, 3))
    assert details["csi_affinity"].shape == (5, 6, 6)
    assert dtfe.gate_frequencies().shape == dtfe.gate().shape == (33,)


def test_token_presets_and_validation():
    assert resolve_tokens("paper", ("eeg", "peripheral", "eog")) == {"eeg": 4, "peripheral": 2, "eog": 1}
    assert resolve_tokens((3, 1), ("eeg", "eog")) == {"eeg": 3, "eog": 1}
    assert resolve_tokens(2, ("eog",)) == {"eog": 2}
    with pytest.raises(ValueError, match="preset"):
        resolve_tokens("many", ("eeg",))
    with pytest.raises(ValueError, match=">= 1"):
        resolve_tokens(0, ("eeg",))
    with pytest.raises(ValueError, match="counts for"):
        resolve_tokens((1, 2), ("eeg",))


def test_bad_hyper_parameters_are_refused():
    with pytest.raises(ValueError, match="mixer"):
        build_model("symaffect", n_times=64, d=8, tau=8, n_heads=2, mixer="dense")
    with pytest.raises(ValueError, match="modalities"):
        build_model("symaffect", modalities=("ecg",))
    with pytest.raises(ValueError, match="task_set"):
        build_model("symaffect", task_set="nine")
    with pytest.raises(ValueError, match="modality_dropout"):
        build_model("symaffect", n_times=64, d=8, tau=8, n_heads=2, modality_dropout=1.0)


def test_modality_dropout_never_drops_everything():
    g = torch.Generator().manual_seed(0)
    present = torch.rand(500, 3, generator=g) > 0.3
    present[:, 0] |= ~present.any(1)
    keep = modality_dropout_mask(present, 0.9, generator=g)
    assert keep.any(1).all()
    assert not (keep & ~present).any()
    assert keep.sum() < present.sum()
    assert torch.equal(modality_dropout_mask(present, 0.0), present)


def test_modality_dropout_acts_in_training_only():
    model = build_model("symaffect", n_times=64, d=8, tau=8, n_heads=2, modality_dropout=0.3)
    x = {m: torch.randn(16, s.n_chans, s.n_times) for m, s in model.specs.items()}
    torch.manual_seed(0)
    train_out = model.train()(x)["valence"]
    eval_out = model.eval()(x)["valence"]
    changed = ~torch.isclose(train_out, eval_out).all(-1)
    assert 0 < int(changed.sum()) < 16


def test_attention_fusion_is_order_invariant_and_ignores_missing_tokens():
    fusion = ModalityFusion(dim=8, n_heads=2).eval()
    tokens = torch.randn(3, 5, 8)
    present = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 1, 0], [0, 0, 1, 0, 0]], dtype=torch.bool)
    z, w = fusion(tokens, present)
    perm = torch.tensor([4, 2, 0, 3, 1])
    z_perm, _ = fusion(tokens[:, perm], present[:, perm])
    torch.testing.assert_close(z, z_perm, rtol=1e-5, atol=1e-6)
    assert w.shape == (3, 5, 5)
    assert (w[1][:, ~present[1]] == 0).all()
    z_only, _ = fusion(tokens[2:3, 2:3], present[2:3, 2:3])
    torch.testing.assert_close(z[2:3], z_only, rtol=1e-5, atol=1e-6)


def test_concat_fusion_fills_missing_slots_with_a_learned_token():
    fusion = ConcatFusion(dim=4, n_tokens=3)
    tokens = torch.randn(2, 3, 4)
    present = torch.tensor([[True, True, True], [True, False, True]])
    z1, _ = fusion(tokens, present)
    tokens2 = tokens.clone()
    tokens2[1, 1] = 1e6
    z2, _ = fusion(tokens2, present)
    torch.testing.assert_close(z1[1], z2[1])


def test_explain_returns_every_inspection_tensor():
    model = build_model("symaffect", n_times=64, d=8, tau=8, n_heads=2, n_tokens="paper").train()
    x = {m: torch.randn(2, s.n_chans, s.n_times) for m, s in model.specs.items() if m != "eog"}
    out = model.explain(x)
    assert model.training  # mode restored
    assert set(out["modalities"]) == {"eeg", "peripheral", "eog"}
    assert "csi_affinity" not in out["modalities"]["eog"]  # absent: only its learned gate
    assert out["modalities"]["eog"]["gate"].shape == (8, 33)  # a filter bank: one gate per series
    eeg = out["modalities"]["eeg"]
    assert eeg["csi_affinity"].shape == (2, 32, 32)
    assert eeg["temporal_attention"].shape == (2, 4, 64)
    assert eeg["gate"].shape == (8, 33) and eeg["gate_hz"].shape == (33,)
    assert eeg["ch_names"][0] == "Fp1"
    cm = out["cross_modal_attention"]
    assert cm.shape == (2, 3, 3)
    torch.testing.assert_close(cm.sum(-1), torch.ones(2, 3))
    assert (cm[:, :, 2] == 0).all()  # nobody attends to the absent EOG
    assert out["token_attention"].shape == (2, 7, 7)


def test_export_copy_switches_gates_without_touching_the_model():
    from symaffect.models.export import _for_export

    model = build_model("symaffect", n_times=64, d=8, tau=8, n_heads=2)
    copy_ = _for_export(model, "matrix")
    assert model.encoders["eeg"].isi.gate.impl == "fft"
    assert copy_.encoders["eeg"].isi.gate.impl == "matrix"
    x = {m: torch.randn(2, s.n_chans, s.n_times) for m, s in model.specs.items()}
    torch.testing.assert_close(copy_(x)["valence"], model.eval()(x)["valence"], rtol=1e-4, atol=1e-5)


def test_filter_bank_gates_are_band_passes_tiling_the_range():
    gate = FrequencyGate(n_times=256, sfreq=128.0, n_series=8, band_hz=(1.0, 40.0))
    w, hz = gate.weight.detach(), gate.frequencies()
    peaks = hz[w.argmax(dim=1)]
    assert w.shape == (8, 129)
    assert float(peaks[0]) == pytest.approx(1.0, abs=0.5) and float(peaks[-1]) == pytest.approx(40.0, abs=1.0)
    assert bool((peaks[1:] > peaks[:-1]).all())  # increasing centres
    assert float(w.max()) <= 1.0 + 1e-6
    assert float(w[-1, hz <= 2.0].max()) < 0.01 and float(w[0, hz >= 10.0].max()) < 0.01  # band-pass


@pytest.mark.parametrize("impl", ["fft", "dft", "matrix"])
def test_gated_power_is_the_mean_square_of_the_gated_signal(impl):
    torch.manual_seed(0)
    for n_series in (None, 4):
        gate = FrequencyGate(n_times=64, sfreq=128.0, n_series=n_series, impl=impl)
        x = torch.randn(3, 4, 64)
        y, log_power = gate.filter_and_power(x)
        torch.testing.assert_close(log_power, torch.log(y.square().mean(-1) + 1e-6), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(gate(x), y, rtol=1e-4, atol=1e-5)


def test_power_readout_separates_alpha_from_beta():
    """A bank gate's log power sees the band of a sine; the shared gate (ones) does not."""
    t = torch.arange(256) / 128.0
    alpha = torch.sin(2 * math.pi * 10.0 * t)[None, None]
    beta = torch.sin(2 * math.pi * 20.0 * t)[None, None]
    bank = FrequencyGate(n_times=256, sfreq=128.0, n_series=16)
    hz = bank.frequencies()
    i10 = int((hz[bank.weight.detach().argmax(1)] - 10).abs().argmin())
    _, pa = bank.filter_and_power(alpha.expand(1, 16, 256))
    _, pb = bank.filter_and_power(beta.expand(1, 16, 256))
    assert float(pa[0, i10] - pb[0, i10]) > 2.0  # the 10-Hz filter passes alpha, not beta
    shared = FrequencyGate(n_times=256, sfreq=128.0)
    _, sa = shared.filter_and_power(alpha)
    _, sb = shared.filter_and_power(beta)
    assert float((sa - sb).abs().max()) < 1e-4  # same power: no band selection


def test_paper_dtfe_variant_keeps_the_papers_gate_and_pooling():
    paper = build_model("symaffect_paper_dtfe", n_times=64, d=8, tau=8, n_heads=2)
    enc = paper.encoders["eeg"]
    assert enc.isi.gate.weight.shape == (33,) and enc.power_norm is None
    assert enc.embed.in_features == 8
    default = build_model("symaffect", n_times=64, d=8, tau=8, n_heads=2).encoders["eeg"]
    assert default.isi.gate.weight.shape == (8, 33) and default.embed.in_features == 16
