"""The paper's experiments (section 4) as suites of runs: ``symaffect bench SUITE``.

A suite is a list of *entries* (a row label, a model, a task set and the config changes
that define it). Every entry is trained with :func:`symaffect.train.run.train_run` into
run folders and the results are written as tables (Markdown, HTML, CSV, JSON) and
figures (confusion matrices, a Figure-4-style grouped bar chart).

=========  ===========================================================================
suite      what it runs (all subject-independent: no subject in two of train/val/test)
=========  ===========================================================================
table2     single-task: binary valence, binary arousal (high = rating > 5) and the
           5-output quadrant + Neutral branch (multi-label, SPEC section 1); the paper's
           model; 8:2 subjects; non-overlapping test windows
table3     multi-task 9-class valence / arousal / liking, 8:2 subjects; the paper's
           model and every baseline (registered deep baselines + XGBoost)
table4     as table3 at 7:3
table5     as table3 at 6:4
table6     ablations at 8:2: full model, without DTFE, without cross-modal fusion
table7     fixed (1/3 each) vs learnable task weights at 8:2
=========  ===========================================================================

Splits (``folds``, :func:`split_plan`; default 5):

* the 8:2 suites (table2, 3, 6, 7) use ``folds``-fold subject cross-validation
  (``subject_kfold``, one run folder holding every fold): with 5 folds each fold is an
  8:2 subject split and every subject is tested once per training seed;
* the 7:3 and 6:4 suites (table4, 5) repeat the subject-wise hold-out with split seeds
  ``0 .. folds-1`` (one run folder per split);
* ``folds=1`` is a single subject-wise hold-out at the suite's ratio; its tables say
  "single split, no spread".

The tables give the mean +- std over all folds x training seeds, the majority baseline
beside every number, and, per task, the difference from the majority baseline with a 95 %
bootstrap confidence interval and a paired p-value **over test subjects**
(:func:`subject_scores`, :func:`symaffect.eval.metrics.paired_comparison`); a second
table per task compares the suite's reference row (the paper's model) with every other
row, paired over the same test subjects (:func:`compare_rows`).

Output folder ``OUT``::

    OUT/runs/<model>-<task_set>-<protocol>-<hash>/   one train_run folder per (entry, split
                                          plan); shared by all suites written into the same
                                          OUT, so table6's full model reuses table3's run
    OUT/SUITE.md, SUITE.html, SUITE.csv, SUITE.json
    OUT/figures/SUITE_bars.png, SUITE_confusion_<label>.png

The reports also show every run's learning curves (``fold<k>-seed<s>/learning_curves.png``
of the run folders, written by :func:`~symaffect.train.run.train_run`; models not trained
in epochs, such as XGBoost, and runs from before the curves existed have none and are
listed as skipped).

Resuming: a run folder that already holds ``metrics.json`` for the same config is not
recomputed; an unfinished one resumes (see :func:`~symaffect.train.run.train_run`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symaffect._io import read_npz, write_json, write_text
from symaffect.errors import ConfigError, DataError
from symaffect.eval import figures
from symaffect.eval.metrics import (
    BOOTSTRAP_RESAMPLES,
    EXACT_SIGN_FLIP_MAX,
    PERMUTATIONS,
    aggregate_reports,
    mean_by_subject,
    paired_comparison,
    per_subject_accuracy,
)
from symaffect.eval.report import Report
from symaffect.eval.scoring import train_and_score
from symaffect.eval.tables import (
    METRIC_LABELS,
    TASK_SET_LABELS,
    cell,
    fmt_delta,
    table_metrics,
    task_groups,
    task_title,
)
from symaffect.models.registry import list_models, test_kwargs
from symaffect.provenance import provenance
from symaffect.run_folder import RunFolder
from symaffect.train.config import RunConfig, preset

log = logging.getLogger(__name__)

SUITE_FORMAT = "symaffect-suite"
SUITE_NAMES: tuple[str, ...] = ("table2", "table3", "table4", "table5", "table6", "table7")

DEEP_BASELINES: tuple[str, ...] = ("lstm", "bilstm", "gru", "mlp", "cnn1d", "cnn_lstm", "transformer")
"""Table 3's deep baselines, in the paper's order (those registered are used)."""



DEFAULT_FOLDS = 5
"""Default ``folds``: 5-fold subject cross-validation (8:2 suites), 5 repeated hold-outs (7:3, 6:4)."""

KFOLD_RATIO = 0.2
"""Suites at this test ratio (the paper's 8:2) use subject k-fold instead of repeated hold-outs."""

UNCERTAINTY_SEED = 0
"""Seed of every bootstrap and sign-flip test of a suite (the numbers are reproducible)."""

RATIO_LABELS = {0.2: "8:2", 0.3: "7:3", 0.4: "6:4"}

FEW_SUBJECTS = 10
"""Below this many test subjects the tables warn that the bootstrap interval is too narrow."""


@dataclass(frozen=True)
class Entry:
    """One row of a suite: a label and the configs of its run folders.

    Parameters
    ----------
    label : str
        Row label in the tables (e.g. ``"symaffect"``, ``"w/o DTFE"``).
    configs : tuple of RunConfig
        One config per run folder: a single ``subject_kfold`` config (every fold in one
        folder), or one ``subject_holdout`` config per repeated split (``protocol.seed``
        0 .. folds-1); see :func:`split_plan`.
    """

    label: str
    configs: tuple[RunConfig, ...]

    @property
    def model(self) -> str:
        return self.configs[0].model.name

    @property
    def task_set(self) -> str:
        return self.configs[0].data.task_set


@dataclass(frozen=True)
class SuiteSpec:
    """What a suite is: its name, the paper's table, a one-line description, entries.

    ``reference`` is the label of the row every other row is compared with (paired over
    test subjects, :func:`comparisons`); None: no model-vs-model comparison.
    """

    name: str
    paper_table: str
    description: str
    entries: tuple[Entry, ...] = field(default_factory=tuple)
    reference: str | None = None


def default_models() -> list[str]:
    """The paper's model, every registered deep baseline of :data:`DEEP_BASELINES`, XGBoost."""

    known = set(list_models())
    missing = [m for m in DEEP_BASELINES if m not in known]
    if missing:
        log.warning("baselines not registered (left out): %s", ", ".join(missing))
    return ["symaffect", *[m for m in DEEP_BASELINES if m in known], "xgboost"]


def tiny_model_kwargs(name: str) -> dict:
    """Very small build kwargs of a model (the registry's test kwargs), for tests and smoke runs."""
    if name == "xgboost":
        return {"n_estimators": 5, "max_depth": 2}

    kw = test_kwargs(name) or {}
    kw.pop("n_times", None)
    return kw


def config_hash(cfg: RunConfig) -> str:
    """Eight hex digits identifying a config (its YAML text)."""
    return hashlib.sha1(cfg.to_yaml().encode()).hexdigest()[:8]


def run_dir_name(cfg: RunConfig) -> str:
    """``<model>-<task_set>-<protocol>-<hash>``: the run folder of ``cfg`` inside ``OUT/runs``."""
    return f"{cfg.model.name}-{cfg.data.task_set}-{cfg.protocol.name}-{config_hash(cfg)}"


def make_config(
    model: str,
    *,
    preset_name: str = "quick",
    task_set: str = "multitask9",
    protocol: str = "subject_holdout",
    test_ratio: float = 0.2,
    split_seed: int = 0,
    seeds: Sequence[int] | None = None,
    changes: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Mapping] | None = None,
) -> RunConfig:
    """The config of one run: ``preset_name`` for ``model`` plus the suite's settings.

    Parameters
    ----------
    model : str
        Registered model name or ``"xgboost"``.
    preset_name : {"quick", "paper"}
    task_set, protocol, test_ratio, split_seed
        ``data.task_set``, ``protocol.name``, ``protocol.test_ratio``, ``protocol.seed``.
    seeds : sequence of int, optional
        Training seeds (default: the preset's).
    changes : mapping, optional
        Dotted config changes applied last (e.g. ``{"optim.max_epochs": 2}``).
    model_kwargs : mapping of model name to dict, optional
        Replaces ``model.kwargs`` of that model.
    """
    cfg = preset(preset_name, model=model)
    upd: dict[str, Any] = {
        "data.task_set": task_set,
        "protocol.name": protocol,
        "protocol.test_ratio": test_ratio,
        "protocol.seed": split_seed,
    }
    if seeds:
        upd["seeds"] = tuple(int(s) for s in seeds)
    if model_kwargs and model in model_kwargs:
        upd["model.kwargs"] = dict(model_kwargs[model])
    upd.update(changes or {})
    return cfg.replace(**upd)


