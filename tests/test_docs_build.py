"""The documentation's gallery against the current API (no Sphinx needed).

``make docs`` builds the reference with warnings as errors; the gallery's code is not
executed there, so these tests check that every snippet still matches the code: each
Python block compiles, every imported name exists, every call of an imported function
or class binds to its signature, and every ``symaffect`` command line uses a command
and options that exist.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import shlex
from pathlib import Path

import pytest

import symaffect

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"
GALLERY = sorted((DOCS / "gallery").glob("*.rst"))
BLOCK = re.compile(r"^\.\. code-block:: (\w+)\n\n((?:(?:   .*)?\n)+)", re.M)


def _blocks(page: Path, language: str) -> list[str]:
    return [
        "\n".join(line[3:] for line in m.group(2).splitlines())
        for m in BLOCK.finditer(page.read_text(encoding="utf-8"))
        if m.group(1) == language
    ]


def _ids(pages):
    return [p.stem for p in pages]


def test_gallery_pages_exist():
    assert {p.stem for p in GALLERY} >= {"index", "train_deap", "predict_mne", "calibrate", "live_session"}
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    for page in GALLERY:
        assert f"gallery/{page.stem}" in index, f"{page.name} is not in the toctree"


def test_every_subpackage_has_a_reference_page():
    pages = {p.stem for p in (DOCS / "reference").glob("*.rst")}
    subpackages = {m.name for m in pkgutil.iter_modules(symaffect.__path__) if m.ispkg}
    assert subpackages <= pages, f"no reference page for {sorted(subpackages - pages)}"


@pytest.mark.parametrize("page", GALLERY, ids=_ids(GALLERY))
def test_python_snippets_match_the_api(page):
    blocks = _blocks(page, "python")
    if page.stem != "index":
        assert blocks, f"{page.name} has no Python example"
    bound: dict[str, object] = {}
    for code in blocks:
        tree = ast.parse(code, filename=page.name)  # a SyntaxError fails here
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{page.name}: {node.module}.{alias.name} does not exist"
                    bound[alias.asname or alias.name] = getattr(module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            obj = bound.get(node.func.id)
            if obj is None or not getattr(obj, "__module__", "").startswith("symaffect"):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue
            sig = inspect.signature(obj)
            try:
                sig.bind(*node.args, **{k.arg: k.value for k in node.keywords})
            except TypeError as e:
                pytest.fail(f"{page.name}: {ast.unparse(node)} does not match {node.func.id}{sig}: {e}")


def _command_lines(page: Path) -> list[list[str]]:
    lines = []
    for block in _blocks(page, "bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip().rstrip("&").strip()
            if line.startswith("symaffect "):
                lines.append(shlex.split(line)[1:])
    return lines


@pytest.mark.parametrize("page", GALLERY, ids=_ids(GALLERY))
def test_command_lines_match_the_cli(page):
    import typer

    from symaffect.cli import app

    root = typer.main.get_command(app)
    for args in _command_lines(page):
        cmd, rest = root, list(args)
        while hasattr(cmd, "commands"):  # a group (typer may vendor its own click)
            assert rest and rest[0] in cmd.commands, f"{page.name}: unknown command in symaffect {' '.join(args)}"
            cmd, rest = cmd.commands[rest[0]], rest[1:]
        options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for token in rest:
            if token.startswith("-"):
                assert token.split("=")[0] in options, f"{page.name}: symaffect {' '.join(args)}: no option {token}"
