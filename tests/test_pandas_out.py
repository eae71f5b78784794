"""DataFrames of predictions, store rows and metrics; ``symaffect predict --out x.parquet``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from symaffect.cli import main
from symaffect.data.deap_writer import write_subject
from symaffect.errors import DataError
from symaffect.models import build_model, save_checkpoint
from symaffect.stream.pipeline import predict_recording, predictions_frame, write_predictions
from symaffect.stream.prediction import rating_spread
from symaffect.stream.recording import deap_recording
from symaffect.stream.store import SessionStore, to_dataframe

TINY = {"n_times": 256, "d": 16, "tau": 16, "n_heads": 2}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with a randomly initialised model (2-s windows), as tests/stream/conftest.py."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(run / "model.pt", build_model("symaffect", **TINY), name="symaffect", kwargs=TINY,
                    extra={"window_seconds": 2.0, "preprocess": {}, "tasks": ["valence", "arousal", "liking"]})
    return run


def _signals(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 128)
    t = np.arange(n) / 128
    x = rng.standard_normal((40, n)) * 10.0
    x[36] = 1000 + 50 * np.sin(2 * np.pi * 0.05 * t)
    x[37] = 200 * np.sin(2 * np.pi * 0.25 * t)
    x[38] = 500 * np.sin(2 * np.pi * 1.2 * t) ** 9
    x[39] = 33 + 0.01 * t
    x[5, 2 * 128:] = 0.0  # a flat EEG channel from 2 s: some hops carry a flag
    return x


@pytest.fixture(scope="module")
def preds(run_dir):
    torch.set_num_threads(1)
    return predict_recording(run_dir, deap_recording(_signals(6.0)))


def test_predictions_frame_columns_dtypes_and_values(preds):
    df = predictions_frame(preds)
    assert len(df) == len(preds) == 5  # hops at 2, 3, 4, 5, 6 s
    probs = [f"p_{t}_{k}" for t in ("valence", "arousal", "liking") for k in range(1, 10)]
    assert list(df.columns) == ["t", "valence", "arousal", "liking", "quadrant", "confidence",
                                "spread_valence", "spread_arousal", "spread_liking", "modalities_used", "flags",
                                "latency_ms", "model_label", "calibration_id", *probs]
    for c in ("t", "valence", "arousal", "liking", "confidence", "spread_valence", "latency_ms", *probs):
        assert df[c].dtype == np.float64, c
    for c in ("quadrant", "modalities_used", "flags", "model_label"):
        assert pd.api.types.is_string_dtype(df[c]), c
    assert str(df["calibration_id"].dtype) == "Int64"
    assert df["t"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    for i, p in enumerate(preds):
        row = df.iloc[i]
        assert row["valence"] == p.expected["valence"] and row["liking"] == p.expected["liking"]
        assert row["quadrant"] == p.quadrant and row["confidence"] == p.confidence
        assert row["spread_arousal"] == rating_spread(p.probabilities["arousal"])
        assert row["modalities_used"] == "+".join(p.modalities_used)
        assert row["flags"] == ";".join(p.flags)
        assert [row[f"p_valence_{k}"] for k in range(1, 10)] == p.probabilities["valence"]
        assert row["model_label"] == p.model_label
    assert df["modalities_used"].iloc[0] == "eeg+peripheral+eog"
    assert "eeg:flat" in df["flags"].iloc[-1]  # the flat channel is flagged
    assert np.isnan(df["latency_ms"]).all() and df["calibration_id"].isna().all()
    assert np.allclose(df[[f"p_arousal_{k}" for k in range(1, 10)]].sum(axis=1), 1.0)


def test_an_empty_list_gives_the_fixed_columns():
    df = predictions_frame([])
    assert len(df) == 0 and list(df.columns)[:6] == ["t", "valence", "arousal", "liking", "quadrant", "confidence"]


def test_parquet_csv_json_and_a_bad_suffix(preds, tmp_path):
    pq = write_predictions(tmp_path / "p.parquet", preds)
    back = pd.read_parquet(pq)
    pd.testing.assert_frame_equal(back, predictions_frame(preds))
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]  # no temporary file left
    csv = pd.read_csv(write_predictions(tmp_path / "p.csv", preds))
    assert csv["t"].tolist() == back["t"].tolist()
    assert np.allclose(csv["valence"], back["valence"], atol=1e-6)
    assert len(json.loads(write_predictions(tmp_path / "p.json", preds).read_text())) == 5
    with pytest.raises(DataError, match=r"p\.xlsx.*\.csv, \.json or \.parquet"):
        write_predictions(tmp_path / "p.xlsx", preds)


def test_cli_predict_out_parquet_round_trip(run_dir, tmp_path, capsys):
    data = np.stack([_signals(6.0, seed=1), _signals(6.0, seed=2)]).astype(np.float32)
    write_subject(tmp_path / "s01.dat", data, np.full((2, 4), 5.0, np.float32))
    out = tmp_path / "out" / "p.parquet"
    main(["predict", str(run_dir), str(tmp_path / "s01.dat"), "--trial", "2", "--out", str(out)])
    assert f"wrote{out}" in "".join(capsys.readouterr().out.split())  # rich may wrap inside the path
    df = pd.read_parquet(out)
    expect = predictions_frame(predict_recording(run_dir, deap_recording(data[1])))
    assert df["t"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert np.allclose(df["valence"], expect["valence"], atol=1e-5)
    assert df["quadrant"].tolist() == expect["quadrant"].tolist()


def test_cli_predict_bad_suffix_names_the_file_and_parquet(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(run_dir), str(tmp_path / "rec.csv"), "--out", str(tmp_path / "p.txt")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "p.txt" in err and ".csv, .json or .parquet" in err and "--out" in err


def test_store_frames(preds, tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        sid = store.create_session("p01", "symaffect", run_dir="runs/a", meta={"hop": 1.0, "model_sha256": "ab"})
        for p in preds:
            store.add_prediction(sid, p)
        store.add_quality(sid, 3.0, "eeg", "flat", "Fz")
        store.add_quality(sid, 4.0, "peripheral", "clipping")
        store.add_segment(sid, "Bach", 2.5)
        df = store.predictions_frame(sid)
        q = store.quality_frame(sid)
        sessions = store.sessions_frame()
        segs = store.segments_frame(sid)
        rows = store.predictions(sid)
    assert list(df.columns[:3]) == ["id", "session_id", "t"] and df.columns[-1] == "created_at"
    assert df["session_id"].tolist() == [sid] * 5 and df["id"].dtype == np.int64
    assert df["t"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert np.allclose(df["valence"], [p.expected["valence"] for p in preds])
    assert np.allclose(df["p_liking_9"], [p.probabilities["liking"][8] for p in preds])
    assert df["flags"].tolist() == [";".join(p.flags) for p in preds]
    assert (df["created_at"] > 1.6e9).all()
    pd.testing.assert_frame_equal(to_dataframe(rows), df)
    assert q[["t", "modality", "flag", "detail"]].values.tolist() == [[3.0, "eeg", "flat", "Fz"],
                                                                       [4.0, "peripheral", "clipping", ""]]
    assert q["t"].dtype == np.float64 and pd.api.types.is_string_dtype(q["flag"])
    s = sessions.iloc[0]
    assert (s["id"], s["participant"], s["model"], s["run_dir"], s["n_predictions"]) == (sid, "p01", "symaffect",
                                                                                        "runs/a", 5)
    assert json.loads(s["meta"]) == {"hop": 1.0, "model_sha256": "ab"} and np.isnan(s["ended_at"])
    assert segs[["track", "start"]].values.tolist() == [["Bach", 2.5]] and np.isnan(segs["end"].iloc[0])
    empty = to_dataframe([], type(rows[0]))
    assert len(empty) == 0 and "p_valence_1" not in empty.columns and "created_at" in empty.columns
