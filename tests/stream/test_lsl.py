"""Real LSL streams on loopback (mne-lsl's bundled liblsl): replay -> stream -> store."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

from symaffect.stream.lsl import replay, run_stream
from symaffect.stream.predictor import Predictor, predict_recording
from symaffect.stream.recording import deap_recording
from symaffect.stream.store import SessionStore

pytestmark = pytest.mark.slow


def _name() -> str:
    return f"symaffect-test-{uuid.uuid4().hex[:10]}"


def _player(rec, name, **kw) -> threading.Thread:
    th = threading.Thread(target=replay, args=(rec,), kwargs={"name": name, **kw}, daemon=True)
    th.start()
    return th


def test_stream_equals_offline(run_dir, tmp_path, signals):
    rec = deap_recording(signals(9))
    rec.markers.append(("song A", 1.0, 6.0))
    pr = Predictor(run_dir)
    offline = predict_recording(pr, rec)
    name = _name()
    received: list = []

    def listen():
        from mne_lsl.lsl import StreamInlet, resolve_streams

        infos = resolve_streams(timeout=20, name=name + "-preds")
        if not infos:
            return
        inlet = StreamInlet(infos[0])
        inlet.open_stream(timeout=5)
        t_end = time.monotonic() + 30
        while time.monotonic() < t_end and len(received) < 3:
            data, _ = inlet.pull_chunk(timeout=0.2)
            received.extend(np.asarray(data).tolist())

    lt = threading.Thread(target=listen, daemon=True)
    lt.start()
    th = _player(rec, name, speed=8)
    db = tmp_path / "s.db"
    st = run_stream(pr, source=name, db=db, participant="P01", stop_at_eof=True, handle_signals=False,
                    publish=name + "-preds", resolve_timeout=20)
    th.join(10)
    lt.join(10)
    with SessionStore(db) as store:
        live = store.predictions(st.session_id)
        assert [p["t"] for p in live] == [p.t for p in offline]  # same hops, by stream time
        for a, b in zip(live, offline):
            for task in ("valence", "arousal", "liking"):
                assert a[task] == pytest.approx(b.expected[task], abs=1e-3)  # float32 transport
        (seg,) = store.segments(st.session_id)
        assert (seg["track"], seg["start"], seg["end"], seg["source"]) == ("song A", 1.0, 6.0, "lsl")
        s = store.session(st.session_id)
        assert s["ended_at"] is not None and s["participant"] == "P01"
        assert all(p["latency_ms"] is not None and p["latency_ms"] >= 0 for p in live)
    assert received and len(received[0]) == 7  # predictions published on LSL


def test_reconnect_after_outage(run_dir, tmp_path, signals):
    x = signals(10)
    first = deap_recording(x[:, : 5 * 128])
    name = _name()
    stop = threading.Event()
    result: dict = {}

    def streamer():
        result["stats"] = run_stream(run_dir, source=name, db=tmp_path / "s.db", stop_at_eof=True,
                                     handle_signals=False, publish=None, gap_timeout=1.0,
                                     resolve_timeout=20, stop=stop)

    th = threading.Thread(target=streamer, daemon=True)
    th.start()
    p1 = _player(first, name, speed=4, markers=[], send_eof=False, linger=0.0)
    p1.join(30)
    time.sleep(2.5)  # outlet gone for longer than gap_timeout
    second = dataclasses.replace(deap_recording(x), markers=[])
    p2 = _player(second, name, speed=4, start_at=5.0, wait_for_consumer=30)
    p2.join(30)
    th.join(30)
    stop.set()
    th.join(10)
    assert "stats" in result, "the streamer did not finish"
    st = result["stats"]
    assert st.reconnects >= 1
    with SessionStore(tmp_path / "s.db") as store:
        q = store.quality(st.session_id)
        preds = store.predictions(st.session_id)
    assert any(r["modality"] == "stream" and r["flag"] == "gap" for r in q)
    assert any(r["flag"] == "gap" for r in q if r["modality"] != "stream")  # windows across the gap
    gap_t = min(r["t"] for r in q if r["flag"] == "gap")
    assert any(p["t"] < gap_t for p in preds) and any(p["t"] > gap_t + 2 for p in preds)


def test_sigkill_loses_at_most_last_hop(run_dir, tmp_path, signals):
    rec = deap_recording(signals(40))
    name = _name()
    db = tmp_path / "s.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "symaffect.cli", "stream", "--source", name, "--run", str(run_dir),
         "--db", str(db), "--publish", "", "-v"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True,
    )
    stop = threading.Event()
    th = _player(rec, name, speed=4, stop=stop, wait_for_consumer=30)
    try:
        deadline = time.monotonic() + 60
        n = 0
        while time.monotonic() < deadline and n < 6:
            time.sleep(0.3)
            if db.exists():
                with SessionStore(db) as s:
                    n = sum(x["n_predictions"] for x in s.sessions())
        assert n >= 6, "streamer produced no predictions"
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=20)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        th.join(10)
    assert proc.returncode == -signal.SIGKILL
    logged = [float(line.split("t=")[1].split()[0]) for line in err.splitlines() if "stored hop" in line]
    with SessionStore(db) as s:
        assert s.integrity_check() == "ok"
        (sess,) = s.sessions()
        ts = [p["t"] for p in s.predictions(sess["id"])]
    assert sess["ended_at"] is None  # killed: never ended
    assert ts == [2.0 + k for k in range(len(ts))]  # every hop, in order, none missing
    assert len(logged) <= len(ts) <= len(logged) + 1  # at most the hop in flight is lost
