"""``symaffect demo``: does the paper's model learn what the data hold? End to end, on a
fresh machine, in a few CPU minutes.

1. Writes a synthetic data set in DEAP's exact format (:data:`DEMO_SUBJECTS` x
   :data:`DEMO_TRIALS` x :data:`DEMO_SECONDS` s, seed 0; :mod:`symaffect.data.synth`,
   whose built-in label effects are documented in ``docs/synthetic.md``) into
   ``OUT/data`` (reused when it is already there with the same parameters).
2. Trains the paper's model (``symaffect``) and XGBoost on three task sets
   (:data:`DEMO_TASK_SETS`): single-task binary arousal and binary valence (the paper's
   Table 2) and the multi-task 9-class valence / arousal / liking (Table 3), under a
   subject-wise protocol (:data:`DEMO_PROTOCOL`; no subject in two of train / val /
   test), with the ``quick`` preset limited to the CPU budget of :data:`DEMO_EPOCHS`
   epochs of :data:`DEMO_WINDOWS_PER_EPOCH` training windows.
3. Judges every task honestly (:func:`assess`):

   * **fitted** (deep models): the final epoch's *training* accuracy (from the run's
     CSV logs) is above the training-set majority rate by :data:`FIT_MARGIN`, and the
     task's training loss fell (last epoch below first);
   * **generalised**: the test accuracy on the held-out subjects is above the majority
     baseline (the most frequent *training* class, scored on the same test windows);
   * **beyond noise**: the per-subject accuracy difference (model - majority) has a
     95 % bootstrap interval above 0 *and* a sign-flip test p-value below
     :data:`ALPHA` (:func:`symaffect.eval.metrics.paired_comparison`; the test subject
     is the unit sampled, so with few test subjects this cannot be established).

4. Prints the results (every number beside its majority baseline, under its protocol)
   and the verdicts, and writes ``OUT/report.html`` (self-contained, with every run's
   learning curves), ``OUT/report.md`` and ``OUT/demo.json`` (machine-readable; schema
   in :func:`run_demo`).

Everything is written under ``OUT`` (default ``./symaffect-demo``): ``data/``,
``cache/`` (prepared windows), ``runs/`` (one run folder per model and task set),
``figures/``, ``demo.json``, ``report.md``, ``report.html``. Running it again reuses
finished runs.

The budget constants below (data size, epochs, windows per epoch, protocol) are read
when :func:`run_demo` is called, so a test or an experiment may change them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from symaffect._io import read_json, read_npz, write_json
from symaffect.data.synth import generate
from symaffect.errors import DataError
from symaffect.eval import figures
from symaffect.eval.metrics import (
    EXACT_SIGN_FLIP_MAX,
    PERMUTATIONS,
    mean_by_subject,
    paired_comparison,
)
from symaffect.eval.report import Report
from symaffect.eval.suites import (
    Entry,
    SuiteSpec,
    collect,
    curve_records,
    make_config,
    provenance_para,
    suite_provenance,
    task_tables,
    tiny_model_kwargs,
    train_entries,
)
from symaffect.run_folder import RunFolder
from symaffect.train.curves import read_epoch_metrics

log = logging.getLogger(__name__)

# --- the demo's budget (tune here) -------------------------------------------------------
DEMO_SUBJECTS: int = 14
"""Synthetic subjects. With :data:`DEMO_TEST_RATIO` 0.4: 6 test subjects, and the 8 others
split 6 training : 2 validation (6 is the fewest test subjects for which an exact
sign-flip test can reach p < 0.05)."""

DEMO_TRIALS: int = 20
"""Trials per subject (each gives 11 training windows of 10 s at the quick preset's 5-s
stride, and 6 non-overlapping test windows)."""

DEMO_SECONDS: float = 63.0
"""Trial length including DEAP's 3-s pre-trial baseline (dropped)."""

DEMO_EPOCHS: int = 10
"""Maximum training epochs of the deep models (early stopping may end a run sooner)."""

DEMO_WINDOWS_PER_EPOCH: int | None = 1024
"""Training windows drawn afresh each epoch (None: all of them)."""

DEMO_PATIENCE: int = 3
"""Early-stopping patience in epochs on the validation loss of the first task (the quick
preset's). The kept checkpoint is the epoch of lowest validation loss; with one
validation subject that loss is noisy, and the demo says which epoch was kept."""

DEMO_VAL_RATIO: float = 0.25
"""Share of the non-test subjects held out for validation (early stopping; 2 of 8 here)."""

DEMO_PROTOCOL: str = "subject_holdout"
"""``subject_holdout`` (one split) or ``subject_kfold`` (:data:`DEMO_N_SPLITS` folds,
every subject tested once; k times the training time)."""

