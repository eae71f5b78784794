"""Learning curves of one fold/seed from its Lightning CSV logs.

A fold folder of :func:`symaffect.train.run.train_run` holds one CSVLogger version per
training attempt (``logs/version_N/metrics.csv``; a resumed run has several). Lightning
writes one CSV row per logging call, with empty cells for the metrics of other calls:

* epoch-level metrics of :class:`~symaffect.train.module.AffectModule`
  (``train/loss_epoch``, ``val/loss``, ``train/<task>_loss``, ``val/<task>_acc``,
  ``weights/<task>``, ...) on rows whose ``epoch`` is set;
* step-level metrics (``train/loss_step``), which are dropped here;
* the learning rate (``lr-Adam``, or ``lr-Adam/pg1`` ... with several parameter
  groups), logged at the *start* of an epoch on a row with an empty ``epoch``; it is
  given to the epoch of the next row that names one.

:func:`read_epoch_metrics` merges all of this into one row per epoch (a later version
replaces an earlier version's row of the same epoch: the resumed attempt re-ran it),
:func:`plot_learning_curves` draws loss and accuracy per epoch, and
:func:`write_learning_curves` writes ``learning_curves.png`` into the fold folder.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from symaffect._io import atomic_write

log = logging.getLogger(__name__)

CURVES_FILE = "learning_curves.png"
"""Name of the figure written into a fold folder."""

_VERSION = re.compile(r"version_(\d+)$")


def log_versions(fdir: str | Path) -> list[Path]:
    """The ``metrics.csv`` files of ``fdir/logs/version_N``, oldest version first.

    Parameters
    ----------
    fdir : path
        A fold folder (``RUN/fold0-seed0``).

    Returns
    -------
    list of Path
        Sorted by the version number N (numerically: version_10 after version_9).
    """
    found = []
    for p in Path(fdir, "logs").glob("version_*/metrics.csv"):
        m = _VERSION.search(p.parent.name)
        if m is not None and p.is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def _float(text: str | None) -> float:
    """A CSV cell as float; empty or missing (a cut-off last line) -> NaN."""
    if text is None or text.strip() == "":
        return math.nan
    return float(text)


def _read_version(path: Path) -> dict[int, dict[str, float]]:
    """One CSV file -> ``{epoch: {metric: value}}`` (last non-empty value per cell wins)."""
    with open(path, newline="") as f:
        text = f.read()
    rows: dict[int, dict[str, float]] = {}
    pending: dict[str, float] = {}  # epoch-less cells (the lr), for the next epoch seen
    for rec in csv.DictReader(io.StringIO(text)):
        epoch = _float(rec.get("epoch"))
        cells = {}
        for key, raw in rec.items():
            if key is None or key in ("epoch", "step") or key.endswith("_step"):
                continue
            v = _float(raw if isinstance(raw, str) else None)
            if not math.isnan(v):
                cells[key[: -len("_epoch")] if key.endswith("_epoch") else key] = v
        if math.isnan(epoch):
            pending.update(cells)
            continue
        row = rows.setdefault(int(epoch), {})
        if pending:
            for k, v in pending.items():
                row.setdefault(k, v)
            pending = {}
        row.update(cells)
    # an epoch cut short by a kill has step rows (and the lr) only: not an epoch's result
    return {e: r for e, r in rows.items() if any(not k.startswith("lr-") for k in r)}


def read_epoch_metrics(fdir: str | Path) -> list[dict[str, float]]:
    """Per-epoch metrics of a fold folder, merged over all its CSV log versions.

    Parameters
    ----------
    fdir : path
        A fold folder holding ``logs/version_N/metrics.csv``.

    Returns
    -------
    list of dict
        One dict per epoch, sorted by epoch: ``{"epoch": int, metric: float, ...}``
        holding only the metrics logged at that epoch. ``train/loss_epoch`` appears as
        ``train/loss`` (Lightning's ``_epoch`` suffix is removed; ``_step`` columns are
        dropped). Where two versions logged the same epoch, the later version's row
        replaces the earlier one (the resumed attempt re-ran that epoch); an epoch that
        logged no epoch-level metric (cut short by a kill) is left out.

    Raises
    ------
    FileNotFoundError
        No ``metrics.csv`` under ``fdir/logs``.
    ValueError
        The CSV files hold no epoch-level row (empty files, a run killed in its first
        epoch) or a cell that is not a number.
    """
    paths = log_versions(fdir)
    if not paths:
        raise FileNotFoundError(f"{Path(fdir) / 'logs'}: no version_N/metrics.csv")
    merged: dict[int, dict[str, float]] = {}
    for p in paths:
        merged.update(_read_version(p))
    if not merged:
        raise ValueError(f"{Path(fdir) / 'logs'}: no epoch-level rows in {len(paths)} CSV file(s)")
    return [{"epoch": e, **merged[e]} for e in sorted(merged)]


def tasks_of(rows: Sequence[Mapping[str, float]]) -> list[str]:
    """Task names with a logged accuracy (``train/<task>_acc`` or ``val/<task>_acc``), in order."""
    out: list[str] = []
    for r in rows:
        for k in r:
            m = re.fullmatch(r"(?:train|val)/(.+)_acc", k)
            if m and m.group(1) not in out:
                out.append(m.group(1))
    return out


def _series(rows: Sequence[Mapping[str, float]], key: str) -> tuple[list[int], list[float]]:
    pts = [(int(r["epoch"]), float(r[key])) for r in rows if key in r and not math.isnan(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_learning_curves(
    rows: Sequence[Mapping[str, float]],
    *,
    majority: Mapping[str, float] | None = None,
    best_epoch: int | None = None,
    title: str | None = None,
) -> Figure:
    """Training and validation loss and accuracy per epoch.

    Parameters
    ----------
    rows : sequence of dict
        :func:`read_epoch_metrics` output.
    majority : dict of task to float, optional
        Majority-class rate per task (e.g. of the training windows), drawn as a dashed
        horizontal line in the task's colour on the accuracy panel.
    best_epoch : int, optional
        The epoch of the kept checkpoint, marked by a vertical line on both panels.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Panel 1: ``train/loss`` and ``val/loss`` (the weighted total the optimiser
        minimises); panel 2: ``train/<task>_acc`` (solid) and ``val/<task>_acc``
        (dotted) per task, in %.
    """
    majority = dict(majority or {})
    fig = Figure(figsize=(11.0, 3.8), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, style, label in (("train/loss", "-o", "train"), ("val/loss", ":s", "validation")):
        x, y = _series(rows, key)
        if x:
            ax_loss.plot(x, y, style, ms=4, lw=1.4, label=label, color="black" if label == "train" else "grey")
    ax_loss.set_ylabel("loss (weighted total)")
    ax_loss.set_title("loss")
    colours = ("#3b6fb6", "#e08a2c", "#5aa469", "#b6443b", "#7b5aa6")
    for i, task in enumerate(tasks_of(rows)):
        c = colours[i % len(colours)]
        for stage, style in (("train", "-o"), ("val", ":s")):
            x, y = _series(rows, f"{stage}/{task}_acc")
            if x:
                ax_acc.plot(x, [100 * v for v in y], style, ms=4, lw=1.4, color=c,
                            label=f"{task} {'train' if stage == 'train' else 'val'}")
        if task in majority and majority[task] is not None:
            ax_acc.axhline(100 * float(majority[task]), color=c, ls="--", lw=1.0,
                           label=f"{task} majority {100 * float(majority[task]):.0f} %")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("accuracy (train: solid, validation: dotted)")
    ax_acc.set_ylim(-2, 102)
    epochs = [int(r["epoch"]) for r in rows]
    for ax in (ax_loss, ax_acc):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="#999999", lw=1.0, ls="-.", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        if epochs:
            lo, hi = min(epochs), max(epochs)
            ax.set_xlim(lo - 0.5, hi + 0.5)
            ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.lines and ax is ax_loss:
            ax.legend(fontsize=7, loc="best")
        elif ax.lines:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        ax.grid(alpha=0.3)
    if not rows or not ax_loss.lines:
        ax_loss.text(0.5, 0.5, "no loss logged", transform=ax_loss.transAxes, ha="center")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def write_learning_curves(
    fdir: str | Path,
    *,
    majority: Mapping[str, float] | None = None,
    best_epoch: int | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Read ``fdir``'s CSV logs and write ``fdir/learning_curves.png`` atomically.

    Parameters
    ----------
    fdir : path
        A fold folder (``RUN/fold0-seed0``).
    majority, best_epoch, title
        See :func:`plot_learning_curves`.
    dpi : int

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_epoch_metrics` (no logs, or no epoch-level rows in them).
    """
    fdir = Path(fdir)
    rows = read_epoch_metrics(fdir)
    fig = plot_learning_curves(rows, majority=majority, best_epoch=best_epoch, title=title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    path = fdir / CURVES_FILE
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
    return path


__all__ = [
    "CURVES_FILE",
    "log_versions",
    "plot_learning_curves",
    "read_epoch_metrics",
    "tasks_of",
    "write_learning_curves",
]
