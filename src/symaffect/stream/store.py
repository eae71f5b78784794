"""SQLite session store: sessions, music segments, per-hop predictions, quality flags,
the listener's own ratings of segments and their calibrations.

Durability
----------
The database runs in WAL mode with ``synchronous=NORMAL`` and every prediction is
committed in its own transaction. A committed WAL transaction survives a *process* kill
(SIGKILL, crash): the data is in the OS page cache / WAL file and is replayed on the next
open. So killing the streamer mid-session loses at most the hop being written.
``synchronous=NORMAL`` can lose the last transactions on *power loss* or an OS crash
(never corrupting the file); pass ``synchronous="FULL"`` for that guarantee at the cost
of one fsync per hop.

Concurrency
-----------
One writer (the streamer) and any number of readers (the dashboard) in the same or in
other processes. Each thread gets its own connection (``sqlite3`` connections must not
be shared across threads); writes within a process are serialised by a lock; WAL lets
readers run while the writer writes. ``busy_timeout`` absorbs short lock waits.

Times
-----
``started_at`` / ``ended_at`` / ``created_at`` are wall-clock Unix times (float seconds,
UTC). ``t`` of predictions, quality rows and segments is *stream time*: seconds since the
start of the session's signal (for a prediction, the time of the window's last sample).

Rows (what the read methods return)
-----------------------------------
Frozen dataclasses, validated on reading (a corrupt row is a :class:`DataError` naming the
file, the table, the row and the column): :class:`SessionRow`, :class:`SegmentRow`,
:class:`PredictionRow`, :class:`QualityRow`, :class:`SegmentRatingRow`,
:class:`CalibrationRow` and :class:`ActivationRow`; the per-hop embeddings come back as
one :class:`HopEmbeddings`. ``row.to_dict()`` gives the row as plain JSON-able values
under its column names (the dashboard's JSON).

Listener calibration (schema v3)
--------------------------------
Every prediction may carry the fused embedding its heads read (table ``hop_embeddings``,
a float32 BLOB per hop, written in the prediction's transaction), which model produced
it (``predictions.model_label``: ``"base model"`` or ``"calibrated (bias, K = 3)"``, and
``predictions.calibration_id``). The therapist's entry of the listener's own valence /
arousal / liking (1-9) for a segment is a ``segment_ratings`` row; re-rating a segment
supersedes the current row (``superseded_at``) and adds a new one, so the history is
kept. A fitted calibration is a ``calibrations`` row under the listener's pseudonym
(``Calibration.to_dict()`` as JSON, the base model's path and SHA-256); activating one
for a session appends a ``calibration_activations`` row (``calibration_id`` NULL: back to
the base model), which the live session polls once per hop.

Vital signs and signal strips (schema v4)
-----------------------------------------
The live path computes vital signs from the raw window every few seconds
(:mod:`symaffect.stream.physio`: heart rate and PPG quality, breathing rate, skin
conductance responses, each with a plausibility status); each is a ``vitals`` row. The
latest short raw-signal strip of each modality (for checking electrodes) is one
``signal_strips`` row per (session, modality), replaced at each update (a float32 BLOB).
``SessionRow.stream_seconds`` is the stream time of the session's last stored hop.

Batches
-------
:meth:`SessionStore.batch` groups the writes of many hops (of many sessions) into one
transaction: one commit instead of one per row. A process kill then loses at most the
batch being written.

Schema versions
---------------
``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` is the ordered list
of migration functions (index ``i`` upgrades version ``i`` to ``i + 1``). Opening a
database runs the missing migrations, each in one transaction. A database newer than this
code is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from symaffect.errors import DataError
from symaffect.extras import require
from symaffect.spec import QUADRANT_CODES
from symaffect.stream.prediction import Prediction, predictions_frame, rating_spreads

log = logging.getLogger(__name__)

SEGMENT_SOURCES = ("lsl", "api")


def default_db_path() -> Path:
    """``$SYMAFFECT_HOME/sessions.db``, default ``~/.local/share/symaffect/sessions.db``."""
    home = os.environ.get("SYMAFFECT_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "symaffect"
    return base / "sessions.db"


# --- migrations ----------------------------------------------------------------------


def _script(con: sqlite3.Connection, sql: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction.

    (``executescript`` would COMMIT first, breaking the migration's transaction.)
    """
    for stmt in sql.split(";"):
        if stmt.strip():
            con.execute(stmt)


def _v0_to_v1(con: sqlite3.Connection) -> None:
    """Initial schema."""
    _script(
        con,
        """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            participant TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            model TEXT NOT NULL,
            run_dir TEXT,
            meta TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE segments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            track TEXT NOT NULL,
            start REAL NOT NULL,
            "end" REAL,
            source TEXT NOT NULL DEFAULT 'api'
        );
        CREATE TABLE predictions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            t REAL NOT NULL,
            valence REAL,
            arousal REAL,
            liking REAL,
            probabilities TEXT NOT NULL,
            quadrant TEXT,
            confidence REAL NOT NULL,
            modalities_used TEXT NOT NULL,
            latency_ms REAL
        );
        CREATE TABLE quality (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            t REAL NOT NULL,
            modality TEXT NOT NULL,
            flag TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        """
    )


def _v1_to_v2(con: sqlite3.Connection) -> None:
    """Per-prediction quality flags and a wall-clock write time; read indexes."""
    _script(
        con,
        """
        ALTER TABLE predictions ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE predictions ADD COLUMN created_at REAL;
        CREATE INDEX IF NOT EXISTS predictions_session_t ON predictions(session_id, t);
        CREATE INDEX IF NOT EXISTS quality_session_t ON quality(session_id, t);
        CREATE INDEX IF NOT EXISTS segments_session ON segments(session_id, start);
        """
    )


