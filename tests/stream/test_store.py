"""SessionStore: round trips, typed rows, migrations, concurrency, crash safety."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from symaffect.errors import DataError
from symaffect.stream.prediction import Prediction, expected_rating
from symaffect.stream.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    PredictionRow,
    QualityRow,
    SegmentRow,
    SessionRow,
    SessionStore,
    default_db_path,
    migrate,
)


def _pred(t: float, peak: int = 6) -> Prediction:
    p = [0.02] * 9
    p[peak] = 1.0 - 0.02 * 8
    return Prediction.from_probabilities(
        t, {"valence": p, "arousal": p[::-1], "liking": p},
        modalities_used=("eeg", "peripheral"), n_modalities=3, flags=["eog:flat"], latency_ms=3.5,
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
        extra = ["n_predictions"] if table == "sessions" else []
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
