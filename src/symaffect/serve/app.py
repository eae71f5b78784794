"""The live dashboard: a FastAPI app over the SQLite session store.

``create_app(db_path, token=None)`` builds the app; ``symaffect serve`` runs it with
uvicorn. The page ``/`` (and ``/sessions/{id}``) shows a session's live trajectories,
its current quadrant on the valence-arousal plane, signal quality per modality and its
music segments; new predictions arrive by server-sent events from
``/api/sessions/{id}/stream`` (the server polls the store for new rows). Everything
the page loads comes from this server: plotly.min.js is read from the installed plotly
package, never from a CDN, and a Content-Security-Policy forbids anything else.

What the page shows beside the curves, all in stream time (m:ss of signal, never wall
clock): the band of one standard deviation of each rating's predicted distribution (the
rows' ``spread``); shaded stretches where a modality of :func:`session_modalities` was
dropped, where confidence was below the report's ``LOW_CONFIDENCE``, and hops without a
prediction (``no_prediction`` quality rows); the report's baseline; per modality the
last :data:`HISTORY_S` s of hops as a strip of cells with the flags in plain words
(:data:`FLAG_WORDS`, :data:`STREAM_FLAG_WORDS`); the report's counts and sentences
(:func:`live_counts`, the ``summary`` of ``GET /api/sessions/{id}`` and of the event
stream); the latest vital signs and raw-signal strips of each modality.

Live calibration: once a segment has ended the therapist enters the listener's own
valence / arousal / liking (1-9) for it
(``POST /api/sessions/{id}/segments/{segment_id}/ratings``); with at least two rated
segments ``POST /api/sessions/{id}/calibrate`` fits the listener's calibration from the
session's stored hops (:mod:`symaffect.stream.calibrate`), stores it under their
pseudonym and activates it (the streamer switches at its next hop). At a later session
``GET /api/participants/{pseudonym}/calibrations`` lists the listener's calibrations and
``POST /api/sessions/{id}/calibration`` (``{"calibration_id": N}``, or null for the base
model) activates one. Errors on these routes are one line in ``detail`` (422 for what
was typed, 404 for what does not exist).

Security (see ``docs/security.md``): bind to loopback unless a token is set
(:func:`check_bind`). One ASGI layer (:class:`Guard`) runs before routing, in this
order: the ``Host`` header must name this server (loopback names plus the configured
host: a DNS-rebinding page gets 400), a cross-origin ``Origin`` on a write gets 403,
then with a token every path except ``/healthz`` (the OpenAPI schema included) needs
``Authorization: Bearer <token>`` or ``?token=<token>`` (401, before any body is read),
and a body over :data:`MAX_BODY_BYTES` gets 413, whether it declares its length or
streams it in chunks (never more than that is buffered). Requests are then validated by
pydantic / FastAPI: a malformed request gets a 4xx with a one-line ``message`` plus the
details, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import ipaddress
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote

import jinja2
import plotly
import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from symaffect.errors import ConfigError, DataError
from symaffect.models.calibration import Calibration
from symaffect.serve.palette import QUADRANT_COLORS, RATING_COLORS
from symaffect.serve.report import (
    ReportData,
    build_report_data,
    render_html,
    session_counts,
)
from symaffect.serve.report.data import CONFIDENCE_EXPLAINED, LOW_CONFIDENCE
from symaffect.serve.report.formatting import fmt_dur
from symaffect.spec import (
    MODALITIES,
    QUADRANT_AXES,
    QUADRANT_CODES,
    QUADRANT_DESCRIPTIONS,
    QUADRANT_RULE,
    RATING_COLUMNS,
)
from symaffect.stream.calibrate import (
    LIVE_METHOD,
    LIVE_METHODS,
    MIN_RATED_SEGMENTS,
    calibrate_session,
    check_session_calibration,
    session_model_path,
)
from symaffect.stream.pipeline import Predictor
from symaffect.stream.store import PredictionRow, SessionRow, SessionStore, StripRow

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_FILES = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}
MAX_BODY_BYTES = 16 * 1024
"""Largest request body accepted (a segment marker is a few hundred bytes)."""
MAX_ID = 2**63 - 1
MAX_TIME_S = 1e7
"""Largest time accepted in the API (s since session start; about 115 days)."""
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Host names a loopback dashboard answers to (``Host`` header, port stripped)."""
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

