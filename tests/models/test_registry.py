"""Registry-wide model tests: every registered model must pass all of these."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symaffect.models import list_models
from symaffect.spec import TASK_SETS
from symaffect.models.losses import MultiTaskLoss
from symaffect.models.profile import model_profile
from symaffect.models.registry import build_model, model_class, register_model, test_kwargs

from model_helpers import build_tiny, make_batch

MODELS = list_models()
MIXED_MASK = torch.tensor(
    [[True, True, True], [True, False, True], [False, True, False], [True, False, False]]
)


def _targets(model, batch: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if model.task_kind == "multilabel":
        return {t: torch.randint(0, 2, (batch, n), generator=g).float() for t, n in model.n_outputs.items()}
    return {t: torch.randint(0, n, (batch,), generator=g) for t, n in model.n_outputs.items()}


def test_registry_has_the_paper_models():
    assert {"symaffect", "symaffect_no_dtfe", "symaffect_no_fusion"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_has_a_test_case(name):
    assert test_kwargs(name) is not None, f"{name} has no test_kwargs in its register_model"


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("symaffect")(type("Other", (torch.nn.Module,), {}))


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="symaffect"):
        build_model("no_such_model")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("task_set", sorted(TASK_SETS))
def test_output_shapes(name, task_set):
    model = build_tiny(name, task_set=task_set).eval()
    x = make_batch(model, batch=3)
    out = model(x)
    assert set(out) == set(TASK_SETS[task_set].names)
    for task, n in TASK_SETS[task_set].n_outputs.items():
        assert out[task].shape == (3, n)
    assert model.heads is not None  # the shared output-layer name


@pytest.mark.parametrize("name", MODELS)
def test_single_modality_models(name):
    model = build_tiny(name, modalities=("peripheral",)).eval()
    out = model(make_batch(model, batch=2))
    assert out["valence"].shape == (2, 9)


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_finite_gradient(name):
    torch.manual_seed(0)
    model = build_tiny(name).train()
    x = make_batch(model)
    loss = MultiTaskLoss(task_set=model.task_set)(model(x, MIXED_MASK), _targets(model, 4))["loss"]
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_eval_mode_is_deterministic(name):
    model = build_tiny(name, modality_dropout=0.5).eval()
    x = make_batch(model)
    a, b = model(x), model(x)
    for t in a:
        torch.testing.assert_close(a[t], b[t], rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_seeded_builds_are_identical(name):
    torch.manual_seed(123)
    m1 = build_tiny(name).eval()
    torch.manual_seed(123)
    m2 = build_tiny(name).eval()
    torch.manual_seed(124)
    m3 = build_tiny(name).eval()
    x = make_batch(m1)
    torch.testing.assert_close(m1(x)["valence"], m2(x)["valence"], rtol=0, atol=0)
    assert not torch.equal(m1(x)["valence"], m3(x)["valence"])


@pytest.mark.parametrize("name", MODELS)
def test_absent_modality_equals_masked_and_ignores_its_values(name):
    model = build_tiny(name).eval()
    x = make_batch(model, batch=4)
    mask = torch.tensor([[True, False, True]] * 4)
    masked = model(x, mask)
    # the masked modality's values (even NaN) do not change the output
    x_bad = dict(x, peripheral=torch.full_like(x["peripheral"], float("nan")))
    masked_bad = model(x_bad, mask)
    absent = model({k: v for k, v in x.items() if k != "peripheral"})
    for t in masked:
        assert torch.isfinite(masked_bad[t]).all()
        torch.testing.assert_close(masked[t], masked_bad[t])
        torch.testing.assert_close(masked[t], absent[t], rtol=1e-5, atol=1e-6)
    # and a per-sample mask only affects the masked sample
    per_sample = torch.ones(4, 3, dtype=torch.bool)
    per_sample[2, 0] = False
    out = model(x, per_sample)
    full = model(x)
    only_present = model({k: v[2:3] for k, v in x.items() if k != "eeg"})
    for t in out:
        torch.testing.assert_close(out[t][[0, 1, 3]], full[t][[0, 1, 3]], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[t][2:3], only_present[t], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_a_sample_without_any_modality_is_refused(name):
    model = build_tiny(name).eval()
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match="no modality"):
        model(make_batch(model), mask)


@pytest.mark.parametrize("name", MODELS)
def test_wrong_shapes_are_refused(name):
    model = build_tiny(name)
    x = make_batch(model)
    with pytest.raises(ValueError, match="expected shape"):
        model(dict(x, eeg=x["eeg"][:, :5]))
    with pytest.raises(ValueError, match="unexpected modalities"):
        model(dict(x, ecg=x["eeg"]))


@pytest.mark.parametrize("name", MODELS)
def test_can_overfit_a_tiny_batch(name):
    torch.manual_seed(0)
    model = build_tiny(name).train()
    x = make_batch(model, batch=8, seed=3)
    y = _targets(model, 8, seed=4)
    loss_fn = MultiTaskLoss(task_set=model.task_set, weighting="fixed")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(model(x), y)["loss"]
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    model.eval()
    with torch.no_grad():
        out = model(x)
        final = float(loss_fn(out, y)["loss"])
    assert final < first / 5, f"{name}: loss {first:.3f} -> {final:.3f}"
    for t in y:
        assert (out[t].argmax(-1) == y[t]).all(), f"{name}: {t} not memorised"


@pytest.mark.parametrize("name", MODELS)
def test_torch_export_matches_eager(name):
    model = build_tiny(name).eval()
    x = make_batch(model, batch=2)
    mask = torch.tensor([[True, True, True], [True, False, True]])
    exported = torch.export.export(model, (x, mask))
    got = exported.module()(x, mask)
    want = model(x, mask)
    for t in want:
        torch.testing.assert_close(got[t], want[t], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_runs_in_onnxruntime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from symaffect.models.export import export_onnx

    model = build_tiny(name).eval()
    x = make_batch(model, batch=2)
    mask = torch.tensor([[True, True, True], [False, True, True]])
    path = export_onnx(model, tmp_path / "m.onnx", batch_size=2)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {k: v.numpy() for k, v in x.items()}
    feeds["mask"] = mask.numpy()
    names = [o.name for o in sess.get_outputs()]
    res = dict(zip(names, sess.run(None, feeds)))
    want = model(x, mask)
    assert set(names) == set(want)
    for t in want:
        np.testing.assert_allclose(res[t], want[t].detach().numpy(), rtol=1e-4, atol=1e-5)
    # the batch axis is dynamic
    x3 = make_batch(model, batch=3, seed=5)
    feeds3 = {k: v.numpy() for k, v in x3.items()}
    feeds3["mask"] = np.ones((3, len(model.modalities)), dtype=bool)
    res3 = dict(zip(names, sess.run(None, feeds3)))
    want3 = model(x3)
    for t in want3:
        np.testing.assert_allclose(res3[t], want3[t].detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip(name, tmp_path):
    from symaffect.models import load_checkpoint, save_checkpoint

    kw = test_kwargs(name)
    model = build_model(name, **kw).eval()
    path = save_checkpoint(tmp_path / "ck.pt", model, name=name, kwargs=kw, extra={"epoch": 3})
    loaded, info = load_checkpoint(path)
    assert isinstance(loaded, model_class(name))
    assert info["model_name"] == name and info["extra"] == {"epoch": 3}
    x = make_batch(model)
    torch.testing.assert_close(loaded(x)["valence"], model(x)["valence"], rtol=0, atol=0)
    assert not loaded.training


@pytest.mark.parametrize("name", MODELS)
def test_profile_counts_params_and_flops(name):
    model = build_tiny(name)
    prof = model_profile(model)
    assert prof["params_total"] == sum(p.numel() for p in model.parameters())
    assert prof["flops_total"] > 0
    assert set(prof["per_modality"]) == set(model.modalities)