def split_plan(test_ratio: float, folds: int) -> list[dict[str, Any]]:
    """How the runs of one suite entry split the subjects (see the module docstring).

    Parameters
    ----------
    test_ratio : float
        The suite's fraction of test subjects (0.2, 0.3 or 0.4 in the paper).
    folds : int
        1: one subject-wise hold-out; N >= 2: N-fold subject cross-validation when
        ``test_ratio`` is :data:`KFOLD_RATIO` (8:2; 5 folds keep that ratio exactly),
        otherwise N repeated hold-outs with split seeds 0 .. N-1.

    Returns
    -------
    list of dict
        One dict per run folder: ``protocol``, ``test_ratio``, ``split_seed`` and
        ``changes`` (extra dotted config changes) for :func:`make_config`.
    """
    if folds < 1:
        raise ConfigError(f"folds: must be >= 1, got {folds}")
    if folds == 1:
        return [{"protocol": "subject_holdout", "test_ratio": test_ratio, "split_seed": 0, "changes": {}}]
    if test_ratio == KFOLD_RATIO:
        return [{"protocol": "subject_kfold", "test_ratio": test_ratio, "split_seed": 0,
                 "changes": {"protocol.n_splits": folds}}]
    return [{"protocol": "subject_holdout", "test_ratio": test_ratio, "split_seed": k, "changes": {}}
            for k in range(folds)]


def split_text(test_ratio: float, folds: int) -> str:
    """The split plan of :func:`split_plan` in words (for a suite's description)."""
    r = RATIO_LABELS.get(test_ratio, f"{1 - test_ratio:g}:{test_ratio:g}")
    if folds == 1:
        return f"one subject-wise {r} hold-out (single split, no spread)"
    if test_ratio == KFOLD_RATIO:
        per = "8:2 per fold" if folds == 5 else f"test 1/{folds} of the subjects per fold; 8:2 is 5 folds"
        return f"{folds}-fold subject cross-validation ({per})"
    return f"subject-wise {r} hold-out repeated with {folds} split seeds"