HISTORY_S = 30.0
"""Stream time (s) of the quality history each badge shows."""
SUMMARY_EVERY_S = 2.0
"""Least time (s) between two computations of a stream's ``summary`` event."""
MAX_STRIP_POINTS = 640
"""Most samples per channel of a raw-signal strip sent to the page (decimated beyond)."""
FLAG_WORDS = {
    "flat": "flat signal (sensor off?)",
    "nan": "missing values",
    "dropped": "samples lost in transmission",
    "gap": "samples lost in transmission",
    "clipping": "signal saturated",
    "partial": "some channels not recorded",
    "no_prediction": "no estimate (every signal dropped)",
}
"""A modality's quality flag (:mod:`symaffect.stream.quality`) in a therapist's words."""
STREAM_FLAG_WORDS = {
    "stall": "the signal stream stopped",
    "gap": "the signal stream stopped",
    "calibration": "the listener's calibration could not be applied",
    "ended": "the replay finished",
}
"""A quality row of the whole stream (modality ``"stream"``) in a therapist's words."""

SessionId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="Session id (1, 2, ...)")]
SegmentId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="Segment id (1, 2, ...)")]
Pseudonym = Annotated[str, PathParam(min_length=1, max_length=200, description="The listener's pseudonym")]


class SegmentIn(BaseModel):
    """A music segment marker posted to the API (times in s since session start)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    track: str = Field(min_length=1, max_length=200, strict=True)
    start: float = Field(ge=0, le=MAX_TIME_S, strict=True)
    end: float | None = Field(default=None, ge=0, le=MAX_TIME_S, strict=True)

    @field_validator("track")
    @classmethod
    def _track_printable(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("track must not be blank")
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("track must not contain control characters")
        return v

    @model_validator(mode="after")
    def _end_after_start(self) -> SegmentIn:
        if self.end is not None and not self.end > self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class RatingIn(BaseModel):
    """The listener's own ratings of one segment (1-9; any subset, at least one)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    valence: float | None = Field(default=None, ge=1, le=9, strict=True)
    arousal: float | None = Field(default=None, ge=1, le=9, strict=True)
    liking: float | None = Field(default=None, ge=1, le=9, strict=True)

    @model_validator(mode="after")
    def _at_least_one(self) -> RatingIn:
        if self.valence is None and self.arousal is None and self.liking is None:
            raise ValueError("give at least one of valence, arousal, liking (1-9)")
        return self


class CalibrateIn(BaseModel):
    """Options of a live calibration (the body may be empty)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["threshold", "bias", "heads", "pooled"] | None = None
    """None: the server's ``calibration_method``."""


class ActivateIn(BaseModel):
    """The stored calibration to use in a session (null: the base model)."""

    model_config = ConfigDict(extra="forbid")

    calibration_id: int | None = Field(ge=1, le=MAX_ID, strict=True)


# --- helpers ---------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token.

    Raises
    ------
    ConfigError
        When ``host`` is not loopback and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host}: serving beyond this machine needs a token "
            "(pass --token or set SYMAFFECT_TOKEN)"
        )
    if token is not None and token and len(token) < 8:
        raise ConfigError("--token: use at least 8 characters")


def dashboard_spec() -> dict[str, Any]:
    """What the dashboard's script draws with, from :mod:`symaffect.spec`.

    Returns
    -------
    dict
        ``ratings`` (the rating names) and ``rating_colors``; ``quadrants``: per code of
        :data:`~symaffect.spec.QUADRANT_CODES` its ``code``, ``axes`` (``"HV-HA"``..., None
        for Neutral), ``description`` and ``color``; ``threshold`` and ``neutral_band`` of
        :data:`~symaffect.spec.QUADRANT_RULE` (the quadrant lines and the Neutral box).
    """
    return {
        "ratings": list(RATING_COLUMNS),
        "rating_colors": dict(RATING_COLORS),
        "quadrants": [
            {"code": q, "axes": QUADRANT_AXES.get(q), "description": QUADRANT_DESCRIPTIONS[q],
             "color": QUADRANT_COLORS[q]}
            for q in QUADRANT_CODES
        ],
        "threshold": QUADRANT_RULE.threshold,
        "neutral_band": QUADRANT_RULE.neutral_band,
        "low_confidence": LOW_CONFIDENCE,
        "history_s": HISTORY_S,
        "flag_words": dict(FLAG_WORDS),
        "stream_flag_words": dict(STREAM_FLAG_WORDS),
    }


