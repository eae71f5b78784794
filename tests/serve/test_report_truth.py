"""The report tells the truth (issue 13): sessions built so that a careless summary would
contradict the report's own sections.

The main session replays the therapist's case: 189 s of stream time, one prediction per
second (t = 1..189), three marked tracks, a flat GSR at 100-115 s (peripheral left out of
15 predictions) and a NaN EEG channel whose 10-s windows end in 160-175 s (EEG left out of
15 predictions): 15 / 189 = 8 % each. Valence sits at 4.6 and arousal at 3.8 in 7 of every
10 hops (Q3, just outside the Neutral box) and at 4.8 in the others (Neutral), so the means
lie in the neutral range while most single predictions fall in Q3.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import json
import re

import numpy as np
import pytest
from matplotlib.figure import Figure

from symaffect.serve.report import (
    CONFIDENCE_EXPLAINED,
    LOW_CONFIDENCE,
    build_report_data,
    load_report_data,
    render_html,
    session_counts,
)
from symaffect.serve.report.data import flag_spans, rating_level
from symaffect.serve.report.figures import (
    draw_trajectories,
    report_figures,
    trajectory_spans,
)
from symaffect.serve.report.formatting import fmt_dur
from symaffect.spec import QUADRANT_RULE, RATING_COLUMNS
from symaffect.stream.prediction import Prediction, rating_spread
from symaffect.stream.store import PredictionRow, SessionRow, SessionStore

from .session_data import MODALITIES, peaked
from .test_report import _drawn_pages

N_HOPS = 189
TRACKS = (("Track A", 30.0, 80.0), ("Track B", 85.0, 135.0), ("Track C", 140.0, 189.0))
GSR_FLAT = (100.0, 115.0)
EEG_NAN_WINDOWS = (160.0, 175.0)
SHARP, MEDIUM, WIDE = 0.3, 0.5, 1.0
"""Width of the predicted distributions: confidence 0.88 (sharp), 0.65 (medium: 0.43 with one of
the three modalities left out) or about 0.3 (wide)."""


def _arousal(t: float) -> float:
    return 3.8 if int(t) % 10 < 7 else 4.8


def _pred(t: float, v: float, a: float, lk: float, *, width: float, used=MODALITIES, flags=()) -> Prediction:
    return Prediction.from_probabilities(
        t, {"valence": peaked(v, width), "arousal": peaked(a, width), "liking": peaked(lk, width)},
        modalities_used=used, n_modalities=len(MODALITIES), flags=flags,
    )


def therapist_store(path, *, width: float = WIDE, drops: bool = True, no_prediction: tuple[float, ...] = (),
                    meta: dict | None = None, end: bool = True):
    """The replayed session described in the module docstring, written into a real store."""
    with SessionStore(path) as store:
        sid = store.create_session("P-013", "dtfe-multitask", meta={"hop": 1.0, "window": 10.0, **(meta or {})})
        for track, a, b in TRACKS:
            store.add_segment(sid, track, a, b, source="lsl")
        for i in range(1, N_HOPS + 1):
            t = float(i)
            if t in no_prediction:
                store.add_quality(sid, t, "all", "no_prediction", "eeg nan; peripheral flat; eog flat")
                continue
            used, flags = MODALITIES, ()
            if drops and GSR_FLAT[0] <= t < GSR_FLAT[1]:
                used, flags = ("eeg", "eog"), ("peripheral:flat",)
                store.add_quality(sid, t, "peripheral", "flat", "GSR flat")
            elif drops and EEG_NAN_WINDOWS[0] <= t < EEG_NAN_WINDOWS[1]:
                used, flags = ("peripheral", "eog"), ("eeg:nan",)
                store.add_quality(sid, t, "eeg", "nan", "O2 NaN")
            store.add_prediction(sid, _pred(t, 4.6, _arousal(t), 5.2, width=width, used=used, flags=flags))
        if end:
            store.end_session(sid)
    return path, sid


@pytest.fixture(scope="module")
def therapist(tmp_path_factory):
    path, sid = therapist_store(tmp_path_factory.mktemp("truth") / "s.db")
    return load_report_data(path, sid)


def _summary_items(html: str) -> list[str]:
    ul = re.search(r'<ul class="summary">(.*?)</ul>', html, re.S).group(1)
    return [html_lib.unescape(x) for x in re.findall(r"<li>(.*?)</li>", ul, re.S)]


def _quality_line(summary: list[str]) -> str:
    (line,) = [s for s in summary if s.startswith("Signal quality")]
    return line


# --- (a) modalities dropped in 8 % of the hops ------------------------------------------------


def test_dropped_modalities_are_named_with_their_share(therapist):
    q = therapist.quality
    assert len(therapist.series) == N_HOPS
    assert q.dropped == {"eeg": 15, "eog": 0, "peripheral": 15}
    line = _quality_line(therapist.summary)
    assert "good throughout" not in " ".join(therapist.summary)
    assert line.startswith("Signal quality had problems: EEG was left out of 8 % of the predictions, "
                           "peripheral of 8 %;")
    assert "flagged 30 times" in line  # 15 flat GSR + 15 NaN EEG quality rows
    # the quality section says the same, in counts
    assert "eeg: left out of 15 of 189 predictions (8 %)." in q.notes
    assert "peripheral: left out of 15 of 189 predictions (8 %)." in q.notes
    assert "eog: used in every prediction." in q.notes


def test_good_throughout_only_for_a_clean_session(tmp_path):
    path, sid = therapist_store(tmp_path / "clean.db", drops=False)
    d = load_report_data(path, sid)
    assert _quality_line(d.summary) == ("Signal quality was good throughout: every modality was used in every "
                                        "prediction and nothing was flagged.")
    # a flag that dropped nothing still takes "good throughout" away
    with SessionStore(path) as s:
        s.add_quality(sid, 50.0, "eeg", "partial", "missing Oz")
    d = load_report_data(path, sid)
    assert _quality_line(d.summary) == ("Signal quality had problems: every modality was used in every "
                                        "prediction; the signals were flagged 1 time — see Signal quality.")


def test_hops_without_prediction_and_absent_modalities_are_said(tmp_path):
    path, sid = therapist_store(tmp_path / "none.db", drops=False, no_prediction=(60.0, 61.0, 62.0, 189.0),
                                meta={"absent_modalities": ["eog"]})
    d = load_report_data(path, sid)
    c = session_counts(d)
    assert c["n_no_prediction"] == 4 and c["n_predictions"] == N_HOPS - 4
    assert c["stream_seconds"] == 189.0  # the last hop had no prediction, but it was stream time
    assert c["absent_modalities"] == []  # eog was used after all: not absent
    line = _quality_line(d.summary)
    # the three hops in a row leave a 4-s gap between predictions (59 -> 63 s)
    assert line == ("Signal quality had problems: every modality was used in every prediction; 4 hops had no "
                    "prediction at all; 1 gap without predictions (4 s) — see Signal quality.")
    assert "4 hops had no prediction at all (every modality left out)." in d.quality.notes

    path, sid = therapist_store(tmp_path / "absent.db", drops=False, meta={"absent_modalities": ["emg"]})
    d = load_report_data(path, sid)
    assert "emg was absent from the recording" in _quality_line(d.summary)
    assert "emg: absent from the recording; no prediction used it." in d.quality.notes


# --- (b) confidence ---------------------------------------------------------------------------


def test_all_low_confidence_is_said_first_and_the_estimates_are_hedged(therapist):
    assert therapist.quality.low_confidence == N_HOPS
    first = therapist.summary[0]
    assert first == (f"All {N_HOPS} predictions had confidence below {LOW_CONFIDENCE:g}: the estimates are weak, "
                     "so read the levels and quadrants below as uncertain leanings, not findings.")
    assert "the model's uncertain mean estimates" in therapist.summary[1]
    assert therapist.summary[2].startswith("With low confidence, the model placed the listener in Q3")
    html = render_html(therapist)
    assert _summary_items(html)[0] == first
    # the definition of confidence, with the threshold, right under the summary
    assert CONFIDENCE_EXPLAINED.endswith(f"below {LOW_CONFIDENCE:g} counts as low-confidence.")
    assert "0 (no better than a uniform guess" in CONFIDENCE_EXPLAINED and "1 (certain)" in CONFIDENCE_EXPLAINED
    (note,) = re.findall(r'<p class="note confidence">(.*?)</p>', html, re.S)
    assert html_lib.unescape(note) == CONFIDENCE_EXPLAINED


def test_confident_session_is_not_hedged(tmp_path):
    path, sid = therapist_store(tmp_path / "sharp.db", width=SHARP, drops=False)
    d = load_report_data(path, sid)
    assert float(d.series.confidence.min()) >= LOW_CONFIDENCE
    assert d.summary[0] == f"Every prediction had confidence of at least {LOW_CONFIDENCE:g}."
    assert "uncertain" not in d.summary[1] and d.summary[2].startswith("The model placed the listener in Q3")


def test_low_confidence_from_dropped_modalities_is_counted(tmp_path):
    """Confidence 0.65, but a prediction without one of three modalities counts 2/3 (0.43)."""
    path, sid = therapist_store(tmp_path / "mixed.db", width=MEDIUM)
    d = load_report_data(path, sid)
    assert d.quality.low_confidence == 30
    assert d.summary[0] == f"30 of {N_HOPS} predictions (16 %) had confidence below 0.5."
    assert "uncertain" not in d.summary[1]


# --- (c) level words agree with the quadrant rule and with the quadrant counts ----------------


@pytest.mark.parametrize(
    ("x", "words"),
    [(6.8, "high, above the neutral range 4-6"), (6.4, "just above the neutral range 4-6"),
     (6.0, "in the neutral range 4-6, above 5"), (5.04, "in the neutral range 4-6, at 5"),
     (4.6, "in the neutral range 4-6, below 5"), (4.0, "in the neutral range 4-6, below 5"),
     (3.8, "just below the neutral range 4-6"), (2.1, "low, below the neutral range 4-6"),
     (float("nan"), "unknown")],
)
def test_rating_level_follows_the_quadrant_rule(x, words):
    assert rating_level(x) == words
    if np.isfinite(x):  # in the neutral range exactly when the quadrant rule's box holds it
        assert ("in the neutral range" in words) == (abs(round(x, 1) - QUADRANT_RULE.threshold)
                                                      <= QUADRANT_RULE.neutral_band)


_LEVEL = re.compile(r"(valence|arousal|liking) (\d\.\d) \(([^)]*)\)")


def test_level_words_and_quadrant_sentences_agree(therapist):
    d = therapist
    counts = session_counts(d)["quadrant_counts"]
    n = len(d.series)
    n_q3 = sum(1 for i in range(1, N_HOPS + 1) if i % 10 < 7)
    assert counts == {"Q1": 0, "Q2": 0, "Q3": n_q3, "Q4": 0, "Neutral": n - n_q3}
    text = " ".join(d.summary)
    assert "middling" not in text
    means_line = d.summary[1]
    mv, ma = float(np.mean(d.series.ratings["valence"])), float(np.mean(d.series.ratings["arousal"]))
    assert 4.0 <= round(mv, 1) < 5.0 and 4.0 <= round(ma, 1) < 5.0  # the means: in the neutral range
    assert f"valence {mv:.1f} (in the neutral range 4-6, below 5)" in means_line
    assert f"arousal {ma:.1f} (in the neutral range 4-6, below 5)" in means_line
    # every level word in the summary agrees with the number it describes
    for _, num, words in _LEVEL.findall(text):
        assert words == rating_level(float(num))
    quad, those, means_vs_hops = d.summary[2:5]
    assert quad == ("With low confidence, the model placed the listener in Q3 — low valence, low arousal "
                    f"(e.g. sad, tired) — in {n_q3} of {n} predictions ({100 * n_q3 / n:.0f} %); "
                    f"Neutral {100 * (n - n_q3) / n:.0f} %.")
    q3 = np.asarray([q == "Q3" for q in d.series.quadrant])
    qv, qa = d.series.ratings["valence"][q3].mean(), d.series.ratings["arousal"][q3].mean()
    assert round(qa, 1) == 3.8
    assert those == (f"Those Q3 predictions averaged valence {qv:.1f} (in the neutral range 4-6, below 5) and "
                     f"arousal {qa:.1f} (just below the neutral range 4-6) — close to the middle of both scales, "
                     "so this is a slight lean, not a clear state such as “sad, tired”.")
    assert means_vs_hops == (f"The session means lie in the Neutral box, but only {100 * (n - n_q3) / n:.0f} % "
                             "of the single predictions did: the means average over predictions on different "
                             "sides of the boundaries.")


def test_a_clear_quadrant_is_not_called_a_lean():
    rows = []
    for i in range(60):
        p = _pred(float(i), 7.5, 7.5, 7.0, width=SHARP)
        rows.append(_row(i, p))
    d = build_report_data(_SESSION, rows, [], [])
    assert "valence 7.5 (high, above the neutral range 4-6)" in d.summary[1]
    assert d.summary[2].startswith("The model placed the listener in Q1 — high valence, high arousal")
    assert d.summary[3].startswith("Those Q1 predictions averaged valence 7.5 (high, above the neutral range 4-6)")
    assert "slight lean" not in d.summary[3] and not any("session means lie" in s for s in d.summary)


# --- (d) durations are stream time ------------------------------------------------------------


def test_replay_at_2x_prints_stream_time(tmp_path, monkeypatch):
    path, sid = therapist_store(tmp_path / "2x.db", meta={"replay_speed": 2.0})
    d = load_report_data(path, sid)
    # the store's clock ran a fraction of a second; put the replay's real 95 s of wall clock in
    ses = dataclasses.replace(d.session, started_at=1_000.0, ended_at=1_095.0)
    with SessionStore(path) as s:
        d = build_report_data(ses, s.predictions(sid), s.segments(sid), s.quality(sid))
    assert d.duration_s == 189.0 == d.session.stream_seconds  # the store counts it the same way
    assert d.wall_s == 95.0 and d.replay_speed == 2.0
    html = render_html(d)
    assert '<dd class="duration">3 min 09 s</dd>' in html
    assert '<dd class="wall-clock">1 min 35 s (replayed at 2x)</dd>' in html
    assert d.summary[1].startswith("Over 3 min 09 s of stream time (189 predictions)")
    assert "1 min 35 s" not in " ".join(d.summary)
    c = session_counts(d)
    assert (c["stream_seconds"], c["wall_seconds"], c["replay_speed"]) == (189.0, 95.0, 2.0)
    texts = _pdf_texts(d, monkeypatch, tmp_path)
    assert any("3 min 09 s of stream time" in t for t in texts)
    assert "Wall-clock length: 1 min 35 s (replayed at 2x)" in texts


def test_wall_clock_never_replaces_stream_time(tmp_path):
    """A session left open 10 min of wall clock after 189 s of stream: the report says 3 min 09 s."""
    path, sid = therapist_store(tmp_path / "1x.db", meta={"replay_speed": 1.0})
    with SessionStore(path) as s:
        ses = dataclasses.replace(s.session(sid), started_at=0.0, ended_at=600.0)
        d = build_report_data(ses, s.predictions(sid), s.segments(sid), s.quality(sid))
    assert d.duration_s == 189.0 and d.wall_s is None
    html = render_html(d)
    assert '<dd class="duration">3 min 09 s</dd>' in html and "Wall-clock length" not in html
    # a replay still running at 4x: the wall clock is the stream time over the speed
    path, sid = therapist_store(tmp_path / "4x.db", meta={"replay_speed": 4}, end=False)
    d = load_report_data(path, sid)
    assert (d.duration_s, d.wall_s) == (189.0, 189.0 / 4)
    assert '<dd class="wall-clock">47 s (replayed at 4x)</dd>' in render_html(d)


# --- (e) shading: the spans and the figure ----------------------------------------------------


def test_flag_spans():
    t = np.arange(10.0)
    mask = np.zeros(10, bool)
    mask[[2, 3, 4, 7]] = True
    assert flag_spans(t, mask) == [(1.5, 4.5), (6.5, 7.5)]
    # a gap splits a run; the first span is clipped at 0
    t = np.array([0.0, 1, 2, 10, 11])
    assert flag_spans(t, np.ones(5, bool)) == [(0.0, 2.5), (9.5, 11.5)]
    assert flag_spans(t, np.zeros(5, bool)) == [] and flag_spans(np.array([]), np.array([], bool)) == []


def _spans_of(ax, gid):
    out = []
    for p in ax.patches:
        if p.get_gid() == gid:
            x0, x1 = p.get_x(), p.get_x() + p.get_width()
            out.append((pytest.approx(x0), pytest.approx(x1)))
    return out


def test_shaded_spans_are_the_dropped_and_low_confidence_stretches(tmp_path):
    path, sid = therapist_store(tmp_path / "medium.db", width=MEDIUM)
    d = load_report_data(path, sid)
    spans = trajectory_spans(d)
    assert spans["dropped"] == [(99.5, 114.5), (159.5, 174.5)]  # GSR flat, EEG NaN windows
    # confidence falls below 0.5 exactly where a modality was missing
    assert spans["low_confidence"] == [(99.5, 114.5), (159.5, 174.5)]

    fig = Figure(figsize=(10, 6.6), layout="constrained")
    draw_trajectories(fig, d)
    fig.canvas.draw()
    axes = fig.axes
    assert len(axes) == len(RATING_COLUMNS)
    for ax, k in zip(axes, RATING_COLUMNS):
        assert _spans_of(ax, "dropped") == spans["dropped"]
        assert _spans_of(ax, "low_confidence") == spans["low_confidence"]
        bars = [p for p in ax.patches if p.get_gid() == "low_confidence"]
        assert all(p.get_height() == pytest.approx(0.06) for p in bars)  # a bar along the bottom (axes units)
        hatched = [p for p in ax.patches if p.get_gid() == "dropped"]
        assert all(p.get_hatch() == "////" for p in hatched)
        assert _spans_of(ax, "baseline") == [(1.0, 30.0)]  # the baseline is marked (first hop to Track A)
        # the band: ± one SD of the predicted rating, from rating_spread
        (band,) = [c for c in ax.collections if c.get_gid() == "spread"]
        ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        y = d.series.ratings[k]
        expected_hi = np.clip(y + d.series.spread[k], 1, 9)
        assert np.isin(np.round(expected_hi, 9), np.round(ys, 9)).all()
        assert d.series.spread[k][0] == pytest.approx(rating_spread(peaked({"valence": 4.6, "arousal": 3.8,
                                                                             "liking": 5.2}[k], MEDIUM)))
    # what was left out is named over each hatched stretch
    assert [t.get_text() for t in axes[0].texts if t.get_gid() == "dropped_label"] == ["no peripheral", "no EEG"]
    labels = [t.get_text() for t in axes[-1].get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"\d+:\d\d", x) for x in labels) and "1:00" in labels
    legend = [t.get_text() for t in axes[-1].get_legend().get_texts()]
    assert "a modality left out" in legend and "confidence < 0.5" in legend
    assert "± 1 SD of the predicted rating" in legend


def test_caption_explains_the_shading_and_the_band(therapist):
    cap = report_figures(therapist)["trajectories"].caption
    assert "± one standard deviation of the model's predicted rating distribution" in cap
    assert "Red hatching marks stretches where a modality was left out" in cap
    assert "confidence below 0.5" in cap and "m:ss" in cap
    assert ("In this session EEG was left out of 8 % of the predictions, peripheral of 8 %; confidence was "
            "below 0.5 in 100 % of the predictions (1 stretch).") in cap
    fig = Figure()
    draw_trajectories(fig, therapist)
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert "a modality left out" in legend and "confidence < 0.5" in legend  # both occur: no "(none)"


# --- (f) session_counts is what the page prints -------------------------------------------------


def test_session_counts_equal_what_the_html_prints(therapist):
    c = session_counts(therapist)
    assert json.loads(json.dumps(c, allow_nan=False)) == c
    assert set(c) == {
        "n_predictions", "n_no_prediction", "stream_seconds", "wall_seconds", "replay_speed", "dropped",
        "dropped_share", "absent_modalities", "flags", "gaps", "low_confidence", "low_confidence_threshold",
        "quadrant_counts", "quadrant_shares", "baseline", "summary", "confidence_explained",
    }
    assert c["n_predictions"] == N_HOPS and c["n_no_prediction"] == 0 and c["stream_seconds"] == 189.0
    assert c["dropped"] == {"eeg": 15, "eog": 0, "peripheral": 15}
    assert c["dropped_share"]["eeg"] == pytest.approx(15 / 189)
    assert c["flags"] == {"eeg:nan": 15, "peripheral:flat": 15}
    assert c["low_confidence"] == N_HOPS and c["low_confidence_threshold"] == LOW_CONFIDENCE
    assert c["baseline"] == {"start": 1.0, "end": 30.0, "rule": "before the first music segment"}
    assert sum(c["quadrant_counts"].values()) == N_HOPS
    assert c["quadrant_shares"] == pytest.approx({q: k / N_HOPS for q, k in c["quadrant_counts"].items()})

    html = render_html(therapist)
    assert _summary_items(html) == c["summary"]
    assert f"<dt>Predictions</dt><dd>{c['n_predictions']}</dd>" in html
    assert f'<dd class="duration">{fmt_dur(c["stream_seconds"])}</dd>' in html
    quality = html_lib.unescape(re.search(r"<h2>Signal quality</h2>\s*<ul>(.*?)</ul>", html, re.S).group(1))
    for m, k in c["dropped"].items():
        assert (f"{m}: left out of {k} of {c['n_predictions']} predictions" in quality) == (k > 0)
    assert (f"{c['low_confidence']} of {c['n_predictions']} predictions (100 %) had confidence below "
            f"{c['low_confidence_threshold']:g}.") in quality
    for code, k in c["quadrant_counts"].items():
        if k == max(c["quadrant_counts"].values()):
            assert f"in {code} — " in html_lib.unescape(html) and f"in {k} of {c['n_predictions']}" in c["summary"][2]


def test_session_counts_of_an_empty_session(tmp_path):
    with SessionStore(tmp_path / "e.db") as s:
        sid = s.create_session("P-empty", "m")
    c = session_counts(load_report_data(tmp_path / "e.db", sid))
    assert c["n_predictions"] == 0 and c["stream_seconds"] == 0.0 and c["baseline"] is None
    assert c["summary"] == ["No predictions were stored for this session."]
    assert json.loads(json.dumps(c, allow_nan=False)) == c


# --- helpers ----------------------------------------------------------------------------------

_SESSION = SessionRow(id=1, participant="P-1", started_at=0.0, ended_at=None, model="m", run_dir=None,
                      meta={}, n_predictions=0)


def _row(i: int, p: Prediction) -> PredictionRow:
    return PredictionRow(id=i + 1, session_id=1, t=p.t, valence=p.valence, arousal=p.arousal, liking=p.liking,
                         probabilities={k: tuple(v) for k, v in p.probabilities.items()}, quadrant=p.quadrant,
                         confidence=p.confidence, modalities_used=p.modalities_used, latency_ms=None,
                         flags=tuple(p.flags), created_at=None)


def _pdf_texts(data, monkeypatch, tmp_path) -> list[str]:
    """Every text line write_pdf puts on its text pages."""
    return [t.get_text() for page in _drawn_pages(data, monkeypatch, tmp_path) for t in page.texts]
