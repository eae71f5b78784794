"""The paper's suites: definitions, tables (Markdown / CSV / JSON), figures and resume."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from symaffect.errors import ConfigError
from symaffect.eval.suites import (
    build_suite,
    make_config,
    run_dir_name,
    run_suite,
    split_plan,
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
        spec = build_suite(name, models=["symaffect", "mlp", "xgboost"], folds=1)
        assert [e.model for e in spec.entries] == ["symaffect", "mlp", "xgboost"]
        assert spec.reference == "symaffect" and "single split, no spread" in spec.description
        for e in spec.entries:
            (c,) = e.configs
            assert (c.protocol.name, c.protocol.test_ratio, c.data.task_set) == ("subject_holdout", ratio,
                                                                                  "multitask9")
            assert c.data.eval_stride == "non_overlapping"
    # default: 5-fold subject CV at 8:2 (one run folder holds every fold), 5 split seeds at 7:3 and 6:4
    for name in ("table2", "table3", "table6", "table7"):
        for e in build_suite(name, models=["symaffect", "mlp"]).entries:
            (c,) = e.configs
            assert (c.protocol.name, c.protocol.n_splits) == ("subject_kfold", 5)
    for name, ratio in (("table4", 0.3), ("table5", 0.4)):
        spec = build_suite(name, models=["mlp"])
        assert [(c.protocol.name, c.protocol.test_ratio, c.protocol.seed) for c in spec.entries[0].configs] == [
            ("subject_holdout", ratio, k) for k in range(5)]
    assert split_plan(0.2, 10)[0]["changes"] == {"protocol.n_splits": 10}
    assert build_suite("table6").reference == "full model"
    assert build_suite("table7").reference == "symaffect, learnable weights"
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
    with pytest.raises(ConfigError):
        build_suite("table3", folds=0)


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
    obj = run_suite("table4", tiny_data, out, models=["xgboost"], folds=1, changes=TINY,
                    model_kwargs=_kw("xgboost"), progress=False, cache_dir=tmp_path / "cache",
                    on_run=lambda *a: calls.append(a))
    assert [c[4] for c in calls] == [False]  # trained
    for ext in ("md", "csv", "json", "html"):
        assert (out / f"table4.{ext}").is_file()
    md = (out / "table4.md").read_text()
    titles = [line for line in md.splitlines() if line.startswith("## Table 4 — ")]
    assert len(titles) == 3  # valence, arousal, liking
    for t in titles:
        assert "subject-holdout" in t and "7:3" in t and "not leaky" in t and "single split, no spread" in t
    table_lines = [line for line in md.splitlines() if line.startswith("| xgboost")]
    assert len(table_lines) == 3 and all("(maj " in line for line in table_lines)
    assert all(", p = " in line for line in table_lines)  # Δ vs majority [CI], p
    assert "MAE (rating units)" in md and "±1-class acc" in md
    rows = list(csv.DictReader(io.StringIO((out / "table4.csv").read_text())))
    assert {r["metric"] for r in rows} >= {"acc", "macro_f1", "macro_precision", "weighted_f1", "mae",
                                           "within_one"}
    assert all(r["protocol"].startswith("subject-holdout") and r["majority_mean"] != "" for r in rows)
    acc_rows = [r for r in rows if r["metric"] == "acc"]
    assert len(acc_rows) == 3 and all(r["delta_vs_majority"] != "" and r["delta_p"] != "" for r in acc_rows)
    js = json.loads((out / "table4.json").read_text())
    assert js["suite"] == "table4" and len(js["tables"]) == 3
    t = js["rows"][0]["tasks"]["valence"]
    assert set(t["model"]) >= {"acc", "macro_f1", "macro_precision", "mae", "within_one"}
    assert 0 <= t["majority"]["acc"]["mean"] <= 1
    assert all("protocol" in tb["title"] for tb in js["tables"])
    for p in [js["figures"]["bars"], *js["figures"]["confusion"].values()]:
        assert Path(p).read_bytes()[:4] == b"\x89PNG"
    assert obj["rows"][0]["runs"] == js["rows"][0]["runs"]
    # provenance: versions now, and the data fingerprint its run recorded
    run_prov = json.loads((Path(js["rows"][0]["runs"][0]) / "metrics.json").read_text())["provenance"]
    fp = (run_prov.get("data") or {}).get("fingerprint") or run_prov["extra"]["prepared"]["fingerprint"]
    assert js["provenance"]["data_fingerprints"] == [fp] and js["provenance"]["packages"]["torch"]
    assert f"data fingerprint `{fp[:16]}`" in md
    # resume: the finished run is reused, not recomputed
    run = Path(js["rows"][0]["runs"][0])
    stamp = (run / "metrics.json").stat().st_mtime_ns
    calls.clear()
    run_suite("table4", tiny_data, out, models=["xgboost"], folds=1, changes=TINY, model_kwargs=_kw("xgboost"),
              progress=False, cache_dir=tmp_path / "cache", on_run=lambda *a: calls.append(a))
    assert [c[4] for c in calls] == [True]
    assert (run / "metrics.json").stat().st_mtime_ns == stamp


def test_repeated_splits_give_mean_and_std(tiny_data, tmp_path):
    obj = run_suite("table4", tiny_data, tmp_path / "b", models=["xgboost"], folds=2, changes=TINY,
                    model_kwargs=_kw("xgboost"), progress=False, cache_dir=tmp_path / "cache")
    row = obj["rows"][0]
    assert len(row["runs"]) == 2 and row["n_runs"] == 2
    assert row["tasks"]["valence"]["model"]["acc"]["n"] == 2
    assert "2 repeated splits" in obj["tables"][0]["title"]
    assert "no spread" not in obj["tables"][0]["title"]
    # a subject tested in both hold-outs is averaged over them
    by = row["tasks"]["valence"]["by_subject"]
    tested = [s for r in row["splits"] for s in r["test_subjects"]]
    assert by["n_tests"] == [tested.count(s) for s in by["subjects"]]


@pytest.mark.slow
def test_table2_single_task_and_quadrant_branch(tiny_data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = run_suite("table2", tiny_data, tmp_path / "b", folds=1, changes=TINY, model_kwargs=_kw("symaffect"),
                        progress=False, cache_dir=tmp_path / "cache")
    tasks = [(t["task_set"], t["task"]) for t in obj["tables"]]
    assert tasks == [("binary_valence", "valence"), ("binary_arousal", "arousal"),
                     ("quadrant_multilabel", "quadrant")]
    quad = obj["tables"][2]
    assert quad["header"][2:-1] == ["subset Acc", "macro-F1", "macro-Prec", "Hamming Acc"]
    assert "(maj " in quad["rows"][0][2]
    assert quad["header"][-1].startswith("Δ subset Acc vs maj")
    assert obj["rows"][2]["tasks"]["quadrant"]["vs_majority"]["metric"] == "subset_acc"
    assert len(obj["figures"]["confusion"]) == 2  # the two binary tasks


def test_make_config_applies_changes_last():
    cfg = make_config("mlp", changes={"optim.max_epochs": 2}, model_kwargs={"mlp": {"dim": 8}})
    assert cfg.optim.max_epochs == 2 and cfg.model.kwargs == {"dim": 8}
    assert cfg.protocol.name == "subject_holdout"


# --- uncertainty over test subjects ------------------------------------------------------
@pytest.fixture(scope="module")
def kfold_suite(tiny_data, tmp_path_factory):
    """table3 with its default split plan (5-fold subject CV) for xgboost and an MLP."""
    out = tmp_path_factory.mktemp("kfold")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = run_suite("table3", tiny_data, out, models=["xgboost", "mlp"], changes=TINY,
                        model_kwargs=_kw("xgboost", "mlp"), progress=False, cache_dir=out / "cache")
    return obj, out


def _per_subject_by_hand(row: dict, task: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per-subject model and majority accuracy straight from the runs' predictions.npz."""
    per: dict[int, list[tuple[float, float]]] = {}
    for d in row["runs"]:
        for r in json.loads((Path(d) / "metrics.json").read_text())["runs"]:
            rep = r["tasks"][task]
            with np.load(Path(d) / f"fold{r['fold']}-seed{r['seed']}" / "predictions.npz") as z:
                subj, yt, yp = z["subject"], z[f"true_{task}"], z[f"pred_{task}"]
            # the stored predictions are the ones the run's report scored
            assert np.mean(yt == yp) == pytest.approx(rep["model"]["acc"])
            assert np.mean(yt == rep["majority"]["class"]) == pytest.approx(rep["majority"]["acc"])
            for s in np.unique(subj):
                m = subj == s
                per.setdefault(int(s), []).append((np.mean(yt[m] == yp[m]), np.mean(yt[m] == rep["majority"]["class"])))
    subjects = sorted(per)
    model = np.array([np.mean([a for a, _ in per[s]]) for s in subjects])
    maj = np.array([np.mean([b for _, b in per[s]]) for s in subjects])
    return subjects, model, maj


