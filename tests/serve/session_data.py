"""A synthetic but realistic monitored session written into a real SessionStore.

The predictions are generated (they are the *input* of the report and the dashboard,
which are what the tests check), with known structure: a calm baseline, a segment that
raises valence, one that raises arousal, an open last segment, a 30-s gap, and a
stretch where EEG is flat and dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from symaffect.stream.physio import Strip, Vital
from symaffect.stream.prediction import Prediction
from symaffect.stream.store import SessionStore

MODALITIES = ("eeg", "peripheral", "eog")
SEGMENTS = (
    ("Clair de lune", 60.0, 180.0),
    ("Drumming", 200.0, 320.0),
    ("Here Comes the Sun", 340.0, None),
)
GAP = (250.0, 280.0)
EEG_FLAT = (100.0, 120.0)


def peaked(target: float, width: float = 1.0) -> list[float]:
    """9-class probabilities peaked at ``target`` (1-9)."""
    k = np.arange(1, 10, dtype=float)
    p = np.exp(-0.5 * ((k - target) / width) ** 2)
    return list(p / p.sum())


def make_prediction(
    t: float, v: float, a: float, lk: float, *, used=MODALITIES, flags=(), width: float = 1.0,
) -> Prediction:
    """A prediction peaked at (v, a, lk); ``width`` (classes) sets the spread and the
    confidence (1.0: confidence 0.32 with every modality; 0.5: 0.76; 2.0: 0.11)."""
    return Prediction.from_probabilities(
        t, {"valence": peaked(v, width), "arousal": peaked(a, width), "liking": peaked(lk, width)},
        modalities_used=used, n_modalities=len(MODALITIES), flags=flags,
    )


def peripheral_vitals(heart_rate: float = 72.0) -> list[Vital]:
    """Heart rate (ok), breathing rate (implausible) and PPG quality of one update."""
    return [
        Vital("peripheral", "Plethysmograph", "heart_rate", heart_rate, "bpm", "ok"),
        Vital("peripheral", "Respiration belt", "breathing_rate", 48.0, "/min", "implausible",
                "48 breaths/min is outside 4-40: belt loose?"),
        Vital("peripheral", "Plethysmograph", "ppg_quality", 0.91, "", "ok"),
    ]


def peripheral_strip(seconds: float = 5.0, sfreq: float = 128.0, *, flat_gsr: bool = False) -> Strip:
    """5 s of a pulse wave, breathing and skin conductance (flat when ``flat_gsr``)."""
    t = np.arange(int(seconds * sfreq)) / sfreq
    gsr = np.full_like(t, 2.0) if flat_gsr else 2.0 + 0.05 * np.sin(2 * np.pi * 0.1 * t)
    values = np.stack([np.sin(2 * np.pi * 1.2 * t), np.sin(2 * np.pi * 0.25 * t), gsr]).astype(np.float32)
    values[0, 10:14] = np.nan  # a few missing samples
    return Strip("peripheral", ("Plethysmograph", "Respiration belt", "GSR"), sfreq, values)


def targets(t: float) -> tuple[float, float, float]:
    """Ground-truth-free targets of the synthetic session at time ``t`` (s)."""
    v, a, lk = 4.0, 4.0, 5.0
    if 60 <= t < 180:
        v = 7.0
    elif 200 <= t < 320:
        a = 7.5
    elif t >= 340:
        lk, v = 7.5, 6.0
    return v, a, lk


def fill_session(
    store: SessionStore, *, n: int = 420, hop: float = 1.0, seed: int = 0, end: bool = True,
    participant: str = "P-007",
) -> int:
    """Create a session with ``n`` hops of predictions, segments and quality flags."""
    rng = np.random.default_rng(seed)
    sid = store.create_session(participant, "dtfe-multitask", run_dir="runs/demo", meta={"hop": hop})
    for track, start, stop in SEGMENTS:
        if start < n * hop:
            store.add_segment(sid, track, start, stop, source="lsl")
    store.add_quality(sid, EEG_FLAT[0], "eeg", "flat", "Fp1..O2 flat for 20 s")
    store.add_quality(sid, GAP[0], "stream", "gap", "no samples for 30 s")
    for i in range(n):
        t = i * hop
        if GAP[0] <= t < GAP[1]:
            continue
        v, a, lk = (x + rng.normal(0, 0.2) for x in targets(t))
        eeg_bad = EEG_FLAT[0] <= t < EEG_FLAT[1]
        used = ("peripheral", "eog") if eeg_bad else MODALITIES
        flags = ("eeg:flat",) if eeg_bad else ()
        store.add_prediction(sid, make_prediction(t, v, a, lk, used=used, flags=flags))
    if end:
        store.end_session(sid)
    return sid


def make_store(path: Path, **kw) -> tuple[Path, int]:
    """A fresh store file at ``path`` with one synthetic session; returns (path, id)."""
    with SessionStore(path) as store:
        sid = fill_session(store, **kw)
    return path, sid
