"""Lab Streaming Layer: replay a recording as a stream, and monitor a live stream.

``replay`` pushes a :class:`Recording` through an LSL outlet (mne-lsl's bundled liblsl),
optionally faster than real time, plus a marker stream ``<name>-markers`` carrying music
segments as JSON strings ``{"event": "start"|"end"|"eof", "track": ..., "t": stream_s}``
(the format :func:`symaffect.stream.session.parse_marker` checks).

``run_stream`` connects to a stream (:class:`LslConnection`) and runs a
:class:`~symaffect.stream.session.LiveSession` on it (timing, gaps, outages and markers
are described there), which stores every hop and publishes it on an LSL outlet
``symaffect-predictions`` (:class:`PredictionOutlet`).

Pulling: :class:`LslConnection` pulls with :class:`mne_lsl.lsl.StreamInlet` from the
session's main loop (every sample once, in order, with its timestamp; the ring buffer is
our own :class:`~symaffect.stream.preprocess.WindowBuffer`, sized to the window). A first
version used :class:`mne_lsl.stream.StreamLSL` with a callback; its background
acquisition thread was starved on a loaded 2-core machine (chunks arriving seconds late,
false outages), so the pull moved into the main loop.

Speed: an accelerated ``replay`` announces its speed in the stream description
(``desc/replay_speed``); the connection reports it to the session, which then expects
timestamps ``1 / (sfreq * speed)`` apart.

Buffers: liblsl sizes outlet and inlet queues in *nominal* seconds; at ``speed`` they
would hold ``speed`` times fewer real seconds, so both ends scale them by the speed
(:data:`BUFFER_SECONDS` of wall time at any speed): a consumer that falls behind on a
loaded machine catches up instead of losing samples.

liblsl's configuration: :func:`lsl` points liblsl at :data:`LIBLSL_CONFIG` before it is
first loaded, unless ``LSLAPICFG`` names the user's own configuration. Two settings:

* its log: liblsl prints its own messages to stderr, among them "ERR| Stream
  transmission broke off ... re-connecting" at every normal end of a stream, which
  alarms a user for nothing. The configuration keeps fatal errors only
  (``SYMAFFECT_LIBLSL_LOG=1`` selects :data:`LIBLSL_LOG_CONFIG`, liblsl's usual log).
  Outages are detected and reported by the session itself, once, in plain words
  (:mod:`symaffect.stream.session`);
* its inlet watchdog (``WatchdogCheckInterval``, 15 s by default) is set to an hour. The
  data inlets do not auto-recover (``recover=False``: the session reconnects itself), and
  measured with 32 inlets in one process, the watchdog's rounds every 15 s took half a
  core for half a second on both ends, which set the p99 latency of every session
  (102 ms against 34 ms without it; ``benchmarks/bench_stream.py``).

Reconnection: when the outlet is gone (liblsl reports the inlet lost, or the stream no
longer resolves) the session asks :meth:`LslConnection.reopen`, which resolves again with
backoff (0.5 s doubling to 5 s) until the stream is back or the session is stopped.
SIGINT / SIGTERM end the session cleanly.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from symaffect._io import read_text
from symaffect.errors import DataError
from symaffect.extras import require
from symaffect.spec import QUADRANT_CODES
from symaffect.stream.channel_map import ChannelMap, load_channel_map
from symaffect.stream.hub import RoundStats, SessionHub
from symaffect.stream.pipeline import HopResult, Predictor
from symaffect.stream.recording import Recording
from symaffect.stream.session import LiveSession, StreamStats
from symaffect.stream.store import SessionStore

log = logging.getLogger(__name__)

BUFFER_SECONDS = 360
"""Wall seconds of samples that the replay outlet and the streamer's inlet queue hold."""

SPEED_KEY = "replay_speed"
"""Child of the stream description where :func:`replay` announces its speed."""

PREDICTION_CHANNELS = ("valence", "arousal", "liking", "confidence", "quadrant", "n_modalities", "stream_t")
"""Channels of the ``symaffect-predictions`` outlet (quadrant 1-4 for Q1..Q4, 5 Neutral, 0 = none; NaN ratings
when a hop has no prediction)."""


LIBLSL_CONFIG = Path(__file__).with_name("liblsl.cfg")
"""liblsl configuration: its log to fatal errors, its inlet watchdog once an hour."""

LIBLSL_LOG_CONFIG = Path(__file__).with_name("liblsl_log.cfg")
"""The same with liblsl's usual log (``SYMAFFECT_LIBLSL_LOG=1``)."""

LIBLSL_LOG_ENV = "SYMAFFECT_LIBLSL_LOG"
"""Set to ``1`` to keep liblsl's own log (for debugging a network)."""


