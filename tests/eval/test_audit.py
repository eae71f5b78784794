"""The leakage audit: window-random is labelled LEAKY, with its measured overlap."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from symaffect.eval.audit import run_audit
from symaffect.eval.suites import tiny_model_kwargs

TINY = {"data.window.window_seconds": 2.0, "data.window.stride_seconds": 1.0, "optim.max_epochs": 1,
        "optim.batch_size": 16}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from symaffect.data.synth import generate

    return generate(tmp_path_factory.mktemp("data"), n_subjects=6, n_trials=4, seconds=13.0, seed=0)


def test_audit_labels_window_random_leaky_and_measures_overlap(tiny_data, tmp_path):
    out = tmp_path / "audit"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = run_audit(tiny_data, out, model="xgboost", changes=TINY,
                        model_kwargs={"xgboost": tiny_model_kwargs("xgboost")}, progress=False,
                        cache_dir=tmp_path / "cache")
    rows = {r["protocol_config"]: r for r in obj["rows"]}
    assert list(rows) == ["window_random", "trial_holdout", "subject_holdout"]
    wr, th, sh = rows["window_random"], rows["trial_holdout"], rows["subject_holdout"]
    assert wr["leaky"] and not th["leaky"] and not sh["leaky"]
    # 2-s windows at a 1-s stride: nearly every random test window overlaps a training window
    assert wr["overlap"]["test_overlapping_train"] > 0.5
    assert th["overlap"]["test_overlapping_train"] == 0 and sh["overlap"]["test_overlapping_train"] == 0
    assert th["overlap"]["shared_subjects"] == 6 and sh["overlap"]["shared_subjects"] == 0
    for r in obj["rows"]:
        for t, v in r["tasks"].items():
            assert 0 <= v["majority"] <= 1
            assert v["acc_minus_subject_independent"] == pytest.approx(v["acc"] - sh["tasks"][t]["acc"])
    assert all(v["acc_minus_subject_independent"] == 0 for v in sh["tasks"].values())
    assert obj["verdict"][0].startswith("window-random is LEAKY")
    pct = f"{100 * wr['overlap']['test_overlapping_train']:.0f} % of its test windows overlap"
    assert pct in obj["verdict"][0]
    md = (out / "audit.md").read_text()
    assert "window-random is LEAKY" in md and pct in md and "majority" in md
    js = json.loads((out / "audit.json").read_text())
    assert js["rows"][0]["leaky"] is True
    fps = js["provenance"]["data_fingerprints"]  # the three runs read the same data
    assert len(fps) == 1 and f"data fingerprint `{fps[0][:16]}`" in md and js["provenance"]["packages"]["torch"]
    assert (out / "figures" / "audit_bars.png").read_bytes()[:4] == b"\x89PNG"
    assert "LEAKY" in (out / "audit.html").read_text()


def test_audit_names_a_corrupt_metrics_json_of_a_reused_run(tiny_data, tmp_path):
    from symaffect.errors import DataError

    kw = dict(model="xgboost", changes=TINY, model_kwargs={"xgboost": tiny_model_kwargs("xgboost")},
              progress=False, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = run_audit(tiny_data, tmp_path / "audit", **kw)
        met = Path(obj["rows"][1]["runs"][0]) / "metrics.json"
        met.write_text("")  # emptied, e.g. by a full disk
        with pytest.raises(DataError, match="not valid JSON") as e:
            run_audit(tiny_data, tmp_path / "audit", **kw)
    assert e.value.source == str(met)
