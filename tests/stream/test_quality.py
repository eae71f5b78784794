"""Quality flags: flat (a channel that stops moving) vs clipping (an amplifier saturating)."""

from __future__ import annotations

import numpy as np
import pytest

from symaffect.spec import DEAP_CHANNELS, SFREQ
from symaffect.stream.quality import (
    DROP_FLAGS,
    QualityFlag,
    QualityThresholds,
    channel_flags,
    modality_flags,
)

N = 1280  # a 10-s window at 128 Hz
T = np.arange(N) / SFREQ
GROUPS = {"eeg": list(range(32)), "eog": [32, 33], "peripheral": [34, 35, 36, 37, 38, 39]}


def _gsr(seed: int = 0) -> np.ndarray:
    """Skin conductance (uS): slow drift, one response, sensor noise."""
    rng = np.random.default_rng(seed)
    scr = 0.4 * np.exp(-np.maximum(T - 3.0, 0) / 3.0) * (T > 3.0) * (1 - np.exp(-np.maximum(T - 3.0, 0) / 0.7))
    return 5.0 + 0.2 * np.sin(2 * np.pi * 0.05 * T) + scr + 0.005 * rng.standard_normal(N)


def _window(seed: int = 0) -> np.ndarray:
    """A clean (40, N) window: EEG/EOG/EMG noise, GSR, breathing, pulse, temperature."""
    rng = np.random.default_rng(seed)
    x = 10.0 * rng.standard_normal((40, N))
    x[36] = _gsr(seed)
    x[37] = np.sin(2 * np.pi * 0.25 * T) + 0.01 * rng.standard_normal(N)
    x[38] = np.sin(2 * np.pi * 1.2 * T) ** 9 + 0.01 * rng.standard_normal(N)
    x[39] = 33.0 + 0.01 * T + 0.003 * rng.standard_normal(N)
    return x


def _flags(x: np.ndarray, missing: np.ndarray | None = None, **th) -> list[tuple[str, str]]:
    miss = np.zeros((1, x.size), np.uint8) if missing is None else missing[None]
    return channel_flags(x[None], miss, thresholds=QualityThresholds(**th))[0]


