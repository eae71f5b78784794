"""The paper's experiments (section 4) as suites of runs: ``symaffect bench SUITE``.

A suite is a list of *entries* (a row label, a model, a task set and the config changes
that define it). Every entry is trained with :func:`symaffect.train.run.train_run` into
its own run folder and the results are written as tables (Markdown, CSV, JSON) and
figures (confusion matrices, a Figure-4-style grouped bar chart).

=========  ===========================================================================
suite      what it runs (all subject-independent: no subject in two of train/val/test)
=========  ===========================================================================
table2     single-task: binary valence, binary arousal (high = rating > 5) and the
           5-output quadrant + Neutral branch (multi-label, SPEC section 1); the paper's
           model; subject-wise 8:2 hold-out; non-overlapping test windows
table3     multi-task 9-class valence / arousal / liking, subject-wise 8:2; the paper's
           model and every baseline (registered deep baselines + XGBoost)
table4     as table3 at 7:3
table5     as table3 at 6:4
table6     ablations at 8:2: full model, without DTFE, without cross-modal fusion
table7     fixed (1/3 each) vs learnable task weights at 8:2
=========  ===========================================================================

Output folder ``OUT``::

    OUT/runs/<model>-<task_set>-<hash>/   one train_run folder per (entry, split); shared by
                                          all suites written into the same OUT, so table6's
                                          full model reuses table3's run
    OUT/SUITE.md, SUITE.html, SUITE.csv, SUITE.json
    OUT/figures/SUITE_bars.png, SUITE_confusion_<label>.png

Resuming: a run folder that already holds ``metrics.json`` for the same config is not
recomputed; an unfinished one resumes (see :func:`~symaffect.train.run.train_run`).

``folds=N`` repeats every subject-wise hold-out with split seeds ``0 .. N-1`` (repeated
hold-out; the ratio of the suite is kept); the tables then give the mean +- std over
all splits and seeds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symaffect._io import write_json, write_text
from symaffect.errors import ConfigError
from symaffect.train.config import RunConfig, preset

log = logging.getLogger(__name__)

SUITE_FORMAT = "symaffect-suite"
SUITE_NAMES: tuple[str, ...] = ("table2", "table3", "table4", "table5", "table6", "table7")

DEEP_BASELINES: tuple[str, ...] = ("lstm", "bilstm", "gru", "mlp", "cnn1d", "cnn_lstm", "transformer")
"""Table 3's deep baselines, in the paper's order (those registered are used)."""

TASK_SET_LABELS: dict[str, str] = {
    "multitask9": "9-class (ratings 1-9)",
    "binary_valence": "binary (high = rating > 5)",
    "binary_arousal": "binary (high = rating > 5)",
    "quadrant5": "5-class quadrant + Neutral",
    "quadrant_multilabel": "5-output quadrant + Neutral (multi-label)",
}

METRIC_LABELS: dict[str, str] = {
    "acc": "Acc",
    "macro_f1": "macro-F1",
    "macro_precision": "macro-Prec",
    "weighted_f1": "weighted-F1",
    "weighted_precision": "weighted-Prec",
    "mae": "MAE (rating units)",
    "within_one": "±1-class acc",
    "subset_acc": "subset Acc",
    "hamming_acc": "Hamming Acc",
}
PERCENT_METRICS = {"acc", "macro_f1", "macro_precision", "weighted_f1", "weighted_precision",
                   "within_one", "subset_acc", "hamming_acc"}


@dataclass(frozen=True)
class Entry:
    """One row of a suite: a label and the configs of its runs (one per split).

    Parameters
    ----------
    label : str
        Row label in the tables (e.g. ``"symaffect"``, ``"w/o DTFE"``).
    configs : tuple of RunConfig
        One config per repeated split (``protocol.seed`` 0 .. folds-1).
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
    """What a suite is: its name, the paper's table, a one-line description, entries."""

    name: str
    paper_table: str
    description: str
    entries: tuple[Entry, ...] = field(default_factory=tuple)


def default_models() -> list[str]:
    """The paper's model, every registered deep baseline of :data:`DEEP_BASELINES`, XGBoost."""
    from symaffect.models.registry import list_models

    known = set(list_models())
    missing = [m for m in DEEP_BASELINES if m not in known]
    if missing:
        log.warning("baselines not registered (left out): %s", ", ".join(missing))
    return ["symaffect", *[m for m in DEEP_BASELINES if m in known], "xgboost"]


