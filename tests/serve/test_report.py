"""Session reports: statistics on known synthetic sessions, HTML from the template, A4 PDF, CLI."""

from __future__ import annotations

import dataclasses
import html as html_lib
import re
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from symaffect.cli import app
from symaffect.errors import DataError
from symaffect.serve.report import (
    CAVEAT,
    build_report_data,
    load_report_data,
    render_html,
    write_report,
)
from symaffect.serve.report import pdf as pdf_module
from symaffect.serve.report.figures import _moving_mean, report_figures
from symaffect.serve.report.html import TEMPLATE, TEMPLATE_DIR
from symaffect.spec import QUADRANT_CODES, QUADRANT_DESCRIPTIONS, QUADRANT_RULE
from symaffect.stream.store import PredictionRow, SegmentRow, SessionRow, SessionStore

from . import session_data

TEMPLATE_PATH = TEMPLATE_DIR / TEMPLATE


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path, sid = session_data.make_store(tmp_path_factory.mktemp("report") / "sessions.db", n=420)
    assert sid == 1
    return path


@pytest.fixture(scope="module")
def data(db):
    return load_report_data(db, 1)


def _rows(t, v, a=None, lk=None):
    a = np.full_like(v, 5.0) if a is None else a
    lk = np.full_like(v, 5.0) if lk is None else lk
    return [
        PredictionRow(id=i + 1, session_id=3, t=float(ti), valence=float(vi), arousal=float(ai),
                      liking=float(li), probabilities={}, quadrant=QUADRANT_RULE.code(vi, ai),
                      confidence=0.8, modalities_used=("eeg", "peripheral"), latency_ms=None, flags=(),
                      created_at=None)
        for i, (ti, vi, ai, li) in enumerate(zip(t, v, a, lk))
    ]


def _segment(track, start, end):
    return SegmentRow(id=1, session_id=3, track=track, start=start, end=end, source="api")


SESSION = SessionRow(id=3, participant="P-1", started_at=0.0, ended_at=None, model="m", run_dir=None,
                     meta={}, n_predictions=0)


def test_baseline_is_the_period_before_the_first_segment(data):
    b = data.baseline
    assert b.rule == "before the first music segment"
    assert (b.start, b.end, b.n) == (0.0, 60.0, 60)
    assert b.means["valence"] == pytest.approx(4.0, abs=0.25)
    assert b.means["arousal"] == pytest.approx(4.0, abs=0.25)
    assert b.means["liking"] == pytest.approx(5.0, abs=0.25)


def test_segment_summaries_recover_the_known_changes(data):
    by = {s.segment.track: s for s in data.summaries}
    assert list(by) == ["Clair de lune", "Drumming", "Here Comes the Sun"]
    clair, drums, sun = by["Clair de lune"], by["Drumming"], by["Here Comes the Sun"]
    assert clair.n == 120 and clair.changes["valence"] > 2.5 and abs(clair.changes["arousal"]) < 0.4
    # the 30-s gap (250-280 s) falls inside "Drumming": 120 s minus 30 s of hops
    assert drums.n == 90 and drums.changes["arousal"] > 3.0 and abs(drums.changes["valence"]) < 0.4
    # the open segment runs to the last prediction (t = 419)
    assert sun.segment.end is None and sun.end == 419.0 and sun.n == 80
    assert sun.changes["liking"] > 2.0
    for s in data.summaries:  # flat targets inside each segment: no trend
        assert all(abs(s.slopes_per_min[k]) < 0.3 for k in s.slopes_per_min)


def test_trend_is_a_slope_per_minute():
    t = np.arange(0, 180.0)
    v = np.where(t < 60, 5.0, 5.0 + (t - 60) / 60.0)  # +1 point per minute during the segment
    d = build_report_data(SESSION, _rows(t, v), [_segment("ramp", 60.0, 180.0)], [])
    (s,) = d.summaries
    assert s.slopes_per_min["valence"] == pytest.approx(1.0, abs=1e-9)
    assert s.slopes_per_min["arousal"] == pytest.approx(0.0, abs=1e-9)
    assert s.changes["valence"] == pytest.approx(np.mean(v[60:]) - 5.0)


