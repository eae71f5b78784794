"""The dashboard against hostile requests: the real FastAPI app through TestClient, and a
real uvicorn on loopback where the transport matters (chunked bodies, raw Host headers).

Each case checks the HTTP status and the one-line ``message``, that the security headers
are on the refusal too, and that the session store on disk is unchanged (nothing written,
nothing half-written).
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from symaffect.serve.app import MAX_BODY_BYTES, allowed_hosts, create_app
from symaffect.stream.prediction import Prediction
from symaffect.stream.store import SessionStore

TOKEN = "s3cret-token-123"
BASE = "http://127.0.0.1:8765"


def _pred(t: float) -> Prediction:
    return Prediction.from_probabilities(t, {"valence": [1 / 9] * 9, "arousal": [1 / 9] * 9},
                                         modalities_used=("eeg",), n_modalities=3)


def _make_store(db: Path, n_predictions: int = 30) -> Path:
    with SessionStore(db) as s:
        sid = s.create_session("P-1", "m")
        for i in range(n_predictions):
            s.add_prediction(sid, _pred(float(i)))
        s.add_segment(sid, "a", 1.0, 5.0)
    return db


def _digest(db: Path) -> tuple[str, list[str]]:
    """Content of the store's tables (WAL-independent) and the folder's file names."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = [repr(con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall())
            for t in ("sessions", "segments", "predictions", "quality")]
    con.close()
    names = sorted(n for n in (p.name for p in db.parent.iterdir()) if not n.endswith(("-wal", "-shm")))
    return hashlib.sha256("".join(rows).encode()).hexdigest(), names


@pytest.fixture
def db(tmp_path) -> Path:
    return _make_store(tmp_path / "sessions.db")