def build_suite(
    name: str,
    *,
    preset_name: str = "quick",
    models: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: int = DEFAULT_FOLDS,
    changes: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Mapping] | None = None,
) -> SuiteSpec:
    """The entries of suite ``name`` (see the module docstring).

    Parameters
    ----------
    name : str
        One of :data:`SUITE_NAMES`.
    preset_name : {"quick", "paper"}
    models : sequence of str, optional
        Models of table3/4/5 (default :func:`default_models`); table2 and table7 use the
        first one (default ``symaffect``); table6 ignores it.
    seeds : sequence of int, optional
        Training seeds of every run (default: the preset's).
    folds : int
        Subject splits, see :func:`split_plan` (default 5; 1 = a single hold-out).
    changes, model_kwargs
        See :func:`make_config`.
    """
    if name not in SUITE_NAMES:
        raise ConfigError(f"suite: {name!r}; allowed: {', '.join(SUITE_NAMES)}")
    if folds < 1:
        raise ConfigError(f"folds: must be >= 1, got {folds}")

    def entry(label: str, model: str, *, test_ratio: float = KFOLD_RATIO, **kw: Any) -> Entry:
        extra = kw.pop("extra", {})
        cfgs = tuple(
            make_config(model, preset_name=preset_name, seeds=seeds, protocol=plan["protocol"],
                        test_ratio=plan["test_ratio"], split_seed=plan["split_seed"],
                        changes={**plan["changes"], **(changes or {}), **extra},
                        model_kwargs=model_kwargs, **kw)
            for plan in split_plan(test_ratio, folds)
        )
        return Entry(label, cfgs)

    main = (list(models) if models else ["symaffect"])[0]
    split82 = split_text(KFOLD_RATIO, folds)
    if name == "table2":
        entries = tuple(
            entry(main, main, task_set=ts)
            for ts in ("binary_valence", "binary_arousal", "quadrant_multilabel")
        )
        return SuiteSpec(name, "Table 2", "single-task binary valence, binary arousal and the "
                         f"quadrant + Neutral branch; {split82}; non-overlapping test windows",
                         entries, reference=main)
    if name in ("table3", "table4", "table5"):
        ratio = {"table3": 0.2, "table4": 0.3, "table5": 0.4}[name]
        ms = list(models) if models else default_models()
        entries = tuple(entry(m, m, test_ratio=ratio) for m in ms)
        return SuiteSpec(name, {"table3": "Table 3", "table4": "Table 4", "table5": "Table 5"}[name],
                         f"multi-task 9-class valence / arousal / liking; {split_text(ratio, folds)}; "
                         "the paper's model and the baselines", entries,
                         reference="symaffect" if "symaffect" in ms else ms[0])
    if name == "table6":
        entries = (
            entry("full model", "symaffect"),
            entry("w/o DTFE", "symaffect_no_dtfe"),
            entry("w/o cross-modal fusion", "symaffect_no_fusion"),
        )
        return SuiteSpec(name, "Table 6", f"ablations (multi-task 9-class, {split82})", entries,
                         reference="full model")
    entries = (
        entry(f"{main}, fixed weights (1/3 each)", main, extra={"loss.weighting": "fixed"}),
        entry(f"{main}, learnable weights", main, extra={"loss.weighting": "learnable"}),
    )
    return SuiteSpec(name, "Table 7", f"fixed vs learnable task weights (multi-task 9-class, {split82})",
                     entries, reference=f"{main}, learnable weights")


def train_entries(
    spec: SuiteSpec,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    on_run: Callable[[int, int, str, Path, bool], None] | None = None,
) -> list[tuple[str, list[Path]]]:
    """Train (or reuse) every run of ``spec``; return ``[(label, [run folders])]`` per entry.

    A run folder whose ``metrics.json`` exists (with the same ``config.yaml``) is reused
    as it is. ``on_run(i, n, label, run_dir, skipped)`` is called before each run.
    """

    runs_root = Path(out_dir) / "runs"
    jobs = [(k, e.label, c) for k, e in enumerate(spec.entries) for c in e.configs]
    out: list[tuple[str, list[Path]]] = [(e.label, []) for e in spec.entries]
    for i, (k, label, cfg) in enumerate(jobs):
        rdir = runs_root / run_dir_name(cfg)
        run = RunFolder(rdir)
        done = run.metrics.is_file() and run.config.is_file() and RunConfig.from_yaml(run.config) == cfg
        if on_run is not None:
            on_run(i, len(jobs), label, rdir, done)
        if done:
            log.info("%s: finished run %s reused", label, rdir.name)
        else:
            log.info("%s: training %s", label, rdir.name)
            train_and_score(cfg, data_dir, rdir, progress=progress, cache_dir=cache_dir)
        out[k][1].append(rdir)
    return out


# --- collecting results -----------------------------------------------------------------
def _with_macro_precision(rep: dict) -> dict:
    """A multi-label report with ``macro_precision`` (mean per-label precision) added."""
    if rep.get("kind") != "multilabel":
        return rep
    rep = {**rep}
    for src in ("model", "majority", "majority_test_oracle"):
        if src in rep and "per_label_precision" in rep[src]:
            vals = list(rep[src]["per_label_precision"].values())
            rep[src] = {**rep[src], "macro_precision": float(sum(vals) / len(vals))}
    return rep


def protocol_text(protocol: Mapping, *, n_splits: int = 1, n_seeds: int = 1) -> str:
    """Human-readable protocol: name, ratio, subject-independence, LEAKY or not, and spread.

    Parameters
    ----------
    protocol : mapping
        ``{"name", "kind", "params", "leaky"}`` of a run's ``metrics.json``.
    n_splits : int
        Distinct subject splits behind the numbers (folds x repeated split seeds).
    n_seeds : int
        Training seeds per split.
    """
    name = protocol["name"]
    p = protocol.get("params", {})
    bits = [name]
    if "test_ratio" in p and name != "loso":
        r = float(p["test_ratio"])
        bits.append(f"{round(10 * (1 - r))}:{round(10 * r)}")
    kfold = name == "subject-kfold" and "n_splits" in p
    if kfold:
        k = int(p["n_splits"])
        per = f"{10 - 10 // k}:{10 // k} per fold" if 10 % k == 0 else f"test 1/{k} of the subjects per fold"
        bits.append(f"{k} folds ({per})")
    kind = protocol.get("kind")
    if protocol.get("leaky"):
        bits.append("LEAKY (train and test windows overlap)")
    elif kind == "subject":
        bits.append("subject-independent, not leaky")
    elif kind == "trial":
        bits.append("within-subject trials, subjects shared")
    if n_splits <= 1:
        bits.append("single split, no spread" if n_seeds <= 1 else
                    f"single split (spread over {n_seeds} training seeds only)")
    elif name == "loso":
        bits.append(f"{n_splits} folds, one test subject each")
    elif not kfold or n_splits > int(p["n_splits"]):
        bits.append(f"{n_splits} repeated splits")
    if n_splits > 1 and n_seeds > 1:
        bits.append(f"{n_seeds} training seeds")
    return " · ".join(bits)


def _fold_dir(run_dir: str | Path, run: Mapping) -> Path:
    """The fold/seed folder of one entry of ``metrics.json["runs"]``."""
    return RunFolder(Path(run_dir)).fold_dir(run["fold"], run["seed"])


def split_records(dirs: Sequence[str | Path], mets: Sequence[Mapping]) -> list[dict]:
    """Every (split, training seed) behind a row: the subjects it trained, validated and tested on.

    Returns
    -------
    list of dict
        ``{"run", "protocol", "split_seed", "fold", "seed", "train_subjects",
        "val_subjects", "test_subjects"}`` per fold and seed of every run folder.
    """
    out = []
    for d, m in zip(dirs, mets):
        for r in m["runs"]:
            out.append({
                "run": Path(d).name,
                "protocol": m["protocol"]["name"],
                "split_seed": m["protocol"].get("params", {}).get("seed"),
                "fold": int(r["fold"]),
                "seed": int(r["seed"]),
                "train_subjects": [int(x) for x in r["train_subjects"]],
                "val_subjects": [int(x) for x in r["val_subjects"]],
                "test_subjects": [int(x) for x in r["test_subjects"]],
            })
    return out