def tiny_model_kwargs(name: str) -> dict:
    """Very small build kwargs of a model (the registry's test kwargs), for tests and smoke runs."""
    if name == "xgboost":
        return {"n_estimators": 5, "max_depth": 2}
    from symaffect.models.registry import test_kwargs

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


def build_suite(
    name: str,
    *,
    preset_name: str = "quick",
    models: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: int = 1,
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
    folds : int
        Repeated hold-out splits (split seeds 0 .. folds-1).
    changes, model_kwargs
        See :func:`make_config`.
    """
    if name not in SUITE_NAMES:
        raise ConfigError(f"suite: {name!r}; allowed: {', '.join(SUITE_NAMES)}")
    if folds < 1:
        raise ConfigError(f"folds: must be >= 1, got {folds}")

    def entry(label: str, model: str, **kw: Any) -> Entry:
        kw_changes = {**(changes or {}), **kw.pop("extra", {})}
        cfgs = tuple(
            make_config(model, preset_name=preset_name, seeds=seeds, split_seed=k,
                        changes=kw_changes, model_kwargs=model_kwargs, **kw)
            for k in range(folds)
        )
        return Entry(label, cfgs)

    main = (list(models) if models else ["symaffect"])[0]
    if name == "table2":
        entries = tuple(
            entry(main, main, task_set=ts)
            for ts in ("binary_valence", "binary_arousal", "quadrant_multilabel")
        )
        return SuiteSpec(name, "Table 2", "single-task binary valence, binary arousal and the "
                         "quadrant + Neutral branch; subject-wise 8:2 hold-out; non-overlapping test windows",
                         entries)
    if name in ("table3", "table4", "table5"):
        ratio = {"table3": 0.2, "table4": 0.3, "table5": 0.4}[name]
        ms = list(models) if models else default_models()
        entries = tuple(entry(m, m, test_ratio=ratio) for m in ms)
        split = {0.2: "8:2", 0.3: "7:3", 0.4: "6:4"}[ratio]
        return SuiteSpec(name, {"table3": "Table 3", "table4": "Table 4", "table5": "Table 5"}[name],
                         f"multi-task 9-class valence / arousal / liking; subject-wise {split} hold-out; "
                         "the paper's model and the baselines", entries)
    if name == "table6":
        entries = (
            entry("full model", "symaffect"),
            entry("w/o DTFE", "symaffect_no_dtfe"),
            entry("w/o cross-modal fusion", "symaffect_no_fusion"),
        )
        return SuiteSpec(name, "Table 6", "ablations (multi-task 9-class, subject-wise 8:2)", entries)
    entries = (
        entry(f"{main}, fixed weights (1/3 each)", main, extra={"loss.weighting": "fixed"}),
        entry(f"{main}, learnable weights", main, extra={"loss.weighting": "learnable"}),
    )
    return SuiteSpec(name, "Table 7", "fixed vs learnable task weights (multi-task 9-class, subject-wise 8:2)",
                     entries)


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
    from symaffect.train.run import train_run

    runs_root = Path(out_dir) / "runs"
    jobs = [(k, e.label, c) for k, e in enumerate(spec.entries) for c in e.configs]
    out: list[tuple[str, list[Path]]] = [(e.label, []) for e in spec.entries]
    for i, (k, label, cfg) in enumerate(jobs):
        rdir = runs_root / run_dir_name(cfg)
        done = (rdir / "metrics.json").is_file() and (rdir / "config.yaml").is_file() and (
            RunConfig.from_yaml(rdir / "config.yaml") == cfg
        )
        if on_run is not None:
            on_run(i, len(jobs), label, rdir, done)
        if done:
            log.info("%s: finished run %s reused", label, rdir.name)
        else:
            log.info("%s: training %s", label, rdir.name)
            train_run(cfg, data_dir, rdir, progress=progress, cache_dir=cache_dir)
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


def protocol_text(protocol: Mapping, *, n_splits: int = 1) -> str:
    """Human-readable protocol: name, ratio, subject-independence, LEAKY or not."""
    name = protocol["name"]
    p = protocol.get("params", {})
    bits = [name]
    if "test_ratio" in p and name != "loso":
        r = float(p["test_ratio"])
        bits.append(f"{round(10 * (1 - r))}:{round(10 * r)}")
    kind = protocol.get("kind")
    if protocol.get("leaky"):
        bits.append("LEAKY (train and test windows overlap)")
    elif kind == "subject":
        bits.append("subject-independent, not leaky")
    elif kind == "trial":
        bits.append("within-subject trials, subjects shared")
    if n_splits > 1:
        bits.append(f"{n_splits} repeated splits")
    return " · ".join(bits)


def collect(label_runs: Sequence[tuple[str, Sequence[Path]]]) -> dict:
    """Aggregate the run folders of each row (``[(label, dirs)]``) into one result per task.

    Returns
    -------
    dict
        ``{"rows": [{"label", "model", "task_set", "runs": [dirs], "protocol",
        "protocol_text", "seeds", "n_runs", "tasks": {task: {"kind", "n_classes",
        "class_names", "model"|"majority"|"prior_random"|...: {metric: {mean, std, n}},
        "confusion_sum"}}}]}``.
    """
    from symaffect.eval.metrics import aggregate_reports

    rows = []
    for label, dirs in label_runs:
        mets = [json.loads((Path(d) / "metrics.json").read_text()) for d in dirs]
        m0 = mets[0]
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
            }
        rows.append({
            "label": label,
            "model": m0["model"],
            "task_set": m0["task_set"],
            "runs": [str(d) for d in dirs],
            "protocol": m0["protocol"],
            "protocol_text": protocol_text(m0["protocol"], n_splits=len(dirs)),
            "leaky": bool(m0["protocol"].get("leaky")),
            "seeds": m0["seeds"],
            "windows": m0["windows"],
            "n_runs": int(sum(len(m["runs"]) for m in mets)),
            "tasks": tasks,
        })
    return {"rows": rows}


def task_groups(rows: Sequence[Mapping]) -> list[tuple[str, str, list[Mapping]]]:
    """``[(task_set, task, rows having it)]`` in order of first appearance."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for r in rows:
        for t in r["tasks"]:
            groups.setdefault((r["task_set"], t), []).append(r)
    return [(ts, t, rs) for (ts, t), rs in groups.items()]


def table_metrics(task_result: Mapping) -> list[str]:
    """The metric columns of a task: five classification metrics (+ MAE, within-one)."""
    if task_result["kind"] == "multilabel":
        return ["subset_acc", "macro_f1", "macro_precision", "hamming_acc"]
    keys = ["acc", "macro_f1", "macro_precision", "weighted_f1", "weighted_precision"]
    if task_result.get("ordinal"):
        keys += ["mae", "within_one"]
    return keys


def fmt_value(metric: str, stat: Mapping | None, *, std: bool = True) -> str:
    """``41.2 ± 3.1`` (percent) or ``1.93 ± 0.10`` (MAE); ``–`` when missing."""
    if stat is None:
        return "–"
    scale, nd = (100.0, 1) if metric in PERCENT_METRICS else (1.0, 2)
    txt = f"{scale * stat['mean']:.{nd}f}"
    if std and stat.get("n", 1) > 1:
        txt += f" ± {scale * stat['std']:.{nd}f}"
    return txt


def cell(task_result: Mapping, metric: str) -> str:
    """Model value with the majority baseline beside it: ``41.2 ± 3.1 (maj 35.0)``."""
    txt = fmt_value(metric, task_result.get("model", {}).get(metric))
    maj = task_result.get("majority", {}).get(metric)
    if maj is not None:
        txt += f" (maj {fmt_value(metric, maj, std=False)})"
    return txt


def task_title(suite_table: str, task_set: str, task: str, rows: Sequence[Mapping]) -> str:
    """Title of one table: paper table, task, label scheme, protocol (LEAKY or not)."""
    protos = sorted({r["protocol_text"] for r in rows})
    return (f"{suite_table} — {task}, {TASK_SET_LABELS.get(task_set, task_set)} — "
            f"protocol: {'; '.join(protos)}")


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in body]
    return "\n".join(lines)


