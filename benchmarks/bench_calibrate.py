"""Time `symaffect calibrate` with K = 8 rated tracks end to end (reading the data,
embedding the tracks' windows, fitting, writing the file) and a prediction with the
calibrated model, on 2 cores.

    .venv/bin/python benchmarks/bench_calibrate.py --run RUN --data DIR --subject N

RUN is a trained run folder (e.g. from `symaffect bench calibration`); the listener should
be one of its test subjects. A model.pt written before the calibration pool was stored is
exported again from the run's best checkpoint first (``pooled`` needs the pool; the
weights do not change). Writes benchmarks/results/calibrate_time.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from symaffect._io import write_text

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--cache-dir", type=Path, default=None)
    args = ap.parse_args()
    cli = [sys.executable, "-m", "symaffect.cli"]
    cache = ["--cache-dir", str(args.cache_dir)] if args.cache_dir else []
    _ensure_pool(args.run, args.data, args.cache_dir)
    rows = []
    for method in ("threshold", "bias", "heads", "pooled"):
        t0 = time.perf_counter()
        r = subprocess.run([*cli, "calibrate", str(args.run), "--data", str(args.data), "--subject", str(args.subject),
                            "--trials", "1,2,3,4,5,6,7,8", "--method", method, *cache],
                           capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        print(r.stdout.strip(), flush=True)
        rows.append(f"| {method} | 8 | {wall:.1f} |")
    text = "\n".join([
        "# `symaffect calibrate`, K = 8, end to end (2 cores)", "",
        f"Command: `.venv/bin/python benchmarks/bench_calibrate.py --run {args.run} --data {args.data} "
        f"--subject {args.subject}`", "",
        "Wall time of the whole command: start-up, reading the prepared data (cached), embedding the 8 tracks' "
        "windows, fitting, writing the file.", "",
        "| method | K | seconds |", "|---|---|---|", *rows, "",
    ])
    out = HERE / "results" / "calibrate_time.md"
    write_text(out, text)
    print(text)


def _ensure_pool(run_dir: Path, data_dir: Path, cache_dir: Path | None) -> None:
    """Export model.pt again (same weights, with the calibration pool) if it has no pool."""
    import torch

    from symaffect.run_folder import RunFolder
    from symaffect.train.config import RunConfig
    from symaffect.train.run import _export_model
    from symaffect.train.rundata import RunData

    run = RunFolder(run_dir)
    extra = torch.load(run.model, weights_only=True).get("extra") or {}
    if "calibration_pool" in extra:
        return
    cfg = RunConfig.from_yaml(run.config)
    data = RunData.from_splits(cfg, run.splits, data_dir, cache_dir=cache_dir)
    fold, seed = int(extra.get("fold", 0)), int(extra.get("seed", cfg.seeds[0]))
    fit = run.read_fit(fold, seed)
    print(f"exporting {run.model} again with its calibration pool", flush=True)
    _export_model(data, data.fold(fold), seed, run.resolve(fit["checkpoint"]), run)


if __name__ == "__main__":
    main()
