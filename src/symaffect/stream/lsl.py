"""Lab Streaming Layer: replay a recording as a stream, and monitor a live stream.

``replay`` pushes a :class:`Recording` through an LSL outlet (mne-lsl's bundled liblsl),
optionally faster than real time, plus a marker stream ``<name>-markers`` carrying music
segments as JSON strings ``{"event": "start"|"end"|"eof", "track": ..., "t": stream_s}``.

``run_stream`` pulls a stream with :class:`mne_lsl.lsl.StreamInlet` from its main loop
(every sample once, in order, with its timestamp; the ring buffer is our own
:class:`~symaffect.stream.preprocess.WindowBuffer`, sized to the window). A first version
used :class:`mne_lsl.stream.StreamLSL` with a callback; its background acquisition thread
was starved on a loaded 2-core machine (chunks arriving seconds late, false outages), so
the pull moved into the main loop. It pushes the samples through the
same :class:`~symaffect.stream.pipeline.SessionPipeline` as offline ``predict``, stores
every hop in the :class:`~symaffect.stream.store.SessionStore` and publishes it on an LSL
outlet ``symaffect-predictions``.

Timing: hops fall every ``hop`` of *stream time*, counted in samples (never the wall
clock), so an accelerated replay gives exactly the hops of an offline run. Timestamps
are used for two things only: gaps (a jump of more than 2.5 sample periods between
consecutive samples is filled with held samples flagged ``dropped``; longer than
``gap_timeout`` seconds, ``gap``), and latency (LSL clock at commit minus the timestamp
of the window's last sample). An accelerated ``replay`` announces its speed in the stream
description (``desc/replay_speed``): the streamer then expects timestamps ``1 / (sfreq *
speed)`` apart, so a sample lost in transport is still flagged and the fill has as many
samples as were lost (stream time stays that of the recording).

Buffers: liblsl sizes outlet and inlet queues in *nominal* seconds; at ``speed`` they
would hold ``speed`` times fewer real seconds, so both ends scale them by the speed
(:data:`BUFFER_SECONDS` of wall time at any speed): a consumer that falls behind on a
loaded machine catches up instead of losing samples.

Outages: when no sample arrives for ``gap_timeout`` seconds of wall time the streamer
flags a ``stream:stall`` once and keeps its inlet (closing it would lose the samples
still on their way). When the outlet is gone (liblsl reports the inlet lost) it flags a
``stream:gap`` and reconnects (backoff 0.5 s doubling to 5 s) until the stream is back or
it is stopped. Either way the missing span (from the timestamps, at most
``max_fill_seconds``) is filled and flagged, so no window mixes data across the gap.
SIGINT / SIGTERM end the session cleanly.
"""

from __future__ import annotations

import collections
import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symaffect.errors import DataError
from symaffect.spec import QUADRANT_CODES, SFREQ
from symaffect.stream.channel_map import ChannelMap, load_channel_map
from symaffect.stream.pipeline import HopResult, Predictor, SessionPipeline
from symaffect.stream.recording import Recording
from symaffect.stream.store import SessionStore

log = logging.getLogger(__name__)

BUFFER_SECONDS = 360
"""Wall seconds of samples that the replay outlet and the streamer's inlet queue hold."""

SPEED_KEY = "replay_speed"
"""Child of the stream description where :func:`replay` announces its speed."""

PREDICTION_CHANNELS = ("valence", "arousal", "liking", "confidence", "quadrant", "n_modalities", "stream_t")
"""Channels of the ``symaffect-predictions`` outlet (quadrant 1-4 for Q1..Q4, 5 Neutral, 0 = none; NaN ratings
when a hop has no prediction)."""


POLL_STEP_S = 0.002
"""Sleep between non-blocking pulls while no sample is ready (s)."""


def marker_name(name: str) -> str:
    """Name of the marker stream that goes with data stream ``name``."""
    return f"{name}-markers"


