"""Figures of the suites, the audit and the demo (matplotlib, Agg backend, PNG).

* :func:`suite_bars` — Figure-4-style grouped bars: per task, Acc / macro-F1 / macro-Prec
  of every model (mean, with the std over folds and seeds as error bars) and the
  majority baseline's accuracy and macro-F1 as horizontal lines.
* :func:`confusion_grid` — one row-normalised confusion matrix per task of a run
  (summed over folds and seeds), counts in the cells.
* :func:`audit_bars` — accuracy per protocol and task, majority baseline beside it,
  the leaky protocol marked.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from symaffect._io import atomic_write
from symaffect.eval.tables import TASK_SET_LABELS, task_groups

BAR_METRICS = {"multiclass": ("acc", "macro_f1", "macro_precision"),
               "multilabel": ("subset_acc", "macro_f1", "macro_precision")}
BAR_LABELS = ("Acc", "macro-F1", "macro-Prec")
COLORS = ("#3b6fb6", "#e08a2c", "#5aa469")


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    return path


def _wrap(label: str, width: int = 14) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def suite_bars(result: Mapping, path: str | Path, *, title: str) -> Path:
    """Grouped bar chart of a suite (see module docstring); returns ``path``.

    Parameters
    ----------
    result : dict
        :func:`symaffect.eval.suites.collect` output (``{"rows": [...]}``).
    path : path
        PNG to write.
    title : str
    """

    groups = task_groups(result["rows"])
    n_models = max(len(rs) for _, _, rs in groups)
    width = max(7.0, 1.05 * n_models + 2.5)
    fig = Figure(figsize=(width, 3.3 * len(groups) + 0.9), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False)
    for ax, (ts, task, rows) in zip(axes[:, 0], groups):
        kind = rows[0]["tasks"][task]["kind"]
        keys = BAR_METRICS[kind]
        x = np.arange(len(rows))
        w = 0.26
        for j, (k, lab, col) in enumerate(zip(keys, BAR_LABELS, COLORS)):
            means = [100 * r["tasks"][task]["model"].get(k, {}).get("mean", np.nan) for r in rows]
            stds = [100 * r["tasks"][task]["model"].get(k, {}).get("std", 0.0) for r in rows]
            ax.bar(x + (j - 1) * w, means, w, yerr=stds if any(stds) else None, capsize=2, color=col, label=lab)
        maj = rows[0]["tasks"][task].get("majority", {})
        if keys[0] in maj:
            ax.axhline(100 * maj[keys[0]]["mean"], color="k", ls="--", lw=1.2,
                       label=f"majority baseline {BAR_LABELS[0]}")
        if "macro_f1" in maj:
            ax.axhline(100 * maj["macro_f1"]["mean"], color="0.45", ls=":", lw=1.2,
                       label="majority baseline macro-F1")
        ax.set_xticks(x)
        ax.set_xticklabels([_wrap(r["label"]) for r in rows], fontsize=9)
        ax.set_ylabel("%")
        top = np.nanmax([100 * r["tasks"][task]["model"].get(k, {}).get("mean", 0) for r in rows for k in keys])
        ax.set_ylim(0, min(100.0, max(30.0, top * 1.25)))
        ax.set_title(f"{task} — {TASK_SET_LABELS.get(ts, ts)} — {rows[0]['protocol_text']}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        pad = max(0.7, (3 - len(rows)) / 2 + 0.3)
        ax.set_xlim(-pad, len(rows) - 1 + pad)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle(_wrap(title, int(14 * width)), fontsize=11)
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return _save(fig, Path(path))


def confusion_grid(row: Mapping, path: str | Path, *, title: str) -> Path | None:
    """Confusion matrices of one suite row (one panel per single-label task).

    Cells show counts; colour is the row-normalised rate (recall per true class).
    Returns None when the row has no single-label task (the multi-label branch).
    """
    tasks = [(t, tr) for t, tr in row["tasks"].items() if tr.get("confusion_sum") is not None]
    if not tasks:
        return None
    n = len(tasks)
    k = max(len(tr["confusion_sum"]) for _, tr in tasks)
    side = 1.8 + 0.36 * k
    fig = Figure(figsize=(side * n + 0.6, side + 0.9))
    axes = fig.subplots(1, n, squeeze=False)
    for ax, (task, tr) in zip(axes[0], tasks):
        cm = np.asarray(tr["confusion_sum"], dtype=float)
        rate = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
        names = tr.get("class_names") or [str(i) for i in range(len(cm))]
        names = [str(s) for s in names]
        if len(cm) == 9:
            names = [str(i + 1) for i in range(9)]  # rating classes 1..9
        ax.set_xticks(range(len(cm)))
        ax.set_yticks(range(len(cm)))
        ax.set_xticklabels(names, fontsize=8, rotation=0 if len(cm) > 3 else 0)
        ax.set_yticklabels(names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(len(cm)):
            for j in range(len(cm)):
                if cm[i, j]:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7 if len(cm) > 5 else 9,
                            color="white" if rate[i, j] > 0.55 else "black")
        acc = tr["model"]["acc"]["mean"] * 100
        ax.set_title(f"{task} (acc {acc:.1f} %)", fontsize=10)
    fig.suptitle(_wrap(title, 40 * n + 20), fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))


def audit_bars(rows: Sequence[Mapping], path: str | Path, *, title: str) -> Path:
    """Accuracy per protocol (groups) and task (bars), the majority baseline as a tick.

    Parameters
    ----------
    rows : sequence of dict
        ``{"protocol_label", "leaky", "tasks": {task: {"acc": mean, "acc_std", "majority": mean}}}``.
    """
    tasks = list(rows[0]["tasks"])
    x = np.arange(len(rows))
    w = 0.8 / len(tasks)
    fig = Figure(figsize=(max(7.5, 2.6 * len(rows) + 1.5), 4.4))
    ax = fig.subplots()
    for j, t in enumerate(tasks):
        off = (j - (len(tasks) - 1) / 2) * w
        acc = [100 * r["tasks"][t]["acc"] for r in rows]
        std = [100 * r["tasks"][t].get("acc_std", 0.0) for r in rows]
        maj = [100 * r["tasks"][t]["majority"] for r in rows]
        ax.bar(x + off, acc, w * 0.92, yerr=std if any(std) else None, capsize=2, color=COLORS[j % len(COLORS)], label=f"{t} accuracy")
        ax.hlines(maj, x + off - w * 0.46, x + off + w * 0.46, colors="k", lw=2,
                  label="majority baseline" if j == 0 else None)
        for xi, a in zip(x + off, acc):
            ax.text(xi, a + 1, f"{a:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels([_wrap(r["protocol_label"], 26) for r in rows],
                       fontsize=9)
    for lab, r in zip(ax.get_xticklabels(), rows):
        if r["leaky"]:
            lab.set_color("#b00020")
    top = max(100 * r["tasks"][t]["acc"] for r in rows for t in tasks)
    ax.set_ylim(0, max(60.0, top * 1.3))
    ax.set_yticks(range(0, int(min(100.0, ax.get_ylim()[1])) + 1, 20))
    ax.set_ylabel("accuracy, %")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(tasks) + 1, loc="upper right")
    ax.set_title(_wrap(title, 100), fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))


__all__ = ["audit_bars", "confusion_grid", "suite_bars"]
