"""Accuracy and speed cost of the efficient configuration (low-rank temporal mixer).

Trains the paper's model with the full T x T temporal mixer and with the low-rank
mixer (``mixer="lowrank"``, rank 16) on the same synthetic data, the same protocol
(subject-wise 5-fold) and the same quick training budget, and prints both results
next to the majority baseline.

    .venv/bin/python benchmarks/bench_efficient.py --work benchmarks/_work/efficient
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from symaffect.data.synth import generate
from symaffect.train.config import preset
from symaffect.eval.scoring import train_and_score

CONFIGS = {
    "full T x T mixer": {"d": 32, "tau": 32, "mixer": "full"},
    "low-rank mixer (r=16)": {"d": 32, "tau": 32, "mixer": "lowrank", "mixer_rank": 16},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("benchmarks/_work/efficient"))
    ap.add_argument("--subjects", type=int, default=10)
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_efficient.md"))
    args = ap.parse_args()
    data = args.work / "data"
    if not (data / "synth_meta.json").is_file():
        generate(data, n_subjects=args.subjects, n_trials=args.trials, seconds=63.0, seed=0)
    rows = []
    for label, kwargs in CONFIGS.items():
        cfg = preset("quick").replace(**{
            "model.kwargs": kwargs, "protocol.name": "subject_kfold", "protocol.n_splits": args.folds,
        })
        t = time.perf_counter()
        run = train_and_score(cfg, data, args.work / label.split()[0], cache_dir=args.work / "cache")
        wall = time.perf_counter() - t
        m = json.loads((run / "metrics.json").read_text())
        rows.append((label, m, wall))
    lines = [
        "## Efficient configuration: accuracy and time cost (benchmarks/bench_efficient.py)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_efficient.py --work {args.work}`. Data: synthetic "
        f"DEAP-format, {args.subjects} subjects x {args.trials} trials x 63 s (seed 0). Protocol: "
        f"subject-wise {args.folds}-fold (subject-independent, non-overlapping test windows), quick preset "
        "(d = tau = 32), multi-task 9-class. Accuracy % mean ± std over folds (majority baseline of the "
        "training windows in brackets).",
        "",
        "| configuration | valence | arousal | liking | train + test wall (s) |",
        "|---|---|---|---|---|",
    ]
    for label, m, wall in rows:
        cells = []
        for task in ("valence", "arousal", "liking"):
            s = m["summary"][task]
            cells.append(
                f"{100 * s['model']['acc']['mean']:.1f} ± {100 * s['model']['acc']['std']:.1f} "
                f"({100 * s['majority']['acc']['mean']:.1f})"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {wall:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
