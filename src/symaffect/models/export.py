"""Export a model to ONNX (run by onnxruntime in the live path) via ``torch.export``."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    batch_size: int = 1,
    dynamic_batch: bool = True,
) -> Path:
    """Write ``model`` as ONNX with inputs ``<modality>...`` and ``mask``.

    The graph takes one float input per modality ``(B, C, T)`` named after the
    modality, a bool ``mask (B, M)``, and returns one logits output per task. It uses
    the ``torch.export``-based (dynamo) exporter, which handles the FFT of the ISI gate.

    Parameters
    ----------
    model : AffectModel
    path : str or Path
        Destination ``.onnx`` file (written atomically).
    batch_size : int
        Batch size of the example input.
    dynamic_batch : bool
        Make the batch axis dynamic.

    Returns
    -------
    Path
    """
    path = Path(path)
    model = model.eval()
    x = {m: torch.randn(batch_size, s.n_chans, s.n_times) for m, s in model.specs.items()}
    mask = torch.ones(batch_size, len(model.modalities), dtype=torch.bool)
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=4096)
        dynamic_shapes = {"x": {m: {0: batch} for m in x}, "mask": {0: batch}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (),
            kwargs={"x": x, "mask": mask},
            dynamo=True,
            input_names=[*x, "mask"],
            output_names=list(model.n_outputs),
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        program.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    log.info("exported %s to %s", type(model).__name__, path)
    return path
