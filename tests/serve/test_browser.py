"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium via Playwright).

A uvicorn server runs in a background thread on a free loopback port over a real store;
a writer thread stores new predictions while the page is open, and the test checks that
the live points arrive in the plot, the latest-value text and the quadrant marker move,
and the quality badges render. Set ``SYMAFFECT_SAVE_SCREENSHOT=1`` to also write
``docs/img/dashboard.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from symaffect.stream.store import SessionStore

from .session_data import make_prediction

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_store(tmp_path):
    """A live (not ended) session: 300 s of predictions, the three segments, one flag."""
    path = tmp_path / "sessions.db"
    rng = np.random.default_rng(0)
    with SessionStore(path) as s:
        sid = s.create_session("P-007", "dtfe-multitask")
        s.add_segment(sid, "Clair de lune", 60.0, 180.0, source="lsl")
        s.add_segment(sid, "Drumming", 195.0, 250.0, source="lsl")
        s.add_segment(sid, "Here Comes the Sun", 255.0, None, source="api")
        s.add_quality(sid, 100.0, "eeg", "flat", "20 s flat")
        for i in range(300):
            t = float(i)
            v = 4.0 + 3.0 * (60 <= t < 180) + 2.0 * (t >= 255) + 0.6 * (rng.random() - 0.5)
            a = 4.0 + 3.5 * (195 <= t < 250) + 0.6 * (rng.random() - 0.5)
            s.add_prediction(sid, make_prediction(t, v, a, 5.0 + 2.0 * (t >= 255) + 0.4 * (rng.random() - 0.5)))
    return path, sid


@pytest.fixture
def server(live_store):
    uvicorn = pytest.importorskip("uvicorn")
    from symaffect.serve.app import create_app

    path, sid = live_store
    port = _free_port()
    config = uvicorn.Config(create_app(path, poll_s=0.2), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", path, sid
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_live_points_arrive_in_the_page(server, browser, tmp_path):
    base, db, sid = server
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    requests, problems = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    page.goto(f"{base}/sessions/{sid}")
    page.wait_for_function("() => document.body.dataset.points === '300'", timeout=15_000)
    n0 = page.evaluate("document.getElementById('traj').data[0].x.length")
    marker0 = page.evaluate("document.getElementById('plane').data[1].x[0]")
    assert page.inner_text("#v-time") == "4:59"
    assert page.get_attribute("#badge-eeg", "data-state") == "ok"
    page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=10_000)

    def writer():
        with SessionStore(db) as s:
            for i in range(300, 320):
                t = float(i)
                used, flags = ("eeg", "peripheral", "eog"), ()
                if i == 319:  # the last hop loses EOG
                    used, flags = ("eeg", "peripheral"), ("eog:flat",)
                s.add_prediction(sid, make_prediction(t, 3.0, 7.5, 4.0, used=used, flags=flags))
                time.sleep(0.1)

    w = threading.Thread(target=writer)
    w.start()
    w.join(timeout=30)
    page.wait_for_function("() => document.body.dataset.points === '320'", timeout=15_000)

    assert page.evaluate("document.getElementById('traj').data[0].x.length") == n0 + 20
    assert page.inner_text("#n-points") == "320"
    assert page.inner_text("#v-time") == "5:19"
    assert float(page.inner_text("#v-arousal")) > 6.5
    assert page.inner_text("#v-quadrant") == "Q2"
    marker1 = page.evaluate("document.getElementById('plane').data[1].x[0]")
    assert marker1 < marker0 - 2  # the current point moved from high to low valence
    assert page.get_attribute("#badge-eeg", "data-state") == "ok"
    assert page.get_attribute("#badge-peripheral", "data-state") == "ok"
    assert page.get_attribute("#badge-eog", "data-state") == "dropped"
    assert "Here Comes the Sun" in page.inner_text("#now-playing")
    n_shapes = page.evaluate("document.getElementById('traj').layout.shapes.length")
    assert n_shapes == 3
    assert "P-007" in page.inner_text("#sessions")
    assert page.get_attribute("#sessions a[href$=report]", "href") == f"/sessions/{sid}/report"

    # a marker posted from the page's form reaches the store and the plot
    page.click("details.marker summary")
    page.fill("input[name=track]", "Closing song")
    page.fill("input[name=start]", "310")
    page.click("#segment-form button")
    page.wait_for_function(
        "() => document.getElementById('traj').layout.shapes.length === 4", timeout=10_000
    )
    with SessionStore(db) as s:
        assert [x.track for x in s.segments(sid)][-1] == "Closing song"
    page.click("details.marker summary")

    # Neutral is a quadrant: its box is on the plane and a point inside it reads "Neutral"
    plane_shapes = page.evaluate("document.getElementById('plane').layout.shapes.map(s => s.name || '')")
    assert plane_shapes[:5] == ["Q1", "Q2", "Q3", "Q4", "Neutral"]
    box = page.evaluate("document.getElementById('plane').layout.shapes[4]")
    assert (box["x0"], box["x1"], box["y0"], box["y1"]) == (4, 6, 4, 6)
    with SessionStore(db) as s:
        s.add_prediction(sid, make_prediction(320.0, 5.0, 5.0, 5.0))
    page.wait_for_function("() => document.body.dataset.points === '321'", timeout=15_000)
    assert page.inner_text("#v-quadrant") == "Neutral"
    assert page.evaluate("document.getElementById('plane').data[1].marker.color") == "#9a9a9a"

    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]
    assert not problems, problems
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("SYMAFFECT_SAVE_SCREENSHOT"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "img" / "dashboard.png")

    report = browser.new_page()
    report.goto(f"{base}/sessions/{sid}/report")
    assert "Session report: P-007" in report.inner_text("h1")
    assert report.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.close()
    report.close()