def _v2_to_v3(con: sqlite3.Connection) -> None:
    """Listener calibration: per-hop embeddings, segment ratings, calibrations, their
    activations, and which model produced each prediction (existing rows: NULL)."""
    _script(
        con,
        """
        CREATE TABLE calibrations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            participant TEXT NOT NULL,
            session_id INTEGER REFERENCES sessions(id),
            created_at REAL NOT NULL,
            method TEXT NOT NULL,
            k INTEGER NOT NULL,
            label TEXT NOT NULL,
            calibration TEXT NOT NULL,
            base_model TEXT,
            base_digest TEXT
        );
        CREATE INDEX calibrations_participant ON calibrations(participant, id);
        CREATE TABLE calibration_activations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            calibration_id INTEGER REFERENCES calibrations(id),
            activated_at REAL NOT NULL
        );
        CREATE INDEX calibration_activations_session ON calibration_activations(session_id, id);
        CREATE TABLE segment_ratings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
            valence REAL CHECK (valence IS NULL OR (valence >= 1 AND valence <= 9)),
            arousal REAL CHECK (arousal IS NULL OR (arousal >= 1 AND arousal <= 9)),
            liking REAL CHECK (liking IS NULL OR (liking >= 1 AND liking <= 9)),
            created_at REAL NOT NULL,
            superseded_at REAL,
            CHECK (valence IS NOT NULL OR arousal IS NOT NULL OR liking IS NOT NULL)
        );
        CREATE UNIQUE INDEX segment_ratings_current ON segment_ratings(segment_id) WHERE superseded_at IS NULL;
        CREATE INDEX segment_ratings_session ON segment_ratings(session_id);
        CREATE TABLE hop_embeddings (
            prediction_id INTEGER PRIMARY KEY REFERENCES predictions(id) ON DELETE CASCADE,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            t REAL NOT NULL,
            dim INTEGER NOT NULL,
            z BLOB NOT NULL
        );
        CREATE INDEX hop_embeddings_session_t ON hop_embeddings(session_id, t);
        ALTER TABLE predictions ADD COLUMN model_label TEXT;
        ALTER TABLE predictions ADD COLUMN calibration_id INTEGER REFERENCES calibrations(id);
        """
    )


def _v3_to_v4(con: sqlite3.Connection) -> None:
    """Vital signs per update and the latest raw-signal strip per modality."""
    _script(
        con,
        """
        CREATE TABLE vitals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            t REAL NOT NULL,
            modality TEXT NOT NULL,
            channel TEXT NOT NULL,
            name TEXT NOT NULL,
            value REAL,
            unit TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX vitals_session_t ON vitals(session_id, t);
        CREATE TABLE signal_strips (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            modality TEXT NOT NULL,
            t REAL NOT NULL,
            sfreq REAL NOT NULL,
            channels TEXT NOT NULL,
            n_times INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (session_id, modality)
        )
        """
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v0_to_v1, _v1_to_v2, _v2_to_v3, _v3_to_v4]
"""Ordered migrations; ``MIGRATIONS[i]`` upgrades schema version ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)


def migrate_check(version: int, source: str | Path | None) -> None:
    """Raise DataError (naming ``source``) for a schema version this code cannot use."""
    if version > SCHEMA_VERSION:
        raise DataError(
            source,
            f"session database schema v{version} is newer than this code (v{SCHEMA_VERSION}): "
            "upgrade symaffect, or use another --db",
        )
    if version < 0:
        raise DataError(source, f"session database schema v{version} is not a valid version")


def migrate(con: sqlite3.Connection, *, target: int = SCHEMA_VERSION, source: str | Path | None = None) -> int:
    """Run the migrations from the database's ``user_version`` up to ``target``.

    Each migration runs in its own transaction together with the version bump.

    Parameters
    ----------
    con : sqlite3.Connection
    target : int
    source : str or Path, optional
        The database file, named in errors.

    Returns
    -------
    int
        The schema version after migrating.

    Raises
    ------
    DataError
        A schema newer than this code (or a negative version), naming ``source``.
    """
    version = con.execute("PRAGMA user_version").fetchone()[0]
    migrate_check(version, source)
    for v in range(version, target):
        log.info("migrating session database v%d -> v%d", v, v + 1)
        con.execute("BEGIN IMMEDIATE")
        try:
            # re-check under the write lock: another process may have migrated meanwhile
            if con.execute("PRAGMA user_version").fetchone()[0] != v:
                con.execute("ROLLBACK")
                continue
            MIGRATIONS[v](con)
            con.execute(f"PRAGMA user_version = {v + 1}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return con.execute("PRAGMA user_version").fetchone()[0]


# --- rows ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and mappings copied (JSON-able, nothing shared)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Row:
    """Shared by the row dataclasses: :meth:`to_dict`."""

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON-able values, keyed by column name in column order."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class SessionRow(_Row):
    """One monitored session.

    Attributes
    ----------
    id : int
    participant : str
        A pseudonym.
    started_at, ended_at : float, float or None
        Wall-clock Unix times (s, UTC); ``ended_at`` is None while the session is open
        (or after the streamer was killed).
    model : str
    run_dir : str or None
    meta : dict
        JSON-able extras (source stream, hop, window, ...).
    n_predictions : int
    stream_seconds : float
        Stream time of the last stored hop (a prediction or a quality row), 0 before the
        first: the session's length as the signal counts it (a 2x replay of 3 min is
        3 min here, 1.5 min of wall clock).
    """

    id: int
    participant: str
    started_at: float
    ended_at: float | None
    model: str
    run_dir: str | None
    meta: dict[str, Any]
    n_predictions: int
    stream_seconds: float = 0.0


@dataclass(frozen=True)
class SegmentRow(_Row):
    """One music segment: ``start`` / ``end`` in stream time (s); ``end`` None while open."""

    id: int
    session_id: int
    track: str
    start: float
    end: float | None
    source: str


@dataclass(frozen=True)
class PredictionRow(_Row):
    """One stored prediction (one hop); the fields of :class:`Prediction` plus row data.

    Attributes
    ----------
    id, session_id : int
    t : float
        Stream time of the window's last sample (s).
    valence, arousal, liking : float or None
        Expected ratings on 1-9; None for a task the model does not predict.
    probabilities : dict of str to tuple of float
        Per-task class probabilities.
    quadrant : str or None
        One of :data:`symaffect.spec.QUADRANT_CODES`; None when the model predicts no
        quadrant (or for a row written without one).
    confidence : float
        In [0, 1].
    modalities_used, flags : tuple of str
    latency_ms : float or None
    created_at : float or None
        Wall-clock write time (None for rows of schema v1).
    model_label : str or None
        Which model produced it (``"base model"``, ``"calibrated (bias, K = 3)"``); None
        for rows written before schema v3 (not recorded).
    calibration_id : int or None
        The :class:`CalibrationRow` that produced it, if any.
    """

    id: int
    session_id: int
    t: float
    valence: float | None
    arousal: float | None
    liking: float | None
    probabilities: dict[str, tuple[float, ...]]
    quadrant: str | None
    confidence: float
    modalities_used: tuple[str, ...]
    latency_ms: float | None
    flags: tuple[str, ...]
    created_at: float | None
    model_label: str | None = None
    calibration_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row's columns plus ``spread``: the rating's standard deviation per task
        (:func:`symaffect.stream.prediction.rating_spreads`)."""
        return {**super().to_dict(), "spread": rating_spreads(self.probabilities)}


@dataclass(frozen=True)
class QualityRow(_Row):
    """One quality flag: ``modality`` may be ``"all"`` / ``"stream"``; ``t`` in stream time."""

    id: int
    session_id: int
    t: float
    modality: str
    flag: str
    detail: str


VITAL_STATUSES: tuple[str, ...] = ("ok", "implausible", "poor", "unknown")
"""What a vital sign's ``status`` may say (:mod:`symaffect.stream.physio`)."""


