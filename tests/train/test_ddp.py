"""Lightning DDP on 2 CPU processes (gloo, loopback) reproduces a single-process run.

Equivalence: every process draws the same seeded permutation and takes every second
window of it, so the two per-process batches of 8 together are exactly the single
process's batch of 16; DDP averages the two gradients, which is the gradient of the mean
loss over the 16 windows. The final weights must agree up to float round-off.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from symaffect.eval.scoring import train_and_score

from .conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from train.conftest import tiny_config
    from symaffect.eval.scoring import train_and_score

    cfg = tiny_config(**{overrides!r})
    train_and_score(cfg, {data!r}, {out!r}, cache_dir={cache!r})
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_single_process(tiny_data, cache_dir, tmp_path):
    common = {"optim.max_epochs": 2, "optim.patience": 50}
    single = train_and_score(
        tiny_config(**common, **{"optim.batch_size": 16}), tiny_data, tmp_path / "single",
        cache_dir=cache_dir,
    )
    overrides = {**common, "optim.batch_size": 8, "trainer.strategy": "ddp", "trainer.devices": 2}
    script = tmp_path / "ddp_run.py"
    script.write_text(_SCRIPT.format(tests=str(REPO / "tests"), overrides=overrides, data=str(tiny_data),
                                     out=str(tmp_path / "ddp"), cache=str(cache_dir)))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), str(script)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = tmp_path / "ddp"

    m_single = json.loads((single / "metrics.json").read_text())
    m_ddp = json.loads((ddp / "metrics.json").read_text())
    assert m_ddp["runs"][0]["n_train_windows"] == m_single["runs"][0]["n_train_windows"]
    assert m_ddp["runs"][0]["n_train_windows"] % 16 != 0  # the last, partial batch is covered too
    assert m_ddp["runs"][0]["epochs_trained"] == m_single["runs"][0]["epochs_trained"] == 2

    def weights(run):
        ck = torch.load(run / "fold0-seed0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        return ck["state_dict"], ck["global_step"]

    (w1, steps1), (w2, steps2) = weights(single), weights(ddp)
    assert steps1 == steps2
    assert set(w1) == set(w2)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5, msg=k)
    # ... and training moved the weights far beyond that tolerance
    import lightning as L

    from symaffect.train.module import AffectModule

    L.seed_everything(0, workers=True, verbose=False)
    hp = torch.load(single / "fold0-seed0" / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    w0 = AffectModule(**hp).state_dict()
    moved = max(float((w1[k] - w0[k]).abs().max()) for k in w1)
    assert moved > 1e-3, moved
    for t in m_single["tasks"]:
        a = m_single["summary"][t]["model"]["acc"]["mean"]
        b = m_ddp["summary"][t]["model"]["acc"]["mean"]
        assert abs(a - b) <= 0.05, (t, a, b)
