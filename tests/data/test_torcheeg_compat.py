"""Our synthetic ``sNN.dat`` files load in TorchEEG's ``DEAPDataset`` (optional test).

TorchEEG pins old numpy/scipy, so it lives in its own virtual environment
(``bash benchmarks/torcheeg_env.sh`` creates ``benchmarks/_work/torcheeg-venv``). The test
is skipped unless ``SYMAFFECT_TORCHEEG_PYTHON`` names that environment's python::

    SYMAFFECT_TORCHEEG_PYTHON=benchmarks/_work/torcheeg-venv/bin/python \\
        .venv/bin/python -m pytest tests/data/test_torcheeg_compat.py

It writes a tiny synthetic set, lets TorchEEG window it in a subprocess (10-s windows at
a 1-s stride after the 3-s baseline, all 40 channels) and checks TorchEEG's windows
against symaffect's: the same (subject, trial, start) set, the same values, the same
labels.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from symaffect.data import synth
from symaffect.data.deap import read_subject
from symaffect.data.normalize import NormConfig
from symaffect.data.prepare import prepare
from symaffect.data.windows import WindowConfig
from symaffect.spec import DEAP_CHANNELS

TE_PYTHON = os.environ.get("SYMAFFECT_TORCHEEG_PYTHON", "")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not TE_PYTHON,
        reason="set SYMAFFECT_TORCHEEG_PYTHON to a python with torcheeg (bash benchmarks/torcheeg_env.sh)",
    ),
]

SFREQ, WINDOW, STRIDE, BASELINE = 128, 1280, 128, 384
N_SUBJECTS, N_TRIALS, SECONDS = 2, 3, 15.0  # 1920 samples: 3 windows per trial after the baseline

# Runs under TorchEEG's interpreter: argv = root_path, io_path, out.npz.
TE_SCRIPT = r"""
import json, logging, sys
import numpy as np
from torcheeg import transforms
from torcheeg.datasets import DEAPDataset

logging.disable(logging.INFO)
root, io_path, out = sys.argv[1:4]
ds = DEAPDataset(root_path=root, io_path=io_path, chunk_size=1280, overlap=1280 - 128,
                 num_channel=40, num_baseline=3, baseline_chunk_size=128,
                 online_transform=transforms.ToTensor(), label_transform=transforms.Select("valence"),
                 num_worker=0, verbose=False)
xs, ys = [], []
for i in range(len(ds)):
    x, y = ds[i]
    xs.append(x.numpy())
    ys.append(float(y))
info = ds.info
np.savez(out, x=np.stack(xs), valence=np.asarray(ys),
         subject=np.asarray([int(s[1:3]) for s in info["subject_id"]]),
         trial=info["trial_id"].to_numpy(), start=info["start_at"].to_numpy(),
         end=info["end_at"].to_numpy())
print(json.dumps({"n": len(ds)}))
"""


@pytest.fixture(scope="module")
def flat_set(tmp_path_factory) -> Path:
    """A tiny synthetic set, and a folder holding only its ``sNN.dat`` files (what TorchEEG reads)."""
    base = tmp_path_factory.mktemp("te")
    out = synth.generate(base / "synth", n_subjects=N_SUBJECTS, n_trials=N_TRIALS, seconds=SECONDS, seed=3)
    flat = base / "data_preprocessed_python"
    flat.mkdir()
    for p in sorted(out.glob("s*.dat")):
        (flat / p.name).symlink_to(p)
    return flat


@pytest.fixture(scope="module")
def torcheeg_windows(flat_set, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("te_io")
    out = work / "windows.npz"
    proc = subprocess.run(
        [TE_PYTHON, "-c", TE_SCRIPT, str(flat_set), str(work / "io"), str(out)],
        capture_output=True, text=True, cwd=work, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = json.loads(proc.stdout.strip().splitlines()[-1])["n"]
    with np.load(out) as z:
        got = {k: z[k] for k in z.files}
    assert len(got["x"]) == n
    return got


def test_torcheeg_window_count_and_positions(flat_set, torcheeg_windows):
    """TorchEEG makes exactly symaffect's windows: same subjects, trials and (post-baseline) starts."""
    te = torcheeg_windows
    prep = prepare(flat_set, window=WindowConfig(), norm=NormConfig(mode="none"), cache=False)
    idx = prep.window_index()
    ours = {(prep.subjects[s], t, st + BASELINE) for s, t, st in idx.tolist()}
    theirs = set(zip(te["subject"].tolist(), te["trial"].tolist(), te["start"].tolist(), strict=True))
    assert len(te["x"]) == len(idx) == N_SUBJECTS * N_TRIALS * 3
    assert theirs == ours
    assert np.all(te["end"] - te["start"] == WINDOW)
    assert te["start"].min() == BASELINE  # the 3-s baseline is never inside a window


def test_torcheeg_values_match_ours(flat_set, torcheeg_windows):
    """Every TorchEEG window equals symaffect's raw float32 values (reader and prepared array)."""
    te = torcheeg_windows
    prep = prepare(flat_set, window=WindowConfig(), norm=NormConfig(mode="none"), cache=False)
    order = np.asarray([prep.ch_names.index(c) for c in DEAP_CHANNELS])  # stored rows in file order
    recs = {s: read_subject(flat_set / f"s{s:02d}.dat") for s in prep.subjects}
    assert te["x"].shape[1:] == (40, WINDOW)
    for x, s, t, start, val in zip(te["x"], te["subject"], te["trial"], te["start"], te["valence"], strict=True):
        raw = recs[int(s)].data[t, :, start : start + WINDOW]  # (40, 1280) float32, DEAP channel order
        np.testing.assert_array_equal(x, raw)
        g = prep.offsets[prep.subjects.index(int(s))] + t
        stored = prep.array[g][order, start - BASELINE : start - BASELINE + WINDOW]
        np.testing.assert_array_equal(x, stored)
        assert val == pytest.approx(float(recs[int(s)].labels[t, 0]), abs=1e-5)
