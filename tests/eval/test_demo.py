"""`symaffect demo` end to end on tiny settings, its verdicts, and the report builder."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from symaffect.cli import app
from symaffect.eval import demo as D
from symaffect.eval.report import Report

RECORD_KEYS = {"model", "task_set", "task", "protocol", "protocol_text", "n_runs", "n_test_subjects",
               "n_test_windows", "model_acc", "majority_acc", "fitted", "fit", "generalised", "beyond_noise",
               "noise_verdict", "comparison", "learning_curves"}


def _demo(tmp_path, *extra: str):
    out = tmp_path / "demo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(app, ["demo", "--out", str(out), "--subjects", "4", "--trials", "4",
                                       "--seconds", "13", "--tiny", *extra])
    assert res.exit_code == 0, res.output
    return out, res.output


def _csv(fdir: Path, rows: list[tuple[int, float, float]], task: str = "arousal") -> None:
    """A CSV log with (epoch, train acc, train loss) rows, as Lightning writes them."""
    p = fdir / "logs" / "version_0" / "metrics.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"epoch,step,train/{task}_acc,train/{task}_loss,train/loss_epoch,train/loss_step"]
    for e, acc, loss in rows:
        lines += [f"{e},{e},,,,{loss}", f"{e},{e},{acc},{loss},{loss},"]
    p.write_text("\n".join(lines) + "\n")


def test_demo_cli_tiny_writes_report_json_and_curves(tmp_path, capsys):
    out, output = _demo(tmp_path, "--models", "symaffect,xgboost", "--task-sets", "binary_arousal,multitask9")
    obj = json.loads((out / "demo.json").read_text())
    assert obj["format"] == "symaffect-demo" and obj["version"] == 2
    assert obj["models"] == ["symaffect", "xgboost"] and obj["task_sets"] == ["binary_arousal", "multitask9"]
    assert obj["protocol_name"] == "subject-holdout" and obj["protocol"]["leaky"] is False
    (split,) = obj["splits"]
    assert set(split["test_subjects"]).isdisjoint(split["train_subjects"])
    assert obj["n_test_subjects"] == len(split["test_subjects"])
    assert (out / "data" / "s04.dat").is_file()

    res = obj["results"]
    assert set(res) == {"symaffect", "xgboost"}
    assert set(res["symaffect"]["binary_arousal"]) == {"arousal"}
    assert set(res["symaffect"]["multitask9"]) == {"valence", "arousal", "liking"}
    for model, by_ts in res.items():
        for ts, by_task in by_ts.items():
            run_dir = next(Path(r["runs"][0]) for r in obj["rows"] if r["model"] == model and r["task_set"] == ts)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            (run,) = metrics["runs"]
            for task, rec in by_task.items():
                assert RECORD_KEYS <= set(rec), set(RECORD_KEYS) - set(rec)
                assert rec["protocol"] == "subject-holdout"
                assert rec["n_test_windows"] == run["n_test_windows"] > 0
                assert rec["n_test_subjects"] == len(run["test_subjects"])
                # the numbers are the run's, the flags follow from them
                assert rec["model_acc"] == pytest.approx(run["tasks"][task]["model"]["acc"])
                assert rec["majority_acc"] == pytest.approx(run["tasks"][task]["majority"]["acc"])
                assert rec["generalised"] == (rec["model_acc"] > rec["majority_acc"])
                c = rec["comparison"]
                assert rec["beyond_noise"] == (c["ci_low"] > 0 and c["p_value"] < D.ALPHA)
                assert c["n_subjects"] == rec["n_test_subjects"]
                assert rec["noise_verdict"] == "cannot tell"  # 2 test subjects: smallest p is 0.5
                if ts == "multitask9":
                    assert {"model_mae", "majority_mae", "model_within_one", "majority_within_one"} <= set(rec)
                if model == "xgboost":
                    assert rec["fitted"] is None and rec["learning_curves"] == []
                    continue
                (fit,) = rec["fit"]
                assert fit["best_epoch"] == run["best_epoch"] and fit["epochs_trained"] == run["epochs_trained"]
                from symaffect.train.curves import read_epoch_metrics

                logs = read_epoch_metrics(run_dir / "fold0-seed0")
                assert fit["epochs"] == len(logs) == 2
                assert fit["train_acc_final"] == logs[-1][f"train/{task}_acc"]
                assert fit["train_majority_rate"] == run["train_majority_rate"][task]
                expect = (fit["train_acc_final"] > fit["train_majority_rate"] + D.FIT_MARGIN
                          and logs[-1][f"train/{task}_loss"] < logs[0][f"train/{task}_loss"])
                assert rec["fitted"] == expect
                (png,) = rec["learning_curves"]
                assert (out / png).is_file() and png.endswith("fold0-seed0/learning_curves.png")

    # the console: the table under its protocol, the majority beside every number, the verdicts
    flat = " ".join(output.split())
    assert "subject-holdout" in flat and "maj" in flat
    assert "symaffect · arousal, binary [subject-holdout 6:4, 2 test subjects]" in flat
    assert "beyond noise: cannot tell" in flat and "smallest possible p is 0.5" in flat
    assert str(out / "report.html") in output.replace("\n", "")
    assert len(obj["summary"]) == 8  # (1 binary + 3 nine-class tasks) x 2 models

    md = (out / "report.md").read_text()
    fps = obj["provenance"]["data_fingerprints"]
    assert len(fps) == 1 and f"data fingerprint `{fps[0][:16]}`" in md  # versions, data and configs
    for text in ("synthetic", "majority", "subject-holdout", "92-98 %", "not expected", "Did it learn?",
                 "Learning curves", "fitted", "generalised", "beyond noise"):
        assert text in md, text
    curves = [p for by_ts in obj["figures"]["learning_curves"].values() for ps in by_ts.values() for p in ps]
    assert len(curves) == 2  # one per symaffect run
    for p in curves:
        assert f"]({p})" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 + len(curves) + len(obj["figures"]["confusion"])
    assert "<table>" in html
    # a second run reuses the data and the finished runs
    _, again = _demo(tmp_path, "--models", "symaffect,xgboost", "--task-sets", "binary_arousal,multitask9")
    assert "already there, reused" in again and again.count("finished earlier, reused") == 4

    # a corrupt metrics.json in a reused run folder: one line naming it, exit code 2, no traceback
    from symaffect.cli import main

    met = Path(obj["rows"][0]["runs"][0]) / "metrics.json"
    met.write_text(met.read_text()[:40])
    capsys.readouterr()
    with warnings.catch_warnings(), pytest.raises(SystemExit) as e:
        warnings.simplefilter("ignore")
        main(["demo", "--out", str(out), "--subjects", "4", "--trials", "4", "--seconds", "13", "--tiny",
              "--models", "symaffect,xgboost", "--task-sets", "binary_arousal,multitask9"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith(f"error: {met}: not valid JSON") and err.count("\n") == 1 and "Traceback" not in err


def test_demo_budget_constants_drive_the_runs(tmp_path, monkeypatch):
    """The budget lives in module constants: changing them changes data, epochs and windows."""
    for name, value in {"DEMO_SUBJECTS": 4, "DEMO_TRIALS": 3, "DEMO_SECONDS": 13.0, "DEMO_EPOCHS": 2,
                        "DEMO_WINDOWS_PER_EPOCH": 24, "DEMO_TEST_RATIO": 0.5}.items():
        monkeypatch.setattr(D, name, value)
    from symaffect.train.config import RunConfig

    obj = D.run_demo(tmp_path / "d", models=["symaffect"], task_sets=["binary_valence"], window_seconds=2.0,
                     progress=False)
    assert obj["data"]["n_subjects"] == 4 and obj["data"]["n_trials"] == 3 and obj["tiny"] is False
    assert obj["budget"]["epochs"] == 2 and obj["budget"]["windows_per_epoch"] == 24

    (row,) = obj["rows"]
    cfg = RunConfig.from_yaml(Path(row["runs"][0]) / "config.yaml")
    assert cfg.optim.max_epochs == 2 and cfg.trainer.max_train_windows_per_epoch == 24
    assert cfg.protocol.name == "subject_holdout" and cfg.protocol.test_ratio == 0.5
    assert cfg.data.task_set == "binary_valence"
    (split,) = obj["splits"]
    assert len(split["test_subjects"]) == 2
    rec = obj["results"]["symaffect"]["binary_valence"]["valence"]
    assert rec["fit"][0]["epochs"] == 2


def test_demo_changes_follow_the_constants(monkeypatch):
    monkeypatch.setattr(D, "DEMO_EPOCHS", 13)
    monkeypatch.setattr(D, "DEMO_WINDOWS_PER_EPOCH", 1500)
    monkeypatch.setattr(D, "DEMO_PATIENCE", 20)
    monkeypatch.setattr(D, "DEMO_VAL_RATIO", 0.25)
    assert D.demo_changes() == {"optim.max_epochs": 13, "trainer.max_train_windows_per_epoch": 1500,
                                "optim.patience": 20, "protocol.val_ratio": 0.25}
    monkeypatch.setattr(D, "DEMO_PROTOCOL", "subject_kfold")
    monkeypatch.setattr(D, "DEMO_N_SPLITS", 3)
    assert D.demo_changes()["protocol.n_splits"] == 3
    spec = D.build_spec(["symaffect", "xgboost"], ["binary_arousal", "multitask9"], seed=0,
                        changes=D.demo_changes())
    assert [(e.label, e.task_set) for e in spec.entries] == [
        ("symaffect", "binary_arousal"), ("xgboost", "binary_arousal"),
        ("symaffect", "multitask9"), ("xgboost", "multitask9")]
    cfg = spec.entries[0].configs[0]
    assert cfg.protocol.name == "subject_kfold" and cfg.protocol.n_splits == 3 and cfg.optim.max_epochs == 13
    assert cfg.optim.patience == 20 and cfg.protocol.val_ratio == 0.25


@pytest.mark.parametrize(
    ("rows", "majority", "fitted", "reason"),
    [
        ([(0, 0.55, 0.70), (1, 0.70, 0.60), (2, 0.80, 0.50)], 0.52, True, None),
        ([(0, 0.50, 0.70), (1, 0.52, 0.69), (2, 0.55, 0.68)], 0.52, False, "not above the training-set majority"),
        ([(0, 0.55, 0.60), (1, 0.70, 0.62), (2, 0.80, 0.65)], 0.52, False, "training loss did not fall"),
        ([(0, 0.90, 0.50)], 0.52, False, "one epoch only"),
        ([(0, 0.55, 0.70), (1, 0.80, 0.50)], None, None, "majority rate unknown"),
    ],
)
def test_fit_check(tmp_path, rows, majority, fitted, reason):
    _csv(tmp_path, rows)
    f = D.fit_check(tmp_path, "arousal", majority)
    assert f["fitted"] is fitted
    assert f["epochs"] == len(rows)
    assert f["train_acc_final"] == rows[-1][1] and f["train_loss_first"] == rows[0][2]
    if reason is None:
        assert f["reasons"] == []
    else:
        assert any(reason in r for r in f["reasons"]), f["reasons"]


def test_fit_check_without_logs(tmp_path):
    f = D.fit_check(tmp_path / "none", "arousal", 0.5)
    assert f["fitted"] is None and "no training logs" in f["reasons"][0]


def test_summary_says_beyond_noise_only_when_the_test_does():
    def rec(delta, lo, hi, p, n, gen=True):
        return {"protocol_text": "subject-kfold · 4 folds · subject-independent, not leaky", "n_test_subjects": n,
                "fitted": True, "fit": [{"train_acc_final": 0.8, "train_majority_rate": 0.5, "train_loss_first": 0.7,
                                         "train_loss_final": 0.5, "epochs": 10, "reasons": []}],
                "generalised": gen, "model_acc": 0.6, "majority_acc": 0.5,
                "beyond_noise": lo > 0 and p < D.ALPHA,
                "comparison": {"delta": delta, "ci_low": lo, "ci_high": hi, "p_value": p, "n_subjects": n,
                               "min_p_value": D.min_p_value(n)}}

    yes, no, few = D.summary_lines({"symaffect": {"binary_arousal": {
        "arousal": rec(0.1, 0.05, 0.15, 0.001, 12)}, "binary_valence": {"valence": rec(0.02, -0.03, 0.07, 0.4, 12)},
        "multitask9": {"valence": rec(0.1, 0.02, 0.2, 0.25, 3)}}})
    assert "[subject-kfold 4 folds, 12 test subjects]" in yes
    assert "fitted its training data — final training acc 80.0 % vs training majority 50.0 %" in yes
    assert "test acc 60.0 % vs majority 50.0 %" in yes and "beyond noise: yes" in yes
    assert "beyond noise: no" in no and "[95 % CI -3.0, +7.0]" in no
    assert "beyond noise: cannot tell" in few and "smallest possible p is 0.25" in few
    assert D.min_p_value(6) == pytest.approx(2 / 64)
    assert D.min_p_value(6) < D.ALPHA <= D.min_p_value(5)


def test_assess_names_a_corrupt_metrics_json(tmp_path):
    from symaffect.errors import DataError

    run = tmp_path / "runs" / "symaffect-binary_arousal"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"runs": [{"fold": 0,')
    row = {"runs": [str(run)], "model": "symaffect", "task_set": "binary_arousal", "tasks": {}}
    with pytest.raises(DataError, match="not valid JSON") as e:
        D.assess(row, tmp_path)
    assert e.value.source == str(run / "metrics.json")
    (run / "metrics.json").write_text("[]")
    with pytest.raises(DataError, match="expected a JSON object, got array"):
        D.assess(row, tmp_path)


def test_corrupt_synth_meta_means_the_data_are_written_again(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(D, "generate", lambda folder, **kw: made.append(kw))
    (tmp_path / "synth_meta.json").write_text("{not json")
    assert D._ensure_data(tmp_path, n_subjects=4, n_trials=3, seconds=13.0, seed=0) == (tmp_path, True)
    assert made == [{"n_subjects": 4, "n_trials": 3, "seconds": 13.0, "seed": 0}]


@pytest.mark.slow
def test_demo_default_models_and_task_sets_tiny(tmp_path):
    out, output = _demo(tmp_path)
    obj = json.loads((out / "demo.json").read_text())
    assert obj["models"] == list(D.DEMO_MODELS) == ["symaffect", "xgboost"]
    assert obj["task_sets"] == list(D.DEMO_TASK_SETS)
    assert {(r["label"], r["task_set"]) for r in obj["rows"]} == {
        (m, ts) for m in D.DEMO_MODELS for ts in D.DEMO_TASK_SETS}
    assert np.all([len(v) == 1 for v in obj["figures"]["learning_curves"]["symaffect"].values()])
    assert "symaffect" in output


def test_report_markdown_and_html(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = tmp_path / "figs" / "a.png"
    png.parent.mkdir()
    fig.savefig(png)
    plt.close(fig)
    rep = Report("T").para("a **b** `c`").table(["x", "y|z"], [["1", "2"]]).image(png, "cap", base=tmp_path)
    rep.note("LEAKY numbers")
    md_path, html_path = rep.write(tmp_path / "r.md", tmp_path / "r.html")
    md = md_path.read_text()
    assert "# T" in md and "| x | y\\|z |" in md and "![cap](figs/a.png)" in md
    html = html_path.read_text()
    assert "<b>b</b>" in html and "<code>c</code>" in html and "base64," in html
    assert '<span class="leaky">LEAKY</span>' in html
    # a gallery: the first image in full and links to the others (Markdown), thumbnails (HTML)
    rep = Report("G").gallery([(png, "fold 0"), (png, "fold 1"), (tmp_path / "none.png", "fold 2")])
    md_path, html_path = rep.write(tmp_path / "g.md", tmp_path / "g.html")
    md = md_path.read_text()
    assert "![fold 0](figs/a.png)" in md and "Others: [fold 1](figs/a.png) · [fold 2](none.png)" in md
    html = html_path.read_text()
    assert html.count('<div class="thumbs">') == 1 and html.count('tabindex="0"') == 2
    assert "missing figure" in html
