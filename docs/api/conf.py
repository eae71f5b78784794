"""Sphinx configuration of the symaffect API reference (``make docs``).

The build is offline: no intersphinx, no remote assets, the bundled ``alabaster``
theme. ``make docs`` runs it with ``-W --keep-going -E``, so any warning fails.
The reference pages use ``.. automodules:: PACKAGE`` (:mod:`automodules`, beside this
file): every public module of the package is listed at build time, so a new module is
documented without editing a page.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

import symaffect  # noqa: E402  (the installed package, editable in .venv)

project = "symaffect"
author = "symaffect authors"
copyright = "symaffect authors"  # noqa: A001
release = symaffect.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "automodules",
]

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path: list[str] = []
html_theme = "alabaster"
html_theme_options = {"description": "affect from multi-modal physiology", "fixed_sidebar": True}
html_title = f"symaffect {release}"
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
language = "en"

# -- autodoc: public members of each module, documented where they are defined ----------
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # a package's __all__ re-exports names defined in its modules; ignoring __all__ makes
    # autodoc document each object once, in the module that defines it
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "mixed"
# Lightning's and torch's own docstrings (training_step, configure_optimizers, ...) use
# their projects' roles and labels; our classes document only what they say themselves
autodoc_inherit_docstrings = False
autodoc_preserve_defaults = True

# -- napoleon: numpydoc sections -------------------------------------------------------
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes" as fields: no second description of dataclass fields
napoleon_use_rtype = False
napoleon_custom_sections = [("Shape", "params_style")]  # models: "Shape" reads like Parameters

# no network at build time, ever
intersphinx_mapping: dict = {}
