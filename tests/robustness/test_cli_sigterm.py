"""SIGTERM to ``symaffect train``: it stops within seconds with exit code 143 and one line,
and the same command resumes from the last finished epoch, exactly as after SIGKILL
(``tests/train/test_run.py::test_resume_after_sigkill``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from symaffect.train.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
STOP_WITHIN_S = 10.0

# the real entry point, with one extra callback that parks the run at the start of its
# second epoch (so the signal arrives in the middle of a long Python step)
_PARKED_CLI = textwrap.dedent(
    """
    import functools, time
    import lightning as L
    import symaffect.train.run as run

    class Park(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch >= 1:
                time.sleep(120)

    run.train_run = functools.partial(run.train_run, callbacks=[Park()])
    from symaffect.cli import main
    main()
    """
)


def _tiny_config() -> RunConfig:
    """2-s windows, a tiny model, 4 epochs on the CPU (as tests/train/conftest.py)."""
    return RunConfig().replace(**{
        "data.window.window_seconds": 2.0,
        "data.window.stride_seconds": 1.0,
        "model.kwargs": {"d": 8, "tau": 8, "mixer": "lowrank", "mixer_rank": 4, "n_heads": 2},
        "optim.lr": 1e-3,
        "optim.batch_size": 16,
        "optim.max_epochs": 4,
        "optim.patience": 50,
        "protocol.test_ratio": 0.34,
        "protocol.val_ratio": 0.25,
        "trainer.accelerator": "cpu",
    })


@pytest.mark.slow
def test_sigterm_stops_train_promptly_and_the_same_command_resumes(tmp_path):
    from symaffect.data.synth import generate

    data = generate(tmp_path / "data", n_subjects=6, n_trials=4, seconds=13.0, seed=3)
    cfg_file = tmp_path / "tiny.yaml"
    _tiny_config().to_yaml(cfg_file)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--config", str(cfg_file),
            "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}

    proc = subprocess.Popen([sys.executable, "-c", _PARKED_CLI, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = out / "fold0-seed0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    try:
        while not last.exists():
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.1)
        time.sleep(1.0)  # the run is now parked at the start of epoch 1
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM did not stop `symaffect train` within 60 s")
        stopped_after = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert stopped_after < STOP_WITHIN_S, f"stopped {stopped_after:.1f} s after SIGTERM"
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines[-1] == "interrupted; rerun the same command to resume", stderr[-2000:]
    assert not (out / "metrics.json").exists()
    assert not (out / "fold0-seed0" / "result.json").exists()
    assert not list(out.rglob("*.tmp"))  # nothing half-written
    epoch_at_term = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert epoch_at_term == 0  # stopped while parked after the first epoch

    # the same command, rerun, resumes from last.ckpt
    again = subprocess.run([sys.executable, "-m", "symaffect.cli", *args], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads((out / "fold0-seed0" / "result.json").read_text())
    assert result["resumed_from_epoch"] == epoch_at_term
    assert result["epochs_trained"] == 4
    assert (out / "metrics.json").is_file()
