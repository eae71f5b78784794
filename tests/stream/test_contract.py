"""The preprocessing contract on the live path: read from model.pt, applied, or refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from symaffect.data.contract import PreprocessingContract
from symaffect.errors import DataError
from symaffect.models import build_model, save_checkpoint
from symaffect.models.registry import test_kwargs
from symaffect.spec import DEAP_CHANNELS, MODALITIES
from symaffect.stream.pipeline import Predictor, run_recording
from symaffect.stream.preprocess import WindowBuffer
from symaffect.stream.recording import deap_recording

KWARGS = {**test_kwargs("symaffect"), "n_times": 256}
"""The registry's tiny model at a 2-s window (256 samples at 128 Hz)."""

CHANNELS = [c for m in ("eeg", "peripheral", "eog") for c in MODALITIES[m].ch_names]


def _stats(seed: int = 0) -> tuple[dict[str, float], dict[str, float]]:
    """Per-channel training statistics far from the signal's own (so a wrong norm shows)."""
    rng = np.random.default_rng(seed)
    mean = {c: float(v) for c, v in zip(CHANNELS, rng.uniform(-50, 50, len(CHANNELS)))}
    std = {c: float(v) for c, v in zip(CHANNELS, rng.uniform(0.5, 20, len(CHANNELS)))}
    return mean, std


def _checkpoint(path, extra: dict, **kwargs):
    """A tiny model saved with ``extra`` (as a user or the trainer would)."""
    torch.manual_seed(0)
    kw = {**KWARGS, **kwargs}
    save_checkpoint(path, build_model("symaffect", **kw), name="symaffect", kwargs=kw, extra=extra)
    return path


def _windows(predictor: Predictor, recording, monkeypatch) -> list[tuple[float, dict[str, np.ndarray]]]:
    """``(t, {modality: window})`` for every hop, as the pipeline hands them to the model."""
    seen = []
    predict = predictor.predict_window

    def record(x, **kw):
        seen.append((kw["t"], {m: a.copy() for m, a in x.items()}))
        return predict(x, **kw)

    monkeypatch.setattr(predictor, "predict_window", record)
    run_recording(predictor, recording)
    return seen


# --- the contract object -------------------------------------------------------------


def test_dict_round_trip():
    mean, std = _stats()
    c = PreprocessingContract(window_samples=256, eeg_band=(1.0, 40.0), norm="train_subjects",
                              norm_mean=mean, norm_std=std, eval_stride_seconds=1.0)
    assert PreprocessingContract.from_dict(c.to_dict()) == c
    assert PreprocessingContract.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    plain = PreprocessingContract(modalities=("peripheral",), eeg_band=None, norm="none")
    assert PreprocessingContract.from_dict(plain.to_dict()) == plain


def test_legacy_dict_is_read():
    """The untyped dict earlier trainers wrote: statistics as lists with ``ch_names``, no band."""
    mean, std = _stats()
    legacy = {"sfreq": 128.0, "window_samples": 256, "baseline": "drop", "baseline_seconds": 3.0,
              "norm": "train_subjects", "eval_stride_seconds": 2.0, "modalities": ["eeg", "peripheral", "eog"],
              "norm_mean": [mean[c] for c in CHANNELS], "norm_std": [std[c] for c in CHANNELS],
              "ch_names": CHANNELS}
    c = PreprocessingContract.from_dict(legacy)
    assert c.eeg_band == (4.0, 45.0) and c.window_samples == 256 and c.modalities == ("eeg", "peripheral", "eog")
    assert c.norm_mean == mean and c.norm_std == std and c.live_norm == "fixed"
    assert c.channel_stats(["GSR", "Fp1"]) == ([mean["GSR"], mean["Fp1"]], [std["GSR"], std["Fp1"]])


# --- Predictor reads it --------------------------------------------------------------


def test_predictor_reads_the_contract_training_wrote(tmp_path):
    mean, std = _stats()
    c = PreprocessingContract(window_samples=256, eeg_band=(2.0, 40.0), norm="train_subjects",
                              norm_mean=mean, norm_std=std, eval_stride_seconds=1.0)
    pr = Predictor(_checkpoint(tmp_path / "model.pt", {"preprocess": c.to_dict()}))
    assert pr.contract == c


@pytest.mark.parametrize("extra", [{}, {"preprocess": {}}], ids=["no-preprocess", "empty-preprocess"])
def test_checkpoint_without_contract_gets_the_defaults_at_the_models_shape(tmp_path, extra):
    """A model saved by hand with save_checkpoint: the defaults, at the model's window and modalities."""
    pr = Predictor(_checkpoint(tmp_path / "model.pt", extra, modalities=("eeg", "peripheral")))
    assert pr.contract == PreprocessingContract(window_samples=256, modalities=("eeg", "peripheral"))
    assert pr.contract.live_norm == "running" and pr.contract.eeg_band == (4.0, 45.0)


