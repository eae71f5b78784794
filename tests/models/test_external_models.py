"""Models from other packages: import paths (trusted or refused), entry points, checkpoints, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from symaffect.errors import DataError
from symaffect.models import load_checkpoint, registry, save_checkpoint
from symaffect.models.losses import MultiTaskLoss
from symaffect.models.registry import (
    TRUST_ENV,
    UntrustedModel,
    build_model,
    list_models,
    test_kwargs,
    trust_models,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "external_model"
TINY = {"n_times": 64, "dim": 8, "n_heads": 2}

MODEL_SOURCE = textwrap.dedent(
    '''
    from torch import nn
    from symaffect.models.base import EncoderFusionModel


    class _Enc(nn.Module):
        def __init__(self, n_chans, n_times, dim):
            super().__init__()
            self.proj = nn.Linear(n_chans * n_times, dim)

        def forward(self, x):  # (B, C, T) -> (B, 1, D)
            return self.proj(x.flatten(1)).unsqueeze(1)


    class Tiny(EncoderFusionModel):
        def __init__(self, *, scale: float = 1.0, **kw):
            self.scale = scale
            super().__init__(**kw)

        def make_encoder(self, spec):
            return _Enc(spec.n_chans, spec.n_times, self.dim)


    class NotAffect(nn.Module):
        def __init__(self, **kw):
            super().__init__()
    '''
)


@pytest.fixture(autouse=True)
def _no_trust(monkeypatch):
    """Every test starts with nothing trusted and leaves nothing trusted behind."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    monkeypatch.setattr(registry, "_TRUSTED", set())


@pytest.fixture
def pkg(tmp_path, monkeypatch) -> str:
    """A fresh package ``ext_<hex>`` with ``models.Tiny`` under ``tmp_path/src``, on ``sys.path``."""
    name = f"ext_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "src" / name
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "models.py").write_text(MODEL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    return name


def _batch(model, batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, s.n_chans, s.n_times, generator=g) for m, s in model.specs.items()}


def test_import_path_is_refused_without_trust_and_nothing_is_imported(pkg):
    path = f"{pkg}.models:Tiny"
    with pytest.raises(UntrustedModel) as e:
        build_model(path, **TINY)
    msg = str(e.value)
    assert "\n" not in msg and repr(path) in msg and f"{TRUST_ENV}={path}" in msg and "trust_models" in msg
    assert f"{pkg}.models" not in sys.modules  # refused before any import
    assert isinstance(e.value, DataError)


def test_import_path_is_built_when_trusted_by_env_or_function(pkg, monkeypatch):
    path = f"{pkg}.models:Tiny"
    monkeypatch.setenv(TRUST_ENV, f"other.mod:Net, {path}")
    model = build_model(path, **TINY, scale=2.0).eval()
    assert model.registry_name == path and model.scale == 2.0
    assert {k: v.shape for k, v in model(_batch(model)).items()} == {t: (3, 9) for t in model.tasks}
    assert path in list_models()
    monkeypatch.delenv(TRUST_ENV)
    with pytest.raises(UntrustedModel):
        build_model(path, **TINY)
    trust_models(path)
    assert build_model(path, **TINY).dim == 8


def test_checkpoint_of_an_external_model_reloads_only_when_trusted(pkg, tmp_path, monkeypatch):
    path = f"{pkg}.models:Tiny"
    monkeypatch.setenv(TRUST_ENV, path)
    torch.manual_seed(0)
    model = build_model(path, **TINY).eval()
    ck = save_checkpoint(tmp_path / "model.pt", model, name=path, kwargs=TINY)
    x = _batch(model)
    loaded, info = load_checkpoint(ck)
    assert info["model_name"] == path and info["kwargs"]["scale"] == 1.0  # defaults written out
    with torch.no_grad():
        for task, out in model(x).items():
            assert torch.equal(loaded(x)[task], out)
    monkeypatch.delenv(TRUST_ENV)
    with pytest.raises(DataError) as e:
        load_checkpoint(ck)
    msg = str(e.value)
    assert "\n" not in msg and str(ck) in msg and path in msg and TRUST_ENV in msg


def test_not_an_affect_model_and_a_missing_module_are_one_line(pkg):
    trust_models(f"{pkg}.models:NotAffect", f"{pkg}.nowhere:X")
    with pytest.raises(DataError, match="not a symaffect.models.base.AffectModel"):
        build_model(f"{pkg}.models:NotAffect")
    with pytest.raises(DataError, match="cannot import it .ModuleNotFoundError"):
        build_model(f"{pkg}.nowhere:X")
    with pytest.raises(ValueError, match="not an import path"):
        trust_models("os.system")


def test_entry_point_resolves_by_name_and_trusts_its_import_path(pkg, tmp_path, monkeypatch):
    dist = tmp_path / "site" / f"{pkg}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {pkg}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[symaffect.models]\n{pkg}_tiny = {pkg}.models:Tiny\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    name = f"{pkg}_tiny"
    assert name in list_models()
    model = build_model(name, **TINY).eval()
    assert type(model).__name__ == "Tiny" and model.registry_name == name
    ck = save_checkpoint(tmp_path / "m.pt", model, name=name, kwargs=TINY)
    loaded, info = load_checkpoint(ck)  # nothing trusted: the installed entry point is enough
    assert info["model_name"] == name
    x = _batch(model)
    with torch.no_grad():
        assert torch.equal(loaded(x)["valence"], model(x)["valence"])
    assert build_model(f"{pkg}.models:Tiny", **TINY).dim == 8  # the path an entry point names


