"""The dashboard's HTTP API over a real SQLite store (FastAPI TestClient, no browser)."""

from __future__ import annotations

import html
import json
import re

import pytest
from fastapi.testclient import TestClient

from symaffect.errors import ConfigError
from symaffect.serve.app import check_bind, create_app, dashboard_spec, is_loopback
from symaffect.serve.palette import QUADRANT_COLORS
from symaffect.spec import QUADRANT_CODES, QUADRANT_RULE
from symaffect.stream.store import SessionStore

from .session_data import SEGMENTS, make_prediction, make_store

BASE = "http://127.0.0.1:8765"  # the Host header must name this server (loopback)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One store for the read-only tests (filling it takes a fraction of a second)."""
    path, _ = make_store(tmp_path_factory.mktemp("serve") / "sessions.db", n=400)
    return path


@pytest.fixture(scope="module")
def client(shared_store):
    """A client for tests that do not change the store."""
    with TestClient(create_app(shared_store, poll_s=0.05), base_url=BASE) as c:
        yield c


@pytest.fixture
def store_path(tmp_path):
    path, _ = make_store(tmp_path / "sessions.db", n=400)
    return path


@pytest.fixture
def rw_client(store_path):
    """A client over a fresh store, for tests that write."""
    with TestClient(create_app(store_path, poll_s=0.05), base_url=BASE) as c:
        yield c


def test_healthz_and_sessions(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    sessions = client.get("/api/sessions").json()
    assert [s["id"] for s in sessions] == [1]
    assert sessions[0]["participant"] == "P-007"
    assert sessions[0]["n_predictions"] == 370  # 400 hops minus the 30-s gap


def test_session_detail_has_segments_and_quality(client):
    out = client.get("/api/sessions/1").json()
    assert out["session"]["id"] == 1
    assert [s["track"] for s in out["segments"]] == [s[0] for s in SEGMENTS]
    assert {q["flag"] for q in out["quality"]} == {"flat", "gap"}
    assert out["modalities"] == ["eeg", "peripheral", "eog"]


def test_predictions_since(client):
    all_ = client.get("/api/sessions/1/predictions").json()
    assert len(all_) == 370
    assert {"t", "valence", "arousal", "liking", "quadrant", "modalities_used", "flags"} <= set(all_[0])
    later = client.get("/api/sessions/1/predictions", params={"since": 390}).json()
    assert [p["t"] for p in later] == [float(t) for t in range(391, 400)]


def test_api_json_is_the_rows_as_dicts(client, shared_store):
    """The dashboard's JSON: each typed store row's ``to_dict()``, unchanged."""
    with SessionStore(shared_store) as s:
        session, segments, quality = s.session(1), s.segments(1), s.quality(1)
        predictions = s.predictions(1)
    out = client.get("/api/sessions/1").json()
    assert out["session"] == session.to_dict()
    assert out["segments"] == [g.to_dict() for g in segments]
    assert out["quality"] == [q.to_dict() for q in quality]
    assert client.get("/api/sessions/1/predictions").json() == [p.to_dict() for p in predictions]
    assert client.get("/api/sessions").json() == [session.to_dict()]


def test_page_carries_the_quadrant_spec(client):
    """The page hands the script the codes, colours and Neutral box of symaffect.spec."""
    page = client.get("/sessions/1").text
    (attr,) = re.findall(r"data-affect='([^']*)'", page)
    affect = json.loads(html.unescape(attr))
    assert affect == json.loads(json.dumps(dashboard_spec()))
    assert [q["code"] for q in affect["quadrants"]] == list(QUADRANT_CODES)
    assert {q["code"]: q["color"] for q in affect["quadrants"]} == QUADRANT_COLORS
    neutral = affect["quadrants"][-1]
    assert neutral["code"] == "Neutral" and neutral["axes"] is None and neutral["color"] == "#9a9a9a"
    assert (affect["threshold"], affect["neutral_band"]) == (QUADRANT_RULE.threshold, QUADRANT_RULE.neutral_band)


def test_post_segment_is_stored(rw_client, store_path):
    client = rw_client
    r = client.post("/api/sessions/1/segments", json={"track": "  Gymnopédie No. 1 ", "start": 10.5, "end": 40})
    assert r.status_code == 201, r.text
    assert r.json()["track"] == "Gymnopédie No. 1"
    with SessionStore(store_path) as s:
        segs = s.segments(1)
    new = [x for x in segs if x.source == "api"]
    assert len(new) == 1 and new[0].start == 10.5 and new[0].end == 40.0
    open_ = client.post("/api/sessions/1/segments", json={"track": "open", "start": 5})
    assert open_.status_code == 201 and open_.json()["end"] is None


MALFORMED = [
    ("get", "/api/sessions/0", None, 422),
    ("get", "/api/sessions/-3", None, 422),
    ("get", "/api/sessions/abc", None, 422),
    ("get", "/api/sessions/1.5", None, 422),
    ("get", "/api/sessions/99999999999999999999999999", None, 422),
    ("get", "/api/sessions/9223372036854775807", None, 404),
    ("get", "/api/sessions/42", None, 404),
    ("get", "/api/sessions/42/predictions", None, 404),
    ("get", "/api/sessions/1/predictions?since=-1", None, 422),
    ("get", "/api/sessions/1/predictions?since=nan", None, 422),
    ("get", "/api/sessions/1/predictions?since=inf", None, 422),
    ("get", "/api/sessions/1/predictions?since=soon", None, 422),
    ("get", "/api/sessions/1/stream?max_s=0", None, 422),
    ("get", "/api/sessions/42/stream", None, 404),
    ("get", "/sessions/42", None, 404),
    ("get", "/sessions/42/report", None, 404),
    ("get", "/sessions/x/report", None, 422),
    ("get", "/static/../app.py", None, 404),
    ("get", "/static/secrets.txt", None, 404),
    ("post", "/api/sessions/42/segments", {"track": "a", "start": 1}, 404),
    ("post", "/api/sessions/1/segments", {"track": "", "start": 1}, 422),
    ("post", "/api/sessions/1/segments", {"track": "   ", "start": 1}, 422),
    ("post", "/api/sessions/1/segments", {"track": "x" * 201, "start": 1}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a\x00b", "start": 1}, 422),
    ("post", "/api/sessions/1/segments", {"track": 5, "start": 1}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a", "start": -1}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a", "start": "10"}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a", "start": True}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a", "start": 1e12}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a", "start": 10, "end": 5}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a", "start": 10, "end": 10}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a"}, 422),
    ("post", "/api/sessions/1/segments", {"track": "a", "start": 1, "colour": "red"}, 422),
    ("post", "/api/sessions/1/segments", [1, 2, 3], 422),
    ("post", "/api/sessions/1/segments", "just a string", 422),
    ("post", "/api/sessions/1/segments", None, 422),
]