BAD = [
    ({"baseline": "subtract_mean"}, "preprocess.baseline"),
    ({"window_samples": 512}, "preprocess.window_samples"),
    ({"modalities": ["eeg", "peripheral"]}, "preprocess.modalities"),
    ({"sfreq": 256.0}, "preprocess.sfreq"),
    ({"sfreq": "fast"}, "preprocess.sfreq"),
    ({"eeg_band": [4.0, 30.0, 45.0]}, "preprocess.eeg_band"),
    ({"eeg_band": [45.0, 4.0]}, "preprocess.eeg_band"),
    ({"modalities": 3}, "preprocess.modalities"),
    ({"norm": "zscore"}, "preprocess.norm"),
    ({"norm": "train_subjects"}, "preprocess.norm_mean"),
    ({"norm_mean": {"Fp1": 1.0}}, "preprocess.norm_mean"),
    ({"window_samples": "256"}, "preprocess.window_samples"),
    ({"version": 99}, "preprocess.version"),
    ({"colour": "blue"}, "preprocess"),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD)])
def test_contract_the_live_path_cannot_honour_is_refused(tmp_path, change, field):
    """One line naming the field, when the model is loaded (never a silently different input)."""
    d = {**PreprocessingContract(window_samples=256).to_dict(), **change}
    with pytest.raises(DataError, match=rf"^{field}: ") as err:
        Predictor(_checkpoint(tmp_path / "model.pt", {"preprocess": d}))
    assert "\n" not in str(err.value)


def test_legacy_dict_with_broken_statistics_is_refused(tmp_path):
    legacy = {"window_samples": 256, "norm": "train_subjects", "norm_mean": 3.0, "ch_names": CHANNELS}
    with pytest.raises(DataError, match=r"^preprocess\.norm_mean: "):
        Predictor(_checkpoint(tmp_path / "model.pt", {"preprocess": legacy}))


# --- the pipeline applies it ---------------------------------------------------------


def _contract_model(tmp_path, **fields) -> Predictor:
    c = PreprocessingContract(window_samples=256, eeg_band=None, **fields)  # no filter: windows are exact
    return Predictor(_checkpoint(tmp_path / "model.pt", {"preprocess": c.to_dict()}))


def test_train_subjects_windows_are_zscored_with_the_training_statistics(tmp_path, monkeypatch, signals):
    mean, std = _stats()
    x = signals(5)
    seen = _windows(_contract_model(tmp_path, norm="train_subjects", norm_mean=mean, norm_std=std),
                    deap_recording(x), monkeypatch)
    assert [t for t, _ in seen] == [2.0, 3.0, 4.0, 5.0]
    for t, windows in seen:
        end = int(t * 128)
        for m, win in windows.items():
            names = MODALITIES[m].ch_names
            raw = x[[DEAP_CHANNELS.index(c) for c in names], end - 256:end]
            want = (raw - np.array([mean[c] for c in names])[:, None]) / np.array([std[c] for c in names])[:, None]
            np.testing.assert_allclose(win, want, rtol=1e-6, atol=1e-5)


def test_none_windows_are_the_signal(tmp_path, monkeypatch, signals):
    x = signals(4)
    seen = _windows(_contract_model(tmp_path, norm="none"), deap_recording(x), monkeypatch)
    assert seen
    for t, windows in seen:
        end = int(t * 128)
        for m, win in windows.items():
            raw = x[[DEAP_CHANNELS.index(c) for c in MODALITIES[m].ch_names], end - 256:end]
            np.testing.assert_array_equal(win, raw.astype(np.float32))


def test_per_subject_windows_use_running_statistics(tmp_path, monkeypatch, signals):
    """Unchanged: z-scored with the mean / std of everything up to the window's last sample."""
    x = signals(4)
    seen = _windows(_contract_model(tmp_path, norm="per_subject"), deap_recording(x), monkeypatch)
    assert seen
    for t, windows in seen:
        end = int(t * 128)
        for m, win in windows.items():
            past = x[[DEAP_CHANNELS.index(c) for c in MODALITIES[m].ch_names], :end]
            want = (past[:, -256:] - past.mean(axis=1, keepdims=True)) / past.std(axis=1, keepdims=True)
            np.testing.assert_allclose(win, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"norm": "zscore"}, "norm"),
        ({"norm": "fixed"}, "norm"),
        ({"mean": [0.0, 0.0], "std": [1.0, 1.0]}, "norm"),
        ({"norm": "fixed", "mean": [0.0], "std": [1.0, 1.0]}, "mean"),
        ({"norm": "fixed", "mean": [0.0, 0.0], "std": [1.0, 0.0]}, "std"),
    ],
)
def test_window_buffer_norm_arguments_are_checked(kwargs, field):
    with pytest.raises(DataError, match=rf"^{field}: "):
        WindowBuffer(2, 8, **kwargs)