DEMO_TEST_RATIO: float = 0.4
"""Test share of the subjects under ``subject_holdout`` (the paper's 6:4 split)."""

DEMO_N_SPLITS: int = 4
"""Folds under ``subject_kfold``."""

DEMO_TASK_SETS: tuple[str, ...] = ("binary_arousal", "binary_valence", "multitask9")
"""Table 2's single-task binary arousal and valence, then Table 3's 9-class multi-task."""

DEMO_MODELS: tuple[str, ...] = ("symaffect", "xgboost")
"""The paper's model and the tree-ensemble baseline on per-window spectral features."""

FIT_MARGIN: float = 0.05
"""Points (as a fraction) by which the final-epoch training accuracy must exceed the
training-set majority rate for a model to count as having fitted its training data."""

ALPHA: float = 0.05
"""Significance level of the sign-flip test of model vs majority over test subjects."""

TINY_CHANGES: dict[str, Any] = {
    "optim.max_epochs": 2,
    "optim.batch_size": 16,
    "trainer.max_train_windows_per_epoch": 64,
    "data.window.window_seconds": 2.0,
    "data.window.stride_seconds": 1.0,
}
"""``tiny=True`` (tests): two epochs of 64 windows, 2-s windows, tiny models."""

# -----------------------------------------------------------------------------------------

TASK_SET_TEXT: dict[str, str] = {
    "binary_arousal": "binary arousal (high = rating > 5), single-task",
    "binary_valence": "binary valence (high = rating > 5), single-task",
    "multitask9": "9-class ratings 1-9, multi-task valence / arousal / liking",
}


def demo_changes(*, tiny: bool = False, window_seconds: float | None = None) -> dict[str, Any]:
    """Config changes on top of the ``quick`` preset: the budget and the protocol.

    Reads the module's budget constants at call time.
    """
    changes: dict[str, Any] = {"protocol.n_splits": DEMO_N_SPLITS} if DEMO_PROTOCOL == "subject_kfold" else {}
    if tiny:
        changes.update(TINY_CHANGES)
    else:
        changes.update({"optim.max_epochs": DEMO_EPOCHS, "optim.patience": DEMO_PATIENCE,
                        "trainer.max_train_windows_per_epoch": DEMO_WINDOWS_PER_EPOCH,
                        "protocol.val_ratio": DEMO_VAL_RATIO})
    if window_seconds is not None:
        changes["data.window.window_seconds"] = float(window_seconds)
    return changes


def budget() -> dict[str, Any]:
    """The budget constants as they are now (written into ``demo.json``)."""
    return {
        "subjects": DEMO_SUBJECTS, "trials": DEMO_TRIALS, "seconds": DEMO_SECONDS,
        "epochs": DEMO_EPOCHS, "windows_per_epoch": DEMO_WINDOWS_PER_EPOCH, "patience": DEMO_PATIENCE,
        "val_ratio": DEMO_VAL_RATIO, "protocol": DEMO_PROTOCOL, "test_ratio": DEMO_TEST_RATIO, "n_splits": DEMO_N_SPLITS,
        "task_sets": list(DEMO_TASK_SETS), "fit_margin": FIT_MARGIN, "alpha": ALPHA,
    }


def _ensure_data(folder: Path, *, n_subjects: int, n_trials: int, seconds: float, seed: int) -> tuple[Path, bool]:
    """Generate the synthetic set unless ``folder`` already holds the same one."""

    meta = folder / "synth_meta.json"
    if meta.is_file():
        try:
            m = read_json(meta)
            same = (m.get("n_subjects"), m.get("n_trials"), m.get("seed")) == (n_subjects, n_trials, seed) and abs(
                float(m.get("seconds", -1)) - seconds) < 1e-9
        except (ValueError, TypeError):  # DataError (unreadable, not JSON) or odd values: written again
            same = False
        if same:
            return folder, False
    generate(folder, n_subjects=n_subjects, n_trials=n_trials, seconds=seconds, seed=seed)
    return folder, True


def build_spec(models: Sequence[str], task_sets: Sequence[str], *, seed: int, changes: Mapping[str, Any],
               model_kwargs: Mapping[str, Mapping] | None = None):
    """The demo's runs as a :class:`~symaffect.eval.suites.SuiteSpec`: one entry (row)
    per task set x model, labelled with the model name."""

    entries = tuple(
        Entry(m, (make_config(m, preset_name="quick", task_set=ts, protocol=DEMO_PROTOCOL,
                              test_ratio=DEMO_TEST_RATIO, seeds=(seed,), split_seed=seed,
                              changes=changes, model_kwargs=model_kwargs),))
        for ts in task_sets
        for m in models
    )
    return SuiteSpec("demo", "Demo", "the paper's model beside XGBoost and the majority baseline", entries)


