"""Leakage audit: one model under a leaky, a within-subject and a subject-independent protocol.

``symaffect audit --data DIR --out DIR`` trains the same model (same preset, same seeds)
three times:

``window_random`` (LEAKY)
    random split of overlapping windows: test windows share trials with, and overlap in
    time, training windows.
``trial_holdout``
    each subject's trials split into train / val / test: no window overlap, but every
    test subject is also a training subject (not subject-independent).
``subject_holdout``
    subject-wise 8:2 hold-out: no subject in two partitions (the honest protocol).

For every protocol the audit measures, with the protocol guard in *measure* mode
(:func:`symaffect.data.protocols.guard`), the fraction of test windows that intersect a
training window in time and the number of subjects and trials shared by train and test,
and reports the accuracy (with the majority baseline) and its difference from the
subject-independent protocol. Output in ``OUT``: ``audit.md``, ``audit.html``,
``audit.json``, ``figures/audit_bars.png`` and the run folders in ``OUT/runs``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from symaffect._io import write_json
from symaffect.data.protocols import LeakyProtocolWarning, guard
from symaffect.eval import figures
from symaffect.eval.report import Report
from symaffect.eval.suites import (
    Entry,
    SuiteSpec,
    collect,
    make_config,
    provenance_para,
    suite_provenance,
    train_entries,
)
from symaffect.train.rundata import load_data, make_folds

log = logging.getLogger(__name__)

AUDIT_PROTOCOLS: tuple[str, ...] = ("window_random", "trial_holdout", "subject_holdout")
REFERENCE = "subject_holdout"


def measure_overlap(cfg, data_dir: str | Path, *, cache_dir: str | Path | None = None) -> dict:
    """Guard statistics (measure mode) of ``cfg``'s split, averaged over its folds.

    Returns
    -------
    dict
        ``test_overlapping_train`` (fraction of test windows intersecting a training
        window in time), ``shared_subjects`` and ``shared_trials`` between train and test.
    """

    prepared = load_data(cfg, data_dir, cache_dir=cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakyProtocolWarning)
        protocol, folds = make_folds(cfg, prepared)
    stats = [guard(f, protocol_kind=protocol.kind, mode="measure") for f in folds]
    n = len(stats)
    return {
        "test_overlapping_train": sum(s["test_overlapping_train"] for s in stats) / n,
        "val_overlapping_train": sum(s["val_overlapping_train"] for s in stats) / n,
        "shared_subjects": max(s["shared_subjects"]["train-test"] for s in stats),
        "shared_trials": max(s["shared_trials"]["train-test"] for s in stats),
        "n_test_subjects": max(len(f.test_subjects) for f in folds),
        "n_folds": n,
    }


def run_audit(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    preset_name: str = "quick",
    model: str = "symaffect",
    seeds: Sequence[int] | None = None,
    test_ratio: float = 0.2,
    changes: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Mapping] | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    on_run: Callable[[int, int, str, Path, bool], None] | None = None,
) -> dict:
    """Train ``model`` under the three protocols of :data:`AUDIT_PROTOCOLS` and write the audit.

    Parameters
    ----------
    data_dir, out_dir : path
    preset_name : {"quick", "paper"}
    model : str
    seeds : sequence of int, optional
    test_ratio : float
        Test fraction of every protocol (subjects, trials or windows).
    changes, model_kwargs
        See :func:`symaffect.eval.suites.make_config`.
    progress, cache_dir, on_run
        See :func:`symaffect.eval.suites.train_entries`.

    Returns
    -------
    dict
        What ``audit.json`` holds: ``rows`` (one per protocol: accuracy per task with the
        majority baseline, the difference from subject-holdout in points, the measured
        overlap) and ``verdict`` (plain sentences).
    """

    out = Path(out_dir)
    entries = tuple(
        Entry(p, (make_config(model, preset_name=preset_name, protocol=p, test_ratio=test_ratio, seeds=seeds,
                              changes=changes, model_kwargs=model_kwargs),))
        for p in AUDIT_PROTOCOLS
    )
    spec = SuiteSpec("audit", "Leakage audit", f"{model} under three protocols", entries)
    label_runs = train_entries(spec, data_dir, out, progress=progress, cache_dir=cache_dir, on_run=on_run)
    result = collect(label_runs)
    rows = []
    for e, r in zip(entries, result["rows"]):
        ov = measure_overlap(e.configs[0], data_dir, cache_dir=cache_dir)
        rows.append({
            "protocol_config": e.label,
            "protocol": r["protocol"],
            "protocol_label": r["protocol_text"],
            "leaky": r["leaky"],
            "subject_independent": r["protocol"]["kind"] == "subject",
            "overlap": ov,
            "runs": r["runs"],
            "tasks": {
                t: {
                    "acc": tr["model"]["acc"]["mean"],
                    "acc_std": tr["model"]["acc"]["std"],
                    "macro_f1": tr["model"]["macro_f1"]["mean"],
                    "majority": tr["majority"]["acc"]["mean"],
                    "majority_macro_f1": tr["majority"]["macro_f1"]["mean"],
                    "n_test_windows": tr["n_test_windows"],
                }
                for t, tr in r["tasks"].items()
                if "acc" in tr["model"]
            },
        })
    ref = next(r for r in rows if r["protocol_config"] == REFERENCE)
    for r in rows:
        for t, v in r["tasks"].items():
            v["acc_minus_subject_independent"] = v["acc"] - ref["tasks"][t]["acc"]
    obj = {
        "format": "symaffect-audit",
        "version": 1,
        "model": model,
        "preset": preset_name,
        "data": str(data_dir),
        "reference": REFERENCE,
        "rows": rows,
        "verdict": verdict(rows),
    }
    _write(obj, out)
    return obj


def _diffs(r: Mapping) -> str:
    return ", ".join(f"{t} {100 * v['acc_minus_subject_independent']:+.1f}" for t, v in r["tasks"].items())


def verdict(rows: Sequence[Mapping]) -> list[str]:
    """Plain sentences: which protocol leaks, by how much (points vs subject-independent)."""
    ref = next(r for r in rows if r["protocol_config"] == REFERENCE)
    lines = []
    for r in rows:
        ov = r["overlap"]
        accs = ", ".join(f"{t} {100 * v['acc']:.1f} % (majority {100 * v['majority']:.1f} %)"
                         for t, v in r["tasks"].items())
        name = r["protocol"]["name"]
        if r["leaky"]:
            lines.append(
                f"{name} is LEAKY: {100 * ov['test_overlapping_train']:.0f} % of its test windows overlap a "
                f"training window in time (same subject and trial; measured by the protocol guard), and "
                f"{ov['shared_trials']} trials are on both sides. Accuracy {accs}; difference from "
                f"{ref['protocol']['name']} in points: {_diffs(r)}."
            )
        elif not r["subject_independent"]:
            lines.append(
                f"{name} is not subject-independent: {ov['shared_subjects']} of its test subjects are also "
                f"training subjects (other trials; {100 * ov['test_overlapping_train']:.0f} % window overlap). "
                f"Accuracy {accs}; difference from {ref['protocol']['name']} in points: {_diffs(r)}."
            )
        else:
            lines.append(
                f"{name} is the honest protocol: {ov['shared_subjects']} shared subjects and "
                f"{100 * ov['test_overlapping_train']:.0f} % window overlap between train and test. "
                f"Accuracy {accs}."
            )
    return lines


def audit_rows(obj: Mapping) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the audit table (one row per protocol and task)."""
    header = ["protocol", "leaky", "task", "Acc %", "majority %", "macro-F1 %", "Δ Acc vs subject-holdout",
              "test windows overlapping train", "shared subjects"]
    body = []
    for r in obj["rows"]:
        for t, v in r["tasks"].items():
            body.append([
                r["protocol_label"], "LEAKY" if r["leaky"] else "no", t,
                f"{100 * v['acc']:.1f}" + (f" ± {100 * v['acc_std']:.1f}" if v["acc_std"] else ""),
                f"{100 * v['majority']:.1f}", f"{100 * v['macro_f1']:.1f}",
                f"{100 * v['acc_minus_subject_independent']:+.1f}",
                f"{100 * r['overlap']['test_overlapping_train']:.0f} %",
                str(r["overlap"]["shared_subjects"]),
            ])
    return header, body


