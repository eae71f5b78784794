"""Many live sessions in one process: one model per run, hops predicted together.

A clinic runs several rooms at once. :class:`SessionHub` runs any number of
:class:`~symaffect.stream.session.LiveSession` objects from one thread:

1. each round pulls what arrived on every session's connection without waiting
   (:meth:`LiveSession.step` with timeout 0) and feeds it to that session's pipeline;
   the hops that completed wait, prepared (window, quality, coverage);
2. the hops that fell due in this round, across all sessions, are predicted together:
   one forward pass per model and per :attr:`SessionHub.max_batch` windows
   (:func:`~symaffect.stream.pipeline.predict_windows`; sessions on the same run share
   one loaded model, :meth:`Predictor.share`), each session keeping its own calibration;
3. each forward pass's hops are stored in one transaction (:meth:`SessionStore.batch`),
   then counted (latency = clock after the commit minus the timestamp of the window's
   last sample) and published, before the next pass of the round;
4. the vital signs and signal strips that are due are computed by a worker thread, off
   the loop (:meth:`LiveSession.update_signals`; sessions take turns).

``batched=False`` predicts every hop with its own model call (the one-call-per-session
design), for comparison: everything else is the same.

Outages do not hold the round: a session whose source falls silent or is lost handles
it (waiting, reconnecting) in a thread of its own while the others go on.

Nothing waits for a batch to fill: a round predicts what is due now, so a lone hop is
never delayed; batching happens when hops fall due together (sessions started together,
or hops that piled up while the previous round ran).
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from symaffect.errors import DataError
from symaffect.spec import MODALITIES
from symaffect.stream.pipeline import (
    HopResult,
    PendingHop,
    WindowInput,
    predict_windows,
)
from symaffect.stream.session import LiveSession, StreamStats
from symaffect.stream.store import SessionStore

log = logging.getLogger(__name__)

CUDA_MAX_BATCH = 32
"""Default most windows per forward pass on a CUDA device (see :class:`SessionHub`)."""

IDLE_SLEEP_S = 0.002
"""Sleep after a round in which nothing arrived (s)."""


@dataclass
class RoundStats:
    """What the hub's rounds did (for benchmarks).

    Attributes
    ----------
    rounds : int
        Rounds with at least one hop.
    forward_passes : int
        Model calls.
    hops : int
        Hops predicted.
    largest_batch : int
    """

    rounds: int = 0
    forward_passes: int = 0
    hops: int = 0
    largest_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return self.hops / self.forward_passes if self.forward_passes else 0.0


class SessionHub:
    """Run many live sessions in one thread, predicting their hops in batches.

    Parameters
    ----------
    store : SessionStore
        The store every session writes to.
    sessions : sequence of LiveSession
        More can be added with :meth:`add` before :meth:`run`.
    batched : bool
        Predict the hops due in a round together (False: one model call per hop).
    max_batch : int or None
        Most windows in one forward pass (larger rounds are split). None chooses by
        device: 1 on the CPU, :data:`CUDA_MAX_BATCH` on CUDA. On a CPU a forward pass costs
        the same per window at any batch size (this model is compute-bound; larger batches
        were even slower per window, out of cache), so batching gains nothing there and a
        batch's first hop would wait for its last (``benchmarks/bench_stream.py``: 32
        sessions started together, p50 281 ms batched by 16 against 167 ms one call per
        hop). A GPU runs a batch in about the time of one window; that default is not
        measured here.
    stop : threading.Event or None
        Set it to end every session.

    Attributes
    ----------
    rounds : RoundStats
    """

    def __init__(
        self,
        store: SessionStore,
        sessions: Sequence[LiveSession] = (),
        *,
        batched: bool = True,
        max_batch: int | None = None,
        stop: threading.Event | None = None,
    ):
        if max_batch is not None and max_batch < 1:
            raise DataError("max_batch", f"must be at least 1, got {max_batch}")
        self.store = store
        self.batched = batched
        self.max_batch = max_batch
        self.stop = stop or threading.Event()
        self.sessions: list[LiveSession] = []
        self.rounds = RoundStats()
        self._signals: queue.Queue = queue.Queue()
        for s in sessions:
            self.add(s)

    def add(self, session: LiveSession) -> None:
        """Run ``session`` in this hub (its outages are handled in the background)."""
        if session.store is not self.store:
            raise DataError("session", "a hub's sessions must write to the hub's store")
        session.blocking_outage = False
        self.sessions.append(session)

    def run(self) -> list[StreamStats]:
        """Run every session to its end; their stats, in the order they were added.

        Before the first round the models are warmed up (one forward pass of one window
        and of :attr:`max_batch` windows: the first call of a model is several times
        slower) and the objects alive at start-up are moved out of the garbage
        collector's reach (``gc.freeze``: a full collection over the loaded model and
        libraries held the loop for 170 ms). The vital signs and signal strips due at
        each round are computed by a worker thread, off the loop.
        """
        if self.max_batch is None:
            cuda = any(str(s.predictor.device).startswith("cuda") for s in self.sessions)
            self.max_batch = CUDA_MAX_BATCH if cuda else 1
        self._warm_up()
        gc.collect()
        gc.freeze()
        worker = threading.Thread(target=self._signals_worker, daemon=True, name="hub-signals")
        worker.start()
        try:
            self._loop()
        finally:
            self._signals.put(None)
            worker.join()
            gc.unfreeze()
        return [s.stats for s in self.sessions]

    def _warm_up(self) -> None:
        seen = set()
        for s in self.sessions:
            pr = s.predictor
            if id(pr.model) in seen:
                continue
            seen.add(id(pr.model))
            mods = tuple(s.pipe.groups) or pr.modalities
            x = {m: np.zeros((MODALITIES[m].n_chans, pr.n_times), np.float32) for m in mods}
            for n in sorted({1, self.max_batch if self.batched else 1}):
                predict_windows([(pr.share(), WindowInput(x, 0.0))] * n)

    def _signals_worker(self) -> None:
        """Compute and store the vital signs and strips the rounds queued (until None)."""
        while (item := self._signals.get()) is not None:
            session, results = item
            try:
                session.update_signals(results)
            except Exception:  # noqa: BLE001 - a vital sign must never end the sessions
                log.exception("session %d: vital signs not updated", session.sid)

    def _loop(self) -> None:
        active = list(self.sessions)
        while active:
            if self.stop.is_set():
                for s in active:
                    s.stop.set()
            over = [s for s in active if not s.step(0.0)]
            pending = [(s, h) for s in active for h in s.take_pending()]
            if pending:
                self._predict_and_store(pending)
            for s in over:
                s.end()
                active.remove(s)
            if not pending and not over:
                time.sleep(IDLE_SLEEP_S)

    def _predict_and_store(self, pending: list[tuple[LiveSession, PendingHop]]) -> None:
        """Predict the round's hops, in order, :attr:`max_batch` windows per forward pass
        (one when not batched); each pass's hops are stored in one transaction and
        published before the next pass starts, so the first hops of a busy round do not
        wait for the last."""
        size = self.max_batch if self.batched else 1
        self.rounds.rounds += 1
        part: list[tuple[LiveSession, PendingHop]] = []
        n_windows = 0
        for s, h in pending:
            part.append((s, h))
            n_windows += h.window is not None
            if n_windows >= size:
                self._finish(part)
                part, n_windows = [], 0
        if part:
            self._finish(part)

    def _finish(self, part: list[tuple[LiveSession, PendingHop]]) -> None:
        """Predict ``part``'s windows (one forward pass per model), store its hops in one
        transaction, publish them and queue their vital signs."""
        preds: dict[int, object] = {}
        groups: dict[int, list[int]] = {}
        for i, (s, h) in enumerate(part):
            if h.window is not None:
                groups.setdefault(id(s.predictor.model), []).append(i)
        for idx in groups.values():
            out = predict_windows([(part[i][0].predictor, part[i][1].window) for i in idx])
            self.rounds.forward_passes += 1
            self.rounds.largest_batch = max(self.rounds.largest_batch, len(idx))
            self.rounds.hops += len(idx)
            preds.update(zip(idx, out))
        results: dict[LiveSession, list[HopResult]] = {}
        for i, (s, h) in enumerate(part):
            results.setdefault(s, []).append(h.finish(preds.get(i)))
        with self.store.batch():
            stored = {s: s.store_hops(rs) for s, rs in results.items()}
        for s, st in stored.items():
            s.published(st)
        for s, rs in results.items():  # vital signs and strips: by the worker, off the loop
            self._signals.put((s, rs))
