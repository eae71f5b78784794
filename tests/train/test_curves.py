"""Learning curves from Lightning CSV logs: merging versions, empty cells, the PNG of a run."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
from PIL import Image

from symaffect.train.curves import (
    CURVES_FILE,
    log_versions,
    plot_learning_curves,
    read_epoch_metrics,
    tasks_of,
    write_learning_curves,
)

from .conftest import tiny_config

HEADER = ("epoch,lr-Adam,step,train/arousal_acc,train/arousal_loss,train/loss_epoch,train/loss_step,"
          "val/arousal_acc,val/arousal_loss,val/loss,weights/arousal")


def _csv(fdir, version: int, lines: list[str], header: str = HEADER) -> None:
    p = fdir / "logs" / f"version_{version}" / "metrics.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join([header, *lines]) + "\n")


def _epoch(e: int, step: int, *, tr_acc: float, tr_loss: float, va_acc: float, va_loss: float,
           lr: float = 1e-3) -> list[str]:
    """The rows Lightning writes for one epoch: lr (no epoch), a step row, val, train-epoch."""
    return [
        f",{lr},{step - 4},,,,,,,,",
        f"{e},,{step},,,,{tr_loss + 0.1},,,,",
        f"{e},,{step},,,,,{va_acc},{va_loss},{va_loss},",
        f"{e},,{step},{tr_acc},{tr_loss},{tr_loss},,,,,0.5",
    ]


def test_read_merges_versions_later_wins_and_skips_empty_cells(tmp_path):
    fdir = tmp_path / "fold0-seed0"
    # attempt 1: epochs 0, 1 and a killed epoch 2 (only a step row, last line cut off)
    _csv(fdir, 0, [*_epoch(0, 4, tr_acc=0.5, tr_loss=0.70, va_acc=0.5, va_loss=0.71),
                   *_epoch(1, 9, tr_acc=0.6, tr_loss=0.65, va_acc=0.55, va_loss=0.69),
                   ",0.0005,10,,,,,,,,", "2,,14,,,,0.9"])
    # attempt 2 (resumed from epoch 1's last.ckpt): re-runs epoch 2, then epoch 3
    _csv(fdir, 1, [*_epoch(2, 14, tr_acc=0.7, tr_loss=0.60, va_acc=0.6, va_loss=0.66, lr=2.5e-4),
                   *_epoch(3, 19, tr_acc=0.8, tr_loss=0.50, va_acc=0.62, va_loss=0.64, lr=1e-4)])
    # version_10 sorts after version_9 (numerically), and wins for its epoch
    _csv(fdir, 10, _epoch(3, 19, tr_acc=0.9, tr_loss=0.40, va_acc=0.63, va_loss=0.63, lr=1e-5))
    _csv(fdir, 9, _epoch(3, 19, tr_acc=0.1, tr_loss=9.0, va_acc=0.1, va_loss=9.0))
    assert [p.parent.name for p in log_versions(fdir)] == ["version_0", "version_1", "version_9", "version_10"]

    rows = read_epoch_metrics(fdir)
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    r0, r1, r2, r3 = rows
    assert r0["train/loss"] == pytest.approx(0.70)  # train/loss_epoch, suffix removed
    assert not any(k.endswith("_step") or k == "step" for r in rows for k in r)
    assert r0["val/arousal_acc"] == 0.5 and r1["train/arousal_acc"] == 0.6
    assert r0["lr-Adam"] == 1e-3  # the epoch-less lr row goes to the next epoch
    assert r2["train/arousal_acc"] == 0.7 and r2["lr-Adam"] == 2.5e-4  # version 1 replaced the killed epoch
    assert r3["train/arousal_acc"] == 0.9 and r3["lr-Adam"] == 1e-5  # version_10 won
    assert all(not math.isnan(v) for r in rows for v in r.values())
    assert tasks_of(rows) == ["arousal"]


def test_an_epoch_cut_short_in_a_later_version_does_not_replace_a_finished_one(tmp_path):
    fdir = tmp_path / "f"
    _csv(fdir, 0, [*_epoch(0, 4, tr_acc=0.5, tr_loss=0.7, va_acc=0.5, va_loss=0.71),
                   *_epoch(1, 9, tr_acc=0.6, tr_loss=0.6, va_acc=0.55, va_loss=0.69)])
    # resumed from an older checkpoint, killed again inside epoch 1: lr and step rows only
    _csv(fdir, 1, [",0.001,5,,,,,,,,", "1,,7,,,,0.9,,,,"])
    rows = read_epoch_metrics(fdir)
    assert [r["epoch"] for r in rows] == [0, 1] and rows[1]["train/arousal_acc"] == 0.6
    _csv(fdir, 0, [",0.001,0,,,,,,,,", "0,,2,,,,0.9,,,,"])  # only a cut-short first epoch anywhere
    (fdir / "logs" / "version_1" / "metrics.csv").unlink()
    with pytest.raises(ValueError, match="no epoch-level rows"):
        read_epoch_metrics(fdir)


def test_single_epoch_and_nan_cells(tmp_path):
    fdir = tmp_path / "f"
    header = HEADER + ",train/valence_acc,val/valence_acc"
    _csv(fdir, 0, [",0.001,0,,,,,,,,,,", "0,,3,,,,,nan,,,,,", "0,,3,0.5,0.7,0.7,,,,,0.5,0.4,"], header=header)
    (row,) = read_epoch_metrics(fdir)
    assert row["epoch"] == 0 and row["train/loss"] == 0.7 and row["train/valence_acc"] == 0.4
    assert "val/arousal_acc" not in row and "val/valence_acc" not in row  # 'nan' and empty cells dropped
    assert tasks_of([row]) == ["arousal", "valence"]
    path = write_learning_curves(fdir, majority={"arousal": 0.55}, best_epoch=0, title="one epoch")
    assert path == fdir / CURVES_FILE
    w, h = Image.open(path).size
    assert w > 500 and h > 200
    assert not list(fdir.glob(".*.tmp"))


def test_plot_draws_train_val_and_majority_lines(tmp_path):
    fdir = tmp_path / "f"
    _csv(fdir, 0, [*_epoch(0, 4, tr_acc=0.5, tr_loss=0.7, va_acc=0.5, va_loss=0.71),
                   *_epoch(1, 9, tr_acc=0.6, tr_loss=0.65, va_acc=0.55, va_loss=0.69)])
    fig = plot_learning_curves(read_epoch_metrics(fdir), majority={"arousal": 0.55}, best_epoch=1)
    ax_loss, ax_acc = fig.axes[:2]
    labels = [ln.get_label() for ln in ax_acc.lines]
    assert {"arousal train", "arousal val", "arousal majority 55 %", "best epoch 1"} <= set(labels)
    train = next(ln for ln in ax_acc.lines if ln.get_label() == "arousal train")
    np.testing.assert_allclose(train.get_ydata(), [50.0, 60.0])
    maj = next(ln for ln in ax_acc.lines if ln.get_label().startswith("arousal majority"))
    assert maj.get_linestyle() == "--"
    np.testing.assert_allclose(maj.get_ydata(), [55.0, 55.0])
    assert {ln.get_label() for ln in ax_loss.lines} >= {"train", "validation"}


def test_missing_or_empty_logs_raise_the_documented_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_epoch_metrics(tmp_path / "nothing")
    fdir = tmp_path / "f"
    p = fdir / "logs" / "version_0" / "metrics.csv"
    p.parent.mkdir(parents=True)
    p.write_text("")
    with pytest.raises(ValueError, match="no epoch-level rows"):
        write_learning_curves(fdir)
    assert not (fdir / CURVES_FILE).exists()


def test_learning_curves_of_a_run_never_fail_it(tmp_path, caplog):
    from symaffect.run_folder import RunFolder
    from symaffect.train.run import _learning_curves

    run = RunFolder(tmp_path)
    fdir = run.fold_dir(0, 0)
    fdir.mkdir()
    with caplog.at_level(logging.WARNING, logger="symaffect.train.run"):
        assert _learning_curves(run, fdir, {"fold": 0, "seed": 0}, "symaffect") is None
    assert "no learning curves" in caplog.text


def test_a_tiny_run_writes_its_learning_curves(tiny_data, cache_dir, tmp_path):
    from symaffect.eval.scoring import train_and_score

    run = train_and_score(tiny_config(**{"data.task_set": "binary_arousal"}), tiny_data, tmp_path / "run",
                    cache_dir=cache_dir)
    res = json.loads((run / "fold0-seed0" / "result.json").read_text())
    assert res["learning_curves"] == "fold0-seed0/learning_curves.png"
    png = run / res["learning_curves"]
    w, h = Image.open(png).size
    assert w > 500 and h > 200
    assert 0.5 <= res["train_majority_rate"]["arousal"] <= 1.0
    rows = read_epoch_metrics(run / "fold0-seed0")
    assert [r["epoch"] for r in rows] == [0, 1]  # tiny_config: 2 epochs
    for key in ("train/loss", "val/loss", "train/arousal_acc", "val/arousal_acc", "train/arousal_loss"):
        assert all(key in r for r in rows), key
    assert any(k.startswith("lr-Adam") for k in rows[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["runs"][0]["learning_curves"] == res["learning_curves"]