def session_modalities(session: SessionRow, predictions: Sequence[PredictionRow]) -> dict[str, Any]:
    """The modalities a session's predictions should use (a prediction without one of them
    dropped it).

    The model's modalities (``session.meta["modalities"]`` when the streamer stored them)
    minus ``session.meta["absent_modalities"]`` (not in the recording); otherwise the
    modalities used by any prediction so far, the rule of the report's quality notes.

    Returns
    -------
    dict
        ``modalities`` (in :data:`~symaffect.spec.MODALITIES` order, then others),
        ``source`` (``"model"`` or ``"seen"``: the page adds modalities seen later) and
        ``absent``.
    """
    meta = session.meta or {}
    absent = sorted(str(m) for m in (meta.get("absent_modalities") or []))
    declared = meta.get("modalities")
    if isinstance(declared, list) and declared:
        mods, source = {str(m) for m in declared}, "model"
    else:
        mods, source = {m for p in predictions for m in p.modalities_used}, "seen"
    mods -= set(absent)
    order = [m for m in MODALITIES if m in mods] + sorted(mods - set(MODALITIES))
    return {"modalities": order, "source": source, "absent": absent}


def live_counts(data: ReportData) -> dict[str, Any]:
    """The session's counts exactly as the report states them
    (:func:`symaffect.serve.report.session_counts`), JSON-safe.

    Returns
    -------
    dict
        ``n_predictions``, ``n_no_prediction``, ``stream_seconds``, ``dropped`` and
        ``dropped_share`` (per modality), ``low_confidence``, ``low_confidence_threshold``,
        ``quadrant_counts``, ``quadrant_shares``, ``baseline`` (``start``, ``end``,
        ``rule``; None without predictions), ``summary`` (the report's sentences) and the
        report's other keys.
    """
    return _jsonable(session_counts(data))


def strip_json(strip: StripRow, max_points: int = MAX_STRIP_POINTS) -> dict[str, Any]:
    """A raw-signal strip for the page: :meth:`StripRow.to_dict` with at most ``max_points``
    samples per channel (every k-th sample, ``sfreq`` divided by k: a display, not data)."""
    out = strip.to_dict()
    n = strip.values.shape[1]
    k = max(1, math.ceil(n / max_points))
    if k > 1:
        out["values"] = [row[::k] for row in out["values"]]
        out["sfreq"] = strip.sfreq / k
        out["t"] = strip.t - (n - 1 - (n - 1) // k * k) / strip.sfreq  # time of the last kept sample
    return out


def _jsonable(obj: Any) -> Any:
    """Make row dicts JSON-safe (NaN/inf -> null, numpy scalars -> Python)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _jsonable(obj.item())
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def _message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",)) or "request"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts).replace("\n", " ")


async def _json_body(request: Request, model: type[BaseModel], *, optional: bool = False) -> Any:
    """The request's JSON body validated by ``model``; a 422 with a one-line ``detail``
    for an empty (unless ``optional``), non-JSON or invalid body."""
    raw = await request.body()
    if not raw.strip():
        if optional:
            return model()
        raise HTTPException(422, "body: a JSON object is required")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(422, "body: send JSON (Content-Type: application/json)")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise HTTPException(422, "body: not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise HTTPException(422, _message(e)) from None


def _body_schema(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a route that validates its body itself."""
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}


class _Models:
    """The sessions' models, loaded once per checkpoint (for fitting a calibration)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, float], Predictor] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> Predictor:
        key = (str(path.resolve()), path.stat().st_mtime)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = Predictor(path)
            return self._cache[key]


class _Stores:
    """One SessionStore for the app (it keeps one SQLite connection per thread)."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self.store = SessionStore(db_path)

    @contextlib.contextmanager
    def open(self) -> Iterator[SessionStore]:
        yield self.store

    def close(self) -> None:
        self.store.close()


# --- the guard: host, origin, token, body size (before routing) ----------------------


def _host_name(value: str) -> str | None:
    """The host of a ``Host`` header or an origin's netloc, lower-cased, without the port."""
    v = value.strip().lower()
    if not v or any(c in v for c in "/@?# \t"):
        return None
    if v.startswith("["):  # [::1]:8765
        end = v.find("]")
        if end < 0 or (v[end + 1:] and not v[end + 1:].startswith(":")):
            return None
        return v[1:end]
    host, _, port = v.partition(":")
    if port and not port.isdigit():
        return None
    return host.rstrip(".") or None


