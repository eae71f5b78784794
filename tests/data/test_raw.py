"""The BDF writer (checked against MNE's reader) and the raw DEAP reader.

Recordings are written in DEAP's original layout: 48 channels at 512 Hz (32 EEG in the
site's order, EXG1-8, GSR1, GSR2, Erg1, Erg2, Resp, Plet, Temp, Status carrying
BioSemi's high bits), with the real trigger sequence and real 60-s videos.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mne
import numpy as np
import pytest

from symaffect.data.bdf import read_bdf_header, write_bdf
from symaffect.data.raw import find_video_onsets, read_raw_subject
from symaffect.errors import DataError
from symaffect.spec import CH_INDEX, DEAP_CHANNELS, EEG_CHANNELS, EEG_CHANNELS_TWENTE

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "mne"
SF = 512
OTHER = ["EXG1", "EXG2", "EXG3", "EXG4", "EXG5", "EXG6", "EXG7", "EXG8",
         "GSR1", "GSR2", "Erg1", "Erg2", "Resp", "Plet", "Temp"]
HIGH = 0x190000


def _eeg_freq(geneva_index: int) -> float:
    return 6.0 + geneva_index  # 6..37 Hz, one distinct frequency per electrode


# bipolar pairs: (first, second) -> the difference is amp * sin(2 pi f t)
BIP = {"hEOG": (100.0, 1.5), "vEOG": (80.0, 0.5), "zEMG": (30.0, 20.0), "tEMG": (40.0, 25.0)}


def _truth(name: str, t: np.ndarray) -> np.ndarray:
    """Expected DEAP-channel signal (before EEG filtering/CAR) at times t (s)."""
    if name in BIP:
        amp, f = BIP[name]
        return amp * np.sin(2 * np.pi * f * t)
    if name == "GSR":
        return 2e5 + 5e3 * np.sin(2 * np.pi * 0.05 * t)
    if name == "Resp":
        return 200 * np.sin(2 * np.pi * 0.3 * t)
    if name == "BVP":
        return 300 * np.sin(2 * np.pi * 1.2 * t)
    if name == "Temp":
        return 30.0 + t / 10.0  # a clock: tells which time a sample came from
    raise KeyError(name)


def _schedule(n_trials: int, lead: float = 8.0):
    """Status code segments (code, seconds) of a DEAP session, and the video onsets (s)."""
    segs, onsets, t = [(0, lead)], [], lead
    for _ in range(n_trials):
        for code, dur in ((2, 1.0), (3, 5.0), (4, 60.0), (5, 3.0), (1, 2.0)):
            if code == 4:
                onsets.append(t)
            segs.append((code, dur))
            t += dur
    segs += [(7, 1.0), (0, 3.0)]
    return segs, onsets


def make_deap_bdf(
    path: Path,
    *,
    site: str,
    n_trials: int = 2,
    labels: list[str] | None = None,
    status_name: str = "Status",
    drop: tuple[str, ...] = (),
    tail_cut: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Write a DEAP-original-layout BDF; return the video onset times in seconds."""
    rng = np.random.default_rng(seed)
    segs, onsets = _schedule(n_trials)
    n = int(sum(d for _, d in segs) * SF) - int(tail_cut * SF)
    t = np.arange(n) / SF
    status = np.concatenate([np.full(int(d * SF), c) for c, d in segs])[:n] | HIGH
    status[n // 3 :] ^= 0x040000  # high bits change mid-recording: no event
    order = EEG_CHANNELS_TWENTE if site == "twente" else EEG_CHANNELS
    eeg = np.stack([20 * np.sin(2 * np.pi * _eeg_freq(EEG_CHANNELS.index(c)) * t) for c in order])
    common = 50 * np.sin(2 * np.pi * 0.7 * t) + rng.normal(0, 1, n)
    other = {}
    for deap, (a, b) in zip(BIP, [("EXG1", "EXG2"), ("EXG3", "EXG4"), ("EXG5", "EXG6"), ("EXG7", "EXG8")]):
        other[a] = _truth(deap, t) + common
        other[b] = common
    other.update(GSR1=_truth("GSR", t), Resp=_truth("Resp", t), Plet=_truth("BVP", t), Temp=_truth("Temp", t))
    for c in ("GSR2", "Erg1", "Erg2"):
        other[c] = rng.normal(0, 5, n)
    names = list(labels or order) + OTHER
    rows = [*eeg] + [other[c] for c in OTHER]
    units = ["uV"] * 40 + ["Ohm", "Ohm", "uV", "uV", "uV", "uV", "degC"]
    keep = [i for i, c in enumerate(names) if c not in drop]
    write_bdf(
        path,
        np.stack([rows[i] for i in keep]),
        [names[i] for i in keep],
        SF,
        units=[units[i] for i in keep],
        status=status,
        status_name=status_name,
    )
    return onsets


@pytest.fixture(scope="module")
def twente_s01(tmp_path_factory):
    p = tmp_path_factory.mktemp("raw") / "s01.bdf"
    return p, make_deap_bdf(p, site="twente")


def _check_record(rec, onsets):
    """Everything a correctly read DEAP recording must satisfy."""
    assert rec.data.shape == (len(onsets), 40, 8064) and rec.data.dtype == np.float32
    assert rec.sfreq == 128.0 and rec.ch_names == DEAP_CHANNELS
    sl = slice(640, 8064 - 640)  # away from the trial edges
    for k, onset in enumerate(onsets):
        t = onset - 3.0 + np.arange(8064) / 128.0
        x = rec.data[k].astype(np.float64)
        # the clock channel: sample 384 is the video onset, sample 0 is 3 s before it
        np.testing.assert_allclose(x[CH_INDEX["Temp"], sl], _truth("Temp", t)[sl], atol=1e-3)
        assert abs(x[CH_INDEX["Temp"], 384] - _truth("Temp", onset)) < 1e-3
        for name in ("hEOG", "vEOG", "zEMG", "tEMG", "Resp", "BVP"):
            np.testing.assert_allclose(x[CH_INDEX[name], sl], _truth(name, t)[sl], atol=0.5, err_msg=name)
        np.testing.assert_allclose(x[CH_INDEX["GSR"], sl], _truth("GSR", t)[sl], rtol=1e-4)
        # EEG: each Geneva index carries its own frequency; common average reference
        spec = np.abs(np.fft.rfft(x[:32, 384:], axis=1))
        freqs = np.fft.rfftfreq(8064 - 384, 1 / 128.0)
        peak = freqs[spec.argmax(axis=1)]
        np.testing.assert_allclose(peak, [_eeg_freq(g) for g in range(32)], atol=0.05)
        np.testing.assert_allclose(x[:32].mean(axis=0), 0.0, atol=1e-3)
        amp = np.sqrt(2) * x[:32, sl].std(axis=1)
        np.testing.assert_allclose(amp, 20 * np.sqrt(1 + 1 / 31) * 31 / 32, rtol=0.05)


# ------------------------------------------------------------------ BDF writer vs MNE


def test_write_bdf_matches_mne_reader(tmp_path):
    rng = np.random.default_rng(1)
    n = SF * 3 + 77  # not a whole number of records: padded
    x = np.stack([rng.normal(0, 30, n), 1e5 + rng.normal(0, 100, n), np.linspace(-2, 2, n)])
    status = np.full(n, HIGH)
    status[500:900] |= 4
    status[1000:] = 0x800000 | 0x1F0000 | 3  # bit 23 set: negative as a signed 24-bit value
    p = tmp_path / "x.bdf"
    write_bdf(p, x, ["Fp1", "GSR1", "Temp"], SF, units=["uV", "Ohm", "mV"], status=status, status_name="-1")
    raw_bytes = p.read_bytes()
    assert raw_bytes[:8] == b"\xffBIOSEMI" and raw_bytes[192:197] == b"24BIT"
    assert int(raw_bytes[184:192]) == 256 * 5 and int(raw_bytes[236:244]) == 4
    assert len(raw_bytes) == 256 * 5 + 4 * 4 * SF * 3  # 4 records x 4 signals x 512 x 3 bytes
    h = read_bdf_header(p)
    assert h.labels == ("Fp1", "GSR1", "Temp", "-1") and h.units[-1] == "Boo" and h.is_bdf
    raw = mne.io.read_raw_bdf(p, preload=True, verbose="error")
    assert raw.info["sfreq"] == SF and raw.n_times == 4 * SF
    d = raw.get_data()
    np.testing.assert_allclose(d[0, :n] * 1e6, x[0], atol=1e-3)  # uV -> V in MNE
    np.testing.assert_allclose(d[1, :n], x[1], atol=1e-3)
    np.testing.assert_allclose(d[2, :n] * 1e3, x[2], atol=1e-5)
    assert np.all(d[0, n:] == d[0, n - 1])  # padding repeats the last value
    # an unlabelled status channel comes back as the raw signed 24-bit words
    words = np.rint(d[3, :n]).astype(np.int64) & 0xFFFFFF
    np.testing.assert_array_equal(words, status & 0xFFFFFF)
    np.testing.assert_array_equal(find_video_onsets(words), [500])


def test_write_bdf_clips_to_physical_range_and_rejects_bad_input(tmp_path, caplog):
    x = np.array([[0.0, 5.0, 20.0, -20.0]])
    with caplog.at_level(logging.WARNING):
        write_bdf(tmp_path / "c.bdf", x, ["A"], 4, phys_range=(-10, 10))
    assert "clipped" in caplog.text
    d = mne.io.read_raw_bdf(tmp_path / "c.bdf", verbose="error").get_data()[0] * 1e6
    np.testing.assert_allclose(d, [0, 5, 10, -10], atol=1e-4)
    with pytest.raises(ValueError, match="whole number"):
        write_bdf(tmp_path / "c.bdf", x, ["A"], 4.5)
    with pytest.raises(ValueError, match="names"):
        write_bdf(tmp_path / "c.bdf", x, ["A", "B"], 4)


# ------------------------------------------------------------------ raw DEAP reader


def test_twente_recording_is_reordered_and_mapped(twente_s01, caplog):
    path, onsets = twente_s01
    with caplog.at_level(logging.WARNING):
        rec = read_raw_subject(path)
    assert rec.subject == 1
    _check_record(rec, onsets)
    np.testing.assert_array_equal(rec.labels, np.full((2, 4), 5.0, np.float32))
    np.testing.assert_array_equal(rec.trial_ids, [1, 2])
    assert "no ratings" in caplog.text


def test_geneva_recording_with_other_status_name(tmp_path):
    p = tmp_path / "s23.bdf"
    onsets = make_deap_bdf(p, site="geneva", status_name="", seed=2)
    rec = read_raw_subject(p)
    assert rec.subject == 23
    _check_record(rec, onsets)


def test_positional_eeg_uses_the_site_order(tmp_path):
    # BioSemi default labels (A1..A32): the site's order decides the reordering
    p = tmp_path / "rec.bdf"
    onsets = make_deap_bdf(p, site="twente", labels=[f"A{i}" for i in range(1, 33)], status_name="-1")
    rec = read_raw_subject(p, subject=5)
    assert rec.subject == 5
    _check_record(rec, onsets)
    # forcing the Geneva order on Twente data puts frequencies at the wrong electrodes
    wrong = read_raw_subject(p, subject=25)
    spec = np.abs(np.fft.rfft(wrong.data[0, :32, 384:], axis=1))
    peak = np.fft.rfftfreq(8064 - 384, 1 / 128.0)[spec.argmax(axis=1)]
    assert not np.allclose(peak, [_eeg_freq(g) for g in range(32)], atol=0.05)


def test_ratings_give_labels_and_video_order(twente_s01):
    path, onsets = twente_s01
    ratings = {
        "Participant_id": np.array([2, 1, 1]),
        "Trial": np.array([1, 2, 1]),
        "Experiment_id": np.array([1, 7, 30]),  # presented 2nd -> video 7, 1st -> video 30
        "Start_time": np.array([0, 0, 0]),
        "Valence": np.array([1.0, 2.0, 3.0]),
        "Arousal": np.array([4.0, 5.0, 6.0]),
        "Dominance": np.array([7.0, 8.0, 9.0]),
        "Liking": np.array([1.5, 2.5, 3.5]),
        "Familiarity": np.array([np.nan, 1.0, 2.0]),
    }
    rec = read_raw_subject(path, ratings=ratings)
    np.testing.assert_array_equal(rec.trial_ids, [7, 30])
    np.testing.assert_array_equal(rec.labels, np.array([[2, 5, 8, 2.5], [3, 6, 9, 3.5]], np.float32))
    _check_record(rec, [onsets[1], onsets[0]])
    with pytest.raises(DataError, match="2 video onsets but 1 rows for participant 1"):
        read_raw_subject(path, ratings={k: v[:2] for k, v in ratings.items()})


def test_missing_channels_are_listed(tmp_path):
    p = tmp_path / "s02.bdf"
    make_deap_bdf(p, site="twente", n_trials=1, drop=("GSR1", "Plet", "Cz"))
    with pytest.raises(DataError) as ei:
        read_raw_subject(p)
    msg = str(ei.value)
    assert msg.startswith(str(p)) and "missing channel(s): Cz, GSR1, Plet" in msg


def test_recording_cut_inside_a_video(tmp_path):
    p = tmp_path / "s03.bdf"
    make_deap_bdf(p, site="geneva", n_trials=1, tail_cut=20.0)  # video 14-74 s, file ends at 63 s
    with pytest.raises(DataError, match=r"s03\.bdf: trial 1: the recording ends before the 60-s video"):
        read_raw_subject(p)


def test_bdf_without_video_events(tmp_path):
    p = tmp_path / "s04.bdf"
    n = SF * 4
    status = np.full(n, HIGH | 3)
    status[SF:] = HIGH | 0x04_00  # code 4 only in a high byte: not a video onset
    write_bdf(p, np.zeros((1, n)), ["Fp1"], SF, status=status)
    with pytest.raises(DataError, match=r"s04\.bdf: no video onsets in the Status channel"):
        read_raw_subject(p)


def test_bdf_without_status_channel_and_not_a_bdf(tmp_path):
    p = tmp_path / "s04.bdf"
    write_bdf(p, np.zeros((1, SF)), ["Fp1"], SF)
    with pytest.raises(DataError, match="no Status channel"):
        read_raw_subject(p)
    q = tmp_path / "s05.bdf"
    q.write_bytes(b"hello" * 100)
    with pytest.raises(DataError, match=r"s05\.bdf: not a BDF/EDF file"):
        read_raw_subject(q)


def test_real_biosemi_file_without_video_events():
    f = REAL / "test.bdf"
    if not f.is_file():
        pytest.skip(f"real BioSemi test file not available at {f}")
    with pytest.raises(DataError) as ei:
        read_raw_subject(f)
    msg = str(ei.value)
    assert "test.bdf" in msg and "no video onsets" in msg and "\n" not in msg


def test_real_biosemi_file_with_code_4_but_not_deap_layout():
    f = REAL / "test_bdf_stim_channel.bdf"
    if not f.is_file():
        pytest.skip(f"real BioSemi test file not available at {f}")
    with pytest.raises(DataError, match="missing channel"):
        read_raw_subject(f, subject=1)