def test_unknown_plain_name_still_names_the_known_ones():
    with pytest.raises(ValueError, match="symaffect.*package.module:Class"):
        build_model("no_such_model_anywhere")


# --- the example package (examples/external_model) -----------------------------------------


@pytest.mark.parametrize("cls", ["ShallowAffect", "BraindecodeShallow"])
def test_example_models_meet_the_model_interface(cls, monkeypatch):
    if cls == "BraindecodeShallow":
        pytest.importorskip("braindecode")
        path = f"symaffect_shallow.braindecode_shallow:{cls}"
    else:
        path = f"symaffect_shallow:{cls}"
    monkeypatch.syspath_prepend(str(EXAMPLE))
    trust_models(path)
    torch.manual_seed(0)
    model = build_model(path, **test_kwargs(path)).train()
    x = _batch(model, batch=4)
    mask = torch.tensor([[True, True, True], [True, False, True], [False, True, False], [True, False, False]])
    out = model(x, mask)
    assert {k: v.shape for k, v in out.items()} == {t: (4, 9) for t in model.tasks}
    targets = {t: torch.randint(0, 9, (4,)) for t in model.tasks}
    MultiTaskLoss(task_set=model.task_set)(out, targets)["loss"].backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)["arousal"], model(x)["arousal"])


def test_braindecode_model_round_trips_through_a_checkpoint(tmp_path, monkeypatch):
    """The worked example: braindecode's real ShallowFBCSPNet inside symaffect's fusion and
    heads, saved and reloaded (trusted) with identical outputs."""
    pytest.importorskip("braindecode")
    path = "symaffect_shallow.braindecode_shallow:BraindecodeShallow"
    monkeypatch.syspath_prepend(str(EXAMPLE))
    trust_models(path)
    torch.manual_seed(0)
    kw = test_kwargs(path)
    model = build_model(path, **kw).eval()
    assert any(type(m).__name__ == "ShallowFBCSPNet" for m in model.modules())
    save_checkpoint(tmp_path / "model.pt", model, name=path, kwargs=kw)
    back, info = load_checkpoint(tmp_path / "model.pt")
    x = _batch(model, batch=2)
    with torch.no_grad():
        assert info["model_name"] == path
        for task, v in model(x).items():
            assert torch.equal(back.eval()(x)[task], v)


# --- the CLI: train --model pkg.mod:Class, then predict in a fresh process --------------------


def _recording_csv(path: Path, seconds: float = 5.0) -> Path:
    from symaffect.spec import DEAP_CHANNELS

    rng = np.random.default_rng(0)
    n = int(seconds * 128)
    x = rng.standard_normal((n, len(DEAP_CHANNELS))) * 10.0
    t = np.arange(n)[:, None] / 128
    np.savetxt(path, np.hstack([t, x]), delimiter=",", header=",".join(["t", *DEAP_CHANNELS]), comments="")
    return path


def _predict(run: Path, rec: Path, pythonpath: str, trusted: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != TRUST_ENV}
    env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")])
    env.update({"OMP_NUM_THREADS": "1", **({TRUST_ENV: trusted} if trusted else {})})
    code = "import sys; from symaffect.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, "predict", str(run), str(rec)],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_cli_train_with_an_import_path_then_predict_needs_trust(pkg, tmp_path):
    from symaffect.cli import main
    from symaffect.data.synth import generate

    path = f"{pkg}.models:Tiny"
    data = generate(tmp_path / "data", n_subjects=4, n_trials=2, seconds=13.0, seed=0)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(textwrap.dedent(
        """
        data: {window: {window_seconds: 2.0, stride_seconds: 2.0}}
        model: {kwargs: {dim: 8, n_heads: 2}}
        optim: {batch_size: 16, max_epochs: 1}
        protocol: {test_ratio: 0.25, val_ratio: 0.34}
        trainer: {accelerator: cpu}
        """
    ))
    run = tmp_path / "run"
    main(["train", "--data", str(data), "--out", str(run), "--model", path, "--preset", "quick",
          "--config", str(cfg), "--seed", "0"])
    _, info = load_checkpoint(run / "model.pt")  # trusted in this process by --model
    assert info["model_name"] == path
    rec = _recording_csv(tmp_path / "recording.csv")
    src = str(tmp_path / "src")
    refused = _predict(run, rec, src, trusted=None)
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and path in lines[0] and TRUST_ENV in lines[0], refused.stderr[-2000:]
    ok = _predict(run, rec, src, trusted=path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "valence" in ok.stdout.lower(), ok.stdout[-2000:]


def test_cli_train_with_a_wrong_import_path_fails_in_one_line_before_reading_data(pkg, tmp_path, capsys):
    from symaffect.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(tmp_path / "no_data"), "--out", str(tmp_path / "run"),
              "--model", f"{pkg}.nowhere:Net", "--preset", "quick"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{pkg}.nowhere:Net" in err and "ModuleNotFoundError" in err