def curve_records(dirs: Sequence[str | Path], mets: Sequence[Mapping]) -> list[dict]:
    """The learning-curve figure of every (split, training seed) behind a row, or why there is none.

    A fold's ``result.json`` (and so ``metrics.json["runs"]``) records
    ``learning_curves``, the PNG's path relative to the run folder. It is used when the
    file exists inside the run folder; otherwise the record says why it is skipped.

    Returns
    -------
    list of dict
        ``{"run", "split_seed", "fold", "seed", "path", "note"}`` per fold and seed of
        every run folder: ``path`` is the PNG (the run folder joined with the recorded
        path, like the row's ``runs``) and ``note`` None, or ``path`` None and ``note``
        why there is no figure (not trained in epochs, a run older than the curves,
        no training logs, a missing file, a recorded path outside the run folder).
    """
    out = []
    for d, m in zip(dirs, mets):
        run_dir = Path(d)
        for r in m["runs"]:
            rec = {"run": run_dir.name, "split_seed": m["protocol"].get("params", {}).get("seed"),
                   "fold": int(r["fold"]), "seed": int(r["seed"]), "path": None, "note": None}
            rel = r.get("learning_curves")
            if "learning_curves" not in r:
                rec["note"] = ("not trained in epochs" if r.get("epochs_trained") is None else
                               "none recorded: a run from before learning curves were drawn")
            elif not isinstance(rel, str) or not rel:
                rec["note"] = "none drawn: no training logs when the run finished"
            elif not _inside(run_dir, rel):
                rec["note"] = f"recorded learning curves {rel!r}: not a path inside the run folder; not shown"
            elif not (run_dir / rel).is_file():
                rec["note"] = f"{run_dir / rel}: learning curves missing"
            else:
                rec["path"] = str(run_dir / rel)
            out.append(rec)
    return out


def _inside(folder: Path, rel: str) -> bool:
    """Whether ``folder / rel`` stays inside ``folder`` (symbolic links followed)."""
    try:
        return (folder / rel).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a link loop: not a path to follow
        return False


def subject_scores(dirs: Sequence[str | Path], task: str, *, mets: Sequence[Mapping] | None = None) -> dict:
    """Per-test-subject accuracy of the model and of the majority baseline on ``task``.

    Reads ``predictions.npz`` of every fold x seed of the run folders ``dirs``. In each
    test set, a subject's accuracy is the fraction of its test windows predicted right
    (exact label vector for the multi-label quadrant task); the majority baseline
    predicts that run's most frequent *training* class (``majority.class`` /
    ``majority.vector`` of its report). A subject tested several times (once per
    training seed in k-fold, or in several repeated hold-outs) gets the mean.

    Parameters
    ----------
    dirs : sequence of path
        Run folders of one row.
    task : str
    mets : sequence of dict, optional
        Their ``metrics.json`` (read when not given).

    Returns
    -------
    dict
        ``metric`` (``"acc"`` or ``"subset_acc"``), ``subjects``, ``model``,
        ``majority`` (per-subject accuracies, lists of the same length, sorted by
        subject), ``n_tests`` (test sets per subject) and ``pairing_key`` (a digest of
        the splits, seeds, test windows and labels: two rows with the same key were
        tested on the same windows).

    Raises
    ------
    DataError
        A ``predictions.npz`` is missing or does not match its run's test subjects.
    """

    mets = mets if mets is not None else [RunFolder(Path(d)).read_metrics() for d in dirs]
    subj, model, maj, digests = [], [], [], []
    metric = "acc"
    for d, m in zip(dirs, mets):
        split_seed = m["protocol"].get("params", {}).get("seed")
        for r in m["runs"]:
            path = RunFolder(Path(d)).predictions_path(r["fold"], r["seed"])
            if not path.is_file():
                raise DataError(path, "missing: per-subject scores need the test predictions "
                                      "(re-score the run with `symaffect evaluate`)")
            z = read_npz(path)
            if not {"subject", "trial", "start", f"true_{task}", f"pred_{task}"} <= set(z):
                raise DataError(path, f"has no predictions of task {task!r}")
            s, trial, start = z["subject"], z["trial"], z["start"]
            yt, yp = z[f"true_{task}"], z[f"pred_{task}"]
            if s.size == 0:
                continue
            if not set(np.unique(s).tolist()) <= {int(x) for x in r["test_subjects"]}:
                raise DataError(path, "its windows are not from the run's test subjects (stale file?)")
            rep = r["tasks"][task]
            if rep.get("kind") == "multilabel":
                metric = "subset_acc"
                const = np.asarray(rep["majority"]["vector"], dtype=yt.dtype)
            else:
                const = np.asarray(rep["majority"]["class"], dtype=yt.dtype)
            ids, a = per_subject_accuracy(s, yt, yp)
            _, b = per_subject_accuracy(s, yt, np.broadcast_to(const, yt.shape))
            subj.append(ids)
            model.append(a)
            maj.append(b)
            order = np.lexsort((start, trial, s))
            h = hashlib.sha1()
            for arr in (s[order], trial[order], start[order], yt[order]):
                h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
            digests.append(f"{split_seed}/{r['fold']}/{r['seed']}/{h.hexdigest()}")
    if not subj:
        raise DataError(None, f"no test windows of task {task!r} in {', '.join(str(d) for d in dirs)}")
    all_s = np.concatenate(subj)
    ids, m_acc = mean_by_subject(all_s, np.concatenate(model))
    _, b_acc = mean_by_subject(all_s, np.concatenate(maj))
    _, n_tests = np.unique(all_s, return_counts=True)
    return {
        "metric": metric,
        "subjects": ids.tolist(),
        "model": m_acc.tolist(),
        "majority": b_acc.tolist(),
        "n_tests": n_tests.tolist(),
        "pairing_key": hashlib.sha1("\n".join(sorted(digests)).encode()).hexdigest(),
    }


