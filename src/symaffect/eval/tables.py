"""Formatting of result tables: labels, cells, p-values and Markdown.

Shared by the suites (:mod:`symaffect.eval.suites`), their figures
(:mod:`symaffect.eval.figures`) and reports (:mod:`symaffect.eval.report`); it imports
none of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def fmt_p(p: float) -> str:
    """``p = 0.031`` or ``p < 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def fmt_delta(c: Mapping | None) -> str:
    """A paired comparison in percentage points: ``+3.1 [-1.2, +7.4], p = 0.160``; ``–`` when missing."""
    if c is None:
        return "–"
    pts = lambda x: f"{round(100 * x, 1) + 0.0:+.1f}"  # noqa: E731 - "+ 0.0": no "-0.0"
    return f"{pts(c['delta'])} [{pts(c['ci_low'])}, {pts(c['ci_high'])}], {fmt_p(c['p_value'])}"
