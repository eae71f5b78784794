"""SessionStore: round trips, typed rows, migrations, concurrency, crash safety."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from symaffect.errors import DataError
from symaffect.stream.physio import Strip, Vital
from symaffect.stream.prediction import Prediction, expected_rating
from symaffect.stream.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ActivationRow,
    CalibrationRow,
    PredictionRow,
    QualityRow,
    SegmentRatingRow,
    SegmentRow,
    SessionRow,
    SessionStore,
    default_db_path,
    migrate,
)

V2_DB = Path(__file__).parent / "data" / "sessions_v2.db"
"""A session database written by the schema-v2 store (before listener calibration): two
sessions (one ended), segments (one open), 42 predictions, quality flags."""


def _pred(t: float, peak: int = 6, *, embedding=None, label=None, cal=None) -> Prediction:
    p = [0.02] * 9
    p[peak] = 1.0 - 0.02 * 8
    return Prediction.from_probabilities(
        t, {"valence": p, "arousal": p[::-1], "liking": p},
        modalities_used=("eeg", "peripheral"), n_modalities=3, flags=["eog:flat"], latency_ms=3.5,
        embedding=embedding, model_label=label, calibration_id=cal,
    )


def test_prediction_fields():
    pred = _pred(10.0, peak=6)  # class 7 of 9 for valence, class 3 for arousal
    assert pred.valence == pytest.approx(expected_rating(pred.probabilities["valence"]))
    assert 6.0 < pred.valence < 7.0 and 3.0 < pred.arousal < 4.0
    assert pred.quadrant == "Q4"  # high valence, low arousal
    assert 0 < pred.confidence < 2 / 3  # 2 of 3 modalities
    assert expected_rating([1.0] + [0.0] * 8) == 1.0
    assert expected_rating([0.0, 1.0]) == 9.0


def test_round_trip(tmp_path):
    db = tmp_path / "s.db"
    with SessionStore(db) as st:
        sid = st.create_session("P01", "symaffect", run_dir="/runs/a", meta={"hop": 1})
        seg = st.add_segment(sid, "track A", 0.0)
        st.end_segment(seg, 30.0)
        st.add_segment(sid, "track B", 30.0, 60.0, source="lsl")
        for t in (10.0, 11.0, 12.0):
            st.add_prediction(sid, _pred(t))
        st.add_quality(sid, 11.0, "eog", "flat", "std 0")
        st.end_session(sid)
    with SessionStore(db) as st:
        s = st.session(sid)
        assert s.participant == "P01" and s.meta == {"hop": 1} and s.ended_at >= s.started_at
        assert s.n_predictions == 3 and s.run_dir == "/runs/a" and s.model == "symaffect"
        assert [x.id for x in st.sessions()] == [sid]
        preds = st.predictions(sid)
        assert [p.t for p in preds] == [10.0, 11.0, 12.0]
        assert preds[0].modalities_used == ("eeg", "peripheral") and preds[0].flags == ("eog:flat",)
        assert len(preds[0].probabilities["valence"]) == 9
        assert preds[0].valence == pytest.approx(_pred(10.0).valence)
        assert preds[0].quadrant == "Q4" and preds[0].latency_ms == 3.5
        assert [p.t for p in st.predictions(sid, since_t=10.0)] == [11.0, 12.0]
        segs = st.segments(sid)
        assert [(g.track, g.end, g.source) for g in segs] == [("track A", 30.0, "api"), ("track B", 60.0, "lsl")]
        assert st.quality(sid)[0].flag == "flat"
        assert st.integrity_check() == "ok"
        assert st.schema_version == SCHEMA_VERSION
        assert st._con().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rows_are_typed_and_frozen(tmp_path):
    with SessionStore(tmp_path / "s.db") as st:
        sid = st.create_session("P01", "m", meta={"hop": 1})
        st.add_segment(sid, "track A", 0.0)
        st.add_prediction(sid, _pred(1.0))
        st.add_quality(sid, 1.0, "eog", "flat", "std 0")
        st.update_meta(sid, window=10)
        rows = (st.session(sid), st.segments(sid)[0], st.predictions(sid)[0], st.quality(sid)[0])
    assert [type(r) for r in rows] == [SessionRow, SegmentRow, PredictionRow, QualityRow]
    session, segment, pred, _ = rows
    assert session.meta == {"hop": 1, "window": 10} and segment.end is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        pred.t = 2.0
    assert isinstance(pred.t, float) and isinstance(pred.modalities_used, tuple)


def test_to_dict_is_the_json_of_the_columns(tmp_path):
    """``to_dict`` keys are the table's columns (the dashboard's JSON); tuples become lists."""
    db = tmp_path / "s.db"
    with SessionStore(db) as st:
        sid = st.create_session("P01", "m")
        st.add_segment(sid, "track A", 0.0, 5.0)
        st.add_prediction(sid, _pred(1.0))
        st.add_quality(sid, 1.0, "eog", "flat")
        rows = {"sessions": st.session(sid), "segments": st.segments(sid)[0],
                "predictions": st.predictions(sid)[0], "quality": st.quality(sid)[0]}
    con = sqlite3.connect(db)
    for table, row in rows.items():
        columns = [c[1] for c in con.execute(f"PRAGMA table_info({table})")]
        extra = {"sessions": ["n_predictions", "stream_seconds"], "predictions": ["spread"]}.get(table, [])  # derived
        d = row.to_dict()
        assert list(d) == columns + extra
        assert json.loads(json.dumps(d)) == d  # plain JSON values only
    con.close()
    pred = rows["predictions"].to_dict()
    assert pred["modalities_used"] == ["eeg", "peripheral"] and pred["flags"] == ["eog:flat"]
    stored = _pred(1.0).to_dict()
    assert {k: pred[k] for k in stored} == stored  # what was stored is what the JSON says


def test_unknown_quadrant_is_a_corrupt_row(tmp_path):
    db = tmp_path / "s.db"
    with SessionStore(db) as st:
        sid = st.create_session("P01", "m")
        st.add_prediction(sid, _pred(1.0))
    con = sqlite3.connect(db)
    con.execute("UPDATE predictions SET quadrant = 'Q9'")
    con.commit()
    con.close()
    with SessionStore(db) as st, pytest.raises(DataError, match=r"predictions row 1: column quadrant holds 'Q9'"):
        st.predictions(sid)


def test_bad_input(tmp_path):
    with SessionStore(tmp_path / "s.db") as st:
        with pytest.raises(DataError):
            st.session(99)
        sid = st.create_session("P", "m")
        with pytest.raises(DataError):
            st.add_segment(sid, "x", 10.0, 5.0)
        with pytest.raises(DataError):
            st.add_segment(sid, "x", 1.0, source="web")
        with pytest.raises(DataError):
            st.create_session("  ", "m")
        with pytest.raises(DataError):
            st.add_segment(12345, "x", 0.0)


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError):
        SessionStore(bad)


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMAFFECT_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "sessions.db"


def test_migrate_v1_to_current(tmp_path):
    db = tmp_path / "old.db"
    con = sqlite3.connect(db, isolation_level=None)
    assert migrate(con, target=1) == 1
    con.execute("INSERT INTO sessions (participant, started_at, model) VALUES ('P', 1.0, 'm')")
    con.execute(
        "INSERT INTO predictions (session_id, t, valence, probabilities, confidence, modalities_used)"
        " VALUES (1, 10.0, 5.5, '{}', 0.5, '[\"eeg\"]')"
    )
    con.close()
    with SessionStore(db) as st:
        assert st.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        (p,) = st.predictions(1)
        assert p.valence == 5.5 and p.flags == () and p.created_at is None  # columns added by v2
        st.add_prediction(1, _pred(11.0))
        assert len(st.predictions(1)) == 2
        idx = {r[0] for r in st._con().execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "predictions_session_t" in idx


def test_newer_schema_refused(tmp_path):
    db = tmp_path / "new.db"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(DataError, match="newer"):
        SessionStore(db)


def test_writer_and_reader_threads(tmp_path):
    st = SessionStore(tmp_path / "s.db")
    sid = st.create_session("P", "m")
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader():
        try:
            for _ in range(50):
                seen.append(len(st.predictions(sid)))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=reader)
    th.start()
    for i in range(50):
        st.add_prediction(sid, _pred(float(i)))
    th.join()
    assert not errors
    assert seen == sorted(seen)  # a reader only ever sees more rows, never a torn state
    assert len(st.predictions(sid)) == 50
    st.close()


def test_sigkill_keeps_committed_predictions(tmp_path):
    """Each add_prediction is durable once it returns, even if the process is SIGKILLed."""
    db = tmp_path / "s.db"
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from symaffect.stream.store import SessionStore
        from symaffect.stream.prediction import Prediction
        st = SessionStore({str(db)!r})
        sid = st.create_session("P", "m")
        for i in range(20):
            st.add_prediction(sid, Prediction.from_probabilities(
                float(i), {{"valence": [1/9]*9}}, modalities_used=("eeg",), n_modalities=1))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == -9
    with SessionStore(db) as st:
        assert st.integrity_check() == "ok"
        (s,) = st.sessions()
        assert s.ended_at is None and s.n_predictions == 20


# --- schema v3: embeddings, ratings, calibrations ----------------------------------------


def _dump(db: Path, tables=("sessions", "segments", "predictions", "quality")) -> dict[str, list[tuple]]:
    """Every row of the v2 tables, v2 columns only, by id."""
    con = sqlite3.connect(db)
    out = {}
    for table in tables:
        cols = [c[1] for c in con.execute(f"PRAGMA table_info({table})")
                if c[1] not in ("model_label", "calibration_id")]
        out[table] = con.execute(f"SELECT {', '.join(map(repr, cols))} FROM {table} ORDER BY id").fetchall()
    con.close()
    return out


def test_a_v2_database_file_migrates_and_keeps_every_row(tmp_path):
    """The file the v2 store wrote opens, migrates to the current schema in place and keeps every row."""
    db = tmp_path / "sessions.db"
    shutil.copy(V2_DB, db)
    before = _dump(db)
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 2
    assert [len(v) for v in before.values()] == [2, 4, 42, 2]
    with SessionStore(db) as st:
        assert st.schema_version == SCHEMA_VERSION == 4
        preds = st.predictions(1)
        assert len(preds) == 30 and {(p.model_label, p.calibration_id) for p in preds} == {(None, None)}
        assert preds[5].flags == ("eog:flat",) and preds[0].latency_ms == 2.5
        assert [g.track for g in st.segments(2)] == ["Clair de lune", "Drumming"]
        assert len(st.embeddings(1)) == 0 and st.segment_ratings(1) == [] and st.calibrations("P-001") == []
        assert st.active_calibration(1) is None
        # the old rows take the new rows beside them
        st.rate_segment(1, 1, valence=7)
        st.add_prediction(2, _pred(40.0, embedding=np.ones(4, np.float32), label="base model"))
        assert st.predictions(2)[-1].model_label == "base model"
        assert st.integrity_check() == "ok"
    after = _dump(db)
    assert after["sessions"] == before["sessions"] and after["segments"] == before["segments"]
    assert after["quality"] == before["quality"]
    assert after["predictions"][:42] == before["predictions"] and len(after["predictions"]) == 43
    with SessionStore(db) as st:  # opening again migrates nothing and loses nothing
        assert st.schema_version == 4 and len(st.predictions(1)) == 30 and len(st.segment_ratings(1)) == 1
        assert st.vitals(1) == [] and st.strips(1) == []
        assert st.session(1).stream_seconds == max(p.t for p in st.predictions(1))


def test_migration_v2_to_v3_is_one_transaction(tmp_path):
    db = tmp_path / "old.db"
    con = sqlite3.connect(db, isolation_level=None)
    assert migrate(con, target=2) == 2
    con.execute("INSERT INTO sessions (participant, started_at, model) VALUES ('P', 1.0, 'm')")
    con.execute("CREATE TABLE calibrations (x)")  # a clash: the v3 migration must fail whole
    with pytest.raises(sqlite3.OperationalError):
        migrate(con)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    cols = [c[1] for c in con.execute("PRAGMA table_info(predictions)")]
    assert "model_label" not in cols  # rolled back: no half-migrated table
    assert con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
    con.close()


def test_embeddings_and_model_labels_round_trip(tmp_path):
    with SessionStore(tmp_path / "s.db") as st:
        sid = st.create_session("P01", "m")
        z = np.arange(16, dtype=np.float32).reshape(2, 8) / 7
        st.add_prediction(sid, _pred(2.0, embedding=z[1], label="calibrated (bias, K = 2)", cal=None))
        st.add_prediction(sid, _pred(1.0, embedding=z[0], label="base model"))
        st.add_prediction(sid, _pred(3.0))  # a model without an embedding
        emb = st.embeddings(sid)
        assert emb.t.tolist() == [1.0, 2.0] and np.array_equal(emb.z, z) and emb.z.dtype == np.float32
        assert [p.model_label for p in st.predictions(sid)] == ["base model", "calibrated (bias, K = 2)", None]
        assert st.latest_prediction(sid).t == 3.0
        # a bad embedding is refused and nothing of the hop is written
        with pytest.raises(DataError, match="embedding"):
            st.add_prediction(sid, _pred(4.0, embedding=np.array([1.0, np.nan], np.float32)))
        assert len(st.predictions(sid)) == 3 and len(st.embeddings(sid)) == 2


def test_a_corrupt_embedding_is_a_data_error_naming_the_row(tmp_path):
    db = tmp_path / "s.db"
    with SessionStore(db) as st:
        sid = st.create_session("P01", "m")
        st.add_prediction(sid, _pred(1.0, embedding=np.ones(8, np.float32)))
    con = sqlite3.connect(db)
    con.execute("UPDATE hop_embeddings SET z = x'0000'")
    con.commit()
    con.close()
    with SessionStore(db) as st, pytest.raises(DataError, match=r"hop_embeddings row 1: column z"):
        st.embeddings(sid)


def _rated_store(tmp_path) -> tuple[SessionStore, int, list[int]]:
    st = SessionStore(tmp_path / "s.db")
    sid = st.create_session("P-7", "m")
    segs = [st.add_segment(sid, "A", 0.0, 10.0), st.add_segment(sid, "B", 12.0, 20.0),
            st.add_segment(sid, "playing", 22.0)]
    return st, sid, segs


BAD_RATINGS = [
    ({"valence": 0}, "valence: must be from 1 to 9, got 0"),
    ({"arousal": 10}, "arousal: must be from 1 to 9, got 10"),
    ({"liking": 9.0001}, "liking: must be from 1 to 9, got 9.0001"),
    ({"valence": math.nan}, "valence: must be a number from 1 to 9, got nan"),
    ({"valence": math.inf}, "valence: must be a number from 1 to 9, got inf"),
    ({"valence": "5"}, "valence: must be a number from 1 to 9, got '5'"),
    ({"valence": True}, "valence: must be a number from 1 to 9, got 'True'"),
    ({"valence": [5]}, "valence: must be a number from 1 to 9, got '[5]'"),
    ({}, "ratings: give at least one of valence, arousal, liking (1-9)"),
    ({"valence": None, "liking": None}, "ratings: give at least one of valence, arousal, liking (1-9)"),
]


@pytest.mark.parametrize(("given", "message"), BAD_RATINGS)
def test_bad_ratings_are_one_line_and_lose_nothing(tmp_path, given, message):
    st, sid, segs = _rated_store(tmp_path)
    with st:
        first = st.rate_segment(sid, segs[0], valence=6, liking=4)
        with pytest.raises(DataError) as e:
            st.rate_segment(sid, segs[0], **given)
        assert str(e.value) == message and "\n" not in str(e.value)
        assert st.segment_ratings(sid) == [first]  # the stored rating is untouched
        assert st.segment_ratings(sid, history=True) == [first]


def test_ratings_of_unknown_or_playing_segments_are_refused(tmp_path):
    st, sid, segs = _rated_store(tmp_path)
    with st:
        other = st.create_session("P-8", "m")
        foreign = st.add_segment(other, "X", 0.0, 5.0)
        with pytest.raises(DataError, match="no segment with id 999"):
            st.rate_segment(sid, 999, valence=5)
        with pytest.raises(DataError, match=f"segment {foreign} is not in session {sid}"):
            st.rate_segment(sid, foreign, valence=5)
        with pytest.raises(DataError, match="no session with id 77"):
            st.rate_segment(77, segs[0], valence=5)
        with pytest.raises(DataError, match="still playing: rate it once it has ended"):
            st.rate_segment(sid, segs[2], valence=5)
        assert st.segment_ratings(sid) == [] and st.segment_ratings(other) == []
        st.end_session(sid)  # an open segment of an ended session ran to its end
        assert st.rate_segment(sid, segs[2], arousal=2).arousal == 2.0


def test_rerating_replaces_and_keeps_the_history(tmp_path):
    st, sid, segs = _rated_store(tmp_path)
    with st:
        a = st.rate_segment(sid, segs[1], valence=3, arousal=4, liking=5)
        b = st.rate_segment(sid, segs[0], liking=9)
        c = st.rate_segment(sid, segs[1], arousal=1)  # replaces the whole rating of B
        current = st.segment_ratings(sid)
        assert [type(r) for r in current] == [SegmentRatingRow, SegmentRatingRow]
        assert [(r.segment_id, r.given()) for r in current] == [(segs[0], {"liking": 9.0}), (segs[1], {"arousal": 1.0})]
        assert current == [b, c]
        history = st.segment_ratings(sid, history=True)
        assert len(history) == 3 and history[1].id == a.id and history[1].superseded_at is not None
        with pytest.raises(dataclasses.FrozenInstanceError):
            c.valence = 5.0
    con = sqlite3.connect(tmp_path / "s.db")  # the database refuses what the store refuses
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO segment_ratings (session_id, segment_id, valence, created_at) VALUES (1, 1, 0, 1)")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO segment_ratings (session_id, segment_id, created_at) VALUES (1, 1, 1)")
    con.close()


def test_calibrations_are_stored_under_the_pseudonym_and_activated(tmp_path):
    st, sid, _ = _rated_store(tmp_path)
    doc = {"method": "bias", "k": 2, "shift": [0.0, 1.0], "heads": {"valence": {"weight": [[1.0, 2.0]], "bias": [0.5]}},
           "listener": "P-7", "tracks": ["1", "2"]}
    with st:
        cid = st.add_calibration("P-7", doc, method="bias", k=2, label="calibrated (bias, K = 2)", session_id=sid,
                                 base_model="/runs/a/model.pt", base_digest="ab" * 32, activate=True)
        row = st.calibration(cid)
        assert isinstance(row, CalibrationRow) and row.calibration == doc and row.participant == "P-7"
        assert row.summary()["tracks"] == ["1", "2"] and "calibration" not in row.summary()
        act = st.active_calibration(sid)
        assert isinstance(act, ActivationRow) and (act.calibration_id, act.label) == (cid, "calibrated (bias, K = 2)")
        later = st.create_session("P-7", "m")  # the listener's next session
        assert st.active_calibration(later) is None and [c.id for c in st.calibrations("P-7")] == [cid]
        st.activate_calibration(later, cid)
        assert st.active_calibration(later).calibration_id == cid
        st.activate_calibration(later, None)
        assert st.active_calibration(later).label == "base model"
        stranger = st.create_session("P-8", "m")
        with pytest.raises(DataError, match="belongs to another listener"):
            st.activate_calibration(stranger, cid)
        with pytest.raises(DataError, match="no calibration with id 42"):
            st.activate_calibration(later, 42)
        assert st.active_calibration(stranger) is None
        assert st.has_participant("P-7") and not st.has_participant("nobody")
        assert st.participants() == ["P-7", "P-8"]
        assert list(row.to_dict()) == [c[1] for c in st._con().execute("PRAGMA table_info(calibrations)")]


def test_vitals_round_trip_and_latest_per_channel(tmp_path):
    with SessionStore(tmp_path / "s.db") as st:
        sid = st.create_session("P01", "m")
        st.add_vitals(sid, 10.0, [Vital("peripheral", "BVP", "heart_rate", 72.0, "bpm", "ok"),
                                  Vital("peripheral", "Resp", "breathing_rate", None, "breaths/min", "unknown",
                                         "too little signal")])
        st.add_vitals(sid, 15.0, [Vital("peripheral", "BVP", "heart_rate", 300.0, "bpm", "implausible",
                                         "not physiological"),
                                  Vital("peripheral", "GSR", "scr_rate", float("nan"), "SCR/min", "unknown")])
        rows = st.vitals(sid)
        assert [(r.t, r.channel, r.value, r.status) for r in rows] == [
            (10.0, "BVP", 72.0, "ok"), (10.0, "Resp", None, "unknown"),
            (15.0, "BVP", 300.0, "implausible"), (15.0, "GSR", None, "unknown")]  # NaN stored as NULL
        assert [r.t for r in st.vitals(sid, since_t=10.0)] == [15.0, 15.0]
        latest = {(r.channel, r.name): r.value for r in st.latest_vitals(sid)}
        assert latest == {("BVP", "heart_rate"): 300.0, ("GSR", "scr_rate"): None, ("Resp", "breathing_rate"): None}
        assert json.loads(json.dumps(rows[2].to_dict()))["detail"] == "not physiological"
        with pytest.raises(DataError, match="vital status"):
            st.add_vitals(sid, 20.0, [Vital("peripheral", "BVP", "heart_rate", 70.0, "bpm", "fine")])
        assert len(st.vitals(sid)) == 4


def test_strips_keep_the_latest_per_modality(tmp_path):
    with SessionStore(tmp_path / "s.db") as st:
        sid = st.create_session("P01", "m")
        a = np.arange(12, dtype=np.float32).reshape(2, 6)
        st.set_strips(sid, 10.0, [Strip("peripheral", ("GSR", "BVP"), 64.0, a),
                                  Strip("eog", ("hEOG",), 64.0, np.full((1, 6), np.nan, np.float32))])
        b = a + 100
        st.set_strips(sid, 11.0, [Strip("peripheral", ("GSR", "BVP"), 64.0, b)])
        rows = {r.modality: r for r in st.strips(sid)}
        assert set(rows) == {"eog", "peripheral"}
        assert rows["peripheral"].t == 11.0 and np.array_equal(rows["peripheral"].values, b)
        assert rows["eog"].to_dict()["values"] == [[None] * 6]
        assert rows["peripheral"].to_dict()["values"][1][:2] == [106.0, 107.0]
        with pytest.raises(DataError, match="strip"):
            st.set_strips(sid, 12.0, [Strip("eeg", ("Fz",), 64.0, np.zeros((2, 6), np.float32))])
    con = sqlite3.connect(tmp_path / "s.db")
    con.execute("UPDATE signal_strips SET data = x'00' WHERE modality = 'eog'")
    con.commit()
    con.close()
    with SessionStore(tmp_path / "s.db") as st, pytest.raises(DataError, match="signal_strips row .*data"):
        st.strips(1)


def test_stream_seconds_counts_stream_time_of_predictions_and_quality(tmp_path):
    with SessionStore(tmp_path / "s.db") as st:
        sid = st.create_session("P01", "m")
        assert st.session(sid).stream_seconds == 0.0
        st.add_prediction(sid, _pred(12.0))
        st.add_quality(sid, 13.0, "all", "no_prediction")  # a last hop without prediction counts
        assert st.session(sid).stream_seconds == 13.0
        assert st.sessions()[0].stream_seconds == 13.0


def test_a_batch_is_one_transaction(tmp_path):
    """Rows written in a batch appear together at its end, or not at all when it raises."""
    db = tmp_path / "s.db"
    with SessionStore(db) as st, SessionStore(db) as reader:
        sid = st.create_session("P01", "m")
        with st.batch():
            st.add_prediction(sid, _pred(10.0))
            st.add_quality(sid, 10.0, "eeg", "flat")
            with st.batch():  # nested: joins
                st.add_prediction(sid, _pred(11.0))
            assert reader.predictions(sid) == []  # another connection sees nothing yet
        assert len(reader.predictions(sid)) == 2 and len(reader.quality(sid)) == 1
        with pytest.raises(RuntimeError), st.batch():
            st.add_prediction(sid, _pred(12.0))
            raise RuntimeError("boom")
        assert [p.t for p in reader.predictions(sid)] == [10.0, 11.0]
        st.add_prediction(sid, _pred(13.0))  # after a failed batch, plain writes commit again
        assert len(reader.predictions(sid)) == 3