def run_demo(
    out: str | Path = "symaffect-demo",
    *,
    n_subjects: int | None = None,
    n_trials: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    models: Sequence[str] | None = None,
    task_sets: Sequence[str] | None = None,
    tiny: bool = False,
    window_seconds: float | None = None,
    progress: bool = True,
    console: Any | None = None,
) -> dict:
    """Run the demo (module docstring) and return what ``OUT/demo.json`` holds.

    Parameters
    ----------
    out : path
        Output folder (created).
    n_subjects, n_trials, seconds : int, int, float, optional
        The synthetic data set (``seconds`` includes the 3-s baseline); default
        :data:`DEMO_SUBJECTS`, :data:`DEMO_TRIALS`, :data:`DEMO_SECONDS`.
    seed : int
        Seed of the data, the split and training.
    models : sequence of str, optional
        Default :data:`DEMO_MODELS`.
    task_sets : sequence of str, optional
        Default :data:`DEMO_TASK_SETS`.
    tiny : bool
        Tiny models, two short epochs, 2-s windows (for tests; the numbers mean nothing).
    window_seconds : float, optional
        Override the window length.
    progress : bool
        Lightning progress bars.
    console : rich.console.Console, optional
        Where to print progress lines, the results and the verdicts (None: nothing).

    Returns
    -------
    dict
        ``demo.json``: ``format`` ("symaffect-demo"), ``version`` (2), ``data``,
        ``budget``, ``changes``, ``models``, ``task_sets``, ``tiny``, ``protocol`` (the
        protocol's JSON), ``protocol_name``, ``protocol_text``, ``splits`` (subjects of
        every fold), ``n_test_subjects``, ``n_test_windows``, ``results``
        (``{model: {task_set: {task: record}}}``, a record as :func:`assess`),
        ``summary`` (sentences), ``rows`` / ``tables`` (as the suites write them),
        ``figures`` and ``timings``.
    """

    out = Path(out).resolve()
    models = list(models or DEMO_MODELS)
    task_sets = list(task_sets or DEMO_TASK_SETS)
    n_subjects = DEMO_SUBJECTS if n_subjects is None else int(n_subjects)
    n_trials = DEMO_TRIALS if n_trials is None else int(n_trials)
    seconds = DEMO_SECONDS if seconds is None else float(seconds)
    say = (lambda msg: console.print(msg, highlight=False)) if console is not None else (lambda msg: None)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    say(f"[bold]symaffect demo[/] → everything goes to {out}")
    say(f"[bold][1/3][/] synthetic DEAP-format data: {n_subjects} subjects x {n_trials} trials x {seconds:g} s "
        f"(seed {seed})")
    data, made = _ensure_data(out / "data", n_subjects=n_subjects, n_trials=n_trials, seconds=seconds, seed=seed)
    timings["data"] = time.perf_counter() - t0
    say(f"      {'written' if made else 'already there, reused'}: {data} ({timings['data']:.1f} s)")

    changes = demo_changes(tiny=tiny, window_seconds=window_seconds)
    mk = {m: tiny_model_kwargs(m) for m in models} if tiny else None
    spec = build_spec(models, task_sets, seed=seed, changes=changes, model_kwargs=mk)
    run_times: dict[str, float] = {}

    def on_run(i: int, n: int, label: str, rdir: Path, skipped: bool) -> None:
        ts = spec.entries[i].task_set
        run_times[f"{label} {ts}"] = time.perf_counter()
        say(f"[bold][2/3][/] run {i + 1}/{n}: {label} on {ts} "
            f"({'finished earlier, reused' if skipped else 'training + testing'}; {rdir.name})")

    t1 = time.perf_counter()
    label_runs = train_entries(spec, data, out, progress=progress, cache_dir=out / "cache", on_run=on_run)
    ends = sorted(run_times.items(), key=lambda kv: kv[1]) + [("_end", time.perf_counter())]
    for (label, start), (_, end) in zip(ends, ends[1:]):
        timings[f"run {label}"] = end - start
    timings["training total"] = time.perf_counter() - t1

    say("[bold][3/3][/] verdicts and report")
    result = collect(label_runs)
    obj = _write_outputs(result, out, models=models, task_sets=task_sets, changes=changes, tiny=tiny, seed=seed,
                         data_params={"n_subjects": n_subjects, "n_trials": n_trials, "seconds": seconds,
                                      "seed": seed, "folder": str(data)},
                         timings=timings, t0=t0)
    if console is not None:
        console.print(demo_table(obj))
        for line in obj["summary"]:
            console.print(f"• {line}", highlight=False, markup=False)
        console.print(f"report: {out / 'report.html'} (and report.md, demo.json) · runs: {out / 'runs'} · "
                      f"total {obj['timings']['total']:.0f} s", highlight=False)
    return obj