def task_tables(result: Mapping, paper_table: str) -> list[dict]:
    """One table per (task set, task): ``{"title", "header", "rows", "note"}``."""
    out = []
    for ts, task, rows in task_groups(result["rows"]):
        tr0 = rows[0]["tasks"][task]
        keys = table_metrics(tr0)
        header = ["model", "runs", *[METRIC_LABELS[k] for k in keys]]
        body = [[r["label"], str(r["n_runs"]), *[cell(r["tasks"][task], k) for k in keys]] for r in rows]
        pr = tr0.get("prior_random", {}).get("acc")
        note = ("Model mean ± std over folds × seeds, in % (MAE in rating units); beside each number, "
                "(maj …) is the majority baseline: the most frequent *training* class predicted for "
                "every test window of the same split.")
        if pr is not None:
            note += f" Chance (guessing with the training class frequencies): {100 * pr['mean']:.1f} % accuracy."
        out.append({"title": task_title(paper_table, ts, task, rows), "task_set": ts, "task": task,
                    "header": header, "rows": body, "note": note})
    return out


def csv_text(result: Mapping, suite: str) -> str:
    """Long-format CSV: one line per (row, task, metric) with the baselines beside it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["suite", "label", "model", "task_set", "task", "protocol", "leaky", "metric",
                "mean", "std", "n", "majority_mean", "majority_std", "prior_random_mean"])
    for r in result["rows"]:
        for task, tr in r["tasks"].items():
            for k in table_metrics(tr):
                m = tr["model"].get(k)
                if m is None:
                    continue
                maj = tr.get("majority", {}).get(k, {})
                pr = tr.get("prior_random", {}).get(k, {})
                w.writerow([suite, r["label"], r["model"], r["task_set"], task, r["protocol_text"],
                            int(r["leaky"]), k, f"{m['mean']:.6g}", f"{m['std']:.6g}", m["n"],
                            f"{maj['mean']:.6g}" if maj else "", f"{maj['std']:.6g}" if maj else "",
                            f"{pr['mean']:.6g}" if pr else ""])
    return buf.getvalue()


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
        The JSON written (``rows``, ``tables``, ``figures``).
    """
    from symaffect.eval import figures
    from symaffect.eval.report import Report

    out = Path(out_dir)
    result = collect(label_runs)
    tables = task_tables(result, spec.paper_table)
    fig_dir = out / "figures"
    figs = {"bars": str(figures.suite_bars(result, fig_dir / f"{spec.name}_bars.png",
                                           title=f"{spec.paper_table}: {spec.description}"))}
    figs["confusion"] = {}
    labels = [r["label"] for r in result["rows"]]
    for r in result["rows"]:
        key = r["label"] if labels.count(r["label"]) == 1 else f"{r['label']}, {r['task_set']}"
        p = figures.confusion_grid(r, fig_dir / f"{spec.name}_confusion_{_slug(key)}.png",
                                   title=f"{spec.paper_table} · {key} · {r['protocol_text']}")
        if p is not None:
            figs["confusion"][key] = str(p)
    obj = {
        "format": SUITE_FORMAT,
        "version": 1,
        "suite": spec.name,
        "paper_table": spec.paper_table,
        "description": spec.description,
        "context": dict(context or {}),
        **result,
        "tables": tables,
        "figures": figs,
    }
    write_json(out / f"{spec.name}.json", obj)
    write_text(out / f"{spec.name}.csv", csv_text(result, spec.name))
    rep = Report(f"{spec.paper_table} ({spec.name}): {spec.description}")
    suite_report(rep, obj, out)
    rep.write(out / f"{spec.name}.md", out / f"{spec.name}.html")
    return obj


