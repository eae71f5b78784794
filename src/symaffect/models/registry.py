"""Registry of all models: ``register_model``, ``build_model``, ``list_models``.

Every registered model gives tiny ``test_kwargs`` so that the registry-wide tests
(``tests/models/test_registry.py``) can build a small, fast version; a registered model
without them fails the tests. See :mod:`symaffect.models.base` for how to add a model.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

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


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def model_class(name: str) -> type[nn.Module]:
    """The class registered under ``name``."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ValueError(f"model: unknown {name!r}; known {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def model_defaults(name: str) -> dict[str, Any]:
    """Keyword arguments ``build_model`` applies for ``name`` before the caller's."""
    model_class(name)
    return dict(_DEFAULT_KWARGS[name])


def constructor_defaults(name: str) -> dict[str, Any]:
    """Keyword parameters of ``name``'s constructor with their defaults, following
    ``**kwargs`` up to the base classes (``inspect.Parameter.empty`` for none)."""
    params: dict[str, Any] = {}
    for klass in model_class(name).__mro__:
        init = klass.__dict__.get("__init__")
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
    return {**out, **_DEFAULT_KWARGS[name], **kwargs}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered under ``name`` with keyword hyper-parameters.

    The model gets ``model.registry_name`` and ``model.build_kwargs`` (the caller's
    kwargs) so that :func:`symaffect.models.checkpoint.save_checkpoint` can rebuild it.
    """
    cls = model_class(name)
    model = cls(**{**_DEFAULT_KWARGS[name], **kwargs})
    model.registry_name = name
    model.build_kwargs = dict(kwargs)
    return model


def test_kwargs(name: str) -> dict[str, Any] | None:
    """Tiny build kwargs for tests (``None`` if the model registered none)."""
    model_class(name)
    kw = _TEST_KWARGS[name]
    return None if kw is None else dict(kw)


test_kwargs.__test__ = False  # not a pytest test
