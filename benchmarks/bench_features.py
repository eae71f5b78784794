"""XGBoost baseline: basic peripheral features against NeuroKit2 features, on the same folds.

Generates a small synthetic DEAP-format set (:func:`symaffect.data.synth.generate`), then
for every task set and every ``peripheral_features`` value (``basic``, ``neurokit``,
``both``; :mod:`symaffect.train.xgb`) trains and scores the XGBoost baseline with the
project's own pipeline (:func:`symaffect.eval.scoring.train_and_score`: the ``quick``
preset, subject-wise k-fold, per-subject normalisation, early stopping on validation
subjects). The folds are drawn from the data and the protocol seed only, so all feature
sets see the same folds (checked: their ``splits.json`` are compared).

Every number sits beside the majority baseline (the training windows' most frequent
class, scored on the same test windows). Feature-extraction time is the wall time of
:func:`symaffect.train.xgb.dataset_features` per window over all calls of the run
(train, validation and test windows of every fold), on this machine's shared cores.

    .venv/bin/python benchmarks/bench_features.py --subjects 8 --trials 12 --folds 4

Writes ``benchmarks/results/features.md`` (and ``features.json``).

Until ``train/run.py`` and ``eval/scoring.py`` pass ``model.kwargs.peripheral_features``
on to :func:`~symaffect.train.xgb.dataset_features` and
:func:`~symaffect.train.xgb.fit_tasks` (``features=``), this script does it for them by
wrapping those two module functions for the run (both modules call them through the
``xgb`` module, so the wrap reaches them); nothing else of the pipeline is changed.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from symaffect._io import write_json, write_text
from symaffect.data.synth import generate
from symaffect.eval.scoring import train_and_score
from symaffect.train import xgb
from symaffect.train.config import preset

HERE = Path(__file__).resolve().parent
FEATURE_SETS = ("basic", "neurokit", "both")


@contextmanager
def feature_set(fs: str, clock: dict):
    """Route the run's feature set to ``xgb.dataset_features`` / ``xgb.fit_tasks`` and time
    the feature extraction into ``clock`` (``seconds``, ``windows``)."""
    compute, fit = xgb.dataset_features, xgb.fit_tasks

    def timed(ds, sfreq, chunk=256, **kw):
        t0 = time.perf_counter()
        out = compute(ds, sfreq, chunk, peripheral_features=fs)
        clock["seconds"] += time.perf_counter() - t0
        clock["windows"] += len(ds)
        return out

    def fit_with(*args, **kw):
        return fit(*args, **{**kw, "features": fs})

    with mock.patch.object(xgb, "dataset_features", timed), mock.patch.object(xgb, "fit_tasks", fit_with):
        yield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--stride", type=float, default=10.0, help="window stride in s (windows are 10 s)")
    ap.add_argument("--task-sets", default="binary_arousal,binary_valence,multitask9")
    ap.add_argument("--work", type=Path, default=Path("/tmp/symaffect_bench_features"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = args.work / "data"
    t0 = time.perf_counter()
    generate(data, n_subjects=args.subjects, n_trials=args.trials, seconds=63.0, seed=args.seed)
    print(f"data: {args.subjects} subjects x {args.trials} trials x 60 s ({time.perf_counter() - t0:.0f} s)",
          flush=True)

    rows, raw, splits = [], {}, {}
    for task_set in args.task_sets.split(","):
        for fs in FEATURE_SETS:
            cfg = preset("quick", model="xgboost")
            cfg = cfg.replace(**{
                "data.task_set": task_set, "protocol.name": "subject_kfold",
                "protocol.n_splits": args.folds, "protocol.val_ratio": 0.25,
                "data.window.window_seconds": 10.0, "data.window.stride_seconds": args.stride,
                "model.kwargs": {**cfg.model.kwargs, "n_jobs": 1, "peripheral_features": fs},
            })
            clock = {"seconds": 0.0, "windows": 0}
            out = args.work / f"{task_set}-{fs}"
            t0 = time.perf_counter()
            with feature_set(fs, clock):
                run = train_and_score(cfg, data, out, cache_dir=args.work / "cache")
            wall = time.perf_counter() - t0
            m = json.loads((run / "metrics.json").read_text())
            splits.setdefault(task_set, set()).add((run / "splits.json").read_text())
            ms_per_window = 1000.0 * clock["seconds"] / clock["windows"] if clock["windows"] else None
            ms_txt = f"{ms_per_window:.2f}" if ms_per_window is not None else "reused run"
            raw[f"{task_set}/{fs}"] = {"summary": m["summary"], "ms_per_window": ms_per_window, "wall_s": wall}
            print(f"{task_set} {fs}: {wall:.0f} s", flush=True)
            for task, s in m["summary"].items():
                mod, maj = s["model"], s["majority"]
                rows.append(
                    f"| {task_set} | {task} | {fs} | {mod['acc']['mean']:.3f} ± {mod['acc']['std']:.3f} | "
                    f"{maj['acc']['mean']:.3f} | {mod['macro_f1']['mean']:.3f} ± {mod['macro_f1']['std']:.3f} | "
                    f"{maj['macro_f1']['mean']:.3f} | {ms_txt} |"
                )
    same = {t: len(v) == 1 for t, v in splits.items()}
    cmd = (f".venv/bin/python benchmarks/bench_features.py --subjects {args.subjects} --trials {args.trials} "
           f"--folds {args.folds} --stride {args.stride:g} --task-sets {args.task_sets} --seed {args.seed}")
    text = "\n".join([
        "# XGBoost baseline: basic vs NeuroKit2 peripheral features (synthetic data)", "",
        f"Command: `{cmd}`", "",
        f"Synthetic DEAP-format set (`symaffect.data.synth.generate`, seed {args.seed}): {args.subjects} "
        f"subjects x {args.trials} trials x 60 s; 10-s windows, stride {args.stride:g} s; "
        f"`quick` preset XGBoost (n_jobs = 1), subject-wise {args.folds}-fold, per-subject normalisation "
        "(the NeuroKit2 features are computed on the de-normalised, recorded signal). "
        "EEG and EOG features are the same in every row; only the peripheral block changes "
        "(basic: 42 = 6 channels x mean, std, slope, 4 band powers; neurokit: 8 = HR, SDNN, RMSSD, "
        "SCL, SCR count, SCR amplitude, breathing rate and depth; both: 50).", "",
        f"Same folds for every feature set: {same}. Mean ± std over folds; `majority` = the training "
        "windows' most frequent class scored on the same test windows. ms/window: "
        "`xgb.dataset_features` wall time per window (all modalities), 2 shared cores.", "",
        "| task set | task | peripheral features | acc | majority acc | macro F1 | majority macro F1 | "
        "feature ms/window |",
        "|---|---|---|---|---|---|---|---|",
        *rows, "",
    ])
    write_text(HERE / "results" / "features.md", text)
    write_json(HERE / "results" / "features.json", {"command": cmd, "same_folds": same, "runs": raw})
    print(text)


if __name__ == "__main__":
    main()
