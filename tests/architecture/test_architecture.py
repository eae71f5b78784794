"""The dependency rules of docs/architecture.md, checked on the package's import graph
(built from the source) and on what an import really loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .import_graph import SRC, cycles, edges, modules

EDGES = edges()

LAYER_RULES: dict[str, tuple[str, ...]] = {
    # package -> packages it must never import
    "symaffect.spec": ("symaffect.data", "symaffect.models", "symaffect.train", "symaffect.eval",
                       "symaffect.stream", "symaffect.serve", "symaffect.cli"),
    "symaffect.run_folder": ("symaffect.data", "symaffect.models", "symaffect.train", "symaffect.eval",
                             "symaffect.stream", "symaffect.serve", "symaffect.cli"),
    "symaffect.provenance": ("symaffect.data", "symaffect.models", "symaffect.train", "symaffect.eval",
                             "symaffect.stream", "symaffect.serve", "symaffect.cli"),
    "symaffect.models": ("symaffect.data", "symaffect.train", "symaffect.eval", "symaffect.stream",
                         "symaffect.serve", "symaffect.cli"),
    "symaffect.data": ("symaffect.models", "symaffect.train", "symaffect.eval", "symaffect.stream",
                       "symaffect.serve", "symaffect.cli"),
    "symaffect.train": ("symaffect.eval", "symaffect.stream", "symaffect.serve", "symaffect.cli"),
    "symaffect.eval": ("symaffect.stream", "symaffect.serve", "symaffect.cli"),
    "symaffect.stream": ("symaffect.train", "symaffect.eval", "symaffect.serve", "symaffect.cli"),
    "symaffect.serve": ("symaffect.train", "symaffect.eval", "symaffect.cli"),
}
"""models never imports data readers or train; data never imports models; training
never scores; the live path (stream, serve) never needs the trainer or the evaluation."""

DEFERRED_ALLOWED = ("symaffect.cli",)
"""Internal imports inside functions: only the CLI, for its start-up time."""

OPTIONAL = ("fastapi", "uvicorn", "plotly", "jinja2", "mne_lsl", "pylsl", "xgboost", "onnx",
            "onnxruntime", "onnxscript", "neurokit2")


def _within(name: str, pkg: str) -> bool:
    return name == pkg or name.startswith(pkg + ".")


def test_the_graph_is_built_from_every_module():
    mods = modules()
    assert len(mods) > 60 and "symaffect.eval.scoring" in mods and "symaffect.spec" in mods
    assert len(EDGES) > 200
    assert all(SRC.joinpath(*m.split(".")).with_suffix(".py").exists()
               or SRC.joinpath(*m.split("."), "__init__.py").exists() for m in mods)


def test_no_import_cycle_between_modules():
    assert cycles(EDGES) == []


def test_no_import_cycle_between_packages():
    assert cycles(EDGES, level="package") == []


def test_a_cycle_is_found_when_there_is_one():
    """The cycle finder itself: a two-module loop and a three-package loop."""
    from .import_graph import Edge

    loop = [Edge("a.x", "a.y", False, 1), Edge("a.y", "a.x", False, 1), Edge("a.y", "a.z", False, 1)]
    assert cycles(loop) == [["a.x", "a.y"]]
    pkgs = [Edge("p.a.m", "p.b.m", False, 1), Edge("p.b.n", "p.c.m", False, 1), Edge("p.c.k", "p.a.q", False, 1)]
    assert cycles(pkgs, level="package") == [["p.a", "p.b", "p.c"]]


@pytest.mark.parametrize("pkg", sorted(LAYER_RULES))
def test_dependency_rules(pkg):
    banned = LAYER_RULES[pkg]
    bad = [f"{e.src}:{e.lineno} imports {e.dst}" for e in EDGES
           if _within(e.src, pkg) and any(_within(e.dst, b) for b in banned)]
    assert bad == []


def test_internal_imports_sit_at_module_top():
    bad = [f"{e.src}:{e.lineno} imports {e.dst} inside a function" for e in EDGES
           if e.deferred and not any(_within(e.src, a) for a in DEFERRED_ALLOWED)]
    assert bad == []


def _loaded(code: str) -> list[str]:
    res = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    import json

    return json.loads(res.stdout.strip().splitlines()[-1])


def test_the_core_loads_no_optional_dependency():
    """Data, models, training and evaluation import nothing of the live / web stack,
    XGBoost or ONNX (the core install has none of them)."""
    mods = _loaded("import symaffect.data, symaffect.models, symaffect.train.run, symaffect.eval.scoring, "
                   "symaffect.eval.suites, symaffect.eval.demo, symaffect.eval.audit, symaffect.eval.probes, "
                   "symaffect.models.export")
    assert [m for m in mods if m.split(".")[0] in OPTIONAL] == []


def test_the_live_path_never_loads_the_trainer():
    mods = _loaded("import symaffect.stream.pipeline, symaffect.stream.store, symaffect.stream.prediction")
    assert [m for m in mods if _within(m, "symaffect.train") or _within(m, "symaffect.eval")
            or m.split(".")[0] == "lightning"] == []
