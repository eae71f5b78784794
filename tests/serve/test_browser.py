"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium via Playwright).

A uvicorn server runs in a background thread on a free loopback port over a real store;
a writer thread stores new predictions while the page is open, and the test checks that
the live points arrive in the plot, the latest-value text and the quadrant marker move,
and the quality badges render. Set ``SYMAFFECT_SAVE_SCREENSHOT=1`` to also write
``docs/img/dashboard.png``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
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
LINE = "document.getElementById('traj').data.find(d => d.meta.role === 'line' && d.meta.task === 'valence')"
LINE_X_LENGTH = LINE + ".x.length"
SEGMENT_SHAPES = "document.getElementById('traj').layout.shapes.filter(s => s.name === 'segment').length"


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


@contextlib.contextmanager
def _serving(path):
    """The dashboard over the store at ``path``, served by a real uvicorn on a free port;
    yields its base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    from symaffect.serve.app import create_app

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
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(live_store):
    path, sid = live_store
    with _serving(path) as base:
        yield base, path, sid


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


def _watch(page) -> tuple[list[str], list[str]]:
    """Record every URL the page requests, and every console error, page error and 4xx/5xx."""
    requests, problems = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return requests, problems


def test_live_points_arrive_in_the_page(server, browser, tmp_path):
    base, db, sid = server
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    requests, problems = _watch(page)

    page.goto(f"{base}/sessions/{sid}")
    page.wait_for_function("() => document.body.dataset.points === '300' && document.body.dataset.rows === '300'",
                           timeout=15_000)
    n0 = page.evaluate(LINE_X_LENGTH)
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
    page.wait_for_function("() => document.body.dataset.points === '320' && document.body.dataset.rows === '320'",
                           timeout=15_000)

    assert n0 == 300 and page.evaluate(LINE_X_LENGTH) == n0 + 20
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
    assert page.evaluate(SEGMENT_SHAPES) == 3
    assert "P-007" in page.inner_text("#sessions")
    assert page.get_attribute("#sessions a[href$=report]", "href") == f"/sessions/{sid}/report"

    # a marker posted from the page's form reaches the store and the plot
    page.click("details.marker summary")
    page.fill("input[name=track]", "Closing song")
    page.fill("input[name=start]", "310")
    page.click("#segment-form button")
    page.wait_for_function(f"() => {SEGMENT_SHAPES} === 4", timeout=10_000)
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
    from . import calibration_data as cd

    run = cd.make_run(tmp_path / "run")
    path = tmp_path / "sessions.db"
    with SessionStore(path) as s:
        sid, segs = cd.add_session(s, run)
    with _serving(path) as base:
        yield base, path, sid, segs, run


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


# --- the therapist's replay: dropped signals, low confidence, no estimate, vitals -------

DROP_OLD = range(40, 50)  # peripheral flat (stored before the page opens)
LOW_CONF = range(60, 70)  # every signal used, a broad (unsure) distribution
NO_PREDICTION = 75.0  # every signal dropped at this hop
DROP_LIVE = range(85, 90)  # peripheral flat again, while the page is open
LAST = 99  # the writer's last hop (all signals ok)


def _hop(s: SessionStore, sid: int, i: int) -> None:
    """Store hop ``i`` of the replay: its prediction (or its no-estimate rows) and flags."""
    t = float(i)
    if t == NO_PREDICTION:
        for m in ("eeg", "peripheral", "eog"):
            s.add_quality(sid, t, m, "flat", f"{m} flat")
        s.add_quality(sid, t, "all", "no_prediction", "eeg flat; peripheral flat; eog flat")
        return
    if i in DROP_OLD or i in DROP_LIVE:
        s.add_quality(sid, t, "peripheral", "flat", "GSR flat")
        pred = make_prediction(t, 6.0, 7.0, 6.0, used=("eeg", "eog"), flags=("peripheral:flat",), width=0.5)
        assert pred.confidence > 0.5  # two of three signals, a sure estimate: not low
    elif i in LOW_CONF:
        pred = make_prediction(t, 6.0, 3.0, 5.0, width=1.5)
    else:
        pred = make_prediction(t, 3.0 + 4.0 * (t >= 20), 3.0, 5.0, width=0.5)
    s.add_prediction(sid, pred)


@pytest.fixture
def replay_server(tmp_path):
    """A live session at 80 s: one track from 20 s, the stretches above, vitals and a strip."""
    from .session_data import peripheral_strip, peripheral_vitals

    path = tmp_path / "sessions.db"
    with SessionStore(path) as s:
        sid = s.create_session("P-011", "dtfe-multitask", meta={"hop": 1.0, "absent_modalities": []})
        s.add_segment(sid, "Track A", 20.0, None, source="lsl")
        for i in range(80):
            _hop(s, sid, i)
        s.add_quality(sid, 79.0, "stream", "stall", "no data for 2 s")
        s.add_vitals(sid, 78.0, peripheral_vitals(72.0))
        s.set_strips(sid, 78.0, [peripheral_strip()])
    with _serving(path) as base:
        yield base, path, sid


def _seconds(x: str) -> float:
    """A time of the dashboard's date axes ("1970-01-01 00:01:15.500") as s of stream time."""
    return (dt.datetime.fromisoformat(x) - dt.datetime(1970, 1, 1)).total_seconds()