def allowed_hosts(host: str | None, extra: tuple[str, ...] = ()) -> frozenset[str] | None:
    """Host names the dashboard answers to; None (any) when bound to every interface.

    Loopback names always; plus ``host`` itself and ``extra``. Bound to ``0.0.0.0`` /
    ``::`` (which :func:`check_bind` allows only with a token) the names clients use are
    unknown, so any is accepted unless ``extra`` lists them.
    """
    names = set(LOOPBACK_HOSTS) | {h.strip("[]").lower().rstrip(".") for h in extra if h}
    if host is not None and host.strip("[]") in WILDCARD_HOSTS and not extra:
        return None
    if host is not None and host.strip("[]") not in WILDCARD_HOSTS:
        names.add(host.strip("[]").lower().rstrip("."))
    return frozenset(names)


class Guard:
    """ASGI middleware: Host allow-list, same-origin writes, token, body limit, headers.

    Everything here runs before the app reads the body or routes the request, so a
    request that fails any check costs at most :data:`MAX_BODY_BYTES` of memory and never
    reaches a handler.

    Parameters
    ----------
    app : ASGI app
    hosts : frozenset of str or None
        Allowed host names (:func:`allowed_hosts`); None accepts any.
    token : str or None
        Required on every path but ``/healthz`` when set.
    max_body : int
        Largest request body, counted as it streams in.
    """

    def __init__(self, app: Any, *, hosts: frozenset[str] | None, token: str | None, max_body: int):
        self.app, self.hosts, self.token, self.max_body = app, hosts, token, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._check(scope, headers)
        if problem is not None:
            await self._reply(send, *problem)
            return
        body, more = b"", True
        while more:  # read (and count) the body before anything parses it
            msg = await receive()
            if msg["type"] != "http.request":
                break  # client went away: the app sees an empty body, then the disconnect
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.max_body:
                await self._reply(send, 413, f"request body larger than {self.max_body} bytes")
                return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in _SECURITY_HEADERS
                    if k not in {h[0].lower() for h in message.get("headers", [])}
                ]
            await send(message)

        await self.app(scope, replay, send_with_headers)

    def _check(self, scope: dict, headers: dict[str, str]) -> tuple[int, str, dict] | None:
        host = headers.get("host")
        name = _host_name(host) if host is not None else None
        if name is None or (self.hosts is not None and name not in self.hosts):
            shown = "none" if host is None else repr(host[:60])
            return 400, f"Host header {shown} is not a name of this server", {}
        origin = headers.get("origin")
        if scope.get("method", "GET") not in ("GET", "HEAD", "OPTIONS") and origin is not None:
            o_host = _host_name(origin.split("://", 1)[-1]) if "://" in origin else None
            if o_host is None or o_host != name:
                return 403, f"cross-origin request from {origin[:60]!r} refused", {}
        if self.token and scope.get("path") != "/healthz" and not self._authorised(scope, headers):
            return 401, "missing or wrong token: send 'Authorization: Bearer <token>' or ?token=", {
                "www-authenticate": "Bearer"}
        cl = headers.get("content-length")
        if cl is not None:
            if not cl.strip().isdigit():
                return 400, "bad Content-Length header", {}
            if int(cl) > self.max_body:
                return 413, f"request body larger than {self.max_body} bytes", {}
        return None

    def _authorised(self, scope: dict, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not given:
            try:
                qs = parse_qs(scope.get("query_string", b"").decode("latin-1"), max_num_fields=64)
            except ValueError:
                qs = {}
            given = (qs.get("token") or [None])[0]
        assert self.token is not None
        return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    @staticmethod
    async def _reply(send: Any, status: int, message: str, headers: dict | None = None) -> None:
        body = json.dumps({"message": message, "detail": message}).encode()
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")]
        hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        hdrs += list(_SECURITY_HEADERS)
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})


_SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


# --- app -------------------------------------------------------------------------------