def read_markers_csv(path: str | Path) -> list[tuple[str, float, float | None]]:
    """Music segments from a CSV with header ``track,start,end`` (seconds; end may be empty).

    Raises
    ------
    DataError
        Naming the file (and line): missing, not UTF-8 text, not CSV, no ``track`` /
        ``start`` column, an empty track, a start or end that is not a finite number
        >= 0, or an end before its start.
    """
    import csv
    import io
    import math

    from symaffect.stream.recording import read_text

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "markers file not found")
    out = []
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        if not reader.fieldnames or not {"track", "start"} <= {h.strip() for h in reader.fieldnames if h}:
            raise DataError(path, "markers CSV needs a header with track,start[,end]")
        for row in reader:
            i = reader.line_num
            row = {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}
            try:
                start = float(row.get("start", ""))
                end = float(row["end"]) if row.get("end") else None
            except ValueError:
                raise DataError(path, f"line {i}: start/end must be numbers") from None
            if not math.isfinite(start) or start < 0 or (end is not None and not math.isfinite(end)):
                raise DataError(path, f"line {i}: start/end must be finite seconds >= 0")
            if end is not None and end < start:
                raise DataError(path, f"line {i}: end {end:g} s is before start {start:g} s")
            if not row.get("track"):
                raise DataError(path, f"line {i}: empty track name")
            out.append((row["track"], start, end))
    except csv.Error as e:
        raise DataError(path, f"line {reader.line_num}: not a readable CSV row ({e})") from None
    return out


MAX_TRACK_CHARS = 200
"""Longest track name kept from a marker (the API's limit)."""


def parse_marker(payload: object, default_t: float) -> tuple[str, str, float, int | None] | None:
    """Check one marker received over the network: ``(event, track, t, n_samples)`` or None.

    A marker is JSON ``{"event": "start" | "end" | "eof", "track": str, "t": seconds,
    "n_samples": int}`` (``t`` defaults to ``default_t``), or plain text, taken as the
    start of a track of that name. None for anything else: a non-object, an unknown event,
    a time that is not a finite number >= 0, a sample count that is not a positive int.
    Track names lose control characters and are cut to :data:`MAX_TRACK_CHARS`.
    """
    import math

    if not isinstance(payload, str):
        return None
    try:
        m = json.loads(payload)
    except (ValueError, RecursionError):
        m = {"event": "start", "track": payload}
    if not isinstance(m, dict):
        m = {"event": "start", "track": payload}
    ev = m.get("event")
    if ev == "eof":
        n = m.get("n_samples", 0)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**53:
            return None
        return "eof", "", 0.0, n or None
    if ev not in ("start", "end"):
        return None
    t = m.get("t", default_t)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        return None
    track = m.get("track", "?")
    if not isinstance(track, (str, int, float)):
        return None
    track = "".join(c for c in str(track) if c.isprintable()).strip()[:MAX_TRACK_CHARS] or "?"
    return ev, track, float(t), None


# --- replay --------------------------------------------------------------------------


