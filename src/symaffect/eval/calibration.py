"""The calibration protocol: how much a few of a listener's own rated tracks help.

Protocol (``symaffect bench calibration``), per task set:

1. A cross-subject model per fold of a subject k-fold split (training never sees the
   held-out subjects), trained and scored as any run (:func:`~symaffect.eval.scoring.
   train_and_score`, so an existing run of the same config is reused).
2. For every held-out subject, every draw ``d`` and every ``K`` in :data:`KS`: ``K`` of the
   subject's trials (whole trials, drawn at random) calibrate, the other trials test. No
   window of a calibration trial is ever in the test set: :func:`symaffect.data.protocols.
   guard` checks every such split (trial protocol). The same draw orders the trials for
   every ``K``, so a larger ``K`` adds tracks to a smaller one's.
3. Each method of :mod:`symaffect.models.calibration` is fitted on the calibration trials
   and scored on the test trials: ``none`` (the uncalibrated model), ``recentre``
   (unlabelled: the listener's whole session, no ratings -- transductive in the way the
   default per-subject normalisation is), ``bias``, ``threshold``, ``heads`` and
   ``pooled`` (``K`` rated tracks; ``pooled`` refits on the fold's training population,
   :func:`symaffect.train.run.population`).
4. Beside every number: the majority baseline of the *test* trials (the most frequent
   class among the test windows, an optimistic oracle), the balanced accuracy, the
   uncalibrated model on the same test trials and each method against it paired over
   held-out subjects; two within-subject ceilings: a ``trial_holdout`` run (every
   subject's other trials in training), scored per subject, and a linear probe on each
   held-out listener's frozen embeddings (:func:`probe_ceiling`); the share of the gap
   closed is towards the higher of the two (:func:`ceiling_of`).

Numbers are means over held-out subjects, draws and folds (the table and
``calibration.json``); the figure shows accuracy against ``K`` with a band of one
standard deviation over subjects x draws.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from symaffect._io import atomic_write, read_json, read_npz, write_json, write_text
from symaffect.data.protocols import Fold, guard
from symaffect.errors import DataError
from symaffect.eval.scoring import train_and_score
from symaffect.eval.metrics import paired_comparison
from symaffect.eval.tables import fmt_delta, markdown_table
from symaffect.models.calibration import (
    LABELLED,
    METHODS,
    base_heads,
    fit_calibration,
    save_calibration,
    stored_pool,
)
from symaffect.models.checkpoint import load_checkpoint
from symaffect.run_folder import RunFolder
from symaffect.spec import task_set as task_set_spec
from symaffect.train.checkpoints import load_lightning_weights
from symaffect.train.config import RunConfig, preset
from symaffect.train.datamodule import batches
from symaffect.train.module import predict_embeddings
from symaffect.train.run import population
from symaffect.train.rundata import RunData

log = logging.getLogger(__name__)

KS: tuple[int, ...] = (0, 1, 2, 4, 8)
"""Numbers of rated calibration tracks."""
DEFAULT_TASK_SETS: tuple[str, ...] = ("binary_arousal", "binary_valence")
DEFAULT_METHOD = "threshold"
"""The method ``calibration.json``'s headline numbers use for K >= 1. Chosen after the
first measurement showed that ``bias`` (the a-priori choice) loses accuracy because the
class share of a few calibration tracks drawn from a balanced set leans the opposite way
of the tracks left to predict (docs/RESULTS.md); confirmed on a second synthetic set.
Every method is in ``methods``."""
DRAWS = 5
MIN_GAP = 0.01
"""Smallest gap (uncalibrated -> within-subject accuracy) whose closed share is reported."""
FOLDS = 5
PROBE_FOLDS = 5
"""Folds over a listener's trials of the within-subject probe ceiling."""
FORMAT = "symaffect-calibration-bench"


def _cfg(task_set: str, *, model: str, preset_name: str, protocol: str, folds: int,
         changes: Mapping[str, Any] | None) -> RunConfig:
    cfg = preset(preset_name, model=model).replace(**{"data.task_set": task_set, "protocol.name": protocol})
    if protocol == "subject_kfold":
        cfg = cfg.replace(**{"protocol.n_splits": folds})
    else:
        cfg = cfg.replace(**{"protocol.test_ratio": 0.5})
    return cfg.replace(**dict(changes or {}))


