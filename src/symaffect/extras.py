"""Optional parts of the package and the extra that installs each.

The core install (``pip install symaffect``) holds the data layer, the models, training
and evaluation. The live and web stack and the optional baselines come as extras::

    pip install "symaffect[live]"       # LSL streaming (mne-lsl) and vital signs (NeuroKit2)
    pip install "symaffect[dashboard]"  # the FastAPI dashboard and session reports
    pip install "symaffect[xgboost]"    # the XGBoost baseline
    pip install "symaffect[export]"     # ONNX export
    pip install "symaffect[braindecode]"  # braindecode models through examples/external_model
    pip install "symaffect[pandas]"     # DataFrames of predictions, metrics and sessions; .parquet
    pip install "symaffect[all]"        # everything

Code that needs an optional module calls :func:`require` (a one-line
:class:`MissingExtra` naming the extra); the CLI turns a missing optional module into
that same line and exit code 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from symaffect.errors import SymaffectError

EXTRAS: dict[str, tuple[str, ...]] = {
    "live": ("mne_lsl", "neurokit2"),
    "dashboard": ("fastapi", "uvicorn", "plotly", "jinja2"),
    "xgboost": ("xgboost",),
    "export": ("onnx", "onnxscript", "onnxruntime"),
    "pandas": ("pandas", "pyarrow"),
    "braindecode": ("braindecode",),
}
"""Importable top-level modules of each extra."""

EXTRA_OF: dict[str, str] = {m: extra for extra, mods in EXTRAS.items() for m in mods}
"""Extra that provides each optional module."""


class MissingExtra(SymaffectError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def missing_message(module: str, what: str | None = None) -> str:
    """The one line for a missing optional ``module`` (a top-level name of :data:`EXTRA_OF`)."""
    extra = EXTRA_OF[module]
    need = f"{what} needs" if what else "this needs"
    return f"{need} the optional dependency {module!r}: pip install 'symaffect[{extra}]'"


def require(module: str, what: str | None = None) -> ModuleType:
    """Import the optional ``module`` (e.g. ``"xgboost"``, ``"mne_lsl.lsl"``).

    Parameters
    ----------
    module : str
        Dotted name; its top-level package must be in :data:`EXTRA_OF`.
    what : str, optional
        What needs it, for the message (e.g. ``"the XGBoost baseline"``).

    Raises
    ------
    MissingExtra
        The module is not installed.
    """
    top = module.split(".")[0]
    if top not in EXTRA_OF:
        raise ValueError(f"{module!r} is not an optional dependency of symaffect")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != top:
            raise  # something else is missing: a broken install, not a missing extra
        raise MissingExtra(missing_message(top, what)) from None
