"""MNE in: Raw objects, FIF / BrainVision / BDF files, Epochs; units, annotations, the CLI."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from symaffect.cli import app
from symaffect.data.bdf import write_bdf
from symaffect.errors import DataError
from symaffect.spec import DEAP_CHANNELS, EEG_CHANNELS
from symaffect.stream.pipeline import Predictor, predict_recording
from symaffect.stream.recording import (
    Recording,
    read_recording,
    recording_from_mne,
    recordings_from_epochs,
)

SF = 128
MNE_NAMES = [f"EEG {c}-REF" for c in EEG_CHANNELS] + [
    "EOG hEOG-REF", "EOG vEOG-REF", "EMG zEMG", "EMG tEMG", "EDA", "Resp", "PPG", "TEMP"]
MNE_TYPES = ["eeg"] * 32 + ["eog", "eog", "emg", "emg", "gsr", "resp", "bio", "temperature"]
TO_SI = np.array([1e-6] * 36 + [1e-6, 1.0, 1.0, 1.0])[:, None]
"""DEAP units -> MNE's: µV -> V for EEG/EOG/EMG, µS -> S for gsr; resp, bio, °C as they are."""


def _deap_units(signals, seconds=12.0):
    """(40, n) in DEAP units, GSR as a skin conductance in µS."""
    x = signals(seconds)
    x[36] = 5.0 + 0.5 * np.sin(np.arange(x.shape[1]) / SF)  # µS
    return x


def _raw(x, names=MNE_NAMES, types=MNE_TYPES):
    return mne.io.RawArray(x * TO_SI, mne.create_info(list(names), SF, list(types)), verbose="error")


def test_raw_in_volts_equals_microvolt_bdf_read_the_existing_way(tmp_path, signals):
    x = _deap_units(signals)
    write_bdf(tmp_path / "uv.bdf", x[:36], list(DEAP_CHANNELS[:36]), SF, units="uV")
    via_bdf = read_recording(tmp_path / "uv.bdf")
    rec = read_recording(_raw(x))  # an mne.io.Raw accepted directly
    assert rec.ch_names == DEAP_CHANNELS and rec.sfreq == SF and rec.n_samples == x.shape[1]
    assert rec.source == "<RawArray>" and rec.notes == []
    np.testing.assert_allclose(rec.data, x, rtol=1e-12, atol=1e-12)  # µV, µS, resp/bio/°C as given
    assert via_bdf.ch_names == DEAP_CHANNELS[:36]
    np.testing.assert_allclose(rec.data[:36], via_bdf.data, atol=1e-3)  # BDF: 24-bit quantisation
    assert np.abs(rec.data[:32]).max() > 20  # really µV-scale values, not volts
    np.testing.assert_allclose(Recording.from_mne(_raw(x)).data, rec.data)


def test_bdf_non_voltage_units_are_not_scaled(tmp_path, signals):
    """MNE types every BDF channel 'eeg' and scales only voltages: GSR in Ohm and Temp stay as written."""
    x = signals(4)
    write_bdf(tmp_path / "mix.bdf", x[[0, 36, 39]], ["Fp1", "GSR1", "Temp"], SF, units=["uV", "Ohm", "degC"])
    rec = read_recording(tmp_path / "mix.bdf")
    assert rec.ch_names == ("Fp1", "GSR", "Temp")
    np.testing.assert_allclose(rec.data, x[[0, 36, 39]], atol=1e-3)
    assert 900 < rec.data[1].mean() < 1100 and 32 < rec.data[2].mean() < 34


def test_real_bdf_same_through_mne_object(real_dir):
    path = real_dir / "mne" / "test.bdf"
    if not path.is_file():
        pytest.skip(f"real data not found at {path} (../shared/data/real is absent)")
    by_path = read_recording(path)
    raw = mne.io.read_raw_bdf(path, preload=True, verbose="error")
    by_raw = recording_from_mne(raw)
    assert by_path.ch_names == by_raw.ch_names and set(EEG_CHANNELS) <= set(by_path.ch_names)
    assert Path(by_raw.source).resolve() == path.resolve() and by_path.sfreq == 2048.0  # ../shared may be a link
    np.testing.assert_array_equal(by_path.data, by_raw.data)
    i = by_path.ch_names.index("Fp1")
    np.testing.assert_allclose(by_path.data[i], raw.get_data(picks=["Fp1"])[0] * 1e6)
    assert 1 < np.std(by_path.data[i]) < 1e5  # µV


