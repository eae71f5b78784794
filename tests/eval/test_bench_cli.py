"""`symaffect bench`: 5-fold subject CV by default, pairwise tables printed."""

from __future__ import annotations

from typer.testing import CliRunner

from symaffect.cli import app


def test_bench_defaults_to_five_folds_and_prints_pairwise_tables(tmp_path, monkeypatch):
    import symaffect.eval.suites as suites

    seen = {}
    table = {"title": "Table 3 — valence", "task_set": "multitask9", "task": "valence",
             "header": ["model", "runs", "Acc", "Δ Acc vs maj, points [95 % CI], p"],
             "rows": [["symaffect", "5", "30.0 ± 2.0 (maj 25.0)", "+5.0 [+1.0, +9.0], p = 0.012"]]}
    pair = {**table, "title": "Table 3 — valence: symaffect vs each other model",
            "header": ["comparison", "Δ Acc, points [95 % CI], p"],
            "rows": [["symaffect − mlp", "+2.0 [-1.0, +5.0], p = 0.210"]]}

    def fake_run_suite(name, data, out, **kw):
        seen.update(kw, name=name)
        return {"tables": [table], "pairwise_tables": [pair]}

    monkeypatch.setattr(suites, "run_suite", fake_run_suite)
    res = CliRunner().invoke(app, ["bench", "table3", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert seen["name"] == "table3" and seen["folds"] == 5
    assert "[+1.0, +9.0], p = 0.012" in res.output  # brackets printed as text, not markup
    assert "symaffect − mlp" in res.output and "[-1.0, +5.0]" in res.output
