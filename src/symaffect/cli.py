"""The ``symaffect`` command line: each command builds a config and calls the library."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from symaffect.errors import Interrupted, SymaffectError, reading
from symaffect.extras import EXTRA_OF, missing_message, require
from symaffect.run_folder import CONFIG

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Inspect and validate data folders.")
app.add_typer(data_app, name="data")


console = Console()
err_console = Console(stderr=True)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point. Every user-facing error -- a usage error (bad, unknown or missing option
    or argument), a :class:`SymaffectError` (bad data or config), running out of memory on
    an input, or an OS error on a named file (no permission, no such folder, disk full) --
    becomes one line on stderr and exit code 2; SIGTERM during training becomes one line and
    128 + signal (143). Anything else is a bug and keeps its traceback.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        rc = app(args=args, prog_name="symaffect", standalone_mode=False)  # Exit(code) comes back here
    except SymaffectError as e:
        _fail(f"error: {e}")
    except Interrupted as e:
        _fail(str(e), 128 + e.signum)
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in EXTRA_OF:
            raise  # not an optional dependency: a broken install, keep the traceback
        _fail(f"error: {missing_message(top, 'this command')}")
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except MemoryError:
        inputs = [a for a in args if not a.startswith("-") and Path(a).exists()]
        _fail(f"error: {', '.join(inputs) or 'input'}: out of memory while reading it (too large or corrupt)")
    except OSError as e:
        if e.filename is None:
            raise
        _fail(f"error: {e.filename}: {e.strerror or e}")  # no permission, no such folder, disk full, ...
    except Exception as e:
        line = _usage_error_line(e)
        if line is None:
            raise  # a bug: keep the traceback
        _fail(line)
    if isinstance(rc, int) and rc:
        sys.exit(rc)


def _fail(line: str, code: int = 2) -> None:
    sys.stdout.flush()
    sys.stderr.write(" ".join(line.split()) + "\n")  # exactly one line, whatever the message holds
    sys.stderr.flush()
    sys.exit(code)


def _usage_error_line(e: Exception) -> Optional[str]:
    """One line for a usage error of typer's own click copy (``typer._click``; its
    exceptions derive from ``typer.TyperException``) or of the click package; None otherwise."""
    import click

    if not isinstance(e, (typer.TyperException, click.ClickException)):
        return None
    ctx = getattr(e, "ctx", None)
    cmd = getattr(ctx, "command_path", None) or "symaffect"
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
        sys.stdout.write(ctx.get_help() + "\n")
        return f"error: {cmd}: a command is needed (see the list above)"
    return f"error: {cmd}: {e.format_message()} (see '{cmd} --help')"


# --- validation at the door: every number, path and choice before any work ------------

INT64_MAX = 2**63 - 1
SEED_MAX = 2**32 - 1  # numpy's and Lightning's seed range
MAX_COUNT = 10**6  # subjects, trials, epochs, steps, windows, ...
MAX_SECONDS = 86_400.0


def _door(check: Callable[[Any], None]) -> Callable[[Any], Any]:
    """A typer callback running ``check`` on the value (each value of a list; None skipped).

    ``check`` raises :class:`typer.BadParameter`; typer attaches the option's name and
    :func:`main` prints it as one line with exit code 2.
    """

    def callback(value: Any) -> Any:
        if value is not None:
            for v in value if isinstance(value, (list, tuple)) else (value,):
                check(v)
        return value

    callback.door_check = True  # every numeric option has one (tests/robustness/test_cli_robustness.py)
    return callback


def number(*, gt: float | None = None, ge: float | None = None, lt: float | None = None,
           le: float | None = None) -> Callable[[Any], Any]:
    """A callback accepting only finite numbers within the bounds."""

    def check(v: float) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            raise typer.BadParameter(f"must be a finite number, got {v}")
        for ok, rel, bound in ((gt is None or v > gt, ">", gt), (ge is None or v >= ge, ">=", ge),
                               (lt is None or v < lt, "<", lt), (le is None or v <= le, "<=", le)):
            if not ok:
                raise typer.BadParameter(f"must be {rel} {bound:g}, got {v:g}" if isinstance(v, float)
                                         else f"must be {rel} {bound}, got {v}")

    return _door(check)


def choice(*allowed: str) -> Callable[[Any], Any]:
    """A callback accepting only one of ``allowed``."""

    def check(v: str) -> None:
        if v not in allowed:
            raise typer.BadParameter(f"{v!r} is not one of {', '.join(allowed)}")

    return _door(check)


def int_list(*, ge: int = 0, le: int = SEED_MAX) -> Callable[[Any], Any]:
    """A callback for a comma-separated list of integers in ``ge..le`` (e.g. seeds "0,1,2")."""

    def check(v: str) -> None:
        items = [t.strip() for t in v.split(",") if t.strip()]
        if not items:
            raise typer.BadParameter(f"{v!r} holds no integer")
        for t in items:
            try:
                n = int(t)
            except ValueError:
                raise typer.BadParameter(f"{t!r} is not an integer (give e.g. 0,1,2)") from None
            if not ge <= n <= le:
                raise typer.BadParameter(f"{n} is not in {ge}..{le}")

    return _door(check)


def _no_file_above(path: Path) -> None:
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise typer.BadParameter(f"{str(parent)!r} is an existing file, not a folder")
        if parent.exists():
            return


def out_folder(*, empty_unless: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    """A callback for a folder to write into: not a file (nor under one). With
    ``empty_unless``, an existing non-empty folder must hold one of those names (our own
    earlier output), so that nobody else's files are overwritten or mixed in."""

    def check(v: Path) -> None:
        v = Path(v)
        if v.exists() and not v.is_dir():
            raise typer.BadParameter(f"{str(v)!r} is an existing file; give a folder")
        _no_file_above(v.parent)
        others = v.is_dir() and any(not f.name.startswith(".") for f in v.iterdir())  # .tmp of atomic writes
        if empty_unless and others and not any((v / n).exists() for n in empty_unless):
            raise typer.BadParameter(
                f"{str(v)!r} holds other files; give a new or empty folder (or one this command wrote)")

    return _door(check)


