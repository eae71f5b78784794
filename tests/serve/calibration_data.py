"""A session a real (tiny) model predicted, stored with its per-hop embeddings: what the
dashboard's live calibration fits from.

The model is randomly initialised (the tests check the calibration machinery, not
accuracy) and its ``model.pt`` carries the population mean embedding like every model the
trainer writes. The session's segments end before the last hop, so they can be rated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from symaffect.models import build_model, save_checkpoint
from symaffect.models.calibration import CalibrationPool
from symaffect.stream.pipeline import Predictor, run_recording
from symaffect.stream.recording import deap_recording
from symaffect.stream.store import SessionStore

TINY = {"n_times": 256, "d": 16, "tau": 16, "n_heads": 2}
"""A 2-s window keeps the session short."""
PARTICIPANT = "P-042"
SEGMENTS = (("Clair de lune", 4.0, 12.0), ("Drumming", 14.0, 22.0), ("Here Comes the Sun", 24.0, None))


def signals(seconds: float, seed: int = 0) -> np.ndarray:
    """(40, n) DEAP-ish signals: EEG noise, slow GSR, breathing, pulse, temperature."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 128)
    t = np.arange(n) / 128
    x = rng.standard_normal((40, n)) * 10.0
    x[36] = 1000 + 50 * np.sin(2 * np.pi * 0.05 * t) + rng.standard_normal(n)
    x[37] = 200 * np.sin(2 * np.pi * 0.25 * t) + rng.standard_normal(n)
    x[38] = 500 * np.sin(2 * np.pi * 1.2 * t) ** 9 + rng.standard_normal(n)
    x[39] = 33 + 0.01 * t + 0.01 * rng.standard_normal(n)
    return x


def make_run(folder: Path) -> Path:
    """A run folder whose ``model.pt`` holds a tiny model, its population mean embedding and
    a calibration pool."""
    torch.manual_seed(4)
    model = build_model("symaffect", **TINY)
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"window_seconds": 2.0, "preprocess": {}}
    save_checkpoint(folder / "model.pt", model, name="symaffect", kwargs=TINY, extra=extra)
    hops = run_recording(Predictor(folder), deap_recording(signals(16.0, seed=9)))
    z = np.stack([h.prediction.embedding for h in hops])
    extra["embedding_mean"] = z.mean(axis=0).tolist()
    rng = np.random.default_rng(3)  # a population to pool with: the hops, with made-up ratings
    extra["calibration_pool"] = CalibrationPool(
        z=z, targets={t: rng.integers(0, n, size=len(z)) for t, n in model.n_outputs.items()}).to_extra()
    save_checkpoint(folder / "model.pt", model, name="symaffect", kwargs=TINY, extra=extra)
    return folder


def add_session(store: SessionStore, run: Path, *, participant: str = PARTICIPANT, seconds: float = 32.0,
                seed: int = 1, end: bool = False) -> tuple[int, list[int]]:
    """A session of ``run``'s predictions (with embeddings) and :data:`SEGMENTS`; the last
    segment is still open (playing) unless the session is ended."""
    predictor = Predictor(run)
    sid = store.create_session(participant, predictor.name, run_dir=str(run),
                               meta={"hop": 1.0, "model_path": str(predictor.base_path),
                                     "model_sha256": predictor.digest})
    for h in run_recording(predictor, deap_recording(signals(seconds, seed=seed))):
        store.add_prediction(sid, h.prediction)
    segs = [store.add_segment(sid, track, a, b, source="lsl") for track, a, b in SEGMENTS]
    if end:
        store.end_session(sid)
    return sid, segs
