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

from symaffect.stream.lsl import SPEED_KEY, replay, run_stream
from symaffect.stream.pipeline import Predictor, predict_recording
from symaffect.stream.recording import deap_recording
from symaffect.stream.session import MAX_TRACK_CHARS, parse_marker
from symaffect.stream.store import SessionStore

pytestmark = pytest.mark.slow


def _name() -> str:
    return f"symaffect-test-{uuid.uuid4().hex[:10]}"


def _stop_after(seconds: float) -> threading.Event:
    """A stop event set after ``seconds``: a session that never ends fails instead of hanging."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    return stop


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
                    publish=name + "-preds", resolve_timeout=20, stop=_stop_after(120))
    th.join(10)
    lt.join(10)
    with SessionStore(db) as store:
        live = store.predictions(st.session_id)
        assert [p.t for p in live] == [p.t for p in offline]  # same hops, by stream time
        for a, b in zip(live, offline):
            for task in ("valence", "arousal", "liking"):
                assert getattr(a, task) == pytest.approx(b.expected[task], abs=1e-3)  # float32 transport
        (seg,) = store.segments(st.session_id)
        assert (seg.track, seg.start, seg.end, seg.source) == ("song A", 1.0, 6.0, "lsl")
        s = store.session(st.session_id)
        assert s.ended_at is not None and s.participant == "P01"
        assert all(p.latency_ms is not None and p.latency_ms >= 0 for p in live)
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
    assert any(r.modality == "stream" and r.flag == "gap" for r in q)
    assert any(r.flag == "gap" for r in q if r.modality != "stream")  # windows across the gap
    gap_t = min(r.t for r in q if r.flag == "gap")
    assert any(p.t < gap_t for p in preds) and any(p.t > gap_t + 2 for p in preds)


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
                    n = sum(x.n_predictions for x in s.sessions())
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
        ts = [p.t for p in s.predictions(sess.id)]
    assert sess.ended_at is None  # killed: never ended
    assert ts == [2.0 + k for k in range(len(ts))]  # every hop, in order, none missing
    assert len(logged) <= len(ts) <= len(logged) + 1  # at most the hop in flight is lost


def test_many_chunks_per_poll_keep_their_timestamps(run_dir, tmp_path, signals):
    # 40 s at 1000x arrive at once: the streamer pulls several chunks per poll; each must
    # keep its own timestamps (mne-lsl reuses its pull buffers), so no false `dropped`
    rec = deap_recording(signals(40))
    pr = Predictor(run_dir)
    name = _name()
    th = _player(rec, name, speed=1000)
    st = run_stream(pr, source=name, db=tmp_path / "s.db", stop_at_eof=True, handle_signals=False,
                    publish=None, resolve_timeout=20, stop=_stop_after(120))
    th.join(10)
    with SessionStore(tmp_path / "s.db") as store:
        assert store.quality(st.session_id) == []
        assert [p.t for p in store.predictions(st.session_id)] == [p.t for p in predict_recording(pr, rec)]
        assert store.session(st.session_id).meta["replay_speed"] == 1000


def test_accelerated_loss_is_flagged_and_filled_at_stream_rate(run_dir, tmp_path, signals):
    from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

    rec = deap_recording(signals(9))
    speed, lost = 8.0, np.arange(400, 424)  # 24 samples never sent
    name = _name()
    info = StreamInfo(name, "EXG", 40, 128.0, "float32", uuid.uuid4().hex)
    info.set_channel_names(list(rec.ch_names))
    info.desc.append_child_value(SPEED_KEY, repr(speed))
    stop = threading.Event()

    def play():
        outlet = StreamOutlet(info, chunk_size=8)
        if not outlet.wait_for_consumers(20):
            return
        time.sleep(1.0)
        keep = np.setdiff1d(np.arange(rec.data.shape[1]), lost)
        x = rec.data.astype(np.float32).T
        t0 = local_clock()
        for a in range(0, keep.size, 8):
            i = keep[a:a + 8]
            outlet.push_chunk(np.ascontiguousarray(x[i]), timestamp=t0 + (i + 1) / (128 * speed))
            time.sleep(8 / (128 * speed))
        stop.wait(20)

    th = threading.Thread(target=play, daemon=True)
    th.start()
    timer = threading.Timer(40, stop.set)
    timer.start()
    try:
        st = run_stream(run_dir, source=name, db=tmp_path / "s.db", max_seconds=9.0, handle_signals=False,
                        publish=None, resolve_timeout=20, stop=stop)
    finally:
        timer.cancel()
        stop.set()
        th.join(10)
    assert st.stream_seconds == pytest.approx(9.0)  # 24 lost, 24 filled: stream time is the recording's
    assert st.samples == rec.data.shape[1] - lost.size
    with SessionStore(tmp_path / "s.db") as store:
        q = store.quality(st.session_id)
        preds = [p.t for p in store.predictions(st.session_id)]
    dropped = sorted({r.t for r in q if r.flag == "dropped"})
    assert dropped == [4.0, 5.0]  # the windows (2 s) that hold samples 400-423 (t 3.1-3.3 s)
    assert preds == [2.0, 3.0, 6.0, 7.0, 8.0, 9.0]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"event": "start", "track": "Clair de lune", "t": 12.5}', ("start", "Clair de lune", 12.5, None)),
        ('{"event": "end", "track": "Clair de lune"}', ("end", "Clair de lune", 3.0, None)),
        ('{"event": "eof", "n_samples": 1280}', ("eof", "", 0.0, 1280)),
        ("Just a title", ("start", "Just a title", 3.0, None)),
        ('[1, 2]', ("start", "[1, 2]", 3.0, None)),
        ('{"event": "start", "track": "a\\u001b[31mred\\n", "t": 1}', ("start", "a[31mred", 1.0, None)),
        ('{"event": "start", "track": "x", "t": "soon"}', None),
        ('{"event": "start", "track": "x", "t": -1}', None),
        ('{"event": "start", "track": "x", "t": 1e999}', None),
        ('{"event": "start", "track": {"a": 1}}', None),
        ('{"event": "eof", "n_samples": "many"}', None),
        ('{"event": "eof", "n_samples": -5}', None),
        ('{"event": "explode"}', None),
        (None, None),
    ],
)
def test_network_markers_are_checked(payload, expected):
    """Markers come from the network: a malformed one is ignored, never a crash of the session."""
    assert parse_marker(payload, 3.0) == expected


def test_long_track_names_are_cut():
    assert len(parse_marker("x" * 10_000, 0.0)[1]) == MAX_TRACK_CHARS


QUIET_SCRIPT = """
import logging, sys, threading
import numpy as np
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from symaffect.stream.lsl import replay, run_stream
from symaffect.stream.recording import deap_recording
run, db, name = sys.argv[1:4]
rng = np.random.default_rng(0)
rec = deap_recording(rng.standard_normal((40, 128 * 4)) * 10)
# 1) a replay that ends normally while the session keeps listening
stop = threading.Event()
th = threading.Thread(target=replay, args=(rec,), kwargs=dict(name=name, speed=4, linger=0.5), daemon=True)
th.start()
threading.Timer(12, stop.set).start()
run_stream(run, source=name, db=db, handle_signals=False, publish=None, stop=stop, resolve_timeout=20)
# 2) a replay cut off halfway (no end marker): a real outage
stop2, cut = threading.Event(), threading.Event()
th = threading.Thread(target=replay, args=(rec,), kwargs=dict(name=name + "b", speed=1, stop=cut, linger=0),
                      daemon=True)
