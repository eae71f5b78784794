"""A live session: samples in, every hop predicted, stored and published.

:class:`LiveSession` is the loop behind ``symaffect stream``. It pulls the samples of one
connected source (a :class:`Connection`; :class:`symaffect.stream.lsl.LslConnection` for
an LSL stream) and pushes them through the same
:class:`~symaffect.stream.pipeline.SessionPipeline` as offline ``predict``, stores every
hop in the :class:`~symaffect.stream.store.SessionStore` and hands it to its listeners
(the LSL prediction outlet, a caller's callback). It knows nothing of the transport;
:func:`symaffect.stream.lsl.run_stream` builds one and runs it.

Timing: hops fall every ``hop`` of *stream time*, counted in samples (never the wall
clock), so an accelerated replay gives exactly the hops of an offline run. Timestamps
are used for two things only: gaps (a jump of more than 2.5 sample periods between
consecutive samples is filled with held samples flagged ``dropped``; longer than
``gap_timeout`` seconds, ``gap``), and latency (the source's clock at commit minus the
timestamp of the window's last sample). A source that replays faster than real time
says so (``speed``): its timestamps are then expected ``1 / (sfreq * speed)`` apart, so
a sample lost in transport is still flagged and the fill has as many samples as were
lost (stream time stays that of the recording).

Outages: when no sample arrives for ``gap_timeout`` seconds of wall time the session
flags a ``stream:stall`` once and keeps its connection (closing it would lose the
samples still on their way). When the source is gone it flags a ``stream:gap`` and
reconnects (:meth:`Connection.reopen`) until the source is back or the session is
stopped. Either way the missing span (from the timestamps, at most ``max_fill_seconds``)
is filled and flagged, so no window mixes data across the gap.

Calibration: just before each hop is predicted the session asks the store (one indexed
query) whether a calibration was activated for it (by the dashboard's "Calibrate", or a stored calibration
of the listener chosen there); when the activation changed, the predictor switches to it
(:meth:`Predictor.set_calibration`) and every later hop is predicted, and stored, with it
(``model_label`` and ``calibration_id`` on each prediction). A calibration that does not
fit the model is refused: the session keeps its model, logs it and stores a
``stream:calibration`` quality row.

Markers: a source may carry music segments as marker strings, JSON
``{"event": "start"|"end"|"eof", "track": ..., "t": stream_s, "n_samples": int}``
(checked by :func:`parse_marker`; plain text is the start of a track of that name).
Segments are stored as they open and close; ``eof`` says how many samples a replay sent.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from symaffect.errors import DataError
from symaffect.models.calibration import Calibration
from symaffect.spec import SFREQ
from symaffect.stream.physio import signal_strips, window_vitals
from symaffect.stream.pipeline import HopResult, PendingHop, Predictor, SessionPipeline
from symaffect.stream.store import SessionStore

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.02
"""Longest wait for samples in one turn of the loop (s)."""

TS_INDEX_CHUNKS = 4096
"""Chunks whose timestamps are kept for latency (far more than one window holds)."""

MAX_TRACK_CHARS = 200
"""Longest track name kept from a marker (the API's limit)."""


class Connection(Protocol):
    """What a :class:`LiveSession` needs from a connected source.

    Attributes
    ----------
    ch_names : tuple of str
        DEAP channel name of each column that :meth:`poll` returns.
    sfreq : float
        Nominal sampling rate (Hz).
    speed : float
        Replay speed announced by the source (1 for a live source).
    notes : list of str
        Source channels left out and why.
    lost : bool
        The source is gone (a pull failed).
    last_wall : float
        ``time.monotonic()`` when samples last arrived.
    """

    ch_names: tuple[str, ...]
    sfreq: float
    speed: float
    notes: list[str]
    lost: bool
    last_wall: float

    def poll(self, timeout: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Chunks ``(data (n, C) float64, timestamps (n,))`` that arrived (waits up to ``timeout``)."""

    def pull_markers(self) -> list[tuple[str, float]]:
        """Marker payloads that arrived, with their timestamps."""

    def alive(self) -> bool:
        """Whether the source still answers (a silent source may still be there)."""

    def clock(self) -> float:
        """Now, on the clock of the timestamps."""

    def reopen(self, stop: threading.Event) -> Connection | None:
        """Connect again to the same source (same channels and rate); None once stopped."""

    def close(self) -> None:
        """Release the connection."""


@dataclass
class StreamStats:
    """What a streaming session did (returned by :func:`symaffect.stream.lsl.run_stream`)."""

    session_id: int
    hops: int = 0
    predictions: int = 0
    samples: int = 0
    reconnects: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    stream_seconds: float = 0.0
    cpu_seconds: float = 0.0


def _clock(t: float) -> str:
    """Stream time as ``m:ss``."""
    m, sec = divmod(int(round(max(t, 0.0))), 60)
    return f"{m}:{sec:02d}"


def parse_marker(payload: object, default_t: float) -> tuple[str, str, float, int | None] | None:
    """Check one marker received over the network: ``(event, track, t, n_samples)`` or None.

    A marker is JSON ``{"event": "start" | "end" | "eof", "track": str, "t": seconds,
    "n_samples": int}`` (``t`` defaults to ``default_t``), or plain text, taken as the
    start of a track of that name. None for anything else: a non-object, an unknown event,
    a time that is not a finite number >= 0, a sample count that is not a positive int.
    Track names lose control characters and are cut to :data:`MAX_TRACK_CHARS`.
    """
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


class LiveSession:
    """One live session: pull samples, predict every hop, store it and hand it on.

    The constructor builds the pipeline for the connection's channels and rate and starts
    the session in the store; :meth:`run` loops until stopped, until a replay's last
    sample (``stop_at_eof``), ``max_seconds`` of stream time or a source that does not
    come back, then ends the session; :meth:`close` releases the connection (and ends the
    session in the store if :meth:`run` did not get to).

    Parameters
    ----------
    predictor : Predictor
    conn : Connection
        A connected source.
    store : SessionStore
    source : str
        The source's name (session meta, log lines).
    participant : str
        Pseudonym stored with the session.
    hop, window : float, float or None
        See :class:`~symaffect.stream.pipeline.SessionPipeline`.
    listeners : sequence of callable
        Called in order with every :class:`HopResult` after it was stored.
    gap_timeout : float
        Wall seconds without data that count as an outage; a timestamp jump this long is
        flagged ``gap`` (shorter ones ``dropped``).
    max_fill_seconds : float
        Longest outage filled with flagged samples.
    max_seconds : float or None
        Stop after this much stream time.
    stop_at_eof : bool
        Stop once an ``eof`` marker says every sample has arrived.
    stop : threading.Event or None
        Set it to end the session.
    vitals_every, strips_every : float or None
        Seconds of stream time between vital-sign updates (:func:`physio.window_vitals`:
        heart rate, PPG quality, breathing rate, skin conductance, SCRs, temperature, each
        with its plausibility) and raw-signal strip updates (:func:`physio.signal_strips`),
        computed from the hop's unfiltered window after its prediction is committed (off
        the latency path); None: never. Sessions take turns (the phase depends on the
        session id), so that many sessions started together do not compute them at once.

    Attributes
    ----------
    pipe : SessionPipeline
    stats : StreamStats
    conn : Connection or None
        The current connection (replaced on reconnection; None once lost for good).
    activation_id : int or None
        The store's calibration activation the predictor follows (None: none seen yet).
    """

    def __init__(
        self,
        predictor: Predictor,
        conn: Connection,
        store: SessionStore,
        *,
        source: str,
        participant: str = "anonymous",
        hop: float = 1.0,
        window: float | None = None,
        listeners: Sequence[Callable[[HopResult], None]] = (),
        gap_timeout: float = 2.0,
        max_fill_seconds: float = 600.0,
        max_seconds: float | None = None,
        stop_at_eof: bool = False,
        stop: threading.Event | None = None,
        vitals_every: float | None = 5.0,
        strips_every: float | None = 2.0,
    ):
        self.pipe = SessionPipeline(predictor, conn.ch_names, conn.sfreq, hop=hop, window=window)
        self.predictor = predictor
        self.sid = store.create_session(
            participant, predictor.name, run_dir=predictor.run,
            meta={"source": source, "hop": hop, "window": predictor.window_seconds, "sfreq": conn.sfreq,
                  "channels": list(conn.ch_names), "replay_speed": conn.speed,
                  "absent_modalities": self.pipe.absent, "partial_modalities": self.pipe.partial,
                  "channel_notes": conn.notes, "model_path": str(predictor.base_path),
                  "model_sha256": predictor.digest, "model_label": predictor.model_label,
                  "modalities": list(predictor.modalities),
                  "task_set": predictor.task_set},
        )
        self.activation_id: int | None = None
        self.pipe.before_hop = self._follow_calibration
        self.stats = StreamStats(session_id=self.sid)
        self.conn: Connection | None = conn
        self.store = store
        self.source = source
        self.listeners = tuple(listeners)
        self.gap_timeout = gap_timeout
        self.max_fill_seconds = max_fill_seconds
        self.max_seconds = max_seconds
        self.stop_at_eof = stop_at_eof
        self.stop = stop or threading.Event()
        self.fs = conn.sfreq
        self.last_ts: float | None = None  # timestamp of the last sample received
        self.n_in = 0  # input samples pushed into the pipeline (incl. filled)
        self.ts_index: collections.deque = collections.deque(maxlen=TS_INDEX_CHUNKS)  # (first input index, ts)
        self.open_segments: dict[str, int] = {}  # track -> segment id
        self.eof_samples: int | None = None
        self.stalled = False
        self._pending: list[PendingHop] = []
        self.hop = hop
        self.vitals_every = None if vitals_every is None else max(1, int(round(vitals_every / hop)))
        self.strips_every = None if strips_every is None else max(1, int(round(strips_every / hop)))
        self.blocking_outage = True  # a SessionHub handles outages in the background
        self._outage_thread: threading.Thread | None = None
        self._outage_result = True

    # ------------------------------------------------------------------ loop
    def run(self) -> StreamStats:
        """Run the session to its end (see class docstring) and end it in the store.

        Each turn of the loop is :meth:`step` (pull, feed), then the hops that completed
        are predicted one by one and :meth:`commit`-ted. :class:`SessionHub` runs the same
        steps for many sessions and predicts their hops together.
        """
        while True:
            alive = self.step(POLL_TIMEOUT_S)
            pending = self.take_pending()
            if pending:
                self.commit([h.finish(None if h.window is None else self.predictor.predict_window(
                    h.window.x, t=h.window.t, flags=h.window.flags, coverage=h.window.coverage))
                    for h in pending])
            if not alive:
                break
        return self.end()

    def step(self, timeout: float) -> bool:
        """One turn: pull what arrived (waiting up to ``timeout``), read markers, feed the
        samples; completed hops wait in :meth:`take_pending`.

        While an outage is handled in the background (``blocking_outage`` False) the turn
        does nothing.

        Returns
        -------
        bool
            False once the session is over (stopped, the replay's last sample, ``max_seconds``,
            a source that will not come back); its pending hops are still to be committed,
            then :meth:`end`.
        """
        if self._outage_thread is not None:
            if self._outage_thread.is_alive():
                return True
            self._outage_thread = None
            if not self._outage_result:
                return False
        if self.stop.is_set():
            return False
        chunks = self.conn.poll(timeout)
        self._markers()
        for data, ts in chunks:
            self._feed(data, ts)
            if self.max_seconds is not None and self.pipe.t >= self.max_seconds:
                self.stop.set()
                return False
        if self.stop_at_eof and self.eof_samples is not None and self.stats.samples >= self.eof_samples:
            self._markers()
            return False
        if chunks:
            self.stalled = False
        silent = not chunks and time.monotonic() - self.conn.last_wall > self.gap_timeout
        if self.conn.lost or silent:
            if self.blocking_outage:
                return self._outage()
            self._outage_thread = threading.Thread(target=self._outage_in_background, daemon=True,
                                                   name=f"outage-{self.source}")
            self._outage_thread.start()
        return True

    def _outage_in_background(self) -> None:
        self._outage_result = self._outage()

    def take_pending(self) -> list[PendingHop]:
        """The hops that completed since the last call (not yet predicted)."""
        out, self._pending = self._pending, []
        return out

    def commit(self, results: Sequence[HopResult]) -> None:
        """Store the predicted hops (one transaction), count and publish them, then update
        the vital signs and signal strips that are due."""
        with self.store.batch():
            stored = self.store_hops(results)
        self.published(stored)
        self.update_signals(results)

    def update_signals(self, results: Sequence[HopResult]) -> None:
        """Compute and store the vital signs and raw-signal strips due at these hops (every
        ``vitals_every`` / ``strips_every``; a hop without its window is skipped)."""
        for h in results:
            if h.raw is None:
                continue
            k = int(round((h.t - self.predictor.window_seconds) / self.hop)) + self.sid
            if self.vitals_every is not None and k % self.vitals_every == 0:
                self.store.add_vitals(self.sid, h.t, window_vitals(h.raw, self.pipe.ch_names, h.missing,
                                                                   sfreq=SFREQ))
            if self.strips_every is not None and k % self.strips_every == 0:
                self.store.set_strips(self.sid, h.t, signal_strips(h.raw, self.pipe.ch_names, self.pipe.groups,
                                                                   sfreq=SFREQ))

    def end(self) -> StreamStats:
        """Close the open segments and end the session in the store; the final stats."""
        for seg in self.open_segments.values():
            self.store.end_segment(seg, self.pipe.t)
        self.store.end_session(self.sid)
        self.stats.stream_seconds = self.pipe.t
        return self.stats

    def close(self) -> None:
        """Release the connection; end the session in the store if it is still open."""
        try:
            self.store.end_session(self.sid)  # a no-op once ended
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.exception("could not end session")
        if self.conn is not None:
            self.conn.close()

    def _outage(self) -> bool:
        """No data for ``gap_timeout``, or the source is gone: flag it, wait or reconnect.

        Returns
        -------
        bool
            False when the session ends (a replay that will not send its missing
            samples, or stopped while reconnecting).
        """
        if self.stop_at_eof and self.eof_samples is not None:
            missing = self.eof_samples - self.stats.samples
            log.warning("The replay %s ended after %d of its %d samples; %d never arrived.", self.source,
                        self.stats.samples, self.eof_samples, missing)
            self.store.add_quality(self.sid, self.pipe.t, "stream", "gap",
                                   f"replay ended; {missing} samples never arrived")
            return False
        if not self.conn.lost and self.conn.alive():  # silent but present: keep it (no sample is lost)
            if not self.stalled:
                log.warning("No signal from %s for %g s: waiting for it (the session goes on).",
                            self.source, self.gap_timeout)
                self.store.add_quality(self.sid, self.pipe.t, "stream", "stall", f"no data for {self.gap_timeout:g} s")
                self.stalled = True
            return True
        if self.eof_samples is not None and self.stats.samples >= self.eof_samples:
            # a replay that sent every sample and closed: its normal end, not an outage
            log.info("%s: the replay finished (all %d samples received); waiting in case it starts again.",
                     self.source, self.stats.samples)
            self.store.add_quality(self.sid, self.pipe.t, "stream", "ended", "the replay finished")
        else:
            log.warning("The signal stream %s stopped at %s; reconnecting as soon as it is back "
                        "(everything stored so far is kept).", self.source, _clock(self.pipe.t))
            self.store.add_quality(self.sid, self.pipe.t, "stream", "gap", "stream lost; reconnecting")
        self.conn.close()
        self.conn = self.conn.reopen(self.stop)
        if self.conn is None:
            return False
        self.stats.reconnects += 1
        self.eof_samples = None
        return True

    # ------------------------------------------------------------------ samples
    def _feed(self, data: np.ndarray, ts: np.ndarray) -> None:
        """Push one received chunk ``data`` (n, C) with timestamps ``ts`` (n,), filling gaps."""
        x = data.T  # (C, n)
        if self.last_ts is not None:
            d = np.diff(np.concatenate([[self.last_ts], ts]))
            gaps = np.flatnonzero(d > 2.5 / (self.fs * self.conn.speed))  # timestamps come speed x closer
        else:
            d = np.zeros(ts.size)
            gaps = np.array([], dtype=int)
        a = 0
        for g in gaps:  # sample g follows a gap
            if g > a:
                self._push(x[:, a:g], ts=ts[a:g])
            self._fill(float(d[g]))
            a = g
        self._push(x[:, a:], ts=ts[a:])
        self.last_ts = float(ts[-1])
        self.stats.samples += ts.size

    def _fill(self, dt: float) -> None:
        """Fill the samples missing across a timestamp jump of ``dt`` seconds (flagged)."""
        n_fill = int(round(dt * self.fs * self.conn.speed)) - 1  # samples missing between the two timestamps
        if n_fill <= 0:
            return
        code = 3 if dt >= self.gap_timeout else 2
        log.info("timestamp gap of %.4f s at stream t=%.3f: %d samples filled (%s)",
                 dt, self.pipe.t, n_fill, "gap" if code == 3 else "dropped")
        if n_fill > self.max_fill_seconds * self.fs:
            log.warning("outage of %.1f s: filling only %.0f s", dt, self.max_fill_seconds)
            n_fill = int(self.max_fill_seconds * self.fs)
        step = int(self.fs * 10)
        for a in range(0, n_fill, step):
            self._push(np.full((len(self.pipe.ch_names), min(step, n_fill - a)), np.nan), code)

    def _push(self, x: np.ndarray, code: int = 0, ts: np.ndarray | None = None) -> None:
        """Push samples ``x`` (C, n) (``code``: their missing code) and handle the hops."""
        if ts is not None:
            self.ts_index.append((self.n_in, ts))
        missing = None if code == 0 else np.full(x.shape[1], code, dtype=np.uint8)
        self._pending.extend(self.pipe.push_pending(x, missing))
        self.n_in += x.shape[1]

    # ------------------------------------------------------------------ hops
    def store_hops(self, results: Sequence[HopResult]) -> list[tuple[HopResult, float | None]]:
        """Store every hop (quality rows, the prediction with its latency so far); inside a
        :meth:`SessionStore.batch` the rows commit with the batch.

        Returns
        -------
        list of (HopResult, float or None)
            Each hop with the timestamp of its window's last sample (None when unknown).
        """
        out = []
        for h in results:
            for f in h.quality:
                self.store.add_quality(self.sid, h.t, f.modality, f.flag, f.detail)
            ts = None
            if h.prediction is not None:
                ts = self._timestamp_of(int(round(h.t * SFREQ)))
                if ts is not None:
                    h.prediction.latency_ms = (self.conn.clock() - ts) * 1000.0
                self.store.add_prediction(self.sid, h.prediction)
            out.append((h, ts))
        return out

    def published(self, stored: Sequence[tuple[HopResult, float | None]]) -> None:
        """After the commit: count the hops, record their latency (clock now minus the
        timestamp of the window's last sample) and hand them to the listeners."""
        now = self.conn.clock() if stored else 0.0
        for h, ts in stored:
            self.stats.hops += 1
            if h.prediction is not None:
                self.stats.predictions += 1
                if ts is not None:
                    self.stats.latencies_ms.append((now - ts) * 1000.0)
            log.info("stored hop t=%.3f prediction=%s", h.t, h.prediction is not None)
            for listener in self.listeners:
                listener(h)

    def _follow_calibration(self, t: float) -> None:
        """Switch the predictor when the store holds a new calibration activation for this
        session (one indexed query, run just before each hop is predicted): the hop about to
        be predicted is the first of the new model."""
        act = self.store.active_calibration(self.sid)
        if act is None or act.id == self.activation_id:
            return
        self.activation_id = act.id
        try:
            cal = None
            if act.calibration_id is not None:
                cal = Calibration.from_dict(self.store.calibration(act.calibration_id).calibration)
            self.predictor.set_calibration(cal, calibration_id=act.calibration_id)
        except DataError as e:
            log.warning("session %d: calibration %s not applied: %s", self.sid, act.calibration_id, e)
            self.store.add_quality(self.sid, t, "stream", "calibration",
                                   f"calibration {act.calibration_id} not applied: {e}")
            return
        log.info("session %d: from t=%.3f on, predictions by the %s", self.sid, t, self.predictor.model_label)

    def _timestamp_of(self, n_out: int) -> float | None:
        """Timestamp of the input sample that completed output sample ``n_out - 1``."""
        idx = self.pipe.pre.input_index(n_out - 1)
        for start, ts in reversed(self.ts_index):
            if start <= idx < start + ts.size:
                return float(ts[idx - start])
        return None

    # ------------------------------------------------------------------ markers
    def _markers(self) -> None:
        """Open and close segments from the markers that arrived; note an ``eof``."""
        for payload, mts in self.conn.pull_markers():
            default_t = self.pipe.t + max(0.0, mts - (self.last_ts or mts))
            m = parse_marker(payload, default_t)
            if m is None:
                log.warning("stream %s: ignored a malformed marker %.80r", self.source, payload)
                continue
            ev, track, t, n = m
            if ev == "eof":
                self.eof_samples = n
            elif ev == "start":
                self.open_segments[track] = self.store.add_segment(self.sid, track, t, source="lsl")
            elif ev == "end" and track in self.open_segments:
                seg = self.open_segments.pop(track)
                try:
                    self.store.end_segment(seg, t)
                except DataError as e:  # ends before it starts: keep the segment open-ended
                    log.warning("stream %s: marker %r: %s", self.source, track, e)