# --- verdicts ---------------------------------------------------------------------------
def fit_check(fdir: Path, task: str, train_majority: float | None, *, margin: float = FIT_MARGIN) -> dict:
    """Whether one fold/seed fitted its training data on ``task``, from its CSV logs.

    Parameters
    ----------
    fdir : Path
        The fold folder (``logs/version_N/metrics.csv``).
    task : str
    train_majority : float or None
        Share of the training windows in their most frequent class.
    margin : float

    Returns
    -------
    dict
        ``fitted`` (bool, or None when the logs or the majority rate are missing),
        ``epochs`` (logged), ``train_acc_first`` / ``train_acc_final``,
        ``train_loss_first`` / ``train_loss_final`` (the task's unweighted loss),
        ``train_majority_rate``, ``margin``, ``reasons`` (why not, in words).
    """

    out: dict[str, Any] = {"fitted": None, "epochs": 0, "train_majority_rate": train_majority, "margin": margin,
                           "reasons": []}
    try:
        rows = read_epoch_metrics(fdir)
    except (FileNotFoundError, ValueError) as e:
        out["reasons"].append(f"no training logs ({e})")
        return out
    acc = [r[f"train/{task}_acc"] for r in rows if f"train/{task}_acc" in r]
    loss = [r[f"train/{task}_loss"] for r in rows if f"train/{task}_loss" in r]
    out["epochs"] = len(rows)
    if not acc or not loss:
        out["reasons"].append(f"train/{task}_acc or train/{task}_loss not logged")
        return out
    out.update(train_acc_first=acc[0], train_acc_final=acc[-1], train_loss_first=loss[0], train_loss_final=loss[-1])
    if train_majority is None:
        out["reasons"].append("training-set majority rate unknown")
        return out
    above = acc[-1] > train_majority + margin
    falling = len(loss) >= 2 and loss[-1] < loss[0]
    if not above:
        out["reasons"].append(f"final-epoch training accuracy {100 * acc[-1]:.1f} % is not above the training-set "
                              f"majority rate {100 * train_majority:.1f} % by {100 * margin:.0f} points")
    if len(loss) < 2:
        out["reasons"].append("one epoch only: no learning curve to judge")
    elif not falling:
        out["reasons"].append(f"training loss did not fall ({loss[0]:.3f} at the first epoch, "
                              f"{loss[-1]:.3f} at the last)")
    out["fitted"] = bool(above and falling)
    return out


def _subject_comparison(run_dirs: Sequence[Path], task: str, seed: int) -> dict:
    """Per-subject accuracy of the model vs the majority baseline over the test windows
    of every fold/seed (:func:`~symaffect.eval.metrics.paired_comparison`); used when
    :func:`~symaffect.eval.suites.collect` gives no ``vs_majority``."""

    subj, right_m, right_b = [], [], []
    for rdir in run_dirs:
        folder = RunFolder(Path(rdir))
        for run in folder.read_metrics()["runs"]:
            path = folder.predictions_path(run["fold"], run["seed"])
            z = read_npz(path)
            if not {"subject", f"true_{task}", f"pred_{task}"} <= set(z):
                raise DataError(path, f"has no predictions of task {task!r}")
            true, pred, s = z[f"true_{task}"], z[f"pred_{task}"], z["subject"]
            maj = run["tasks"][task]["majority"]
            const = np.broadcast_to(np.asarray(maj["vector"] if "vector" in maj else maj["class"]), true.shape)
            right = lambda p: (p == true) if true.ndim == 1 else (p == true).all(axis=1)  # noqa: E731
            subj.append(s)
            right_m.append(right(pred))
            right_b.append(right(const))
    s = np.concatenate(subj)
    ids, acc_m = mean_by_subject(s, np.concatenate(right_m).astype(np.float64))
    _, acc_b = mean_by_subject(s, np.concatenate(right_b).astype(np.float64))
    return {"metric": "acc", **paired_comparison(acc_m, acc_b, seed=seed)}


def min_p_value(n_subjects: int) -> float:
    """The smallest p-value the sign-flip test can give with ``n_subjects`` subjects."""

    return 2.0 / 2**n_subjects if n_subjects <= EXACT_SIGN_FLIP_MAX else 1.0 / (1 + PERMUTATIONS)


