"""Interpretability figures of a trained run on its own test windows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from symaffect.errors import DataError
from symaffect.models.checkpoint import load_checkpoint
from symaffect.models.interpretability import write_explain_figures
from symaffect.run_folder import RunFolder
from symaffect.train.config import RunConfig
from symaffect.train.rundata import RunData

if TYPE_CHECKING:
    from symaffect.models.interpretability import ExplainFigures

log = logging.getLogger(__name__)


def explain_run(
    run_dir: str | Path,
    data_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    n_windows: int = 64,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> ExplainFigures:
    """Write the model's explanation figures for test windows of the run's first fold.

    The windows come from the run's own ``splits.json`` (so they are windows the model
    never trained on); up to ``n_windows`` are drawn with ``seed``.

    Parameters
    ----------
    run_dir : str or Path
        A folder made by ``symaffect train`` (``config.yaml``, ``splits.json``, ``model.pt``).
    data_dir : str or Path
        The data folder the run was trained on.
    out_dir : str or Path, optional
        Defaults to ``run_dir / "explain"``.

    Returns
    -------
    ExplainFigures
        ``paths``: the PNG files written; ``notes``: one line per learned quantity that
        has no structure (a CSI affinity within 1 % of uniform, a flat ISI gate, uniform
        temporal attention), also drawn on its figure (see
        :func:`symaffect.models.interpretability.write_explain_figures`).
    """

    run = RunFolder(Path(run_dir)).require()
    if not run.model.is_file():
        raise DataError(run.root, f"not a trained run folder ({run.model.name} missing)")
    cfg = RunConfig.from_yaml(run.config)
    model, _ = load_checkpoint(run.model)
    if not hasattr(model, "explain"):
        raise DataError(run.model, f"model {cfg.model.name!r} has no explain(); use the paper's model")
    data = RunData.from_splits(cfg, run.splits, data_dir, cache_dir=cache_dir)
    ds = data.dataset(data.folds[0], "test")
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(len(ds), size=min(n_windows, len(ds)), replace=False))
    batch = ds.get_batch(pos)
    out = Path(out_dir) if out_dir is not None else run.root / "explain"
    model.eval()
    with torch.inference_mode():
        figs = write_explain_figures(model, batch["x"], out)
    log.info("wrote %d figures to %s from %d test windows of fold 0", len(figs.paths), out, len(pos))
    for note in figs.notes:
        log.info("%s", note)
    return figs