def test_default_suite_is_5_fold_subject_cv_with_spread(kfold_suite):
    obj, out = kfold_suite
    for t in obj["tables"]:
        assert "subject-kfold" in t["title"] and "5 folds (8:2 per fold)" in t["title"]
        assert "no spread" not in t["title"]
    for row in obj["rows"]:
        assert len(row["runs"]) == 1 and row["n_runs"] == 5 and row["n_splits"] == 5
        assert row["tasks"]["valence"]["model"]["acc"]["n"] == 5
        # every one of the 6 subjects is tested exactly once (one training seed)
        by = row["tasks"]["valence"]["by_subject"]
        assert by["subjects"] == [1, 2, 3, 4, 5, 6] and by["n_tests"] == [1] * 6
        assert sorted(s for r in row["splits"] for s in r["test_subjects"]) == [1, 2, 3, 4, 5, 6]


def test_delta_vs_majority_is_computed_from_the_predictions(kfold_suite):
    from symaffect.eval.suites import collect

    obj, out = kfold_suite
    js = json.loads((out / "table3.json").read_text())
    assert js["uncertainty"]["unit"] == "test subject" and js["uncertainty"]["n_resamples"] == 2000
    for row in js["rows"]:
        for task, tr in row["tasks"].items():
            subjects, model, maj = _per_subject_by_hand(row, task)
            assert tr["by_subject"]["subjects"] == subjects
            assert tr["by_subject"]["model"] == pytest.approx(model.tolist())
            assert tr["by_subject"]["majority"] == pytest.approx(maj.tolist())
            vs = tr["vs_majority"]
            assert vs["delta"] == pytest.approx(np.mean(model - maj))
            assert vs["ci_low"] <= vs["delta"] <= vs["ci_high"] and 0 < vs["p_value"] <= 1
            assert vs["n_subjects"] == 6 and vs["exact"] and vs["n_permutations"] == 2**6
    # the Δ column of every table, in Markdown and HTML
    for tb in js["tables"]:
        assert tb["header"][-1] == "Δ Acc vs maj, points [95 % CI], p"
        assert all(", p = " in row[-1] and "[" in row[-1] for row in tb["rows"])
    md, html = (out / "table3.md").read_text(), (out / "table3.html").read_text()
    assert md.count("Δ Acc vs maj, points [95 % CI], p") == 3
    assert "Δ Acc vs maj, points [95 % CI], p" in html and "bootstrap" in md
    # seeded: collecting again gives the same intervals and p-values
    again = collect([(r["label"], [Path(d) for d in r["runs"]]) for r in js["rows"]])
    assert [r["tasks"]["valence"]["vs_majority"] for r in again["rows"]] == [
        r["tasks"]["valence"]["vs_majority"] for r in js["rows"]]


