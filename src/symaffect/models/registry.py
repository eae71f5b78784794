"""Registry of all models: ``register_model``, ``build_model``, ``list_models``.

Every registered model gives tiny ``test_kwargs`` so that the registry-wide tests
(``tests/models/test_registry.py``) can build a small, fast version; a registered model
without them fails the tests. See :mod:`symaffect.models.base` for how to add a model.

Models from other packages
--------------------------
A model name is looked up in this order:

1. the models registered with :func:`register_model` (this package's ``MODEL_MODULES``
   and anything already imported);
2. an installed entry point of group ``symaffect.models`` (:data:`ENTRY_POINT_GROUP`),
   declared by the other package, e.g. in its ``pyproject.toml``::

       [project.entry-points."symaffect.models"]
       bd_shallow = "mypkg.models:ShallowAffect"

3. an import path ``"package.module:Class"`` (a class, or a factory returning a model),
   imported only if it is *trusted*: it is the value of an installed entry point of
   group ``symaffect.models``, or the user allowed it, by :func:`trust_models` or by the
   environment variable ``SYMAFFECT_TRUSTED_MODELS="pkg.mod:Class,other.mod:Net"``
   (:data:`TRUST_ENV`). ``symaffect train --model pkg.mod:Class`` trusts its own
   ``--model`` (typed by the user); a name read from a YAML config or a checkpoint is
   never trusted on its own. Anything else is refused with a one-line
   :class:`UntrustedModel` error saying how to allow it.

Why: a checkpoint's ``model_name`` or a config's ``model.name`` is read from a file, and
importing a module named inside a file is code execution chosen by the file (the very
thing ``torch.load(..., weights_only=True)`` keeps out). An installed entry point (the
user installed that package) or an explicit choice of the user is not. The weights of
such a model are still read with ``weights_only=True``.

An external model follows the same interface as a registered one: it is a subclass of
:class:`symaffect.models.base.AffectModel` (in practice of
:class:`~symaffect.models.base.EncoderFusionModel`) accepting keyword-only
``modalities``, ``task_set``, ``n_times`` and its own hyper-parameters, with its output
layer named ``heads`` (a :class:`~symaffect.models.heads.TaskHeads`). A plain
``(B, C, T) -> (B, n_outputs)`` network (braindecode's, for instance) becomes one by
serving as the per-modality encoder of an ``EncoderFusionModel`` with
``n_outputs = dim`` (one token per modality); ``examples/external_model`` shows it in
thirty lines. A class may carry a ``test_kwargs`` dict attribute for tiny test builds.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import re
from collections.abc import Callable
from typing import Any

from torch import nn

from symaffect.errors import ConfigError, DataError
from symaffect.models.base import AffectModel

log = logging.getLogger(__name__)

MODEL_MODULES: tuple[str, ...] = (
    "symaffect.models.symaffect",
    "symaffect.models.ablations",
    "symaffect.models.baselines",
)
"""Modules whose import registers models (a module not yet written is skipped)."""

_REGISTRY: dict[str, type[nn.Module]] = {}
_TEST_KWARGS: dict[str, dict[str, Any] | None] = {}
_DEFAULT_KWARGS: dict[str, dict[str, Any]] = {}
_loaded = False

ENTRY_POINT_GROUP = "symaffect.models"
"""Entry-point group through which installed packages provide models."""
TRUST_ENV = "SYMAFFECT_TRUSTED_MODELS"
"""Environment variable: comma-separated import paths ``pkg.mod:Class`` the user trusts."""
_TRUSTED: set[str] = set()
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class UntrustedModel(DataError):
    """An import path ``pkg.mod:Class`` that no entry point provides and the user did not trust."""

    def __init__(self, path: str):
        super().__init__(
            None,
            f"model {path!r} is an import path that is neither an installed {ENTRY_POINT_GROUP!r} entry "
            f"point nor trusted; importing it would run code named by a file. Allow it with "
            f"{TRUST_ENV}={path} (comma-separated) or symaffect.models.registry.trust_models({path!r})",
        )
        self.path = path


def register_model(
    name: str,
    *,
    test_kwargs: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a model under ``name``.

    Parameters
    ----------
    name : str
        Registry name (``build_model(name)``); unique.
    test_kwargs : dict, optional
        Keyword arguments for a tiny test build (e.g. ``{"n_times": 256, "d": 16}``).
        Required for the registry tests to pass.
    defaults : dict, optional
        Keyword arguments that ``build_model`` applies before the caller's (lets one
        class be registered under several names, e.g. ablations).
    """

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model {name!r} is already registered by {_REGISTRY[name]}")
        _REGISTRY[name] = cls
        _TEST_KWARGS[name] = None if test_kwargs is None else dict(test_kwargs)
        _DEFAULT_KWARGS[name] = dict(defaults or {})
        return cls

    return deco


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for mod in MODEL_MODULES:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)
    _loaded = True


def is_import_path(name: str) -> bool:
    """Whether ``name`` is written ``package.module:Class`` (an external model's import path)."""
    return bool(_IMPORT_PATH.match(name))


def trust_models(*paths: str) -> None:
    """Allow importing these ``package.module:Class`` paths as models in this process.

    The explicit choice of the user (as :data:`TRUST_ENV`); see the module docstring.
    """
    for p in paths:
        if not isinstance(p, str) or not is_import_path(p.strip()):
            raise ConfigError(f"model: {p!r} is not an import path 'package.module:Class'")
        _TRUSTED.add(p.strip())