def out_file(*suffixes: str) -> Callable[[Any], Any]:
    """A callback for a file to write: not a folder, not under a file, one of ``suffixes``."""

    def check(v: Path) -> None:
        v = Path(v)
        if v.is_dir():
            raise typer.BadParameter(f"{str(v)!r} is a folder; give a file name")
        if suffixes and v.suffix.lower() not in suffixes:
            listed = ", ".join(suffixes[:-1]) + " or " + suffixes[-1] if len(suffixes) > 1 else suffixes[0]
            raise typer.BadParameter(f"{str(v)!r} must end in {listed}")
        _no_file_above(v.parent)

    return _door(check)


POSITIVE_SECONDS = number(gt=0, le=MAX_SECONDS)
COUNT = number(ge=1, le=MAX_COUNT)
SEED = number(ge=0, le=SEED_MAX)
THREADS = number(ge=1, le=1024)
SFREQ = number(ge=1, le=100_000)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")  # symaffect.train.config.ACCELERATORS
PRESETS = ("paper", "quick")


# --- data commands (issue 3) ---------------------------------------------------------


@data_app.command("check")
def data_check(
    folder: Annotated[Path, typer.Argument(help="A folder of DEAP sNN.dat (or sNN.mat) files.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    window_seconds: Annotated[float, typer.Option(callback=POSITIVE_SECONDS, help="Window length in seconds.")] = 10.0,
    stride_seconds: Annotated[
        float, typer.Option(callback=POSITIVE_SECONDS, help="Training-window stride in seconds.")
    ] = 1.0,
) -> None:
    """Validate a DEAP folder and summarise it (exit 2 with one line on bad input)."""
    import json

    from symaffect.data.check import check_folder, render_summary

    summary = check_folder(folder, window_seconds=window_seconds, train_stride_seconds=stride_seconds)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        for part in render_summary(summary):
            console.print(part)


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(
        callback=out_folder(empty_unless=("synth_meta.json",)),
        help="Folder to write sNN.dat, participant_ratings.csv, synth_meta.json (new, empty, or an earlier synth's).")],
    subjects: Annotated[int, typer.Option(
        "--subjects", callback=number(ge=1, le=99), help="Number of subjects (s01..sNN).")] = 32,
    trials: Annotated[int, typer.Option(
        "--trials", callback=number(ge=1, le=1000), help="Trials (videos) per subject.")] = 40,
    seconds: Annotated[float, typer.Option(
        "--seconds", callback=number(gt=0, le=3600), help="Trial length incl. the 3-s baseline.")] = 63.0,
    seed: Annotated[int, typer.Option("--seed", callback=SEED, help="Seed of every random stream.")] = 0,
    effect_scale: Annotated[float, typer.Option(
        "--effect-scale", callback=number(ge=0, le=1000), help="Scale of all label effects (0: none).")] = 1.0,
    jobs: Annotated[int, typer.Option(
        "--jobs", callback=THREADS, help="Worker processes (the files do not depend on it).")] = 1,
) -> None:
    """Write a synthetic data set in DEAP's exact preprocessed format (see docs/synthetic.md)."""
    import time

    from symaffect.data.synth import generate
    from symaffect.spec import SFREQ

    t0 = time.perf_counter()
    folder = generate(out, n_subjects=subjects, n_trials=trials, seconds=seconds, seed=seed,
                      effect_scale=effect_scale, n_jobs=jobs)
    n_samples = int(round(seconds * SFREQ))
    console.print(
        f"wrote {subjects} subject files s01.dat..s{subjects:02d}.dat "
        f"({trials} trials x 40 channels x {n_samples} samples, float64), "
        f"participant_ratings.csv and synth_meta.json to {folder} "
        f"(seed {seed}, effect_scale {effect_scale:g}) in {time.perf_counter() - t0:.1f} s",
        markup=False, highlight=False, soft_wrap=True,
    )


# --- model commands (issue 4) --------------------------------------------------------


@app.command("explain")
def explain_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `symaffect train`.")],
    data: Annotated[Path, typer.Option(help="The data folder the run was trained on.")],
    out: Annotated[Optional[Path], typer.Option(
        callback=out_folder(), help="Figure folder (default RUN_DIR/explain).")] = None,
    n_windows: Annotated[int, typer.Option(callback=COUNT, help="Test windows to average over.")] = 64,
) -> None:
    """Figures of what the model attends to: CSI channel affinities, ISI gate vs Hz, attention.

    Says (on the figure and here) when a learned quantity has no structure.
    """
    from symaffect.eval.explain import explain_run

    figs = explain_run(run_dir, data, out_dir=out, n_windows=n_windows)
    for p in figs.paths:
        console.print(str(p), highlight=False)
    for note in figs.notes:
        console.print(f"note: {note}", highlight=False, markup=False)


