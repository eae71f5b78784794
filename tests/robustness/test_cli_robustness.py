"""Bad input to every ``symaffect`` command: exit code 2, exactly one line on stderr naming
the option or file, no traceback, and nothing written or changed on disk.

The CLI runs as a subprocess through its real entry point (``python -m symaffect.cli``,
which calls :func:`symaffect.cli.main`). Every fixture file is tiny and built here; nothing
trains. Each case runs in the fixture folder, whose files (names, sizes, mtimes) are
compared before and after the call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = {"n_times": 256, "d": 16, "tau": 16, "n_heads": 2}
EXTRA = {"window_seconds": 2.0, "preprocess": {}, "tasks": ["valence", "arousal", "liking"]}


# --- fixture folder ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One folder holding every input the cases point at (relative names, cwd = this folder)."""
    from symaffect.data.protocols import save_splits
    from symaffect.data.synth import generate
    from symaffect.models import build_model, save_checkpoint
    from symaffect.train.config import RunConfig
    from symaffect.train.rundata import load_data, make_folds

    torch.manual_seed(0)
    r = tmp_path_factory.mktemp("robust")
    generate(r / "data", n_subjects=2, n_trials=2, seconds=8.0, seed=0)

    # a run folder with a real (untrained) model.pt, and broken copies of it
    (r / "run").mkdir()
    save_checkpoint(r / "run" / "model.pt", build_model("symaffect", **TINY), name="symaffect",
                    kwargs=TINY, extra=EXTRA)
    payload = torch.load(r / "run" / "model.pt", weights_only=True)
    for name, change in {
        "run_nokey": lambda p: p.pop("kwargs"),
        "run_badkw": lambda p: p["kwargs"].update(bogus=1),
        "run_shape": lambda p: p["state_dict"].pop(next(iter(p["state_dict"]))),
    }.items():
        p = {k: (dict(v) if isinstance(v, dict) else v) for k, v in payload.items()}
        change(p)
        (r / name).mkdir()
        torch.save(p, r / name / "model.pt")

    # run folders with a valid config.yaml and splits.json (no training), then broken parts
    cfg = RunConfig().replace(**{
        "data.window.window_seconds": 2.0, "data.window.stride_seconds": 1.0,
        "model.kwargs": {"d": 8, "tau": 8, "n_heads": 2}, "protocol.test_ratio": 0.5,
        "protocol.val_ratio": 0.0, "trainer.accelerator": "cpu",
    })
    prepared = load_data(cfg, r / "data", cache_dir=r / "cache")
    protocol, folds = make_folds(cfg, prepared)
    for name in ("run_result", "run_badcfg", "run_nancfg"):
        (r / name / "fold0-seed0").mkdir(parents=True)
        cfg.to_yaml(r / name / "config.yaml")
        save_splits(r / name / "splits.json", folds, protocol)
        (r / name / "model.pt").write_bytes((r / "run" / "model.pt").read_bytes())
    (r / "run_result" / "fold0-seed0" / "result.json").write_text('{"fold": 0, "seed"')  # cut short
    (r / "run_badcfg" / "config.yaml").write_text("optim: [unclosed\n")
    text = (r / "run_nancfg" / "config.yaml").read_text()
    (r / "run_nancfg" / "config.yaml").write_text(text.replace("lr: 0.0001", "lr: .nan"))
    assert "lr: .nan" in (r / "run_nancfg" / "config.yaml").read_text()

    # recordings, configs and other small files
    t = np.arange(12 * 128) / 128
    rows = ["time,GSR,Resp"] + [f"{x:.5f},{1000 + np.sin(x):.3f},{np.sin(x / 4):.3f}" for x in t]
    (r / "rec.csv").write_text("\n".join(rows) + "\n")
    (r / "latin1.csv").write_bytes("time,Température\n0,1\n".encode("latin-1"))
    (r / "latin1.yaml").write_bytes('eeg:\n  Fp1: "caf\xe9"\n'.encode("latin-1"))
    (r / "latin1_markers.csv").write_bytes("track,start,end\ncafé,0,1\n".encode("latin-1"))
    (r / "inf.yaml").write_text("optim:\n  lr: .inf\n")
    (r / "huge_seed.yaml").write_text("seeds: [99999999999999999999999]\n")
    (r / "bad_accel.yaml").write_text("trainer:\n  accelerator: bogus\n")
    (r / "afile").write_text("not a folder\n")
    (r / "junk.db").write_bytes(np.random.default_rng(1).bytes(2048))
    (r / "junkdata").mkdir()
    (r / "junkdata" / "s01.dat").write_bytes(np.random.default_rng(2).bytes(3000))
    (r / "emptydir").mkdir()
    (r / "home").mkdir()
    return r