def _refused(r: httpx.Response, status: int, message: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert message in body["message"] and "\n" not in body["message"], body
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


# ------------------------------------------------------------------ Host allow-list

HOSTS = [
    # (Host header, expected status): DNS rebinding names a foreign host with our IP
    ("evil.example", 400),
    ("evil.example:8765", 400),
    ("127.0.0.1.evil.example", 400),
    ("localhost.evil.example:8765", 400),
    ("127.0.0.2:8765", 400),
    ("[::2]:8765", 400),
    ("user@127.0.0.1", 400),
    ("127.0.0.1:80a", 400),
    ("", 400),
    ("127.0.0.1:8765", 200),
    ("127.0.0.1", 200),
    ("localhost:8765", 200),
    ("LOCALHOST.:8765", 200),
    ("[::1]:8765", 200),
]


@pytest.mark.parametrize(("host", "status"), HOSTS)
def test_host_allow_list(db, host, status):
    before = _digest(db)
    with TestClient(create_app(db, host="127.0.0.1"), base_url=BASE) as c:
        r = c.get("/api/sessions", headers={"host": host})
        if status == 400:
            _refused(r, 400, "is not a name of this server")
            assert c.get("/", headers={"host": host}).status_code == 400  # the page too
            assert c.post("/api/sessions/1/segments", json={"track": "x", "start": 1},
                          headers={"host": host}).status_code == 400
        else:
            assert r.status_code == 200 and r.json()[0]["participant"] == "P-1"
    assert _digest(db) == before


@pytest.mark.parametrize(
    ("bound", "extra", "host", "ok"),
    [
        ("192.0.2.5", (), "192.0.2.5:8765", True),
        ("192.0.2.5", (), "198.51.100.1:8765", False),
        ("dash.lab.example", (), "dash.lab.example", True),
        ("0.0.0.0", (), "anything.example", True),  # token required there; names unknown
        ("0.0.0.0", ("dash.lab.example",), "anything.example", False),
        ("0.0.0.0", ("dash.lab.example",), "dash.lab.example:8765", True),
    ],
)
def test_configured_host_is_allowed(db, bound, extra, host, ok):
    with TestClient(create_app(db, token=TOKEN, host=bound, extra_hosts=extra), base_url=BASE) as c:
        r = c.get("/api/sessions", headers={"host": host, "authorization": f"Bearer {TOKEN}"})
    assert r.status_code == (200 if ok else 400), r.text


def test_allowed_hosts_function():
    assert allowed_hosts(None) == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("::1") == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("[::]") is None and allowed_hosts("0.0.0.0") is None
    assert allowed_hosts("Host.Example.") == {"127.0.0.1", "localhost", "::1", "host.example"}


# ------------------------------------------------------------------ origin, token, body


def test_cross_origin_write_is_refused_and_stores_nothing(db):
    before = _digest(db)
    with TestClient(create_app(db), base_url=BASE) as c:
        for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example:8765"):
            r = c.post("/api/sessions/1/segments", json={"track": "x", "start": 1}, headers={"origin": origin})
            _refused(r, 403, "cross-origin request")
        ok = c.post("/api/sessions/1/segments", json={"track": "x", "start": 1},
                    headers={"origin": "http://127.0.0.1:8765"})
        assert ok.status_code == 201
    assert _digest(db) != before  # only the same-origin write landed
    with SessionStore(db) as s:
        assert [x.track for x in s.segments(1)] == ["a", "x"]


TOKEN_CASES = [
    # (method, path, headers, body, expected status)
    ("get", "/api/openapi.json", {}, None, 401),
    ("get", "/api/openapi.json?token=wrong-token", {}, None, 401),
    ("get", "/api/openapi.json", {"authorization": f"Bearer {TOKEN}"}, None, 200),
    ("get", f"/api/openapi.json?token={TOKEN}", {}, None, 200),
    ("get", "/docs", {}, None, 401),
    ("get", "/redoc", {}, None, 401),
    ("get", "/static/dashboard.js", {}, None, 401),
    ("get", "/sessions/1/report", {}, None, 401),
    ("get", "/api/sessions/1/stream?max_s=0.2", {}, None, 401),
    ("get", "/api/sessions", {"authorization": "Basic czNjcmV0"}, None, 401),
    ("get", "/healthz", {}, None, 200),
    # invalid JSON and no token: 401 before the body is parsed (never 422)
    ("post", "/api/sessions/1/segments", {"content-type": "application/json"}, b"{track: oops", 401),
    ("post", "/api/sessions/1/segments", {"content-type": "application/json"}, b"[" * 10_000, 401),
    ("post", "/api/sessions/1/segments", {"content-type": "application/json"}, b"x" * (MAX_BODY_BYTES + 1), 401),
    ("post", "/api/sessions/1/segments", {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
     b"{track: oops", 422),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status"), TOKEN_CASES)
def test_token_is_checked_first_everywhere(db, method, path, headers, body, status):
    before = _digest(db)
    with TestClient(create_app(db, token=TOKEN, poll_s=0.05), base_url=BASE) as c:
        r = c.request(method, path, headers=headers, content=body)
    if status == 401:
        _refused(r, 401, "missing or wrong token")
        assert r.headers["www-authenticate"] == "Bearer"
    else:
        assert r.status_code == status, r.text
    if path == "/api/openapi.json" and status == 200:
        assert r.json()["info"]["title"] == "symaffect live dashboard"
    assert _digest(db) == before


BODY_CASES = [
    # (content, extra headers, expected status, message)
    (b"x" * (MAX_BODY_BYTES + 1), {}, 413, f"larger than {MAX_BODY_BYTES} bytes"),
    (b"", {"content-length": str(10**12)}, 413, f"larger than {MAX_BODY_BYTES} bytes"),
    (b"{}", {"content-length": "abc"}, 400, "bad Content-Length header"),
    (b"{}", {"content-length": "-1"}, 400, "bad Content-Length header"),
]


@pytest.mark.parametrize(("content", "headers", "status", "message"), BODY_CASES)
def test_declared_body_limits(db, content, headers, status, message):
    before = _digest(db)
    with TestClient(create_app(db), base_url=BASE) as c:
        r = c.post("/api/sessions/1/segments", content=content,
                   headers={"content-type": "application/json", **headers})
    _refused(r, status, message)
    assert _digest(db) == before


def test_body_at_the_limit_is_parsed(db):
    with TestClient(create_app(db), base_url=BASE) as c:
        body = b'{"track": "a", "start": 1, "end": 2}'
        body += b" " * (MAX_BODY_BYTES - len(body))  # exactly the limit: accepted
        r = c.post("/api/sessions/1/segments", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text


# ------------------------------------------------------------------ reports of any length


@pytest.mark.parametrize("n", [0, 1, 2, 5, 14, 15])
def test_report_route_for_short_or_killed_sessions(tmp_path, n):
    db = _make_store(tmp_path / "sessions.db", n_predictions=n)  # never ended: as after SIGKILL
    before = _digest(db)
    with TestClient(create_app(db), base_url=BASE) as c:
        r = c.get("/sessions/1/report")
    assert r.status_code == 200, r.text[:500]
    assert r.text.startswith("<!DOCTYPE html>") and "P-1" in r.text
    assert _digest(db) == before


@pytest.mark.parametrize(
    ("sql", "path"),
    [
        ("UPDATE sessions SET meta = '{oops' WHERE id = 1", "/api/sessions"),
        ("UPDATE predictions SET probabilities = 'nan]' WHERE id = 2", "/api/sessions/1/predictions"),
        ("UPDATE predictions SET t = 'abc' WHERE id = 3", "/sessions/1/report"),
    ],
)
def test_corrupt_store_row_is_a_4xx_naming_the_row(db, sql, path):
    con = sqlite3.connect(db)
    con.execute(sql)
    con.commit()
    con.close()
    before = _digest(db)
    with TestClient(create_app(db), base_url=BASE, raise_server_exceptions=False) as c:
        r = c.get(path)
    assert r.status_code == 400, r.text[:300]
    msg = r.json()["message"]
    assert msg.startswith(str(db)) and "row" in msg and "(corrupt row)" in msg
    assert _digest(db) == before


# ------------------------------------------------------------------ a real server


@pytest.fixture
def server(db):
    """uvicorn on a free loopback port, in a thread; yields (port, db)."""
    import uvicorn

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = uvicorn.Server(uvicorn.Config(create_app(db, host="127.0.0.1", poll_s=0.05), host="127.0.0.1",
                                        port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t0 = time.monotonic()
    while not srv.started:
        if time.monotonic() - t0 > 20:
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield port, db
    srv.should_exit = True
    th.join(10)


def test_chunked_body_is_limited_as_it_streams(server):
    """A 100 MB body in chunks (no Content-Length): 413 after the first 16 KB, memory flat."""
    port, db = server
    before = _digest(db)

    def chunks():
        for _ in range(100):
            yield b"x" * (1 << 20)

    tracemalloc.start()
    try:
        try:
            r = httpx.post(f"http://127.0.0.1:{port}/api/sessions/1/segments", content=chunks(),
                           headers={"content-type": "application/json"}, timeout=60)
            status, text = r.status_code, r.text
        except httpx.HTTPError:  # the server may close while the client still sends
            status, text = 413, ""
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 413, text
    assert peak < 16 << 20, f"{peak / 1e6:.0f} MB traced while a 100 MB body was refused"
    assert _digest(db) == before


def test_small_chunked_body_is_accepted(server):
    port, db = server

    def chunks():
        yield b'{"track": "chunked", '
        yield b'"start": 2}'

    r = httpx.post(f"http://127.0.0.1:{port}/api/sessions/1/segments", content=chunks(),
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 201, r.text
    with SessionStore(db) as s:
        assert "chunked" in [x.track for x in s.segments(1)]


def _raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        out = b""
        while b"\r\n\r\n" not in out:
            part = s.recv(65536)
            if not part:
                break
            out += part
        return out


@pytest.mark.parametrize(
    ("host_line", "status"),
    [
        (b"Host: evil.example\r\n", b"400"),
        (b"Host: 127.0.0.1\r\n", b"200"),
        (b"", b"400"),  # HTTP/1.1 without Host: refused (by uvicorn/h11, or by us)
    ],
)
def test_raw_host_headers_on_a_real_server(server, host_line, status):
    port, db = server
    before = _digest(db)
    reply = _raw_request(port, b"GET /api/sessions HTTP/1.1\r\n" + host_line + b"Connection: close\r\n\r\n")
    assert reply.split(b" ", 2)[1] == status, reply[:200]
    assert _digest(db) == before


def test_dns_rebinding_page_cannot_read_the_dashboard(server):
    """What a rebinding attack sends: our address, the attacker's name. No data comes back."""
    port, _ = server
    r = httpx.get(f"http://127.0.0.1:{port}/api/sessions", headers={"host": f"attacker.example:{port}"})
    assert r.status_code == 400 and "P-1" not in r.text
    r = httpx.get(f"http://127.0.0.1:{port}/api/sessions/1/stream?max_s=0.3",
                  headers={"host": f"attacker.example:{port}"})
    assert r.status_code == 400 and "event:" not in r.text


def test_event_stream_passes_the_guard(server):
    """The guard reads the (empty) body of a GET up front: the event stream still flows and ends."""
    port, _ = server
    r = httpx.get(f"http://127.0.0.1:{port}/api/sessions/1/stream?max_s=0.5", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "event: predictions" in r.text and "event: segments" in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