def test_trend_needs_enough_points():
    t = np.arange(0, 70.0)
    d = build_report_data(SESSION, _rows(t, np.full(70, 6.0)), [_segment("short", 65.0, 67.0)], [])
    assert np.isnan(d.summaries[0].slopes_per_min["valence"])
    assert "—" in render_html(d)


@pytest.mark.parametrize(
    ("segments", "rule"),
    [([], "no music segments marked"), ([_segment("a", 1.0, 50.0)], "too little signal")],
)
def test_baseline_falls_back_to_the_first_minute(segments, rule):
    t = np.arange(0, 200.0)
    v = np.where(t < 60, 3.0, 7.0)
    d = build_report_data(SESSION, _rows(t, v), segments, [])
    assert rule in d.baseline.rule
    assert (d.baseline.end, d.baseline.n) == (60.0, 60)
    assert d.baseline.means["valence"] == pytest.approx(3.0)


def test_quadrant_shares_and_quality_notes(data):
    shares = data.quadrant_shares
    assert sum(shares.values()) == pytest.approx(1.0)
    # quadrants of the synthetic session: "Drumming" (4, 7.5) = Q2, the segment at (7, 4) Q4;
    # the baseline and gaps at (4, 4) (100 hops) and the last segment at (6, 4) lie on the
    # edge of the Neutral box, so Q3 / Q4 or Neutral as the noise falls (the live path says
    # Neutral exactly as the training labels do)
    counts = {q: round(shares[q] * len(data.series)) for q in shares}
    assert counts["Q2"] == 90 and counts["Q1"] == 0
    assert counts["Q3"] + counts["Q4"] + counts["Neutral"] == 300 and 0 < counts["Neutral"] < 150
    q = data.quality
    assert q.dropped == {"eeg": 20, "eog": 0, "peripheral": 0}
    assert q.flags == {("eeg", "flat"): 1, ("stream", "gap"): 1}
    assert q.gaps == [(249.0, 280.0)]
    assert any("eeg: left out of 20 of 390" in n for n in q.notes)


def test_html_is_self_contained_and_escaped(tmp_path):
    path, sid = session_data.make_store(tmp_path / "s.db", n=90)
    with SessionStore(path) as s:
        s.add_segment(sid, "<script>alert(1)</script> & Co", 70.0, 80.0)
    html = render_html(load_report_data(path, sid))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert not re.search(r"(?:src|href)\s*=\s*['\"](?:https?:)?//", html)
    assert "<script" not in html.lower()
    assert html.count("data:image/png;base64,") == 2
    assert CAVEAT.split(";")[0] in html and "P-007" in html


def test_empty_session_renders(tmp_path):
    with SessionStore(tmp_path / "e.db") as s:
        sid = s.create_session("P-empty", "m")
    d = load_report_data(tmp_path / "e.db", sid)
    assert d.baseline is None and d.summaries == []
    html = render_html(d)
    assert "No predictions were stored" in html and "data:image/png" not in html


def test_unknown_session_and_missing_db(db, tmp_path):
    with pytest.raises(DataError, match="session 99"):
        load_report_data(db, 99)
    with pytest.raises(DataError, match="no session database"):
        write_report(tmp_path / "absent.db", 1)
    assert not (tmp_path / "absent.db").exists()


def test_cli_writes_html_and_pdf(db, tmp_path):
    out = tmp_path / "r" / "report.html"
    res = CliRunner().invoke(app, ["report", "1", "--db", str(db), "--out", str(out), "--pdf"])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    pdf = out.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(_page_sizes(pdf)) in (2, 3)  # text (1-2 pages), then the figures


def test_single_task_session_has_no_quadrants():
    """A valence-only model: no arousal/liking, no quadrant; the report says only what it has."""
    t = np.arange(0, 120.0)
    rows = [dataclasses.replace(r, arousal=None, liking=None, quadrant=None) for r in _rows(t, np.full(120, 6.0))]
    d = build_report_data(SESSION, rows, [_segment("a", 60.0, 120.0)], [])
    assert sum(d.quadrant_shares.values()) == 0.0
    assert d.summary[0] == "Every prediction had confidence of at least 0.5."
    assert "were valence 6.0 (in the neutral range 4-6, above 5)." in d.summary[1]
    assert not any("nan" in line for line in d.summary)
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", render_html(d))
    assert "Session report" in text and "nan" not in text.lower()


