"""Checkpoint I/O: weights + registry name + build kwargs, loadable without the trainer.

A checkpoint is data only: it is read with ``torch.load(..., weights_only=True)``, and
its ``model_name`` is resolved by :func:`symaffect.models.registry.build_model`, which
imports a model from another package only when an installed ``symaffect.models`` entry
point provides it or the user trusted its import path (``SYMAFFECT_TRUSTED_MODELS``,
:func:`~symaffect.models.registry.trust_models`): importing a module named inside a file
would be code execution chosen by the file.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from symaffect import __version__
from symaffect._io import atomic_write
from symaffect.errors import DataError
from symaffect.models.registry import UntrustedModel, build_model, resolved_kwargs

log = logging.getLogger(__name__)

FORMAT = "symaffect-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    name: str,
    kwargs: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights and how to rebuild it, atomically.

    Parameters
    ----------
    path : str or Path
        Destination file (conventionally ``*.pt``).
    model : nn.Module
        A model built by ``build_model(name, **kwargs)``.
    name : str
        Registry name, ``symaffect.models`` entry-point name, or import path
        ``"package.module:Class"`` (loading it back needs the same entry point or trust).
    kwargs : dict
        The build kwargs (plain Python values: str, int, float, bool, tuple, list, dict).
    extra : dict, optional
        Anything else to store (plain values or tensors), e.g. the training config or
        the normalisation statistics.

    Returns
    -------
    Path
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": name,
        # every default written out: a later change of a default cannot change this model
        "kwargs": resolved_kwargs(name, dict(kwargs)),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "symaffect_version": str(__version__),
        "torch_version": str(torch.__version__),
        "extra": dict(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    try:  # refuse now what load_checkpoint's safe unpickler would refuse later
        torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            "kwargs/extra: only plain values (str, int, float, bool, None, tuple, list, "
            f"dict, tensors) can be stored ({type(e).__name__})"
        ) from e
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
    log.info("saved checkpoint %s (%s)", path, name)
    return path


def load_checkpoint(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored by :func:`save_checkpoint` (in eval mode).

    Returns
    -------
    model : nn.Module
    info : dict
        ``model_name``, ``kwargs``, ``symaffect_version``, ``torch_version``, ``extra``.

    Raises
    ------
    DataError
        The file is missing, not a symaffect checkpoint, or does not fit its model, or
        it names an external model that is neither an installed entry point nor
        trusted (one line saying how to allow it).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure (or MemoryError) is a bad file
        raise DataError(path, f"not a readable checkpoint ({type(e).__name__})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(path, "not a symaffect checkpoint")
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise DataError(path, f"format_version is not an integer ({type(version).__name__})")
    if version > FORMAT_VERSION:
        raise DataError(path, f"checkpoint format {version} is newer than this code")
    name = _field(path, payload, "model_name", str)
    kwargs = _field(path, payload, "kwargs", dict)
    state = _field(path, payload, "state_dict", dict)
    extra = _field(path, payload, "extra", dict, default={})
    if not all(isinstance(k, str) for k in kwargs):
        raise DataError(path, "kwargs: keys must be strings")
    try:
        model = build_model(name, **kwargs)
    except UntrustedModel as e:
        raise DataError(path, e.problem) from None
    except Exception as e:  # noqa: BLE001 - unknown kwargs (TypeError), bad values, MemoryError: a bad file
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise DataError(path, f"cannot rebuild model {name!r} from its kwargs: {reason}") from e
    try:
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - shape/key mismatch (RuntimeError), non-tensor values (TypeError, ...)
        raise DataError(path, f"weights do not fit model {name!r} ({type(e).__name__})") from e
    model.eval()
    info = {
        "model_name": name,
        "kwargs": kwargs,
        "symaffect_version": str(payload.get("symaffect_version", "unknown")),
        "torch_version": str(payload.get("torch_version", "unknown")),
        "extra": extra,
    }
    return model, info


_MISSING = object()


def _field(path: Path, payload: dict, key: str, kind: type, default: Any = _MISSING) -> Any:
    """``payload[key]`` if it is a ``kind``; a :class:`DataError` naming the file and key otherwise."""
    value = payload.get(key, _MISSING)
    if value is _MISSING:
        if default is not _MISSING:
            return default
        raise DataError(path, f"not a complete symaffect checkpoint (no {key!r})")
    if not isinstance(value, kind):
        raise DataError(path, f"{key!r} must be a {kind.__name__}, not {type(value).__name__}")
    return value