def test_channel_types_units_bads_and_stim():
    n = 4 * SF
    rng = np.random.default_rng(0)
    si = np.vstack([rng.standard_normal(n) * 20e-6, np.full(n, 4e-6), np.full(n, 33.5), rng.standard_normal(n),
                    rng.standard_normal(n) * 1e-3, rng.standard_normal(n) * 10e-6, np.zeros(n)])
    info = mne.create_info(["Cz", "Skin conductance", "Temperature", "Pleth", "ECG", "Fz", "STI 014"], SF,
                           ["eeg", "gsr", "temperature", "misc", "ecg", "eeg", "stim"])
    raw = mne.io.RawArray(si, info, verbose="error")
    raw.info["bads"] = ["Fz"]
    rec = recording_from_mne(raw, source="lab")
    assert rec.ch_names == ("Cz", "GSR", "Temp", "BVP") and rec.source == "lab"
    np.testing.assert_allclose(rec.data[0], si[0] * 1e6)
    np.testing.assert_allclose(rec.data[1], 4.0)  # S -> µS
    np.testing.assert_allclose(rec.data[2], 33.5)  # °C kept
    np.testing.assert_allclose(rec.data[3], si[3])  # misc: kept as given
    assert rec.notes == ["Fz: marked bad in info['bads']; left out",
                         "ECG: no DEAP channel (DEAP has no ECG); ignored"]
    assert rec.match.mapping == {"Cz": "Cz", "Skin conductance": "GSR", "Temperature": "Temp", "Pleth": "BVP"}


def test_eeg_ref_montage_old_names_and_report_logged_once(caplog, signals):
    x = _deap_units(signals, 4)
    names = [{"EEG T7-REF": "EEG T3-REF", "EEG T8-REF": "EEG T4-REF", "EEG P7-REF": "EEG T5-REF",
              "EEG P8-REF": "EEG T6-REF"}.get(n, n) for n in MNE_NAMES]
    with caplog.at_level(logging.INFO, logger="symaffect.stream.recording"):
        rec = read_recording(_raw(x, names=names))
    assert rec.ch_names == DEAP_CHANNELS and rec.source_names == tuple(names)
    np.testing.assert_allclose(rec.data, x, atol=1e-12)
    assert rec.match.missing == () and not rec.match.left_out
    assert {e.source: e.target for e in rec.match.matched if e.source.startswith("EEG T")} == {
        "EEG T3-REF": "T7", "EEG T5-REF": "P7", "EEG T4-REF": "T8", "EEG T6-REF": "P8"}
    lines = [r.getMessage() for r in caplog.records if "channel map 'default'" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("<RawArray>: channel map 'default': 40 of 40 channels matched")
    assert "EEG T3-REF->T7" in lines[0]


def test_annotations_to_markers(tmp_path, signals):
    raw = _raw(_deap_units(signals, 12))
    raw.set_meas_date(1_600_000_000)
    raw.set_annotations(mne.Annotations(
        onset=[1.0, 2.0, 3.0, 4.0, 5.0, 7.5], duration=[5.0, 1.0, 0.0, 2.0, 0.0, 3.0],
        description=["song A", "BAD_muscle", "song B onset", "EDGE boundary", "boundary", "bad blink"],
        orig_time=raw.info["meas_date"]))
    rec = recording_from_mne(raw)
    assert rec.markers == [("song A", 1.0, 6.0), ("song B onset", 3.0, None)]
    cropped = recording_from_mne(raw.copy().crop(tmin=0.5))  # onsets from the cropped raw's first sample
    assert cropped.markers == [("song A", 0.5, 5.5), ("song B onset", 2.5, None)]
    raw.save(tmp_path / "ann_raw.fif", verbose="error")
    assert read_recording(tmp_path / "ann_raw.fif").markers == rec.markers


def test_fif_and_fif_gz_files(tmp_path, signals):
    x = _deap_units(signals, 5)
    raw = _raw(x)
    for name in ("rec_raw.fif", "rec_raw.fif.gz"):
        raw.save(tmp_path / name, verbose="error")
        rec = read_recording(tmp_path / name)
        assert rec.ch_names == DEAP_CHANNELS and rec.source == str(tmp_path / name)
        np.testing.assert_allclose(rec.data, x, rtol=1e-6, atol=1e-9)  # FIF stores float32


def test_epochs_fif_is_a_clear_error(tmp_path, signals):
    raw = _raw(_deap_units(signals, 8))
    epochs = mne.Epochs(raw, np.array([[SF, 0, 1], [5 * SF, 0, 1]]), tmin=0, tmax=1, baseline=None,
                        verbose="error", preload=True)
    epochs.save(tmp_path / "x-epo.fif", verbose="error")
    with pytest.raises(DataError, match="holds epochs.*recordings_from_epochs"):
        read_recording(tmp_path / "x-epo.fif")
    with pytest.raises(DataError, match="use recordings_from_epochs"):
        read_recording(epochs)


def _write_brainvision(folder, x_file_units, names, units, markers):
    """A BrainVision triplet written by hand (pybv is not installed): float32, multiplexed."""
    (folder / "bv.eeg").write_bytes(np.asarray(x_file_units, "<f4").T.tobytes())
    chans = "\n".join(f"Ch{i}={n},,1,{u}" for i, (n, u) in enumerate(zip(names, units), start=1))
    (folder / "bv.vhdr").write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile=bv.eeg\nMarkerFile=bv.vmrk\nDataFormat=BINARY\nDataOrientation=MULTIPLEXED\n"
        f"NumberOfChannels={len(names)}\nSamplingInterval={1e6 / SF}\n\n[Binary Infos]\n"
        f"BinaryFormat=IEEE_FLOAT_32\n\n[Channel Infos]\n{chans}\n", encoding="utf-8")
    mk = "\n".join(f"Mk{i}=Comment,{d},{s},{n},0" for i, (d, s, n) in enumerate(markers, start=2))
    (folder / "bv.vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile=bv.eeg\n\n[Marker Infos]\nMk1=New Segment,,1,1,0\n{mk}\n", encoding="utf-8")
    return folder / "bv.vhdr"