@pytest.mark.parametrize("n", [0, 1, 2, 5, 14, 15])
def test_short_or_killed_session_is_reportable(n, tmp_path):
    """A session stopped (or killed) after n hops: CLI report (HTML + PDF) and the moving mean."""
    db = tmp_path / "s.db"
    with SessionStore(db) as s:
        sid = s.create_session("P-short", "m")  # never ended: as after a SIGKILL
        for i in range(n):
            s.add_prediction(sid, session_data.make_prediction(float(i), 6.0, 4.0, 5.0))
        s.add_segment(sid, "late", float(n) + 30.0)  # marked after the last hop
    out = tmp_path / "r.html"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. a collapsed layout
        res = CliRunner().invoke(app, ["report", str(sid), "--db", str(db), "--out", str(out), "--pdf"])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "P-short" in html
    assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    d = load_report_data(db, sid)
    assert len(d.series) == n


@pytest.mark.parametrize("n", [0, 1, 2, 5, 14, 15, 16, 40])
@pytest.mark.parametrize("w", [3, 15])
def test_moving_mean_keeps_the_length(n, w):
    y = np.arange(n, dtype=float)
    m = _moving_mean(y, w)
    assert m.shape == (n,)
    if n:
        h = w // 2
        assert m[n // 2] == pytest.approx(y[max(0, n // 2 - h): n // 2 + h + 1].mean())


# --- HTML from the template, A4 PDF, table, captions ---------------------------------------

A4_PT = (595.276, 841.890)


def _page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    """(width, height) in points of every page of a PDF written by matplotlib (uncompressed
    page dictionaries), checked against the page tree's count."""
    sizes = []
    for page in re.findall(rb"<<[^<>]*/Type /Page\b[^<>]*>>", pdf):
        (box,) = re.findall(rb"/MediaBox \[([^\]]*)\]", page)
        x0, y0, x1, y1 = map(float, box.split())
        sizes.append((x1 - x0, y1 - y0))
    (count,) = re.findall(rb"/Type /Pages /Kids \[[^\]]*\]\s*/Count (\d+)", pdf)
    assert len(sizes) == int(count)
    return sizes


def _many_segments(tmp_path, n_extra=70):
    path, sid = session_data.make_store(tmp_path / "many.db", n=420)
    with SessionStore(path) as s:
        for i in range(n_extra):
            s.add_segment(sid, f"Étude {i} — a piece with a long title, op. {i}", 60.0 + 2 * i, 61.0 + 2 * i)
    return path, sid


@pytest.mark.parametrize("kind", ["session", "many-segments", "empty"])
def test_every_pdf_page_is_a4(kind, db, tmp_path):
    if kind == "session":
        path, sid = db, 1
    elif kind == "many-segments":
        path, sid = _many_segments(tmp_path)
    else:
        path = tmp_path / "e.db"
        with SessionStore(path) as s:
            sid = s.create_session("P-empty", "m")
    (_, pdf) = write_report(path, sid, tmp_path / "r.html", pdf=True)
    sizes = _page_sizes(pdf.read_bytes())
    assert sizes and all(w == pytest.approx(A4_PT[0], abs=0.01) and h == pytest.approx(A4_PT[1], abs=0.01)
                         for w, h in sizes), sizes
    # text, then the figures; the long table flows on over the next text page; no figures without data
    assert len(sizes) >= {"session": 2, "many-segments": 3, "empty": 1}[kind]
    assert len(sizes) == 1 or kind != "empty"


def _drawn_pages(data, monkeypatch, tmp_path) -> list:
    """The matplotlib figures write_pdf saves, one per page."""
    pages = []

    class Recorder:
        def __init__(self, f, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def savefig(self, fig):
            pages.append(fig)

    monkeypatch.setattr(pdf_module, "PdfPages", Recorder)
    pdf_module.write_pdf(data, tmp_path / "r.pdf")
    return pages


def test_pdf_segment_table_is_a_table_repeating_its_header(tmp_path, monkeypatch):
    path, sid = _many_segments(tmp_path)
    data = load_report_data(path, sid)
    text_pages = _drawn_pages(data, monkeypatch, tmp_path)[:-1]
    every = [t for page in text_pages for ax in page.axes for t in ax.tables]
    tables = [t for t in every if t.get_celld()[1, 2].get_text().get_text() == "n"]
    assert len(tables) >= 2  # one per page the table spans
    rating_tables = [t for t in every if t not in tables]  # the listener's ratings beside the estimates
    assert rating_tables and all(t.get_celld()[1, 4].get_text().get_text() == "Estimated by" for t in rating_tables)
    tracks = []
    for t in tables:
        cells = t.get_celld()
        n_rows = 1 + max(r for r, _ in cells)
        assert [cells[1, c].get_text().get_text() for c in range(3)] == ["Track", "Time", "n"]
        assert cells[0, 4].get_text().get_text() == "Valence"
        tracks += [cells[r, 0].get_text().get_text() for r in range(2, n_rows)]
    assert len(tracks) == len(data.summaries) == 73
    assert tracks[0] == "Clair de lune" and "Drumming" in tracks
    first = data.summaries[0]
    cells = tables[0].get_celld()
    assert cells[2, 4].get_text().get_text() == f"{first.changes['valence']:+.1f}"
    assert cells[2, 4].get_text().get_color() == "#1b7837"  # a rise beyond the noise: green


def test_figures_have_captions_in_html_and_pdf(data, tmp_path, monkeypatch):
    figures = report_figures(data)
    assert list(figures) == ["trajectories", "quadrants"]
    assert all(f.caption.strip() and f.title for f in figures.values())
    rule = QUADRANT_RULE
    assert f"within {rule.neutral_band:g} of {rule.threshold:g}" in figures["quadrants"].caption
    assert all(f"{q}: {QUADRANT_DESCRIPTIONS[q]}" in figures["quadrants"].caption for q in QUADRANT_CODES)
    html = render_html(data)
    assert re.findall(r"<figcaption><b>Figure (\d)\.</b>", html) == ["1", "2"]
    text = html_lib.unescape(html)
    assert all(f.caption in text for f in figures.values())
    (page,) = _drawn_pages(data, monkeypatch, tmp_path)[-1:]
    subs = page.subfigs
    assert [s.get_suptitle() for s in subs] == [f"Figure {i}. {f.title}" for i, f in enumerate(figures.values(), 1)]
    assert [s.get_supxlabel().replace("\n", " ") for s in subs] == [f.caption for f in figures.values()]


def test_html_is_rendered_from_the_autoescaping_template(tmp_path):
    path = tmp_path / "h.db"
    with SessionStore(path) as s:
        sid = s.create_session("<img src=x onerror=alert(1)>", "m<b>")
        for i in range(30):
            s.add_prediction(sid, session_data.make_prediction(float(i), 6.0, 4.0, 5.0))
        s.add_segment(sid, "\"'><script>alert('x')</script>", 10.0, 20.0)
    html = render_html(load_report_data(path, sid))
    assert html.startswith("<!DOCTYPE html>") and TEMPLATE_PATH.is_file()
    assert "<script" not in html.lower() and "<img src=x" not in html and "m<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "m&lt;b&gt;" in html
    assert "&#34;&#39;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    table = re.search(r"<table class=\"segments\">.*?</table>", html, re.S).group()
    assert table.count("<tr>") == 2 and len(re.findall(r"<th[ >]", table)) == 3 + 3 * 3
    assert '<td class="up">+1.0</td>' not in table  # a change of +0.0 is greyed, not green
    assert '<td class="muted">' in table


# --- the listener's ratings beside the estimates, and which model made them -------------------


def _calibrated_store(tmp_path):
    """A session whose model was calibrated at 2:31, two of three segments rated."""
    path = tmp_path / "rated.db"
    with SessionStore(path) as s:
        sid = s.create_session("P-042", "symaffect")
        cid = s.add_calibration("P-042", {"method": "bias"}, method="bias", k=3, label="calibrated (bias, K = 3)",
                                session_id=sid)
        for i in range(420):
            p = session_data.make_prediction(float(i), *session_data.targets(float(i)))
            calibrated = i >= 151
            p.model_label = "calibrated (bias, K = 3)" if calibrated else "base model"
            p.calibration_id = cid if calibrated else None
            s.add_prediction(sid, p)
        segs = [s.add_segment(sid, track, a, b) for track, a, b in session_data.SEGMENTS]
        s.end_session(sid)
        s.rate_segment(sid, segs[0], valence=8, arousal=3, liking=7)
        s.rate_segment(sid, segs[1], arousal=6.5)
    return path, sid


def test_report_shows_the_listeners_ratings_beside_the_estimates(tmp_path, monkeypatch):
    path, sid = _calibrated_store(tmp_path)
    data = load_report_data(path, sid)
    clair, drums, sun = data.summaries
    assert clair.own == {"valence": 8.0, "arousal": 3.0, "liking": 7.0}
    assert drums.own == {"valence": None, "arousal": 6.5, "liking": None} and sun.own == {}
    assert clair.model == "mixed: base until 2:31, then calibrated (bias, K = 3)"
    assert drums.model == sun.model == "calibrated (bias, K = 3)"
    assert data.models == "mixed: base until 2:31, then calibrated (bias, K = 3)" and data.n_rated == 2
    assert any("entered for 2 of 3 music segments" in line for line in data.summary)
    assert any(line.startswith("From 2:31 the estimates came from a model calibrated") for line in data.summary)

    html = render_html(data)
    table = re.search(r'<table class="ratings">.*?</table>', html, re.DOTALL).group()
    rows = re.findall(r"<tr><td class=\"l\">(.*?)</tr>", table, re.DOTALL)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", "<td>" + r) for r in rows]
    # track, time, then listener / model for valence, arousal, liking, then the model
    assert cells[0][0] == "Clair de lune" and cells[0][2:8] == ["8.0", f"{clair.means['valence']:.1f}", "3.0",
                                                                 f"{clair.means['arousal']:.1f}", "7.0",
                                                                 f"{clair.means['liking']:.1f}"]
    assert cells[0][-1] == "mixed: base until 2:31, then calibrated (bias, K = 3)"
    assert cells[1][2] == "—" and cells[1][4] == "6.5" and cells[1][-1] == "calibrated (bias, K = 3)"
    assert cells[2][2:8:2] == ["—", "—", "—"]
    assert '<dd class="models">mixed: base until 2:31, then calibrated (bias, K = 3)</dd>' in html
    (_, pdf) = write_report(path, sid, tmp_path / "r.html", pdf=True)
    assert all(w == pytest.approx(A4_PT[0], abs=0.01) for w, _ in _page_sizes(pdf.read_bytes()))

    text_pages = _drawn_pages(data, monkeypatch, tmp_path)[:-1]
    tables = [t for page in text_pages for ax in page.axes for t in ax.tables]
    (ratings,) = [t for t in tables if t.get_celld()[1, 4].get_text().get_text() == "Estimated by"]
    got = ratings.get_celld()
    assert got[0, 1].get_text().get_text() == "Valence" and got[1, 1].get_text().get_text() == "own / model"
    assert got[2, 0].get_text().get_text() == "Clair de lune"
    assert got[2, 1].get_text().get_text() == f"8.0 / {clair.means['valence']:.1f}"
    assert got[2, 4].get_text().get_text() == "mixed: base until 2:31, then calibrated (bias, K = 3)"
    assert got[3, 1].get_text().get_text() == f"— / {drums.means['valence']:.1f}"


def test_predictions_without_a_recorded_model_say_so():
    t = np.arange(0, 120.0)
    d = build_report_data(SESSION, _rows(t, np.full(120, 6.0)), [_segment("a", 60.0, 120.0)], [])
    assert d.models == "not recorded" and d.summaries[0].model == "not recorded" and d.summaries[0].own == {}
    assert "not recorded" in render_html(d)