# --- training and experiments (issue 5) ----------------------------------------------


def _quiet_lightning() -> None:
    """Keep Lightning's info lines and known-harmless warnings off the terminal."""
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for msg in (r".*does not have many workers.*", r".*LeafSpec.*", r".*exists and is not empty.*",
                r".*Experiment logs directory.*", r".*GPU available but not used.*"):
        warnings.filterwarnings("ignore", message=msg)


@app.command("train")
def train_cmd(
    out: Annotated[Path, typer.Option(callback=out_folder(empty_unless=(CONFIG,)),
                                      help="Run folder (created; an unfinished run there resumes).")],
    data: Annotated[Optional[Path], typer.Option(help="A folder of DEAP sNN.dat files.")] = None,
    ratings: Annotated[Optional[Path], typer.Option(
        help="Instead of --data, your own recordings: a ratings CSV (subject, trial, valence, arousal, liking; "
             "recording = a file MNE reads, relative to the CSV; onset + duration in s, or track = its "
             "annotation).")] = None,
    model: Annotated[Optional[str], typer.Option(
        help="Registered model, xgboost, a 'symaffect.models' entry point, or package.module:Class "
             "(trusted for this run; later commands need SYMAFFECT_TRUSTED_MODELS) (default symaffect).")] = None,
    protocol: Annotated[
        Optional[str],
        typer.Option(help="subject_holdout | subject_kfold | loso | trial_holdout | window_random (leaky)."),
    ] = None,
    test_ratio: Annotated[Optional[float], typer.Option(
        callback=number(gt=0, lt=1), help="Test fraction of subjects (hold-out).")] = None,
    preset: Annotated[str, typer.Option(
        callback=choice(*PRESETS), help="paper (the paper's settings) or quick (CPU minutes).")] = "paper",
    config: Annotated[Optional[Path], typer.Option(help="YAML config; its keys override the preset.")] = None,
    seed: Annotated[Optional[list[int]], typer.Option(callback=SEED, help="Seed (repeat for several).")] = None,
    max_epochs: Annotated[Optional[int], typer.Option(callback=COUNT)] = None,
    devices: Annotated[Optional[int], typer.Option(
        callback=number(ge=1, le=1024), help=">1: DDP (or launch with torchrun).")] = None,
    accelerator: Annotated[Optional[str], typer.Option(
        callback=choice(*ACCELERATORS), help="cpu | gpu | cuda | mps | auto.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(callback=out_folder(), help="Prepared-data cache.")] = None,
) -> None:
    """Train and test one run; write config.yaml, splits.json, metrics.json, model.pt."""
    import yaml

    from symaffect.train.config import RunConfig
    from symaffect.train.config import preset as make_preset
    from symaffect.eval.scoring import metrics_table, train_and_score
    from symaffect.run_folder import RunFolder
    from symaffect.train.run import is_global_zero

    if (data is None) == (ratings is None):
        raise typer.BadParameter("give exactly one of --data (DEAP files) and --ratings (your recordings)",
                                 param_hint="--data / --ratings")
    _quiet_lightning()
    if model is not None and ":" in model:  # an import path typed by the user: their explicit choice
        from symaffect.models.registry import model_class, trust_models

        trust_models(model)  # ConfigError: not 'package.module:Class'
        model_class(model)  # import it now: a wrong path fails before any data is read
    base = make_preset(preset, model=model or "symaffect").to_dict()
    if config is not None:
        RunConfig.from_yaml(config)  # check its keys and values first (ConfigError naming the file)
        _merge(base, yaml.safe_load(config.read_text(encoding="utf-8")) or {})
    changes: dict = {}
    if model is not None:
        changes["model.name"] = model
    if protocol is not None:
        changes["protocol.name"] = protocol
    if test_ratio is not None:
        changes["protocol.test_ratio"] = test_ratio
    if seed:
        changes["seeds"] = tuple(seed)
    if max_epochs is not None:
        changes["optim.max_epochs"] = max_epochs
    if devices is not None:
        changes["trainer.devices"] = devices
        if devices > 1 and base["trainer"]["strategy"] == "auto":
            changes["trainer.strategy"] = "ddp"
    if accelerator is not None:
        changes["trainer.accelerator"] = accelerator
    cfg = RunConfig.from_dict(base).replace(**changes)
    extra: dict = {}
    if ratings is not None:  # own recordings: records in memory, no .dat files written
        from symaffect.data.mne_records import records_from_mne
        from symaffect.data.prepare import prepare_records
        from symaffect.train.rundata import RunData

        recs = records_from_mne(None, ratings, baseline_seconds=cfg.data.window.baseline_seconds)
        extra["data"] = RunData.split(cfg, "<records>",
                                      prepared=prepare_records(recs, window=cfg.data.window, norm=cfg.data.norm))
    run = train_and_score(cfg, data if data is not None else ratings, out, progress=True, cache_dir=cache_dir,
                          **extra)
    if is_global_zero():
        console.print(metrics_table(RunFolder(run).read_metrics()))
        console.print(f"run folder: {run}", highlight=False)


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict) and k != "kwargs":
            _merge(base[k], v)
        else:
            base[k] = v


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `symaffect train`.")],
    data: Annotated[Optional[Path], typer.Option(help="The DEAP folder the run was trained on.")] = None,
    ratings: Annotated[Optional[Path], typer.Option(
        help="Instead of --data: the ratings CSV of your recordings the run was trained on (train --ratings).")
    ] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(callback=out_folder(), help="Prepared-data cache.")] = None,
) -> None:
    """Re-score a run's saved best models on their test windows; rewrite metrics.json."""
    if (data is None) == (ratings is None):
        raise typer.BadParameter("give exactly one of --data (DEAP files) and --ratings (your recordings)",
                                 param_hint="--data / --ratings")
    from symaffect.eval.scoring import metrics_table, score_run

    _quiet_lightning()
    prepared_data = None
    if ratings is not None:  # the same records as train --ratings, the folds saved in the run
        from symaffect.data.mne_records import records_from_mne
        from symaffect.data.prepare import prepare_records
        from symaffect.run_folder import RunFolder
        from symaffect.train.config import RunConfig
        from symaffect.train.rundata import RunData

        folder = RunFolder(run_dir).require()
        cfg = RunConfig.from_yaml(folder.config)
        recs = records_from_mne(None, ratings, baseline_seconds=cfg.data.window.baseline_seconds)
        prepared_data = RunData.from_splits(cfg, folder.splits, "<records>", prepared=prepare_records(
            recs, window=cfg.data.window, norm=cfg.data.norm))
    console.print(metrics_table(score_run(run_dir, data, cache_dir=cache_dir, data=prepared_data)))


