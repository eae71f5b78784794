"""Export a model to ONNX (run by onnxruntime in the live path) via ``torch.export``."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from symaffect.extras import require
from symaffect.models.dtfe import FrequencyGate

log = logging.getLogger(__name__)


def _for_export(model: nn.Module, spectral: str | None) -> nn.Module:
    """An eval-mode copy of ``model`` with every frequency gate set to ``spectral``."""
    model = copy.deepcopy(model).eval()
    if spectral is not None:
        for module in model.modules():
            if isinstance(module, FrequencyGate):
                module.set_impl(spectral)
    return model


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    batch_size: int = 1,
    dynamic_batch: bool = True,
    spectral: str | None = "matrix",
) -> Path:
    """Write ``model`` as ONNX with inputs ``<modality>...`` and ``mask``.

    The graph takes one float input per modality ``(B, C, T)`` named after the
    modality, a bool ``mask (B, M)``, and returns one logits output per task. It uses
    the ``torch.export``-based (dynamo) exporter. The ISI frequency gates are exported
    in their ``"matrix"`` form (a copy of the model is switched; ``model`` is not
    changed): onnxruntime folds the constant T x T filter once at load, while its DFT
    operator is several times slower for T = 1280 (see benchmarks/bench_model.py).

    Parameters
    ----------
    model : AffectModel
    path : str or Path
        Destination ``.onnx`` file (written atomically).
    batch_size : int
        Batch size of the example input.
    dynamic_batch : bool
        Make the batch axis dynamic.
    spectral : {"matrix", "dft", "fft"} or None
        Frequency-gate form in the graph (None: keep the model's).

    Returns
    -------
    Path
    """
    require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")
    path = Path(path)
    model = _for_export(model, spectral)
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