def _snapshot(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every file (size, mtime) and folder under ``folder``."""
    snap: dict[str, tuple[int, int] | None] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            snap[os.path.relpath(os.path.join(dirpath, d), folder) + "/"] = None
        for f in filenames:
            st = os.stat(os.path.join(dirpath, f))
            snap[os.path.relpath(os.path.join(dirpath, f), folder)] = (st.st_size, st.st_mtime_ns)
    return snap


def _run(root: Path, args: list[str], pre: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SYMAFFECT_TOKEN"}
    env.update(PYTHONPATH=str(REPO / "src"), SYMAFFECT_HOME=str(root / "home"),
               SYMAFFECT_CACHE=str(root / "cache"), OMP_NUM_THREADS="1", COLUMNS="100")
    exe = [sys.executable, "-m", "symaffect.cli"] if pre is None else [
        sys.executable, "-c", f"{pre}\nfrom symaffect.cli import main\nmain()"]
    return subprocess.run([*exe, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)


# --- the cases: (id, argv, fragments the one line must hold) ----------------------------

NEW = "new_out"  # never exists: a command that fails must not create it

USAGE = [
    # the command line itself
    ("unknown-global-option", ["--bogus"], ["--bogus"]),
    ("unknown-command", ["nosuch"], ["nosuch"]),
    ("group-without-command", ["data"], ["symaffect data", "command"]),
    ("missing-argument", ["data", "check"], ["'folder'"]),
    ("unknown-option", ["data", "check", "data", "--json", "--bogus"], ["--bogus"]),
    # data check
    ("check-stride-0", ["data", "check", "data", "--stride-seconds", "0"], ["--stride-seconds"]),
    ("check-window-nan", ["data", "check", "data", "--window-seconds", "nan"], ["--window-seconds", "finite"]),
    ("check-window-negative", ["data", "check", "data", "--window-seconds", "-5"], ["--window-seconds"]),
    ("check-window-text", ["data", "check", "data", "--window-seconds", "ten"], ["--window-seconds"]),
    # synth
    ("synth-subjects-0", ["synth", NEW, "--subjects", "0"], ["--subjects"]),
    ("synth-subjects-text", ["synth", NEW, "--subjects", "many"], ["--subjects"]),
    ("synth-seconds-inf", ["synth", NEW, "--seconds", "inf"], ["--seconds"]),
    ("synth-seed-negative", ["synth", NEW, "--seed", "-1"], ["--seed"]),
    ("synth-effect-nan", ["synth", NEW, "--effect-scale", "nan"], ["--effect-scale"]),
    ("synth-jobs-0", ["synth", NEW, "--jobs", "0"], ["--jobs"]),
    ("synth-out-is-file", ["synth", "afile"], ["afile"]),
    ("synth-out-holds-other-files", ["synth", "run"], ["'run'", "other files"]),
    # train
    ("train-missing-out", ["train", "--data", "data"], ["--out"]),
    ("train-no-data", ["train", "--out", NEW], ["--data / --ratings"]),
    ("evaluate-no-data", ["evaluate", "run"], ["--data / --ratings"]),
    ("train-data-and-ratings", ["train", "--data", "data", "--ratings", "r.csv", "--out", NEW], ["exactly one"]),
    ("train-accelerator", ["train", "--data", "data", "--out", NEW, "--accelerator", "bogus"], ["--accelerator"]),
    ("train-test-ratio-1.5", ["train", "--data", "data", "--out", NEW, "--test-ratio", "1.5"], ["--test-ratio"]),
    ("train-test-ratio-nan", ["train", "--data", "data", "--out", NEW, "--test-ratio", "nan"], ["--test-ratio"]),
    ("train-seed-huge", ["train", "--data", "data", "--out", NEW, "--seed", "99999999999"], ["--seed"]),
    ("train-max-epochs-0", ["train", "--data", "data", "--out", NEW, "--max-epochs", "0"], ["--max-epochs"]),
    ("train-devices-0", ["train", "--data", "data", "--out", NEW, "--devices", "0"], ["--devices"]),
    ("train-preset", ["train", "--data", "data", "--out", NEW, "--preset", "fast"], ["--preset"]),
    ("train-out-is-file", ["train", "--data", "data", "--out", "afile"], ["--out", "afile"]),
    ("train-out-holds-other-files", ["train", "--data", "data", "--out", "data"], ["--out", "other files"]),
    ("train-out-under-a-file", ["train", "--data", "data", "--out", "afile/run"], ["--out", "afile"]),
    ("train-cache-dir-is-file", ["train", "--data", "data", "--out", NEW, "--cache-dir", "afile"], ["--cache-dir"]),
    # evaluate, explain
    ("evaluate-missing-argument", ["evaluate"], ["run_dir"]),
    ("explain-n-windows-0", ["explain", "run_result", "--data", "data", "--n-windows", "0"], ["--n-windows"]),
    ("explain-out-is-file", ["explain", "run_result", "--data", "data", "--out", "afile"], ["--out", "afile"]),
    # bench, audit, demo, probe
    ("bench-folds-0", ["bench", "table2", "--data", "data", "--out", NEW, "--folds", "0"], ["--folds"]),
    ("bench-seeds-text", ["bench", "table2", "--data", "data", "--out", NEW, "--seeds", "0,x"], ["--seeds"]),
    ("bench-out-is-file", ["bench", "table2", "--data", "data", "--out", "afile"], ["--out"]),
    ("audit-seeds-negative", ["audit", "--data", "data", "--out", NEW, "--seeds", "-1"], ["--seeds"]),
    ("audit-train-windows-0", ["audit", "--data", "data", "--out", NEW, "--train-windows", "0"], ["--train-windows"]),
    ("demo-subjects-2", ["demo", "--out", NEW, "--subjects", "2"], ["--subjects"]),
    ("demo-out-is-file", ["demo", "--out", "afile"], ["--out"]),
    ("probe-steps-0", ["probe", "--steps", "0"], ["--steps"]),
    ("probe-seeds-empty", ["probe", "--seeds", ","], ["--seeds"]),
    # predict, replay, stream
    ("predict-hop-nan", ["predict", "run", "rec.csv", "--hop", "nan"], ["--hop"]),
    ("predict-hop-0", ["predict", "run", "rec.csv", "--hop", "0"], ["--hop"]),
    ("predict-sfreq-tiny", ["predict", "run", "rec.csv", "--sfreq", "1e-6"], ["--sfreq"]),
    ("predict-threads-0", ["predict", "run", "rec.csv", "--threads", "0"], ["--threads"]),
    ("predict-trial-0", ["predict", "run", "rec.csv", "--trial", "0"], ["--trial"]),
    ("predict-out-is-folder", ["predict", "run", "rec.csv", "--out", "emptydir"], ["--out", "emptydir"]),
    ("predict-out-suffix", ["predict", "run", "rec.csv", "--out", "p.txt"], ["--out", ".csv"]),
    ("replay-speed-nan", ["replay", "rec.csv", "--speed", "nan"], ["--speed"]),
    ("replay-speed-inf", ["replay", "rec.csv", "--speed", "inf"], ["--speed"]),
    ("replay-wait-negative", ["replay", "rec.csv", "--wait", "-1"], ["--wait"]),
    ("stream-missing-source", ["stream", "--run", "run"], ["--source"]),
    ("stream-hop-inf", ["stream", "--source", "x", "--run", "run", "--hop", "inf"], ["--hop"]),
    ("stream-pseudonyms-per-source", ["stream", "--source", "a", "--source", "b", "--run", "run",
                                      "--participant", "x", "--participant", "y", "--participant", "z"],
     ["--participant", "3 pseudonyms for 2 sources"]),
    ("stream-device-tpu", ["stream", "--source", "a", "--run", "run", "--device", "tpu"], ["--device"]),
    ("stream-same-source-twice", ["stream", "--source", "a", "--source", "a", "--run", "run"], ["--source"]),
    ("stream-max-batch-0", ["stream", "--source", "a", "--source", "b", "--run", "run", "--max-batch", "0"],
     ["--max-batch"]),
    ("stream-max-seconds-0", ["stream", "--source", "x", "--run", "run", "--max-seconds", "0"], ["--max-seconds"]),
    # report, serve
    ("report-id-text", ["report", "abc"], ["session_id"]),
    ("report-id-huge", ["report", "99999999999999999999999"], ["session_id"]),
    ("report-id-0", ["report", "0"], ["session_id"]),
    ("report-out-is-folder", ["report", "1", "--out", "emptydir"], ["--out"]),
    ("serve-port-huge", ["serve", "--port", "70000"], ["--port"]),
    ("serve-port-text", ["serve", "--port", "http"], ["--port"]),
    ("serve-calibration-method", ["serve", "--calibration-method", "magic"], ["--calibration-method"]),
    ("calibrate-method", ["calibrate", "run", "--method", "magic"], ["--method"]),
]

DATA = [
    # broken model.pt (missing key, unknown kwargs, wrong weights; more in tests/models/test_checkpoint.py)
    ("model-missing-key", ["predict", "run_nokey", "rec.csv"], ["run_nokey/model.pt", "kwargs"]),
    ("model-unknown-kwargs", ["predict", "run_badkw", "rec.csv"], ["run_badkw/model.pt", "bogus"]),
    ("model-missing-weight", ["predict", "run_shape", "rec.csv"], ["run_shape/model.pt", "weights"]),
    # run folders with a corrupt result.json / config.yaml
    ("evaluate-corrupt-result-json", ["evaluate", "run_result", "--data", "data"], ["result.json", "JSON"]),
    ("calibrate-not-a-run", ["calibrate", "run", "--data", "data", "--subject", "1", "--trials", "1"],
     ["run", "not a run folder"]),
    ("calibrate-bad-trials", ["calibrate", "run_result", "--data", "data", "--subject", "1", "--trials", "1,x"],
     ["--trials", "not an integer"]),
    ("calibrate-recording-without-ratings", ["calibrate", "run", "--recording", "rec.csv"],
     ["--recording", "--ratings"]),
    ("calibrate-unknown-method", ["calibrate", "run_result", "--data", "data", "--subject", "1", "--trials", "1",
                                  "--method", "magic"], ["--method", "magic"]),
    ("evaluate-corrupt-config-yaml", ["evaluate", "run_badcfg", "--data", "data"], ["run_badcfg/config.yaml"]),
    ("evaluate-nan-in-config-yaml", ["evaluate", "run_nancfg", "--data", "data"], ["config.yaml", "optim.lr"]),
    ("train-resume-corrupt-config", ["train", "--data", "data", "--out", "run_badcfg"], ["config.yaml"]),
    ("train-config-inf", ["train", "--data", "data", "--out", NEW, "--config", "inf.yaml"], ["inf.yaml", "optim.lr"]),
    ("train-config-huge-seed", ["train", "--data", "data", "--out", NEW, "--config", "huge_seed.yaml"],
     ["huge_seed.yaml", "seeds"]),
    ("train-config-accelerator", ["train", "--data", "data", "--out", NEW, "--config", "bad_accel.yaml"],
     ["bad_accel.yaml", "trainer.accelerator"]),
    ("train-config-latin1", ["train", "--data", "data", "--out", NEW, "--config", "latin1.yaml"],
     ["latin1.yaml", "UTF-8"]),
    # text files that are not UTF-8, corrupt data and stores
    ("predict-latin1-recording", ["predict", "run", "latin1.csv"], ["latin1.csv", "UTF-8"]),
    ("predict-latin1-channel-map", ["predict", "run", "rec.csv", "--channel-map", "latin1.yaml"],
     ["latin1.yaml", "UTF-8"]),
    ("replay-latin1-markers", ["replay", "rec.csv", "--markers", "latin1_markers.csv", "--wait", "0"],
     ["latin1_markers.csv", "UTF-8"]),
    ("check-corrupt-dat", ["data", "check", "junkdata"], ["junkdata/s01.dat"]),
    ("report-junk-db", ["report", "1", "--db", "junk.db"], ["junk.db"]),
    ("synth-out-not-writable", ["synth", "/proc/symaffect-robustness", "--subjects", "1", "--trials", "1",
                                "--seconds", "4"], ["/proc/symaffect-robustness"]),
]

# MemoryError while reading input: at a reader that knows its file, and anywhere else
_OOM_RECORDING = ("import symaffect.stream.recording as m\n"
                  "def oom(*a, **k):\n    raise MemoryError\n"
                  "m.read_recording = oom")
_OOM_CHECK = ("import symaffect.data.check as m\n"
              "def oom(*a, **k):\n    raise MemoryError\n"
              "m.check_folder = oom")
MEMORY = [
    ("memory-error-reading-recording", ["predict", "run", "rec.csv"], ["rec.csv", "memory"], _OOM_RECORDING),
    ("memory-error-anywhere", ["data", "check", "data"], ["data", "memory"], _OOM_CHECK),
]

CASES = [(i, a, f, None) for i, a, f in USAGE + DATA] + MEMORY


@pytest.mark.parametrize(("args", "fragments", "pre"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(root, args, fragments, pre):
    before = _snapshot(root)
    r = _run(root, args, pre)
    after = _snapshot(root)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    assert after == before, {k for k in before.keys() | after.keys() if before.get(k, 0) != after.get(k, 0)}


def test_at_least_45_cases_over_every_command():
    assert len(CASES) >= 45
    from symaffect.cli import app

    commands = {c.name for c in app.registered_commands} | {
        f"{g.name} {c.name}" for g in app.registered_groups for c in g.typer_instance.registered_commands}
    covered = {" ".join(a[:2]) if a[0] == "data" else a[0] for _, a, *_ in CASES}
    assert commands <= covered, commands - covered


def _numeric(tp) -> bool:
    for t in (tp, *typing.get_args(tp)):
        if t in (int, float) or (typing.get_origin(t) is list and _numeric(typing.get_args(t)[0])):
            return True
    return False


def test_every_numeric_option_is_checked_at_the_door():
    """A registry-wide check: a new int/float option without a door check fails here."""
    from symaffect import cli
    from symaffect.cli import app
    from symaffect.train.config import ACCELERATORS, SEED_MAX

    assert set(cli.ACCELERATORS) == set(ACCELERATORS) and cli.SEED_MAX == SEED_MAX  # door == config

    funcs = [c.callback for c in app.registered_commands] + [
        c.callback for g in app.registered_groups for c in g.typer_instance.registered_commands]
    unchecked = []
    for fn in funcs:
        for name, hint in typing.get_type_hints(fn, include_extras=True).items():
            if name == "return" or typing.get_origin(hint) is not typing.Annotated:
                continue
            tp, *meta = typing.get_args(hint)
            if _numeric(tp) and not any(getattr(getattr(m, "callback", None), "door_check", False) for m in meta):
                unchecked.append(f"{fn.__name__}.{name}")
    assert not unchecked, unchecked


@pytest.mark.parametrize("defect", ["no_model_name", "name_not_str", "kwargs_list", "kwargs_int_key", "no_state_dict",
                                    "extra_list", "version_str", "unknown_kwarg", "bad_kwarg_value", "junk"])
def test_every_model_pt_defect_is_a_data_error_naming_the_file(root, tmp_path, defect):
    """What the CLI cases above do not spawn a process for: load_checkpoint on each defect."""
    from symaffect.errors import DataError
    from symaffect.models.checkpoint import load_checkpoint

    p = torch.load(root / "run" / "model.pt", weights_only=True)
    p["kwargs"] = dict(p["kwargs"])
    {
        "no_model_name": lambda: p.pop("model_name"),
        "name_not_str": lambda: p.update(model_name=["symaffect"]),
        "kwargs_list": lambda: p.update(kwargs=[1, 2]),
        "kwargs_int_key": lambda: p["kwargs"].update({1: 2}),
        "no_state_dict": lambda: p.pop("state_dict"),
        "extra_list": lambda: p.update(extra=[1]),
        "version_str": lambda: p.update(format_version="1"),
        "unknown_kwarg": lambda: p["kwargs"].update(bogus=1),
        "bad_kwarg_value": lambda: p["kwargs"].update(n_heads="two"),
        "junk": lambda: None,
    }[defect]()
    path = tmp_path / "model.pt"
    if defect == "junk":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        torch.save(p, path)
    with pytest.raises(DataError) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
