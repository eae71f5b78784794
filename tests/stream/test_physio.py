"""Vital signs with plausibility (NeuroKit2, real computations) and raw-signal strips."""

from __future__ import annotations

import warnings
from fractions import Fraction

import neurokit2 as nk
import numpy as np
import pytest
from scipy.signal import resample_poly

from symaffect.spec import DEAP_CHANNELS, SFREQ
from symaffect.stream.physio import (
    STATUSES,
    PlausibleRanges,
    Strip,
    Vital,
    signal_strips,
    window_vitals,
)

FS = int(SFREQ)
N = 10 * FS  # a 10-s window
T = np.arange(N) / FS
PERIPHERAL = ["GSR", "BVP", "zEMG", "tEMG", "Resp", "Temp"]


def _quiet(fn, **kwargs):
    """NeuroKit2's simulators warn about their own modulation limits; not under test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(fn(sampling_rate=FS, **kwargs), dtype=np.float64)[:N]


def _ppg(hr: float, **kwargs) -> np.ndarray:
    return _quiet(nk.ppg_simulate, duration=10, heart_rate=hr, random_state=1, **kwargs)


def _rsp(rate: float, seed: int = 1) -> np.ndarray:
    return _quiet(nk.rsp_simulate, duration=10, respiratory_rate=rate, random_state=seed)


def _eda(n_scr: int) -> np.ndarray:
    return _quiet(nk.eda_simulate, duration=10, scr_number=n_scr, random_state=1)


def _one(raw: np.ndarray, ch: str, name: str, **kwargs) -> Vital:
    found = [v for v in window_vitals(raw[None], [ch], **kwargs) if v.name == name]
    assert len(found) == 1, found
    return found[0]


# --- heart rate and PPG quality --------------------------------------------------------


@pytest.mark.parametrize("hr", [55.0, 72.0, 110.0])
def test_heart_rate_of_simulated_ppg(hr):
    x = _ppg(hr, frequency_modulation=0.0, ibi_randomness=0.0)
    v = _one(x, "BVP", "heart_rate")
    assert v.status == "ok" and v.unit == "bpm" and v.modality == "peripheral"
    assert v.value == pytest.approx(hr, abs=3.0)
    q = _one(x, "BVP", "ppg_quality")
    assert q.status == "ok" and 0.86 <= q.value <= 1.0 and q.unit == ""


def test_heart_rate_with_natural_variability_is_ok():
    x = _ppg(72.0)  # NeuroKit2's default heart-rate modulation: the 10 s average drifts a little
    v = _one(x, "BVP", "heart_rate")
    assert v.status == "ok" and 60.0 <= v.value <= 84.0


@pytest.mark.parametrize("kind", ["ppg300", "sine5hz"])
def test_heart_rate_too_fast_is_implausible(kind):
    x = _ppg(300.0) if kind == "ppg300" else np.sin(2 * np.pi * 5.0 * T)
    v = _one(x, "BVP", "heart_rate")
    assert v.status == "implausible"
    assert v.value == pytest.approx(300.0, abs=5.0)  # not the detector's halved 150
    assert "PPG sensor" in v.detail and "300" in v.detail


def test_heart_rate_too_slow_is_not_ok():
    """20 pulses a minute: below the PPG filter's 0.5-Hz band, so never reported as ok
    (documented limit: the detector sees the pulse's harmonics, not its rate)."""
    x = np.sin(2 * np.pi * (20 / 60) * T) ** 15
    v = _one(x, "BVP", "heart_rate")
    assert v.status != "ok" and v.detail


def test_noisy_ppg_is_not_ok():
    x = np.random.default_rng(0).standard_normal(N)
    hr, q = (_one(x, "BVP", n) for n in ("heart_rate", "ppg_quality"))
    assert hr.status != "ok" and q.status != "ok"
    if q.status == "poor":
        assert q.value < PlausibleRanges().ppg_quality_min and "irregular" in q.detail


# --- breathing -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_breathing_rate_15_per_minute(seed):
    v = _one(_rsp(15.0, seed), "Resp", "breathing_rate")
    assert v.status == "ok" and v.unit == "breaths/min"
    assert v.value == pytest.approx(15.0, abs=2.5)


def test_breathing_two_per_second_is_implausible():
    v = _one(np.sin(2 * np.pi * 2.0 * T), "Resp", "breathing_rate")
    assert v.status == "implausible" and v.value == pytest.approx(120.0, abs=5.0)
    assert "breathing belt" in v.detail or "faster than breathing" in v.detail


def test_breathing_too_slow_for_the_window_is_unknown():
    v = _one(np.sin(2 * np.pi * (3 / 60) * T), "Resp", "breathing_rate")  # 3/min: half a breath in 10 s
    assert v.status == "unknown" and v.value is None and "this window" in v.detail


# --- skin conductance --------------------------------------------------------------------


def test_scr_rate_of_simulated_eda():
    x = _eda(3)
    scl, scr = window_vitals(x[None], ["GSR"])
    assert (scl.name, scl.status, scl.unit) == ("skin_conductance_level", "ok", "uS")
    assert x.min() <= scl.value <= x.max()
    assert (scr.name, scr.status, scr.unit) == ("scr_rate", "ok", "SCR/min")
    assert 6.0 <= scr.value <= 24.0  # 1-4 responses found in 10 s
    # DEAP's convention: skin resistance in Ohm -> the same conductance and responses
    scl_r, scr_r = window_vitals((1e6 / x)[None], ["GSR"])
    assert scl_r.value == pytest.approx(scl.value, rel=1e-6) and scr_r.value == scr.value


def test_no_responses_gives_zero_rate():
    x = 5.0 + 0.002 * np.random.default_rng(1).standard_normal(N)  # tonic level + sensor noise
    scl, scr = window_vitals(x[None], ["GSR"])
    assert scl.status == "ok" and scr.status == "ok" and scr.value == 0.0


def test_gsr_with_unknown_units():
    x = 500.0 + _eda(2)  # neither uS (0-100) nor Ohm (> 1000): e.g. kOhm or ADC counts
    vs = window_vitals(x[None], ["GSR"])
    assert [v.status for v in vs] == ["unknown", "unknown"] and all(v.value is None for v in vs)
    assert "units unknown" in vs[0].detail
    scl, scr = window_vitals(np.full((1, N), 2000.0) + _eda(2), ["GSR"])  # 2 kOhm: 500 uS
    assert scl.status == "implausible" and scl.value == pytest.approx(500.0, rel=0.01)
    assert "not physiological" in scl.detail and scr.status == "unknown"


# --- temperature -------------------------------------------------------------------------


def test_skin_temperature():
    ok = _one(33.0 + 0.01 * T, "Temp", "skin_temperature")
    assert (ok.status, ok.unit) == ("ok", "degC") and ok.value == pytest.approx(33.05, abs=0.01)
    flat = _one(np.full(N, 32.5), "Temp", "skin_temperature")  # constant skin temperature is fine
    assert flat.status == "ok"
    cold = _one(np.full(N, 17.0) + 0.01 * T, "Temp", "skin_temperature")
    assert cold.status == "implausible" and "on the skin" in cold.detail
    jump = _one(30.0 + 3.0 * (T > 5), "Temp", "skin_temperature")
    assert jump.status == "poor" and "changed by 3.0" in jump.detail
    other = _one(np.full(N, 306.0), "Temp", "skin_temperature")  # Kelvin? raw counts? undocumented
    assert (other.status, other.unit, other.value) == ("unknown", "", 306.0)


# --- bad signal: unknown with a reason, never an exception --------------------------------


GOOD = {"BVP": lambda: _ppg(72.0), "Resp": lambda: _rsp(15.0), "GSR": lambda: _eda(2),
        "Temp": lambda: 33.0 + 0.01 * T}


@pytest.mark.parametrize("ch", ["BVP", "Resp", "GSR"])
@pytest.mark.parametrize("damage", ["flat", "nan", "all_nan", "missing", "short"])
def test_bad_signal_gives_unknown_with_reason(ch, damage):
    x = GOOD[ch]()
    missing = None
    if damage == "flat":
        x = np.full(N, 3.0)
    elif damage == "nan":
        x[200:700] = np.nan  # 39 % NaN
    elif damage == "all_nan":
        x[:] = np.nan
    elif damage == "missing":
        missing = np.zeros((1, N), np.uint8)
        missing[0, :800] = 3  # 62 % filled in by the stream (outage)
    else:
        x = x[:200]  # 1.6 s
    vs = window_vitals(x[None], [ch], missing)
    assert vs and all(v.status == "unknown" and v.value is None for v in vs)
    words = {"flat": "flat", "nan": "NaN", "all_nan": "NaN", "missing": "filled in", "short": "only 1.6 s"}
    assert all(words[damage] in v.detail for v in vs), [v.detail for v in vs]


def test_few_nan_samples_are_bridged():
    x = _ppg(72.0, frequency_modulation=0.0, ibi_randomness=0.0)
    x[300:310] = np.nan
    missing = np.zeros((1, N), np.uint8)
    missing[0, 300:310] = 1
    v = _one(x, "BVP", "heart_rate", missing=missing)
    assert v.status == "ok" and v.value == pytest.approx(72.0, abs=3.0)


def test_all_peripheral_channels_and_absent_ones():
    raw = np.random.default_rng(0).standard_normal((6, N))
    raw[0], raw[1], raw[4], raw[5] = _eda(2), _ppg(72.0), _rsp(15.0), 33.0 + 0.01 * T
    vs = window_vitals(raw, PERIPHERAL)
    assert [(v.channel, v.name) for v in vs] == [
        ("BVP", "heart_rate"), ("BVP", "ppg_quality"), ("Resp", "breathing_rate"),
        ("GSR", "skin_conductance_level"), ("GSR", "scr_rate"), ("Temp", "skin_temperature")]
    assert all(v.status in STATUSES and v.modality == "peripheral" for v in vs)
    assert all(v.status == "ok" for v in vs), [(v.name, v.detail) for v in vs]
    only = window_vitals(raw[[0, 2]], ["GSR", "zEMG"])  # EMG gives nothing, BVP/Resp/Temp absent
    assert {v.channel for v in only} == {"GSR"}
    assert window_vitals(raw[2:4], ["zEMG", "tEMG"]) == []


def test_custom_ranges_and_bad_arguments():
    x = _ppg(110.0, frequency_modulation=0.0, ibi_randomness=0.0)
    v = _one(x, "BVP", "heart_rate", ranges=PlausibleRanges(heart_rate=(30.0, 100.0)))
    assert v.status == "implausible" and "30-100" in v.detail
    with pytest.raises(ValueError, match="len\\(ch_names\\)"):
        window_vitals(np.zeros((2, N)), ["BVP"])
    with pytest.raises(ValueError, match="missing"):
        window_vitals(np.zeros((1, N)), ["BVP"], np.zeros((1, N - 1), np.uint8))


# --- real recordings ----------------------------------------------------------------------


def _real(real_dir, name: str):
    if not (real_dir / "README.md").exists():
        pytest.skip(f"real recordings not found at {real_dir} (see ../shared/data/real/README.md)")
    return real_dir / name


def _to_128(x: np.ndarray, fs_in: int) -> np.ndarray:
    f = Fraction(FS, fs_in)
    return resample_poly(np.asarray(x, dtype=np.float64), f.numerator, f.denominator, padtype="line")


def _windows(x: np.ndarray, ch: str, name: str) -> list[Vital]:
    return [v for s in range(0, x.size - N, N // 2) for v in window_vitals(x[None, s:s + N], [ch])
            if v.name == name]


def _read(real_dir, file: str, column: str | None, fs_in: int) -> np.ndarray:
    path = _real(real_dir, file)
    if column is None:
        return _to_128(np.loadtxt(path, comments="#"), fs_in)
    import pandas as pd

    return _to_128(pd.read_csv(path)[column].to_numpy(), fs_in)


REAL = [  # file, column, rate, DEAP channel, vital, NeuroKit2 whole-recording reference, tolerance
    ("neurokit/bio_resting_5min_100hz.csv", "PPG", 100, "BVP", "heart_rate", "ppg", 2.0),
    ("biosppy/ppg.txt", None, 1000, "BVP", "heart_rate", "ppg", 2.0),
    ("neurokit/bio_resting_5min_100hz.csv", "RSP", 100, "Resp", "breathing_rate", "rsp", 2.0),
    ("neurokit/bio_eventrelated_100hz.csv", "RSP", 100, "Resp", "breathing_rate", "rsp", 2.0),
    ("biosppy/resp.txt", None, 1000, "Resp", "breathing_rate", "rsp", 3.0),
]


@pytest.mark.parametrize(("file", "column", "fs_in", "ch", "name", "ref", "tol"), REAL)
def test_real_recordings_give_plausible_values(real_dir, file, column, fs_in, ch, name, ref, tol):
    """Real, healthy recordings: no false 'implausible', mostly 'ok', and the 10-s values
    agree with NeuroKit2's ``*_process`` rate over the whole recording (averaged over the
    window) -- to within a few bpm / breaths per minute, median over windows."""
    x = _read(real_dir, file, column, fs_in)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ref == "ppg":
            rate = nk.ppg_process(x, sampling_rate=FS)[0]["PPG_Rate"].to_numpy()
        else:
            rate = nk.rsp_process(x, sampling_rate=FS)[0]["RSP_Rate"].to_numpy()
    starts = range(0, x.size - N, N // 2)
    vs = [v for s in starts for v in window_vitals(x[None, s:s + N], [ch]) if v.name == name]
    assert len(vs) == len(starts)
    assert not [v for v in vs if v.status == "implausible"], "false alarm on a real recording"
    assert sum(v.status == "ok" for v in vs) >= 0.6 * len(vs), [v.detail for v in vs]
    err = np.array([v.value - rate[s:s + N].mean() for s, v in zip(starts, vs) if v.value is not None])
    assert err.size >= 0.7 * len(vs) and np.median(np.abs(err)) < tol, err.round(1)


def test_real_eda_gives_plausible_scr_rates(real_dir):
    x = _read(real_dir, "neurokit/bio_eventrelated_100hz.csv", "EDA", 100)
    vs = _windows(x, "GSR", "scr_rate")
    assert vs and all(v.status == "ok" and 0.0 <= v.value <= 24.0 for v in vs)
    assert any(v.value > 0 for v in vs)  # the negative images evoke responses


def test_real_eda_in_microsiemens_and_raw_counts(real_dir):
    import pandas as pd

    eda = _to_128(pd.read_csv(_real(real_dir, "neurokit/bio_eventrelated_100hz.csv"))["EDA"].to_numpy(), 100)
    levels = _windows(eda, "GSR", "skin_conductance_level")
    assert all(v.status == "ok" and 1.0 < v.value < 30.0 for v in levels)
    counts = _to_128(np.loadtxt(_real(real_dir, "biosppy/eda.txt"), comments="#"), 1000)  # 12-bit ADC
    assert all(v.status != "ok" for v in _windows(counts[: 60 * FS], "GSR", "skin_conductance_level"))


# --- strips ----------------------------------------------------------------------------------


GROUPS = {"eeg": list(range(32)), "eog": [32, 33], "peripheral": [34, 35, 36, 37, 38, 39]}


def test_strip_shapes_and_channel_choice():
    raw = np.random.default_rng(0).standard_normal((40, N))
    strips = signal_strips(raw, DEAP_CHANNELS, GROUPS)
    assert [s.modality for s in strips] == ["eeg", "eog", "peripheral"]
    assert all(isinstance(s, Strip) and s.sfreq == 64.0 and s.values.dtype == np.float32 for s in strips)
    assert [s.values.shape for s in strips] == [(6, 256), (2, 256), (6, 256)]
    assert strips[0].channels == ("Fz", "Cz", "Pz", "Oz", "Fp1", "Fp2")
    assert strips[1].channels == ("hEOG", "vEOG")
    assert strips[2].channels == ("zEMG", "tEMG", "GSR", "Resp", "BVP", "Temp")
    few = signal_strips(raw, DEAP_CHANNELS, {"eeg": [0, 1, 2, 23], "peripheral": []}, max_channels=3)
    assert len(few) == 1 and few[0].channels == ("Cz", "Fp1", "AF3")  # preferred first, then in order
    short = signal_strips(raw, DEAP_CHANNELS, GROUPS, seconds=2.0, out_sfreq=32.0, max_channels=2)
    assert [s.values.shape for s in short] == [(2, 64), (2, 64), (2, 64)] and short[0].sfreq == 32.0


def test_strip_reflects_the_last_seconds_and_anti_aliases():
    slow = np.sin(2 * np.pi * 0.5 * T) + T  # a ramp plus a slow wave: its position in time is visible
    raw = np.stack([slow, slow + np.sin(2 * np.pi * 50.0 * T)])  # 50 Hz is above the 32-Hz Nyquist
    a, = signal_strips(raw, ["GSR", "BVP"], {"peripheral": [0, 1]})
    expected = slow[-4 * FS::2]  # the last 4 s at 64 Hz
    np.testing.assert_allclose(a.values[0], expected, atol=5e-3)
    # the 50-Hz tone is filtered out (the last samples only partly: the filter has no future there)
    np.testing.assert_allclose(a.values[1, :-4], expected[:-4], atol=2e-2)
    np.testing.assert_allclose(a.values[1, -4:], expected[-4:], atol=0.1)
    whole, = signal_strips(raw[:, :3 * FS], ["GSR", "BVP"], {"peripheral": [0, 1]})  # window shorter
    assert whole.values.shape == (2, 3 * 64)
    same, = signal_strips(raw, ["GSR", "BVP"], {"peripheral": [0]}, out_sfreq=128.0)
    np.testing.assert_array_equal(same.values[0], slow[-4 * FS:].astype(np.float32))


def test_strip_keeps_nan_where_it_was():
    raw = np.tile(np.sin(2 * np.pi * 1.0 * T), (2, 1))
    raw[0, N - 100] = np.nan
    s, = signal_strips(raw, ["BVP", "Resp"], {"peripheral": [0, 1]})
    assert np.flatnonzero(np.isnan(s.values[0])).tolist() == [256 - 50]
    assert np.isfinite(s.values[1]).all()
    assert np.isfinite(np.delete(s.values[0], 206)).all()


def test_strip_bad_arguments():
    raw = np.zeros((2, N))
    for kwargs, match in [({"seconds": 0}, "seconds"), ({"out_sfreq": 256.0}, "out_sfreq"),
                          ({"max_channels": 0}, "max_channels")]:
        with pytest.raises(ValueError, match=match):
            signal_strips(raw, ["BVP", "Resp"], {"peripheral": [0, 1]}, **kwargs)
    with pytest.raises(ValueError, match="outside"):
        signal_strips(raw, ["BVP", "Resp"], {"peripheral": [0, 5]})
