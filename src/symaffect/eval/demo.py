"""``symaffect demo``: the main job, end to end on a fresh machine in a few minutes.

1. Writes a synthetic data set in DEAP's exact format (default 8 subjects x 16 trials
   x 63 s, seed 0; :mod:`symaffect.data.synth`) into ``OUT/data`` (reused when it is
   already there with the same parameters).
2. Trains the paper's model and two baselines (XGBoost on per-window spectral features
   and the 1D-CNN) on the multi-task 9-class valence / arousal / liking task under the
   subject-wise 8:2 hold-out (no subject in two partitions; non-overlapping test
   windows), with the ``quick`` preset and the CPU budget of :data:`DEMO_CHANGES`.
3. Prints a results table with the majority baseline and the protocol, and writes
   ``OUT/report.html`` (self-contained, figures embedded) and ``OUT/report.md``.

Everything is written under ``OUT`` (default ``./symaffect-demo``): ``data/``,
``cache/`` (prepared windows), ``runs/`` (one run folder per model), ``figures/``,
``demo.json``, ``report.md``, ``report.html``. Running it again reuses finished runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from symaffect._io import write_json

log = logging.getLogger(__name__)

DEMO_MODELS: tuple[str, ...] = ("symaffect", "xgboost", "cnn1d")
"""The paper's model and two baselines (one tree ensemble, one deep)."""

DEMO_CHANGES: dict[str, Any] = {
    "optim.max_epochs": 4,
    "trainer.max_train_windows_per_epoch": 256,
}
"""The demo's CPU budget on top of the ``quick`` preset: at most 4 epochs of 256
randomly drawn training windows each (the quick preset allows 10 x 1024), so that the
whole demo stays well under 5 minutes on a 2-core CPU."""

TINY_CHANGES: dict[str, Any] = {
    "optim.max_epochs": 1,
    "optim.batch_size": 16,
    "data.window.window_seconds": 2.0,
    "data.window.stride_seconds": 1.0,
}
"""``tiny=True`` (tests): one epoch, 2-s windows, tiny models."""


def _ensure_data(folder: Path, *, n_subjects: int, n_trials: int, seconds: float, seed: int) -> tuple[Path, bool]:
    """Generate the synthetic set unless ``folder`` already holds the same one."""
    from symaffect.data.synth import generate

    meta = folder / "synth_meta.json"
    if meta.is_file():
        try:
            m = json.loads(meta.read_text())
            same = (m.get("n_subjects"), m.get("n_trials"), m.get("seed")) == (n_subjects, n_trials, seed) and abs(
                float(m.get("seconds", -1)) - seconds) < 1e-9
        except (ValueError, OSError):
            same = False
        if same:
            return folder, False
    generate(folder, n_subjects=n_subjects, n_trials=n_trials, seconds=seconds, seed=seed)
    return folder, True