def trusted_models() -> frozenset[str]:
    """Import paths trusted by :func:`trust_models` and by :data:`TRUST_ENV`."""
    env = {p.strip() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()}
    return frozenset(_TRUSTED | env)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed entry points of :data:`ENTRY_POINT_GROUP` by name (the first of a name wins)."""
    out: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in out and out[ep.name].value != ep.value:
            log.warning("model entry point %r: %s and %s; using the first", ep.name, out[ep.name].value, ep.value)
        out.setdefault(ep.name, ep)
    return out


def list_models() -> list[str]:
    """Names ``build_model`` accepts, sorted: registered models, then the installed
    ``symaffect.models`` entry points, then the trusted import paths."""
    _ensure_loaded()
    external = {*_entry_points(), *trusted_models()} - set(_REGISTRY)
    return sorted(_REGISTRY) + sorted(external)


def _load_external(name: str) -> Callable[..., nn.Module]:
    """The class or factory of an entry-point name or a trusted import path (imports it)."""
    eps = _entry_points()
    if name in eps:
        where, target = f"entry point {name!r} ({eps[name].value})", eps[name]
    elif is_import_path(name):
        if name not in trusted_models() and name not in {ep.value.replace(" ", "") for ep in eps.values()}:
            raise UntrustedModel(name)
        where, target = f"import path {name!r}", importlib.metadata.EntryPoint(name, name, ENTRY_POINT_GROUP)
    else:
        known = list_models()
        raise ValueError(
            f"model: unknown {name!r}; known {known}, or a {ENTRY_POINT_GROUP!r} entry point, "
            "or an import path 'package.module:Class'"
        )
    try:
        obj = target.load()
    except Exception as e:  # noqa: BLE001 - ImportError, AttributeError, or an error raised by the module
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise DataError(None, f"model {where}: cannot import it ({type(e).__name__}: {reason})") from e
    if isinstance(obj, type) and not issubclass(obj, AffectModel):
        raise DataError(None, f"model {where}: {obj.__qualname__} is not a symaffect.models.base.AffectModel")
    if not callable(obj):
        raise DataError(None, f"model {where}: {type(obj).__name__} is neither a model class nor a factory")
    return obj


def model_class(name: str) -> Callable[..., nn.Module]:
    """The class registered under ``name`` (or the class/factory an entry point or a
    trusted import path names; see the module docstring)."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    return _load_external(name)


def model_defaults(name: str) -> dict[str, Any]:
    """Keyword arguments ``build_model`` applies for ``name`` before the caller's."""
    model_class(name)
    return dict(_DEFAULT_KWARGS.get(name, {}))


def constructor_defaults(name: str) -> dict[str, Any]:
    """Keyword parameters of ``name``'s constructor with their defaults, following
    ``**kwargs`` up to the base classes (``inspect.Parameter.empty`` for none)."""
    params: dict[str, Any] = {}
    obj = model_class(name)
    for klass in obj.__mro__ if isinstance(obj, type) else (obj,):
        init = klass.__dict__.get("__init__") if isinstance(obj, type) else klass
        if init is None:
            continue
        sig = inspect.signature(init).parameters
        for k, prm in sig.items():
            if prm.kind in (prm.KEYWORD_ONLY, prm.POSITIONAL_OR_KEYWORD) and k != "self":
                params.setdefault(k, prm.default)
        if not any(prm.kind is prm.VAR_KEYWORD for prm in sig.values()):
            break
    return params


def resolved_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with every plain-valued constructor default of ``name``.

    Stored in a checkpoint, these rebuild the same model even after a default changes.
    """
    plain = (str, int, float, bool, type(None))

    def is_plain(v: Any) -> bool:
        return isinstance(v, plain) or (isinstance(v, (tuple, list)) and all(isinstance(x, plain) for x in v))

    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in constructor_defaults(name).items()
           if v is not inspect.Parameter.empty and is_plain(v)}
    return {**out, **_DEFAULT_KWARGS.get(name, {}), **kwargs}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered under ``name`` with keyword hyper-parameters.

    ``name`` may also be an installed ``symaffect.models`` entry point or a trusted
    import path ``"package.module:Class"`` (see the module docstring).

    The model gets ``model.registry_name`` and ``model.build_kwargs`` (the caller's
    kwargs) so that :func:`symaffect.models.checkpoint.save_checkpoint` can rebuild it.

    Raises
    ------
    UntrustedModel
        ``name`` is an import path neither provided by an entry point nor trusted.
    ValueError
        ``name`` is unknown, or cannot be imported, or is not an ``AffectModel``.
    """
    cls = model_class(name)
    model = cls(**{**_DEFAULT_KWARGS.get(name, {}), **kwargs})
    if name not in _REGISTRY and not isinstance(model, AffectModel):  # an external factory
        raise DataError(None, f"model {name!r}: built a {type(model).__name__}, not a "
                              "symaffect.models.base.AffectModel")
    model.registry_name = name
    model.build_kwargs = dict(kwargs)
    return model


def test_kwargs(name: str) -> dict[str, Any] | None:
    """Tiny build kwargs for tests (``None`` if the model registered none)."""
    obj = model_class(name)
    kw = _TEST_KWARGS[name] if name in _REGISTRY else getattr(obj, "test_kwargs", None)
    return None if kw is None else dict(kw)


test_kwargs.__test__ = False  # not a pytest test
