"""The dashboard's live-calibration API over a real SQLite store and a real tiny model
(FastAPI TestClient): rate segments, calibrate, list a listener's calibrations, use one
in their next session; every error one line, nothing stored lost."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient

from symaffect.models import build_model, save_checkpoint
from symaffect.serve.app import create_app
from symaffect.stream.store import SessionStore

from . import calibration_data as cd
from .session_data import make_store

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return cd.make_run(tmp_path_factory.mktemp("serve-calib") / "run")


@pytest.fixture
def db(tmp_path, run):
    path = tmp_path / "sessions.db"
    with SessionStore(path) as s:
        cd.add_session(s, run)  # session 1, P-042, segments 1-3 (3 still playing)
        other = s.create_session("P-099", "symaffect", run_dir=str(run))  # session 2: another listener
        s.add_segment(other, "X", 1.0, 5.0)  # segment 4
    return path


@pytest.fixture
def client(db):
    with TestClient(create_app(db, poll_s=0.05), base_url=BASE) as c:
        yield c


def _one_line(r) -> str:
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail, r.text
    return detail


def _rate(client, sid, seg, **ratings):
    return client.post(f"/api/sessions/{sid}/segments/{seg}/ratings", json=ratings)


def test_rate_segments_and_rerate(client, db):
    r = _rate(client, 1, 1, valence=7.5, arousal=3, liking=8)
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["segment_id"], out["valence"], out["arousal"], out["liking"]) == (1, 7.5, 3.0, 8.0)
    assert (out["n_rated"], out["can_calibrate"]) == (1, False)
    r = _rate(client, 1, 1, liking=2)  # re-rating replaces
    assert r.status_code == 201 and r.json()["valence"] is None and r.json()["n_rated"] == 1
    assert _rate(client, 1, 2, valence=9).json()["can_calibrate"] is True
    listed = client.get("/api/sessions/1/ratings").json()
    assert [(x["segment_id"], x["liking"]) for x in listed["ratings"]] == [(1, 2.0), (2, None)]
    detail = client.get("/api/sessions/1").json()
    assert len(detail["ratings"]) == 2 and detail["calibration"]["label"] == "base model"
    with SessionStore(db) as s:
        assert len(s.segment_ratings(1, history=True)) == 3


BAD = [
    ({"valence": 0}, 422, "valence: Input should be greater than or equal to 1"),
    ({"valence": 10}, 422, "valence: Input should be less than or equal to 9"),
    ({"arousal": "5"}, 422, "arousal: Input should be a valid number"),
    ({"liking": True}, 422, "liking: Input should be a valid number"),
    ({}, 422, "request: give at least one of valence, arousal, liking (1-9)"),
    ({"valence": None}, 422, "request: give at least one of valence, arousal, liking (1-9)"),
    ({"valence": 5, "dominance": 5}, 422, "dominance: Extra inputs are not permitted"),
    ([5, 5, 5], 422, "request: Input should be a valid dictionary or instance of RatingIn"),
]


@pytest.mark.parametrize(("body", "status", "detail"), BAD)
def test_bad_ratings_are_one_line_and_lose_nothing(client, db, body, status, detail):
    assert _rate(client, 1, 1, valence=6).status_code == 201
    r = client.post("/api/sessions/1/segments/1/ratings", json=body)
    assert r.status_code == status and _one_line(r) == detail
    with SessionStore(db) as s:
        (row,) = s.segment_ratings(1, history=True)
        assert row.valence == 6.0 and row.superseded_at is None


@pytest.mark.parametrize(
    ("url", "body", "status", "detail"),
    [
        ("/api/sessions/1/segments/1/ratings", b'{"valence": NaN}', 422, "valence: Input should be a finite number"),
        ("/api/sessions/1/segments/1/ratings", b'{"valence": Infinity}', 422,
         "valence: Input should be a finite number"),
        ("/api/sessions/1/segments/1/ratings", b"{valence: 5", 422, "body: not valid JSON"),
        ("/api/sessions/1/segments/1/ratings", b"", 422, "body: a JSON object is required"),
        ("/api/sessions/1/segments/99/ratings", b'{"valence": 5}', 404, "segment 99 not found in session 1"),
        ("/api/sessions/1/segments/4/ratings", b'{"valence": 5}', 404, "segment 4 not found in session 1"),
        ("/api/sessions/42/segments/1/ratings", b'{"valence": 5}', 404, "session 42 not found"),
        ("/api/sessions/1/segments/3/ratings", b'{"valence": 5}', 422,
         "segment: segment 3 is still playing: rate it once it has ended"),
    ],
)
def test_raw_bodies_and_unknown_segments(client, db, url, body, status, detail):
    r = client.post(url, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and _one_line(r) == detail
    with SessionStore(db) as s:
        assert s.segment_ratings(1) == [] and s.segment_ratings(2) == []


def test_form_posts_are_refused(client):
    r = client.post("/api/sessions/1/segments/1/ratings", content=b"valence=5",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and _one_line(r) == "body: send JSON (Content-Type: application/json)"


def test_calibrate_needs_two_rated_segments(client, db):
    r = client.post("/api/sessions/1/calibrate")
    assert r.status_code == 422 and _one_line(r) == "calibration needs at least 2 rated segments, 0 so far"
    _rate(client, 1, 1, valence=8)
    r = client.post("/api/sessions/1/calibrate")
    assert r.status_code == 422 and _one_line(r) == "calibration needs at least 2 rated segments, 1 so far"
    assert client.post("/api/sessions/1/calibrate", json={"method": "magic"}).status_code == 422
    assert client.post("/api/sessions/42/calibrate").status_code == 404
    with SessionStore(db) as s:
        assert s.calibrations(cd.PARTICIPANT) == []


def test_calibrate_then_offer_it_at_the_next_session(client, db, run):
    _rate(client, 1, 1, valence=8, arousal=3, liking=7)
    _rate(client, 1, 2, valence=7, liking=8)
    r = client.post("/api/sessions/1/calibrate")
    assert r.status_code == 201, r.text
    fit = r.json()
    assert fit["label"] == "calibrated (threshold, K = 2)" and fit["k"] == 2 and fit["active"] is True
    assert fit["participant"] == cd.PARTICIPANT and fit["seconds"] < 10 and fit["segments"] == [1, 2]
    state = client.get("/api/sessions/1/calibration").json()
    assert (state["label"], state["calibration_id"]) == ("calibrated (threshold, K = 2)", fit["calibration_id"])

    listed = client.get(f"/api/participants/{cd.PARTICIPANT}/calibrations").json()
    assert [c["id"] for c in listed] == [fit["calibration_id"]]
    assert listed[0]["session_id"] == 1 and listed[0]["tracks"] == ["1", "2"] and "calibration" not in listed[0]
    r = client.get("/api/participants/nobody/calibrations")
    assert r.status_code == 404 and _one_line(r) == "participant 'nobody' not found"
    assert client.get("/api/participants/P-099/calibrations").json() == []  # known, none stored

    with SessionStore(db) as s:  # the listener's next session
        nxt, _ = cd.add_session(s, run, seconds=6.0, seed=5)
        stranger = s.create_session("P-099", "symaffect", run_dir=str(run))
    assert client.get(f"/api/sessions/{nxt}/calibration").json()["label"] == "base model"
    r = client.post(f"/api/sessions/{nxt}/calibration", json={"calibration_id": fit["calibration_id"]})
    assert r.status_code == 200, r.text
    assert (r.json()["label"], r.json()["calibration_id"]) == ("calibrated (threshold, K = 2)", fit["calibration_id"])
    with SessionStore(db) as s:
        assert s.active_calibration(nxt).calibration_id == fit["calibration_id"]

    for body, status, detail in [
        ({"calibration_id": 999}, 404, "calibration 999 not found"),
        ({"calibration_id": "1"}, 422, "calibration_id: Input should be a valid integer"),
        ({"calibration_id": 0}, 422, "calibration_id: Input should be greater than or equal to 1"),
        ({}, 422, "calibration_id: Field required"),
    ]:
        r = client.post(f"/api/sessions/{nxt}/calibration", json=body)
        assert r.status_code == status and _one_line(r) == detail
    r = client.post(f"/api/sessions/{stranger}/calibration", json={"calibration_id": fit["calibration_id"]})
    assert r.status_code == 422 and _one_line(r) == (
        f"calibration: calibration {fit['calibration_id']} belongs to another listener")
    r = client.post(f"/api/sessions/{nxt}/calibration", json={"calibration_id": None})  # back to the base model
    assert r.status_code == 200 and r.json()["label"] == "base model"
    with SessionStore(db) as s:
        assert s.active_calibration(stranger) is None
        assert s.active_calibration(nxt).calibration_id is None


def test_pooled_refits_on_the_models_population_and_needs_its_pool(client, db, run):
    _rate(client, 1, 1, valence=8, arousal=3, liking=7)
    _rate(client, 1, 2, valence=2, arousal=7, liking=3)
    r = client.post("/api/sessions/1/calibrate", json={"method": "pooled"})
    assert r.status_code == 201, r.text
    assert r.json()["label"] == "calibrated (pooled, K = 2)" and r.json()["seconds"] < 10
    with SessionStore(db) as s:
        stored = s.calibrations(cd.PARTICIPANT)
    assert [c.method for c in stored] == ["pooled"]


def test_the_server_chooses_the_method_when_the_request_names_none(db):
    from symaffect.errors import ConfigError

    with TestClient(create_app(db, poll_s=0.05, calibration_method="pooled"), base_url=BASE) as c:
        _rate(c, 1, 1, valence=8, arousal=3, liking=7)
        _rate(c, 1, 2, valence=2, arousal=7, liking=3)
        assert c.post("/api/sessions/1/calibrate").json()["label"] == "calibrated (pooled, K = 2)"
        r = c.post("/api/sessions/1/calibrate", json={"method": "threshold"})  # the request wins
        assert r.json()["label"] == "calibrated (threshold, K = 2)"
    with pytest.raises(ConfigError, match="calibration method 'magic' is not one of"):
        create_app(db, calibration_method="magic")


def test_pooled_with_a_model_that_has_no_pool_is_one_line_and_stores_nothing(tmp_path, run):
    from symaffect.errors import DataError
    from symaffect.stream.calibrate import calibrate_session
    from symaffect.stream.pipeline import Predictor

    old = tmp_path / "old-run"  # a model written before the pool was stored
    old.mkdir()
    payload = torch.load(run / "model.pt", weights_only=True)
    payload["extra"].pop("calibration_pool")
    torch.save(payload, old / "model.pt")
    with SessionStore(tmp_path / "s.sqlite") as s:
        sid, segs = cd.add_session(s, old, end=True)
        for seg, v in zip(segs[:2], (8.0, 2.0)):
            s.rate_segment(sid, seg, valence=v, arousal=5.0, liking=5.0)
        with pytest.raises(DataError, match="needs the model's calibration pool") as e:
            calibrate_session(s, sid, Predictor(old), method="pooled")
        assert "\n" not in str(e.value)
        assert s.calibrations(cd.PARTICIPANT) == []
        assert calibrate_session(s, sid, Predictor(old), method="threshold").calibration.method == "threshold"


def test_a_calibration_of_another_model_is_refused(client, db, tmp_path):
    _rate(client, 1, 1, valence=8)
    _rate(client, 1, 2, valence=7)
    cid = client.post("/api/sessions/1/calibrate").json()["calibration_id"]
    other = cd.make_run(tmp_path / "other-run")
    torch.manual_seed(99)  # another model of the same shapes
    save_checkpoint(other / "model.pt", build_model("symaffect", **cd.TINY), name="symaffect", kwargs=cd.TINY,
                    extra={"window_seconds": 2.0, "preprocess": {}})
    with SessionStore(db) as s:
        nxt, _ = cd.add_session(s, other, seconds=6.0, seed=5)
    r = client.post(f"/api/sessions/{nxt}/calibration", json={"calibration_id": cid})
    assert r.status_code == 422 and _one_line(r) == "calibration: it was fitted on another model than this session's"


def test_a_session_whose_model_is_not_here_cannot_be_calibrated(tmp_path):
    path, sid = make_store(tmp_path / "s.db", n=330)  # run_dir "runs/demo", no embeddings
    with TestClient(create_app(path), base_url=BASE) as c:
        assert _rate(c, sid, 1, valence=8).status_code == 201
        assert _rate(c, sid, 2, valence=2).status_code == 201
        r = c.post(f"/api/sessions/{sid}/calibrate")
        assert r.status_code == 422
        assert _one_line(r) == f"session {sid}'s model ('runs/demo') is not on this machine: calibration needs it"


def test_writes_keep_the_apps_guards(db, run):
    """Token, same-origin writes and the body limit hold on the new routes too."""
    with TestClient(create_app(db, token="s3cret-token"), base_url=BASE) as c:
        assert c.post("/api/sessions/1/segments/1/ratings", json={"valence": 5}).status_code == 401
        assert c.get(f"/api/participants/{cd.PARTICIPANT}/calibrations").status_code == 401
        auth = {"authorization": "Bearer s3cret-token"}
        r = c.post("/api/sessions/1/segments/1/ratings", json={"valence": 5},
                   headers={**auth, "origin": "http://evil.example"})
        assert r.status_code == 403
        r = c.post("/api/sessions/1/calibrate", content=b"{" + b" " * 20_000 + b"}",
                   headers={**auth, "content-type": "application/json"})
        assert r.status_code == 413
        assert c.post("/api/sessions/1/segments/1/ratings", json={"valence": 5}, headers=auth).status_code == 201
    with SessionStore(db) as s:
        assert len(s.segment_ratings(1)) == 1 and s.calibrations(cd.PARTICIPANT) == []


def test_the_event_stream_tells_ratings_and_calibration(client):
    _rate(client, 1, 1, valence=8)
    _rate(client, 1, 2, valence=7)
    assert client.post("/api/sessions/1/calibrate").status_code == 201
    r = client.get("/api/sessions/1/stream", params={"max_s": 0.2})
    assert "event: ratings\n" in r.text and "event: calibration\n" in r.text
    assert "calibrated (threshold, K = 2)" in r.text
