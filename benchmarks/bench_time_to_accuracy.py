"""Time to accuracy on 2 cores: the paper-size model, the efficient configuration, cnn1d, XGBoost.

One run, one data set, one split (fold 0 of the subject-wise 5-fold split of
``bench_learning.py``'s 12 x 30 synthetic set), binary arousal. Each deep model trains
with the ``quick`` recipe (lr 1e-3, warm-up + cosine, 10 epochs of 1024 windows, early
stopping on the validation loss); after every epoch its held-out accuracy is measured
(the measurement's own time is excluded from the clock). Reported: the accuracy of the
last epoch and of the checkpoint the run keeps, the wall seconds until the held-out
accuracy first came within 1 point of the last epoch's, and training windows per second.
XGBoost's time is its fit (features included).

    .venv/bin/python benchmarks/bench_time_to_accuracy.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import numpy as np

from symaffect._io import write_json, write_text
from symaffect.data.synth import generate
from symaffect.train.config import preset
from symaffect.eval.scoring import score_fold
from symaffect.run_folder import RunFolder
from symaffect.train.run import _torch_fold, _xgb_fold
from symaffect.train.rundata import RunData

class TimeToAccuracy:
    """Lightning callback: held-out accuracy and wall time after every training epoch."""

    def __new__(cls, *a, **k):  # built lazily so that importing this file needs no Lightning
        import lightning as L

        class _CB(L.Callback):
            def __init__(self) -> None:
                self.fits: list[dict] = []  # one per fold x seed, in training order

            def on_train_start(self, trainer, module) -> None:
                self.fits.append({"points": [], "excluded": 0.0, "windows": 0})
                self.t0 = time.perf_counter()

            @property
            def points(self) -> list[dict]:
                return self.fits[0]["points"] if self.fits else []

            @property
            def windows(self) -> int:
                return self.fits[0]["windows"] if self.fits else 0

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
                self.fits[-1]["windows"] += int(next(iter(batch["y"].values())).shape[0])

            def on_train_epoch_end(self, trainer, module) -> None:
                from symaffect.train.datamodule import batches
                from symaffect.train.module import predict_logits

                t = time.perf_counter()
                ds = trainer.datamodule.test_ds
                logits = predict_logits(module.model, batches(ds, 256))
                task = next(iter(logits))
                acc = float((logits[task].argmax(1).numpy() == np.asarray(ds.targets(task))).mean())
                fit = self.fits[-1]
                fit["points"].append({"epoch": int(trainer.current_epoch),
                                      "seconds": t - self.t0 - fit["excluded"], "acc": acc})
                fit["excluded"] += time.perf_counter() - t

        return _CB()




MODELS = {
    "symaffect, paper size (full T x T mixer, d = tau = 64)": ("symaffect", {"mixer": "full", "d": 64, "tau": 64}),
    "symaffect, efficient (low-rank mixer, d = tau = 32)": ("symaffect", {}),
    "cnn1d (quick size)": ("cnn1d", {}),
    "xgboost": ("xgboost", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("benchmarks/_work/tta"))
    ap.add_argument("--data", type=Path, default=Path("benchmarks/_work/learning/data-12x30"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_time_to_accuracy.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.data / "synth_meta.json").is_file():
        generate(args.data, n_subjects=12, n_trials=30, seconds=63.0, seed=0)
    rows, raw = [], {}
    for i, (label, (name, kw)) in enumerate(MODELS.items()):
        cfg = preset("quick", model=name).replace(**{
            "data.task_set": "binary_arousal", "protocol.name": "subject_kfold", "protocol.n_splits": 5,
        })
        if kw:
            cfg = cfg.replace(**{"model.kwargs": {**cfg.model.kwargs, **kw}})
        data = RunData.split(cfg, args.data)
        run = RunFolder(args.work.resolve() / f"model{i}-{name}")
        fold = data.folds[0]
        fdir = run.fold_dir(0, 0)
        if fdir.exists():
            import shutil

            shutil.rmtree(fdir)  # a fresh fit every time: this measures time
        t0 = time.perf_counter()
        if name == "xgboost":
            fit = _xgb_fold(data, fold, 0, run)
            secs = time.perf_counter() - t0
            result = score_fold(data, fold, 0, run, fit)
            acc = result["tasks"]["arousal"]["model"]["acc"]
            maj = result["tasks"]["arousal"]["majority"]["acc"]
            rows.append(f"| {label} | – | {100 * acc:.1f} | {100 * maj:.1f} | {secs:.1f} (fit) | – |")
            raw[label] = {"acc": acc, "seconds": secs}
            continue
        cb = TimeToAccuracy()
        result = score_fold(data, fold, 0, run, _torch_fold(data, fold, 0, run, False, [cb]))
        pts = cb.points
        final = pts[-1]["acc"]
        reach = next(p for p in pts if p["acc"] >= final - 0.01)
        wps = cb.windows / max(pts[-1]["seconds"], 1e-9)
        kept = result["tasks"]["arousal"]["model"]["acc"]
        maj = result["tasks"]["arousal"]["majority"]["acc"]
        rows.append(f"| {label} | {100 * final:.1f} (epoch {pts[-1]['epoch']}) | {100 * kept:.1f} "
                    f"(epoch {result['best_epoch']}) | {100 * maj:.1f} | {reach['seconds']:.0f} "
                    f"(epoch {reach['epoch']}) | {wps:.0f} |")
        raw[label] = {"points": pts, "kept_acc": kept, "windows_per_s": wps}
        print(rows[-1], flush=True)
    text = "\n".join([
        "# Time to accuracy (binary arousal, one split)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_time_to_accuracy.py --threads {args.threads}` "
        "(2-core machine; other jobs may have shared it: compare the rows, which ran back to back).",
        "",
        "Data: 12 synthetic subjects x 30 trials; fold 0 of the subject-wise 5-fold split "
        "(test subjects never trained on), 10-s non-overlapping test windows.",
        "",
        "| model | held-out acc, last epoch | held-out acc, kept checkpoint | majority | "
        "wall s to reach the last epoch's acc (±1 point) | training windows / s (validation included) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    write_text(args.out, text)
    write_json(args.out.with_suffix(".json"), raw)
    print(text)


if __name__ == "__main__":
    main()