def assess(row: Mapping, out: Path, *, seed: int = 0) -> dict[str, dict]:
    """Per-task record of one demo row (a model on a task set): numbers and verdicts.

    Parameters
    ----------
    row : dict
        A row of :func:`symaffect.eval.suites.collect`.
    out : Path
        The demo folder (paths in the record are relative to it).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict of task to dict
        ``model``, ``task_set``, ``task``, ``protocol`` (name), ``protocol_text``,
        ``n_runs``, ``n_test_subjects``, ``n_test_windows``, ``model_acc``,
        ``majority_acc``, ``model_macro_f1``, ``majority_macro_f1``, for 9-class tasks
        ``model_mae`` / ``majority_mae`` / ``model_within_one`` / ``majority_within_one``;
        ``fitted`` (bool, or None for a model without epochs), ``fit`` (per run:
        :func:`fit_check` plus ``fold``, ``seed``, ``best_epoch`` — the epoch of the
        checkpoint that was tested — and ``epochs_trained``), ``generalised`` (bool),
        ``beyond_noise`` (bool),
        ``comparison`` (:func:`~symaffect.eval.metrics.paired_comparison` of per-subject
        accuracies, plus ``min_p_value``), ``noise_verdict`` (``"yes"``, ``"no"``, or
        ``"cannot tell"`` when the test subjects are too few for p < :data:`ALPHA`),
        ``learning_curves`` (PNG paths relative to ``out``; runs whose figure is
        missing are left out, :func:`~symaffect.eval.suites.curve_records`).

    Raises
    ------
    DataError
        A run's ``metrics.json`` is missing or not valid JSON.
    """

    dirs = [Path(d) for d in row["runs"]]
    metrics = [RunFolder(d).read_metrics() for d in dirs]
    runs = [(d, r) for d, m in zip(dirs, metrics) for r in m["runs"]]
    curves = curve_records(dirs, metrics)
    test_subjects = sorted({s for _, r in runs for s in r["test_subjects"]})
    records: dict[str, dict] = {}
    for task, tr in row["tasks"].items():
        key = "subset_acc" if tr["kind"] == "multilabel" else "acc"
        mean = lambda src, k: tr.get(src, {}).get(k, {}).get("mean")  # noqa: E731
        rec: dict[str, Any] = {
            "model": row["model"],
            "task_set": row["task_set"],
            "task": task,
            "protocol": row["protocol"]["name"],
            "protocol_text": row["protocol_text"],
            "n_runs": row["n_runs"],
            "n_test_subjects": len(test_subjects),
            "n_test_windows": tr["n_test_windows"],
            "model_acc": mean("model", key),
            "majority_acc": mean("majority", key),
            "model_macro_f1": mean("model", "macro_f1"),
            "majority_macro_f1": mean("majority", "macro_f1"),
        }
        if tr.get("ordinal"):
            rec.update(model_mae=mean("model", "mae"), majority_mae=mean("majority", "mae"),
                       model_within_one=mean("model", "within_one"),
                       majority_within_one=mean("majority", "within_one"))
        deep = all(r.get("epochs_trained") is not None for _, r in runs)
        if deep:
            fits = [{"fold": r["fold"], "seed": r["seed"], "best_epoch": r.get("best_epoch"),
                     "epochs_trained": r.get("epochs_trained"),
                     **fit_check(RunFolder(d).fold_dir(r["fold"], r["seed"]), task,
                                 r.get("train_majority_rate", {}).get(task))} for d, r in runs]
            flags = [f["fitted"] for f in fits]
            rec["fitted"] = None if any(f is None for f in flags) else all(flags)
            rec["fit"] = fits
        else:
            rec["fitted"] = None
            rec["fit"] = [{"reasons": ["not trained in epochs: no learning curve"]}]
        rec["generalised"] = bool(rec["model_acc"] > rec["majority_acc"] + 1e-12)
        cmp = dict(tr.get("vs_majority") or _subject_comparison(dirs, task, seed))
        cmp["min_p_value"] = min_p_value(cmp["n_subjects"])
        rec["comparison"] = cmp
        rec["beyond_noise"] = bool(cmp["ci_low"] > 0 and cmp["p_value"] < ALPHA)
        rec["noise_verdict"] = ("yes" if rec["beyond_noise"] else
                                "cannot tell" if cmp["min_p_value"] >= ALPHA else "no")
        rec["learning_curves"] = [Path(os.path.relpath(c["path"], out)).as_posix() for c in curves
                                  if c["path"] is not None]
        records[task] = rec
    return records


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def summary_lines(results: Mapping[str, Mapping[str, Mapping[str, dict]]]) -> list[str]:
    """One plain sentence per model and task: did it fit its training data, did it
    generalise to the held-out subjects, and is the margin beyond noise.

    Every number is given beside its majority baseline and under its protocol.
    """
    lines = []
    for model, by_ts in results.items():
        for ts, by_task in by_ts.items():
            for task, r in by_task.items():
                scheme = "binary" if ts.startswith("binary") else "9-class" if ts == "multitask9" else ts
                proto = " ".join(r["protocol_text"].split(" · ")[:2])
                head = f"{model} · {task}, {scheme} [{proto}, {r['n_test_subjects']} test subjects]: "
                lines.append(head + "; ".join([_fit_text(r), _generalise_text(r), _noise_text(r)]) + ".")
    return lines