@dataclass(frozen=True)
class VitalRow(_Row):
    """One vital sign of one channel at stream time ``t`` (:class:`symaffect.stream.physio.Vital`).

    Attributes
    ----------
    id, session_id : int
    t : float
        Stream time of the window's last sample (s).
    modality, channel, name : str
        e.g. ``"peripheral"``, ``"BVP"``, ``"heart_rate"``.
    value : float or None
        None when it could not be computed from the window.
    unit : str
    status : str
        One of :data:`VITAL_STATUSES`.
    detail : str
        Why, in plain words (empty when ok).
    """

    id: int
    session_id: int
    t: float
    modality: str
    channel: str
    name: str
    value: float | None
    unit: str
    status: str
    detail: str


@dataclass(frozen=True)
class StripRow:
    """The latest raw-signal strip of one modality (:class:`symaffect.stream.physio.Strip`).

    Attributes
    ----------
    session_id : int
    modality : str
    t : float
        Stream time of the strip's last sample (s).
    sfreq : float
        Rate of ``values`` (Hz).
    channels : tuple of str
    values : ndarray of float32, shape (len(channels), n)
        Unfiltered signal in its own units (NaN where samples were missing).
    """

    session_id: int
    modality: str
    t: float
    sfreq: float
    channels: tuple[str, ...]
    values: np.ndarray

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """JSON-able: ``values`` as nested lists (``digits`` significant digits; NaN -> None)."""
        vals = [[None if not math.isfinite(v) else float(f"{v:.{digits}g}") for v in row.tolist()]
                for row in self.values]
        return {"session_id": self.session_id, "modality": self.modality, "t": self.t, "sfreq": self.sfreq,
                "channels": list(self.channels), "values": vals}


RATINGS: tuple[str, ...] = ("valence", "arousal", "liking")
"""The listener's own ratings of a segment (DEAP's 1-9 self-assessment scales)."""
RATING_RANGE: tuple[float, float] = (1.0, 9.0)


@dataclass(frozen=True)
class SegmentRatingRow(_Row):
    """The listener's own ratings of one segment, as the therapist entered them.

    Attributes
    ----------
    id, session_id, segment_id : int
    valence, arousal, liking : float or None
        In [1, 9]; None for a rating not given (at least one is given).
    created_at : float
        Wall-clock time of the entry.
    superseded_at : float or None
        When a re-rating replaced it (None: the current rating).
    """

    id: int
    session_id: int
    segment_id: int
    valence: float | None
    arousal: float | None
    liking: float | None
    created_at: float
    superseded_at: float | None

    def given(self) -> dict[str, float]:
        """The ratings that were given, ``{name: value}``."""
        return {k: getattr(self, k) for k in RATINGS if getattr(self, k) is not None}


@dataclass(frozen=True)
class CalibrationRow(_Row):
    """A listener's calibration, stored under their pseudonym.

    Attributes
    ----------
    id : int
    participant : str
        The listener's pseudonym.
    session_id : int or None
        The session it was fitted in.
    created_at : float
    method : str
    k : int
        Number of rated segments it was fitted on.
    label : str
        ``describe(calibration)``, e.g. ``"calibrated (bias, K = 3)"``.
    calibration : dict
        ``Calibration.to_dict()`` (shift and heads).
    base_model : str or None
        Path of the base model (checkpoint) it calibrates.
    base_digest : str or None
        SHA-256 of that checkpoint file (a calibration only fits the model it was fitted on).
    """

    id: int
    participant: str
    session_id: int | None
    created_at: float
    method: str
    k: int
    label: str
    calibration: dict[str, Any]
    base_model: str | None
    base_digest: str | None

    def summary(self) -> dict[str, Any]:
        """:meth:`to_dict` without the weights (the dashboard's list)."""
        d = self.to_dict()
        d.pop("calibration")
        d["tracks"] = list(self.calibration.get("tracks") or [])
        return d


@dataclass(frozen=True)
class ActivationRow(_Row):
    """A calibration activated for a session (``calibration_id`` None: the base model).

    ``label`` is the calibration's label (``"base model"`` for None).
    """

    id: int
    session_id: int
    calibration_id: int | None
    activated_at: float
    label: str


@dataclass(frozen=True)
class HopEmbeddings:
    """A session's stored per-hop fused embeddings, by time.

    Attributes
    ----------
    prediction_id : ndarray of int64, shape (n,)
    t : ndarray of float64, shape (n,)
        Stream time of each hop (s).
    z : ndarray of float32, shape (n, D)
    """

    prediction_id: np.ndarray
    t: np.ndarray
    z: np.ndarray

    def __len__(self) -> int:
        return int(self.t.size)


def check_rating(name: str, value: Any) -> float | None:
    """One rating a user typed: None, or a finite number in [1, 9].

    Raises
    ------
    DataError
        One line naming the rating: not a number (a string, a bool), NaN / infinite, or
        outside [1, 9].
    """
    if value is None:
        return None
    lo, hi = RATING_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DataError(name, f"must be a number from {lo:g} to {hi:g}, got {str(value)[:20]!r}")
    v = float(value)
    if not math.isfinite(v):
        raise DataError(name, f"must be a number from {lo:g} to {hi:g}, got {v}")
    if not lo <= v <= hi:
        raise DataError(name, f"must be from {lo:g} to {hi:g}, got {v:g}")
    return v


# --- the store -----------------------------------------------------------------------


