"""Does the paper's model learn what the synthetic data hold? Results and time to accuracy.

On one synthetic DEAP-format set and the same subject-wise k folds for every system:

* the paper's model as built (``symaffect``: filter-bank gate + power read-out), the
  DTFE exactly as the paper writes it (``symaffect_paper_dtfe``), other registered
  models given with ``--models`` (e.g. ``cnn1d``), all with the ``quick`` preset
  (d = tau = 32, low-rank temporal mixer: the efficient configuration) and the
  project's recipe;
* XGBoost on the package's window features;
* the feature classifier of ``benchmarks/reference_accuracy.py`` (log band power and
  peripheral statistics, logistic regression), with its features z-scored per subject
  (the subject's own windows, labels unused: what the reference does) and without that
  step (only the training subjects' pooled statistics).

Every accuracy sits beside the majority baseline (the training windows' most frequent
class, scored on the same test windows). Differences are paired over test subjects:
bootstrap 95 % interval and sign-flip p (:func:`symaffect.eval.metrics.paired_comparison`).

A model may be given with keyword overrides, ``NAME:key=value`` (e.g.
``symaffect:input_norm=none``); its runs get their own folder.

    .venv/bin/python benchmarks/bench_learning.py --subjects 12 --trials 30 --folds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from symaffect._io import write_json, write_text
from symaffect.data.synth import generate
from symaffect.eval.metrics import paired_comparison, per_subject_accuracy
from symaffect.train.config import preset
from symaffect.eval.scoring import train_and_score

sys.path.insert(0, str(Path(__file__).parent))
import reference_accuracy as ref  # noqa: E402

TASKS = {"binary_arousal": ("arousal", 1), "binary_valence": ("valence", 0)}


def parse_model(spec: str) -> tuple[str, dict]:
    """``"name"`` or ``"name:key=value,key=value"`` -> (name, kwargs overrides)."""
    import yaml

    name, _, rest = spec.partition(":")
    kw = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        kw[k] = yaml.safe_load(v)
    return name, kw


def run_models(data: Path, work: Path, task_set: str, models: list[str], folds: int) -> dict:
    out = {}
    for spec in models:
        model, kw = parse_model(spec)
        cfg = preset("quick", model=model).replace(**{
            "data.task_set": task_set, "protocol.name": "subject_kfold",
            "protocol.n_splits": folds, "protocol.val_ratio": 0.25,
        })
        if kw:
            cfg = cfg.replace(**{"model.kwargs": {**cfg.model.kwargs, **kw}})
        t0 = time.perf_counter()
        folder = spec.replace(":", "-").replace("=", "_").replace(",", "-")
        reused = (work / f"{folder}-{task_set}" / "metrics.json").is_file()
        run = train_and_score(cfg, data, work / f"{folder}-{task_set}")
        wall = time.perf_counter() - t0
        metrics = json.loads((run / "metrics.json").read_text())
        out[spec] = {"run": run, "metrics": metrics, "wall": wall, "reused": reused}
        print(f"{task_set} {spec}: {'reused' if reused else f'{wall:.0f} s'}", flush=True)
    return out


def subject_scores(run: Path, metrics: dict, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subjects, model acc, majority acc) per test subject, pooled over folds."""
    from symaffect.eval.suites import subject_scores as scores

    sc = scores([run], task, mets=[metrics])
    return np.asarray(sc["subjects"]), np.asarray(sc["model"]), np.asarray(sc["majority"])


def feature_classifier(data: Path, metrics: dict, col: int, per_subject_z: bool,
                       deep_train_only: bool = False) -> tuple:
    """The reference classifier on the same folds: per test subject, (ids, acc, majority).

    It trains on every non-test subject, or (``deep_train_only``) only on the subjects
    the deep model trained on (its validation subjects left out)."""
    from symaffect.data.deap import read_deap

    rows = []
    for rec in read_deap(data).subjects:
        f = ref.window_features(ref.segment_features(rec.data), ref.WIN_SEGS)
        n, w = f.shape[:2]
        rows.append((f.reshape(n * w, -1), np.repeat(rec.labels[:, col] > 5, w).astype(int),
                     np.full(n * w, rec.subject)))
    x = np.concatenate([r[0] for r in rows])
    y = np.concatenate([r[1] for r in rows])
    s = np.concatenate([r[2] for r in rows])
    if per_subject_z:
        x = ref.zscore_per_subject(x, s)
    ids, acc, maj = [], [], []
    for r in metrics["runs"]:
        te = np.isin(s, r["test_subjects"])
        tr = np.isin(s, r["train_subjects"]) if deep_train_only else ~te
        pred = ref._classifier().fit(x[tr], y[tr]).predict(x[te])
        k = int(y[tr].mean() > 0.5)
        i, a = per_subject_accuracy(s[te], y[te], pred)
        _, m = per_subject_accuracy(s[te], y[te], np.full(te.sum(), k))
        ids += list(i)
        acc += list(a)
        maj += list(m)
    o = np.argsort(ids)
    return np.asarray(ids)[o], np.asarray(acc)[o], np.asarray(maj)[o]