def _fit_text(r: Mapping) -> str:
    if r["fitted"] is None:
        return "fit not judged (" + "; ".join(sorted({w for f in r["fit"] for w in f["reasons"]})) + ")"
    if r["fitted"]:
        f = min(r["fit"], key=lambda f: f["train_acc_final"] - f["train_majority_rate"])  # the weakest run
        return (f"fitted its training data — final training acc {_pct(f['train_acc_final'])} vs training "
                f"majority {_pct(f['train_majority_rate'])}, loss {f['train_loss_first']:.3f} → "
                f"{f['train_loss_final']:.3f} in {f['epochs']} epochs")
    return "did NOT fit its training data — " + "; ".join(sorted({w for f in r["fit"] for w in f["reasons"]}))


def _generalise_text(r: Mapping) -> str:
    txt = f"test acc {_pct(r['model_acc'])} vs majority {_pct(r['majority_acc'])}"
    kept = sorted({f["best_epoch"] for f in r["fit"] if f.get("best_epoch") is not None})
    if kept:
        txt += f" (tested checkpoint: epoch {', '.join(map(str, kept))}, lowest validation loss)"
    if "model_mae" in r:
        txt += (f", MAE {r['model_mae']:.2f} vs {r['majority_mae']:.2f}, ±1-class acc "
                f"{_pct(r['model_within_one'])} vs {_pct(r['majority_within_one'])}")
    return ("generalised to the held-out subjects — " if r["generalised"]
            else "did NOT generalise to the held-out subjects — ") + txt


def _noise_text(r: Mapping) -> str:
    c = r["comparison"]
    stats = (f"Δ {100 * c['delta']:+.1f} points per subject [95 % CI {100 * c['ci_low']:+.1f}, "
             f"{100 * c['ci_high']:+.1f}], sign-flip p = {c['p_value']:.2g}")
    if r["beyond_noise"]:
        return f"beyond noise: yes — {stats}"
    if c["min_p_value"] >= ALPHA:
        return (f"beyond noise: cannot tell — {stats}; with {c['n_subjects']} test subjects the smallest "
                f"possible p is {c['min_p_value']:.2g}")
    return f"beyond noise: no — {stats}"


# --- tables and report ------------------------------------------------------------------
def _flag(v: bool | None) -> str:
    return "–" if v is None else ("yes" if v else "NO")


def _delta(r: Mapping) -> str:
    c = r["comparison"]
    return (f"{100 * c['delta']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] "
            f"p={c['p_value']:.2g}")


def demo_rows(obj: Mapping) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per (task set, task) and model, the numbers with the majority
    baseline beside them, then the verdicts."""
    header = ["task", "model", "Acc % (maj)", "MAE (maj)", "±1 acc % (maj)", "Δ acc vs maj [95 % CI], p",
              "fitted", "generalised", "beyond noise"]
    body = []
    for ts in obj["task_sets"]:
        tasks: list[str] = []
        for m in obj["models"]:
            tasks += [t for t in obj["results"].get(m, {}).get(ts, {}) if t not in tasks]
        for t in tasks:
            for m in obj["models"]:
                r = obj["results"].get(m, {}).get(ts, {}).get(t)
                if r is None:
                    continue
                label = f"{t} ({'binary' if ts.startswith('binary') else '9-class' if ts == 'multitask9' else ts})"
                mae = w1 = "–"
                if "model_mae" in r:
                    mae = f"{r['model_mae']:.2f} ({r['majority_mae']:.2f})"
                    w1 = f"{100 * r['model_within_one']:.1f} ({100 * r['majority_within_one']:.1f})"
                acc = f"{100 * r['model_acc']:.1f} ({100 * r['majority_acc']:.1f})"
                body.append([label, m, acc, mae, w1, _delta(r), _flag(r["fitted"]), _flag(r["generalised"]),
                             r["noise_verdict"]])
    return header, body


def demo_table(obj: Mapping):
    """A :class:`rich.table.Table` of the demo's results and verdicts."""

    header, body = demo_rows(obj)
    table = Table(title=f"symaffect demo · synthetic data · protocol {obj['protocol_text']} · "
                        f"{obj['n_test_subjects']} test subjects, {obj['n_test_windows']} test windows",
                  caption="majority = most frequent training class, scored on the same test windows; "
                          "Δ = model - majority accuracy in points, mean over test subjects")
    for h in header:
        left = h in ("task", "model")
        table.add_column(h, justify="left" if left else "right", no_wrap=left)
    prev = None
    for row in body:
        if prev is not None and row[0] != prev:
            table.add_section()
        prev = row[0]
        table.add_row(*map(Text, row))  # plain text: "[lo, hi]" cells are not markup
    return table