def _run_name(cfg: RunConfig) -> str:
    return f"{cfg.model.name}-{cfg.data.task_set}-{cfg.protocol.name}"


def _train(cfg: RunConfig, data_dir: Path, out: Path, cache_dir) -> Path:
    rdir = out / "runs" / _run_name(cfg)
    run = RunFolder(rdir)
    if run.metrics.is_file() and run.config.is_file() and RunConfig.from_yaml(run.config) == cfg:
        log.info("reusing %s", rdir)
        return rdir
    return train_and_score(cfg, data_dir, rdir, cache_dir=cache_dir)


def _ceiling(run_dir: Path, task: str) -> dict[int, float]:
    """Per-subject accuracy of a within-subject (trial hold-out) run."""
    run = RunFolder(run_dir)
    out: dict[int, list[float]] = {}
    for r in run.read_metrics()["runs"]:
        npz = read_npz(run.predictions_path(r["fold"], r["seed"]))
        for s in np.unique(npz["subject"]):
            m = npz["subject"] == s
            out.setdefault(int(s), []).append(float(np.mean(npz[f"true_{task}"][m] == npz[f"pred_{task}"][m])))
    return {s: float(np.mean(v)) for s, v in out.items()}


def _accuracy(logits: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    return {t: float(np.mean(np.argmax(logits[t][rows], axis=1) == y[t][rows])) for t in logits}


def _balanced(logits: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    """Balanced accuracy (mean recall over the classes present) of single-label tasks: a
    calibration that only learns how often the listener uses each class gains nothing here."""
    out = {}
    for t in logits:
        yt = y[t][rows]
        if yt.ndim == 1 and len(yt):
            pred = np.argmax(logits[t][rows], axis=1)
            out[t] = float(np.mean([np.mean(pred[yt == c] == c) for c in np.unique(yt)]))
    return out


def _mae(logits: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    return {t: float(np.mean(np.abs(np.argmax(logits[t][rows], axis=1) - y[t][rows]))) for t in logits}


def _majority(y: np.ndarray) -> float:
    return float(np.bincount(y).max() / len(y)) if len(y) else float("nan")


def _subject_gains(data_dir: Path, task: str) -> dict[int, float]:
    """Mean generator gain of ``task``'s effects per subject (``synth_meta.json``), if known."""
    path = Path(data_dir) / "synth_meta.json"
    if not path.is_file():
        return {}
    meta = read_json(path)
    gains = meta.get("gains") or {}
    effects = {e["name"] for e in meta.get("effects", []) if e.get("label") == task}
    out = {}
    for s, g in gains.items():
        vals = [v for k, v in dict(g).items() if not effects or k in effects]
        if vals:
            out[int(str(s).lstrip("s"))] = float(np.mean(vals))
    return out


def probe_ceiling(z: np.ndarray, y: np.ndarray, trials: np.ndarray, *, folds: int = PROBE_FOLDS) -> float:
    """Within-subject accuracy of a linear probe on one listener's frozen embeddings: a
    standardised logistic regression (C = 0.1) fitted on the listener's other trials,
    ``folds``-fold over whole trials (every window of a trial on one side)."""
    n_trials = len(np.unique(trials))
    if n_trials < 2:
        return float("nan")
    pred = np.empty_like(y)
    for tr, te in GroupKFold(min(folds, n_trials)).split(z, groups=trials):
        if len(np.unique(y[tr])) < 2:
            pred[te] = y[tr][0]
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        pred[te] = clf.fit(z[tr], y[tr]).predict(z[te])
    return float(np.mean(pred == y))


def calibrate_fold(
    data: RunData, fold: Fold, run: RunFolder, fit: Mapping, *, ks: Sequence[int], draws: int, seed: int,
    methods: Sequence[str], timings: list[float], probes: dict | None = None,
) -> list[dict]:
    """Every (subject, draw, K, method) result of one fold (rows of the bench); the
    within-subject probe ceiling of every held-out subject goes into ``probes``
    (``task -> subject -> accuracy``; single-label tasks)."""
    cfg, spec = data.cfg, data.tasks
    kwargs = data.model_kwargs()
    model, _ = load_lightning_weights(run.resolve(fit["checkpoint"]), cfg.model.name, kwargs, root=run.root)
    heads = base_heads(model)
    train_ds = data.dataset(fold, "train")
    pop, pool = population(model, train_ds, fold.meta.subject_of(np.asarray(train_ds.index)), spec.names)
    test_ds = data.dataset(fold, "test")
    z = predict_embeddings(model, batches(test_ds, 256)).double().numpy()
    y = {t: np.asarray(test_ds.targets(t)) for t in spec.names}
    rows = np.asarray(test_ds.index)
    subj = fold.meta.subject_of(rows)
    trial = fold.meta.trial_of(rows)
    multilabel = spec.kind == "multilabel"
    out = []
    for s in np.unique(subj):
        in_s = np.flatnonzero(subj == s)
        trials = np.unique(trial[in_s])
        base_logits = {t: z[in_s] @ w.T + b for t, (w, b) in heads.items()}
        if probes is not None and spec.kind != "multilabel":
            for t in spec.names:
                probes.setdefault(t, {})[int(s)] = probe_ceiling(z[in_s], y[t][in_s], trial[in_s])
        for d in range(draws):
            rng = np.random.default_rng([seed, fold.fold, int(s), d])
            order = rng.permutation(trials)
            for k in ks:
                if k >= len(trials):
                    continue
                cal_trials = order[:k]
                cal = np.isin(trial[in_s], cal_trials)
                test = ~cal
                _guard(fold, rows[in_s][cal], rows[in_s][test], int(s))
                y_s = {t: v[in_s] for t, v in y.items()}
                common = {"fold": fold.fold, "subject": int(s), "draw": d, "k": int(k),
                          "n_test_windows": int(test.sum()),
                          "majority_test": {t: _majority(y_s[t][test]) for t in spec.names}}
                for method in methods:
                    if method in LABELLED and k == 0:
                        continue
                    if method == "none":
                        logits = base_logits
                    else:
                        t0 = time.perf_counter()
                        c = fit_calibration(
                            method, heads, pop, unlabelled=z[in_s], z=z[in_s][cal],
                            y={t: v[cal] for t, v in y_s.items()}, tracks=trial[in_s][cal], multilabel=multilabel,
                            pool=pool,
                        )
                        zc = z[in_s] - c.shift
                        logits = {t: zc @ w.T + b for t, (w, b) in c.heads.items()}
                        if k == 8 and method in LABELLED:
                            timings.append(time.perf_counter() - t0)
                    row = {**common, "method": method, "acc": _accuracy(logits, y_s, test),
                           "bacc": _balanced(logits, y_s, test)}
                    if any(t.rule == "nine_class" for t in spec.tasks):
                        row["mae"] = _mae(logits, y_s, test)
                    out.append(row)
    return out


def _guard(fold: Fold, cal_rows: np.ndarray, test_rows: np.ndarray, subject: int) -> None:
    """The split guard, trial protocol: no calibration trial's window in the test set."""
    meta = fold.meta
    split = Fold(
        fold=fold.fold, train=cal_rows, val=np.zeros((0, 3), np.int64), test=test_rows, meta=meta,
        train_subjects=(subject,) if len(cal_rows) else (), val_subjects=(), test_subjects=(subject,),
        train_trials=tuple((subject, int(t)) for t in np.unique(meta.trial_of(cal_rows))) if len(cal_rows) else (),
        val_trials=(), test_trials=tuple((subject, int(t)) for t in np.unique(meta.trial_of(test_rows))),
    )
    guard(split, protocol_kind="trial")


def summarise(rows: Sequence[Mapping], tasks: Sequence[str], ks: Sequence[int], methods: Sequence[str],
              ceiling: Mapping[str, Mapping[int, float]], probes: Mapping[str, Mapping[int, float]] | None = None) -> dict:
    """Means and standard deviations over subjects x draws x folds, per task, K and method,
    with the two within-subject ceilings (the trial hold-out model and the probe)."""
    out: dict[str, Any] = {}
    for t in tasks:
        per: dict[str, Any] = {}
        for m in methods:
            per[m] = {}
            for k in ks:
                sel = [r for r in rows if r["method"] == m and r["k"] == k]
                if not sel:
                    continue
                acc = np.array([r["acc"][t] for r in sel])
                entry = {"acc": float(acc.mean()), "std": float(acc.std()), "n": len(sel),
                         "majority_test": float(np.mean([r["majority_test"][t] for r in sel]))}
                if "mae" in sel[0]:
                    entry["mae"] = float(np.mean([r["mae"][t] for r in sel]))
                if all(t in r.get("bacc", {}) for r in sel):
                    entry["bacc"] = float(np.mean([r["bacc"][t] for r in sel]))
                per[m][str(k)] = entry
        subjects = sorted({r["subject"] for r in rows})
        ceil = [ceiling[t][s] for s in subjects if s in ceiling.get(t, {})]
        probe = [v for s in subjects if np.isfinite(v := (probes or {}).get(t, {}).get(s, np.nan))]
        out[t] = {"methods": per, "within_subject": float(np.mean(ceil)) if ceil else None,
                  "within_subject_probe": float(np.mean(probe)) if probe else None}
    return out


def ceiling_of(s: Mapping) -> float | None:
    """The higher of a task's two within-subject ceilings (the conservative one to close a
    gap to), or None if neither was measured."""
    vals = [v for v in (s.get("within_subject"), s.get("within_subject_probe")) if v is not None]
    return max(vals) if vals else None


def _headline(summary: Mapping, ks: Sequence[int]) -> dict:
    """``tasks -> task -> "K" -> acc``: K = 0 re-centred, K >= 1 :data:`DEFAULT_METHOD`."""
    out: dict[str, dict[str, float]] = {}
    for t, s in summary.items():
        m = s["methods"]
        out[t] = {}
        for k in ks:
            src = m.get("recentre" if k == 0 else DEFAULT_METHOD, {}).get(str(k))
            if src is not None:
                out[t][str(k)] = src["acc"]
    return out


def gap_closed(summary: Mapping, k: int = 8, method: str = DEFAULT_METHOD) -> dict[str, float | None]:
    """Per task, the share of the gap from the uncalibrated model to the within-subject
    ceiling (:func:`ceiling_of`, the higher of the two) that calibration with ``k``
    tracks closes (on the same test trials)."""
    out = {}
    for t, s in summary.items():
        m = s["methods"]
        cal, base, ceil = m.get(method, {}).get(str(k)), m.get("none", {}).get(str(k)), ceiling_of(s)
        if cal is None or base is None or ceil is None or ceil - base["acc"] < MIN_GAP:
            out[t] = None  # no gap worth a share: a ratio of two noise-sized numbers
        else:
            out[t] = (cal["acc"] - base["acc"]) / (ceil - base["acc"])
    return out


def paired_vs_none(rows: Sequence[Mapping], task: str, *, k: int, method: str) -> dict | None:
    """``method`` against the uncalibrated model at ``k``, paired over held-out subjects
    (each subject's accuracy averaged over their draws): mean difference, 95 % bootstrap
    CI and sign-flip p (:func:`symaffect.eval.metrics.paired_comparison`)."""
    per: dict[str, dict[int, list[float]]] = {"a": {}, "b": {}}
    for r in rows:
        if r["k"] == k and r["method"] in (method, "none"):
            per["a" if r["method"] == method else "b"].setdefault(r["subject"], []).append(r["acc"][task])
    subjects = sorted(set(per["a"]) & set(per["b"]))
    if len(subjects) < 2:
        return None
    a = np.array([np.mean(per["a"][s]) for s in subjects])
    b = np.array([np.mean(per["b"][s]) for s in subjects])
    return paired_comparison(a, b)


def per_subject_gain(rows: Sequence[Mapping], task: str, *, k: int = 8, method: str = DEFAULT_METHOD) -> dict[int, float]:
    """Mean accuracy gain of ``method`` over ``none`` at ``k``, per subject."""
    gain: dict[int, list[float]] = {}
    base = {(r["fold"], r["subject"], r["draw"]): r["acc"][task] for r in rows if r["method"] == "none" and r["k"] == k}
    for r in rows:
        if r["method"] == method and r["k"] == k:
            gain.setdefault(r["subject"], []).append(r["acc"][task] - base[(r["fold"], r["subject"], r["draw"])])
    return {s: float(np.mean(v)) for s, v in sorted(gain.items())}


def plot(summary: Mapping, ks: Sequence[int], path: Path, *, nine_class: bool) -> Path:
    """Accuracy (and MAE for 9 classes) against K, one panel per task, bands of one std."""
    tasks = list(summary)
    rows = 2 if nine_class else 1
    fig = Figure(figsize=(4.6 * len(tasks), 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, len(tasks), squeeze=False)
    colors = {"none": "#777777", "recentre": "#3b6fb6", "bias": "#e08a2c", "threshold": "#8e44ad", "heads": "#5aa469",
              "pooled": "#c0392b"}
    for j, t in enumerate(tasks):
        ax = axes[0, j]
        for m, per in summary[t]["methods"].items():
            xs = [k for k in ks if str(k) in per]
            mean = np.array([per[str(k)]["acc"] for k in xs])
            std = np.array([per[str(k)]["std"] for k in xs])
            ax.plot(xs, 100 * mean, "o-", color=colors.get(m), label=m)
            ax.fill_between(xs, 100 * (mean - std), 100 * (mean + std), color=colors.get(m), alpha=0.12)
        maj = summary[t]["methods"]["none"]
        ax.plot([k for k in ks if str(k) in maj], [100 * maj[str(k)]["majority_test"] for k in ks if str(k) in maj],
                "k:", label="majority of the test trials")
        if summary[t]["within_subject"] is not None:
            ax.axhline(100 * summary[t]["within_subject"], color="#aa3333", ls="--", label="within-subject model")
        if summary[t].get("within_subject_probe") is not None:
            ax.axhline(100 * summary[t]["within_subject_probe"], color="#aa3333", ls="-.",
                       label="within-subject probe (frozen encoder)")
        ax.set_xticks(list(ks))
        ax.set_ylim(max(0.0, ax.get_ylim()[0]), min(100.0, ax.get_ylim()[1]))
        ax.set_xlabel("K rated calibration tracks")
        ax.set_ylabel("accuracy on the other tracks (%)")
        ax.set_title(t, fontsize=10)
        if j == 0:
            ax.legend(fontsize=7, loc="lower right")
        if nine_class:
            ax2 = axes[1, j]
            for m, per in summary[t]["methods"].items():
                xs = [k for k in ks if str(k) in per and "mae" in per[str(k)]]
                ax2.plot(xs, [per[str(k)]["mae"] for k in xs], "o-", color=colors.get(m), label=m)
            ax2.set_xticks(list(ks))
            ax2.set_xlabel("K rated calibration tracks")
            ax2.set_ylabel("MAE (classes)")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    return path


def run_calibration_bench(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    task_sets: Sequence[str] = DEFAULT_TASK_SETS,
    ks: Sequence[int] = KS,
    draws: int = DRAWS,
    folds: int = FOLDS,
    methods: Sequence[str] = METHODS,
    model: str = "symaffect",
    preset_name: str = "quick",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    changes: Mapping[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> dict:
    """Run the calibration protocol (module docstring); write ``calibration.md``,
    ``calibration.png`` and ``calibration.json`` into ``out_dir`` and return the JSON."""
    t_start = time.perf_counter()
    data_dir, out = Path(data_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise DataError("methods", f"{unknown} not in {METHODS}")
    methods = ["none", *[m for m in methods if m != "none"]]
    ks = sorted({int(k) for k in ks})
    say = on_step or (lambda s: log.info("%s", s))
    result: dict[str, Any] = {"format": FORMAT, "version": 1, "tasks": {}, "task_sets": {}, "protocol": {
        "cross_subject": f"subject k-fold, {folds} folds", "within_subject": "trial hold-out (1:1), every subject",
        "within_subject_probe": f"logistic regression on the listener's frozen embeddings, {PROBE_FOLDS}-fold over their trials",
        "ks": list(ks), "draws": draws, "methods": methods, "headline_method": DEFAULT_METHOD, "seed": seed,
        "recentre_pool": "the listener's whole session, unlabelled"}}
    md = ["# Per-listener calibration", ""]
    timings: list[float] = []
    all_rows: dict[str, list[dict]] = {}
    for ts in task_sets:
        spec = task_set_spec(ts)
        cross = _cfg(ts, model=model, preset_name=preset_name, protocol="subject_kfold", folds=folds, changes=changes)
        within = _cfg(ts, model=model, preset_name=preset_name, protocol="trial_holdout", folds=folds, changes=changes)
        say(f"{ts}: cross-subject model, {folds} folds")
        cross_dir = _train(cross, data_dir, out, cache_dir)
        say(f"{ts}: within-subject ceiling")
        within_dir = _train(within, data_dir, out, cache_dir)
        ceiling = {t: _ceiling(within_dir, t) for t in spec.names}
        run = RunFolder(cross_dir)
        data = RunData.from_splits(cross, run.splits, data_dir, cache_dir=cache_dir)
        rows: list[dict] = []
        probes: dict = {}
        for fold in data.folds:
            say(f"{ts}: calibrating the held-out subjects of fold {fold.fold}")
            rows += calibrate_fold(data, fold, run, run.read_fit(fold.fold, cross.seeds[0]), ks=ks, draws=draws,
                                   seed=seed, methods=methods, timings=timings, probes=probes)
        summary = summarise(rows, spec.names, ks, methods, ceiling, probes)
        kref = 8 if 8 in ks else max(ks)
        result["task_sets"][ts] = {"summary": summary, "k_ref": kref, "gap_closed": gap_closed(summary, kref),
                                   "gap_closed_by_method": {m: gap_closed(summary, kref, m)
                                                            for m in methods if m in LABELLED},
                                   "per_subject_gain": {t: per_subject_gain(rows, t, k=kref) for t in spec.names},
                                   "paired_vs_none": {
                                       t: {**({"recentre@0": paired_vs_none(rows, t, k=0, method="recentre")}
                                              if 0 in ks and "recentre" in methods else {}),
                                           **{f"{m}@{kref}": paired_vs_none(rows, t, k=kref, method=m)
                                              for m in methods if m in LABELLED}}
                                       for t in spec.names},
                                   "per_subject_gain_by_method": {
                                       m: {t: per_subject_gain(rows, t, k=kref, method=m) for t in spec.names}
                                       for m in methods if m in LABELLED},
                                   "subject_gain": {t: _subject_gains(data_dir, t) for t in spec.names},
                                   "runs": {"cross_subject": str(cross_dir), "within_subject": str(within_dir)}}
        for t, v in _headline(summary, ks).items():
            result["tasks"][t] = v
        md += _markdown(ts, summary, result["task_sets"][ts], ks, kref)
        all_rows[ts] = rows
        write_json(out / "calibration_rows.json", {"rows": all_rows})
        nine = any(t.rule == "nine_class" for t in spec.tasks)
        plot(summary, ks, out / f"calibration-{ts}.png", nine_class=nine)
    result["seconds_calibrate_k8"] = {"mean": float(np.mean(timings)) if timings else None,
                                      "max": float(np.max(timings)) if timings else None, "n": len(timings)}
    result["seconds_total"] = time.perf_counter() - t_start
    md += ["", f"Fitting a calibration with K = 8 and applying it: mean "
               f"{result['seconds_calibrate_k8']['mean'] or 0:.3f} s, max {result['seconds_calibrate_k8']['max'] or 0:.3f} s "
               f"over {len(timings)} fits (the embeddings computed once per fold). Total {result['seconds_total']:.0f} s."]
    write_text(out / "calibration.md", "\n".join(md) + "\n")
    write_json(out / "calibration.json", result)
    return result


def _gap_words(s: Mapping, k: int) -> str:
    """``from the uncalibrated model (56.5 %) to the higher ceiling (66.2 %; 9.7 points)``."""
    base, ceil = s["methods"].get("none", {}).get(str(k)), ceiling_of(s)
    if base is None or ceil is None:
        return "from the uncalibrated model to the higher ceiling"
    return (f"from the uncalibrated model ({100 * base['acc']:.1f} %) to the higher ceiling "
            f"({100 * ceil:.1f} %; {100 * (ceil - base['acc']):+.1f} points)")


def _markdown(ts: str, summary: Mapping, info: Mapping, ks: Sequence[int], kref: int) -> list[str]:
    out = [f"## {ts}", ""]
    for t, s in summary.items():
        header = ["method", *[f"K = {k}" for k in ks]]
        body = []
        for m, per in s["methods"].items():
            body.append([m, *[(f"{100 * per[str(k)]['acc']:.1f} ± {100 * per[str(k)]['std']:.1f}"
                               if str(k) in per else "–") for k in ks]])
        maj = s["methods"]["none"]
        body.append(["majority of the test trials",
                     *[f"{100 * maj[str(k)]['majority_test']:.1f}" if str(k) in maj else "–" for k in ks]])
        within, probe = s["within_subject"], s.get("within_subject_probe")
        ceilings = []
        if within is not None:
            ceilings.append(f"the model trained within subject (trial hold-out) {100 * within:.1f} %")
        if probe is not None:
            ceilings.append(f"a linear probe on the listener's frozen embeddings ({PROBE_FOLDS}-fold over their "
                            f"trials) {100 * probe:.1f} %")
        closed = []
        for m, g in (info.get("gap_closed_by_method") or {DEFAULT_METHOD: info["gap_closed"]}).items():
            closed.append(f"{m} {100 * g[t]:.0f} %" if g.get(t) is not None else f"{m} n/a")
        bal = [[m, *[f"{100 * per[str(k)]['bacc']:.1f}" if "bacc" in per.get(str(k), {}) else "–" for k in ks]]
               for m, per in s["methods"].items()]
        has_bal = any(c != "–" for row in bal for c in row[1:])
        out += [f"### {t}: accuracy (%) on the listener's other tracks, mean ± std over subjects x draws",
                "", markdown_table(header, body), "",
                *(["Balanced accuracy (%) on the same tracks (mean recall over the classes present; 50 % for any "
                   "constant prediction, so learning how often the listener uses each class gains nothing):", "",
                   markdown_table(header, bal), ""] if has_bal else []),
                ("Within-subject ceilings: " + "; ".join(ceilings) + ".") if ceilings else "",
                f"Share of the gap {_gap_words(s, kref)} closed at K = {kref}: " + ", ".join(closed)
                + (f" (n/a: the ceiling is less than {100 * MIN_GAP:.0f} point above the uncalibrated model)."
                   if info["gap_closed"].get(t) is None else "."),
                ""]
        paired = [(key, c) for key, c in (info.get("paired_vs_none") or {}).get(t, {}).items() if c is not None]
        if paired:
            out += [f"Against the uncalibrated model on the same test trials, paired over the {paired[0][1]['n_subjects']} "
                    "held-out subjects (each averaged over draws): difference in points [95 % bootstrap CI], "
                    "sign-flip p:", "",
                    markdown_table(["method @ K", "difference", "subjects better / worse"],
                                   [[key.replace("@", " @ K = "), fmt_delta(c), f"{c['wins']} / {c['losses']}"]
                                    for key, c in paired]), ""]
        by_method = info.get("per_subject_gain_by_method") or {DEFAULT_METHOD: info["per_subject_gain"]}
        gains = {m: v[t] for m, v in by_method.items() if v.get(t)}
        g = info["subject_gain"].get(t) or {}
        if gains:
            first = gains.get(DEFAULT_METHOD) or next(iter(gains.values()))
            rows = [[str(s), *[f"{100 * gains[m][s]:+.1f}" if s in gains[m] else "–" for m in gains],
                     f"{g[s]:+.2f}" if s in g else "–"]
                    for s, _ in sorted(first.items(), key=lambda kv: g.get(kv[0], 0.0))]
            out += [f"Per-subject gain at K = {kref} over the uncalibrated model (points), per method, with the "
                    "generator's mean gain of the task's effects (negative: reversed responder):",
                    "", markdown_table(["subject", *gains, "generator gain"], rows), ""]
    return out


def calibrate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    *,
    subject: int,
    trials: Sequence[int],
    method: str = DEFAULT_METHOD,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[Path, dict]:
    """Calibrate a run's model to one listener from some of their rated trials.

    Parameters
    ----------
    run_dir : path
        A trained run folder (``model.pt``, ``config.yaml``).
    data_dir : path
        DEAP-format data holding the listener (subject ``subject``) and their ratings.
    subject : int
        DEAP id of the listener.
    trials : sequence of int
        1-based trial (video) ids of the rated calibration tracks.
    method : {"recentre", "bias", "threshold", "heads", "pooled"}
    out : path, optional
        Default ``RUN_DIR/calibrations/sNN-<method>-k<K>.json``.

    Returns
    -------
    path : Path
        The calibration file (it points to the run's ``model.pt``; ``predict``,
        ``stream`` and ``serve`` take it like a run).
    info : dict
        ``k``, ``seconds``, ``in_training`` (whether the listener was a training subject
        of the base model: then the calibration measures nothing new).
    """
    t0 = time.perf_counter()
    run = RunFolder(Path(run_dir)).require()
    if method == "none":
        raise DataError("method", "'none' is no calibration; choose recentre, bias or heads")
    if not run.model.is_file():
        raise DataError(run.root, f"no {run.model.name}: only a trained deep model can be calibrated")
    cfg = RunConfig.from_yaml(run.config)
    base, info = load_checkpoint(run.model)
    extra = info.get("extra") or {}
    data = RunData.from_splits(cfg, run.splits, data_dir, cache_dir=cache_dir)
    prepared = data.prepared
    if int(subject) not in prepared.subjects:
        raise DataError("subject", f"{subject} is not in {data_dir} (subjects {list(prepared.subjects)})")
    meta = prepared.meta(cfg.data.eval_window())
    rows = meta.index[meta.subject_of(meta.index) == int(subject)]
    trial = meta.trial_of(rows)
    wanted = sorted({int(t) for t in trials})
    unknown = [t for t in wanted if t not in set(trial.tolist())]
    if not wanted or unknown:
        raise DataError("trials", f"{unknown or 'none given'}: not trials of subject {subject} "
                                  f"({sorted(set(trial.tolist()))[:8]} ...)")
    rows = rows[np.isin(trial, wanted)]
    base_fold = data.fold(int(extra.get("fold", 0)))
    ds = prepared.dataset(rows, modalities=cfg.data.modalities, tasks=cfg.data.task_set,
                          norm=data.norm_stats(base_fold))
    z = predict_embeddings(base, batches(ds, 256)).double().numpy()
    spec = data.tasks
    pop = extra.get("embedding_mean")
    pop = np.asarray(pop, dtype=np.float64) if pop is not None else z.mean(axis=0)
    cal = fit_calibration(
        method, base_heads(base), pop, z=z, y={t: np.asarray(ds.targets(t)) for t in spec.names},
        tracks=meta.trial_of(rows), multilabel=spec.kind == "multilabel", listener=f"s{int(subject):02d}",
        pool=stored_pool(base, extra) if method == "pooled" else None,
    )
    path = Path(out) if out is not None else run.root / "calibrations" / f"s{int(subject):02d}-{method}-k{cal.k}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_calibration(path, cal, base=run.model)
    trained_on = int(subject) in base_fold.train_subjects
    return path, {"k": cal.k, "seconds": time.perf_counter() - t0, "in_training": trained_on,
                  "n_windows": int(len(rows))}


__all__ = ["KS", "calibrate_run", "calibrate_fold", "gap_closed", "per_subject_gain", "run_calibration_bench", "summarise"]
