"""Per-listener calibration on the fused embedding: methods, anchors, the file format."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from model_helpers import build_tiny, make_batch

from symaffect.errors import DataError
from symaffect.models import build_model, save_checkpoint
from symaffect.models.calibration import (
    CalibratedModel,
    CalibrationPool,
    _track_weights,
    base_heads,
    describe,
    fit_calibration,
    is_calibration_file,
    load_calibrated,
    save_calibration,
)
from symaffect.models.registry import list_models

D = 6


def _heads(bias=(0.0, 0.0)):
    w = np.zeros((2, D))
    w[1, 0], w[0, 0] = 1.0, -1.0  # class 1 when z[0] > 0
    return {"arousal": (w, np.asarray(bias, dtype=float))}


def _listener(rng, n_tracks=4, per_track=10, offset=-1.0):
    """Embeddings of a listener whose z[0] sits `offset` below the population, all rated high."""
    z = rng.normal(0, 0.5, size=(n_tracks * per_track, D))
    z[:, 0] += offset
    tracks = np.repeat(np.arange(n_tracks), per_track)
    return z, {"arousal": np.ones(len(z), dtype=np.int64)}, tracks


@pytest.mark.parametrize("name", list_models())
def test_heads_of_the_embedding_are_the_forward(name):
    model = build_tiny(name).eval()
    x = make_batch(model, batch=3)
    with torch.no_grad():
        out, z = model(x), model.embed(x)
        for t, logits in model.heads(z).items():
            torch.testing.assert_close(logits, out[t])


def test_none_and_recentre():
    rng = np.random.default_rng(0)
    z, y, tracks = _listener(rng)
    pop = np.zeros(D)
    none = fit_calibration("none", _heads(), pop)
    assert np.all(none.shift == 0) and none.k == 0 and describe(none) == "base model"
    rc = fit_calibration("recentre", _heads(), pop, unlabelled=z)
    np.testing.assert_allclose(rc.shift, z.mean(axis=0))
    assert rc.k == 0 and describe(rc).startswith("calibrated (re-centred")
    # re-centred, the listener's windows fall on both sides of the boundary again
    pred = np.argmax((z - rc.shift) @ _heads()["arousal"][0].T, axis=1)
    assert 0.3 < pred.mean() < 0.7
    with pytest.raises(DataError, match="needs some of the listener"):
        fit_calibration("recentre", _heads(), pop)
    with pytest.raises(DataError, match="at least one rated track"):
        fit_calibration("bias", _heads(), pop, unlabelled=z)
    with pytest.raises(DataError, match="not one of"):
        fit_calibration("magic", _heads(), pop)


def test_bias_learns_the_listeners_use_of_the_scale():
    rng = np.random.default_rng(1)
    z, y, tracks = _listener(rng, n_tracks=8, offset=-1.5)
    heads = _heads()
    base_pred = np.argmax(z @ heads["arousal"][0].T + heads["arousal"][1], axis=1)
    assert base_pred.mean() < 0.1  # the base model calls this listener "low" nearly always
    shares = []
    for k in (2, 6):
        cal = fit_calibration("bias", heads, np.zeros(D), z=z[: 10 * k], y={"arousal": y["arousal"][: 10 * k]},
                              tracks=tracks[: 10 * k], unlabelled=z)
        assert cal.k == k and describe(cal) == f"calibrated (bias, K = {k})"
        np.testing.assert_array_equal(cal.heads["arousal"][0], heads["arousal"][0])  # weights untouched
        held_out = z[60:] - cal.shift  # the last two tracks, never used to fit
        shares.append(np.argmax(held_out @ cal.heads["arousal"][0].T + cal.heads["arousal"][1], axis=1).mean())
    # the other tracks are called "high", as the listener rates them, and more so with more tracks
    assert 0.65 < shares[0] < shares[1]


def test_heads_stay_near_the_base_with_one_track():
    rng = np.random.default_rng(2)
    z, y, tracks = _listener(rng, n_tracks=1)
    heads = _heads()
    cal = fit_calibration("heads", heads, np.zeros(D), z=z, y=y, tracks=tracks)
    w0, w1 = heads["arousal"][0], cal.heads["arousal"][0]
    assert np.linalg.norm(w1 - w0) < 0.5 * np.linalg.norm(w0)  # anchored: one class seen is not a licence
    assert np.all(np.isfinite(cal.heads["arousal"][1]))


def test_every_track_weighs_the_same():
    w = _track_weights(np.array([0] * 99 + [1]))
    assert w[:99].sum() == pytest.approx(1.0) and w[99] == pytest.approx(1.0)


def _tiny_run(tmp_path):
    torch.manual_seed(0)
    kw = {"n_times": 64, "d": 8, "tau": 8, "n_heads": 2, "task_set": "binary_arousal"}
    model = build_model("symaffect", **kw).eval()
    save_checkpoint(tmp_path / "run" / "model.pt", model, name="symaffect", kwargs=kw,
                    extra={"embedding_mean": [0.0] * 8})
    return model


def test_the_file_points_to_its_base_and_moves_with_it(tmp_path):
    model = _tiny_run(tmp_path)
    x = make_batch(model, batch=5)
    with torch.no_grad():
        z = model.embed(x).double().numpy()
    cal = fit_calibration("bias", base_heads(model), np.zeros(8), z=z, y={"arousal": np.ones(5, np.int64)},
                          tracks=[1, 1, 2, 2, 2], listener="P-07")
    path = save_calibration(tmp_path / "run" / "calibrations" / "p07.json", cal, base=tmp_path / "run" / "model.pt")
    doc = json.loads(path.read_text())
    assert doc["base"] == "../model.pt" and doc["listener"] == "P-07" and doc["k"] == 2
    assert is_calibration_file(path) and not is_calibration_file(tmp_path / "run" / "model.pt")
    shutil.move(tmp_path / "run", tmp_path / "elsewhere")
    loaded, info = load_calibrated(tmp_path / "elsewhere" / "calibrations" / "p07.json")
    assert isinstance(loaded, CalibratedModel) and info["calibration"]["k"] == 2
    assert loaded.modalities == model.modalities and loaded.n_times == 64 and loaded.task_kind == "multiclass"
    with torch.no_grad():
        out = loaded(x)["arousal"]
        expect = cal.logits(model.embed(x).double())["arousal"].float()
    torch.testing.assert_close(out, expect, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(out, model(x)["arousal"])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format="other"), "not a symaffect-calibration"),
        (lambda d: d.update(base=""), "no base model"),
        (lambda d: d.update(shift=[float("nan")] * 8), "finite"),
        (lambda d: d["heads"]["arousal"].update(bias=[0.0]), "do not fit"),
        (lambda d: d.pop("heads"), "malformed"),
        (lambda d: d.update(method="magic"), "not one of"),
    ],
)
def test_a_damaged_calibration_file_is_one_clear_error(tmp_path, edit, match):
    model = _tiny_run(tmp_path)
    cal = fit_calibration("none", base_heads(model), np.zeros(8))
    path = save_calibration(tmp_path / "run" / "c.json", cal, base=tmp_path / "run" / "model.pt")
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=match):
        load_calibrated(path)


def test_threshold_ignores_how_often_the_listener_used_each_class():
    """Eight tracks, six rated high: `bias` learns "mostly high"; `threshold` weighs both
    classes alike and puts the boundary between the listener's two classes."""
    rng = np.random.default_rng(3)
    labels = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    tracks = np.repeat(np.arange(8), 10)
    y = np.repeat(labels, 10)
    z = rng.normal(0, 0.3, size=(80, D))
    z[:, 0] += np.where(y == 1, 0.5, -0.5) - 1.0  # separable, but offset from the base boundary
    heads = _heads()
    kw = dict(z=z, y={"arousal": y}, tracks=tracks, unlabelled=z)
    bias = fit_calibration("bias", heads, np.zeros(D), **kw)
    thr = fit_calibration("threshold", heads, np.zeros(D), **kw)

    def high_share(c, zz):
        return np.argmax((zz - c.shift) @ c.heads["arousal"][0].T + c.heads["arousal"][1], axis=1).mean()

    balanced = np.concatenate([z[y == 1][:20], z[y == 0][:20]])  # tracks to come, half high
    assert high_share(bias, balanced) > high_share(thr, balanced)
    assert abs(high_share(thr, balanced) - 0.5) < 0.2