def _write_outputs(result: dict, out: Path, *, models, task_sets, changes, tiny, seed, data_params,
                   timings, t0) -> dict:

    t_fig = time.perf_counter()
    rows = result["rows"]
    r0 = rows[0]
    m0 = RunFolder(Path(r0["runs"][0])).read_metrics()
    splits = [{"fold": r["fold"], "train_subjects": r["train_subjects"], "val_subjects": r["val_subjects"],
               "test_subjects": r["test_subjects"], "n_train_windows": r["n_train_windows"],
               "n_test_windows": r["n_test_windows"]} for r in m0["runs"] if r["seed"] == m0["seeds"][0]]
    results: dict[str, dict[str, dict]] = {}
    for row in rows:
        results.setdefault(row["model"], {})[row["task_set"]] = assess(row, out, seed=seed)
    fig_dir = out / "figures"
    bars = figures.suite_bars(result, fig_dir / "demo_bars.png",
                              title=f"symaffect demo (synthetic data): accuracy, macro-F1, macro-precision per "
                                    f"model; protocol {r0['protocol_text']}")
    confs = {}
    n_test = len({s for sp in splits for s in sp["test_subjects"]})
    for r in rows:
        key = f"{r['label']}, {r['task_set']}"
        p = figures.confusion_grid(r, fig_dir / f"demo_confusion_{r['label']}_{r['task_set']}.png",
                                   title=f"{key} · test windows of {n_test} unseen subjects · rows = true class")
        if p is not None:
            confs[key] = str(p)
    curves = {m: {ts: sorted({p for rec in by_task.values() for p in rec["learning_curves"]})
                  for ts, by_task in by_ts.items()} for m, by_ts in results.items()}
    obj: dict[str, Any] = {
        "format": "symaffect-demo",
        "version": 2,
        "data": data_params,
        "budget": budget(),
        "preset": "quick",
        "changes": changes,
        "models": models,
        "task_sets": task_sets,
        "tiny": tiny,
        "protocol": r0["protocol"],
        "protocol_name": r0["protocol"]["name"],
        "protocol_text": r0["protocol_text"],
        "splits": splits,
        "n_test_subjects": n_test,
        "n_test_windows": int(sum(sp["n_test_windows"] for sp in splits)),
        "n_train_windows": int(sum(sp["n_train_windows"] for sp in splits)),
        "results": results,
        "summary": summary_lines(results),
        **result,
        "tables": task_tables(result, "Demo"),
        "figures": {"bars": str(bars), "confusion": confs, "learning_curves": curves},
    }
    timings["figures"] = time.perf_counter() - t_fig
    timings["total"] = time.perf_counter() - t0
    obj["timings"] = {k: round(v, 2) for k, v in timings.items()}
    obj["provenance"] = suite_provenance([(r["label"], r["runs"]) for r in obj["rows"]])
    _report(obj, out).write(out / "report.md", out / "report.html")
    write_json(out / "demo.json", obj)
    return obj


