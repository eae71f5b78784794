"""Reading Lightning checkpoints as data only, and picking the one to resume from.

Every Lightning checkpoint the package reads goes through :func:`load_lightning_checkpoint`
(``torch.load`` with ``weights_only=True``: a crafted pickle raises instead of running).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch

from symaffect.errors import DataError
from symaffect.models.registry import build_model

log = logging.getLogger(__name__)


def load_lightning_checkpoint(path: Path, *, root: Path | None = None) -> dict:
    """Read a Lightning checkpoint as data only: tensors and plain containers, never code.

    Parameters
    ----------
    path : Path
    root : Path, optional
        The run folder: ``path`` must resolve inside it (a stored path cannot point the
        loader at a file elsewhere).

    Raises
    ------
    DataError
        ``path`` is outside ``root``, missing, or not a data-only checkpoint.
    """
    path = Path(path)
    if root is not None and not path.resolve().is_relative_to(Path(root).resolve()):
        raise DataError(path, f"checkpoint is outside the run folder {root}; refusing to read it")
    if not path.is_file():
        raise DataError(path, "checkpoint missing")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, IndexError,
            KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:  # undecodable bytes
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(path, f"not a data-only checkpoint ({msg})") from e
    if not isinstance(ck, dict) or "state_dict" not in ck or "epoch" not in ck:
        raise DataError(path, "not a Lightning checkpoint (no state_dict / epoch)")
    return ck


def load_lightning_weights(path: Path, name: str, kwargs: dict, *, root: Path | None = None):
    """The registered model inside a Lightning checkpoint of :class:`~symaffect.train.module.AffectModule`.

    Returns
    -------
    model : nn.Module
        In eval mode, on the CPU.
    checkpoint : dict
        The checkpoint as read (epoch, callback states, ...), so callers read it once.
    """
    ck = load_lightning_checkpoint(path, root=root)
    if not isinstance(ck["state_dict"], dict):
        raise DataError(path, "state_dict is not a mapping of tensors")
    state = {k[len("model."):]: v for k, v in ck["state_dict"].items() if str(k).startswith("model.")}
    model = build_model(name, **kwargs)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as e:  # missing / unexpected / mis-shaped weights
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(path, f"weights do not fit the run's model {name!r} ({first})") from e
    return model.eval(), ck


def best_score(ck: dict) -> float | None:
    """The monitored score stored by the ModelCheckpoint callback in ``ck``, if any."""
    for key, state in (ck.get("callbacks") or {}).items():
        if "ModelCheckpoint" in str(key) and isinstance(state, dict):
            score = state.get("best_model_score")
            if score is not None:
                return float(score)
    return None


def resume_point(ckpt_dir: Path) -> tuple[Path | None, int | None]:
    """The checkpoint to resume from (``last.ckpt``, or ``best.ckpt`` if ``last`` is
    unreadable, e.g. cut by a kill mid-write) and its epoch; (None, None) to start fresh."""
    for name in ("last.ckpt", "best.ckpt"):
        path = ckpt_dir / name
        if not path.exists():
            continue
        try:
            return path, int(load_lightning_checkpoint(path)["epoch"])
        except DataError as e:  # damaged or not data-only: never loaded, moved aside
            log.warning("cannot resume from %s (%s); ignoring it", path, e)
            path.replace(path.with_suffix(".ckpt.damaged"))
    return None, None
