"""The therapist's session of issue 13, end to end over a real LSL stream.

A 189-s recording with three marked tracks, a flat GSR at 100-115 s and a NaN EEG
channel at 160-165 s is replayed over LSL, monitored by ``run_stream`` into a real
store, and read back as the report reads it: the drops are where the signal was bad
and nowhere else, the flat GSR is called flat (not clipping), and the report's summary
names what its own counts say.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from symaffect.serve.report import load_report_data, session_counts
from symaffect.stream.lsl import replay, run_stream
from symaffect.stream.pipeline import Predictor
from symaffect.stream.recording import deap_recording
from symaffect.stream.store import SessionStore

pytestmark = pytest.mark.slow

FLAT_GSR = (100.0, 115.0)
NAN_EEG = (160.0, 165.0)


def _overlaps(t: float, window: float, span: tuple[float, float]) -> bool:
    """Whether the window ending at ``t`` holds samples of ``span``."""
    return t - window < span[1] and t > span[0]


def test_a_replayed_session_says_what_its_signals_did(run_dir, tmp_path, signals):
    x = signals(189.0, seed=3)
    gsr, fz = 36, 18  # DEAP rows of GSR and Fz
    x[gsr, int(FLAT_GSR[0] * 128):int(FLAT_GSR[1] * 128)] = x[gsr, int(FLAT_GSR[0] * 128)]
    x[fz, int(NAN_EEG[0] * 128):int(NAN_EEG[1] * 128)] = np.nan
    rec = deap_recording(x)
    rec.markers.extend([("Clair de lune", 20.0, 70.0), ("Drumming", 80.0, 130.0), ("Lullaby", 140.0, 185.0)])
    name = f"symaffect-therapist-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    timer = threading.Timer(150, stop.set)
    timer.daemon = True
    timer.start()
    player = threading.Thread(target=replay, args=(rec,), kwargs={"name": name, "speed": 16}, daemon=True)
    player.start()
    db = tmp_path / "sessions.db"
    pr = Predictor(run_dir)
    st = run_stream(pr, source=name, db=db, participant="P-07", stop_at_eof=True, handle_signals=False,
                    publish=None, resolve_timeout=20, stop=stop)
    timer.cancel()
    player.join(10)
    assert not stop.is_set(), "the session did not reach the replay's end"
    win = pr.window_seconds
    with SessionStore(db) as store:
        preds = store.predictions(st.session_id)
        quality = store.quality(st.session_id)
        session = store.session(st.session_id)
        vitals = store.vitals(st.session_id)
        segments = store.segments(st.session_id)
    assert [s.track for s in segments] == ["Clair de lune", "Drumming", "Lullaby"]
    assert session.stream_seconds == pytest.approx(189.0)  # stream time, whatever the replay speed
    # peripheral is dropped exactly where a window holds a constant second of GSR; EEG where it holds a NaN
    for p in preds:
        flat_run = (min(p.t, FLAT_GSR[1]) - max(p.t - win, FLAT_GSR[0])) >= 1.0
        assert ("peripheral" in p.modalities_used) == (not flat_run), p.t
        assert ("eeg" in p.modalities_used) == (not _overlaps(p.t, win, NAN_EEG)), p.t
    periph = {q.flag for q in quality if q.modality == "peripheral"}
    assert periph == {"flat"}  # a flat GSR is flat, never "clipping"
    assert all("GSR (constant for" in q.detail for q in quality if q.modality == "peripheral")
    assert {q.flag for q in quality if q.modality == "eeg"} == {"nan"}
    assert all("Fz" in q.detail for q in quality if q.modality == "eeg")
    # the vital signs were computed along the way
    assert {v.name for v in vitals} >= {"heart_rate", "breathing_rate", "scr_rate"}
    # the report says what its counts say
    data = load_report_data(db, st.session_id)
    counts = session_counts(data)
    n = len(preds)
    n_periph = sum("peripheral" not in p.modalities_used for p in preds)
    n_eeg = sum("eeg" not in p.modalities_used for p in preds)
    assert counts["n_predictions"] == n and counts["dropped"] == {"eeg": n_eeg, "eog": 0, "peripheral": n_periph}
    assert counts["stream_seconds"] == pytest.approx(189.0)
    text = " ".join(data.summary)
    assert "good throughout" not in text
    assert f"EEG was left out of {round(100 * n_eeg / n)} %" in text
    assert f"peripheral of {round(100 * n_periph / n)} %" in text
    assert "3 min 09 s" in text
