"""The Table 3 baselines: registered, same fusion and heads as the paper's model, any
subset of modalities, parameter counts as documented. (Shapes, gradients, determinism,
overfitting, export and checkpoints are checked for every registered model in
test_registry.py.)"""

from __future__ import annotations

import itertools
import re

import pytest
import torch

from symaffect.models import EncoderFusionModel, ModalityFusion, TaskHeads, build_model, list_models
from symaffect.models.baselines import BASELINES
from symaffect.models.profile import model_profile
from symaffect.models.registry import model_class

from model_helpers import build_tiny, make_batch

ALL = ("eeg", "peripheral", "eog")
SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(ALL, r)]


def test_all_seven_baselines_are_registered():
    assert BASELINES == ("lstm", "bilstm", "gru", "mlp", "cnn1d", "cnn_lstm", "transformer")
    assert set(BASELINES) <= set(list_models())
    assert len({model_class(n) for n in BASELINES}) == 7


@pytest.mark.parametrize("name", BASELINES)
def test_same_fusion_and_heads_as_the_paper_model(name):
    model = build_tiny(name)
    paper = build_model("symaffect", n_times=64, d=16, tau=16, n_heads=2)
    assert isinstance(model, EncoderFusionModel)
    assert isinstance(model.fusion, ModalityFusion) and isinstance(model.heads, TaskHeads)
    # identical fusion + head parameters (names and shapes) at the same token width
    shapes = lambda m: {k: v.shape for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(model.fusion) == shapes(paper.fusion)
    assert shapes(model.heads) == shapes(paper.heads)
    # one token per modality
    x = make_batch(model, batch=2)
    for m in ALL:
        assert model.encoders[m](x[m]).shape == (2, 1, model.dim)


@pytest.mark.parametrize("name", BASELINES)
def test_every_subset_of_modalities_works(name):
    model = build_tiny(name).eval()
    x = make_batch(model, batch=3, seed=7)
    outs = {}
    for subset in SUBSETS:
        given = {m: x[m] for m in subset}
        out = model(given)
        # the same as masking the others out, whatever their values
        mask = torch.tensor([[m in subset for m in model.modalities]] * 3)
        poisoned = {m: (x[m] if m in subset else torch.full_like(x[m], 1e6)) for m in ALL}
        masked = model(poisoned, mask)
        for task, logits in out.items():
            assert logits.shape == (3, 9) and torch.isfinite(logits).all()
            torch.testing.assert_close(masked[task], logits, rtol=1e-5, atol=1e-6)
        outs[subset] = out["valence"]
    # and the modalities matter: different subsets give different outputs
    assert not torch.allclose(outs[("eeg",)], outs[("peripheral",)])
    assert not torch.allclose(outs[("eeg",)], outs[ALL])


@pytest.mark.parametrize("name", BASELINES)
def test_subset_models_train(name):
    torch.manual_seed(0)
    model = build_tiny(name, modalities=("eog", "eeg")).train()
    x = make_batch(model, batch=4)
    assert set(x) == {"eog", "eeg"}
    loss = sum(v.square().mean() for v in model(x, torch.tensor([[True, False]] * 4)).values())
    loss.backward()
    # the masked modality's encoder gets no signal; the present one does
    assert all(p.grad.abs().sum() == 0 for p in model.encoders["eeg"].parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.encoders["eog"].parameters())


@pytest.mark.parametrize("name", BASELINES)
def test_default_size_and_documented_parameter_count(name):
    """At the paper's window (T = 1280) each default baseline is < 1 M parameters, runs
    forward + backward, and its docstring's "About X M parameters" is right."""
    torch.manual_seed(0)
    model = build_model(name)
    assert model.n_times == 1280
    n = sum(p.numel() for p in model.parameters())
    assert 50_000 < n < 1_000_000
    doc = re.search(r"About (\d+\.\d\d) M parameters", model_class(name).__doc__)
    assert doc is not None, f"{name}: no parameter count in the docstring"
    assert float(doc.group(1)) == round(n / 1e6, 2), f"{name}: {n} parameters"
    prof = model_profile(model)
    assert prof["params_total"] == n
    enc = sum(prof["per_modality"][m]["params"] for m in ALL)
    assert enc + prof["params_fusion_heads"] == n
    x = make_batch(model, batch=2)
    out = model(x)
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["lstm", "mlp", "cnn1d", "transformer"])
def test_instance_norm_makes_the_output_invariant_to_channel_gain_and_offset(name):
    torch.manual_seed(0)
    model = build_tiny(name).eval()
    x = make_batch(model, batch=2)
    g = torch.Generator().manual_seed(1)
    scaled = {}
    for m, v in x.items():
        gain = 0.5 + 4 * torch.rand(1, v.shape[1], 1, generator=g)
        offset = 3 * torch.randn(1, v.shape[1], 1, generator=g)
        scaled[m] = v * gain + offset
    torch.testing.assert_close(model(scaled)["valence"], model(x)["valence"], rtol=1e-3, atol=1e-4)
    torch.manual_seed(0)
    raw = build_tiny(name, normalize=False).eval()
    assert not torch.allclose(raw(scaled)["valence"], raw(x)["valence"], atol=1e-3)


def test_recurrent_baselines_differ_in_cell_and_direction():
    lstm, bilstm, gru = (build_model(n).encoders["eeg"].rnn.rnn for n in ("lstm", "bilstm", "gru"))
    assert isinstance(lstm, torch.nn.LSTM) and not lstm.bidirectional
    assert isinstance(bilstm, torch.nn.LSTM) and bilstm.bidirectional
    assert isinstance(gru, torch.nn.GRU)
    assert build_model("lstm").encoders["eeg"].n_steps == 80  # 1280 samples / 16


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("lstm", {"n_times": 100, "patch_size": 16}, "patch_size"),
        ("mlp", {"n_times": 96, "patch_size": 64}, "patch_size"),
        ("transformer", {"n_times": 64, "patch_size": 128}, "patch_size"),
        ("transformer", {"d_model": 30, "enc_heads": 4}, "divisible"),
        ("cnn1d", {"n_times": 32, "channels": (8, 8, 8), "pool": 4}, "too short"),
        ("cnn_lstm", {"kernel_size": 4}, "odd"),
        ("gru", {"n_layers": 0}, "n_layers"),
        ("mlp", {"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_hyper_parameters_are_refused(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, **kwargs)
