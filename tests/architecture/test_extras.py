"""A command that needs a missing optional extra says which one to install: one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from symaffect.extras import EXTRA_OF, MissingExtra, require

BLOCK = textwrap.dedent(
    """
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, Block())
    sys.argv = ["symaffect", *{argv!r}]
    from symaffect.cli import main
    main()
    """
)


def _cli_without(blocked: set[str], argv: list[str], cwd) -> subprocess.CompletedProcess:
    code = BLOCK.format(blocked=blocked, argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        ({"fastapi", "uvicorn"}, ["serve", "--db", "s.db", "--port", "8765"], "dashboard"),
        ({"mne_lsl"}, ["replay", "nothing.csv"], "live"),
        ({"jinja2"}, ["report", "1", "--db", "s.db"], "dashboard"),
    ],
)
def test_missing_extra_is_one_line_naming_it(tmp_path, blocked, argv, extra):
    (tmp_path / "nothing.csv").write_text("t,Fp1\n0,1\n")
    res = _cli_without(blocked, argv, tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'symaffect[{extra}]'" in lines[0], res.stderr


def test_missing_xgboost_names_its_extra(tmp_path):
    from symaffect.data.synth import generate

    generate(tmp_path / "data", n_subjects=4, n_trials=2, seconds=13.0, seed=0)
    res = _cli_without({"xgboost"}, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                                     "--model", "xgboost", "--preset", "quick"], tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().count("\n") == 0
    assert "the XGBoost baseline needs the optional dependency 'xgboost'" in res.stderr
    assert "symaffect[xgboost]" in res.stderr


def test_require():
    assert require("jinja2").__name__ == "jinja2"
    with pytest.raises(ValueError, match="not an optional dependency"):
        require("numpy")
    assert set(EXTRA_OF.values()) == {"live", "dashboard", "xgboost", "export", "pandas", "braindecode"}
    assert issubclass(MissingExtra, ImportError)