def fmt_cmp(c: dict) -> str:
    p = "p < 0.001" if c["p_value"] < 0.001 else f"p = {c['p_value']:.3f}"
    return f"{100 * c['delta']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}], {p}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("benchmarks/_work/learning"))
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--tasks", default="binary_arousal,binary_valence")
    ap.add_argument("--models", default="symaffect,symaffect_paper_dtfe,xgboost")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_learning.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = args.work / f"data-{args.subjects}x{args.trials}"
    if not (data / "synth_meta.json").is_file():
        generate(data, n_subjects=args.subjects, n_trials=args.trials, seconds=63.0, seed=0)
    models = args.models.split(",")
    t_start = time.perf_counter()
    lines, raw, n_reused = [], {}, 0
    for task_set in args.tasks.split(","):
        task, col = TASKS[task_set]
        res = run_models(data, args.work / "runs", task_set, models, args.folds)
        n_reused += sum(r["reused"] for r in res.values())
        scores = {m: subject_scores(r["run"], r["metrics"], task) for m, r in res.items()}
        first = next(iter(res.values()))["metrics"]
        scores["features (per-subject z)"] = feature_classifier(data, first, col, True)
        scores["features (no per-subject z)"] = feature_classifier(data, first, col, False)
        scores["features (per-subject z), deep model's training subjects only"] = feature_classifier(
            data, first, col, True, deep_train_only=True)
        ref_ids = scores[models[0]][0]
        lines += [f"### {task_set} — subject-wise {args.folds}-fold CV, "
                  f"{args.subjects} subjects x {args.trials} trials",
                  "",
                  "| system | acc (mean over subjects) | majority | Δ vs majority [95 % CI], p | "
                  f"{models[0]} − system [95 % CI], p |",
                  "|---|---|---|---|---|"]
        raw[task_set] = {}
        for name, (ids, acc, maj) in scores.items():
            assert np.array_equal(ids, ref_ids), "systems were scored on different subjects"
            vs_maj = paired_comparison(acc, maj)
            vs_ref = "–" if name == models[0] else fmt_cmp(paired_comparison(scores[models[0]][1], acc))
            lines.append(f"| {name} | {100 * acc.mean():.1f} ± {100 * acc.std():.1f} | "
                         f"{100 * maj.mean():.1f} | {fmt_cmp(vs_maj)} | {vs_ref} |")
            raw[task_set][name] = {"subjects": ids.tolist(), "acc": acc.tolist(), "majority": maj.tolist()}
        lines.append("")
    minutes = (time.perf_counter() - t_start) / 60
    text = "\n".join([
        "# Learning on the synthetic data: the paper's model, its DTFE as written, XGBoost and the feature classifier",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_learning.py --subjects {args.subjects} "
        f"--trials {args.trials} --folds {args.folds} --models {args.models}` "
        f"({minutes:.0f} min on this 2-core machine, one torch thread"
        + (f"; {n_reused} of the runs were finished by earlier invocations of the same command "
           "(`train_and_score` reuses a finished run of the same config) and are not in that time" if n_reused else "")
        + ").",
        "",
        "Deep models: `quick` preset (d = tau = 32, low-rank mixer, lr 1e-3 with 5 % warm-up "
        "and cosine decay, clipping 1, 10 epochs of 1024 training windows at a 5-s stride, "
        "early stopping on the validation loss with patience 3, validation = 25 % of the "
        "training subjects). Test windows: 10 s, non-overlapping. Accuracies are means over "
        "test subjects (each tested once) ± their std; Δ are paired over those subjects.",
        "",
        *lines,
    ])
    write_text(args.out, text)
    write_json(args.out.with_suffix(".json"), raw)
    print(text)


if __name__ == "__main__":
    main()