def collect(label_runs: Sequence[tuple[str, Sequence[Path]]], *, seed: int = UNCERTAINTY_SEED) -> dict:
    """Aggregate the run folders of each row (``[(label, dirs)]``) into one result per task.

    Parameters
    ----------
    label_runs : list of (str, list of path)
    seed : int
        Seed of the bootstrap and sign-flip test of each model-vs-majority comparison.

    Returns
    -------
    dict
        ``{"rows": [{"label", "model", "task_set", "runs": [dirs], "protocol",
        "protocol_text", "seeds", "n_runs", "n_splits", "splits": split_records(...),
        "tasks": {task: {"kind", "n_classes", "class_names", "model"|"majority"|
        "prior_random"|...: {metric: {mean, std, n}}, "confusion_sum", "by_subject":
        subject_scores(...), "vs_majority": paired_comparison(model, majority) or None,
        "uncertainty_error": str or None}}, "learning_curves": curve_records(...)}]}``.

    Raises
    ------
    DataError
        A ``metrics.json`` is missing or not valid JSON (the message names it).
    """

    rows = []
    for label, dirs in label_runs:
        mets = [RunFolder(Path(d)).read_metrics() for d in dirs]
        m0 = mets[0]
        splits = split_records(dirs, mets)
        n_splits = len({(s["run"], s["split_seed"], s["fold"]) for s in splits})
        n_seeds = len({s["seed"] for s in splits})
        tasks = {}
        for t in m0["tasks"]:
            reps = [_with_macro_precision(r["tasks"][t]) for m in mets for r in m["runs"]]
            agg = aggregate_reports(reps)
            tasks[t] = {
                "kind": reps[0]["kind"],
                "n_classes": reps[0].get("n_classes", len(reps[0].get("labels", []))),
                "class_names": reps[0].get("class_names", reps[0].get("labels")),
                "ordinal": bool(reps[0].get("ordinal", False)),
                **agg,
                "confusion_sum": agg.get("model", {}).pop("confusion_sum", None),
                "n_test_windows": int(sum(r["tasks"][t]["model"]["n"] for m in mets for r in m["runs"])),
                "by_subject": None,
                "vs_majority": None,
                "uncertainty_error": None,
            }
            try:
                by = subject_scores(dirs, t, mets=mets)
            except DataError as e:
                log.warning("%s, %s: no per-subject comparison: %s", label, t, e)
                tasks[t]["uncertainty_error"] = str(e)
                continue
            tasks[t]["by_subject"] = by
            tasks[t]["vs_majority"] = {"metric": by["metric"],
                                       **paired_comparison(by["model"], by["majority"], seed=seed)}
        rows.append({
            "label": label,
            "model": m0["model"],
            "task_set": m0["task_set"],
            "runs": [str(d) for d in dirs],
            "protocol": m0["protocol"],
            "protocol_text": protocol_text(m0["protocol"], n_splits=n_splits, n_seeds=n_seeds),
            "leaky": bool(m0["protocol"].get("leaky")),
            "seeds": m0["seeds"],
            "windows": m0["windows"],
            "n_runs": int(sum(len(m["runs"]) for m in mets)),
            "n_splits": n_splits,
            "splits": splits,
            "tasks": tasks,
            "learning_curves": curve_records(dirs, mets),
        })
    return {"rows": rows}


def _split_difference(a: Mapping, b: Mapping) -> str | None:
    """What differs between the splits of rows ``a`` and ``b`` (None: nothing)."""
    def key(s: Mapping) -> tuple:
        return (s["protocol"], s["split_seed"], s["fold"], s["seed"], tuple(s["train_subjects"]),
                tuple(s["val_subjects"]), tuple(s["test_subjects"]))

    ka, kb = sorted(map(key, a["splits"])), sorted(map(key, b["splits"]))
    if ka == kb:
        return None
    seeds_a, seeds_b = sorted({k[3] for k in ka}), sorted({k[3] for k in kb})
    if seeds_a != seeds_b:
        return f"training seeds differ ({seeds_a} vs {seeds_b})"
    splits_a, splits_b = sorted({k[:3] for k in ka}), sorted({k[:3] for k in kb})
    if splits_a != splits_b:
        fmt = lambda ks: ", ".join(f"{p} split seed {s} fold {f}" for p, s, f in ks)  # noqa: E731
        return f"the splits differ ({fmt(splits_a)} vs {fmt(splits_b)})"
    for x, y in zip(ka, kb):
        if x != y:
            return (f"the subjects of {x[0]} split seed {x[1]} fold {x[2]} differ (test {list(x[6])} vs "
                    f"{list(y[6])}; train {list(x[4])} vs {list(y[4])})")
    return "the splits differ"  # pragma: no cover - sorted keys differ somewhere


def compare_rows(a: Mapping, b: Mapping, task: str, *, seed: int = UNCERTAINTY_SEED) -> dict:
    """Paired comparison of two rows of :func:`collect` on ``task`` over their test subjects.

    Both rows must come from the same data, splits and training seeds; the per-subject
    accuracies (pooled over folds x seeds, :func:`subject_scores`) are then paired on
    the shared subjects and compared with
    :func:`~symaffect.eval.metrics.paired_comparison` (``delta = a - b``).

    Returns
    -------
    dict
        ``reference`` (a's label), ``other`` (b's label), ``metric`` and the fields of
        :func:`~symaffect.eval.metrics.paired_comparison`.

    Raises
    ------
    DataError
        The rows were not tested on the same splits, seeds or windows, or lack
        per-subject scores; the message says what differs.
    """

    who = f"cannot pair {a['label']!r} with {b['label']!r} on {task}"
    why = _split_difference(a, b)
    if why is not None:
        raise DataError(None, f"{who}: {why}; a paired comparison needs the same data, splits and seeds")
    sa, sb = a["tasks"][task].get("by_subject"), b["tasks"][task].get("by_subject")
    for row, sc in ((a, sa), (b, sb)):
        if sc is None:
            raise DataError(None, f"{who}: {row['label']!r} has no per-subject scores "
                                  f"({row['tasks'][task].get('uncertainty_error')})")
    if sa["pairing_key"] != sb["pairing_key"]:
        raise DataError(None, f"{who}: same splits but different test windows or labels (not the same data?)")
    common = np.intersect1d(sa["subjects"], sb["subjects"])
    if common.size == 0:
        raise DataError(None, f"{who}: no test subject in common")
    pick = lambda sc: np.asarray(sc["model"])[np.searchsorted(sc["subjects"], common)]  # noqa: E731
    return {"reference": a["label"], "other": b["label"], "metric": sa["metric"],
            **paired_comparison(pick(sa), pick(sb), seed=seed)}


