"""Parameter counts and FLOPs per window, per modality (for docs/BENCHMARKS)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@torch.no_grad()
def model_profile(model: nn.Module) -> dict:
    """Parameters and forward FLOPs of one window (batch 1), per modality and in total.

    FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`: matrix
    products and convolutions (2 per multiply-add); FFTs and element-wise operations
    are not counted.

    Parameters
    ----------
    model : AffectModel
        A model with ``specs`` and, for the per-modality split, ``encoders``.

    Returns
    -------
    dict
        ``params_total``, ``flops_total`` (one window, all modalities), and
        ``per_modality = {m: {"params": int, "flops": int, "n_chans", "n_times"}}``,
        ``params_fusion_heads``.
    """
    was_training = model.training
    model.eval()
    try:
        x = {m: torch.randn(1, s.n_chans, s.n_times) for m, s in model.specs.items()}
        out: dict = {"params_total": _n_params(model), "flops_total": _flops(lambda: model(x))}
        per: dict = {}
        encoders = getattr(model, "encoders", None)
        enc_params = 0
        for m, s in model.specs.items():
            entry = {"n_chans": s.n_chans, "n_times": s.n_times}
            if encoders is not None and m in encoders:
                enc = encoders[m]
                entry["params"] = _n_params(enc)
                entry["flops"] = _flops(lambda enc=enc, m=m: enc(x[m]))
                enc_params += entry["params"]
            per[m] = entry
        out["per_modality"] = per
        if encoders is not None:
            out["params_fusion_heads"] = out["params_total"] - enc_params
        return out
    finally:
        model.train(was_training)