def lsl():
    """``mne_lsl.lsl``, loaded with symaffect's liblsl configuration (see the module docstring).

    Raises
    ------
    MissingExtra
        mne-lsl is not installed (the ``live`` extra).
    """
    if "LSLAPICFG" not in os.environ:
        log_on = os.environ.get(LIBLSL_LOG_ENV, "") == "1"
        os.environ["LSLAPICFG"] = str(LIBLSL_LOG_CONFIG if log_on else LIBLSL_CONFIG)
    return require("mne_lsl.lsl", "LSL streaming")


LOST_CHECK_S = 0.2
"""A non-blocking poll pulls (and so notices a lost outlet) at least this often (s)."""

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
    start_clock: float | None = None,
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
    start_clock : float or None
        Push the first sample at this LSL ``local_clock()`` time (after the consumer
        wait), so that several replays run in step or at chosen phases; None: at once.

    Returns
    -------
    int
        Samples pushed.
    """
    pylsl = lsl()
    StreamInfo, StreamOutlet, local_clock = pylsl.StreamInfo, pylsl.StreamOutlet, pylsl.local_clock
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
    if start_clock is not None:
        stop.wait(max(0.0, start_clock - local_clock()))
        t0 = max(t0, start_clock)
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
    device: str = "cpu",
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
    device : str
        Torch device of the model (when ``run`` is a path).

    Returns
    -------
    StreamStats
    """
    stop = stop or threading.Event()
    predictor = run if isinstance(run, Predictor) else Predictor(run, num_threads=num_threads, device=device)
    cmap = load_channel_map(channel_map)
    with _stop_on_signals(stop, enabled=handle_signals), contextlib.closing(SessionStore(db)) as store:
        conn: LslConnection | None = None
        session: LiveSession | None = None
        cpu0 = time.process_time()
        try:
            conn = LslConnection.open(source, cmap, timeout=resolve_timeout, stop=stop)
            if conn is None:
                raise DataError(source, f"no LSL stream named {source!r} found within {resolve_timeout:g} s")
            listeners = [PredictionOutlet(publish, source).push] if publish else []
            if on_hop is not None:
                listeners.append(on_hop)
            session = LiveSession(
                predictor, conn, store, source=source, participant=participant, hop=hop, window=window,
                listeners=listeners, gap_timeout=gap_timeout, max_fill_seconds=max_fill_seconds,
                max_seconds=max_seconds, stop_at_eof=stop_at_eof, stop=stop,
            )
            return session.run()
        finally:
            if session is not None:
                session.stats.cpu_seconds = time.process_time() - cpu0
                session.close()
            elif conn is not None:
                conn.close()