def comparisons(result: Mapping, reference: str | None, *, seed: int = UNCERTAINTY_SEED) -> list[dict]:
    """The reference row against every other row, per task (:func:`compare_rows`).

    Returns
    -------
    list of dict
        ``{"task_set", "task", "reference", "other", ...}`` with either the comparison's
        fields or ``"error"`` (why the pair was refused; also logged).
    """
    out: list[dict] = []
    if reference is None:
        return out
    for ts, task, rows in task_groups(result["rows"]):
        ref = next((r for r in rows if r["label"] == reference), None)
        if ref is None:
            continue
        for r in rows:
            if r is ref:
                continue
            base = {"task_set": ts, "task": task, "reference": ref["label"], "other": r["label"]}
            try:
                out.append({**base, **compare_rows(ref, r, task, seed=seed)})
            except DataError as e:
                log.warning("%s", e)
                out.append({**base, "error": str(e)})
    return out


















def _uncertainty_note(n_subjects: Sequence[int]) -> str:

    ns = sorted(set(n_subjects))
    return (f"per test subject (its test windows; a subject tested in several folds × seeds is averaged over "
            f"them), averaged over the {'/'.join(map(str, ns)) or '–'} test subjects, in percentage points; "
            f"[95 % CI]: percentile bootstrap over subjects ({BOOTSTRAP_RESAMPLES} resamples, seed "
            f"{UNCERTAINTY_SEED}); p: two-sided paired sign-flip permutation test over subjects (exact up to "
            f"{EXACT_SIGN_FLIP_MAX} subjects). p-values are not corrected for multiple comparisons."
            + (f" With fewer than {FEW_SUBJECTS} test subjects the percentile interval is too narrow; the exact "
               "p-value is the safer guide." if ns and ns[0] < FEW_SUBJECTS else ""))


def task_tables(result: Mapping, paper_table: str) -> list[dict]:
    """One table per (task set, task): ``{"title", "header", "rows", "note"}``.

    Columns: the metrics (model mean ± std over folds × seeds, majority baseline beside
    each) and the model's difference from the majority baseline over test subjects.
    """
    out = []
    for ts, task, rows in task_groups(result["rows"]):
        tr0 = rows[0]["tasks"][task]
        keys = table_metrics(tr0)
        dmetric = "subset_acc" if tr0["kind"] == "multilabel" else "acc"
        header = ["model", "runs", *[METRIC_LABELS[k] for k in keys],
                  f"Δ {METRIC_LABELS[dmetric]} vs maj, points [95 % CI], p"]
        body = [[r["label"], str(r["n_runs"]), *[cell(r["tasks"][task], k) for k in keys],
                 fmt_delta(r["tasks"][task].get("vs_majority"))] for r in rows]
        pr = tr0.get("prior_random", {}).get("acc")
        single = all(r["n_runs"] == 1 for r in rows)
        note = ("Single split, no spread: one test set and one training seed per model, so there is no std. "
                if single else "Model mean ± std over folds × seeds, ")
        note += ("in % (MAE in rating units); beside each number, (maj …) is the majority baseline: the most "
                 "frequent *training* class predicted for every test window of the same split.")
        if pr is not None:
            note += f" Chance (guessing with the training class frequencies): {100 * pr['mean']:.1f} % accuracy."
        vs = [r["tasks"][task].get("vs_majority") for r in rows]
        note += (f" Δ {METRIC_LABELS[dmetric]} vs maj: the model's {METRIC_LABELS[dmetric]} minus the majority "
                 f"baseline's, " + _uncertainty_note([v["n_subjects"] for v in vs if v]))
        errors = [f"{r['label']}: {r['tasks'][task]['uncertainty_error']}" for r in rows
                  if r["tasks"][task].get("uncertainty_error")]
        if errors:
            note += " No per-subject comparison for " + "; ".join(errors) + "."
        out.append({"title": task_title(paper_table, ts, task, rows), "task_set": ts, "task": task,
                    "header": header, "rows": body, "note": note})
    return out


def pairwise_tables(result: Mapping, comps: Sequence[Mapping], paper_table: str) -> list[dict]:
    """One table per (task set, task) with comparisons: the reference row minus each other row."""
    out = []
    groups = {(ts, t): rs for ts, t, rs in task_groups(result["rows"])}
    for (ts, task), rows in groups.items():
        cs = [c for c in comps if (c["task_set"], c["task"]) == (ts, task)]
        if not cs:
            continue
        ref = cs[0]["reference"]
        dmetric = "subset_acc" if rows[0]["tasks"][task]["kind"] == "multilabel" else "acc"
        lab = METRIC_LABELS[dmetric]
        header = ["comparison", "test subjects", f"{ref}: {lab} %", f"other: {lab} %",
                  f"Δ {lab}, points [95 % CI], p", "subjects better / worse / tied"]
        body = []
        for c in cs:
            name = f"{c['reference']} − {c['other']}"
            if "error" in c:
                body.append([name, "–", "–", "–", f"not compared: {c['error']}", "–"])
                continue
            body.append([name, str(c["n_subjects"]), f"{100 * c['mean_a']:.1f}", f"{100 * c['mean_b']:.1f}",
                         fmt_delta(c), f"{c['wins']} / {c['losses']} / {c['ties']}"])
        note = (f"{lab} {_uncertainty_note([c['n_subjects'] for c in cs if 'error' not in c])} "
                "Pairs use the test subjects both models were tested on, with the same splits and training "
                f"seeds. Δ = {ref} − other (positive: {ref} is better). The subject-averaged accuracies here "
                "can differ slightly from the window-pooled means of the table above.")
        title = (f"{paper_table} — {task}, {TASK_SET_LABELS.get(ts, ts)}: {ref} vs each other model, paired over "
                 f"test subjects — protocol: {'; '.join(sorted({r['protocol_text'] for r in rows}))}")
        out.append({"title": title, "task_set": ts, "task": task, "header": header, "rows": body, "note": note})
    return out


