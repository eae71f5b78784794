"""The dashboard's live JSON (issue 13): the report's counts, the session's modalities,
stream-time durations, vital signs and raw-signal strips, over the API and the event
stream (FastAPI TestClient over a real SQLite store, no browser)."""

from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from symaffect.serve.app import (
    FLAG_WORDS,
    MAX_STRIP_POINTS,
    create_app,
    dashboard_spec,
    strip_json,
)
from symaffect.serve.report import load_report_data, session_counts
from symaffect.serve.report.data import LOW_CONFIDENCE
from symaffect.stream.store import SessionStore

from .session_data import make_prediction, peripheral_strip, peripheral_vitals

BASE = "http://127.0.0.1:8765"


def _events(text: str) -> list[tuple[str, object]]:
    return [(k, json.loads(d)) for k, d in re.findall(r"event: (\w+)\n(?:id: [^\n]*\n)?data: ([^\n]*)\n\n", text)]


@pytest.fixture
def replay(tmp_path):
    """A 2x replay: 60 hops, peripheral dropped at 10-14 s, one hop without estimate (20 s),
    low confidence at 30-34 s, a track from 15 s, vitals and a strip."""
    path = tmp_path / "sessions.db"
    with SessionStore(path) as s:
        sid = s.create_session("P-011", "dtfe-multitask", meta={"hop": 1.0, "absent_modalities": ["eog"]})
        s.add_segment(sid, "Track A", 15.0, 50.0, source="lsl")
        for i in range(60):
            t = float(i)
            if i == 20:
                s.add_quality(sid, t, "all", "no_prediction", "eeg flat; peripheral flat")
                continue
            if 10 <= i < 15:
                s.add_quality(sid, t, "peripheral", "flat", "GSR flat")
                pred = make_prediction(t, 6, 6, 6, used=("eeg",), flags=("peripheral:flat",), width=0.5)
            else:
                pred = make_prediction(t, 6, 6, 6, used=("eeg", "peripheral"), width=1.5 if 30 <= i < 35 else 0.5)
            s.add_prediction(sid, pred)
        s.add_vitals(sid, 58.0, peripheral_vitals(72.0))
        s.set_strips(sid, 58.0, [peripheral_strip()])
        s.end_session(sid)
    return path, sid


@pytest.fixture
def client(replay):
    with TestClient(create_app(replay[0], poll_s=0.05), base_url=BASE) as c:
        yield c


def test_session_detail_carries_the_reports_counts(client, replay):
    path, sid = replay
    out = client.get(f"/api/sessions/{sid}").json()
    expected = json.loads(json.dumps(session_counts(load_report_data(path, sid))))
    assert out["summary"] == expected
    summary = out["summary"]
    assert summary["n_predictions"] == 59 and summary["n_no_prediction"] == 1
    assert summary["stream_seconds"] == 59.0
    assert summary["dropped"] == {"eeg": 0, "peripheral": 5}
    # the broad hops, and the dropped ones (one of three modalities: confidence times 1/3)
    assert summary["low_confidence"] == 10 and summary["low_confidence_threshold"] == LOW_CONFIDENCE
    assert summary["baseline"] == {"start": 0.0, "end": 15.0, "rule": "before the first music segment"}
    assert summary["summary"] and all(isinstance(x, str) for x in summary["summary"])
    # the modalities a prediction should use: seen ones, minus those not in the recording
    assert out["session_modalities"] == {"modalities": ["eeg", "peripheral"], "source": "seen", "absent": ["eog"]}
    assert out["session"]["stream_seconds"] == 59.0


def test_session_detail_carries_vitals_and_strips(client, replay):
    _, sid = replay
    out = client.get(f"/api/sessions/{sid}").json()
    vitals = {v["name"]: v for v in out["vitals"]}
    assert set(vitals) == {"heart_rate", "breathing_rate", "ppg_quality"}
    assert vitals["heart_rate"]["value"] == 72.0 and vitals["heart_rate"]["unit"] == "bpm"
    assert vitals["breathing_rate"]["status"] == "implausible" and "belt loose?" in vitals["breathing_rate"]["detail"]
    (strip,) = out["strips"]
    assert strip["modality"] == "peripheral" and strip["channels"] == ["Plethysmograph", "Respiration belt", "GSR"]
    # 640 samples at 128 Hz fit: sent as they are, the missing ones as null
    assert strip["sfreq"] == 128.0 and strip["t"] == 58.0 and len(strip["values"][0]) == 640
    assert strip["values"][0][10:14] == [None] * 4 and strip["values"][0][14] is not None


