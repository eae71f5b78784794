"""`symaffect demo` end to end on a tiny setting, and the report builder."""

from __future__ import annotations

import json
import warnings

import pytest
from typer.testing import CliRunner

from symaffect.cli import app
from symaffect.eval.report import Report


def _demo(tmp_path, *extra: str):
    out = tmp_path / "demo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(app, ["demo", "--out", str(out), "--subjects", "4", "--trials", "4",
                                       "--seconds", "13", "--tiny", *extra])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_demo_cli_tiny_writes_report(tmp_path):
    out, output = _demo(tmp_path, "--models", "xgboost,mlp")
    assert "majority baseline" in output and "subject-holdout" in output
    assert str(out / "report.html") in output.replace("\n", "")
    obj = json.loads((out / "demo.json").read_text())
    assert obj["models"] == ["xgboost", "mlp"] and obj["protocol"]["name"] == "subject-holdout"
    assert set(obj["test_subjects"]).isdisjoint(obj["train_subjects"])
    assert (out / "data" / "s04.dat").is_file()
    md = (out / "report.md").read_text()
    for text in ("synthetic", "majority baseline", "subject-holdout", "92-98 %", "not expected"):
        assert text in md
    assert "![" in md and (out / "figures" / "demo_bars.png").is_file()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    # a second run reuses the data and the finished runs
    _, again = _demo(tmp_path, "--models", "xgboost,mlp")
    assert "already there, reused" in again and again.count("finished earlier, reused") == 2


@pytest.mark.slow
def test_demo_default_models_tiny(tmp_path):
    out, output = _demo(tmp_path)
    obj = json.loads((out / "demo.json").read_text())
    assert obj["models"] == ["symaffect", "xgboost", "cnn1d"]
    assert {r["label"] for r in obj["rows"]} == {"symaffect", "xgboost", "cnn1d"}
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