def csv_text(result: Mapping, suite: str) -> str:
    """Long-format CSV: one line per (row, task, metric) with the baselines beside it.

    The accuracy line (subset accuracy for multi-label) also carries the model's
    difference from the majority baseline over test subjects (``delta_vs_majority``,
    its 95 % CI, the sign-flip p-value and the number of test subjects).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["suite", "label", "model", "task_set", "task", "protocol", "leaky", "metric",
                "mean", "std", "n", "majority_mean", "majority_std", "prior_random_mean",
                "delta_vs_majority", "delta_ci_low", "delta_ci_high", "delta_p", "n_subjects"])
    for r in result["rows"]:
        for task, tr in r["tasks"].items():
            vs = tr.get("vs_majority")
            for k in table_metrics(tr):
                m = tr["model"].get(k)
                if m is None:
                    continue
                maj = tr.get("majority", {}).get(k, {})
                pr = tr.get("prior_random", {}).get(k, {})
                d = ([f"{vs['delta']:.6g}", f"{vs['ci_low']:.6g}", f"{vs['ci_high']:.6g}", f"{vs['p_value']:.6g}",
                      vs["n_subjects"]] if vs is not None and vs["metric"] == k else ["", "", "", "", ""])
                w.writerow([suite, r["label"], r["model"], r["task_set"], task, r["protocol_text"],
                            int(r["leaky"]), k, f"{m['mean']:.6g}", f"{m['std']:.6g}", m["n"],
                            f"{maj['mean']:.6g}" if maj else "", f"{maj['std']:.6g}" if maj else "",
                            f"{pr['mean']:.6g}" if pr else "", *d])
    return buf.getvalue()


def uncertainty_method() -> dict:
    """How the suite's confidence intervals and p-values are computed (written into SUITE.json)."""

    return {
        "unit": "test subject",
        "score": "per-subject accuracy (subset accuracy for multi-label), averaged over the folds x seeds "
                 "in which the subject was tested",
        "ci": "percentile bootstrap of the mean paired difference, resampling subjects",
        "confidence": 0.95,
        "n_resamples": BOOTSTRAP_RESAMPLES,
        "test": f"two-sided paired sign-flip permutation test of the mean difference (exact up to "
                f"{EXACT_SIGN_FLIP_MAX} subjects, else {PERMUTATIONS} random sign vectors)",
        "seed": UNCERTAINTY_SEED,
        "multiple_comparisons": "not corrected",
    }


def write_suite(
    spec: SuiteSpec,
    label_runs: Sequence[tuple[str, Sequence[Path]]],
    out_dir: str | Path,
    *,
    context: Mapping[str, Any] | None = None,
) -> dict:
    """Write ``SUITE.md``, ``SUITE.html``, ``SUITE.csv``, ``SUITE.json`` and the figures.

    Parameters
    ----------
    spec : SuiteSpec
    label_runs : list of (str, list of Path)
        Output of :func:`train_entries`.
    out_dir : path
    context : mapping, optional
        Extra facts written into the JSON and the report (data folder, command, ...).

    Returns
    -------
    dict
        The JSON written: ``rows`` (:func:`collect`; per task ``vs_majority`` and
        ``by_subject``), ``tables``, ``comparisons`` (:func:`comparisons` of
        ``spec.reference``), ``pairwise_tables``, ``uncertainty`` (the method) and
        ``figures`` (``bars`` and ``confusion`` paths; ``learning_curves``: per row key
        the row's learning-curve PNGs as ``{"path", "split_seed", "fold", "seed"}``,
        ``path`` relative to ``out_dir``; a row's skipped runs and why are in its
        ``learning_curves`` records, :func:`curve_records`).
    """

    out = Path(out_dir)
    result = collect(label_runs)
    tables = task_tables(result, spec.paper_table)
    comps = comparisons(result, spec.reference)
    fig_dir = out / "figures"
    figs = {"bars": str(figures.suite_bars(result, fig_dir / f"{spec.name}_bars.png",
                                           title=f"{spec.paper_table}: {spec.description}"))}
    figs["confusion"] = {}
    figs["learning_curves"] = {}
    for key, r in zip(row_keys(result["rows"]), result["rows"]):
        p = figures.confusion_grid(r, fig_dir / f"{spec.name}_confusion_{_slug(key)}.png",
                                   title=f"{spec.paper_table} · {key} · {r['protocol_text']}")
        if p is not None:
            figs["confusion"][key] = str(p)
        figs["learning_curves"][key] = [
            {"path": Path(os.path.relpath(c["path"], out)).as_posix(),
             **{k: c[k] for k in ("split_seed", "fold", "seed")}}
            for c in r["learning_curves"] if c["path"] is not None
        ]
    obj = {
        "format": SUITE_FORMAT,
        "version": 2,
        "provenance": suite_provenance(label_runs),
        "suite": spec.name,
        "paper_table": spec.paper_table,
        "description": spec.description,
        "context": dict(context or {}),
        "reference": spec.reference,
        "uncertainty": uncertainty_method(),
        **result,
        "tables": tables,
        "comparisons": comps,
        "pairwise_tables": pairwise_tables(result, comps, spec.paper_table),
        "figures": figs,
    }
    write_json(out / f"{spec.name}.json", obj)
    write_text(out / f"{spec.name}.csv", csv_text(result, spec.name))
    rep = Report(f"{spec.paper_table} ({spec.name}): {spec.description}")
    suite_report(rep, obj, out)
    rep.write(out / f"{spec.name}.md", out / f"{spec.name}.html")
    return obj