def _split_csv(text: Optional[str], cast=str) -> Optional[list]:
    if not text:
        return None
    return [cast(t.strip()) for t in text.split(",") if t.strip()]


def _budget_changes(max_epochs: Optional[int], train_windows: Optional[int]) -> dict:
    changes: dict = {}
    if max_epochs is not None:
        changes["optim.max_epochs"] = max_epochs
    if train_windows is not None:
        changes["trainer.max_train_windows_per_epoch"] = train_windows
    return changes


def _on_run(i: int, n: int, label: str, run_dir: Path, skipped: bool) -> None:
    what = "already finished, reused" if skipped else "training"
    console.print(f"[bold]run {i + 1}/{n}[/] {label}: {what} ({run_dir.name})", highlight=False)


@app.command("bench")
def bench_cmd(
    suite: Annotated[str, typer.Argument(
        help="table2 | table3 | table4 | table5 | table6 | table7 | calibration (per-listener calibration).")],
    data: Annotated[Path, typer.Option(help="A folder of DEAP sNN.dat files.")],
    out: Annotated[Path, typer.Option(
        callback=out_folder(), help="Output folder (runs/ inside is shared by suites; resumes).")],
    preset: Annotated[str, typer.Option(
        callback=choice(*PRESETS), help="quick (CPU) or paper (the paper's settings).")] = "quick",
    models: Annotated[Optional[str], typer.Option(help="Comma-separated models (table3-5: default all).")] = None,
    seeds: Annotated[Optional[str], typer.Option(
        callback=int_list(), help="Comma-separated training seeds, e.g. 0,1.")] = None,
    folds: Annotated[int, typer.Option(
        callback=number(ge=1, le=100),
        help="Subject splits: N-fold subject CV for the 8:2 tables (2, 3, 6, 7; 5 folds = 8:2), N repeated "
             "hold-outs with split seeds 0..N-1 for 7:3 / 6:4 (4, 5); 1 = one hold-out (no spread).")] = 5,
    max_epochs: Annotated[Optional[int], typer.Option(callback=COUNT, help="Override the preset's epochs.")] = None,
    train_windows: Annotated[Optional[int], typer.Option(
        callback=number(ge=1, le=INT64_MAX), help="Training windows per epoch (random subset; CPU budget).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(callback=out_folder(), help="Prepared-data cache.")] = None,
    ks: Annotated[Optional[str], typer.Option(
        callback=int_list(), help="calibration: numbers of rated tracks K (default 0,1,2,4,8).")] = None,
    draws: Annotated[int, typer.Option(
        callback=number(ge=1, le=1000), help="calibration: random draws of the calibration tracks.")] = 5,
    task_sets: Annotated[Optional[str], typer.Option(
        help="calibration: comma-separated task sets (default binary_arousal,binary_valence).")] = None,
) -> None:
    """Run one of the paper's experiments; write SUITE.md/.html/.csv/.json and figures into OUT.

    Mean ± std over folds × seeds, majority baseline beside each number, Δ with 95 % CI and p over test subjects.
    `calibration`: K rated tracks of each held-out listener calibrate, their other tracks test
    (calibration.md, calibration-<task set>.png, calibration.json).
    """
    from symaffect.eval.suites import run_suite

    _quiet_lightning()
    if suite == "calibration":
        from symaffect.eval.calibration import DEFAULT_TASK_SETS, KS, run_calibration_bench

        obj = run_calibration_bench(
            data, out, task_sets=_split_csv(task_sets) or DEFAULT_TASK_SETS, ks=_split_csv(ks, int) or KS,
            draws=draws, folds=folds, model=(_split_csv(models) or ["symaffect"])[0], preset_name=preset,
            cache_dir=cache_dir, changes=_budget_changes(max_epochs, train_windows),
            on_step=lambda line: console.print(line, highlight=False),
        )
        console.print((out / "calibration.md").read_text(encoding="utf-8"), highlight=False, markup=False)
        console.print(f"wrote {out / 'calibration.md'}, calibration.json and the figures "
                      f"({obj['seconds_total']:.0f} s)", highlight=False)
        return
    obj = run_suite(
        suite, data, out, preset_name=preset, models=_split_csv(models), seeds=_split_csv(seeds, int),
        folds=folds, changes=_budget_changes(max_epochs, train_windows), progress=True,
        cache_dir=cache_dir, on_run=_on_run,
    )
    _print_suite(obj)
    console.print(f"wrote {out / (suite + '.md')} (.html, .csv, .json) and {out / 'figures'}", highlight=False)


def _print_suite(obj: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    pairwise = {(t["task_set"], t["task"]): t for t in obj.get("pairwise_tables", [])}
    for t in obj["tables"]:
        caption = "mean ± std in % (maj = majority baseline); Δ: points, 95 % CI and p over test subjects"
        groups = [(t, caption)]
        if (t["task_set"], t["task"]) in pairwise:
            groups.append((pairwise[(t["task_set"], t["task"])], "paired over test subjects; Δ in points"))
        for tb, cap in groups:
            table = Table(title=tb["title"], caption=cap)
            for h in tb["header"]:
                table.add_column(h, justify="left" if h in ("model", "comparison") else "right")
            for row in tb["rows"]:
                table.add_row(*map(Text, row))  # plain text: "[95 % CI]" cells are not markup
            console.print(table)


@app.command("calibrate")
def calibrate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A trained run folder (model.pt inside).")],
    data: Annotated[Optional[Path], typer.Option(
        help="DEAP-format data holding the listener and their ratings (with --subject, --trials).")] = None,
    subject: Annotated[Optional[int], typer.Option(
        callback=number(ge=1, le=10**6), help="DEAP id of the listener.")] = None,
    trials: Annotated[Optional[str], typer.Option(
        callback=int_list(), help="Comma-separated 1-based trial ids of the rated calibration tracks.")] = None,
    recording: Annotated[Optional[Path], typer.Option(
        help="Or: a recording of the listener (.edf/.bdf, .csv, sNN.dat; with --ratings).")] = None,
    ratings: Annotated[Optional[Path], typer.Option(
        help="CSV track,start,end,valence,arousal,liking (seconds; ratings 1-9) of the recording.")] = None,
    participant: Annotated[str, typer.Option(help="The listener's pseudonym (with --recording).")] = "listener",
    channel_map: Annotated[Optional[str], typer.Option(help="Channel map of the recording.")] = None,
    method: Annotated[str, typer.Option(
        callback=choice("recentre", "bias", "threshold", "heads", "pooled"),
        help="recentre (no ratings used) | bias | threshold | heads | pooled (heads refitted on the "
             "training population together with the listener's tracks).")] = "threshold",
    out: Annotated[Optional[Path], typer.Option(
        callback=out_file(), help="Calibration file; default RUN/calibrations/<listener>-<method>-k<K>.json.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(callback=out_folder(), help="Prepared-data cache.")] = None,
) -> None:
    """Calibrate a run's model to one listener from some of their rated tracks.

    Either DEAP-format data (--data, --subject, --trials) or a recording with a ratings
    file (--recording, --ratings). Writes a small file beside the run that points to its
    model.pt; `predict`, `stream` and `serve` take it wherever they take a run.
    """
    from symaffect.errors import ConfigError

    _quiet_lightning()
    deap = (data, subject, trials)
    if recording is not None or ratings is not None:
        if recording is None or ratings is None or any(v is not None for v in deap):
            raise ConfigError("calibrate: give --recording with --ratings, or --data with --subject and --trials")
        from symaffect.stream.calibrate import calibrate_recording

        if method == "recentre":
            raise ConfigError("calibrate: --recording calibrates from ratings; use threshold, bias, heads or pooled")
        rec = _read_recording(recording, channel_map)
        path, fit = calibrate_recording(run_dir, rec, ratings, participant=participant, method=method, out=out)
        console.print(f"calibration ({fit.label}, {fit.n_windows} windows, {fit.seconds:.1f} s): {path}",
                      highlight=False)
        return
    if any(v is None for v in deap):
        raise ConfigError("calibrate: give --data with --subject and --trials, or --recording with --ratings")
    from symaffect.eval.calibration import calibrate_run

    path, info = calibrate_run(run_dir, data, subject=subject, trials=_split_csv(trials, int), method=method,
                               out=out, cache_dir=cache_dir)
    if info["in_training"]:
        console.print(f"note: subject {subject} was a training subject of this model; the calibration "
                      "cannot show what a new listener gains", highlight=False)
    console.print(f"calibration ({method}, K = {info['k']}, {info['n_windows']} windows, "
                  f"{info['seconds']:.1f} s): {path}", highlight=False)


@app.command("audit")
def audit_cmd(
    data: Annotated[Path, typer.Option(help="A folder of DEAP sNN.dat files.")],
    out: Annotated[Path, typer.Option(callback=out_folder(), help="Output folder (resumes finished runs).")],
    preset: Annotated[str, typer.Option(callback=choice(*PRESETS), help="quick (CPU) or paper.")] = "quick",
    model: Annotated[str, typer.Option(help="Registered model, or xgboost.")] = "symaffect",
    seeds: Annotated[Optional[str], typer.Option(callback=int_list(), help="Comma-separated training seeds.")] = None,
    max_epochs: Annotated[Optional[int], typer.Option(callback=COUNT, help="Override the preset's epochs.")] = None,
    train_windows: Annotated[Optional[int], typer.Option(
        callback=number(ge=1, le=INT64_MAX), help="Training windows per epoch.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(callback=out_folder(), help="Prepared-data cache.")] = None,
) -> None:
    """Leakage audit: one model under window-random (LEAKY), trial hold-out and subject hold-out."""
    from symaffect.eval.audit import audit_table, run_audit

    _quiet_lightning()
    obj = run_audit(data, out, preset_name=preset, model=model, seeds=_split_csv(seeds, int),
                    changes=_budget_changes(max_epochs, train_windows), progress=True,
                    cache_dir=cache_dir, on_run=_on_run)
    console.print(audit_table(obj))
    for line in obj["verdict"]:
        console.print(line, highlight=False, markup=False)
    console.print(f"wrote {out / 'audit.md'} (.html, .json) and {out / 'figures' / 'audit_bars.png'}",
                  highlight=False)


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option(
        callback=out_folder(), help="Folder for the data, the runs and the report.")] = Path("symaffect-demo"),
    subjects: Annotated[Optional[int], typer.Option(
        callback=number(ge=3, le=99), help="Synthetic subjects (default: the demo's).")] = None,
    trials: Annotated[Optional[int], typer.Option(
        callback=number(ge=2, le=1000), help="Trials per subject (default: the demo's).")] = None,
    seed: Annotated[int, typer.Option(callback=SEED, help="Seed of the data and of training.")] = 0,
    models: Annotated[Optional[str], typer.Option(help="Comma-separated models (default: symaffect,xgboost).")] = None,
    task_sets: Annotated[Optional[str], typer.Option(
        help="Comma-separated task sets (default: binary_arousal,binary_valence,multitask9).")] = None,
    seconds: Annotated[Optional[float], typer.Option(
        hidden=True, callback=number(ge=4, le=3600), help="Trial length incl. 3-s baseline.")] = None,
    window_seconds: Annotated[Optional[float], typer.Option(hidden=True, callback=POSITIVE_SECONDS)] = None,
    tiny: Annotated[bool, typer.Option("--tiny", hidden=True, help="Tiny models, 2 short epochs (tests).")] = False,
) -> None:
    """The main job: synthetic DEAP-format data -> the paper's model beside XGBoost and the majority
    baseline -> did it fit, did it generalise -> report."""
    from symaffect.eval.demo import run_demo

    _quiet_lightning()
    run_demo(out, n_subjects=subjects, n_trials=trials, seconds=seconds, seed=seed,
             models=_split_csv(models), task_sets=_split_csv(task_sets), tiny=tiny,
             window_seconds=window_seconds, console=console)


@app.command("probe")
def probe_cmd(
    model: Annotated[str, typer.Option(help="Registered model.")] = "symaffect",
    probes: Annotated[Optional[str], typer.Option(
        help="Comma-separated probes (default all: frequency, band_power, cross_channel, fusion, multi_task).")] = None,
    seeds: Annotated[str, typer.Option(callback=int_list(), help="Comma-separated seeds.")] = "0,1,2",
    steps: Annotated[int, typer.Option(callback=COUNT, help="Optimiser steps per probe and seed.")] = 250,
) -> None:
    """Capability probes: can the model learn a rate, band power, a correlation, ...? (exit 1 if a seed fails)"""
    from rich.table import Table

    from symaffect.errors import ConfigError
    from symaffect.eval.probes import PROBES, run_probe
    from symaffect.models.registry import list_models

    names = _split_csv(probes) or list(PROBES)
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise ConfigError(f"--probes: unknown {', '.join(unknown)}; known: {', '.join(PROBES)}")
    if model not in list_models():
        raise ConfigError(f"--model: {model!r} is not a registered model; known: {', '.join(list_models())}")
    seed_list = _split_csv(seeds, int) or [0]  # checked by int_list()
    table = Table(title=f"capability probes · {model} · {steps} steps · held-out windows",
                  caption="solved = every task >= 90 % held-out accuracy (chance 50 %)")
    for col in ("probe", "seed", "held-out acc", "train acc", "loss first → last 10 %", "solved"):
        table.add_column(col, justify="left" if col == "probe" else "right")
    failed = 0
    for name in names:
        for sd in seed_list:
            r = run_probe(name, model, seed=sd, steps=steps)
            ok = r.solved()
            failed += not ok
            table.add_row(name, str(sd), " / ".join(f"{100 * a:.0f} %" for a in r.test_acc.values()),
                          " / ".join(f"{100 * a:.0f} %" for a in r.train_acc.values()),
                          f"{r.loss_start:.3f} → {r.loss_end:.3f}", "yes" if ok else "[bold red]no[/]")
    console.print(table)
    if failed:
        raise typer.Exit(1)


# --- live monitoring (issue 6) -------------------------------------------------------


@app.command("predict")
def predict_cmd(
    run: Annotated[Path, typer.Argument(help="Training run folder (model.pt inside), checkpoint or calibration file.")],
    recording: Annotated[Path, typer.Argument(help="sNN.dat/.mat, .csv, BioSPPy .txt, or any file MNE reads (.edf/.bdf/.gdf, .fif, .vhdr, ...).")],
    channel_map: Annotated[Optional[str], typer.Option(help="Channel map YAML or shipped name.")] = None,
    trial: Annotated[Optional[int], typer.Option(callback=COUNT, help="Trial of a DEAP file (default 1).")] = None,
    sfreq: Annotated[Optional[float], typer.Option(
        callback=SFREQ, help="Sampling rate of a CSV without time column.")] = None,
    hop: Annotated[float, typer.Option(callback=POSITIVE_SECONDS, help="Seconds between predictions.")] = 1.0,
    out: Annotated[Optional[Path], typer.Option(
        callback=out_file(".csv", ".json", ".parquet"),
        help="Write predictions to .csv, .json or .parquet (needs symaffect[pandas]).")] = None,
    threads: Annotated[int, typer.Option(
        callback=THREADS, help="torch threads (one window at a time: 1 is fastest).")] = 1,
) -> None:
    """Predict valence/arousal/liking every hop over a whole recording (offline)."""
    from rich.table import Table

    from symaffect.stream.pipeline import Predictor, run_recording, summary, write_predictions

    if out is not None and out.suffix.lower() == ".parquet":  # a missing extra fails before any work
        require("pandas", "writing .parquet")
        require("pyarrow", "writing .parquet")
    rec = _read_recording(recording, channel_map, trial=trial, sfreq=sfreq)
    predictor = Predictor(run, num_threads=threads)  # a bad model fails before any note is printed
    for note in rec.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False)
    hops = run_recording(predictor, rec, hop=hop)
    preds = [h.prediction for h in hops if h.prediction is not None]
    s = summary(preds)
    table = Table(title=f"{recording.name}: {len(preds)}/{len(hops)} hops predicted ({rec.duration:.1f} s)")
    for col in ("task", "mean", "min", "max"):
        table.add_column(col)
    for task in ("valence", "arousal", "liking"):
        if task in s:
            table.add_row(task, *(f"{s[task][k]:.2f}" for k in ("mean", "min", "max")))
    console.print(table)
    if preds:
        quads = ", ".join(f"{q} {100 * v:.0f}%" for q, v in s["quadrants"].items())
        console.print(f"quadrants: {quads}; mean confidence {s['confidence']:.2f}; flagged hops {s['flagged']}",
                      highlight=False)
    if out is not None:
        console.print(f"wrote {write_predictions(out, preds)}", highlight=False)


def _read_recording(recording: Path, channel_map: Optional[str], **kw: Any):
    """The recording (and its channel map), with undecodable or oversized files as DataError naming them."""
    from symaffect.stream.channel_map import load_channel_map
    from symaffect.stream.recording import read_recording

    cmap = None
    if channel_map is not None:
        with reading(channel_map):
            cmap = load_channel_map(channel_map)
    with reading(recording):
        return read_recording(recording, cmap, **kw)


@app.command("replay")
def replay_cmd(
    recording: Annotated[Path, typer.Argument(help="Recording to play as an LSL stream.")],
    speed: Annotated[float, typer.Option(
        callback=number(ge=0.01, le=1000), help="Playback speed (10 = ten times real time).")] = 1.0,
    name: Annotated[str, typer.Option(help="LSL stream name (markers: NAME-markers).")] = "symaffect-replay",
    channel_map: Annotated[Optional[str], typer.Option(help="Channel map YAML or shipped name.")] = None,
    trial: Annotated[Optional[int], typer.Option(callback=COUNT, help="Trial of a DEAP file.")] = None,
    sfreq: Annotated[Optional[float], typer.Option(
        callback=SFREQ, help="Sampling rate of a CSV without time column.")] = None,
    markers: Annotated[Optional[Path], typer.Option(help="CSV track,start,end of music segments.")] = None,
    wait: Annotated[float, typer.Option(
        callback=number(ge=0, le=MAX_SECONDS), help="Seconds to wait for a consumer (0: start at once).")] = 30.0,
) -> None:
    """Play a recording as an LSL stream, with a marker stream of its music segments."""
    require("mne_lsl", "LSL replay")
    from symaffect.stream.lsl import read_markers_csv, replay

    rec = _read_recording(recording, channel_map, trial=trial, sfreq=sfreq)
    with reading(markers):
        segs = read_markers_csv(markers) if markers is not None else None
    console.print(f"replaying {recording.name} as {name!r} ({rec.duration:.1f} s at {speed:g}x)", highlight=False)
    n = replay(rec, name=name, speed=speed, markers=segs, wait_for_consumer=wait)
    console.print(f"pushed {n} samples", highlight=False)


@app.command("stream")
def stream_cmd(
    source: Annotated[list[str], typer.Option(
        help="Name of the LSL stream to monitor; repeat it to monitor several from one process "
             "(one shared model, hops batched across sessions).")],
    run: Annotated[Path, typer.Option(help="Training run folder or checkpoint.")],
    db: Annotated[Optional[Path], typer.Option(help="Session store; default $SYMAFFECT_HOME/sessions.db.")] = None,
    participant: Annotated[Optional[list[str]], typer.Option(
        help="Participant pseudonym; with several --source, one per source in the same order.")] = None,
    hop: Annotated[float, typer.Option(
        callback=POSITIVE_SECONDS, help="Seconds of stream time between predictions.")] = 1.0,
    window: Annotated[Optional[float], typer.Option(
        callback=POSITIVE_SECONDS, help="Window seconds (default: the model's).")] = None,
    channel_map: Annotated[Optional[str], typer.Option(help="Channel map YAML or shipped name.")] = None,
    publish: Annotated[str, typer.Option(
        help="LSL outlet name for predictions ('' = none); with several sources, NAME-<source>.")
    ] = "symaffect-predictions",
    max_seconds: Annotated[Optional[float], typer.Option(
        callback=number(gt=0, le=1e9), help="Stop after this much stream time.")] = None,
    stop_at_eof: Annotated[bool, typer.Option("--stop-at-eof", help="Stop when a replay ends.")] = False,
    max_batch: Annotated[Optional[int], typer.Option(
        callback=number(ge=1, le=1024),
        help="Most windows in one forward pass (several sources; default: 1 on CPU, 32 on CUDA).")] = None,
    threads: Annotated[int, typer.Option(callback=THREADS, help="torch threads (1 suits many sessions).")] = 1,
    device: Annotated[str, typer.Option(callback=choice("cpu", "cuda"), help="Where the model runs.")] = "cpu",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every stored hop.")] = False,
) -> None:
    """Monitor live LSL streams: predict every hop, store the sessions, publish predictions."""
    require("mne_lsl", "LSL streaming")
    import torch

    from symaffect.stream.lsl import run_stream, run_streams

    if device == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("CUDA is not available on this machine", param_hint="--device")

    if verbose:
        logging.getLogger("symaffect.stream").setLevel(logging.INFO)
    people = participant or []
    if len(source) == 1:
        if len(people) > 1:
            raise typer.BadParameter(f"{len(people)} pseudonyms for 1 source", param_hint="--participant")
        stats = [run_stream(run, source=source[0], db=db, participant=people[0] if people else "anonymous", hop=hop,
                            window=window, channel_map=channel_map, publish=publish or None,
                            max_seconds=max_seconds, stop_at_eof=stop_at_eof, num_threads=threads, device=device)]
    else:
        if people and len(people) != len(source):
            raise typer.BadParameter(f"{len(people)} pseudonyms for {len(source)} sources (give one per source)",
                                     param_hint="--participant")
        if len(set(source)) != len(source):
            raise typer.BadParameter("each stream can be monitored once", param_hint="--source")
        stats, rounds = run_streams(run, sources=source, participants=people or None, db=db, hop=hop, window=window,
                                    channel_map=channel_map, publish=publish or None, max_seconds=max_seconds,
                                    stop_at_eof=stop_at_eof, max_batch=max_batch, num_threads=threads, device=device)
        console.print(f"{rounds.hops} hops in {rounds.forward_passes} forward passes "
                      f"(largest batch {rounds.largest_batch})", highlight=False)
    for st, src in zip(stats, source):
        console.print(
            f"session {st.session_id} ({src}): {st.predictions}/{st.hops} hops predicted over "
            f"{st.stream_seconds:.1f} s, {st.reconnects} reconnect(s)", highlight=False,
        )


@app.command("report")
def report_cmd(
    session_id: Annotated[int, typer.Argument(
        callback=number(ge=1, le=INT64_MAX), help="Session id (see `symaffect serve` or the store).")],
    db: Annotated[Optional[Path], typer.Option(help="Session store; default $SYMAFFECT_HOME/sessions.db.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        callback=out_file(), help="HTML file; default session-<id>-report.html.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also write a PDF beside the HTML.")] = False,
) -> None:
    """Write a session's report: trajectories, per-segment summaries, quadrants, quality."""
    require("jinja2", "the session report")
    from symaffect.serve.report import write_report
    from symaffect.stream.store import default_db_path

    for path in write_report(db or default_db_path(), session_id, out, pdf=pdf):
        console.print(f"wrote {path}", highlight=False)


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(callback=number(ge=1, le=65535))] = 8765,
    db: Annotated[Optional[Path], typer.Option(help="Session store; default $SYMAFFECT_HOME/sessions.db.")] = None,
    token: Annotated[
        Optional[str], typer.Option(envvar="SYMAFFECT_TOKEN", help="Access token (or SYMAFFECT_TOKEN).")
    ] = None,
    calibration_method: Annotated[str, typer.Option(
        callback=choice("threshold", "bias", "heads", "pooled"),
        help="Method of the dashboard's live calibration: threshold | bias | heads | pooled.")] = "threshold",
) -> None:
    """Serve the live dashboard and the session reports over HTTP."""
    require("fastapi", "the dashboard")
    require("uvicorn", "the dashboard")
    require("plotly", "the dashboard")
    require("jinja2", "the dashboard")
    from symaffect.serve.app import check_bind, serve
    from symaffect.stream.store import default_db_path

    check_bind(host, token)
    console.print(f"dashboard on http://{host}:{port}/ (Ctrl-C to stop)", highlight=False)
    serve(db or default_db_path(), host=host, port=port, token=token, calibration_method=calibration_method)


if __name__ == "__main__":
    main()
