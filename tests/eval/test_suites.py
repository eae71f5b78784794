"""The paper's suites: definitions, tables (Markdown / CSV / JSON), figures and resume."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import pytest

from symaffect.errors import ConfigError
from symaffect.eval.suites import (
    build_suite,
    make_config,
    run_dir_name,
    run_suite,
    tiny_model_kwargs,
)

TINY = {"data.window.window_seconds": 2.0, "data.window.stride_seconds": 1.0, "optim.max_epochs": 1,
        "optim.batch_size": 16}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from symaffect.data.synth import generate

    return generate(tmp_path_factory.mktemp("data"), n_subjects=6, n_trials=4, seconds=13.0, seed=0)


def _kw(*models: str) -> dict:
    return {m: tiny_model_kwargs(m) for m in models}


def test_suite_definitions_follow_the_paper():
    t2 = build_suite("table2")
    assert [e.task_set for e in t2.entries] == ["binary_valence", "binary_arousal", "quadrant_multilabel"]
    for name, ratio in (("table3", 0.2), ("table4", 0.3), ("table5", 0.4)):
        spec = build_suite(name, models=["symaffect", "mlp", "xgboost"])
        assert [e.model for e in spec.entries] == ["symaffect", "mlp", "xgboost"]
        for e in spec.entries:
            c = e.configs[0]
            assert (c.protocol.name, c.protocol.test_ratio, c.data.task_set) == ("subject_holdout", ratio,
                                                                                  "multitask9")
            assert c.data.eval_stride == "non_overlapping"
    assert [e.model for e in build_suite("table6").entries] == ["symaffect", "symaffect_no_dtfe",
                                                                "symaffect_no_fusion"]
    t7 = build_suite("table7")
    assert [e.configs[0].loss.weighting for e in t7.entries] == ["fixed", "learnable"]
    # table6's full model and table7's learnable run are table3's symaffect run (shared folder)
    same = run_dir_name(build_suite("table3", models=["symaffect"]).entries[0].configs[0])
    assert run_dir_name(build_suite("table6").entries[0].configs[0]) == same
    assert run_dir_name(t7.entries[1].configs[0]) == same
    # --folds N: N repeated subject-wise splits with different split seeds
    rep = build_suite("table4", models=["mlp"], folds=3, seeds=[0, 1])
    assert [c.protocol.seed for c in rep.entries[0].configs] == [0, 1, 2]
    assert rep.entries[0].configs[0].seeds == (0, 1)
    with pytest.raises(ConfigError):
        build_suite("table9")


def test_default_table3_has_every_baseline():
    from symaffect.models.registry import list_models

    models = [e.model for e in build_suite("table3").entries]
    assert models[0] == "symaffect" and models[-1] == "xgboost"
    for m in ("lstm", "bilstm", "gru", "mlp", "cnn1d", "cnn_lstm", "transformer"):
        if m in list_models():
            assert m in models


def test_suite_writes_tables_with_baseline_and_protocol_and_resumes(tiny_data, tmp_path):
    out = tmp_path / "bench"
    calls = []
    obj = run_suite("table4", tiny_data, out, models=["xgboost"], changes=TINY, model_kwargs=_kw("xgboost"),
                    progress=False, cache_dir=tmp_path / "cache",
                    on_run=lambda *a: calls.append(a))
    assert [c[4] for c in calls] == [False]  # trained
    for ext in ("md", "csv", "json", "html"):
        assert (out / f"table4.{ext}").is_file()
    md = (out / "table4.md").read_text()
    titles = [line for line in md.splitlines() if line.startswith("## Table 4 — ")]
    assert len(titles) == 3  # valence, arousal, liking
    for t in titles:
        assert "subject-holdout" in t and "7:3" in t and "not leaky" in t
    table_lines = [line for line in md.splitlines() if line.startswith("| xgboost")]
    assert len(table_lines) == 3 and all("(maj " in line for line in table_lines)
    assert "MAE (rating units)" in md and "±1-class acc" in md
    rows = list(csv.DictReader(io.StringIO((out / "table4.csv").read_text())))
    assert {r["metric"] for r in rows} >= {"acc", "macro_f1", "macro_precision", "weighted_f1", "mae",
                                           "within_one"}
    assert all(r["protocol"].startswith("subject-holdout") and r["majority_mean"] != "" for r in rows)
    js = json.loads((out / "table4.json").read_text())
    assert js["suite"] == "table4" and len(js["tables"]) == 3
    t = js["rows"][0]["tasks"]["valence"]
    assert set(t["model"]) >= {"acc", "macro_f1", "macro_precision", "mae", "within_one"}
    assert 0 <= t["majority"]["acc"]["mean"] <= 1
    assert all("protocol" in tb["title"] for tb in js["tables"])
    for p in [js["figures"]["bars"], *js["figures"]["confusion"].values()]:
        assert Path(p).read_bytes()[:4] == b"\x89PNG"
    assert obj["rows"][0]["runs"] == js["rows"][0]["runs"]
    # resume: the finished run is reused, not recomputed
    run = Path(js["rows"][0]["runs"][0])
    stamp = (run / "metrics.json").stat().st_mtime_ns
    calls.clear()
    run_suite("table4", tiny_data, out, models=["xgboost"], changes=TINY, model_kwargs=_kw("xgboost"),
              progress=False, cache_dir=tmp_path / "cache", on_run=lambda *a: calls.append(a))
    assert [c[4] for c in calls] == [True]
    assert (run / "metrics.json").stat().st_mtime_ns == stamp


def test_repeated_splits_give_mean_and_std(tiny_data, tmp_path):
    obj = run_suite("table3", tiny_data, tmp_path / "b", models=["xgboost"], folds=2, changes=TINY,
                    model_kwargs=_kw("xgboost"), progress=False, cache_dir=tmp_path / "cache")
    row = obj["rows"][0]
    assert len(row["runs"]) == 2 and row["n_runs"] == 2
    assert row["tasks"]["valence"]["model"]["acc"]["n"] == 2
    assert "2 repeated splits" in obj["tables"][0]["title"]


@pytest.mark.slow
def test_table2_single_task_and_quadrant_branch(tiny_data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = run_suite("table2", tiny_data, tmp_path / "b", changes=TINY, model_kwargs=_kw("symaffect"),
                        progress=False, cache_dir=tmp_path / "cache")
    tasks = [(t["task_set"], t["task"]) for t in obj["tables"]]
    assert tasks == [("binary_valence", "valence"), ("binary_arousal", "arousal"),
                     ("quadrant_multilabel", "quadrant")]
    quad = obj["tables"][2]
    assert quad["header"][2:] == ["subset Acc", "macro-F1", "macro-Prec", "Hamming Acc"]
    assert "(maj " in quad["rows"][0][2]
    assert len(obj["figures"]["confusion"]) == 2  # the two binary tasks


def test_make_config_applies_changes_last():
    cfg = make_config("mlp", changes={"optim.max_epochs": 2}, model_kwargs={"mlp": {"dim": 8}})
    assert cfg.optim.max_epochs == 2 and cfg.model.kwargs == {"dim": 8}
    assert cfg.protocol.name == "subject_holdout"
