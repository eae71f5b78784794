"""Provenance: versions, config and data fingerprints in metrics.json and session reports;
the tidy DataFrame of metrics.json."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy
import torch

from symaffect.data.deap import list_subject_files
from symaffect.eval.scoring import metrics_frame, train_and_score
from symaffect.provenance import data_files, data_fingerprint, file_sha256, package_versions, provenance
from symaffect.serve.report import load_report_data, write_report
from symaffect.stream.prediction import Prediction
from symaffect.stream.store import SessionStore
from symaffect.train.config import RunConfig


def _files(folder: Path, contents: dict[str, bytes]) -> list[Path]:
    out = []
    for name, blob in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(blob)
        out.append(folder / name)
    return out


def test_provenance_holds_the_real_versions():
    prov = provenance()
    assert prov["format"] == "symaffect-provenance" and prov["version"] == 1
    assert prov["packages"]["numpy"] == np.__version__
    assert prov["packages"]["torch"] == torch.__version__
    assert prov["packages"]["scipy"] == scipy.__version__
    assert prov["packages"]["pandas"] == pd.__version__
    assert prov["packages"]["symaffect"] and {"mne", "lightning", "scikit-learn"} <= set(prov["packages"])
    assert prov["python"] == platform.python_version() and prov["platform"] == platform.platform()
    assert "not-a-distribution" not in package_versions(("numpy", "not-a-distribution"))
    assert "data" not in prov and "config" not in prov
    with pytest.raises(ValueError, match="packages"):
        provenance(extra={"packages": {}})


def test_the_data_fingerprint_follows_content_not_order_time_or_place(tmp_path):
    a = _files(tmp_path / "a", {"s01.dat": b"\x00" * 1000 + b"one", "s02.dat": b"two" * 5000,
                                "sub/s03.dat": b"three"})
    fp = data_fingerprint(a)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert data_fingerprint(a[::-1]) == fp  # listed in another order
    b = tmp_path / "copy"
    shutil.copytree(tmp_path / "a", b)  # another folder, other mtimes
    assert data_fingerprint([b / "sub/s03.dat", b / "s01.dat", b / "s02.dat"]) == fp
    rows = data_files(a)
    assert [r["path"] for r in rows] == ["s01.dat", "s02.dat", "sub/s03.dat"]
    assert rows[1] == {"path": "s02.dat", "size": 15000, "sha256": hashlib.sha256(b"two" * 5000).hexdigest()}
    # one byte changed (same size): another fingerprint
    blob = bytearray((b / "s01.dat").read_bytes())
    blob[500] = 1
    (b / "s01.dat").write_bytes(bytes(blob))
    assert data_fingerprint([b / "s01.dat", b / "s02.dat", b / "sub/s03.dat"]) != fp
    # a renamed file, or one file fewer: another fingerprint too
    (b / "s01.dat").write_bytes((tmp_path / "a" / "s01.dat").read_bytes())
    assert data_fingerprint([b / "s01.dat", b / "s02.dat", b / "sub/s03.dat"]) == fp
    assert data_fingerprint(a[:2], root=tmp_path / "a") != fp
    (b / "s01.dat").rename(b / "s04.dat")
    assert data_fingerprint([b / "s04.dat", b / "s02.dat", b / "sub/s03.dat"]) != fp


def test_a_missing_file_is_named(tmp_path):
    from symaffect.errors import DataError

    with pytest.raises(DataError, match="nothing.dat"):
        file_sha256(tmp_path / "nothing.dat")


def test_config_and_data_in_provenance(tmp_path):
    files = _files(tmp_path, {"s01.dat": b"abc", "s02.dat": b"defg"})
    (tmp_path / "config.yaml").write_text("seeds: [0]\n")
    prov = provenance(config=tmp_path / "config.yaml", config_root=tmp_path, data_files=files, data_root=tmp_path)
    assert prov["config"] == {"path": "config.yaml", "sha256": hashlib.sha256(b"seeds: [0]\n").hexdigest()}
    assert prov["data"]["fingerprint"] == data_fingerprint(files) and prov["data"]["n_files"] == 2
    assert prov["data"]["n_bytes"] == 7
    assert provenance(config={"b": 1, "a": 2})["config"]["sha256"] == provenance(config={"a": 2, "b": 1})["config"]["sha256"]


# --- a real (tiny) run: metrics.json ---------------------------------------------------------


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """6 synthetic subjects x 2 trials, a tiny model, one epoch: the cheapest real run."""
    from symaffect.data.synth import generate

    root = tmp_path_factory.mktemp("prov")
    generate(root / "data", n_subjects=6, n_trials=2, seconds=13.0, seed=3)
    cfg = RunConfig().replace(**{
        "data.window.window_seconds": 2.0, "data.window.stride_seconds": 2.0,
        "model.kwargs": {"d": 8, "tau": 8, "mixer": "lowrank", "mixer_rank": 4, "n_heads": 2},
        "optim.batch_size": 16, "optim.max_epochs": 1, "optim.patience": 5,
        "protocol.test_ratio": 0.34, "protocol.val_ratio": 0.25, "trainer.accelerator": "cpu",
    })
    torch.set_num_threads(1)
    run = train_and_score(cfg, root / "data", root / "run", cache_dir=root / "cache")
    return run, root / "data"


def test_metrics_json_carries_provenance(scored):
    run, data = scored
    m = json.loads((run / "metrics.json").read_text())
    assert list(m)[:-1] == ["format", "version", "model", "task_set", "tasks", "protocol", "norm", "windows",
                            "seeds", "monitor", "n_test_windows", "runs", "summary"]  # unchanged, provenance last
    prov = m["provenance"]
    assert prov["packages"]["torch"] == torch.__version__ and prov["packages"]["numpy"] == np.__version__
    assert prov["config"] == {"path": "config.yaml", "sha256": hashlib.sha256((run / "config.yaml").read_bytes()).hexdigest()}
    files = list_subject_files(data)
    assert prov["data"]["fingerprint"] == data_fingerprint(files) and prov["data"]["n_files"] == 6
    assert [f["path"] for f in prov["data"]["files"]] == [f"s{i:02d}.dat" for i in range(1, 7)]
    assert prov["data"]["files"][0]["sha256"] == hashlib.sha256((data / "s01.dat").read_bytes()).hexdigest()
    assert prov["prepared"]["source"] == str(data) and len(prov["prepared"]["fingerprint"]) >= 16


def test_metrics_frame_is_tidy(scored):
    run, _ = scored
    m = json.loads((run / "metrics.json").read_text())
    df = metrics_frame(run)  # the run folder, the file or the dict
    pd.testing.assert_frame_equal(df, metrics_frame(run / "metrics.json"))
    assert list(df.columns) == ["model", "protocol", "fold", "seed", "task", "source", "metric", "value"]
    assert df["value"].dtype == np.float64 and df["fold"].dtype == np.int64
    assert set(df["task"]) == set(m["tasks"]) == {"valence", "arousal", "liking"}
    assert set(df["source"]) == {"model", "majority", "majority_test_oracle", "prior_random"}
    r = m["runs"][0]
    got = df[(df.fold == r["fold"]) & (df.seed == r["seed"]) & (df.task == "arousal") & (df.source == "model")
             & (df.metric == "acc")]["value"]
    assert got.tolist() == [r["tasks"]["arousal"]["model"]["acc"]]
    assert not df.duplicated(["fold", "seed", "task", "source", "metric"]).any()
    s = metrics_frame(m, summary=True)
    assert list(s.columns) == ["model", "protocol", "task", "source", "metric", "mean", "std", "n"]
    row = s[(s.task == "valence") & (s.source == "model") & (s.metric == "macro_f1")].iloc[0]
    agg = m["summary"]["valence"]["model"]["macro_f1"]
    assert (row["mean"], row["n"]) == (agg["mean"], agg["n"]) and row["model"] == m["model"]


def test_metrics_frame_refuses_another_file(tmp_path):
    from symaffect.errors import DataError

    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="x.json.*not a symaffect metrics file"):
        metrics_frame(tmp_path / "x.json")


# --- the session report --------------------------------------------------------------------


def test_the_session_report_names_the_model_sha_and_versions(tmp_path):
    digest = hashlib.sha256(b"a model").hexdigest()
    with SessionStore(tmp_path / "s.db") as store:
        sid = store.create_session("p01", "symaffect", run_dir="runs/a", meta={"model_sha256": digest})
        for k in range(30):
            probs = {t: list(np.roll(np.eye(9)[4] * 0.6 + 0.05, k % 3)) for t in ("valence", "arousal", "liking")}
            store.add_prediction(sid, Prediction.from_probabilities(2.0 + k, probs, modalities_used=("eeg",),
                                                                    n_modalities=3))
    data = load_report_data(tmp_path / "s.db", sid)
    assert data.provenance["model_sha256"] == digest and data.provenance["run_dir"] == "runs/a"
    assert data.provenance["packages"]["torch"] == torch.__version__
    (html,) = write_report(tmp_path / "s.db", sid, tmp_path / "r.html")
    text = html.read_text()
    assert f"<dt>Model SHA-256</dt><dd>{digest}</dd>" in text
    assert f"symaffect {package_versions()['symaffect']}" in text and f"numpy {np.__version__}" in text
    assert f"<dt>Python</dt><dd>{platform.python_version()} on " in text