@pytest.mark.parametrize(("method", "url", "body", "status"), MALFORMED)
def test_malformed_requests_get_4xx_with_message(client, method, url, body, status):
    r = client.request(method, url, json=body) if body is not None else client.request(method, url)
    assert r.status_code == status, (url, body, r.text)
    if r.headers.get("content-type", "").startswith("application/json"):
        msg = r.json()["message"]
        assert isinstance(msg, str) and msg


def test_bad_json_and_huge_body(client):
    r = client.post("/api/sessions/1/segments", content=b"{track: oops", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "json" in r.json()["message"].lower()
    r = client.post("/api/sessions/1/segments", content=b"[" * 10_000, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and r.json()["message"]  # too deep to parse: 400
    r = client.post("/api/sessions/1/segments", json={"track": "x" * 100_000, "start": 1})
    assert r.status_code == 413
    r = client.post("/api/sessions/1/segments", content=b"track=a&start=1",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422
    # NaN is not JSON but Python's json emits it; it must still be refused
    r = client.post("/api/sessions/1/segments", content=b'{"track": "a", "start": NaN}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_stream_pushes_new_predictions(rw_client, store_path):
    client = rw_client
    with SessionStore(store_path) as s:
        s.add_prediction(1, make_prediction(400.0, 6.0, 6.0, 6.0))
    r = client.get("/api/sessions/1/stream", params={"since": 395, "max_s": 0.3})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = re.findall(r"event: (\w+)\n(?:id: [^\n]*\n)?data: ([^\n]*)\n\n", r.text)
    kinds = [k for k, _ in events]
    assert kinds[0] == "predictions" and "segments" in kinds and "ended" in kinds
    preds = json.loads(events[0][1])
    assert [p["t"] for p in preds] == [396.0, 397.0, 398.0, 399.0, 400.0]
    assert "id: 400.0" in r.text


def test_pages_are_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert "Session #1" in html and "/sessions/1/report" in html
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert src.startswith("/"), f"external resource {src}"
    assert "cdn" not in html.lower()
    assert "default-src 'none'" in page.headers["content-security-policy"]
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert js.headers["content-type"].startswith("application/javascript")
    assert client.get("/static/dashboard.js").status_code == 200
    report = client.get("/sessions/1/report")
    assert report.status_code == 200
    assert "data:image/png;base64," in report.text
    assert not re.search(r'(?:src|href)="https?://', report.text)


def test_token_required_when_set(store_path):
    with TestClient(create_app(store_path, token="s3cret-token"), base_url=BASE) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/api/sessions").status_code == 401
        assert c.get("/").status_code == 401
        assert c.get("/api/sessions", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        assert c.get("/api/sessions", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert c.get("/api/sessions?token=s3cret-token").status_code == 200
        page = c.get("/?token=s3cret-token")
        assert page.status_code == 200 and "/static/dashboard.js?token=s3cret-token" in page.text
        r = c.post("/api/sessions/1/segments", json={"track": "a", "start": 1})
        assert r.status_code == 401


def test_bind_rules():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "long-enough-token")
    with pytest.raises(ConfigError, match="token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigError, match="8 characters"):
        check_bind("0.0.0.0", "short")
