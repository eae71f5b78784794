"""Losses: focal cross-entropy with label smoothing (eq. 29), task weighting (eq. 28), BCE."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from symaffect.spec import task_set as task_set_spec

WEIGHTINGS = ("learnable", "fixed", "softmax")


def focal_label_smoothing_ce(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: float = 0.1,
    ignore_index: int = -100,
) -> Tensor:
    """Focal cross-entropy with label smoothing, eq. 29, averaged over the batch.

    ``L = -sum_i (1 - p_i)^gamma [(1 - alpha) y_i + alpha / K] log p_i`` with ``p``
    the softmax of ``logits`` and ``y`` the one-hot target.

    Parameters
    ----------
    logits : Tensor, shape (B, K)
    target : Tensor of int, shape (B,)
        Class indices; ``ignore_index`` entries are left out of the mean.
    gamma : float
        Focusing exponent (0 gives plain label-smoothed cross-entropy).
    alpha : float
        Label-smoothing amount.

    Returns
    -------
    Tensor, scalar (0 if every target is ignored).
    """
    n_classes = logits.shape[-1]
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    logp = F.log_softmax(logits.float(), dim=-1)  # stable log p
    p = logp.exp()
    smooth = torch.full_like(logp, alpha / n_classes)
    smooth = smooth + (1.0 - alpha) * F.one_hot(safe, n_classes).to(logp.dtype)
    per_sample = -((1.0 - p).pow(gamma) * smooth * logp).sum(dim=-1)  # (B,)
    w = valid.to(per_sample.dtype)
    return (per_sample * w).sum() / w.sum().clamp_min(1.0)


class MultiTaskLoss(nn.Module):
    """Weighted sum of per-task losses (eq. 28) for a task set.

    Parameters
    ----------
    task_set : str
        See :data:`symaffect.spec.TASK_SETS`. ``"quadrant_multilabel"`` uses
        binary cross-entropy on 5 logits; every other task set uses eq. 29.
    weighting : {"learnable", "fixed", "softmax"}
        Multi-task weighting (ignored for one task, weight 1):

        * ``"learnable"`` (default): uncertainty weighting (Kendall et al., 2018),
          ``L = sum_t exp(-s_t) L_t + s_t`` with ``s_t`` initialised to ``ln(n_tasks)``
          so the effective weights ``exp(-s_t)`` start at 1/3. The ``+ s_t`` term stops
          the weights from collapsing to zero (a raw learnable lambda would).
        * ``"fixed"``: ``1 / n_tasks`` each (the paper's Table 7 ablation).
        * ``"softmax"``: weights ``softmax(w)``, initialised equal; they always sum to 1
          (no collapse to zero) but gradient descent moves weight to the task with the
          smallest loss.
    gamma, alpha : float
        Eq. 29's focal exponent and label smoothing.

    Shape
    -----
    logits : {task: (B, K)}, targets : {task: (B,) int} (or (B, 5) float for BCE)
    -> {"loss": scalar, task: scalar per task}
    """

    def __init__(
        self,
        *,
        task_set: str = "multitask9",
        weighting: str = "learnable",
        gamma: float = 2.0,
        alpha: float = 0.1,
    ) -> None:
        super().__init__()
        spec = task_set_spec(task_set)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting: {weighting!r} not in {WEIGHTINGS}")
        self.tasks = spec.names
        self.kind = spec.kind
        self.gamma, self.alpha = float(gamma), float(alpha)
        n = len(self.tasks)
        self.weighting = weighting if n > 1 else "fixed"
        if self.weighting == "learnable":
            self.log_vars = nn.Parameter(torch.full((n,), math.log(n)))
        elif self.weighting == "softmax":
            self.logits_w = nn.Parameter(torch.zeros(n))

    def weights(self) -> Tensor:
        """Effective task weights (n_tasks,), in the graph."""
        n = len(self.tasks)
        if self.weighting == "learnable":
            return torch.exp(-self.log_vars)
        if self.weighting == "softmax":
            return torch.softmax(self.logits_w, dim=0)
        return torch.full((n,), 1.0 / n)

    def effective_weights(self) -> dict[str, float]:
        """Effective weight per task, for logging."""
        return {t: float(w) for t, w in zip(self.tasks, self.weights().detach())}

    def task_loss(self, task: str, logits: Tensor, target: Tensor) -> Tensor:
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return focal_label_smoothing_ce(logits, target.long(), gamma=self.gamma, alpha=self.alpha)

    def forward(
        self, logits: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        parts = {t: self.task_loss(t, logits[t], targets[t]) for t in self.tasks}
        stacked = torch.stack([parts[t] for t in self.tasks])
        total = (self.weights().to(stacked.device) * stacked).sum()
        if self.weighting == "learnable":
            total = total + self.log_vars.sum()
        return {"loss": total, **parts}