th.start()
threading.Timer(4.5, cut.set).start()
threading.Timer(12, stop2.set).start()
run_stream(run, source=name + "b", db=db, handle_signals=False, publish=None, stop=stop2, resolve_timeout=20)
print("done")
"""


def test_liblsl_messages_stay_quiet_and_an_outage_is_told_once(run_dir, tmp_path):
    """The normal end of a replay prints nothing alarming (liblsl's "ERR| Stream
    transmission broke off" is kept out); a real outage is one plain sentence."""
    env = {k: v for k, v in os.environ.items() if k not in ("LSLAPICFG", "SYMAFFECT_LIBLSL_LOG")}
    db = tmp_path / "s.db"
    out = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, str(run_dir), str(db), _name()],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done" in out.stdout
    assert "ERR" not in out.stderr and "broke off" not in out.stderr, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    stopped = [ln for ln in lines if "stopped at" in ln]
    assert len(stopped) == 1 and stopped[0].startswith("WARNING The signal stream ") and \
        "reconnecting as soon as it is back" in stopped[0], lines
    assert all(ln.startswith("WARNING") for ln in lines), lines  # nothing else printed
    with SessionStore(db) as store:
        first, second = store.sessions()[::-1]
        flags1 = [(q.modality, q.flag) for q in store.quality(first.id)]
        flags2 = [(q.modality, q.flag) for q in store.quality(second.id)]
    assert ("stream", "ended") in flags1 and ("stream", "gap") not in flags1  # a normal end
    assert flags2.count(("stream", "gap")) == 1  # the outage, once