def suite_report(rep, obj: Mapping, out: Path, *, level: int = 2) -> None:
    """Add a suite's tables and figures to a :class:`~symaffect.eval.report.Report`."""
    ctx = obj.get("context", {})
    if ctx:
        rep.para(" · ".join(f"{k}: `{v}`" for k, v in ctx.items()))
    r0 = obj["rows"][0] if obj["rows"] else None
    if r0 is not None:
        w = r0["windows"]
        rep.para(f"Windows: {w['window_seconds']:g} s; training stride {w['train_stride_seconds']:g} s; "
                 f"test windows every {w['eval_stride_seconds']:g} s"
                 f"{' (non-overlapping)' if w['eval_stride_seconds'] >= w['window_seconds'] else ''}. "
                 f"Training seeds: {', '.join(map(str, r0['seeds']))}.")
    for t in obj["tables"]:
        rep.heading(t["title"], level)
        rep.table(t["header"], t["rows"])
        rep.para(t["note"])
    rep.heading("Figures", level)
    rep.image(Path(obj["figures"]["bars"]), "grouped bar chart", base=out)
    for label, p in obj["figures"]["confusion"].items():
        rep.image(Path(p), f"confusion matrices: {label}", base=out)


def run_suite(
    name: str,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    preset_name: str = "quick",
    models: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: int = 1,
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
    "SUITE_NAMES",
    "Entry",
    "SuiteSpec",
    "build_suite",
    "collect",
    "default_models",
    "make_config",
    "run_suite",
    "tiny_model_kwargs",
    "train_entries",
    "write_suite",
]
