"""AffectModule under a user's own Lightning Trainer: fit, test and predict."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from symaffect.data.dataset import collate
from symaffect.errors import DataError
from symaffect.train.datamodule import AffectDataModule, FoldWindows
from symaffect.train.module import AffectModule, concat_predictions, predict_logits
from symaffect.train.rundata import RunData

from .conftest import tiny_config


@pytest.fixture(scope="module")
def setup(tiny_data, cache_dir):
    cfg = tiny_config(**{"data.modalities": ("eeg", "eog"), "data.task_set": "multitask9"})
    data = RunData.split(cfg, tiny_data, cache_dir=cache_dir)
    fold = data.folds[0]
    L.seed_everything(0, verbose=False)
    module = AffectModule(model_name=cfg.model.name, model_kwargs=data.model_kwargs(), lr=1e-3)
    dm = AffectDataModule(data.prepared, FoldWindows(fold.train, fold.val, fold.test),
                          modalities=cfg.data.modalities, task_set=cfg.data.task_set, batch_size=8, seed=0)
    return data, fold, module, dm


def _trainer(**kw) -> L.Trainer:
    return L.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2, accelerator="cpu", devices=1,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kw)


def test_fit_test_predict_with_the_package_datamodule(setup):
    data, fold, module, dm = setup
    trainer = _trainer(limit_test_batches=2, limit_predict_batches=2)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 3
    assert {"val/loss", "val/valence_acc"} <= set(trainer.callback_metrics)

    (res,) = trainer.test(module, datamodule=dm, verbose=False)
    tasks = ("valence", "arousal", "liking")
    assert set(res) == {"test/loss", *(f"test/{t}_loss" for t in tasks), *(f"test/{t}_acc" for t in tasks)}
    for t in tasks:
        assert 0.0 <= res[f"test/{t}_acc"] <= 1.0
        assert np.isfinite(res[f"test/{t}_loss"]) and res[f"test/{t}_loss"] > 0
    # the logged test accuracy is the accuracy of the model on those 16 test windows
    module.eval()
    batches = [dm.test_ds.get_batch(np.arange(b, b + 8)) for b in (0, 8)]
    logits = predict_logits(module.model, batches)
    y = torch.cat([b["y"]["valence"] for b in batches])
    acc = float((logits["valence"].argmax(1) == y).float().mean())
    assert res["test/valence_acc"] == pytest.approx(acc, abs=1e-6)

    # AffectDataModule has no predict_dataloader (datamodule.py): its test loader is predicted
    outs = trainer.predict(module, datamodule=dm)  # the datamodule's predict loader: the test windows
    assert len(outs) == 2
    pred = concat_predictions(outs)
    assert set(pred["probs"]) == set(tasks) == set(pred["expected"])
    for t in tasks:
        p = pred["probs"][t]
        assert p.shape == (16, 9) and p.dtype == torch.float32
        torch.testing.assert_close(p.sum(1), torch.ones(16))
        torch.testing.assert_close(p, torch.softmax(logits[t], 1), rtol=1e-5, atol=1e-6)
        e = pred["expected"][t]
        torch.testing.assert_close(e, p @ torch.arange(1.0, 10.0))
        assert torch.all((e >= 1) & (e <= 9))
    # ids come along, lined up with the windows
    assert torch.equal(pred["subject"], torch.cat([b["subject"] for b in batches]))
    assert torch.equal(pred["start"], torch.cat([b["start"] for b in batches]))
    assert set(pred["subject"].tolist()) <= set(fold.test_subjects)


def test_plain_dataloaders_and_unlabelled_predict(setup):
    data, fold, module, _ = setup
    ds = data.dataset(fold, "test")
    trainer = _trainer()
    # a plain DataLoader of dataset items (collate stacks them) for test
    loader = DataLoader(ds, batch_size=6, collate_fn=collate)
    (res,) = trainer.test(module, dataloaders=loader, verbose=False)
    n = len(ds)
    module.eval()
    logits = predict_logits(module.model, [ds.get_batch(np.arange(n))])
    acc = float((logits["arousal"].argmax(1) == torch.as_tensor(ds.targets("arousal"))).float().mean())
    assert res["test/arousal_acc"] == pytest.approx(acc, abs=1e-6)

    # predict on batches without labels: the dataset batch minus "y", and the bare modality mapping
    unlabelled = [{"x": ds.get_batch(np.arange(b, min(b + 5, n)))["x"]} for b in range(0, n, 5)]
    bare = [u["x"] for u in unlabelled]
    a = concat_predictions(trainer.predict(module, dataloaders=DataLoader(unlabelled, batch_size=None)))
    b = concat_predictions(trainer.predict(module, dataloaders=DataLoader(bare, batch_size=None)))
    assert set(a) == {"probs", "expected"}
    for t in ("valence", "arousal", "liking"):
        assert a["probs"][t].shape == (n, 9)
        torch.testing.assert_close(a["probs"][t], torch.softmax(logits[t], 1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b["probs"][t], a["probs"][t])

    # test needs labels: one clear error instead of a KeyError
    with pytest.raises(DataError, match="no labels"):
        trainer.test(module, dataloaders=DataLoader(unlabelled, batch_size=None), verbose=False)


def test_binary_task_probabilities_and_expected_rating(tiny_data, cache_dir):
    cfg = tiny_config(**{"data.modalities": ("eog",), "data.task_set": "binary_valence"})
    data = RunData.split(cfg, tiny_data, cache_dir=cache_dir)
    module = AffectModule(model_name=cfg.model.name, model_kwargs=data.model_kwargs())
    module.eval()
    batch = data.dataset(data.folds[0], "test").get_batch(np.arange(4))
    with torch.no_grad():
        out = module.predict_step(batch, 0)
        logits = module(batch["x"])
    p = out["probs"]["valence"]
    torch.testing.assert_close(p, torch.softmax(logits["valence"], 1))
    torch.testing.assert_close(out["expected"]["valence"], 1 + 8 * p[:, 1])  # class 0 -> 1, class 1 -> 9
    assert torch.equal(out["y"]["valence"], batch["y"]["valence"])