def _report(obj: Mapping, out: Path):

    d = obj["data"]
    w = obj["rows"][0]["windows"]
    b = obj["budget"]
    ch = obj["changes"]
    rep = Report("symaffect demo: does the paper's model learn what synthetic DEAP-format data hold?")
    provenance_para(rep, obj.get("provenance"))
    rep.note(
        "**What these numbers are.** They come from *synthetic* data written by symaffect itself "
        f"({d['n_subjects']} subjects x {d['n_trials']} trials, seed {d['seed']}), not from DEAP. The generator "
        "builds in small, known label effects (docs/synthetic.md; binary arousal is the most learnable), spread "
        "over EEG, peripheral signals and EOG, with strong subject-to-subject differences. The models are tested "
        "on subjects they never saw, after a few CPU minutes of training. **The paper's 92-98 % accuracies are "
        "not expected here**: a simple feature classifier reaches about 62-66 % under leave-one-subject-out on "
        "16 such subjects. A model is only useful where it beats the majority baseline beside it."
    )
    if obj["tiny"]:
        rep.note("This run used tiny models, two short epochs and short windows (a smoke test): the numbers mean "
                 "nothing.")
    rep.heading("What was run", 2)
    sp = obj["splits"]
    split_txt = "; ".join(f"fold {s['fold']}: train {s['train_subjects']}, validation {s['val_subjects']}, "
                          f"test {s['test_subjects']}" for s in sp)
    rep.bullets([
        f"Data: `{d['folder']}` — {d['n_subjects']} synthetic subjects, {d['n_trials']} trials of "
        f"{d['seconds']:g} s each (3-s baseline dropped), DEAP's preprocessed format and channel layout.",
        "Tasks: " + "; ".join(TASK_SET_TEXT.get(ts, ts) for ts in obj["task_sets"]) + ".",
        f"Protocol: **{obj['protocol_text']}** — {split_txt}; no subject is in two of them.",
        f"Windows: {w['window_seconds']:g} s; training every {w['train_stride_seconds']:g} s "
        f"({obj['n_train_windows']} training windows); test windows non-overlapping "
        f"({obj['n_test_windows']} test windows).",
        f"Models: {', '.join(obj['models'])} (the paper's DTFE + cross-modal fusion model; XGBoost on per-window "
        "band powers and signal statistics), each beside the majority baseline.",
        f"Training: the `quick` preset limited to {ch.get('optim.max_epochs')} epoch(s) of at most "
        f"{ch.get('trainer.max_train_windows_per_epoch', 'all')} random training windows each, early stopping "
        f"after {ch.get('optim.patience', 3)} epochs without a lower validation loss of the first task (the "
        "checkpoint of the lowest one is tested), one seed.",
        f"Verdicts: *fitted* = final-epoch training accuracy above the training-set majority rate by "
        f"{100 * b['fit_margin']:.0f} points and the task's training loss lower at the last epoch than at the "
        "first; *generalised* = test accuracy above the majority baseline; *beyond noise* = the per-subject "
        f"accuracy difference has a 95 % bootstrap interval above 0 and a sign-flip p < {b['alpha']:g} (the "
        "test subject is the unit sampled).",
    ])
    rep.heading("Did it learn?", 2)
    rep.bullets(obj["summary"])
    rep.heading("Results", 2)
    header, body = demo_rows(obj)
    rep.table(header, body)
    rep.para(f"Protocol: {obj['protocol_text']}. Accuracy in % over the test windows of "
             f"{obj['n_test_subjects']} unseen subjects; the majority baseline predicts the most frequent "
             "*training* class for every test window. MAE in rating units (|predicted class - true class|) and "
             "±1-class accuracy for the 9-class ratings, majority baseline in brackets. Δ: model minus majority "
             "accuracy in points, averaged over test subjects, with its 95 % bootstrap interval over subjects "
             "and the sign-flip p-value.")
    rep.heading("How to read this", 2)
    rep.bullets([
        "A model that did not fit its training data has learned nothing to generalise: look at its learning "
        "curves below first (training accuracy against the dashed training-set majority line).",
        "Fitted but not generalised: what it learned is specific to the training subjects (the synthetic "
        "subjects differ strongly in their responses) or the budget is too small.",
        "Generalised but not beyond noise: the margin over the majority baseline is within what a handful of "
        "test subjects can show by chance. `symaffect bench table2 --folds 5` repeats splits and seeds.",
    ])
    rep.heading("Learning curves", 2)
    rep.para("Per run: training (solid) and validation (dotted) loss and accuracy per epoch, from the run's "
             "CSV logs; dashed: the training-set majority rate; dash-dot: the epoch of the kept checkpoint. "
             "XGBoost is not trained in epochs and has none.")
    n_curves = 0
    for m, by_ts in obj["figures"]["learning_curves"].items():
        for ts, paths in by_ts.items():
            for p in paths:
                rep.image(out / p, f"{m} · {TASK_SET_TEXT.get(ts, ts)} · {Path(p).parent.name}", base=out)
                n_curves += 1
    if not n_curves:
        rep.para("(no learning curves: no model of this demo is trained in epochs)")
    rep.heading("Figures", 2)
    rep.image(Path(obj["figures"]["bars"]), "Accuracy / macro-F1 / macro-precision per model and task; "
              "dashed line: majority baseline accuracy, dotted: its macro-F1", base=out)
    for label, p in obj["figures"]["confusion"].items():
        rep.image(Path(p), f"Confusion matrices of {label} (counts; colour = share of the true class)", base=out)
    rep.heading("Time", 2)
    rep.table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in obj.get("timings", {}).items()])
    rep.heading("Next", 2)
    rep.code(
        f"symaffect bench table2 --data {d['folder']} --out bench   # the paper's Table 2\n"
        f"symaffect bench table3 --data {d['folder']} --out bench   # Table 3, all baselines\n"
        f"symaffect audit --data {d['folder']} --out audit          # how leaky protocols inflate accuracy\n"
        f"symaffect train --data DEAP/data_preprocessed_python --out run --preset paper   # real DEAP"
    )
    return rep


__all__ = [
    "ALPHA",
    "DEMO_EPOCHS",
    "DEMO_MODELS",
    "DEMO_PATIENCE",
    "DEMO_PROTOCOL",
    "DEMO_SUBJECTS",
    "DEMO_TASK_SETS",
    "DEMO_TRIALS",
    "DEMO_VAL_RATIO",
    "DEMO_WINDOWS_PER_EPOCH",
    "FIT_MARGIN",
    "assess",
    "demo_table",
    "fit_check",
    "run_demo",
    "summary_lines",
]