def test_model_vs_model_pairs_on_subjects(kfold_suite):
    obj, out = kfold_suite
    js = json.loads((out / "table3.json").read_text())
    assert js["reference"] == "xgboost"  # the first model when symaffect is not in the suite
    rows = {r["label"]: r for r in js["rows"]}
    assert [(c["task"], c["reference"], c["other"]) for c in js["comparisons"]] == [
        (t, "xgboost", "mlp") for t in ("valence", "arousal", "liking")]
    for c in js["comparisons"]:
        _, a, _ = _per_subject_by_hand(rows["xgboost"], c["task"])
        _, b, _ = _per_subject_by_hand(rows["mlp"], c["task"])
        assert c["delta"] == pytest.approx(np.mean(a - b))
        assert c["mean_a"] == pytest.approx(a.mean()) and c["mean_b"] == pytest.approx(b.mean())
        assert c["wins"] + c["losses"] + c["ties"] == 6 and c["ci_low"] <= c["delta"] <= c["ci_high"]
    assert len(js["pairwise_tables"]) == 3
    pt = js["pairwise_tables"][0]
    assert pt["rows"][0][0] == "xgboost − mlp" and ", p = " in pt["rows"][0][4]
    assert "protocol: subject-kfold" in pt["title"]
    md = (out / "table3.md").read_text()
    assert md.count("xgboost vs each other model, paired over test subjects") == 3
    assert "| xgboost − mlp | 6 |" in md


