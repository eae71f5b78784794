"""Many sessions in one process: batched prediction across sessions, one shared model."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest
import torch

from symaffect.errors import DataError
from symaffect.models.calibration import Calibration
from symaffect.spec import MODALITIES
from symaffect.stream.lsl import replay, run_streams
from symaffect.stream.pipeline import Predictor, WindowInput, predict_recording, predict_windows
from symaffect.stream.recording import deap_recording
from symaffect.stream.store import SessionStore


def _window(pr: Predictor, seed: int, drop: tuple[str, ...] = ()) -> WindowInput:
    rng = np.random.default_rng(seed)
    x = {m: rng.standard_normal((MODALITIES[m].n_chans, pr.n_times)).astype(np.float32)
         for m in pr.modalities if m not in drop}
    return WindowInput(x, t=float(seed), flags=(), coverage=None)


def _shifted(pr: Predictor, shift: float) -> Calibration:
    """A calibration that is the base heads with every bias moved by ``shift``."""
    heads = {task: (layer.weight.detach().numpy().astype(np.float64),
                    layer.bias.detach().numpy().astype(np.float64) + shift * np.arange(layer.out_features))
             for task, layer in pr.model.heads.layers.items()}
    return Calibration(method="bias", k=3, shift=np.zeros(pr.embedding_dim), heads=heads)


def test_batched_prediction_equals_one_call_per_window(run_dir):
    """Windows of several sessions in one forward pass give each the prediction of its own
    call: also a window with a dropped modality (masked in the batch) and a session with
    its own calibration (the others keep the base heads)."""
    base = Predictor(run_dir)
    sessions = [base.share() for _ in range(4)]
    sessions[2].set_calibration(_shifted(base, 0.5), calibration_id=7)
    assert base.calibration is None and sessions[1].calibration is None  # a calibration is per session
    assert all(s.model is base.model for s in sessions)  # one model in memory
    wins = [_window(base, 0), _window(base, 1, drop=("eeg",)), _window(base, 2), _window(base, 3, drop=("eog",))]
    batch = predict_windows(list(zip(sessions, wins)))
    for s, w, b in zip(sessions, wins, batch):
        one = s.predict_window(w.x, t=w.t)
        assert b.modalities_used == one.modalities_used
        for task in one.probabilities:
            np.testing.assert_allclose(b.probabilities[task], one.probabilities[task], atol=1e-5)
        np.testing.assert_allclose(b.embedding, one.embedding, atol=1e-5)
        assert (b.model_label, b.calibration_id) == (one.model_label, one.calibration_id)
    assert batch[1].modalities_used == ("peripheral", "eog")
    assert batch[2].calibration_id == 7 and batch[0].calibration_id is None
    assert not np.allclose(batch[2].probabilities["valence"],
                           predict_windows([(base, wins[2])])[0].probabilities["valence"])


def test_windows_of_different_models_are_refused(run_dir, tmp_path):
    a, b = Predictor(run_dir), Predictor(run_dir)  # two loads: two models
    with pytest.raises(DataError, match="different models"):
        predict_windows([(a, _window(a, 0)), (b, _window(b, 1))])
    assert predict_windows([]) == []


def _name() -> str:
    return f"symaffect-hub-{uuid.uuid4().hex[:10]}"


@pytest.mark.slow
@pytest.mark.parametrize("max_batch", [None, 8])
def test_hub_sessions_equal_their_offline_predictions(run_dir, tmp_path, signals, max_batch):
    """Three LSL streams on loopback, one process: every session stores exactly the hops of
    an offline run of its own recording (the one with a flat EEG stretch drops EEG there);
    with ``max_batch`` 8 the hops of the three sessions may share forward passes; by
    default on the CPU each hop has its own (the measured faster choice there)."""
    recs = [deap_recording(signals(8, seed=i)) for i in range(3)]
    recs[1].data[:32, 3 * 128:6 * 128] = 5.0  # flat EEG for 3 s: dropped from those windows
    names = [_name() for _ in recs]
    stop = threading.Event()
    timer = threading.Timer(120, stop.set)
    timer.daemon = True
    timer.start()
    players = [threading.Thread(target=replay, args=(rec,), kwargs={"name": n, "speed": 4}, daemon=True)
               for rec, n in zip(recs, names)]
    for th in players:
        th.start()
    db = tmp_path / "s.db"
    pr = Predictor(run_dir)
    stats, rounds = run_streams(pr, sources=names, participants=["P1", "P2", "P3"], db=db, stop_at_eof=True,
                                handle_signals=False, publish=None, resolve_timeout=20, stop=stop,
                                max_batch=max_batch)
    timer.cancel()
    for th in players:
        th.join(10)
    assert not stop.is_set(), "a session did not reach its replay's end"
    with SessionStore(db) as store:
        for st, rec, who in zip(stats, recs, ["P1", "P2", "P3"]):
            offline = predict_recording(pr, rec)
            live = store.predictions(st.session_id)
            assert store.session(st.session_id).participant == who
            assert [p.t for p in live] == [p.t for p in offline]
            for a, b in zip(live, offline):
                assert a.modalities_used == b.modalities_used
                assert a.valence == pytest.approx(b.expected["valence"], abs=1e-3)
            assert st.predictions == len(offline) and len(st.latencies_ms) == len(offline)
            # vital signs (every 5 hops) and raw-signal strips (every 2) after the commits
            vitals = store.vitals(st.session_id)
            assert {v.name for v in vitals} >= {"heart_rate", "breathing_rate", "scr_rate", "ppg_quality"}
            assert {v.t for v in vitals} <= {p.t for p in offline}
            strips = store.strips(st.session_id)
            assert {x.modality for x in strips} == {"eeg", "peripheral", "eog"}
            assert all(x.values.shape[1] > 0 and x.t <= offline[-1].t for x in strips)
    assert any("eeg" not in p.modalities_used for p in predict_recording(pr, recs[1]))
    assert rounds.hops == sum(s.predictions for s in stats)
    if max_batch is None:  # the CPU default: one window per forward pass
        assert rounds.forward_passes == rounds.hops and rounds.largest_batch == 1
    else:
        assert rounds.forward_passes <= rounds.hops and rounds.largest_batch <= max_batch


def test_run_streams_checks_its_arguments(run_dir, tmp_path):
    with pytest.raises(DataError, match="once"):
        run_streams(run_dir, sources=["a", "a"], db=tmp_path / "s.db", handle_signals=False)
    with pytest.raises(DataError, match="2 pseudonyms for 3"):
        run_streams(run_dir, sources=["a", "b", "c"], participants=["x", "y"], db=tmp_path / "s.db",
                    handle_signals=False)
    with pytest.raises(DataError, match="no LSL stream named"):
        run_streams(run_dir, sources=[_name()], db=tmp_path / "s.db", handle_signals=False, resolve_timeout=0.5)


def test_torch_threads_untouched_by_share(run_dir):
    n = torch.get_num_threads()
    Predictor(run_dir).share()
    assert torch.get_num_threads() == n


def test_a_busy_round_commits_each_pass_before_the_next(run_dir, tmp_path, signals):
    """Hops that fall due together are stored pass by pass: with max_batch 2 the first two
    hops of a round of five are in the store before the third is predicted."""
    from symaffect.stream.hub import SessionHub
    from symaffect.stream.pipeline import PendingHop, SessionPipeline

    pr = Predictor(run_dir)
    rec = deap_recording(signals(3, seed=0))

    class Probe:  # the parts of a LiveSession that a round touches, over a real store and pipeline
        def __init__(self, store, sid):
            self.predictor, self.store, self.sid, self.seen = pr.share(), store, sid, []

        def store_hops(self, results):
            for h in results:
                self.store.add_prediction(self.sid, h.prediction)
            return [(h, None) for h in results]

        def published(self, stored):
            self.seen.append(len(self.store.predictions(self.sid)))

    with SessionStore(tmp_path / "s.db") as store:
        sid = store.create_session("P", "m")
        hub = SessionHub(store, max_batch=2)
        pipe = SessionPipeline(pr, rec.ch_names, rec.sfreq)
        hops = [h for h in pipe.push_pending(rec.data) if h.window is not None]
        probe = Probe(store, sid)
        pending = [(probe, PendingHop(h.t, h.window, [])) for h in hops[:1]] * 5
        hub._predict_and_store(pending)
        hub._signals.put(None)
    assert probe.seen == [2, 4, 5]  # three passes (2 + 2 + 1), each committed before the next
    assert hub.rounds.forward_passes == 3 and hub.rounds.largest_batch == 2