def _population(rng, n=400):
    """A population whose class follows +z[1] weakly (re-centred per listener already):
    across listeners the direction holds on average, not strongly."""
    y = rng.integers(0, 2, size=n)
    z = rng.normal(0, 0.5, size=(n, D))
    z[:, 1] += np.where(y == 1, 0.3, -0.3)
    return CalibrationPool(z=z, targets={"arousal": y})


def _reversed_listener(rng, n_tracks=8, per_track=6):
    """A listener whose class follows -z[1]: the population's direction turned round."""
    labels = np.tile([0, 1], n_tracks // 2)
    y = np.repeat(labels, per_track)
    z = rng.normal(0, 0.5, size=(len(y), D))
    z[:, 1] += np.where(y == 1, -1.0, 1.0)
    return z, y, np.repeat(np.arange(n_tracks), per_track)


def test_pooled_turns_a_reversed_responder_round_and_the_anchored_methods_cannot():
    rng = np.random.default_rng(5)
    pool = _population(rng)
    w = np.zeros((2, D))
    w[1, 1], w[0, 1] = 1.0, -1.0  # the base heads: the population's direction
    heads = {"arousal": (w, np.zeros(2))}
    z, y, tracks = _reversed_listener(rng)
    z_new, y_new, _ = _reversed_listener(np.random.default_rng(6))  # the listener's tracks to come
    kw = dict(z=z, y={"arousal": y}, tracks=tracks, unlabelled=np.concatenate([z, z_new]), pool=pool)

    def acc(c):
        logits = (z_new - c.shift) @ c.heads["arousal"][0].T + c.heads["arousal"][1]
        return float(np.mean(np.argmax(logits, axis=1) == y_new))

    pooled = fit_calibration("pooled", heads, np.zeros(D), **kw)
    assert pooled.method == "pooled" and pooled.k == 8 and describe(pooled) == "calibrated (pooled, K = 8)"
    assert acc(pooled) > 0.8
    for anchored in ("bias", "threshold", "heads"):
        assert acc(fit_calibration(anchored, heads, np.zeros(D), **kw)) < 0.5, anchored
    # with the population weighing far more than the listener's tracks, the population wins
    assert acc(fit_calibration("pooled", heads, np.zeros(D), pool_weight=1e4, **kw)) < 0.5


def test_pooled_keeps_a_typical_listener_where_the_population_is():
    rng = np.random.default_rng(7)
    pool = _population(rng)
    w = np.zeros((2, D))
    w[1, 1], w[0, 1] = 1.0, -1.0
    heads = {"arousal": (w, np.zeros(2))}
    z, y, tracks = _reversed_listener(rng)
    z[:, 1] *= -1  # a listener like the population
    c = fit_calibration("pooled", heads, np.zeros(D), z=z, y={"arousal": y}, tracks=tracks, pool=pool)
    wc = c.heads["arousal"][0]
    assert wc[1, 1] - wc[0, 1] > 1.0  # the population's direction, kept and sharpened
    assert np.abs(wc[:, [0, 2, 3, 4, 5]]).max() < 0.5 * (wc[1, 1] - wc[0, 1])


def test_pooled_without_a_pool_is_one_clear_error():
    rng = np.random.default_rng(0)
    z, y, tracks = _listener(rng)
    with pytest.raises(DataError, match="calibration pool"):
        fit_calibration("pooled", _heads(), np.zeros(D), z=z, y=y, tracks=tracks)


def test_the_pool_round_trips_through_a_checkpoint_and_is_checked(tmp_path):
    rng = np.random.default_rng(1)
    pool = _population(rng, n=50)
    model = build_tiny("symaffect")
    path = save_checkpoint(tmp_path / "model.pt", model, name="symaffect", kwargs={},
                           extra={"calibration_pool": pool.to_extra()})
    payload = torch.load(path, weights_only=True)  # tensors only: no code runs on load
    back = CalibrationPool.from_extra(payload["extra"]["calibration_pool"], dim=D, n_outputs={"arousal": 2})
    np.testing.assert_allclose(back.z, pool.z, rtol=1e-6)
    np.testing.assert_array_equal(back.targets["arousal"], pool.targets["arousal"])
    stored = payload["extra"]["calibration_pool"]
    with pytest.raises(DataError, match="calibration_pool.*wide"):
        CalibrationPool.from_extra(stored, dim=D + 1)
    with pytest.raises(DataError, match="outside 0..1"):
        CalibrationPool.from_extra({"z": stored["z"], "targets": {"arousal": stored["targets"]["arousal"] + 5}},
                                   dim=D, n_outputs={"arousal": 2})
    with pytest.raises(DataError, match="no targets for task 'valence'"):
        CalibrationPool.from_extra(stored, dim=D, n_outputs={"valence": 2})
    with pytest.raises(DataError, match="malformed"):
        CalibrationPool.from_extra({"z": stored["z"]})