def replay(
    recording: Recording,
    *,
    name: str = "symaffect-replay",
    source_id: str | None = None,
    speed: float = 1.0,
    chunk_seconds: float = 1 / 16,
    markers: list[tuple[str, float, float | None]] | None = None,
    wait_for_consumer: float = 10.0,
    stop: threading.Event | None = None,
    start_at: float = 0.0,
    settle: float = 1.0,
    send_eof: bool = True,
    linger: float = 3.0,
) -> int:
    """Play a recording as an LSL stream (blocking until done or ``stop`` is set).

    Parameters
    ----------
    recording : Recording
    name : str
        LSL stream name (the marker stream is ``<name>-markers``).
    source_id : str or None
        LSL source id (default: a fresh uuid).
    speed : float
        Playback speed (10 = ten times real time).
    chunk_seconds : float
        Recording seconds per pushed chunk.
    markers : list of (track, start, end) or None
        Segments to announce (default: ``recording.markers``).
    wait_for_consumer : float
        Seconds to wait for an inlet before pushing (0 = do not wait).
    stop : threading.Event or None
    start_at : float
        Recording second to start from (for resuming after an outage test).
    settle : float
        Seconds a consumer must stay connected before the first sample is pushed (a
        connecting client may open a short-lived connection first; samples pushed
        before its real inlet is open would be lost and shift stream time).
    send_eof : bool
        Send an ``eof`` marker (with the sample count) at the end.
    linger : float
        Seconds to keep the outlets open after the last sample.

    Returns
    -------
    int
        Samples pushed.
    """
    from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

    if speed <= 0:
        raise DataError("speed", f"must be positive, got {speed}")
    source_id = source_id or uuid.uuid4().hex
    fs = recording.sfreq
    info = StreamInfo(name, "EXG", len(recording.ch_names), fs, "float32", source_id)
    info.set_channel_names(list(recording.ch_names))
    info.desc.append_child_value(SPEED_KEY, repr(float(speed)))
    # max_buffered counts nominal seconds: scale it so that it holds BUFFER_SECONDS of wall time
    outlet = StreamOutlet(info, chunk_size=max(1, int(round(chunk_seconds * fs))),
                          max_buffered=int(np.ceil(BUFFER_SECONDS * max(1.0, speed))))
    minfo = StreamInfo(marker_name(name), "Markers", 1, 0.0, "string", source_id + "-markers")
    minfo.desc.append_child_value(SPEED_KEY, repr(float(speed)))
    moutlet = StreamOutlet(minfo)
    stop = stop or threading.Event()
    if wait_for_consumer > 0 and not _wait_stable_consumer(outlet, wait_for_consumer, settle, stop):
        log.warning("replay %s: no consumer after %.1f s; playing anyway", name, wait_for_consumer)
    if wait_for_consumer > 0:
        moutlet.wait_for_consumers(min(2.0, wait_for_consumer))
    events = []  # (sample index, payload)
    for track, start, end in recording.markers if markers is None else markers:
        events.append((int(round(start * fs)), {"event": "start", "track": track, "t": float(start)}))
        if end is not None:
            events.append((int(round(end * fs)), {"event": "end", "track": track, "t": float(end)}))
    events.sort(key=lambda e: e[0])
    data = recording.data.astype(np.float32).T  # (S, C)
    n = data.shape[0]
    step = max(1, int(round(chunk_seconds * fs)))
    i0 = int(round(start_at * fs))
    t0 = local_clock()
    ev = 0
    while ev < len(events) and events[ev][0] < i0:
        ev += 1
    pushed = 0
    for a in range(i0, n, step):
        if stop.is_set():
            break
        b = min(a + step, n)
        due = t0 + (b - i0) / (fs * speed)
        wait = due - local_clock()
        if wait > 0:
            stop.wait(wait)
        ts = t0 + (np.arange(a, b) - i0 + 1) / (fs * speed)
        while ev < len(events) and events[ev][0] < b:
            moutlet.push_sample([json.dumps(events[ev][1])], timestamp=float(ts[max(0, events[ev][0] - a)]))
            ev += 1
        outlet.push_chunk(np.ascontiguousarray(data[a:b]), timestamp=ts)
        pushed += b - a
    if send_eof and not stop.is_set():
        moutlet.push_sample([json.dumps({"event": "eof", "n_samples": n, "t": n / fs})])
    # samples still queued in the outlet are lost when it closes: give a slow consumer time
    stop.wait(linger)
    del outlet, moutlet
    return pushed


