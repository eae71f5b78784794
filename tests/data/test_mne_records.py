"""records_from_mne: a lab's own MNE recordings + a ratings table -> SubjectRecords.

Real MNE objects (``mne.create_info`` + ``RawArray`` with real channel types and
annotations, one FIF round trip) and CSV tables written to ``tmp_path``; no mocks.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mne
import numpy as np
import pytest

from symaffect.data.mne_records import match_channels, records_from_mne
from symaffect.data.prepare import prepare_records
from symaffect.data.windows import WindowConfig
from symaffect.errors import DataError
from symaffect.spec import CH_INDEX, DEAP_CHANNELS, EEG_CHANNELS

SF = 256.0
SECONDS = 40.0
TRIAL = 4.0  # s; every trial: 3-s baseline + 4 s
N_OUT = int((3 + TRIAL) * 128)
OLD = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
TYPES = {"hEOG": "eog", "vEOG": "eog", "zEMG": "emg", "tEMG": "emg", "GSR": "gsr",
         "Resp": "resp", "BVP": "bio", "Temp": "temperature"}
HEOG_V = 50e-6  # volts -> 50 µV
GSR_S = 2e-6  # siemens -> 2 µS


def _name(ch: str, k: int) -> str:
    """Recording names: old 10-20 names, and DEAP's in mixed case."""
    ch = OLD.get(ch, ch)
    return ch.upper() if k % 3 == 0 else ch.lower() if k % 3 == 1 else ch


