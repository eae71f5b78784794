"""SQLite session store: sessions, music segments, per-hop predictions, quality flags.

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
:class:`PredictionRow` and :class:`QualityRow`. ``row.to_dict()`` gives the row as plain
JSON-able values under its column names (the dashboard's JSON).

Schema versions
---------------
``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` is the ordered list
of migration functions (index ``i`` upgrades version ``i`` to ``i + 1``). Opening a
database runs the missing migrations, each in one transaction. A database newer than this
code is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from symaffect.errors import DataError
from symaffect.spec import QUADRANT_CODES
from symaffect.stream.prediction import Prediction

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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v0_to_v1, _v1_to_v2]
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
    """

    id: int
    participant: str
    started_at: float
    ended_at: float | None
    model: str
    run_dir: str | None
    meta: dict[str, Any]
    n_predictions: int


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


@dataclass(frozen=True)
class QualityRow(_Row):
    """One quality flag: ``modality`` may be ``"all"`` / ``"stream"``; ``t`` in stream time."""

    id: int
    session_id: int
    t: float
    modality: str
    flag: str
    detail: str


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
        con = self._con()
        with self._write_lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                cur = con.execute(sql, params)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return int(cur.lastrowid or 0)

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
            "SELECT s.*, (SELECT COUNT(*) FROM predictions p WHERE p.session_id = s.id) AS n_predictions"
            " FROM sessions s ORDER BY s.id DESC"
        )
        return [_session_row(r, self.path) for r in rows]

    def session(self, session_id: int) -> SessionRow:
        """One session row; DataError if there is none with this id."""
        rows = self._read(
            "SELECT s.*, (SELECT COUNT(*) FROM predictions p WHERE p.session_id = s.id) AS n_predictions"
            " FROM sessions s WHERE s.id = ?",
            (int(session_id),),
        )
        if not rows:
            raise DataError("session", f"no session with id {session_id}")
        return _session_row(rows[0], self.path)

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
        """Store one prediction, committed in its own transaction; return its row id."""
        return self._write(
            "INSERT INTO predictions (session_id, t, valence, arousal, liking, probabilities,"
            " quadrant, confidence, modalities_used, latency_ms, flags, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
            ),
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

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a healthy file."""
        return self._read("PRAGMA integrity_check")[0][0]


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
    )
