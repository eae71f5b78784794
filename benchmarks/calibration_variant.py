"""`symaffect bench calibration` for a model with keyword overrides, e.g. the paper's model
without eq. 2's per-window instance norm (``symaffect:input_norm=none``).

    .venv/bin/python benchmarks/calibration_variant.py --data DIR --out DIR --model symaffect:input_norm=none

The same protocol, methods and outputs as ``symaffect bench calibration`` (quick preset);
use an ``--out`` of its own (run folders are named by model, task set and protocol).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learning import parse_model  # noqa: E402

from symaffect.eval.calibration import run_calibration_bench  # noqa: E402
from symaffect.train.config import preset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", default="symaffect:input_norm=none")
    p.add_argument("--cache-dir", type=Path, default=None)
    a = p.parse_args(argv)
    name, kw = parse_model(a.model)
    changes = {"model.kwargs": {**preset("quick", model=name).model.kwargs, **kw}} if kw else None
    obj = run_calibration_bench(a.data, a.out, model=name, cache_dir=a.cache_dir, changes=changes, on_step=print)
    print((a.out / "calibration.md").read_text(encoding="utf-8"))
    print(f"{obj['seconds_total']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