def make_raw(seed: int, *, sfreq: float = SF, seconds: float = SECONDS, drop: tuple[str, ...] = (),
             annotations: dict[str, float] | None = None) -> mne.io.RawArray:
    """40 DEAP channels (+ a stim channel) in MNE's SI units; Temp is the time in s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sfreq)
    t = np.arange(n) / sfreq
    names, types, rows = [], [], []
    for k, ch in enumerate(DEAP_CHANNELS):
        if ch in drop:
            continue
        names.append(_name(ch, k))
        types.append(TYPES.get(ch, "eeg"))
        if ch == "hEOG":
            rows.append(np.full(n, HEOG_V))
        elif ch == "GSR":
            rows.append(np.full(n, GSR_S))
        elif ch == "Temp":
            rows.append(t.copy())
        elif ch in EEG_CHANNELS:
            rows.append(10e-6 * np.sin(2 * np.pi * (6 + k) * t + rng.uniform(0, 6)) + 1e-6 * rng.standard_normal(n))
        else:
            rows.append(rng.standard_normal(n) * 1e-5)
    names.append("STI 014")
    types.append("stim")
    rows.append(np.zeros(n))
    raw = mne.io.RawArray(np.asarray(rows), mne.create_info(names, sfreq, types), verbose="error")
    if annotations:
        raw.set_annotations(mne.Annotations(list(annotations.values()), [TRIAL] * len(annotations),
                                            list(annotations)))
    return raw


RATINGS = {  # (subject, trial): (valence, arousal, dominance, liking)
    (1, 1): (7.5, 3.0, 5.0, 8.0), (1, 2): (2.0, 8.0, 4.0, 1.5), (1, 3): (5.0, 5.0, 6.0, 5.0),
    (2, 1): (1.0, 9.0, 2.0, 3.0), (2, 2): (9.0, 1.0, 7.0, 6.5), (2, 3): (4.0, 6.0, 3.0, 2.0),
}
ONSETS = {1: 8.0, 2: 28.0, 3: 18.0}  # trial -> onset s (not in trial order)


def write_table(path: Path, rows: list[dict]) -> Path:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def onset_rows(recs: dict[int, str] | None = None) -> list[dict]:
    recs = recs or {1: "rec_a", 2: "rec_b"}
    out = []
    for (s, tr) in [(2, 3), (1, 2), (1, 1), (2, 1), (1, 3), (2, 2)]:  # shuffled
        v, a, d, lk = RATINGS[s, tr]
        out.append({"Subject": s, "Trial": tr, "Valence": v, "Arousal": a, "Dominance": d, "Liking": lk,
                    "Recording": recs[s], "Onset": ONSETS[tr], "Duration": TRIAL})
    return out


@pytest.fixture(scope="module")
def raws() -> dict[str, mne.io.RawArray]:
    return {"rec_a": make_raw(1), "rec_b": make_raw(2)}


def test_records_shapes_labels_units_baseline(tmp_path, raws):
    table = write_table(tmp_path / "ratings.csv", onset_rows())
    recs = records_from_mne(raws, table)
    assert [r.subject for r in recs] == [1, 2]
    for r in recs:
        assert r.data.shape == (3, 40, N_OUT) and r.data.dtype == np.float32
        assert r.sfreq == 128.0 and tuple(r.ch_names) == DEAP_CHANNELS
        np.testing.assert_array_equal(r.trial_ids, [1, 2, 3])
        np.testing.assert_array_equal(r.labels, np.asarray([RATINGS[r.subject, t] for t in (1, 2, 3)], np.float32))
        assert np.isfinite(r.data).all()
        mid = slice(64, N_OUT - 64)  # away from the resampler's edges
        np.testing.assert_allclose(r.data[:, CH_INDEX["hEOG"], mid], HEOG_V * 1e6, rtol=1e-3)  # V -> µV
        np.testing.assert_allclose(r.data[:, CH_INDEX["GSR"], mid], GSR_S * 1e6, rtol=1e-3)  # S -> µS
        # Temp is the recording's clock: sample 0 is 3 s before the onset, sample 384 the onset
        for k, tr in enumerate((1, 2, 3)):
            temp = r.data[k, CH_INDEX["Temp"]]
            assert temp[0] == pytest.approx(ONSETS[tr] - 3.0, abs=1e-3)
            assert temp[384] == pytest.approx(ONSETS[tr], abs=1e-3)
        eeg = r.data[:, : len(EEG_CHANNELS)]
        assert 1.0 < float(eeg.std()) < 50.0  # µV, band-passed and re-referenced
        np.testing.assert_allclose(eeg.mean(axis=1), 0.0, atol=1e-3)  # common average
        assert r.source == ("rec_a" if r.subject == 1 else "rec_b")
    # T3/T4/T5/T6 went to T7/T8/P7/P8 (non-zero, distinct signals)
    for ch in ("T7", "T8", "P7", "P8"):
        assert recs[0].data[:, CH_INDEX[ch]].std() > 1.0


def test_prepare_records_gives_windows(tmp_path, raws):
    recs = records_from_mne(raws, write_table(tmp_path / "r.csv", onset_rows()))
    prepared = prepare_records(recs, window=WindowConfig(window_seconds=2.0, stride_seconds=1.0))
    assert prepared.n_stored == int(TRIAL * 128)  # the 3-s baseline dropped
    index = prepared.window_index()
    assert index.shape == (2 * 3 * 3, 3)  # (4 - 2) / 1 + 1 = 3 windows per trial
    np.testing.assert_array_equal(prepared.trial_ids, [1, 2, 3, 1, 2, 3])


def test_fif_paths_from_the_table_and_dataframe(tmp_path, raws):
    for name, raw in raws.items():
        raw.save(tmp_path / f"{name}_raw.fif", verbose="error")
    rows = onset_rows({1: "rec_a_raw.fif", 2: "rec_b_raw.fif"})
    from_files = records_from_mne(None, write_table(tmp_path / "t.csv", rows))
    in_memory = records_from_mne(raws, write_table(tmp_path / "m.csv", onset_rows()))
    for a, b in zip(from_files, in_memory):
        np.testing.assert_allclose(a.data, b.data, atol=1e-3)
    # a sequence of paths: matched by file name or name without extension
    paths = [tmp_path / "rec_a_raw.fif", tmp_path / "rec_b_raw.fif"]
    rows = onset_rows({1: "rec_a_raw", 2: "rec_b_raw.fif"})
    pd = pytest.importorskip("pandas")
    recs = records_from_mne(paths, pd.DataFrame(rows))
    np.testing.assert_allclose(recs[1].data, in_memory[1].data, atol=1e-3)
    np.testing.assert_array_equal(recs[0].labels, in_memory[0].labels)


def test_trials_from_annotations(tmp_path):
    tracks = {1: "song_a", 2: "song_b", 3: "song_c"}
    raws = {s: make_raw(s, annotations={tracks[tr]: ONSETS[tr] for tr in (1, 2, 3)}) for s in (1, 2)}
    rows = [{"subject": s, "trial": tr, "track": tracks[tr], "valence": v, "arousal": a, "liking": lk,
             "recording": f"p{s}"} for (s, tr), (v, a, _d, lk) in RATINGS.items()]
    recs = records_from_mne({f"p{s}": r for s, r in raws.items()}, write_table(tmp_path / "a.csv", rows))
    assert [r.data.shape for r in recs] == [(3, 40, N_OUT)] * 2
    np.testing.assert_allclose(recs[0].labels[:, 2], 5.0)  # no dominance column: the midpoint
    np.testing.assert_allclose(recs[1].labels[:, 0], [1.0, 9.0, 4.0])
    for k, tr in enumerate((1, 2, 3)):
        assert recs[0].data[k, CH_INDEX["Temp"], 384] == pytest.approx(ONSETS[tr], abs=1e-3)
    # the one recording needs no recording column
    one = [{k: v for k, v in r.items() if k != "recording"} for r in rows if r["subject"] == 1]
    rec, = records_from_mne(raws[1], write_table(tmp_path / "one.csv", one))
    np.testing.assert_allclose(rec.data, recs[0].data)
    bad = [dict(one[0], track="song_x")]
    with pytest.raises(DataError, match=r"bad.csv line 2: no annotation 'song_x'"):
        records_from_mne(raws[1], write_table(tmp_path / "bad.csv", bad))


def test_trial_seconds_crops_unequal_durations(tmp_path, raws):
    rows = onset_rows()
    rows[0]["Duration"] = 6.0
    table = write_table(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match="trials differ in length.*trial_seconds"):
        records_from_mne(raws, table)
    recs = records_from_mne(raws, table, trial_seconds=3.0)
    assert recs[0].data.shape == (3, 40, 6 * 128)
    with pytest.raises(DataError, match="shorter than trial_seconds"):
        records_from_mne(raws, table, trial_seconds=5.0)


def test_missing_channels(tmp_path):
    raws = {"rec_a": make_raw(1, drop=("Pz", "BVP")), "rec_b": make_raw(2)}
    table = write_table(tmp_path / "c.csv", onset_rows())
    with pytest.raises(DataError, match=r"^rec_a: missing DEAP channel\(s\) Pz, BVP .*fill_missing"):
        records_from_mne(raws, table)
    recs = records_from_mne(raws, table, fill_missing="zeros")
    assert not recs[0].data[:, [CH_INDEX["Pz"], CH_INDEX["BVP"]]].any()
    assert recs[0].data[:, CH_INDEX["Cz"]].std() > 1.0
    recs = records_from_mne(raws, table, fill_missing="nan")
    assert np.isnan(recs[0].data[:, CH_INDEX["Pz"]]).all()
    assert np.isfinite(np.delete(recs[0].data, [CH_INDEX["Pz"], CH_INDEX["BVP"]], axis=1)).all()
    # an explicit mapping gives a channel under another name
    raw = make_raw(1, drop=("BVP",))
    raw.rename_channels({"resp": "Belt"})
    with pytest.raises(DataError, match=r"missing DEAP channel\(s\) Resp, BVP"):
        records_from_mne({"rec_a": raw, "rec_b": raws["rec_b"]}, table)
    both = {"rec_a": raw, "rec_b": raws["rec_b"]}
    recs = records_from_mne(both, table, channel_names={"Belt": "Resp"}, fill_missing="zeros")
    assert recs[1].data[:, CH_INDEX["Resp"]].std() > 1e-6  # rec_b has no Belt: its own resp
    assert recs[0].data[:, CH_INDEX["Resp"]].std() > 1e-6  # the belt (not filled)
    assert not recs[0].data[:, CH_INDEX["BVP"]].any()
    with pytest.raises(DataError, match="channel_names: STI 014: in none of the recordings"):
        records_from_mne(both, table, channel_names={"Belt": "Resp", "STI 014": "BVP"}, fill_missing="zeros")


def test_match_channels():
    assert match_channels(["FP1", "t3", "eeg x", "Pleth"]) == {"Fp1": "FP1", "T7": "t3", "BVP": "Pleth"}
    with pytest.raises(DataError, match="r: channels 't3' and 'T7' both give DEAP channel T7"):
        match_channels(["t3", "T7"], where="r")
    assert match_channels(["t3", "T7"], {"t3": "T8"}) == {"T8": "t3", "T7": "T7"}
    with pytest.raises(DataError, match="lacks"):
        match_channels(["Fz"], {"Cz": "Cz"})
    with pytest.raises(DataError, match="not a DEAP channel"):
        match_channels(["Fz"], {"Fz": "Fzz"})


@pytest.mark.parametrize("change, message", [
    ({"Valence": 9.5}, r"e.csv line 2: valence 9.5 is outside \[1, 9\]"),
    ({"Liking": 0}, r"e.csv line 2: liking 0 is outside \[1, 9\]"),
    ({"Arousal": "high"}, r"e.csv line 2: column 'arousal': 'high' is not a number"),
    ({"Onset": 1.0}, r"e.csv line 2: the trial's 3-s baseline .* starts before recording 'rec_b'"),
    ({"Onset": 37.0}, r"e.csv line 2: the trial ends at 41 s, after recording 'rec_b' \(40 s\) ends"),
    ({"Trial": 1}, r"e.csv line 2: subject 2 trial 1 is also in e.csv line 5"),
    ({"Recording": "rec_z"}, r"e.csv line 2: recording 'rec_z' is not among the recordings given"),
    ({"Subject": "P2"}, r"e.csv line 2: column 'subject': 'P2' is not a number"),
])
def test_validation_errors(tmp_path, raws, change, message):
    rows = onset_rows()
    rows[0].update(change)  # rows[0] is subject 2, trial 3
    if "Trial" in change:  # move the clashing row after the original (line 5: subject 2 trial 1)
        rows.insert(3, rows.pop(0))
        message = r"e.csv line 5: subject 2 trial 1 is also in e.csv line 4"
    with pytest.raises(DataError, match=message):
        records_from_mne(raws, write_table(tmp_path / "e.csv", rows))


def test_subject_with_two_sampling_rates(tmp_path, raws):
    rows = onset_rows()
    rows[1]["Recording"] = "rec_c"  # subject 1 trial 2 from a 512-Hz recording
    recordings = {**raws, "rec_c": make_raw(3, sfreq=512.0)}
    with pytest.raises(DataError, match=r"line [0-9]+: subject 1: recording '.*' is at (512|256) Hz but"):
        records_from_mne(recordings, write_table(tmp_path / "s.csv", rows))
    # another subject at another rate is fine: everything is resampled to 128 Hz
    rows = onset_rows({1: "rec_a", 2: "rec_c"})
    recs = records_from_mne(recordings, write_table(tmp_path / "s2.csv", rows))
    assert recs[1].data.shape == (3, 40, N_OUT)
    assert recs[1].data[0, CH_INDEX["Temp"], 384] == pytest.approx(ONSETS[1], abs=1e-3)


def test_missing_columns_and_unnamed_raw(tmp_path, raws):
    rows = [{k: v for k, v in r.items() if k != "Liking"} for r in onset_rows()]
    with pytest.raises(DataError, match="lacks column"):
        records_from_mne(raws, write_table(tmp_path / "l.csv", rows))
    with pytest.raises(DataError, match="no trial duration"):
        records_from_mne(raws, write_table(tmp_path / "n.csv", [
            {k: v for k, v in r.items() if k != "Duration"} for r in onset_rows()]))
    with pytest.raises(DataError, match="pass recordings as a mapping"):
        records_from_mne(list(raws.values()), write_table(tmp_path / "u.csv", onset_rows()))


def test_in_memory_training_run(tmp_path):
    """Records -> prepare_records -> RunData -> train_and_score, no data folder."""
    from symaffect.eval.scoring import train_and_score
    from symaffect.train.config import RunConfig
    from symaffect.train.rundata import RunData

    raws = {f"p{s}": make_raw(10 + s, seconds=26.0) for s in range(1, 5)}
    onsets = {1: 4.0, 2: 12.0, 3: 19.0}
    rows = [{"subject": s, "trial": tr, "valence": 1 + (s + tr) % 9, "arousal": 9 - (s * tr) % 8,
             "liking": 5, "recording": f"p{s}", "onset": onsets[tr], "duration": TRIAL}
            for s in range(1, 5) for tr in (1, 2, 3)]
    recs = records_from_mne(raws, write_table(tmp_path / "train.csv", rows))
    cfg = RunConfig().replace(**{
        "data.window.window_seconds": 2.0, "data.window.stride_seconds": 1.0,
        "model.kwargs": {"d": 8, "tau": 8, "mixer": "lowrank", "mixer_rank": 4, "n_heads": 2},
        "optim.batch_size": 16, "optim.max_epochs": 1, "optim.patience": 5,
        "protocol.test_ratio": 0.34, "protocol.val_ratio": 0.25, "trainer.accelerator": "cpu",
    })
    prepared = prepare_records(recs, window=cfg.data.window, norm=cfg.data.norm)
    data = RunData.split(cfg, "<records>", prepared=prepared)
    out = train_and_score(cfg, "<records>", tmp_path / "run", data=data)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["provenance"]["prepared"]["source"] == "<records>"
    assert metrics["n_test_windows"] > 0 and metrics["runs"]
    assert set(metrics["summary"]) == set(metrics["tasks"]) and metrics["tasks"]
    assert (out / "model.pt").is_file()


def test_train_command_from_a_ratings_table(tmp_path):
    """`symaffect train --ratings table.csv` trains on the recordings the table names (FIF
    files beside it), without writing DEAP files, and scores the run."""
    import yaml

    from symaffect.cli import main

    rows = []
    onsets = {1: 4.0, 2: 12.0, 3: 19.0}
    for s in range(1, 5):
        make_raw(10 + s, seconds=26.0).save(tmp_path / f"p{s}_raw.fif")
        rows += [{"subject": s, "trial": tr, "valence": 1 + (s + tr) % 9, "arousal": 9 - (s * tr) % 8,
                  "liking": 5, "recording": f"p{s}_raw.fif", "onset": onsets[tr], "duration": TRIAL}
                 for tr in (1, 2, 3)]
    table = write_table(tmp_path / "ratings.csv", rows)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({
        "data": {"window": {"window_seconds": 2.0, "stride_seconds": 1.0}},
        "model": {"kwargs": {"d": 8, "tau": 8, "mixer": "lowrank", "mixer_rank": 4, "n_heads": 2}},
        "optim": {"batch_size": 16, "max_epochs": 1},
        "protocol": {"test_ratio": 0.34, "val_ratio": 0.25},
        "trainer": {"accelerator": "cpu"},
    }))
    main(["train", "--ratings", str(table), "--out", str(tmp_path / "run"), "--preset", "quick",
          "--config", str(tmp_path / "tiny.yaml")])  # returns on success (exit code 0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["provenance"]["prepared"]["source"] == "<records>" and metrics["n_test_windows"] > 0
    assert not list(tmp_path.rglob("*.dat"))  # no DEAP files were written
    # the run re-scores from the same table, on the folds it saved
    before = metrics["summary"]
    (tmp_path / "run" / "metrics.json").unlink()
    main(["evaluate", str(tmp_path / "run"), "--ratings", str(table)])
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert again["summary"] == before