def suite_provenance(label_runs: Sequence[tuple[str, Sequence[Path]]]) -> dict:
    """The package versions now, plus the data fingerprint(s) and config hashes the suite's
    runs recorded in their ``metrics.json`` (a suite's runs read the same data, so there is
    usually one fingerprint; more than one is worth seeing)."""
    fingerprints: set[str] = set()
    configs: set[str] = set()
    for _, dirs in label_runs:
        for d in dirs:
            prov = RunFolder(d).read_metrics().get("provenance") or {}
            fp = (prov.get("data") or {}).get("fingerprint") or ((prov.get("extra") or {}).get("prepared") or {}
                                                                 ).get("fingerprint")
            if fp:
                fingerprints.add(str(fp))
            if (prov.get("config") or {}).get("sha256"):
                configs.add(str(prov["config"]["sha256"]))
    return provenance(extra={"data_fingerprints": sorted(fingerprints), "run_configs_sha256": sorted(configs)})


def provenance_para(rep, prov: Mapping | None) -> None:
    """One paragraph of a report: package versions, Python, the data fingerprint(s) and the
    runs' config hashes (:func:`suite_provenance`); nothing when ``prov`` is empty."""
    if not prov:
        return
    versions = ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items())
    fps = ", ".join(f"`{f[:16]}`" for f in prov.get("data_fingerprints") or []) or "not recorded"
    cfgs = ", ".join(f"`{c[:12]}`" for c in prov.get("run_configs_sha256") or []) or "not recorded"
    rep.para(f"Provenance: {versions}; Python {prov.get('python', '?')}; data fingerprint {fps}; "
             f"run config SHA-256 {cfgs}.")


def row_keys(rows: Sequence[Mapping]) -> list[str]:
    """A name per row for figures: its label, with the task set when labels repeat (table2)."""
    labels = [r["label"] for r in rows]
    return [r["label"] if labels.count(r["label"]) == 1 else f"{r['label']}, {r['task_set']}" for r in rows]


def suite_report(rep, obj: Mapping, out: Path, *, level: int = 2) -> None:
    """Add a suite's tables and figures to a :class:`~symaffect.eval.report.Report`."""
    ctx = obj.get("context", {})
    if ctx:
        rep.para(" · ".join(f"{k}: `{v}`" for k, v in ctx.items()))
    provenance_para(rep, obj.get("provenance"))
    r0 = obj["rows"][0] if obj["rows"] else None
    if r0 is not None:
        w = r0["windows"]
        rep.para(f"Windows: {w['window_seconds']:g} s; training stride {w['train_stride_seconds']:g} s; "
                 f"test windows every {w['eval_stride_seconds']:g} s"
                 f"{' (non-overlapping)' if w['eval_stride_seconds'] >= w['window_seconds'] else ''}. "
                 f"Training seeds: {', '.join(map(str, r0['seeds']))}.")
    pairwise = {(t["task_set"], t["task"]): t for t in obj.get("pairwise_tables", [])}
    for t in obj["tables"]:
        rep.heading(t["title"], level)
        rep.table(t["header"], t["rows"])
        rep.para(t["note"])
        pt = pairwise.get((t["task_set"], t["task"]))
        if pt is not None:
            rep.heading(pt["title"], level + 1)
            rep.table(pt["header"], pt["rows"])
            rep.para(pt["note"])
    rep.heading("Figures", level)
    rep.image(Path(obj["figures"]["bars"]), "grouped bar chart", base=out)
    for label, p in obj["figures"]["confusion"].items():
        rep.image(Path(p), f"confusion matrices: {label}", base=out)
    curves_report(rep, obj, out, level=level)


def curves_report(rep, obj: Mapping, out: Path, *, level: int = 2) -> None:
    """The "Learning curves" section: per row, the curves of every fold x seed, or why none."""
    rep.heading("Learning curves", level)
    rep.para("Per run (fold × training seed): training (solid) and validation (dotted) loss and accuracy per "
             "epoch, from the run's CSV logs; dashed: the training-set majority rate; dash-dot: the epoch of the "
             "kept checkpoint. In the HTML report, click a thumbnail to see it full size.")
    curves = obj["figures"].get("learning_curves", {})
    for key, row in zip(row_keys(obj["rows"]), obj["rows"]):
        shown = curves.get(key, [])
        skipped = [c for c in row.get("learning_curves", []) if c["path"] is None]
        if not shown:
            notes = sorted({c["note"] for c in skipped})
            rep.para(f"**{key}**: no learning curves ({'; '.join(notes) or 'no runs'}).")
            continue
        rep.heading(key, level + 1)
        several = len(row["runs"]) > 1
        items = [(out / c["path"], (f"split seed {c['split_seed']} · " if several else "")
                  + f"fold {c['fold']} · seed {c['seed']}") for c in shown]
        if len(items) == 1:
            rep.image(items[0][0], f"{key} · {items[0][1]}", base=out)
        else:
            rep.gallery(items)
        if skipped:
            which = ", ".join((f"split seed {c['split_seed']} " if several else "") + f"fold {c['fold']} "
                              f"seed {c['seed']} ({c['note']})" for c in skipped)
            rep.para(f"Skipped {len(skipped)} of {len(skipped) + len(shown)} runs: {which}.")


def run_suite(
    name: str,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    preset_name: str = "quick",
    models: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: int = DEFAULT_FOLDS,
    changes: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Mapping] | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    on_run: Callable[[int, int, str, Path, bool], None] | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict:
    """Build, train (resuming) and write suite ``name``; return its JSON.

    See :func:`build_suite` for the parameters that define the runs and
    :func:`write_suite` for what is written into ``out_dir``.
    """
    spec = build_suite(name, preset_name=preset_name, models=models, seeds=seeds, folds=folds,
                       changes=changes, model_kwargs=model_kwargs)
    label_runs = train_entries(spec, data_dir, out_dir, progress=progress, cache_dir=cache_dir, on_run=on_run)
    ctx = {"data": str(data_dir), "preset": preset_name, **(context or {})}
    return write_suite(spec, label_runs, out_dir, context=ctx)


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s).strip("_").lower() or "run"


__all__ = [
    "DEEP_BASELINES",
    "DEFAULT_FOLDS",
    "SUITE_NAMES",
    "Entry",
    "SuiteSpec",
    "build_suite",
    "collect",
    "compare_rows",
    "comparisons",
    "curve_records",
    "default_models",
    "make_config",
    "run_suite",
    "split_plan",
    "subject_scores",
    "tiny_model_kwargs",
    "train_entries",
    "write_suite",
]