def test_long_strips_are_decimated_for_the_page(tmp_path):
    with SessionStore(tmp_path / "s.db") as s:
        sid = s.create_session("P", "m")
        s.set_strips(sid, 30.0, [peripheral_strip(seconds=10.0)])  # 1280 samples
        (row,) = s.strips(sid)
    out = strip_json(row)
    assert MAX_STRIP_POINTS == 640
    assert len(out["values"][0]) == 640 and out["sfreq"] == 64.0
    # every second sample from the first; the last kept is one sample before the end
    np.testing.assert_allclose(out["values"][1][:3], row.values[1, [0, 2, 4]], rtol=1e-3)
    assert out["t"] == pytest.approx(30.0 - 1 / 128)


def test_sessions_table_and_list_show_stream_time(client, replay):
    _, sid = replay
    (ses,) = client.get("/api/sessions").json()
    assert ses["stream_seconds"] == 59.0 and ses["n_predictions"] == 59
    page = client.get("/").text
    row = re.search(rf'<tr data-session="{sid}"[^>]*>(.*?)</tr>', page, re.S).group(1)
    assert '<td class="duration">59 s</td>' in row  # stream time, not the instant wall clock
    assert '<td class="count">59</td>' in row
    assert re.search(r'<td class="wall">\d+ s</td>', row)


def test_page_gets_the_threshold_and_words_from_the_server(client):
    spec = dashboard_spec()
    assert spec["low_confidence"] == LOW_CONFIDENCE and spec["history_s"] == 30.0
    assert spec["flag_words"]["flat"] == "flat signal (sensor off?)" == FLAG_WORDS["flat"]
    assert spec["stream_flag_words"]["stall"] == "the signal stream stopped"
    page = client.get("/sessions/1").text
    assert f'<b id="low-confidence">{LOW_CONFIDENCE}</b>' in page
    assert "from 0 (no better than a uniform guess" in page  # the report's CONFIDENCE_EXPLAINED
    # the script holds no threshold of its own
    js = client.get("/static/dashboard.js").text
    assert "LOW = AFFECT.low_confidence" in js and "confidence < LOW" in js
    assert not re.search(r"confidence\s*<\s*\d", js)
    # still nothing inline, nothing from elsewhere
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r'(?:src|href)="https?://', page)
    assert "script-src 'self'" in client.get("/").headers["content-security-policy"]


def test_stream_sends_session_summary_vitals_and_strips(client, replay):
    path, sid = replay
    r = client.get(f"/api/sessions/{sid}/stream", params={"max_s": 0.3})
    events = _events(r.text)
    kinds = [k for k, _ in events]
    for kind in ("predictions", "session", "summary", "vitals", "strips", "quality", "ended"):
        assert kinds.count(kind) == 1, (kind, kinds)
    data = dict(events)
    assert data["session"]["n_predictions"] == 59 and data["session"]["stream_seconds"] == 59.0
    assert data["summary"] == client.get(f"/api/sessions/{sid}").json()["summary"]
    assert [v["name"] for v in data["vitals"]] == ["heart_rate", "ppg_quality", "breathing_rate"]
    assert [x["modality"] for x in data["strips"]] == ["peripheral"]
    assert {q["flag"] for q in data["quality"]} == {"flat", "no_prediction"}


def test_stream_follows_new_rows_and_limits_the_summary(tmp_path):
    path = tmp_path / "sessions.db"
    with SessionStore(path) as s:
        sid = s.create_session("P-011", "dtfe-multitask", meta={"hop": 1.0})
        for i in range(5):
            s.add_prediction(sid, make_prediction(float(i), 6, 6, 6, width=0.5))
    app = create_app(path, poll_s=0.05)
    with TestClient(app, base_url=BASE) as c:
        def writer():
            time.sleep(0.3)
            with SessionStore(path) as s:
                s.add_prediction(sid, make_prediction(5.0, 6, 6, 6, width=0.5))
                s.add_vitals(sid, 5.0, peripheral_vitals(90.0))
                s.set_strips(sid, 5.0, [peripheral_strip(flat_gsr=True)])

        w = threading.Thread(target=writer)
        w.start()
        r = c.get(f"/api/sessions/{sid}/stream", params={"max_s": 1.0})
        w.join()
    events = _events(r.text)
    sessions = [d for k, d in events if k == "session"]
    assert [x["n_predictions"] for x in sessions] == [5, 6]
    assert [x["stream_seconds"] for x in sessions] == [4.0, 5.0]
    # the summary is computed at most every 2 s: only the first one within this second
    summaries = [d for k, d in events if k == "summary"]
    assert [x["n_predictions"] for x in summaries] == [5]
    vitals = [d for k, d in events if k == "vitals"]
    assert len(vitals) == 1 and {v["value"] for v in vitals[0] if v["name"] == "heart_rate"} == {90.0}
    strips = [d for k, d in events if k == "strips"]
    assert len(strips) == 1 and len(set(strips[0][0]["values"][2])) == 1  # the flat GSR
