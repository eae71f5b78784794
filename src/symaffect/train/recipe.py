"""The optimisation recipe shared by Lightning training and the capability probes.

Adam (the paper's optimiser) with the loss's own parameters (learnable task weights)
kept out of weight decay, a linear learning-rate warm-up, then a cosine decay to zero
over the run's optimiser steps, and gradient-norm clipping (applied by the caller:
Lightning's ``gradient_clip_val`` or :func:`torch.nn.utils.clip_grad_norm_`).

The paper trains with a constant learning rate and no clipping; ``schedule="constant"``,
``warmup=0`` and ``grad_clip=None`` give exactly that. Why the default departs from it,
with measurements, is in ``docs/paper_map.md`` ("Departures that make the model learn",
point 3).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

SCHEDULES: tuple[str, ...] = ("cosine", "constant")


def lr_factor(step: int, *, total_steps: int, warmup: float, schedule: str) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    Parameters
    ----------
    step : int
    total_steps : int
        Planned optimiser steps of the whole run (>= 1).
    warmup : float
        Fraction of ``total_steps`` spent rising linearly from ``1 / n_warmup`` to 1.
    schedule : {"cosine", "constant"}
        After warm-up: half a cosine from 1 to 0 at ``total_steps``, or flat.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: {schedule!r} not in {SCHEDULES}")
    total = max(1, int(total_steps))
    n_warm = int(round(warmup * total))
    if n_warm > 0 and step < n_warm:
        return (step + 1) / n_warm
    if schedule == "constant":
        return 1.0
    span = max(1, total - n_warm)
    progress = min(1.0, (step - n_warm) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(
    model_params: Iterable[torch.nn.Parameter],
    loss_params: Iterable[torch.nn.Parameter] = (),
    *,
    lr: float,
    weight_decay: float,
) -> torch.optim.Adam:
    """Adam with weight decay on the model only (the loss's log-variances get none)."""
    groups = [{"params": [p for p in model_params if p.requires_grad], "weight_decay": weight_decay}]
    loss_params = [p for p in loss_params if p.requires_grad]
    if loss_params:
        groups.append({"params": loss_params, "weight_decay": 0.0})
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    # fused: one kernel for all parameters (about 14x faster step on CPU for 5 M params)
    return torch.optim.Adam(groups, lr=lr, fused=fused or None)


def make_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup: float, schedule: str
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step :class:`~torch.optim.lr_scheduler.LambdaLR` of :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, total_steps=total_steps, warmup=warmup, schedule=schedule),
    )


__all__ = ["SCHEDULES", "lr_factor", "make_optimizer", "make_scheduler"]