def run_streams(
    run: str | Path | Predictor,
    *,
    sources: Sequence[str],
    participants: Sequence[str] | None = None,
    db: str | Path | None = None,
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
    batched: bool = True,
    max_batch: int | None = None,
    num_threads: int | None = None,
    device: str = "cpu",
) -> tuple[list[StreamStats], RoundStats]:
    """Monitor many LSL streams from one process (a :class:`SessionHub`; blocking).

    One model is loaded and shared by every session (each keeps its own calibration);
    the hops that fall due together are predicted in one forward pass, and each round's
    hops of every session are committed in one transaction.

    Parameters
    ----------
    run : path or Predictor
    sources : sequence of str
        Names of the LSL data streams, one session each.
    participants : sequence of str or None
        A pseudonym per source (default ``"anonymous"``).
    publish : str or None
        Publish each session's predictions on an outlet ``<publish>-<source>`` (None: do
        not publish).
    batched : bool
        False: one model call per hop (for comparison).
    max_batch : int or None
        Most windows per forward pass (None: by device, see :class:`SessionHub`).
    device : str
        Torch device of the shared model (when ``run`` is a path).
    Other parameters
        As :func:`run_stream` (every session gets them).

    Returns
    -------
    stats : list of StreamStats
        One per source, in order.
    rounds : RoundStats
        Forward passes and batch sizes.

    Raises
    ------
    DataError
        Duplicate sources, a participant list of another length, or a source not found
        within ``resolve_timeout``.
    """
    sources = list(sources)
    if not sources:
        raise DataError("sources", "give at least one LSL stream name")
    if len(set(sources)) != len(sources):
        raise DataError("sources", "each stream can be monitored once")
    participants = list(participants) if participants else ["anonymous"] * len(sources)
    if len(participants) != len(sources):
        raise DataError("participants", f"{len(participants)} pseudonyms for {len(sources)} streams")
    stop = stop or threading.Event()
    base = run if isinstance(run, Predictor) else Predictor(run, num_threads=num_threads, device=device)
    cmap = load_channel_map(channel_map)
    with _stop_on_signals(stop, enabled=handle_signals), contextlib.closing(SessionStore(db)) as store:
        conns: list[LslConnection | None] = [None] * len(sources)
        errors: list[BaseException | None] = [None] * len(sources)

        def connect(i: int) -> None:
            try:
                conns[i] = LslConnection.open(sources[i], cmap, timeout=resolve_timeout, stop=stop)
            except BaseException as e:  # noqa: BLE001 - re-raised below, in this thread
                errors[i] = e

        threads = [threading.Thread(target=connect, args=(i,), daemon=True) for i in range(len(sources))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        sessions: list[LiveSession] = []
        try:
            for i, src in enumerate(sources):
                if errors[i] is not None:
                    raise errors[i]
                if conns[i] is None:
                    raise DataError(src, f"no LSL stream named {src!r} found within {resolve_timeout:g} s")
            hub = SessionHub(store, batched=batched, max_batch=max_batch, stop=stop)
            for i, src in enumerate(sources):
                listeners = [PredictionOutlet(f"{publish}-{src}", src).push] if publish else []
                session = LiveSession(
                    base.share(), conns[i], store, source=src, participant=participants[i], hop=hop,
                    window=window, listeners=listeners, gap_timeout=gap_timeout,
                    max_fill_seconds=max_fill_seconds, max_seconds=max_seconds, stop_at_eof=stop_at_eof,
                )
                conns[i] = None  # the session owns it now
                sessions.append(session)
                hub.add(session)
            cpu0 = time.process_time()
            stats = hub.run()
            cpu = time.process_time() - cpu0
            for st in stats:  # the process's CPU, shared evenly (one thread runs them all)
                st.cpu_seconds = cpu / len(stats)
            return stats, hub.rounds
        finally:
            for session in sessions:
                session.close()
            for conn in conns:
                if conn is not None:
                    conn.close()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    """SIGINT / SIGTERM set ``stop`` inside the block (main thread only; handlers restored after)."""
    old = {}
    if enabled and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _quad_index(q: str | None) -> float:
    """1-4 for Q1..Q4, 5 for Neutral, 0 for none (:data:`symaffect.spec.QUADRANT_CODES`)."""
    return float(QUADRANT_CODES.index(q) + 1) if q in QUADRANT_CODES else 0.0


class PredictionOutlet:
    """An LSL outlet of predictions: one sample of :data:`PREDICTION_CHANNELS` per hop.

    Parameters
    ----------
    name : str
        The outlet's stream name.
    source : str
        The data stream's name (part of the outlet's source id).
    """

    def __init__(self, name: str, source: str):
        pylsl = lsl()
        info = pylsl.StreamInfo(name, "Affect", len(PREDICTION_CHANNELS), 0.0, "float32",
                          f"symaffect-{source}-{uuid.uuid4().hex[:8]}")
        info.set_channel_names(list(PREDICTION_CHANNELS))
        self._outlet = pylsl.StreamOutlet(info)

    def push(self, h: HopResult) -> None:
        """Publish one hop (NaN ratings, confidence and quadrant 0 when it has no prediction)."""
        pr = h.prediction
        row = [np.nan] * 3 + [0.0, 0.0, 0.0, h.t]
        if pr is not None:
            row = [pr.valence if pr.valence is not None else np.nan,
                   pr.arousal if pr.arousal is not None else np.nan,
                   pr.liking if pr.liking is not None else np.nan,
                   pr.confidence, _quad_index(pr.quadrant), float(len(pr.modalities_used)), h.t]
        self._outlet.push_sample(np.asarray(row, dtype=np.float32))


def _replay_speed(sinfo) -> float:
    """Speed announced by :func:`replay` in the stream description (1 when absent or invalid)."""
    try:
        speed = float(sinfo.desc.child_value(SPEED_KEY) or 1.0)
    except (TypeError, ValueError):
        return 1.0
    return speed if np.isfinite(speed) and speed > 0 else 1.0


class LslConnection:
    """A connected LSL data inlet and its optional marker inlet (a
    :class:`~symaffect.stream.session.Connection`).

    The data is pulled with :class:`mne_lsl.lsl.StreamInlet` from the session's main loop
    (no acquisition thread): every sample arrives once, in order, with its timestamp.
    Build one with :meth:`open`.

    Parameters
    ----------
    inlet : mne_lsl.lsl.StreamInlet
        The open data inlet.
    rows : list of int
        Stream columns of the mapped channels, in ``ch_names`` order.
    ch_names : tuple of str
        DEAP name of each mapped channel.
    sfreq : float
    notes : list of str
        Stream channels left out and why.
    marker_inlet : mne_lsl.lsl.StreamInlet or None
    speed : float
        Replay speed announced by the stream.
    source, source_id : str
        The stream's name and LSL source id.
    cmap : ChannelMap
        The channel map (for :meth:`reopen`).
    """

    def __init__(self, inlet, rows: list[int], ch_names: tuple[str, ...], sfreq: float, notes: list[str],
                 marker_inlet, *, speed: float, source: str, source_id: str, cmap: ChannelMap):
        self.inlet, self.rows = inlet, rows
        self.speed = speed
        self.ch_names, self.sfreq, self.notes = ch_names, sfreq, notes
        self.marker_inlet = marker_inlet
        self.source, self.source_id, self.cmap = source, source_id, cmap
        self.last_wall = time.monotonic()
        self.lost = False
        self._checked = 0.0
        self._pulled = 0.0

    @classmethod
    def open(cls, source: str, cmap: ChannelMap, *, timeout: float | None, stop: threading.Event,
             expect: tuple | None = None) -> LslConnection | None:
        """Resolve and connect, retrying with backoff; None if stopped or timed out.

        Parameters
        ----------
        source : str
            The stream's name.
        cmap : ChannelMap
        timeout : float or None
            Seconds to keep trying (None: until stopped).
        stop : threading.Event
        expect : (tuple of str, float) or None
            Mapped channel names and rate the stream must have (a reconnection).

        Raises
        ------
        DataError
            An irregular stream, no mapped channel, or other channels or rate than
            ``expect``.
        """
        pylsl = lsl()
        StreamInlet, resolve_streams = pylsl.StreamInlet, pylsl.resolve_streams
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
                    return cls(inlet, rows, ch_names, sfreq, notes, minlet, speed=speed, source=source,
                               source_id=sinfo.source_id, cmap=cmap)
                except DataError:
                    raise
                except Exception as e:  # noqa: BLE001 - a stream that vanished while connecting
                    log.warning("connecting to %s failed (%s); retrying", source, e)
            if deadline is not None and time.monotonic() > deadline:
                return None
            stop.wait(delay)
            delay = min(delay * 2, 5.0)
        return None

    def reopen(self, stop: threading.Event) -> LslConnection | None:
        """Connect again to the same stream (same channels and rate), until stopped."""
        return type(self).open(self.source, self.cmap, timeout=None, stop=stop, expect=(self.ch_names, self.sfreq))

    def alive(self) -> bool:
        """Whether the outlet still answers a resolve query (checked at most once a second)."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return True
        self._checked = now
        try:
            return bool(lsl().resolve_streams(timeout=0.5, name=self.source, source_id=self.source_id))
        except Exception:  # noqa: BLE001
            return True

    def clock(self) -> float:
        """Now, on LSL's clock (the clock of the timestamps)."""
        return lsl().local_clock()

    def poll(self, timeout: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Chunks ``(data (n, C) float64, timestamps (n,))`` that arrived (waits up to
        ``timeout``); ``C`` are the mapped channels, in ``ch_names`` order."""
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
                if (not out and timeout <= 0 and time.monotonic() - self._pulled < LOST_CHECK_S
                        and not self.inlet.samples_available):
                    break  # nothing buffered: a tenth of the cost of an empty pull
                self._pulled = time.monotonic()  # a pull also finds out that the outlet is gone
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
            # copy both (np.asarray alone would keep a view of a float64 array, so an
            # earlier chunk would silently take the timestamps, or data, of a later one);
            # selecting the mapped columns copies the data
            out.append((np.asarray(data, dtype=np.float64)[:, self.rows], np.array(ts, dtype=np.float64, copy=True)))
        if out:
            self.last_wall = time.monotonic()
        return out

    def pull_markers(self) -> list[tuple[str, float]]:
        """Marker payloads that arrived, with their timestamps (none once the marker stream is lost)."""
        if self.marker_inlet is None:
            return []
        try:
            if not self.marker_inlet.samples_available:
                return []
            data, ts = self.marker_inlet.pull_chunk(timeout=0.0)
        except Exception:  # noqa: BLE001 - lost marker stream: ignore, data goes on
            return []
        return [(row[0], float(t)) for row, t in zip(data, ts)]

    def close(self) -> None:
        """Close both inlets (best effort)."""
        for inlet in (self.inlet, self.marker_inlet):
            if inlet is None:
                continue
            try:
                inlet.close_stream()
            except Exception:  # noqa: BLE001
                log.debug("closing an inlet failed", exc_info=True)
        self.marker_inlet = None