def run_demo(
    out: str | Path = "symaffect-demo",
    *,
    n_subjects: int = 8,
    n_trials: int = 16,
    seconds: float = 63.0,
    seed: int = 0,
    models: Sequence[str] | None = None,
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
    n_subjects, n_trials, seconds, seed : int, int, float, int
        The synthetic data set (``seconds`` includes the 3-s baseline); ``seed`` is also
        the split and training seed.
    models : sequence of str, optional
        Default :data:`DEMO_MODELS`.
    tiny : bool
        Tiny models, one epoch, 2-s windows (for tests; the numbers mean nothing).
    window_seconds : float, optional
        Override the window length.
    progress : bool
        Lightning progress bars.
    console : rich.console.Console, optional
        Where to print progress lines and the results table (None: print nothing).
    """
    from symaffect.eval.suites import Entry, SuiteSpec, collect, make_config, tiny_model_kwargs, train_entries

    out = Path(out).resolve()
    models = list(models or DEMO_MODELS)
    say = (lambda msg: console.print(msg, highlight=False)) if console is not None else (lambda msg: None)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    say(f"[bold]symaffect demo[/] → everything goes to {out}")
    say(f"[bold][1/3][/] synthetic DEAP-format data: {n_subjects} subjects x {n_trials} trials x {seconds:g} s "
        f"(seed {seed})")
    data, made = _ensure_data(out / "data", n_subjects=n_subjects, n_trials=n_trials, seconds=seconds, seed=seed)
    timings["data"] = time.perf_counter() - t0
    say(f"      {'written' if made else 'already there, reused'}: {data} ({timings['data']:.1f} s)")

    changes = dict(TINY_CHANGES if tiny else DEMO_CHANGES)
    if window_seconds is not None:
        changes["data.window.window_seconds"] = float(window_seconds)
    mk = {m: tiny_model_kwargs(m) for m in models} if tiny else None
    entries = tuple(
        Entry(m, (make_config(m, preset_name="quick", seeds=(seed,), split_seed=seed, changes=changes,
                              model_kwargs=mk),))
        for m in models
    )
    spec = SuiteSpec("demo", "Demo", "the paper's model and two baselines, multi-task 9-class", entries)
    run_times: dict[str, float] = {}

    def on_run(i: int, n: int, label: str, rdir: Path, skipped: bool) -> None:
        run_times[label] = time.perf_counter()
        say(f"[bold][2/3][/] model {i + 1}/{n}: {label} "
            f"({'finished earlier, reused' if skipped else 'training + testing'}; {rdir.name})")

    t1 = time.perf_counter()
    label_runs = train_entries(spec, data, out, progress=progress, cache_dir=out / "cache", on_run=on_run)
    ends = sorted(run_times.items(), key=lambda kv: kv[1]) + [("_end", time.perf_counter())]
    for (label, start), (_, end) in zip(ends, ends[1:]):
        timings[f"run {label}"] = end - start
    timings["training total"] = time.perf_counter() - t1

    say("[bold][3/3][/] report")
    result = collect(label_runs)
    obj = _write_outputs(result, out, spec, models=models, changes=changes, tiny=tiny,
                         data_params={"n_subjects": n_subjects, "n_trials": n_trials, "seconds": seconds,
                                      "seed": seed, "folder": str(data)},
                         timings=timings, t0=t0)
    if console is not None:
        console.print(demo_table(obj))
        for line in obj["reading"]:
            console.print(f"• {line}", highlight=False, markup=False)
        console.print(f"report: {out / 'report.html'} (and report.md) · runs: {out / 'runs'} · "
                      f"total {obj['timings']['total']:.0f} s", highlight=False)
    return obj


def _best(result: dict, task: str) -> tuple[str, float]:
    rows = [(r["label"], r["tasks"][task]["model"]["acc"]["mean"]) for r in result["rows"]]
    return max(rows, key=lambda x: x[1])


def reading(result: dict) -> list[str]:
    """Plain sentences on what the numbers say (better than the majority baseline or not)."""
    lines = []
    rows = result["rows"]
    for task in rows[0]["tasks"]:
        maj = rows[0]["tasks"][task]["majority"]["acc"]["mean"]
        above = [r["label"] for r in rows if r["tasks"][task]["model"]["acc"]["mean"] > maj + 1e-9]
        best, acc = _best(result, task)
        lines.append(
            f"{task}: best {best} {100 * acc:.1f} % vs majority baseline {100 * maj:.1f} %; "
            + (f"above the baseline: {', '.join(above)}." if above else "no model beats the majority baseline.")
        )
    constant = sorted({r["label"] for r in rows for tr in r["tasks"].values() if _one_class(tr)})
    if constant:
        lines.append(
            f"{', '.join(constant)} predict{'s' if len(constant) == 1 else ''} a single class for every test "
            "window on at least one task: with this training budget such a model has learned no more than a "
            "class prior there (its scores then equal a constant baseline's)."
        )
    return lines


def _one_class(task_result: dict) -> bool:
    """Whether the summed confusion matrix has a single predicted class."""
    import numpy as np

    cm = task_result.get("confusion_sum")
    return cm is not None and int((np.asarray(cm).sum(axis=0) > 0).sum()) == 1


def demo_rows(obj: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows (per task: the majority baseline, then each model)."""
    from symaffect.eval.suites import fmt_value

    header = ["task", "model", "Acc %", "macro-F1 %", "macro-Prec %", "MAE", "±1 acc %"]
    body = []
    keys = ("acc", "macro_f1", "macro_precision", "mae", "within_one")
    rows = obj["rows"]
    for task in rows[0]["tasks"]:
        maj = rows[0]["tasks"][task]["majority"]
        body.append([task, "majority baseline", *[fmt_value(k, maj.get(k), std=False) for k in keys]])
        for r in rows:
            m = r["tasks"][task]["model"]
            body.append([task, r["label"], *[fmt_value(k, m.get(k)) for k in keys]])
    return header, body


def demo_table(obj: dict):
    """A :class:`rich.table.Table` of the demo's results."""
    from rich.table import Table

    header, body = demo_rows(obj)
    table = Table(title=f"symaffect demo · synthetic data · protocol {obj['protocol_text']} · "
                        f"{obj['n_test_subjects']} test subjects, {obj['n_test_windows']} test windows",
                  caption="majority baseline = most frequent training class, scored on the same test windows")
    for h in header:
        left = h in ("task", "model")
        table.add_column(h, justify="left" if left else "right", no_wrap=left)
    prev = None
    for row in body:
        if prev is not None and row[0] != prev:
            table.add_section()
        prev = row[0]
        table.add_row(*([f"[dim]{c}[/]" for c in row] if row[1] == "majority baseline" else row))
    return table


def _write_outputs(result: dict, out: Path, spec, *, models, changes, tiny, data_params, timings, t0) -> dict:
    from symaffect.eval import figures
    from symaffect.eval.suites import task_tables

    t_fig = time.perf_counter()
    r0 = result["rows"][0]
    run0 = json.loads((Path(r0["runs"][0]) / "metrics.json").read_text())["runs"][0]
    fig_dir = out / "figures"
    bars = figures.suite_bars(result, fig_dir / "demo_bars.png",
                              title=f"symaffect demo (synthetic data): accuracy, macro-F1, macro-precision per "
                                    f"model; protocol {r0['protocol_text']}")
    confs = {}
    for r in result["rows"]:
        p = figures.confusion_grid(r, fig_dir / f"demo_confusion_{r['label']}.png",
                                   title=f"{r['label']} · test windows of {len(run0['test_subjects'])} unseen "
                                         f"subjects · rows = true rating class")
        if p is not None:
            confs[r["label"]] = str(p)
    obj: dict[str, Any] = {
        "format": "symaffect-demo",
        "version": 1,
        "data": data_params,
        "models": models,
        "preset": "quick",
        "changes": changes,
        "tiny": tiny,
        "protocol": r0["protocol"],
        "protocol_text": r0["protocol_text"],
        "train_subjects": run0["train_subjects"],
        "val_subjects": run0["val_subjects"],
        "test_subjects": run0["test_subjects"],
        "n_test_subjects": len(run0["test_subjects"]),
        "n_test_windows": run0["n_test_windows"],
        "n_train_windows": run0["n_train_windows"],
        **result,
        "tables": task_tables(result, "Demo"),
        "figures": {"bars": str(bars), "confusion": confs},
    }
    obj["reading"] = reading(result)
    timings["figures"] = time.perf_counter() - t_fig
    timings["total"] = time.perf_counter() - t0
    obj["timings"] = {k: round(v, 2) for k, v in timings.items()}
    _report(obj, out).write(out / "report.md", out / "report.html")
    write_json(out / "demo.json", obj)
    return obj


def _report(obj: dict, out: Path):
    from symaffect.eval.report import Report

    d = obj["data"]
    w = obj["rows"][0]["windows"]
    ch = obj["changes"]
    rep = Report("symaffect demo: the paper's model and two baselines on synthetic DEAP-format data")
    rep.note(
        "**What these numbers are.** They come from *synthetic* data written by symaffect itself "
        f"({d['n_subjects']} subjects x {d['n_trials']} trials, seed {d['seed']}), not from DEAP. The generator "
        "builds in small, known label effects (see docs/synthetic.md), spread over EEG, peripheral signals and "
        "EOG, with strong subject-to-subject differences. The models are tested on subjects they never saw, "
        "after a few CPU minutes of training. **The paper's 92-98 % accuracies are not expected here**, and "
        "published leakage-free cross-subject results on the real DEAP are far lower than the paper's too. "
        "A model is only useful where it beats the majority baseline beside it."
    )
    if obj["tiny"]:
        rep.note("This run used tiny models, one epoch and short windows (a smoke test): the numbers mean nothing.")
    rep.heading("What was run", 2)
    rep.bullets([
        f"Data: `{d['folder']}` — {d['n_subjects']} synthetic subjects, {d['n_trials']} trials of "
        f"{d['seconds']:g} s each (3-s baseline dropped), DEAP's preprocessed format and channel layout.",
        f"Task: multi-task 9-class valence, arousal and liking (class = rounded rating 1-9), one model "
        f"for all three.",
        f"Protocol: **{obj['protocol_text']}** — train subjects {obj['train_subjects']}, validation "
        f"(early stopping) {obj['val_subjects']}, test {obj['test_subjects']}; no subject is in two of them.",
        f"Windows: {w['window_seconds']:g} s; training every {w['train_stride_seconds']:g} s "
        f"({obj['n_train_windows']} training windows); test windows non-overlapping "
        f"({obj['n_test_windows']} test windows).",
        f"Models: {', '.join(obj['models'])} (the paper's DTFE + cross-modal fusion model; XGBoost on per-window "
        "band powers and signal statistics; a 1D-CNN with the same heads and training pipeline).",
        "Training: the `quick` preset (Adam lr 1e-3, small models, early stopping on the validation valence "
        f"loss) limited to {ch.get('optim.max_epochs')} epoch(s) of at most "
        f"{ch.get('trainer.max_train_windows_per_epoch', 'all')} random training windows each, one seed. "
        "The models are far from converged.",
    ])
    rep.heading("Results", 2)
    header, body = demo_rows(obj)
    rep.table(header, body)
    rep.para("Accuracy, macro-F1 and macro-precision in % over the test windows; MAE in rating units "
             "(|predicted class - true class|); ±1-class accuracy: predictions within one rating of the truth. "
             "The majority baseline predicts the most frequent training class for every test window.")
    rep.heading("How to read this", 2)
    rep.bullets([
        *obj["reading"],
        f"Only {obj['n_test_subjects']} test subject{'s' if obj['n_test_subjects'] != 1 else ''} and one seed: "
        "differences of several points between models are within the noise of a single split. `symaffect bench table3 --folds 5 --seeds 0,1` repeats "
        "splits and seeds and reports mean ± std.",
        "9 classes with uneven rating frequencies make accuracy near the majority rate common; macro-F1 shows "
        "whether a model predicts more than one class; MAE shows whether its errors are small in rating units.",
    ])
    rep.image(Path(obj["figures"]["bars"]), "Accuracy / macro-F1 / macro-precision per model and task; "
              "dashed line: majority baseline accuracy, dotted: its macro-F1", base=out)
    for label, p in obj["figures"]["confusion"].items():
        rep.image(Path(p), f"Confusion matrices of {label} (counts; colour = share of the true class)", base=out)
    rep.heading("Time", 2)
    rep.table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in obj.get("timings", {}).items()])
    rep.heading("Next", 2)
    rep.code(
        f"symaffect bench table3 --data {d['folder']} --out bench   # the paper's Table 3, all baselines\n"
        f"symaffect audit --data {d['folder']} --out audit          # how leaky protocols inflate accuracy\n"
        f"symaffect train --data DEAP/data_preprocessed_python --out run --preset paper   # real DEAP"
    )
    return rep


__all__ = ["DEMO_CHANGES", "DEMO_MODELS", "demo_table", "run_demo"]
