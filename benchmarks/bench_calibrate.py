"""Time `symaffect calibrate` with K = 8 rated tracks end to end (reading the data,
embedding the tracks' windows, fitting, writing the file) and a prediction with the
calibrated model, on 2 cores.

    .venv/bin/python benchmarks/bench_calibrate.py --run RUN --data DIR --subject N

RUN is a trained run folder (e.g. from `symaffect bench calibration`); the listener should
be one of its test subjects. Appends to benchmarks/results/calibrate_time.md.
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
    rows = []
    for method in ("threshold", "bias", "heads"):
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


if __name__ == "__main__":
    main()