def test_brainvision_file(tmp_path, signals):
    x = _deap_units(signals, 4)
    names = ["Fp1-Ref", "T3-Ref", "EDA", "Temp", "RESP"]
    idx = [0, 7, 36, 39, 37]
    path = _write_brainvision(tmp_path, x[idx], names, ["µV", "µV", "µS", "C", "n/a"],
                              [("music 1", 129, 256), ("BAD_x", 300, 10)])
    rec = read_recording(path)
    assert rec.ch_names == ("Fp1", "T7", "GSR", "Temp", "Resp")
    np.testing.assert_allclose(rec.data, x[idx], rtol=1e-5, atol=1e-4)  # float32 in the file, back in file units
    assert rec.markers == [("Comment/music 1", 1.0, 3.0)]


def test_epochs_to_recordings_and_predictions(run_dir, signals):
    x = _deap_units(signals, 16)
    raw = _raw(x)
    events = np.array([[1 * SF, 0, 1], [6 * SF, 0, 2], [10 * SF, 0, 1]])
    epochs = mne.Epochs(raw, events, event_id={"music/happy": 1, "music/sad": 2}, tmin=-0.5, tmax=4.5,
                        baseline=None, preload=True, verbose="error")
    recs = recordings_from_epochs(epochs)
    assert [r.markers for r in recs] == [[("baseline", 0.0, 0.5), (name, 0.5, 641 / SF)]
                                         for name in ("music/happy", "music/sad", "music/happy")]
    assert all(r.ch_names == DEAP_CHANNELS and r.n_samples == 641 for r in recs)
    assert [r.source for r in recs] == ["<Epochs>[0]", "<Epochs>[1]", "<Epochs>[2]"]
    np.testing.assert_allclose(recs[1].data, x[:, 6 * SF - SF // 2: 6 * SF - SF // 2 + 641], atol=1e-9)
    predictor = Predictor(run_dir)
    preds = [predict_recording(predictor, r) for r in recs]
    assert [len(p) for p in preds] == [4, 4, 4]  # 5.0-s epochs, 2-s window, 1-s hop: t = 2, 3, 4, 5
    assert [p.t for p in preds[0]] == pytest.approx([2.0, 3.0, 4.0, 5.0], abs=0.01)
    assert all(1 <= v <= 9 for p in preds for pr in p for v in pr.expected.values())
    epochs.metadata = pd.DataFrame({"track": ["Song A", "Song B", "Song C"], "artist": ["x", "y", "z"]})
    assert [r.markers[-1][0] for r in recordings_from_epochs(epochs)] == ["Song A", "Song B", "Song C"]
    assert [r.markers[-1][0] for r in recordings_from_epochs(epochs, track="artist")] == ["x", "y", "z"]
    with pytest.raises(DataError, match="no column 'title'"):
        recordings_from_epochs(epochs, track="title")


def test_cli_predict_fif(run_dir, tmp_path, signals):
    x = _deap_units(signals, 6)
    _raw(x).save(tmp_path / "session_raw.fif", verbose="error")
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(app, ["predict", str(run_dir), str(tmp_path / "session_raw.fif"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5 and [float(row["t"]) for row in rows] == pytest.approx([2, 3, 4, 5, 6], abs=0.01)
    assert all(1 <= float(row["valence"]) <= 9 and row["modalities_used"] for row in rows)
    assert "5/5 hops" in r.output


def test_not_a_recording():
    with pytest.raises(DataError, match="expected a file path or an mne.io.Raw, got int"):
        read_recording(3)
    with pytest.raises(DataError, match="expected an mne.io.BaseRaw, got ndarray"):
        recording_from_mne(np.zeros((2, 3)))