@pytest.fixture
def calibration_server(tmp_path):
    """A live session of a real tiny model (embeddings stored): two ended segments, one playing."""
    uvicorn = pytest.importorskip("uvicorn")
    from symaffect.serve.app import create_app

    from . import calibration_data as cd

    run = cd.make_run(tmp_path / "run")
    path = tmp_path / "sessions.db"
    with SessionStore(path) as s:
        sid, segs = cd.add_session(s, run)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(path, poll_s=0.2), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", path, sid, segs, run
    srv.should_exit = True
    thread.join(timeout=10)


def test_rate_two_segments_and_calibrate_in_the_page(calibration_server, browser, tmp_path):
    from . import calibration_data as cd

    base, db, sid, segs, run = calibration_server
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "422" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 and r.status != 422
            else None)
    page.goto(f"{base}/sessions/{sid}")
    page.wait_for_function("() => document.getElementById('active-model').textContent === 'base model'",
                           timeout=15_000)
    page.wait_for_selector(f"#rate-{segs[2]}")
    assert page.is_disabled("#calibrate")
    assert page.is_disabled(f"#rate-{segs[2]} input[name=valence]")  # still playing
    assert page.inner_text(f"#rate-{segs[0]} .track") == "Clair de lune"

    def rate(seg, **values):
        for k, v in values.items():
            page.fill(f"#rate-{seg} input[name={k}]", str(v))
        page.click(f"#rate-{seg} button.rate")

    rate(segs[0], valence=8, arousal=3, liking=7)
    page.wait_for_function(f"() => document.querySelector('#rate-{segs[0]} .status').textContent === 'saved'")
    rate(segs[1], valence=12)  # out of range: the server's one line is shown, nothing stored
    page.wait_for_function(f"() => document.querySelector('#rate-{segs[1]} .status').textContent.includes('9')")
    assert page.inner_text(f"#rate-{segs[1]} .status") == "valence: Input should be less than or equal to 9"
    assert page.is_disabled("#calibrate")
    rate(segs[1], valence=7, liking=8)
    page.wait_for_function(f"() => document.querySelector('#rate-{segs[1]} .status').textContent === 'saved'")
    page.wait_for_function("() => !document.getElementById('calibrate').disabled")
    page.click("#calibrate")
    page.wait_for_function(
        "() => document.getElementById('active-model').textContent === 'calibrated (threshold, K = 2)'", timeout=30_000)
    assert "calibrated from 2 segments" in page.inner_text("#calibration-msg")
    with SessionStore(db) as s:
        assert [(r.segment_id, r.valence) for r in s.segment_ratings(sid)] == [(segs[0], 8.0), (segs[1], 7.0)]
        (cal,) = s.calibrations(cd.PARTICIPANT)
        assert s.active_calibration(sid).calibration_id == cal.id
        nxt, _ = cd.add_session(s, run, seconds=6.0, seed=5)  # the listener's next session

    # the next session offers the stored calibration; using it changes the active model
    page.goto(f"{base}/sessions/{nxt}")
    page.wait_for_function("() => document.getElementById('active-model').textContent === 'base model'",
                           timeout=15_000)
    page.wait_for_selector("#offer:not([hidden])")
    assert "calibrated (threshold, K = 2)" in page.inner_text("#offer-select")
    page.click("#offer-use")
    page.wait_for_function(
        "() => document.getElementById('active-model').textContent === 'calibrated (threshold, K = 2)'", timeout=15_000)
    with SessionStore(db) as s:
        assert s.active_calibration(nxt).calibration_id == cal.id
    shot = tmp_path / "calibration.png"
    page.screenshot(path=str(shot), full_page=True)
    assert not problems, problems
    page.close()
