"""Does every seed learn? The quick preset on the synthetic data, seeds 0-4, one split.

Trains ``symaffect`` (quick preset, binary arousal by default) with five training seeds
on one subject-wise hold-out of a synthetic set and reports, per seed, from the run's
own CSV logs and test predictions: training accuracy of the first and the last epoch
against the training-set majority rate, the training loss of the first and the last
epoch, the held-out accuracy of the kept checkpoint against the majority baseline, and
how many classes it predicts on the test windows (1 = a constant).

    .venv/bin/python benchmarks/seeds_learn.py --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from symaffect._io import write_text
from symaffect.data.synth import generate
from symaffect.train.config import preset
from symaffect.train.curves import read_epoch_metrics
from symaffect.eval.scoring import train_and_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("benchmarks/_work/seeds"))
    ap.add_argument("--data", type=Path, default=Path("benchmarks/_work/learning/data-12x30"))
    ap.add_argument("--task-set", default="binary_arousal")
    ap.add_argument("--model", default="symaffect")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/seeds_learn.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not (args.data / "synth_meta.json").is_file():
        generate(args.data, n_subjects=12, n_trials=30, seconds=63.0, seed=0)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    cfg = preset("quick", model=args.model).replace(**{
        "data.task_set": args.task_set, "protocol.test_ratio": 0.25, "seeds": seeds})
    t0 = time.perf_counter()
    run = train_and_score(cfg, args.data, args.work / f"{args.model}-{args.task_set}")
    minutes = (time.perf_counter() - t0) / 60
    metrics = json.loads((run / "metrics.json").read_text())
    task = metrics["tasks"][0]
    rows, learned = [], 0
    for r in metrics["runs"]:
        fdir = run / f"fold{r['fold']}-seed{r['seed']}"
        ep = read_epoch_metrics(fdir)
        acc0, acc1 = ep[0][f"train/{task}_acc"], ep[-1][f"train/{task}_acc"]
        loss0, loss1 = ep[0]["train/loss"], ep[-1]["train/loss"]
        maj_train = r["train_majority_rate"][task]
        pred = np.load(fdir / "predictions.npz")[f"pred_{task}"]
        rep = r["tasks"][task]
        ok = acc1 > maj_train + 0.05 and loss1 < loss0 and len(np.unique(pred)) > 1
        learned += ok
        rows.append(f"| {r['seed']} | {100 * acc0:.1f} → {100 * acc1:.1f} ({100 * maj_train:.1f}) | "
                    f"{loss0:.3f} → {loss1:.3f} | {len(ep)} | {r['best_epoch']} | "
                    f"{100 * rep['model']['acc']:.1f} ({100 * rep['majority']['acc']:.1f}) | "
                    f"{len(np.unique(pred))} | {'yes' if ok else 'no'} |")
    text = "\n".join([
        f"# Does every seed learn? {args.model}, {args.task_set}, quick preset",
        "",
        f"Command: `.venv/bin/python benchmarks/seeds_learn.py --seeds {args.seeds} --task-set "
        f"{args.task_set} --model {args.model}` ({minutes:.0f} min on this 2-core machine).",
        "",
        f"Data: `{args.data}` (12 synthetic subjects x 30 trials); one subject-wise hold-out "
        f"({len(metrics['runs'][0]['test_subjects'])} test subjects, split seed 0), training seeds "
        f"{args.seeds}. Learned = final training accuracy above the training majority rate by "
        "5 points, training loss falling, more than one class predicted on the test windows.",
        "",
        "| seed | training acc, first → last epoch (training majority) | training loss first → last | "
        "epochs | kept epoch | held-out acc (majority) | classes predicted | learned |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"{learned} of {len(rows)} seeds learned.",
        "",
    ])
    write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