class SessionStore:
    """The session database (see the module docstring for durability and rows).

    Parameters
    ----------
    path : str or Path or None
        Database file; None -> :func:`default_db_path`. Parent folders are created.
    synchronous : {"NORMAL", "FULL"}
        SQLite ``synchronous`` level (NORMAL survives process kills, FULL power loss).
    timeout : float
        Seconds to wait for a lock held by another connection.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        synchronous: str = "NORMAL",
        timeout: float = 10.0,
    ):
        self.path = Path(path) if path is not None else default_db_path()
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise DataError("synchronous", f"must be NORMAL or FULL, got {synchronous!r}")
        self._synchronous = synchronous.upper()
        self._timeout = float(timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        try:
            self.schema_version = migrate(self._con(), source=self.path)
        except sqlite3.DatabaseError as e:
            self.close()
            raise DataError(self.path, f"not a readable session database ({e})") from None
        except BaseException:
            self.close()
            raise

    # connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            # a newer (or foreign) database is refused before anything is written to it
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION or version < 0:
                con.close()
                migrate_check(version, self.path)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(f"PRAGMA synchronous={self._synchronous}")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        except sqlite3.DatabaseError as e:
            raise DataError(self.path, f"cannot open session database ({e})") from None
        con.row_factory = sqlite3.Row
        return con

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Run a query; a corrupt or unreadable file is a DataError naming it."""
        try:
            return self._con().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as e:
            raise DataError(self.path, f"cannot read session database ({e})") from None

    def _con(self) -> sqlite3.Connection:
        if self._closed:
            raise DataError(self.path, "session store is closed")
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._connect()
            self._local.con = con
            with self._all_lock:
                self._all.append(con)
        return con

    def _write(self, sql: str, params: tuple = ()) -> int:
        """Run one statement in its own committed transaction; return lastrowid."""
        with self._transaction() as con:
            cur = con.execute(sql, params)
        return int(cur.lastrowid or 0)

    @contextlib.contextmanager
    def batch(self) -> Iterator[SessionStore]:
        """Group every write in the block (this thread) into one transaction.

        Used by the multi-session server to commit the hops of a whole round (all
        sessions) at once. Committed when the block ends; rolled back (none of the
        block's rows written) when it raises. Nested batches join the outer one.
        """
        if getattr(self._local, "batch", False):
            yield self
            return
        with self._transaction():
            self._local.batch = True
            try:
                yield self
            finally:
                self._local.batch = False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): committed when the block ends,
        rolled back (nothing written) when it raises. Inside :meth:`batch`, part of the
        batch's transaction."""
        con = self._con()
        if getattr(self._local, "batch", False):
            yield con
            return
        with self._write_lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close every connection this store opened (idempotent)."""
        with self._all_lock:
            for con in self._all:
                try:
                    con.close()
                except sqlite3.Error:  # pragma: no cover - closing a broken connection
                    pass
            self._all.clear()
        self._closed = True

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # sessions -------------------------------------------------------------------------

    def create_session(
        self,
        participant: str,
        model: str,
        run_dir: str | Path | None = None,
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Start a session now; return its id.

        Parameters
        ----------
        participant : str
            A pseudonym (never a real name: the store is not encrypted).
        model : str
            The model's registry name (or any label).
        run_dir : str or Path or None
            The training run / checkpoint used.
        meta : dict or None
            Any JSON-able extra (source stream, hop, window, ...).
        """
        if not isinstance(participant, str) or not participant.strip():
            raise DataError("participant", "must be a non-empty pseudonym")
        return self._write(
            "INSERT INTO sessions (participant, started_at, model, run_dir, meta) VALUES (?,?,?,?,?)",
            (
                participant.strip(),
                time.time(),
                str(model),
                None if run_dir is None else str(run_dir),
                json.dumps(meta or {}, default=str),
            ),
        )

    def end_session(self, session_id: int) -> None:
        """Mark the session ended now (no-op if already ended)."""
        self._check_session(session_id)
        self._write(
            "UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
            (time.time(), int(session_id)),
        )

    def update_meta(self, session_id: int, **items: Any) -> None:
        """Merge ``items`` into the session's ``meta``."""
        meta = {**self.session(session_id).meta, **items}
        self._write(
            "UPDATE sessions SET meta = ? WHERE id = ?", (json.dumps(meta, default=str), int(session_id))
        )

    def sessions(self) -> list[SessionRow]:
        """All sessions, newest first."""
        rows = self._read(
            "SELECT s.*, " + _SESSION_COUNTS +
            " FROM sessions s ORDER BY s.id DESC"
        )
        return [_session_row(r, self.path) for r in rows]

    def session(self, session_id: int) -> SessionRow:
        """One session row; DataError if there is none with this id."""
        rows = self._read(
            "SELECT s.*, " + _SESSION_COUNTS +
            " FROM sessions s WHERE s.id = ?",
            (int(session_id),),
        )
        if not rows:
            raise DataError("session", f"no session with id {session_id}")
        return _session_row(rows[0], self.path)

    def sessions_frame(self):
        """:meth:`sessions` as a :class:`pandas.DataFrame` (:func:`to_dataframe`)."""
        return to_dataframe(self.sessions(), SessionRow)

    def _check_session(self, session_id: int) -> None:
        if not self._read("SELECT 1 FROM sessions WHERE id = ?", (int(session_id),)):
            raise DataError("session", f"no session with id {session_id}")

    # segments -------------------------------------------------------------------------

    def add_segment(
        self,
        session_id: int,
        track: str,
        start: float,
        end: float | None = None,
        source: str = "api",
    ) -> int:
        """Add a music segment marker (stream time, seconds); return its id."""
        if source not in SEGMENT_SOURCES:
            raise DataError("source", f"must be one of {SEGMENT_SOURCES}, got {source!r}")
        if end is not None and end < start:
            raise DataError("end", f"segment end {end} is before its start {start}")
        self._check_session(session_id)
        return self._write(
            'INSERT INTO segments (session_id, track, start, "end", source) VALUES (?,?,?,?,?)',
            (int(session_id), str(track), float(start), None if end is None else float(end), source),
        )

    def end_segment(self, segment_id: int, end: float) -> None:
        """Set the end (stream time) of an open segment."""
        rows = self._read("SELECT start FROM segments WHERE id = ?", (int(segment_id),))
        if not rows:
            raise DataError("segment", f"no segment with id {segment_id}")
        row = rows[0]
        if end < row["start"]:
            raise DataError("end", f"segment end {end} is before its start {row['start']}")
        self._write('UPDATE segments SET "end" = ? WHERE id = ?', (float(end), int(segment_id)))

    def segments(self, session_id: int) -> list[SegmentRow]:
        """The session's segments, by start time."""
        rows = self._read("SELECT * FROM segments WHERE session_id = ? ORDER BY start, id", (int(session_id),))
        return [_segment_row(r, self.path) for r in rows]

    # predictions ----------------------------------------------------------------------

    def add_prediction(self, session_id: int, pred: Prediction) -> int:
        """Store one prediction, committed in its own transaction; return its row id.

        The prediction's ``model_label`` and ``calibration_id`` go with it, and its
        ``embedding`` (when it has one) into ``hop_embeddings``, in the same transaction.
        """
        z = None
        if pred.embedding is not None:
            z = np.ascontiguousarray(pred.embedding, dtype="<f4").reshape(-1)
            if z.size == 0 or not np.all(np.isfinite(z)):
                raise DataError("embedding", "must be a non-empty finite vector")
        with self._transaction() as con:
            cur = con.execute(
                "INSERT INTO predictions (session_id, t, valence, arousal, liking, probabilities,"
                " quadrant, confidence, modalities_used, latency_ms, flags, created_at, model_label,"
                " calibration_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    int(session_id),
                    float(pred.t),
                    pred.valence,
                    pred.arousal,
                    pred.liking,
                    json.dumps(pred.probabilities),
                    pred.quadrant,
                    float(pred.confidence),
                    json.dumps(list(pred.modalities_used)),
                    None if pred.latency_ms is None else float(pred.latency_ms),
                    json.dumps(list(pred.flags)),
                    time.time(),
                    None if pred.model_label is None else str(pred.model_label),
                    None if pred.calibration_id is None else int(pred.calibration_id),
                ),
            )
            pid = int(cur.lastrowid or 0)
            if z is not None:
                con.execute(
                    "INSERT INTO hop_embeddings (prediction_id, session_id, t, dim, z) VALUES (?,?,?,?,?)",
                    (pid, int(session_id), float(pred.t), int(z.size), z.tobytes()),
                )
        return pid

    def latest_prediction(self, session_id: int) -> PredictionRow | None:
        """The session's latest prediction (None when it has none)."""
        rows = self._read(
            "SELECT * FROM predictions WHERE session_id = ? ORDER BY t DESC, id DESC LIMIT 1", (int(session_id),)
        )
        return _prediction_row(rows[0], self.path) if rows else None

    def embeddings(self, session_id: int) -> HopEmbeddings:
        """The session's stored per-hop embeddings, by time (empty when none was stored).

        Raises
        ------
        DataError
            A corrupt row (a blob whose length is not ``dim`` float32 values, not finite,
            or a dimension that differs from the session's other hops).
        """
        rows = self._read(
            "SELECT prediction_id, t, dim, z FROM hop_embeddings WHERE session_id = ? ORDER BY t, prediction_id",
            (int(session_id),),
        )
        ids, ts, zs = [], [], []
        dim = None
        for r in rows:
            d = dict(r)
            d["id"] = d["prediction_id"]
            blob, n = d["z"], d["dim"]
            if not isinstance(n, int) or n < 1 or not isinstance(blob, bytes) or len(blob) != 4 * n:
                raise _bad(self.path, "hop_embeddings", d, "z", f"is not {n!r} float32 values")
            if dim is not None and n != dim:
                raise _bad(self.path, "hop_embeddings", d, "dim", f"is {n}, other hops have {dim}")
            dim = n
            z = np.frombuffer(blob, dtype="<f4")
            if not np.all(np.isfinite(z)):
                raise _bad(self.path, "hop_embeddings", d, "z", "is not finite")
            ids.append(d["prediction_id"])
            ts.append(_number(self.path, "hop_embeddings", d, "t"))
            zs.append(z)
        return HopEmbeddings(
            prediction_id=np.asarray(ids, dtype=np.int64),
            t=np.asarray(ts, dtype=np.float64),
            z=np.stack(zs).astype(np.float32) if zs else np.zeros((0, 0), dtype=np.float32),
        )

    def predictions(self, session_id: int, since_t: float | None = None) -> list[PredictionRow]:
        """The session's predictions by time; only those with ``t > since_t`` if given."""
        if since_t is None:
            rows = self._read("SELECT * FROM predictions WHERE session_id = ? ORDER BY t, id", (int(session_id),))
        else:
            rows = self._read(
                "SELECT * FROM predictions WHERE session_id = ? AND t > ? ORDER BY t, id",
                (int(session_id), float(since_t)),
            )
        return [_prediction_row(r, self.path) for r in rows]

    def segment(self, segment_id: int) -> SegmentRow:
        """One segment row; DataError if there is none with this id."""
        rows = self._read("SELECT * FROM segments WHERE id = ?", (int(segment_id),))
        if not rows:
            raise DataError("segment", f"no segment with id {segment_id}")
        return _segment_row(rows[0], self.path)

    # the listener's ratings -----------------------------------------------------------

    def rate_segment(
        self,
        session_id: int,
        segment_id: int,
        *,
        valence: float | None = None,
        arousal: float | None = None,
        liking: float | None = None,
    ) -> SegmentRatingRow:
        """Store the listener's own ratings of one segment (1-9; any subset, at least one).

        A segment already rated keeps its earlier rating as history (``superseded_at``
        set) and the new one replaces it, in one transaction.

        Raises
        ------
        DataError
            One line: a rating that is not a number in [1, 9], none given, a segment that
            does not exist or belongs to another session, or a segment still playing (no
            end while its session is open). Nothing is written then.
        """
        given = {k: check_rating(k, v) for k, v in (("valence", valence), ("arousal", arousal), ("liking", liking))}
        if all(v is None for v in given.values()):
            raise DataError("ratings", "give at least one of valence, arousal, liking (1-9)")
        ses = self.session(session_id)
        seg = self.segment(segment_id)
        if seg.session_id != int(session_id):
            raise DataError("segment", f"segment {segment_id} is not in session {session_id}")
        if seg.end is None and ses.ended_at is None:
            raise DataError("segment", f"segment {segment_id} is still playing: rate it once it has ended")
        now = time.time()
        with self._transaction() as con:
            con.execute(
                "UPDATE segment_ratings SET superseded_at = ? WHERE segment_id = ? AND superseded_at IS NULL",
                (now, int(segment_id)),
            )
            cur = con.execute(
                "INSERT INTO segment_ratings (session_id, segment_id, valence, arousal, liking, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (int(session_id), int(segment_id), given["valence"], given["arousal"], given["liking"], now),
            )
            rid = int(cur.lastrowid or 0)
        return _rating_row(self._read("SELECT * FROM segment_ratings WHERE id = ?", (rid,))[0], self.path)

    def segment_ratings(self, session_id: int, *, history: bool = False) -> list[SegmentRatingRow]:
        """The session's current segment ratings, by segment start (``history``: also the
        superseded ones, oldest first per segment)."""
        where = "" if history else " AND r.superseded_at IS NULL"
        rows = self._read(
            "SELECT r.* FROM segment_ratings r JOIN segments g ON g.id = r.segment_id"
            f" WHERE r.session_id = ?{where} ORDER BY g.start, g.id, r.id",
            (int(session_id),),
        )
        return [_rating_row(r, self.path) for r in rows]

    # calibrations ---------------------------------------------------------------------

    def participants(self) -> list[str]:
        """Every pseudonym with a session in the store, sorted."""
        return [r[0] for r in self._read("SELECT DISTINCT participant FROM sessions ORDER BY participant")]

    def has_participant(self, participant: str) -> bool:
        """Whether any session was stored under ``participant``."""
        return bool(self._read("SELECT 1 FROM sessions WHERE participant = ? LIMIT 1", (str(participant),)))

    def add_calibration(
        self,
        participant: str,
        calibration: Mapping[str, Any],
        *,
        method: str,
        k: int,
        label: str,
        session_id: int | None = None,
        base_model: str | None = None,
        base_digest: str | None = None,
        activate: bool = False,
    ) -> int:
        """Store a listener's calibration under their pseudonym; return its id.

        Parameters
        ----------
        participant : str
            The listener's pseudonym.
        calibration : dict
            ``Calibration.to_dict()``.
        method, k, label : str, int, str
            Its method, number of rated segments and ``describe()`` label.
        session_id : int, optional
            The session it was fitted in.
        base_model, base_digest : str, optional
            Path and SHA-256 of the base model's checkpoint.
        activate : bool
            Also activate it for ``session_id``, in the same transaction.
        """
        if not isinstance(participant, str) or not participant.strip():
            raise DataError("participant", "must be a non-empty pseudonym")
        if session_id is not None:
            self._check_session(session_id)
        if activate and session_id is None:
            raise DataError("calibration", "activating needs the session it is for")
        doc = json.dumps(dict(calibration))
        now = time.time()
        with self._transaction() as con:
            cur = con.execute(
                "INSERT INTO calibrations (participant, session_id, created_at, method, k, label, calibration,"
                " base_model, base_digest) VALUES (?,?,?,?,?,?,?,?,?)",
                (participant.strip(), None if session_id is None else int(session_id), now, str(method), int(k),
                 str(label), doc, base_model, base_digest),
            )
            cid = int(cur.lastrowid or 0)
            if activate:
                con.execute(
                    "INSERT INTO calibration_activations (session_id, calibration_id, activated_at) VALUES (?,?,?)",
                    (int(session_id), cid, now),
                )
        return cid

    def calibration(self, calibration_id: int) -> CalibrationRow:
        """One calibration row; DataError if there is none with this id."""
        rows = self._read("SELECT * FROM calibrations WHERE id = ?", (int(calibration_id),))
        if not rows:
            raise DataError("calibration", f"no calibration with id {calibration_id}")
        return _calibration_row(rows[0], self.path)

    def calibrations(self, participant: str) -> list[CalibrationRow]:
        """The listener's stored calibrations, newest first."""
        rows = self._read("SELECT * FROM calibrations WHERE participant = ? ORDER BY id DESC", (str(participant),))
        return [_calibration_row(r, self.path) for r in rows]

    def activate_calibration(self, session_id: int, calibration_id: int | None) -> int:
        """Make ``calibration_id`` (None: the base model) the session's model from its next
        hop on; return the activation's id.

        Raises
        ------
        DataError
            No such session or calibration, or a calibration of another listener.
        """
        ses = self.session(session_id)
        if calibration_id is not None:
            cal = self.calibration(calibration_id)
            if cal.participant != ses.participant:
                raise DataError("calibration", f"calibration {calibration_id} belongs to another listener")
        return self._write(
            "INSERT INTO calibration_activations (session_id, calibration_id, activated_at) VALUES (?,?,?)",
            (int(session_id), None if calibration_id is None else int(calibration_id), time.time()),
        )

    def active_calibration(self, session_id: int) -> ActivationRow | None:
        """The session's latest activation (one indexed query), None when there was none."""
        rows = self._read(
            "SELECT a.*, c.label AS label FROM calibration_activations a"
            " LEFT JOIN calibrations c ON c.id = a.calibration_id"
            " WHERE a.session_id = ? ORDER BY a.id DESC LIMIT 1",
            (int(session_id),),
        )
        return _activation_row(rows[0], self.path) if rows else None

    # quality --------------------------------------------------------------------------

    def add_quality(self, session_id: int, t: float, modality: str, flag: str, detail: str = "") -> int:
        """Store one quality flag (``modality`` may be ``"all"`` / ``"stream"``)."""
        return self._write(
            "INSERT INTO quality (session_id, t, modality, flag, detail) VALUES (?,?,?,?,?)",
            (int(session_id), float(t), str(modality), str(flag), str(detail)),
        )

    def quality(self, session_id: int) -> list[QualityRow]:
        """The session's quality flags, by time."""
        rows = self._read("SELECT * FROM quality WHERE session_id = ? ORDER BY t, id", (int(session_id),))
        return [_quality_row(r, self.path) for r in rows]

    def quality_frame(self, session_id: int):
        """:meth:`quality` as a :class:`pandas.DataFrame` (:func:`to_dataframe`)."""
        return to_dataframe(self.quality(session_id), QualityRow)

    def predictions_frame(self, session_id: int, since_t: float | None = None):
        """:meth:`predictions` as a :class:`pandas.DataFrame` (:func:`to_dataframe`)."""
        return to_dataframe(self.predictions(session_id, since_t), PredictionRow)

    def segments_frame(self, session_id: int):
        """:meth:`segments` as a :class:`pandas.DataFrame` (:func:`to_dataframe`)."""
        return to_dataframe(self.segments(session_id), SegmentRow)

    # vital signs and strips -----------------------------------------------------------

    def add_vitals(self, session_id: int, t: float, vitals: Sequence[Any]) -> None:
        """Store the vital signs computed at stream time ``t`` (one transaction).

        Parameters
        ----------
        session_id : int
        t : float
        vitals : sequence of :class:`symaffect.stream.physio.Vital`
            Anything with ``modality``, ``channel``, ``name``, ``value`` (float or None),
            ``unit``, ``status`` (one of :data:`VITAL_STATUSES`) and ``detail``.
        """
        rows = []
        for v in vitals:
            if v.status not in VITAL_STATUSES:
                raise DataError("vital status", f"must be one of {VITAL_STATUSES}, got {v.status!r}")
            value = None if v.value is None or not math.isfinite(float(v.value)) else float(v.value)
            rows.append((int(session_id), float(t), str(v.modality), str(v.channel), str(v.name), value,
                         str(v.unit), v.status, str(v.detail)))
        if not rows:
            return
        with self._transaction() as con:
            con.executemany(
                "INSERT INTO vitals (session_id, t, modality, channel, name, value, unit, status, detail)"
                " VALUES (?,?,?,?,?,?,?,?,?)", rows)

    def vitals(self, session_id: int, since_t: float | None = None) -> list[VitalRow]:
        """The session's vital signs by time (``t > since_t`` when given)."""
        if since_t is None:
            rows = self._read("SELECT * FROM vitals WHERE session_id = ? ORDER BY t, id", (int(session_id),))
        else:
            rows = self._read("SELECT * FROM vitals WHERE session_id = ? AND t > ? ORDER BY t, id",
                              (int(session_id), float(since_t)))
        return [_vital_row(r, self.path) for r in rows]

    def latest_vitals(self, session_id: int) -> list[VitalRow]:
        """The most recent value of each (channel, vital) of the session, by channel and name."""
        rows = self._read(
            "SELECT v.* FROM vitals v JOIN (SELECT channel, name, MAX(id) AS id FROM vitals"
            " WHERE session_id = ? GROUP BY channel, name) m ON v.id = m.id ORDER BY v.channel, v.name",
            (int(session_id),),
        )
        return [_vital_row(r, self.path) for r in rows]

    def set_strips(self, session_id: int, t: float, strips: Sequence[Any]) -> None:
        """Replace the session's latest raw-signal strip of each modality in ``strips``.

        Parameters
        ----------
        session_id : int
        t : float
            Stream time of the strips' last sample.
        strips : sequence of :class:`symaffect.stream.physio.Strip`
            Anything with ``modality``, ``channels``, ``sfreq`` and ``values``
            (n_channels, n).
        """
        rows = []
        for st in strips:
            vals = np.ascontiguousarray(st.values, dtype="<f4")
            if vals.ndim != 2 or vals.shape[0] != len(st.channels):
                raise DataError("strip", f"{st.modality}: values of shape {vals.shape} for {len(st.channels)} channels")
            rows.append((int(session_id), str(st.modality), float(t), float(st.sfreq),
                         json.dumps(list(st.channels)), int(vals.shape[1]), vals.tobytes()))
        if not rows:
            return
        with self._transaction() as con:
            con.executemany(
                "INSERT OR REPLACE INTO signal_strips (session_id, modality, t, sfreq, channels, n_times, data)"
                " VALUES (?,?,?,?,?,?,?)", rows)

    def strips(self, session_id: int) -> list[StripRow]:
        """The session's latest raw-signal strip per modality, by modality.

        Raises
        ------
        DataError
            A corrupt row (a blob whose length is not channels x n_times float32 values).
        """
        rows = self._read("SELECT * FROM signal_strips WHERE session_id = ? ORDER BY modality", (int(session_id),))
        return [_strip_row(r, self.path) for r in rows]

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a healthy file."""
        return self._read("PRAGMA integrity_check")[0][0]


# --- DataFrames ----------------------------------------------------------------------

_FRAME_TYPES: dict[type, dict[str, str]] = {
    SessionRow: {"id": "int64", "participant": "string", "started_at": "float64", "ended_at": "float64",
                 "model": "string", "run_dir": "string", "meta": "string", "n_predictions": "int64",
                 "stream_seconds": "float64"},
    SegmentRow: {"id": "int64", "session_id": "int64", "track": "string", "start": "float64", "end": "float64",
                 "source": "string"},
    QualityRow: {"id": "int64", "session_id": "int64", "t": "float64", "modality": "string", "flag": "string",
                 "detail": "string"},
}


def to_dataframe(rows: Sequence[Any], row_type: type | None = None):
    """Rows of the store as a :class:`pandas.DataFrame`, one row per row.

    Parameters
    ----------
    rows : sequence of row dataclasses
        All of one type (:meth:`SessionStore.sessions`, :meth:`~SessionStore.predictions`,
        :meth:`~SessionStore.quality`, :meth:`~SessionStore.segments`, or any other row
        type of this module).
    row_type : type, optional
        The rows' type (default: the first row's); gives the columns of an empty list.

    Returns
    -------
    pandas.DataFrame
        :class:`PredictionRow`: ``id``, ``session_id`` (int64), the columns of
        :func:`symaffect.stream.prediction.predictions_frame` (ratings, quadrant,
        confidence, ``spread_<task>``, ``modalities_used`` and ``flags`` joined as in the
        CSV, ``latency_ms``, ``model_label``, ``calibration_id``, ``p_<task>_<k>``) and
        ``created_at`` (float64, Unix s). :class:`SessionRow`: its fields, ``meta`` as a
        JSON string, ``ended_at`` NaN while open. :class:`QualityRow` and
        :class:`SegmentRow`: their fields (numbers int64 / float64, text string). Any
        other row type: the columns of its ``to_dict()``, pandas' own dtypes.

    Raises
    ------
    MissingExtra
        pandas is not installed.
    """
    pd = require("pandas", "a DataFrame of session rows")
    row_type = row_type if row_type is not None else (type(rows[0]) if rows else None)
    if row_type is PredictionRow:
        frame = predictions_frame(rows)
        frame.insert(0, "session_id", pd.array([r.session_id for r in rows], dtype="int64"))
        frame.insert(0, "id", pd.array([r.id for r in rows], dtype="int64"))
        frame["created_at"] = pd.array([math.nan if r.created_at is None else float(r.created_at) for r in rows],
                                       dtype="float64")
        return frame
    if row_type is None:
        return pd.DataFrame()
    cols = [f.name for f in fields(row_type)]
    records = [r.to_dict() for r in rows]
    if row_type is SessionRow:
        for rec in records:
            rec["meta"] = json.dumps(rec["meta"], sort_keys=True)
    frame = pd.DataFrame(records, columns=cols)
    types = _FRAME_TYPES.get(row_type)
    return frame.astype(types) if types else frame


def _bad(path: Path, table: str, r: dict, col: str, problem: str) -> DataError:
    return DataError(path, f"{table} row {r.get('id')}: column {col} {problem} (corrupt row)")


def _json(path: Path, table: str, r: dict, col: str, kind: type, default: str) -> Any:
    """Column ``col`` of row ``r`` decoded from JSON; it must be a ``kind``."""
    text = r.get(col)
    text = default if text is None else text
    if not isinstance(text, (str, bytes)):
        raise _bad(path, table, r, col, f"holds a {type(text).__name__}, not JSON text")
    try:
        val = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _bad(path, table, r, col, f"is not valid JSON ({type(e).__name__}: {str(e)[:60]})") from None
    if not isinstance(val, kind):
        raise _bad(path, table, r, col, f"holds a {type(val).__name__}, not a {kind.__name__}")
    return val


def _number(path: Path, table: str, r: dict, col: str, *, optional: bool = False) -> float | None:
    """Column ``col`` as a float (finite unless ``optional``, which also allows NULL)."""
    v = r.get(col)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (optional or math.isfinite(v)):
        raise _bad(path, table, r, col, f"holds {str(v)[:40]!r}, not a {'' if optional else 'finite '}number")
    return float(v)


def _text(path: Path, table: str, r: dict, col: str, *, optional: bool = False) -> str | None:
    """Column ``col`` as text (``optional`` also allows NULL)."""
    v = r.get(col)
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise _bad(path, table, r, col, "is not text")
    return v


def _str_tuple(path: Path, table: str, r: dict, col: str) -> tuple[str, ...]:
    val = _json(path, table, r, col, list, "[]")
    if not all(isinstance(x, str) for x in val):
        raise _bad(path, table, r, col, "is not a list of strings")
    return tuple(val)


_NUMERIC_T = "CASE WHEN typeof(t) IN ('real', 'integer') THEN t END"
_SESSION_COUNTS = (  # a corrupt t is left out here and named when its own row is read
    "(SELECT COUNT(*) FROM predictions p WHERE p.session_id = s.id) AS n_predictions, "
    f"MAX(COALESCE((SELECT MAX({_NUMERIC_T}) FROM predictions p WHERE p.session_id = s.id), 0), "
    f"COALESCE((SELECT MAX({_NUMERIC_T}) FROM quality q WHERE q.session_id = s.id), 0)) AS stream_seconds"
)


def _session_row(r: sqlite3.Row, path: Path) -> SessionRow:
    d, tb = dict(r), "sessions"
    return SessionRow(
        id=d["id"],
        participant=_text(path, tb, d, "participant"),
        started_at=_number(path, tb, d, "started_at"),
        ended_at=_number(path, tb, d, "ended_at", optional=True),
        model=_text(path, tb, d, "model"),
        run_dir=_text(path, tb, d, "run_dir", optional=True),
        meta=_json(path, tb, d, "meta", dict, "{}"),
        n_predictions=d["n_predictions"],
        stream_seconds=_number(path, tb, d, "stream_seconds", optional=True) or 0.0,
    )


def _vital_row(r: sqlite3.Row, path: Path) -> VitalRow:
    d, tb = dict(r), "vitals"
    status = _text(path, tb, d, "status")
    if status not in VITAL_STATUSES:
        raise _bad(path, tb, d, "status", f"holds {status[:20]!r}, not one of {', '.join(VITAL_STATUSES)}")
    return VitalRow(
        id=d["id"],
        session_id=d["session_id"],
        t=_number(path, tb, d, "t"),
        modality=_text(path, tb, d, "modality"),
        channel=_text(path, tb, d, "channel"),
        name=_text(path, tb, d, "name"),
        value=_number(path, tb, d, "value", optional=True),
        unit=_text(path, tb, d, "unit"),
        status=status,
        detail=_text(path, tb, d, "detail"),
    )


def _strip_row(r: sqlite3.Row, path: Path) -> StripRow:
    d, tb = dict(r), "signal_strips"
    d.setdefault("id", f"{d.get('session_id')}/{d.get('modality')}")
    channels = _str_tuple(path, tb, d, "channels")
    n = d.get("n_times")
    blob = d.get("data")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or not isinstance(blob, bytes):
        raise _bad(path, tb, d, "data", "is not a strip")
    if len(blob) != 4 * n * len(channels):
        raise _bad(path, tb, d, "data", f"holds {len(blob)} bytes, not {len(channels)} x {n} float32 values")
    values = np.frombuffer(blob, dtype="<f4").reshape(len(channels), n).astype(np.float32)
    return StripRow(
        session_id=d["session_id"],
        modality=_text(path, tb, d, "modality"),
        t=_number(path, tb, d, "t"),
        sfreq=_number(path, tb, d, "sfreq"),
        channels=channels,
        values=values,
    )


def _segment_row(r: sqlite3.Row, path: Path) -> SegmentRow:
    d, tb = dict(r), "segments"
    return SegmentRow(
        id=d["id"],
        session_id=d["session_id"],
        track=_text(path, tb, d, "track"),
        start=_number(path, tb, d, "start"),
        end=_number(path, tb, d, "end", optional=True),
        source=_text(path, tb, d, "source"),
    )


def _quality_row(r: sqlite3.Row, path: Path) -> QualityRow:
    d, tb = dict(r), "quality"
    return QualityRow(
        id=d["id"],
        session_id=d["session_id"],
        t=_number(path, tb, d, "t"),
        modality=_text(path, tb, d, "modality"),
        flag=_text(path, tb, d, "flag"),
        detail=_text(path, tb, d, "detail"),
    )


def _optional_int(path: Path, table: str, r: dict, col: str) -> int | None:
    v = r.get(col)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(path, table, r, col, f"holds {str(v)[:40]!r}, not an integer")
    return v


def _rating_row(r: sqlite3.Row, path: Path) -> SegmentRatingRow:
    d, tb = dict(r), "segment_ratings"
    values = {}
    for k in RATINGS:
        v = _number(path, tb, d, k, optional=True)
        if v is not None and not RATING_RANGE[0] <= v <= RATING_RANGE[1]:
            raise _bad(path, tb, d, k, f"holds {v:g}, not a rating from 1 to 9")
        values[k] = v
    return SegmentRatingRow(
        id=d["id"],
        session_id=d["session_id"],
        segment_id=d["segment_id"],
        **values,
        created_at=_number(path, tb, d, "created_at"),
        superseded_at=_number(path, tb, d, "superseded_at", optional=True),
    )


def _calibration_row(r: sqlite3.Row, path: Path) -> CalibrationRow:
    d, tb = dict(r), "calibrations"
    k = d.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise _bad(path, tb, d, "k", f"holds {str(k)[:40]!r}, not a count")
    return CalibrationRow(
        id=d["id"],
        participant=_text(path, tb, d, "participant"),
        session_id=_optional_int(path, tb, d, "session_id"),
        created_at=_number(path, tb, d, "created_at"),
        method=_text(path, tb, d, "method"),
        k=k,
        label=_text(path, tb, d, "label"),
        calibration=_json(path, tb, d, "calibration", dict, "{}"),
        base_model=_text(path, tb, d, "base_model", optional=True),
        base_digest=_text(path, tb, d, "base_digest", optional=True),
    )


def _activation_row(r: sqlite3.Row, path: Path) -> ActivationRow:
    d, tb = dict(r), "calibration_activations"
    cid = _optional_int(path, tb, d, "calibration_id")
    label = "base model" if cid is None else _text(path, tb, d, "label", optional=True)
    if label is None:
        raise _bad(path, tb, d, "calibration_id", f"names calibration {cid}, which is not stored")
    return ActivationRow(
        id=d["id"],
        session_id=d["session_id"],
        calibration_id=cid,
        activated_at=_number(path, tb, d, "activated_at"),
        label=label,
    )


def _prediction_row(r: sqlite3.Row, path: Path) -> PredictionRow:
    d, tb = dict(r), "predictions"
    probs = _json(path, tb, d, "probabilities", dict, "{}")
    for task, p in probs.items():
        if not isinstance(p, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p):
            raise _bad(path, tb, d, "probabilities", f"task {str(task)[:20]!r} is not a list of numbers")
    modalities_used = _str_tuple(path, tb, d, "modalities_used")
    flags = _str_tuple(path, tb, d, "flags")
    quadrant = _text(path, tb, d, "quadrant", optional=True)
    if quadrant is not None and quadrant not in QUADRANT_CODES:
        raise _bad(path, tb, d, "quadrant", f"holds {quadrant[:20]!r}, not one of {', '.join(QUADRANT_CODES)}")
    return PredictionRow(
        id=d["id"],
        session_id=d["session_id"],
        t=_number(path, tb, d, "t"),
        valence=_number(path, tb, d, "valence", optional=True),
        arousal=_number(path, tb, d, "arousal", optional=True),
        liking=_number(path, tb, d, "liking", optional=True),
        probabilities={task: tuple(p) for task, p in probs.items()},
        quadrant=quadrant,
        confidence=_number(path, tb, d, "confidence"),
        modalities_used=modalities_used,
        latency_ms=_number(path, tb, d, "latency_ms", optional=True),
        flags=flags,
        created_at=_number(path, tb, d, "created_at", optional=True),
        model_label=_text(path, tb, d, "model_label", optional=True),
        calibration_id=_optional_int(path, tb, d, "calibration_id"),
    )