def audit_table(obj: Mapping):
    """A :class:`rich.table.Table` of the audit."""

    header, body = audit_rows(obj)
    table = Table(title=f"Leakage audit · {obj['model']} · same model, three protocols",
                  caption="Δ = accuracy minus the subject-independent protocol's, in points")
    for h in header:
        table.add_column(h, justify="left" if h in ("protocol", "task") else "right")
    for row in body:
        if row[1] == "LEAKY":
            row = [f"[bold red]{c}[/]" if i < 2 else c for i, c in enumerate(row)]
        table.add_row(*row)
    return table


def _write(obj: dict, out: Path) -> None:

    fig = figures.audit_bars(obj["rows"], out / "figures" / "audit_bars.png",
                             title=f"Leakage audit: {obj['model']}, accuracy per protocol "
                                   "(black tick = majority baseline)")
    obj["figures"] = {"bars": str(fig)}
    obj["provenance"] = suite_provenance([(r["protocol_config"], r["runs"]) for r in obj["rows"]])
    write_json(out / "audit.json", obj)
    rep = Report(f"Leakage audit: {obj['model']} under three protocols")
    provenance_para(rep, obj["provenance"])
    rep.para(f"data: `{obj['data']}` · preset: `{obj['preset']}`. The same model and settings, "
             "trained three times; only the split differs.")
    rep.heading("Verdict", 2)
    rep.bullets(obj["verdict"])
    rep.heading("Results", 2)
    header, body = audit_rows(obj)
    rep.table(header, body)
    rep.para("Overlap: the fraction of test windows that share subject and trial with, and intersect in "
             "time, a training window (protocol guard, measure mode). Majority: the most frequent training "
             "class predicted for every test window of the same split.")
    rep.image(fig, "accuracy per protocol", base=out)
    rep.write(out / "audit.md", out / "audit.html")


__all__ = ["AUDIT_PROTOCOLS", "audit_table", "measure_overlap", "run_audit", "verdict"]