def create_app(
    db_path: str | Path, token: str | None = None, *, poll_s: float = 0.5, host: str | None = None,
    extra_hosts: tuple[str, ...] = (), calibration_method: str = LIVE_METHOD,
) -> FastAPI:
    """Build the dashboard app over the session store at ``db_path``.

    Parameters
    ----------
    db_path : str or Path
        SQLite session store (created empty when absent).
    token : str, optional
        When set, every route except ``/healthz`` needs it (Bearer header or ``?token=``),
        the OpenAPI schema included.
    poll_s : float
        How often the event stream polls the store for new rows (s).
    host : str, optional
        The address the server is bound to; requests must name it (or a loopback name)
        in their ``Host`` header (see :func:`allowed_hosts`). Default: loopback names only.
    extra_hosts : tuple of str
        More host names to accept (e.g. the machine's DNS name behind ``0.0.0.0``).
    calibration_method : {"threshold", "bias", "heads", "pooled"}
        The method of a live calibration when the request names none (the dashboard's
        "Calibrate" button names none).

    Returns
    -------
    FastAPI

    Raises
    ------
    ConfigError
        An unknown ``calibration_method``.
    """
    if calibration_method not in LIVE_METHODS:
        raise ConfigError(f"calibration method {calibration_method!r} is not one of {', '.join(LIVE_METHODS)}")
    db_path = Path(db_path)
    stores = _Stores(db_path)  # creates / migrates the store once, up front
    plotly_js = _read_plotly_js()
    static = {name: (HERE / "static" / name).read_bytes() for name in STATIC_FILES}
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        stores.close()

    app = FastAPI(
        title="symaffect live dashboard", lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
    )
    app.state.db_path = db_path
    models = _Models()
    calibrate_lock = threading.Lock()  # one fit at a time (a double click stores one calibration)
    # outermost: runs before routing, body parsing and every handler (the OpenAPI route too)
    app.add_middleware(Guard, hosts=allowed_hosts(host, tuple(extra_hosts)), token=token or None,
                       max_body=MAX_BODY_BYTES)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"message": _message(exc), "detail": _jsonable(exc.errors())}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"message": str(exc.detail), "detail": exc.detail},
            status_code=exc.status_code, headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        return JSONResponse({"message": str(exc), "detail": str(exc)}, status_code=400)

    def _session_or_404(store: SessionStore, session_id: int) -> SessionRow:
        try:
            return store.session(session_id)
        except DataError:
            raise HTTPException(404, f"session {session_id} not found") from None

    # ---- pages ----

    def _page(request: Request, session_id: int | None) -> HTMLResponse:
        with stores.open() as store:
            sessions = list(store.sessions())
            if session_id is not None:
                _session_or_404(store, session_id)
        if session_id is None and sessions:
            session_id = max(s.id for s in sessions)
        qs = f"?token={quote(request.query_params['token'], safe='')}" if token and "token" in request.query_params else ""
        html = templates.get_template("index.html").render(
            sessions=sorted(sessions, key=lambda s: -s.id), session_id=session_id,
            modalities=list(MODALITIES), affect=dashboard_spec(), qs=qs, fmt_time=_fmt_time,
            fmt_dur=fmt_dur, fmt_wall=_fmt_wall, confidence_explained=CONFIDENCE_EXPLAINED,
        )
        return HTMLResponse(html)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return _page(request, None)

    @app.get("/sessions/{session_id}", response_class=HTMLResponse)
    def session_page(request: Request, session_id: SessionId) -> HTMLResponse:
        return _page(request, session_id)

    @app.get("/sessions/{session_id}/report", response_class=HTMLResponse)
    def session_report(session_id: SessionId) -> HTMLResponse:
        with stores.open() as store:
            ses = _session_or_404(store, session_id)
            data = build_report_data(
                ses, store.predictions(session_id), store.segments(session_id), store.quality(session_id),
                ratings=store.segment_ratings(session_id),
            )
        return HTMLResponse(render_html(data))

    @app.get("/static/plotly.min.js")
    def plotly_min_js() -> Response:
        return Response(plotly_js, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, f"no static file {name!r}")
        return Response(static[name], media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})

    # ---- JSON API ----

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/sessions")
    def api_sessions() -> list[dict[str, Any]]:
        with stores.open() as store:
            return _jsonable([s.to_dict() for s in store.sessions()])

    @app.get("/api/sessions/{session_id}")
    def api_session(session_id: SessionId) -> dict[str, Any]:
        with stores.open() as store:
            ses = _session_or_404(store, session_id)
            preds = store.predictions(session_id)
            segs, qual = store.segments(session_id), store.quality(session_id)
            ratings = store.segment_ratings(session_id)
            out = {
                "session": ses.to_dict(), "segments": [g.to_dict() for g in segs],
                "quality": [q.to_dict() for q in qual], "modalities": list(MODALITIES),
                "session_modalities": session_modalities(ses, preds),
                "ratings": [r.to_dict() for r in ratings],
                "calibration": _calibration_state(store, session_id), **_rated(store, session_id),
                "summary": live_counts(build_report_data(ses, preds, segs, qual, ratings=ratings)),
                "vitals": [v.to_dict() for v in store.latest_vitals(session_id)],
                "strips": [strip_json(x) for x in store.strips(session_id)],
            }
        return _jsonable(out)

    @app.get("/api/sessions/{session_id}/predictions")
    def api_predictions(
        session_id: SessionId,
        since: Annotated[float | None, Query(ge=0, le=MAX_TIME_S, allow_inf_nan=False,
                                             description="only predictions with t > since (s)")] = None,
    ) -> list[dict[str, Any]]:
        with stores.open() as store:
            _session_or_404(store, session_id)
            return _jsonable([p.to_dict() for p in _predictions_after(store, session_id, since)])

    @app.post("/api/sessions/{session_id}/segments", status_code=201)
    def api_add_segment(session_id: SessionId, body: SegmentIn) -> dict[str, Any]:
        with stores.open() as store:
            _session_or_404(store, session_id)
            seg_id = store.add_segment(session_id, body.track, body.start, body.end, source="api")
        return {"id": int(seg_id), "session_id": session_id, **body.model_dump()}

    # ---- the listener's ratings and calibration ----

    def _segment_or_404(store: SessionStore, session_id: int, segment_id: int) -> None:
        try:
            seg = store.segment(segment_id)
        except DataError:
            seg = None
        if seg is None or seg.session_id != session_id:
            raise HTTPException(404, f"segment {segment_id} not found in session {session_id}")

    def _rated(store: SessionStore, session_id: int) -> dict[str, Any]:
        n = len(store.segment_ratings(session_id))
        return {"n_rated": n, "can_calibrate": n >= MIN_RATED_SEGMENTS, "min_rated": MIN_RATED_SEGMENTS}

    def _calibration_state(store: SessionStore, session_id: int) -> dict[str, Any]:
        act = store.active_calibration(session_id)
        last = store.latest_prediction(session_id) if act is None else None
        label = act.label if act is not None else (last.model_label if last and last.model_label else "base model")
        return {"active": None if act is None else act.to_dict(), "label": label,
                "calibration_id": None if act is None else act.calibration_id}

    @app.get("/api/sessions/{session_id}/ratings")
    def api_ratings(session_id: SessionId) -> dict[str, Any]:
        with stores.open() as store:
            _session_or_404(store, session_id)
            return _jsonable({"ratings": [r.to_dict() for r in store.segment_ratings(session_id)],
                              **_rated(store, session_id)})

    @app.post("/api/sessions/{session_id}/segments/{segment_id}/ratings", status_code=201,
              openapi_extra=_body_schema(RatingIn))
    async def api_rate_segment(request: Request, session_id: SessionId, segment_id: SegmentId) -> dict[str, Any]:
        body = await _json_body(request, RatingIn)

        def rate() -> dict[str, Any]:
            with stores.open() as store:
                _session_or_404(store, session_id)
                _segment_or_404(store, session_id, segment_id)
                try:
                    row = store.rate_segment(session_id, segment_id, **body.model_dump())
                except DataError as e:
                    raise HTTPException(422, str(e)) from None
                return _jsonable({**row.to_dict(), **_rated(store, session_id)})

        return await run_in_threadpool(rate)

    @app.post("/api/sessions/{session_id}/calibrate", status_code=201,
              openapi_extra=_body_schema(CalibrateIn, required=False))
    async def api_calibrate(request: Request, session_id: SessionId) -> dict[str, Any]:
        body = await _json_body(request, CalibrateIn, optional=True)

        def fit() -> dict[str, Any]:
            with stores.open() as store, calibrate_lock:
                ses = _session_or_404(store, session_id)
                try:
                    n = len(store.segment_ratings(session_id))
                    if n < MIN_RATED_SEGMENTS:  # before loading the model
                        raise DataError(None, f"calibration needs at least {MIN_RATED_SEGMENTS} rated segments, "
                                              f"{n} so far")
                    predictor = models.get(session_model_path(ses))
                    result = calibrate_session(store, session_id, predictor,
                                               method=body.method or calibration_method)
                except DataError as e:
                    raise HTTPException(422, str(e)) from None
                return _jsonable({**result.to_dict(), "participant": ses.participant, "session_id": session_id,
                                  "active": True})

        return await run_in_threadpool(fit)

    @app.get("/api/sessions/{session_id}/calibration")
    def api_active_calibration(session_id: SessionId) -> dict[str, Any]:
        with stores.open() as store:
            _session_or_404(store, session_id)
            return _jsonable(_calibration_state(store, session_id))

    @app.post("/api/sessions/{session_id}/calibration", openapi_extra=_body_schema(ActivateIn))
    async def api_activate_calibration(request: Request, session_id: SessionId) -> dict[str, Any]:
        body = await _json_body(request, ActivateIn)

        def activate() -> dict[str, Any]:
            with stores.open() as store:
                ses = _session_or_404(store, session_id)
                cid = body.calibration_id
                if cid is not None:
                    try:
                        row = store.calibration(cid)
                    except DataError:
                        raise HTTPException(404, f"calibration {cid} not found") from None
                    try:
                        if row.participant != ses.participant:
                            raise DataError("calibration", f"calibration {cid} belongs to another listener")
                        try:
                            predictor = models.get(session_model_path(ses))
                        except DataError:
                            predictor = None  # the model is not here: the streamer checks the shapes
                        check_session_calibration(ses, row.base_digest, predictor,
                                                  Calibration.from_dict(row.calibration))
                    except DataError as e:
                        raise HTTPException(422, str(e)) from None
                try:
                    store.activate_calibration(session_id, cid)
                except DataError as e:
                    raise HTTPException(422, str(e)) from None
                return _jsonable({"session_id": session_id, **_calibration_state(store, session_id)})

        return await run_in_threadpool(activate)

    @app.get("/api/participants/{pseudonym}/calibrations")
    def api_participant_calibrations(pseudonym: Pseudonym) -> list[dict[str, Any]]:
        with stores.open() as store:
            if not store.has_participant(pseudonym):
                raise HTTPException(404, f"participant {pseudonym[:60]!r} not found")
            return _jsonable([c.summary() for c in store.calibrations(pseudonym)])

    @app.get("/api/sessions/{session_id}/stream")
    async def api_stream(
        request: Request,
        session_id: SessionId,
        since: Annotated[float | None, Query(ge=0, le=MAX_TIME_S, allow_inf_nan=False)] = None,
        max_s: Annotated[float, Query(gt=0, le=3600, allow_inf_nan=False,
                                      description="close the stream after this many s")] = 600.0,
    ) -> StreamingResponse:
        def _first() -> None:
            with stores.open() as store:
                _session_or_404(store, session_id)

        await run_in_threadpool(_first)
        last_id = request.headers.get("last-event-id")
        if since is None and last_id:
            with contextlib.suppress(ValueError):
                v = float(last_id)
                since = v if math.isfinite(v) and v >= 0 else None
        gen = _event_stream(request, stores, session_id, since, poll_s=poll_s, max_s=max_s)
        return StreamingResponse(
            gen, media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def _predictions_after(store: SessionStore, session_id: int, since: float | None) -> list[PredictionRow]:
    rows = store.predictions(session_id, since_t=since)
    if since is not None:  # the contract of this API is strictly after ``since``
        rows = [r for r in rows if r.t > since]
    return rows


def _sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + f"data: {json.dumps(_jsonable(data), separators=(',', ':'))}\n\n"


async def _event_stream(
    request: Request, stores: _Stores, session_id: int, since: float | None, *,
    poll_s: float, max_s: float, summary_every_s: float = SUMMARY_EVERY_S,
) -> AsyncIterator[str]:
    """Poll the store and yield server-sent events.

    Events: ``predictions`` (a list of new rows, ``id`` = the last ``t``), ``session``
    (the session row, with ``n_predictions`` and ``stream_seconds``, when it changed),
    ``segments`` (the full list, when it changed), ``quality`` (new quality rows),
    ``ratings`` (the listener's current segment ratings, when they changed),
    ``calibration`` (the activation, when it changed), ``summary`` (:func:`live_counts`:
    the report's counts, baseline and sentences; when the session changed, at most every
    ``summary_every_s``), ``vitals`` (the latest value of each vital sign, when one
    changed), ``strips`` (the raw-signal strips that changed, :func:`strip_json`),
    ``ended`` (once, when the session has an end time), and comment heartbeats.
    """

    def poll(last_t: float | None) -> dict[str, Any]:
        with stores.open() as store:
            act = store.active_calibration(session_id)
            return {
                "preds": _predictions_after(store, session_id, last_t),
                "segs": [g.to_dict() for g in store.segments(session_id)],
                "qual": [q.to_dict() for q in store.quality(session_id)],
                "ses": store.session(session_id),
                "ratings": [r.to_dict() for r in store.segment_ratings(session_id)],
                "act": None if act is None else act.to_dict(),
                "vitals": store.latest_vitals(session_id),
                "strips": {(x.modality, x.t): x for x in store.strips(session_id)},
            }

    def summary() -> dict[str, Any]:
        with stores.open() as store:
            ses = store.session(session_id)
            data = build_report_data(
                ses, store.predictions(session_id), store.segments(session_id), store.quality(session_id),
                ratings=store.segment_ratings(session_id),
            )
        return _jsonable(live_counts(data))

    last_t = since
    sigs: dict[str, str | None] = {"segs": None, "ratings": None, "act": None, "ses": None, "vitals": None,
                                   "summary_in": None, "summary": None}
    strip_keys: set[tuple[str, float]] = set()
    n_quality = None
    ended_sent = False
    t_open = time.monotonic()
    last_beat = t_open
    last_summary = -math.inf

    def changed(key: str, value: Any) -> bool:
        sig = json.dumps(_jsonable(value), sort_keys=True)
        if sig == sigs[key]:
            return False
        sigs[key] = sig
        return True

    yield "retry: 2000\n\n"
    while time.monotonic() - t_open < max_s:
        if await request.is_disconnected():
            break
        try:
            got = await run_in_threadpool(poll, last_t)
        except DataError as e:  # the session vanished or the store broke: tell and stop
            yield _sse("error", {"message": str(e)})
            break
        preds, ses, qual = got["preds"], got["ses"], got["qual"]
        if preds:
            last_t = preds[-1].t
            yield _sse("predictions", [p.to_dict() for p in preds], event_id=repr(last_t))
        if changed("ses", ses.to_dict()):
            yield _sse("session", ses.to_dict())
        if changed("segs", got["segs"]):
            yield _sse("segments", got["segs"])
        if changed("ratings", got["ratings"]):
            yield _sse("ratings", got["ratings"])
        act_before = sigs["act"]
        if changed("act", got["act"]) and (act_before is not None or got["act"] is not None):
            yield _sse("calibration", got["act"])
        if n_quality is None or len(qual) != n_quality:
            new = qual if n_quality is None else qual[n_quality:]
            n_quality = len(qual)
            if new:
                yield _sse("quality", new)
        if changed("vitals", [v.to_dict() for v in got["vitals"]]) and got["vitals"]:
            yield _sse("vitals", [v.to_dict() for v in got["vitals"]])
        fresh = [x for key, x in got["strips"].items() if key not in strip_keys]
        if fresh:
            strip_keys = set(got["strips"])
            yield _sse("strips", [strip_json(x) for x in fresh])
        now = time.monotonic()
        if now - last_summary >= summary_every_s and changed(
                "summary_in", [ses.n_predictions, n_quality, ses.ended_at, sigs["segs"], sigs["ratings"]]):
            last_summary = now
            try:
                counts = await run_in_threadpool(summary)
            except DataError as e:
                yield _sse("error", {"message": str(e)})
                break
            if changed("summary", counts):
                yield _sse("summary", counts)
        if ses.ended_at is not None and not ended_sent:
            ended_sent = True
            yield _sse("ended", {"session_id": session_id, "ended_at": ses.ended_at})
        if now - last_beat > 10:
            last_beat = now
            yield ": ping\n\n"
        await asyncio.sleep(poll_s)


def _read_plotly_js() -> bytes:
    """plotly.min.js from the installed plotly package (served locally, never a CDN)."""
    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise DataError(path, "plotly.min.js not found in the plotly package (reinstall plotly)")
    return path.read_bytes()


def _fmt_time(v: Any) -> str:
    if v is None:
        return "—"
    try:
        return dt.datetime.fromtimestamp(float(v)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(v)


def _fmt_wall(start: Any, end: Any) -> str:
    """Wall-clock length of a session (``"live"`` while open), in the report's words."""
    if end is None:
        return "live"
    try:
        return fmt_dur(float(end) - float(start))
    except (TypeError, ValueError):
        return "—"


def serve(
    db_path: str | Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
    calibration_method: str = LIVE_METHOD,
) -> None:
    """Run the dashboard with uvicorn (blocks until interrupted).

    Requests must name ``host`` (or a loopback name) in their ``Host`` header; behind
    ``0.0.0.0`` any name is accepted (a token is then required) unless
    ``SYMAFFECT_ALLOWED_HOSTS`` lists the accepted names, comma-separated.

    Raises
    ------
    ConfigError
        On a non-loopback ``host`` without a token.
    """
    token = token or os.environ.get("SYMAFFECT_TOKEN") or None
    check_bind(host, token)
    extra = tuple(h for h in os.environ.get("SYMAFFECT_ALLOWED_HOSTS", "").split(",") if h.strip())
    app = create_app(db_path, token=token, host=host, extra_hosts=extra, calibration_method=calibration_method)
    log.info("serving %s on http://%s:%d/", db_path, host, port)
    # open event streams would otherwise hold a Ctrl-C for up to their max_s
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