def _wait_stable_consumer(outlet, timeout: float, settle: float, stop: threading.Event) -> bool:
    """Wait until the outlet has had a consumer for ``settle`` s in a row (a connecting
    client may open and close a short-lived connection first)."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or not outlet.wait_for_consumers(left):
            return False
        since = time.monotonic()
        while outlet.has_consumers and time.monotonic() - since < settle and not stop.is_set():
            stop.wait(0.05)
        if outlet.has_consumers:
            return True
    return False


# --- stream --------------------------------------------------------------------------


@dataclass
class StreamStats:
    """What a streaming session did (returned by :func:`run_stream`)."""

    session_id: int
    hops: int = 0
    predictions: int = 0
    samples: int = 0
    reconnects: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    stream_seconds: float = 0.0
    cpu_seconds: float = 0.0


def _quad_index(q: str | None) -> float:
    """1-4 for Q1..Q4, 5 for Neutral, 0 for none (:data:`symaffect.spec.QUADRANT_CODES`)."""
    return float(QUADRANT_CODES.index(q) + 1) if q in QUADRANT_CODES else 0.0


def run_stream(
    run: str | Path | Predictor,
    *,
    source: str,
    db: str | Path | None = None,
    participant: str = "anonymous",
    hop: float = 1.0,
    window: float | None = None,
    channel_map: str | Path | ChannelMap | None = None,
    publish: str | None = "symaffect-predictions",
    gap_timeout: float = 2.0,
    resolve_timeout: float = 30.0,
    max_fill_seconds: float = 600.0,
    max_seconds: float | None = None,
    stop_at_eof: bool = False,
    stop: threading.Event | None = None,
    handle_signals: bool = True,
    on_hop: Callable[[HopResult], None] | None = None,
    num_threads: int | None = None,
) -> StreamStats:
    """Monitor a live LSL stream: predict every hop, store, publish (blocking).

    Parameters
    ----------
    run : path or Predictor
        Run folder / checkpoint, or a loaded predictor.
    source : str
        Name of the LSL data stream.
    db : path or None
        Session store (default ``$SYMAFFECT_HOME/sessions.db``).
    participant : str
        Pseudonym stored with the session.
    hop, window : float
        Seconds of stream time between predictions; window length (default the model's).
    channel_map : map or None
        Maps the stream's channel names (default ``default``).
    publish : str or None
        Name of the LSL outlet for predictions (None: do not publish).
    gap_timeout : float
        Wall seconds without data that count as an outage.
    resolve_timeout : float
        Seconds to wait for the stream before the first connection fails
        (reconnection after an outage waits until stopped).
    max_fill_seconds : float
        Longest outage filled with flagged samples.
    max_seconds : float or None
        Stop after this much stream time.
    stop_at_eof : bool
        Stop once a replay's ``eof`` marker says every sample has arrived.
    stop : threading.Event or None
        Set it to end the session.
    handle_signals : bool
        Install SIGINT/SIGTERM handlers that set ``stop`` (main thread only).
    on_hop : callable or None
        Called with each :class:`HopResult` after it was stored.
    num_threads : int or None
        ``torch.set_num_threads`` when loading the model.

    Returns
    -------
    StreamStats
    """
    from mne_lsl.lsl import local_clock

    stop = stop or threading.Event()
    predictor = run if isinstance(run, Predictor) else Predictor(run, num_threads=num_threads)
    cmap = load_channel_map(channel_map)
    old_handlers = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    store = SessionStore(db)
    stats: StreamStats | None = None
    outlet = None
    conn = None
    cpu0 = time.process_time()
    try:
        conn = _Connection.open(source, cmap, timeout=resolve_timeout, stop=stop)
        if conn is None:
            raise DataError(source, f"no LSL stream named {source!r} found within {resolve_timeout:g} s")
        pipe = SessionPipeline(predictor, conn.ch_names, conn.sfreq, hop=hop, window=window)
        sid = store.create_session(
            participant, predictor.name, run_dir=predictor.run,
            meta={"source": source, "hop": hop, "window": predictor.window_seconds, "sfreq": conn.sfreq,
                  "channels": list(conn.ch_names), "replay_speed": conn.speed, "absent_modalities": pipe.absent,
                  "partial_modalities": pipe.partial, "channel_notes": conn.notes},
        )
        stats = StreamStats(session_id=sid)
        if publish:
            outlet = _prediction_outlet(publish, source)
        fs = conn.sfreq
        last_ts: float | None = None
        n_in = 0  # input samples pushed into the pipeline (incl. filled)
        ts_index: collections.deque = collections.deque(maxlen=4096)  # (first input index, ts array)
        open_segments: dict[str, int] = {}
        eof_samples: int | None = None
        stalled = False
        p, q = pipe.pre._p, pipe.pre._q  # input position of output k: k p / q

        def ts_of_output(n_out: int) -> float | None:
            """Timestamp of the input sample that completed output sample n_out - 1."""
            idx = -(-(n_out - 1) * p // q)
            for start, ts in reversed(ts_index):
                if start <= idx < start + ts.size:
                    return float(ts[idx - start])
            return None

        def handle(results: list[HopResult]) -> None:
            for h in results:
                stats.hops += 1
                for f in h.quality:
                    store.add_quality(sid, h.t, f.modality, f.flag, f.detail)
                if h.prediction is not None:
                    ts = ts_of_output(int(round(h.t * SFREQ)))
                    if ts is not None:
                        stats.latencies_ms.append(_timed_store(store, sid, h.prediction, ts, local_clock))
                    else:
                        store.add_prediction(sid, h.prediction)
                    stats.predictions += 1
                log.info("stored hop t=%.3f prediction=%s", h.t, h.prediction is not None)
                if outlet is not None:
                    pr = h.prediction
                    row = [np.nan] * 3 + [0.0, 0.0, 0.0, h.t]
                    if pr is not None:
                        row = [pr.valence if pr.valence is not None else np.nan,
                               pr.arousal if pr.arousal is not None else np.nan,
                               pr.liking if pr.liking is not None else np.nan,
                               pr.confidence, _quad_index(pr.quadrant), float(len(pr.modalities_used)), h.t]
                    outlet.push_sample(np.asarray(row, dtype=np.float32))
                if on_hop is not None:
                    on_hop(h)

        def push(x: np.ndarray, code: int = 0, ts: np.ndarray | None = None) -> None:
            nonlocal n_in
            if ts is not None:
                ts_index.append((n_in, ts))
            missing = None if code == 0 else np.full(x.shape[1], code, dtype=np.uint8)
            handle(pipe.push(x, missing))
            n_in += x.shape[1]

        def fill(dt: float) -> None:
            n_fill = int(round(dt * fs * conn.speed)) - 1  # samples missing between the two timestamps
            if n_fill <= 0:
                return
            code = 3 if dt >= gap_timeout else 2
            log.info("timestamp gap of %.4f s at stream t=%.3f: %d samples filled (%s)",
                     dt, pipe.t, n_fill, "gap" if code == 3 else "dropped")
            if n_fill > max_fill_seconds * fs:
                log.warning("outage of %.1f s: filling only %.0f s", dt, max_fill_seconds)
                n_fill = int(max_fill_seconds * fs)
            step = int(fs * 10)
            for a in range(0, n_fill, step):
                push(np.full((len(conn.rows), min(step, n_fill - a)), np.nan), code)

        def feed(data: np.ndarray, ts: np.ndarray) -> None:
            nonlocal last_ts
            x = data[:, conn.rows].T  # (C, n)
            if last_ts is not None:
                d = np.diff(np.concatenate([[last_ts], ts]))
                gaps = np.flatnonzero(d > 2.5 / (fs * conn.speed))  # timestamps come speed x closer
            else:
                d = np.zeros(ts.size)
                gaps = np.array([], dtype=int)
            a = 0
            for g in gaps:  # sample g follows a gap
                if g > a:
                    push(x[:, a:g], ts=ts[a:g])
                fill(float(d[g]))
                a = g
            push(x[:, a:], ts=ts[a:])
            last_ts = float(ts[-1])
            stats.samples += ts.size

        def markers() -> None:
            nonlocal eof_samples
            for payload, mts in conn.pull_markers():
                default_t = pipe.t + max(0.0, mts - (last_ts or mts))
                m = parse_marker(payload, default_t)
                if m is None:
                    log.warning("stream %s: ignored a malformed marker %.80r", source, payload)
                    continue
                ev, track, t, n = m
                if ev == "eof":
                    eof_samples = n
                elif ev == "start":
                    open_segments[track] = store.add_segment(sid, track, t, source="lsl")
                elif ev == "end" and track in open_segments:
                    seg = open_segments.pop(track)
                    try:
                        store.end_segment(seg, t)
                    except DataError as e:  # ends before it starts: keep the segment open-ended
                        log.warning("stream %s: marker %r: %s", source, track, e)

        while not stop.is_set():
            chunks = conn.poll(0.02)
            got = bool(chunks)
            markers()
            for data, ts in chunks:
                feed(data, ts)
                if max_seconds is not None and pipe.t >= max_seconds:
                    stop.set()
                    break
            if eof_samples is not None and stop_at_eof and stats.samples >= eof_samples:
                markers()
                break
            if got:
                stalled = False
            silent = not got and time.monotonic() - conn.last_wall > gap_timeout
            if conn.lost or silent:
                if stop_at_eof and eof_samples is not None:
                    log.warning("stream %s ended after %d of %d samples", source, stats.samples, eof_samples)
                    store.add_quality(sid, pipe.t, "stream", "gap",
                                      f"replay ended; {eof_samples - stats.samples} samples never arrived")
                    break
                if not conn.lost and not conn.alive():
                    conn.lost = True  # the outlet no longer answers: it is gone
                if not conn.lost:  # silent but present: keep the inlet (no sample is lost)
                    if not stalled:
                        log.warning("stream %s: no data for %.1f s; waiting", source, gap_timeout)
                        store.add_quality(sid, pipe.t, "stream", "stall", f"no data for {gap_timeout:g} s")
                        stalled = True
                    continue
                log.warning("stream %s: lost; reconnecting", source)
                store.add_quality(sid, pipe.t, "stream", "gap", "stream lost; reconnecting")
                conn.close()
                conn = _Connection.open(source, cmap, timeout=None, stop=stop, expect=(conn.ch_names, fs))
                if conn is None:
                    break
                stats.reconnects += 1
                eof_samples = None
        for track, seg in open_segments.items():
            store.end_segment(seg, pipe.t)
        store.end_session(sid)
        stats.stream_seconds = pipe.t
        return stats
    finally:
        stats_cpu = time.process_time() - cpu0
        if stats is not None:
            stats.cpu_seconds = stats_cpu
            try:
                if store.session(stats.session_id)["ended_at"] is None:
                    store.end_session(stats.session_id)
            except Exception:  # noqa: BLE001 - best effort on the way out
                log.exception("could not end session")
        if conn is not None:
            conn.close()
        store.close()
        del outlet
        for sig, h in old_handlers.items():
            signal.signal(sig, h)


def _timed_store(store: SessionStore, sid: int, pred, ts: float, clock) -> float:
    """Store ``pred`` with its latency (LSL clock at commit minus ``ts``), in ms."""
    t_before = clock()
    pred.latency_ms = (t_before - ts) * 1000.0
    store.add_prediction(sid, pred)
    return (clock() - ts) * 1000.0


def _prediction_outlet(name: str, source: str):
    from mne_lsl.lsl import StreamInfo, StreamOutlet

    info = StreamInfo(name, "Affect", len(PREDICTION_CHANNELS), 0.0, "float32",
                      f"symaffect-{source}-{uuid.uuid4().hex[:8]}")
    info.set_channel_names(list(PREDICTION_CHANNELS))
    return StreamOutlet(info)


def _replay_speed(sinfo) -> float:
    """Speed announced by :func:`replay` in the stream description (1 when absent or invalid)."""
    try:
        speed = float(sinfo.desc.child_value(SPEED_KEY) or 1.0)
    except (TypeError, ValueError):
        return 1.0
    return speed if np.isfinite(speed) and speed > 0 else 1.0


class _Connection:
    """A connected data inlet and its optional marker inlet.

    The data is pulled with :class:`mne_lsl.lsl.StreamInlet` from the main loop (no
    acquisition thread): every sample arrives once, in order, with its timestamp; the
    ring buffer is :class:`~symaffect.stream.preprocess.WindowBuffer`.
    """

    def __init__(self, inlet, rows: list[int], ch_names: tuple[str, ...], sfreq: float,
                 notes: list[str], marker_inlet, speed: float = 1.0):
        self.inlet, self.rows = inlet, rows
        self.speed = speed
        self.ch_names, self.sfreq, self.notes = ch_names, sfreq, notes
        self.marker_inlet = marker_inlet
        self.last_wall = time.monotonic()
        self.lost = False
        self._checked = 0.0

    def alive(self) -> bool:
        """Whether the outlet still answers a resolve query (checked at most once a second)."""
        from mne_lsl.lsl import resolve_streams

        now = time.monotonic()
        if now - self._checked < 1.0:
            return True
        self._checked = now
        try:
            return bool(resolve_streams(timeout=0.5, name=self.source, source_id=self.source_id))
        except Exception:  # noqa: BLE001
            return True

    @classmethod
    def open(cls, source: str, cmap: ChannelMap, *, timeout: float | None, stop: threading.Event,
             expect: tuple | None = None) -> _Connection | None:
        """Resolve and connect, retrying with backoff; None if stopped or timed out."""
        from mne_lsl.lsl import StreamInlet, resolve_streams

        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.5
        while not stop.is_set():
            infos = resolve_streams(timeout=min(1.0, delay), name=source)
            if infos:
                sinfo = infos[0]
                try:
                    sfreq = float(sinfo.sfreq)
                    if sfreq <= 0:
                        raise DataError(source, "irregular stream (sfreq 0): cannot window it")
                    # marker inlet first, so that no marker is missed
                    minfo = resolve_streams(timeout=0.3, name=marker_name(source))
                    minlet = None
                    speed = 1.0
                    if minfo:
                        minlet = StreamInlet(minfo[0])
                        minlet.open_stream(timeout=2.0)
                        # a replay announces its speed on both streams; the marker stream is
                        # open first, so the data inlet's queue can be sized to it
                        speed = _replay_speed(minlet.get_sinfo(timeout=5.0))
                    inlet = StreamInlet(sinfo, max_buffered=int(np.ceil(BUFFER_SECONDS * max(1.0, speed))),
                                        recover=False)
                    inlet.open_stream(timeout=5.0)
                    full = inlet.get_sinfo(timeout=5.0)
                    speed = _replay_speed(full)  # the data stream's own word decides the timing
                    names = full.get_channel_names() or []
                    if len(names) != inlet.n_channels:
                        names = [str(i) for i in range(inlet.n_channels)]
                    mapping, notes = cmap.resolve(names)
                    if not mapping:
                        inlet.close_stream()
                        raise DataError(source, f"no channel maps to a model channel ({names[:8]})")
                    rows = [names.index(n) for n in mapping]
                    ch_names = tuple(mapping.values())
                    if expect is not None and (ch_names, sfreq) != expect:
                        inlet.close_stream()
                        raise DataError(source, "the stream came back with other channels or rate")
                    log.info("connected to %s (%d channels mapped, %.6g Hz, speed %g)",
                             source, len(rows), sfreq, speed)
                    conn = cls(inlet, rows, ch_names, sfreq, notes, minlet, speed=speed)
                    conn.source, conn.source_id = source, sinfo.source_id
                    return conn
                except DataError:
                    raise
                except Exception as e:  # noqa: BLE001 - a stream that vanished while connecting
                    log.warning("connecting to %s failed (%s); retrying", source, e)
            if deadline is not None and time.monotonic() > deadline:
                return None
            stop.wait(delay)
            delay = min(delay * 2, 5.0)
        return None

    def poll(self, timeout: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Chunks ``(data (n, C) float64, timestamps (n,))`` that arrived (waits up to ``timeout``)."""
        out = []
        if self.lost:
            return out
        # liblsl's pull_chunk with a timeout > 0 waits until max_samples arrived or the
        # timeout expired (measured: a chunk ready at once came back after the whole
        # timeout), which added the full timeout to every hop's latency. So pull only
        # what is ready (timeout 0) and sleep in short steps while nothing is.
        deadline = time.monotonic() + timeout
        while True:
            try:
                data, ts = self.inlet.pull_chunk(timeout=0.0, max_samples=4096)
            except Exception:  # noqa: BLE001 - LostError: the outlet is gone
                self.lost = True
                break
            if ts.size == 0:
                left = deadline - time.monotonic()
                if out or left <= 0:
                    break
                time.sleep(min(POLL_STEP_S, left))
                continue
            # pull_chunk returns views of buffers that the inlet reuses on the next pull:
            # copy both (np.asarray would keep a view of a float64 array, so an earlier
            # chunk would silently take the timestamps, or data, of a later one)
            out.append((np.array(data, dtype=np.float64, copy=True), np.array(ts, dtype=np.float64, copy=True)))
        if out:
            self.last_wall = time.monotonic()
        return out

    def pull_markers(self) -> list[tuple[str, float]]:
        if self.marker_inlet is None:
            return []
        try:
            data, ts = self.marker_inlet.pull_chunk(timeout=0.0)
        except Exception:  # noqa: BLE001 - lost marker stream: ignore, data goes on
            return []
        return [(row[0], float(t)) for row, t in zip(data, ts)]

    def close(self) -> None:
        for inlet in (self.inlet, self.marker_inlet):
            if inlet is None:
                continue
            try:
                inlet.close_stream()
            except Exception:  # noqa: BLE001
                log.debug("closing an inlet failed", exc_info=True)
        self.marker_inlet = None