def _shapes(page, name: str) -> list[tuple[float, float]]:
    """The trajectories' shapes called ``name`` as (start, end) in s of stream time."""
    got = page.evaluate(
        f"document.getElementById('traj').layout.shapes.filter(s => s.name === '{name}').map(s => [s.x0, s.x1])")
    return [(_seconds(a), _seconds(b)) for a, b in got]


def test_quality_shading_history_and_vitals_in_the_page(replay_server, browser, tmp_path):
    from .session_data import peripheral_strip, peripheral_vitals

    base, db, sid = replay_server
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    requests, problems = _watch(page)
    page.goto(f"{base}/sessions/{sid}")
    page.wait_for_function("() => document.body.dataset.rows === '79'", timeout=15_000)
    page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=10_000)

    # the stretches are shaded where they happened, each hop covering t ± 0.5 s
    assert _shapes(page, "dropped") == [(39.5, 49.5)]
    assert _shapes(page, "low-confidence") == [(59.5, 69.5)]
    assert _shapes(page, "no-prediction") == [(74.5, 75.5)]
    assert _shapes(page, "segment") == [(20.0, 79.0)]
    page.wait_for_function("() => document.getElementById('traj').layout.shapes.some(s => s.name === 'baseline')",
                           timeout=10_000)
    assert _shapes(page, "baseline") == [(0.0, 20.0)]  # the report's rule: before the first segment
    assert "before the first music segment" in page.inner_text("#baseline-rule")
    assert page.inner_text("#low-confidence") == "0.5"  # the report's LOW_CONFIDENCE, from the server
    # the curve breaks at the hop without an estimate, and carries its ± 1 sd band
    line = page.evaluate(LINE)
    xs = [_seconds(x) for x in line["x"]]
    i75 = xs.index(75.0)
    assert line["y"][i75] is None and xs[i75 - 1] == 74.0 and xs[i75 + 1] == 76.0
    band = page.evaluate("document.getElementById('traj').data.find(d => d.meta.role === 'band' && d.meta.task === 'valence')")
    assert band["fill"] == "toself"
    bx = [None if x is None else _seconds(x) for x in band["x"]]
    assert bx.count(None) == 2  # one closed band before and one after the hop without an estimate
    i62 = xs.index(62.0)
    sd62 = line["customdata"][i62]
    j_hi, j_lo = bx.index(62.0), len(bx) - 1 - bx[::-1].index(62.0)
    assert band["y"][j_hi] == pytest.approx(line["y"][i62] + sd62) and band["y"][j_lo] == pytest.approx(line["y"][i62] - sd62)
    assert sd62 > 1.2 and line["customdata"][10] < 0.6  # unsure: a wide band; sure: a narrow one

    # a stream outage is one plain sentence; the log speaks plain words, one line per stretch
    assert page.inner_text("#outage") == "At 1:19 the signal stream stopped (no data for 2 s)."
    log_text = page.inner_text("#quality-log")
    assert "0:40–0:49 peripheral: flat signal (sensor off?) — GSR flat" in log_text
    assert "1:15 no estimate (every signal dropped)" in log_text
    assert "stall" not in log_text

    # vitals and the raw strip of the peripheral signals
    page.wait_for_selector("#vitals-peripheral li[data-name=heart_rate]")
    assert page.inner_text("#vitals-peripheral li[data-name=heart_rate] b") == "72 bpm"
    assert page.get_attribute("#vitals-peripheral li[data-name=breathing_rate]", "data-status") == "implausible"
    assert "belt loose?" in page.inner_text("#vitals-peripheral li[data-name=breathing_rate]")
    strip = page.evaluate("document.getElementById('strip-peripheral').data.map(d => d.name)")
    assert strip == ["Plethysmograph", "Respiration belt", "GSR"]
    assert page.evaluate("document.getElementById('strip-peripheral').layout.yaxis.ticktext") == strip
    assert page.is_hidden("#strip-eeg")

    def writer():
        with SessionStore(db) as s:
            for i in range(80, LAST + 1):
                _hop(s, sid, i)
                if i == 90:
                    s.add_vitals(sid, 90.0, peripheral_vitals(80.0))
                    s.set_strips(sid, 90.0, [peripheral_strip(flat_gsr=True)])
                time.sleep(0.05)

    w = threading.Thread(target=writer)
    w.start()
    w.join(timeout=30)
    page.wait_for_function(f"() => document.body.dataset.rows === '{LAST}'", timeout=15_000)
    with SessionStore(db) as s:
        stored = s.session(sid).n_predictions
        assert stored == LAST  # 100 hops, one without an estimate
    page.wait_for_function(f"() => document.body.dataset.points === '{stored}'", timeout=10_000)
    assert page.inner_text("#n-points") == str(stored)

    # the last hop is all green; the badge keeps the dropped stretch of the last 30 s
    assert page.evaluate(f"{LINE}.y.slice(-1)[0]") == pytest.approx(7.0, abs=0.01)
    assert page.get_attribute("#badge-peripheral", "data-state") == "recent"
    assert page.get_attribute("#history-peripheral", "data-dropped") == "5"
    assert page.get_attribute("#history-peripheral", "data-none") == "1"  # the hop at 1:15
    assert page.inner_text("#history-text-peripheral") == "dropped in 5 of the last 30 s; no estimate in 1 s"
    cells = page.evaluate("Array.from(document.querySelectorAll('#history-peripheral .cell')).map(c => c.className)")
    assert len(cells) == 30 and cells[-1] == "cell ok"
    assert cells[15:20] == ["cell dropped"] * 5  # 1:25-1:29
    assert cells[5] == "cell none"  # 1:15
    assert page.get_attribute("#badge-peripheral", "title") == "now: ok"
    assert page.get_attribute("#badge-eeg", "data-state") == "recent"  # only the hop without estimate
    assert page.inner_text("#history-text-eeg") == "no estimate in 1 s"
    assert _shapes(page, "dropped") == [(39.5, 49.5), (84.5, 89.5)]

    # m:ss on the time axis
    ticks = page.evaluate("Array.from(document.querySelectorAll('#traj .xtick text')).map(t => t.textContent)")
    assert ticks and all(re.fullmatch(r"\d:\d\d", x) for x in ticks), ticks
    assert "1:00" in ticks

    # the report's counts, live
    page.wait_for_function(f"() => document.getElementById('counts').textContent.startsWith('{stored} estimates')",
                           timeout=10_000)
    counts = page.inner_text("#counts")
    assert f"{stored} estimates over 1 min 39 s of signal" in counts
    assert "no estimate at 1 hop" in counts and "dropped: peripheral 15 (15 %)" in counts
    assert "confidence below 0.5: 10 (10 %)" in counts

    # the vitals and the strip follow the store
    page.wait_for_function(
        "() => document.querySelector('#vitals-peripheral li[data-name=heart_rate] b').textContent === '80 bpm'",
        timeout=10_000)
    page.wait_for_function("() => document.getElementById('strip-peripheral').dataset.t === '90'", timeout=10_000)
    gsr = page.evaluate("document.getElementById('strip-peripheral').data[2].y")
    assert len(set(gsr)) == 1  # the flat GSR is drawn flat
    pleth = page.evaluate("document.getElementById('strip-peripheral').data[0].y")
    assert pleth[10:14] == [None] * 4 and len(pleth) == 640

    # the sessions table: stream time, live counts
    page.wait_for_function(
        f"() => document.querySelector('#sessions tr[data-session=\"{sid}\"] .count').textContent === '{stored}'",
        timeout=10_000)
    assert page.inner_text(f"#sessions tr[data-session=\"{sid}\"] .duration") == "1 min 39 s"
    assert page.inner_text(f"#sessions tr[data-session=\"{sid}\"] .wall") == "live"

    # a Neutral point, live
    with SessionStore(db) as s:
        s.add_prediction(sid, make_prediction(100.0, 5.0, 5.0, 5.0, width=0.5))
    page.wait_for_function("() => document.getElementById('v-quadrant').textContent === 'Neutral'", timeout=10_000)
    page.wait_for_function(f"() => document.body.dataset.points === '{stored + 1}'", timeout=10_000)

    shot = tmp_path / "dashboard-quality.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("SYMAFFECT_SAVE_SCREENSHOT"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "img" / "dashboard-quality.png")
    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]
    assert not problems, problems
    page.close()