def test_model_pairs_with_other_splits_are_refused(kfold_suite, tiny_data):
    import copy

    from symaffect.errors import DataError
    from symaffect.eval.suites import collect, compare_rows

    obj, out = kfold_suite
    xgb, mlp = obj["rows"]
    assert compare_rows(xgb, mlp, "valence")["delta"] == pytest.approx(obj["comparisons"][0]["delta"])
    # the same model on a 7:3 hold-out: other splits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t4 = run_suite("table4", tiny_data, out, models=["xgboost"], folds=1, changes=TINY,
                       model_kwargs=_kw("xgboost"), progress=False, cache_dir=out / "cache")
    with pytest.raises(DataError, match="cannot pair 'xgboost' with 'xgboost' on valence: the splits differ"):
        compare_rows(xgb, t4["rows"][0], "valence")
    other = copy.deepcopy(mlp)
    other["splits"][0]["seed"] = 7
    with pytest.raises(DataError, match="training seeds differ"):
        compare_rows(xgb, other, "valence")
    other = copy.deepcopy(mlp)
    other["splits"][0]["test_subjects"] = [1, 2]
    with pytest.raises(DataError, match="subjects of subject-kfold split seed 0 fold 0 differ"):
        compare_rows(xgb, other, "valence")
    other = copy.deepcopy(mlp)
    other["tasks"]["valence"]["by_subject"]["pairing_key"] = "0" * 40
    with pytest.raises(DataError, match="different test windows or labels"):
        compare_rows(xgb, other, "valence")
    # a missing predictions file: no per-subject numbers, said in the table note, not a crash
    run = Path(mlp["runs"][0])
    pred = run / "fold0-seed0" / "predictions.npz"
    saved = pred.read_bytes()
    pred.unlink()
    try:
        res = collect([("mlp", [run])])
    finally:
        pred.write_bytes(saved)
    t = res["rows"][0]["tasks"]["valence"]
    assert t["vs_majority"] is None and "predictions.npz" in t["uncertainty_error"]