def test_gsr_constant_for_last_5_s_is_flat_not_clipping():
    x = _gsr()
    x[N // 2:] = x[N // 2 - 1]  # sensor came off: the value freezes
    assert _flags(x) == [("flat", "constant for 5.0 s")]


def test_gsr_constant_for_whole_window_is_flat():
    """The therapist's case: GSR constant for 15 s -> every 10-s window of it is flat."""
    x = np.full(N, 4.87)
    assert _flags(x) == [("flat", "constant for 10.0 s")]
    raw = _window()
    raw[36] = 4.87
    found = modality_flags(raw, np.zeros_like(raw, dtype=np.uint8), DEAP_CHANNELS, GROUPS)
    assert [(q.modality, q.flag) for q in found] == [("peripheral", "flat")]
    assert found[0].detail == "GSR (constant for 10.0 s)" and found[0].drops


def test_short_constant_stretch_is_not_flat_and_threshold_is_a_field():
    x = _gsr()
    x[600:664] = x[599]  # 0.5 s: shorter than flat_run_s
    assert _flags(x) == []
    x = _gsr()
    x[N // 2:] = x[N // 2 - 1]  # 5 s
    assert _flags(x, flat_run_s=6.0) == []
    assert _flags(x, flat_run_s=4.0) == [("flat", "constant for 5.0 s")]


def test_saturating_amplifier_is_clipping_not_flat():
    rng = np.random.default_rng(1)
    x = np.sin(2 * np.pi * 1.2 * T) + 0.01 * rng.standard_normal(N)
    x = np.clip(x, -2.0, 0.8)  # the amplifier's ceiling cuts every pulse
    (flag, detail), = _flags(x)
    assert flag == "clipping" and "plateaus at max" in detail
    y = np.clip(-x, -0.8, 2.0)  # same at a floor
    (flag, detail), = _flags(y)
    assert flag == "clipping" and "at min" in detail
    # short runs at the extreme (one or two samples each, > 10 % of the window)
    z = np.tile([0.0, 1.0, 0.3, 1.0, 0.6, 0.2, 0.9, 0.4], N // 8) + 1e-3 * rng.standard_normal(N)
    z[z > 0.95] = 1.0
    (flag, detail), = _flags(z, clip_min_runs=10**6)
    assert flag == "clipping" and "short runs" in detail


def test_clean_signals_have_no_flags():
    raw = _window()
    per_ch = channel_flags(raw, np.zeros_like(raw, dtype=np.uint8))
    assert all(f == [] for f in per_ch)
    assert _flags(np.sin(2 * np.pi * 1.0 * T)) == []  # an exact max once per cycle is a peak, not clipping
    # a coarsely quantised thermometer (0.1 degC steps) sits on one value for seconds
    rng = np.random.default_rng(2)
    assert _flags(np.round(33.0 + 0.05 * T + 0.02 * rng.standard_normal(N), 1)) == []


def test_nan_handling_unchanged():
    """NaN samples are held and flagged ``nan``; the held stretch is not a flat run."""
    x = _gsr()
    miss = np.zeros(N, np.uint8)
    x[300:556] = x[299]  # 2 s held by the preprocessor
    miss[300:556] = 1
    assert _flags(x, miss) == [("nan", "256/1280 samples")]
    raw = _window()
    m = np.zeros_like(raw, dtype=np.uint8)
    m[36, 300:320] = 1
    found = modality_flags(raw, m, DEAP_CHANNELS, GROUPS)
    assert found == [QualityFlag("peripheral", "nan", "GSR (20/1280 samples)")] and found[0].drops


def test_both_flags_drop_the_modality():
    assert {"flat", "clipping"} <= set(DROP_FLAGS)
    assert QualityFlag("peripheral", "flat").drops and QualityFlag("peripheral", "clipping").drops
    assert not QualityFlag("peripheral", "partial").drops


@pytest.mark.parametrize(("path", "column"), [("bio_eventrelated_100hz.csv", "EDA"),
                                              ("bio_resting_5min_100hz.csv", "PPG")])
def test_real_recordings_are_not_flagged(real_dir, path, column):
    """No flat/clipping false alarm on real EDA and PPG (resampled to 128 Hz)."""
    f = real_dir / "neurokit" / path
    if not f.exists():
        pytest.skip(f"real recordings not found at {real_dir} (see ../shared/data/real/README.md)")
    import pandas as pd
    from scipy.signal import resample_poly

    x = resample_poly(pd.read_csv(f)[column].to_numpy(), 32, 25, padtype="line")  # 100 -> 128 Hz
    found = [flag for s in range(0, x.size - N, N // 2) for flag in _flags(x[s:s + N])]
    assert found == []


def test_the_vectorised_prefilter_never_hides_a_flag(monkeypatch):
    """channel_flags runs the exact per-channel checks only on the channels _suspects picks:
    over windows of every kind (constant stretches, saturation, missing samples, coarse
    quantisation, constants, tiny noise) the flags equal those of checking every channel."""
    from symaffect.stream import quality as q

    rng = np.random.default_rng(0)
    windows = []
    for _ in range(150):
        x = rng.standard_normal((8, 1280)) * rng.choice([1e-12, 1.0, 100.0], size=(8, 1))
        miss = np.zeros(x.shape, np.uint8)
        for c in range(8):
            kind = int(rng.integers(0, 7))
            a = int(rng.integers(0, 1000))
            b = a + int(rng.integers(2, 280))
            if kind == 1:
                x[c, a:b] = x[c, a]
            elif kind == 2:
                x[c] = np.clip(x[c], -0.5, 0.5)
            elif kind == 3:
                miss[c, a:b] = rng.integers(1, 4)
            elif kind == 4:
                x[c] = np.round(x[c] * 2) / 2
            elif kind == 5:
                x[c] = np.clip(2 * np.sin(np.arange(1280) / 3), -1, 1)
            elif kind == 6:
                x[c] = 5.0
        windows.append((x, miss))
    fast = [q.channel_flags(x, m) for x, m in windows]
    monkeypatch.setattr(q, "_suspects", lambda raw, *a: np.ones(raw.shape[0], bool))
    exact = [q.channel_flags(x, m) for x, m in windows]
    assert fast == exact
    assert sum(bool(f) for w in exact for f in w) > 300  # the windows do carry flags


def test_a_window_with_nothing_received_says_only_what_is_missing():
    """A channel whose every sample was NaN (held at the last value) is "nan", not also
    "flat": the held values are no signal, so no sensor finding is made from them."""
    x = np.random.default_rng(1).standard_normal((2, 1280))
    x[0] = 3.0  # held
    miss = np.zeros(x.shape, np.uint8)
    miss[0] = 1
    flags = channel_flags(x, miss)
    assert flags[0] == [("nan", "1280/1280 samples")]
    assert flags[1] == []
