"""Live calibration from a session: the listener's rated segments -> a stored, activated
calibration that the live session switches to (real models, real SQLite stores, a real
LiveSession fed from an in-memory source)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from symaffect.errors import DataError
from symaffect.models import build_model, save_checkpoint
from symaffect.models.calibration import Calibration, base_heads, save_calibration
from symaffect.stream.calibrate import (
    calibrate_session,
    fit_session_calibration,
    segment_targets,
)
from symaffect.stream.pipeline import Predictor, run_recording
from symaffect.stream.recording import deap_recording
from symaffect.stream.session import LiveSession
from symaffect.stream.store import SegmentRatingRow, SessionStore

from .conftest import TINY, deap_like

SEGMENTS = (("A", 4.0, 12.0), ("B", 14.0, 22.0), ("C", 24.0, 30.0))


def _save(run: Path, model, *, task_set: str = "multitask9", mean: np.ndarray | None = None) -> Path:
    kw = {**TINY, "task_set": task_set}
    extra = {"window_seconds": 2.0, "preprocess": {}}
    if mean is not None:
        extra["embedding_mean"] = [float(x) for x in mean]
    run.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run / "model.pt", model, name="symaffect", kwargs=kw, extra=extra)
    return run


def _population_mean(run: Path) -> np.ndarray:
    """The mean embedding over another 'listener' (a different synthetic recording)."""
    hops = run_recording(Predictor(run), deap_recording(deap_like(20.0, seed=7)))
    return np.mean([h.prediction.embedding for h in hops], axis=0)


@pytest.fixture(scope="module")
def calib_run(tmp_path_factory) -> Path:
    """A tiny multitask9 model whose model.pt carries the population mean embedding."""
    torch.manual_seed(1)
    model = build_model("symaffect", **TINY)
    run = _save(tmp_path_factory.mktemp("calib") / "run", model)
    return _save(run, model, mean=_population_mean(run))


def _session(store: SessionStore, run: Path, *, seconds: float = 34.0, participant: str = "P-042",
             seed: int = 3) -> tuple[int, list[int]]:
    """A session of offline hops of ``run`` (with embeddings), its segments, ended."""
    predictor = Predictor(run)
    sid = store.create_session(participant, predictor.name, run_dir=str(run),
                               meta={"model_path": str(predictor.base_path), "model_sha256": predictor.digest})
    for h in run_recording(predictor, deap_recording(deap_like(seconds, seed=seed))):
        store.add_prediction(sid, h.prediction)
    segs = [store.add_segment(sid, track, a, b) for track, a, b in SEGMENTS]
    return sid, segs


class ArraySource:
    """A connected source that hands out a recording in chunks (the :class:`Connection`
    protocol), calling ``on_chunk(i)`` before chunk ``i`` is handed out."""

    def __init__(self, x: np.ndarray, ch_names, sfreq: float = 128.0, chunk: int = 64, on_chunk=None):
        self.x, self.ch_names, self.sfreq = x, tuple(ch_names), sfreq
        self.speed, self.notes, self.lost = 1.0, [], False
        self.last_wall = time.monotonic()
        self.chunk, self.on_chunk, self.i = chunk, on_chunk, 0
        self._eof_sent = False

    def poll(self, timeout):
        a = self.i * self.chunk
        if a >= self.x.shape[1]:
            return []
        if self.on_chunk is not None:
            self.on_chunk(self.i)
        self.i += 1
        data = self.x[:, a:a + self.chunk].T.astype(np.float64)
        ts = np.arange(a, a + data.shape[0]) / self.sfreq
        self.last_wall = time.monotonic()
        return [(data, ts)]

    def pull_markers(self):
        if self._eof_sent:
            return []
        self._eof_sent = True
        return [(json.dumps({"event": "eof", "n_samples": int(self.x.shape[1])}), 0.0)]

    def alive(self):
        return True

    def clock(self):
        return min(self.i * self.chunk, self.x.shape[1]) / self.sfreq

    def reopen(self, stop):
        return None

    def close(self):
        pass


# --- targets -------------------------------------------------------------------------


def _rating(**kw) -> SegmentRatingRow:
    vals = {k: kw.get(k) for k in ("valence", "arousal", "liking")}
    return SegmentRatingRow(id=1, session_id=1, segment_id=1, **vals, created_at=0.0, superseded_at=None)


def test_targets_follow_the_task_set_and_skip_what_was_not_rated():
    t = segment_targets("multitask9", _rating(valence=8, liking=2.4))
    assert set(t) == {"valence", "liking"} and int(t["valence"]) == 7 and int(t["liking"]) == 1
    assert set(segment_targets("binary_valence", _rating(arousal=8))) == set()
    assert int(segment_targets("binary_valence", _rating(valence=8))["valence"]) == 1
    assert set(segment_targets("quadrant5", _rating(valence=8))) == set()  # a quadrant needs both
    assert int(segment_targets("quadrant5", _rating(valence=8, arousal=8))["quadrant"]) == 0  # Q1


# --- the predictor ---------------------------------------------------------------------


def test_predictor_keeps_the_base_numbers_and_returns_the_embedding(calib_run):
    predictor = Predictor(calib_run)
    rec = deap_recording(deap_like(6.0, seed=5))
    (h, *_) = run_recording(predictor, rec)
    p = h.prediction
    assert p.model_label == "base model" and p.calibration_id is None
    assert p.embedding.shape == (predictor.embedding_dim,) and p.embedding.dtype == np.float32
    # the probabilities are those of model(x): heads(embed(x)) is the same computation
    x = {m: torch.zeros(1, *s) for m, s in (("eeg", (32, 256)), ("peripheral", (6, 256)))}
    with torch.inference_mode():
        direct = predictor.model(x)
    got = predictor.predict_window({m: v[0].numpy() for m, v in x.items()})
    for task, logits in direct.items():
        assert np.allclose(torch.softmax(logits[0], -1).numpy(), got.probabilities[task], atol=1e-6)


def test_set_calibration_refuses_one_that_does_not_fit(calib_run):
    predictor = Predictor(calib_run)
    heads = base_heads(predictor.model)
    good = Calibration("bias", 2, np.zeros(predictor.embedding_dim), heads)
    predictor.set_calibration(good, calibration_id=7)
    assert predictor.model_label == "calibrated (bias, K = 2)" and predictor.calibration_id == 7
    wrong = Calibration("bias", 2, np.zeros(3), {t: (w[:, :3], b) for t, (w, b) in heads.items()})
    with pytest.raises(DataError, match="head 'valence' has shape"):
        predictor.set_calibration(wrong)
    assert predictor.calibration is good  # left as it was
    with pytest.raises(DataError, match="tasks"):
        predictor.set_calibration(Calibration("bias", 2, np.zeros(predictor.embedding_dim), {"valence": heads["valence"]}))
    predictor.set_calibration(None)
    assert predictor.model_label == "base model" and predictor.calibration_id is None


def test_a_calibration_file_run_keeps_its_calibration(calib_run, tmp_path):
    """A run given as a listener's calibration file predicts with it, says so, and a live
    calibration replaces it (None goes back to the file's)."""
    base = Predictor(calib_run)
    heads = {t: (w, b + np.linspace(-1, 1, b.size)) for t, (w, b) in base_heads(base.model).items()}
    cal = Calibration("bias", 3, np.full(base.embedding_dim, 0.1), heads, listener="P-1", tracks=("1", "2", "3"))
    path = save_calibration(tmp_path / "p1.json", cal, base=calib_run / "model.pt")
    predictor = Predictor(path)
    assert predictor.model_label == "calibrated (bias, K = 3)" and predictor.base_path == base.base_path
    assert predictor.digest == base.digest
    rec = deap_recording(deap_like(6.0, seed=5))
    (h, *_) = run_recording(predictor, rec)
    x = {m: torch.zeros(1, *s) for m, s in (("eeg", (32, 256)), ("peripheral", (6, 256)))}
    with torch.inference_mode():
        direct = predictor.model(x)
    got = predictor.predict_window({m: v[0].numpy() for m, v in x.items()})
    for task, logits in direct.items():
        assert np.allclose(torch.softmax(logits[0], -1).numpy(), got.probabilities[task], atol=1e-6)
    assert h.prediction.model_label == "calibrated (bias, K = 3)"
    assert np.allclose(h.prediction.embedding, run_recording(base, rec)[0].prediction.embedding, atol=1e-6)
    predictor.set_calibration(Calibration("bias", 2, np.zeros(base.embedding_dim), base_heads(base.model)),
                              calibration_id=4)
    assert predictor.model_label == "calibrated (bias, K = 2)"
    predictor.set_calibration(None)
    assert predictor.calibration is predictor.model.calibration and predictor.model_label == "calibrated (bias, K = 3)"


# --- fitting from a session ----------------------------------------------------------


def test_too_few_rated_segments_is_one_line_and_stores_nothing(calib_run, tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        sid, segs = _session(store, calib_run)
        predictor = Predictor(calib_run)
        with pytest.raises(DataError) as e:
            calibrate_session(store, sid, predictor)
        assert str(e.value) == "calibration needs at least 2 rated segments, 0 so far"
        store.rate_segment(sid, segs[0], valence=7)
        with pytest.raises(DataError) as e:
            calibrate_session(store, sid, predictor)
        assert str(e.value) == "calibration needs at least 2 rated segments, 1 so far"
        assert "\n" not in str(e.value)
        assert store.calibrations("P-042") == [] and store.active_calibration(sid) is None


def test_calibrate_stores_activates_and_the_live_session_switches(calib_run, tmp_path, caplog):
    """A live session: two segments end and are rated, "Calibrate" runs between two hops
    (as the dashboard does, with its own Predictor); the session's later predictions carry
    the calibrated label and differ from the base model's for the same windows."""
    db = tmp_path / "live.db"
    x = deap_like(40.0, seed=11)
    rec = deap_recording(x)
    base_hops = {round(h.t, 6): h.prediction for h in run_recording(Predictor(calib_run), rec)}
    result = {}
    store = SessionStore(db)

    def dashboard(i: int) -> None:
        if i == 26 * 2:  # 26 s of stream time (chunks of 0.5 s): both segments are over
            a = store.add_segment(session.sid, "A", 4.0, 12.0)
            b = store.add_segment(session.sid, "B", 14.0, 22.0)
            store.rate_segment(session.sid, a, valence=8, arousal=3, liking=7)
            store.rate_segment(session.sid, b, valence=7.5, liking=8)
            with caplog.at_level(logging.INFO, logger="symaffect.stream.calibrate"):
                result["fit"] = calibrate_session(store, session.sid, Predictor(calib_run))

    source = ArraySource(x, rec.ch_names, on_chunk=dashboard)
    session = LiveSession(Predictor(calib_run), source, store, source="memory", participant="P-042",
                          stop_at_eof=True)
    try:
        session.run()
    finally:
        session.close()
    fit = result["fit"]
    assert fit.label == "calibrated (threshold, K = 2)" and fit.calibration.k == 2
    assert fit.recentred_on == "population" and fit.seconds < 10
    assert any("fitted calibrated (threshold, K = 2)" in r.getMessage() for r in caplog.records)
    with SessionStore(db) as st:
        (row,) = st.calibrations("P-042")
        assert (row.id, row.session_id, row.method, row.k) == (fit.calibration_id, session.sid, "threshold", 2)
        assert row.base_digest == Predictor(calib_run).digest and Path(row.base_model).name == "model.pt"
        assert Calibration.from_dict(row.calibration).tracks == fit.calibration.tracks
        assert st.active_calibration(session.sid).calibration_id == fit.calibration_id
        preds = st.predictions(session.sid)
        emb = st.embeddings(session.sid)
    before = [p for p in preds if p.t <= 26.0]
    after = [p for p in preds if p.t > 26.5]  # hops computed after the switch
    assert before and after and len(preds) == len(base_hops)
    assert {p.model_label for p in before} == {"base model"} and {p.calibration_id for p in before} == {None}
    assert {p.model_label for p in after} == {"calibrated (threshold, K = 2)"}
    assert {p.calibration_id for p in after} == {fit.calibration_id}
    # the embeddings are the base model's; the calibrated probabilities are not
    assert np.allclose(emb.z, np.stack([base_hops[round(t, 6)].embedding for t in emb.t]), atol=1e-5)
    diffs = [max(abs(np.asarray(p.probabilities[k]) - base_hops[round(p.t, 6)].probabilities[k]).max()
                 for k in p.probabilities) for p in after]
    assert min(diffs) > 1e-3
    for p in before:  # unchanged before the switch
        assert np.allclose(p.probabilities["valence"], base_hops[round(p.t, 6)].probabilities["valence"], atol=1e-6)


def test_a_task_without_ratings_keeps_its_base_head(calib_run, tmp_path):
    with SessionStore(tmp_path / "s.db") as store:
        sid, segs = _session(store, calib_run)
        store.rate_segment(sid, segs[0], liking=8)
        store.rate_segment(sid, segs[1], liking=7)
        predictor = Predictor(calib_run)
        fit = fit_session_calibration(store, sid, predictor)
    base = base_heads(predictor.model)
    assert fit.tasks == ("liking",)
    for task in ("valence", "arousal"):
        assert np.array_equal(fit.calibration.heads[task][0], base[task][0])
        assert np.array_equal(fit.calibration.heads[task][1], base[task][1])
    assert not np.allclose(fit.calibration.heads["liking"][1], base["liking"][1])
    assert np.array_equal(fit.calibration.heads["liking"][0], base["liking"][0])  # bias only


def test_a_model_without_a_population_mean_recentres_on_the_session(run_dir, tmp_path, caplog):
    with SessionStore(tmp_path / "s.db") as store:
        sid, segs = _session(store, run_dir)
        store.rate_segment(sid, segs[0], valence=3, arousal=3, liking=3)
        store.rate_segment(sid, segs[1], valence=4)
        with caplog.at_level(logging.INFO, logger="symaffect.stream.calibrate"):
            fit = calibrate_session(store, sid, Predictor(run_dir))
    assert fit.recentred_on == "session" and np.allclose(fit.calibration.shift, 0.0, atol=1e-5)
    assert any("no embedding_mean" in r.getMessage() and "shift 0" in r.getMessage() for r in caplog.records)


def test_calibration_moves_a_binary_model_towards_the_listener(tmp_path):
    """A listener who rates every segment high valence, a base model that says low: the
    `bias` calibration says high more often on those segments' windows; `threshold` (the
    default) has no boundary to place with one class rated and only re-centres."""
    torch.manual_seed(2)
    model = build_model("symaffect", task_set="binary_valence", **TINY)
    with torch.no_grad():
        model.heads.layers["valence"].bias.copy_(torch.tensor([0.9, -0.9]))  # mostly "low"
    run = _save(tmp_path / "run", model, task_set="binary_valence")
    run = _save(run, model, task_set="binary_valence", mean=_population_mean(run))
    db = tmp_path / "s.db"
    with SessionStore(db) as store:
        sid, segs = _session(store, run)
        store.rate_segment(sid, segs[0], valence=8)
        store.rate_segment(sid, segs[1], valence=7, arousal=2)
        fit = calibrate_session(store, sid, Predictor(run), method="bias")
        default = calibrate_session(store, sid, Predictor(run))
        emb = store.embeddings(sid)
    for t, (w, b) in default.calibration.heads.items():
        np.testing.assert_allclose(b, model.heads.layers[t].bias.detach().double().numpy(), atol=1e-6)
    inside = np.zeros(len(emb), bool)
    for _, a, b in SEGMENTS[:2]:
        inside |= (emb.t >= a) & (emb.t <= b)
    z = torch.as_tensor(emb.z[inside])
    with torch.no_grad():
        p_base = torch.softmax(model.heads(z)["valence"], -1)[:, 1].numpy()
        p_cal = torch.softmax(fit.calibration.logits(z)["valence"], -1)[:, 1].numpy()
    assert (p_base > 0.5).mean() < 0.5  # the base model mostly says low
    assert p_cal.mean() > p_base.mean() + 0.1
    assert (p_cal > 0.5).mean() > (p_base > 0.5).mean()  # more windows high, as the listener said


def test_calibrate_a_recording_with_its_ratings_file(calib_run, tmp_path):
    """A recording and a ratings CSV give the same fit as a live session with those
    ratings; the file lands beside the run and predicts; bad rows are one line."""
    from symaffect.stream.calibrate import calibrate_recording, read_ratings_csv

    rec = deap_recording(deap_like(34.0, seed=3))
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("track,start,end,valence,arousal,liking\nA,4,12,8,3,7\nB,14,22,7.5,,8\n")
    path, fit = calibrate_recording(calib_run, rec, ratings, participant="P-9")
    assert path == calib_run / "calibrations" / "P-9-threshold-k2.json" and path.is_file()
    with SessionStore(tmp_path / "s.db") as store:  # the live way, same ratings
        sid, segs = _session(store, calib_run, participant="P-9")
        store.rate_segment(sid, segs[0], valence=8, arousal=3, liking=7)
        store.rate_segment(sid, segs[1], valence=7.5, liking=8)
        live = fit_session_calibration(store, sid, Predictor(calib_run))
    for t, (w, b) in live.calibration.heads.items():
        np.testing.assert_allclose(fit.calibration.heads[t][1], b, atol=1e-6)
    np.testing.assert_allclose(fit.calibration.shift, live.calibration.shift, atol=1e-5)
    pred = Predictor(path)
    assert pred.model_label == "calibrated (threshold, K = 2)"
    for text, msg in (("track,start,end,valence\nA,4,12,x\n", "not a number"),
                      ("track,start,end,valence\nA,4,12,\n", "no rating"),
                      ("track,start,end,valence\nA,4,2,5\n", "end")):
        ratings.write_text(text)
        with pytest.raises(DataError, match=msg):
            read_ratings_csv(ratings)
    ratings.write_text("track,start,end,valence\nA,4,12,12\nB,14,22,5\n")
    with pytest.raises(DataError, match="valence"):
        calibrate_recording(calib_run, rec, ratings)