def test_table2_quadrant_subject_scores_use_subset_accuracy(tiny_data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = run_suite("table2", tiny_data, tmp_path / "b", models=["xgboost"], folds=2, changes=TINY,
                        model_kwargs=_kw("xgboost"), progress=False, cache_dir=tmp_path / "cache")
    quad = obj["rows"][2]
    assert quad["task_set"] == "quadrant_multilabel" and "2 folds" in quad["protocol_text"]
    vs = quad["tasks"]["quadrant"]["vs_majority"]
    assert vs["metric"] == "subset_acc" and vs["n_subjects"] == 6
    # subset accuracy per subject, by hand, against the majority label vector
    hits: dict[int, list[float]] = {}
    for r in json.loads((Path(quad["runs"][0]) / "metrics.json").read_text())["runs"]:
        vec = np.asarray(r["tasks"]["quadrant"]["majority"]["vector"])
        with np.load(Path(quad["runs"][0]) / f"fold{r['fold']}-seed{r['seed']}" / "predictions.npz") as z:
            for s in np.unique(z["subject"]):
                m = z["subject"] == s
                yt, yp = z["true_quadrant"][m], z["pred_quadrant"][m]
                hits[int(s)] = [(yt == yp).all(axis=1).mean(), (yt == vec).all(axis=1).mean()]
    d = np.array([hits[s][0] - hits[s][1] for s in sorted(hits)])
    assert vs["delta"] == pytest.approx(d.mean())
    assert obj["tables"][2]["header"][-1] == "Δ subset Acc vs maj, points [95 % CI], p"
    assert obj["comparisons"] == []  # one model per task: nothing to pair


# --- learning curves in the reports ------------------------------------------------------
def test_suite_report_shows_every_runs_learning_curves(kfold_suite):
    obj, out = kfold_suite
    js = json.loads((out / "table3.json").read_text())
    curves = js["figures"]["learning_curves"]
    assert curves["xgboost"] == []  # not trained in epochs
    assert [(c["fold"], c["seed"]) for c in curves["mlp"]] == [(k, 0) for k in range(5)]
    mlp = next(r for r in js["rows"] if r["label"] == "mlp")
    for c, rec in zip(curves["mlp"], mlp["learning_curves"]):
        # relative to the suite folder; the fold's result.json recorded it relative to the run folder
        assert not Path(c["path"]).is_absolute() and (out / c["path"]).read_bytes()[:4] == b"\x89PNG"
        result = json.loads((Path(mlp["runs"][0]) / f"fold{c['fold']}-seed0" / "result.json").read_text())
        assert (out / c["path"]).resolve() == (Path(mlp["runs"][0]) / result["learning_curves"]).resolve()
        assert rec["note"] is None and Path(rec["path"]).resolve() == (out / c["path"]).resolve()
    xgb = next(r for r in js["rows"] if r["label"] == "xgboost")
    assert len(xgb["learning_curves"]) == 5
    assert all(r["path"] is None and "not trained in epochs" in r["note"] for r in xgb["learning_curves"])

    md = (out / "table3.md").read_text()
    section = md[md.index("## Learning curves"):]
    first, *others = [c["path"] for c in curves["mlp"]]
    assert f"![fold 0 · seed 0]({first})" in section
    assert all(f"]({p})" in section for p in others) and section.count("![") == 1  # the others as links
    assert "**xgboost**: no learning curves (not trained in epochs)." in section
    html = (out / "table3.html").read_text()
    assert "<h2>Learning curves</h2>" in html and html.count('<div class="thumbs">') == 1
    assert html.count('tabindex="0"') == 5  # one embedded thumbnail per fold
    n_figs = 1 + len(js["figures"]["confusion"]) + 5
    assert html.count("data:image/png;base64,") == n_figs
    assert "learning_curves.png" not in html  # self-contained: embedded, not linked


def test_suite_report_skips_runs_without_curves_with_a_note(kfold_suite, tmp_path):
    import shutil

    from symaffect.eval.suites import SuiteSpec, curve_records, write_suite

    obj, out = kfold_suite
    mlp = next(r for r in obj["rows"] if r["label"] == "mlp")
    suite = tmp_path / "suite"
    run = suite / "runs" / Path(mlp["runs"][0]).name
    shutil.copytree(mlp["runs"][0], run)
    met = json.loads((run / "metrics.json").read_text())
    del met["runs"][0]["learning_curves"]  # a run from before the curves were drawn
    met["runs"][1]["learning_curves"] = None  # no training logs
    (run / "fold2-seed0" / "learning_curves.png").unlink()
    met["runs"][3]["learning_curves"] = "../../../outside.png"  # never read outside the run folder
    (tmp_path / "outside.png").write_bytes((run / "fold4-seed0" / "learning_curves.png").read_bytes())
    (run / "metrics.json").write_text(json.dumps(met))

    js = write_suite(SuiteSpec("t", "Table X", "skips"), [("mlp", [run])], suite)
    assert [c["fold"] for c in js["figures"]["learning_curves"]["mlp"]] == [4]
    notes = [r["note"] for r in js["rows"][0]["learning_curves"]]
    assert "from before" in notes[0] and "no training logs" in notes[1] and "missing" in notes[2]
    assert "not a path inside the run folder" in notes[3] and notes[4] is None
    md = (suite / "t.md").read_text()
    assert "Skipped 4 of 5 runs: fold 0 seed 0 (none recorded: a run from before" in md
    assert "![mlp · fold 4 · seed 0](runs/" in md
    (bad,) = curve_records([run], [{"protocol": {}, "runs": [{"fold": 0, "seed": 0, "learning_curves": "\x00"}]}])
    assert bad["path"] is None and "not a path inside the run folder" in bad["note"]
    html = (suite / "t.html").read_text()
    assert html.count("data:image/png;base64,") == 1 + len(js["figures"]["confusion"]) + 1


def test_corrupt_metrics_json_of_a_reused_run_is_one_data_error(tiny_data, tmp_path):
    from symaffect.errors import DataError

    kw = dict(models=["xgboost"], folds=1, changes=TINY, model_kwargs=_kw("xgboost"), progress=False,
              cache_dir=tmp_path / "cache")
    obj = run_suite("table4", tiny_data, tmp_path / "b", **kw)
    met = Path(obj["rows"][0]["runs"][0]) / "metrics.json"
    met.write_text('{"runs": [')  # cut short
    with pytest.raises(DataError, match="not valid JSON") as e:
        run_suite("table4", tiny_data, tmp_path / "b", **kw)
    assert e.value.source == str(met) and "\n" not in str(e.value)


def test_a_damaged_predictions_file_is_a_one_line_data_error(tmp_path):
    from symaffect._io import read_npz
    from symaffect.errors import DataError

    bad = tmp_path / "predictions.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="predictions.npz: not a readable .npz file"):
        read_npz(bad)
    with pytest.raises(DataError, match="missing"):
        read_npz(tmp_path / "absent.npz")
    import numpy as np

    np.savez(tmp_path / "ok.npz", a=np.arange(3))
    assert read_npz(tmp_path / "ok.npz")["a"].tolist() == [0, 1, 2]
