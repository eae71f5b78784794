"""The LightningModule: any registered model + the multi-task loss + Adam.

Logged metrics (every name is ``<stage>/<what>``):

* ``train/loss``, ``val/loss``: the weighted total loss (what the optimiser minimises).
* ``train/<task>_loss``, ``val/<task>_loss``: each task's unweighted loss (eq. 29 /
  BCE); ``val/valence_loss`` is the paper's early-stopping criterion.
* ``weights/<task>``: the effective task weights of the loss (learnable weighting).
* ``train/<task>_acc``, ``val/<task>_acc``: accuracy on the training batches of the
  epoch (in training mode) and on the validation windows (subset accuracy for the
  multi-label branch).
* ``lr-Adam``: the learning rate at each epoch's end (a LearningRateMonitor).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from symaffect.models.losses import MultiTaskLoss
from symaffect.models.registry import build_model
from symaffect.train.config import OptimConfig
from symaffect.train.recipe import make_optimizer, make_scheduler

log = logging.getLogger(__name__)


class AffectModule(L.LightningModule):
    """Train a registered model with :class:`~symaffect.models.losses.MultiTaskLoss`.

    Parameters
    ----------
    model_name : str
        Registry name (:func:`symaffect.models.registry.build_model`).
    model_kwargs : dict
        Build kwargs (including ``modalities``, ``task_set`` and ``n_times``).
    weighting : {"learnable", "fixed", "softmax"}
        Task weighting of the loss.
    gamma, alpha : float
        Focal-loss exponent and label smoothing (eq. 29).
    lr, weight_decay : float
        Adam's learning rate and (L2) weight decay; the loss's own parameters (learnable
        log-variances) get no weight decay.
    schedule : {"cosine", "constant"}
    warmup : float
        The learning-rate schedule over the run's planned optimiser steps
        (:mod:`symaffect.train.recipe`); defaults are :class:`OptimConfig`'s, so a
        user's own ``L.Trainer`` gets the project's recipe. Gradient clipping is the
        Trainer's ``gradient_clip_val`` (``OptimConfig.grad_clip``).
    """

    def __init__(
        self,
        *,
        model_name: str,
        model_kwargs: Mapping[str, Any],
        weighting: str = "learnable",
        gamma: float = 2.0,
        alpha: float = 0.1,
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        schedule: str = OptimConfig.schedule,
        warmup: float = OptimConfig.warmup,
    ) -> None:
        super().__init__()

        self.save_hyperparameters()
        self.model = build_model(model_name, **dict(model_kwargs))
        self.tasks: tuple[str, ...] = tuple(self.model.tasks)
        self.task_kind: str = self.model.task_kind
        self.loss_fn = make_loss(
            task_set=self.model.task_set, weighting=weighting, gamma=gamma, alpha=alpha
        )

    def forward(self, x: Mapping[str, Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        """Logits per task, shape (B, n_outputs)."""
        return self.model(x, mask)

    # --- steps ------------------------------------------------------------------------
    def _shared_step(self, batch: Mapping[str, Any], stage: str) -> Tensor:
        logits = self.model(batch["x"])
        targets = batch["y"]
        parts = self.loss_fn(logits, targets)
        total = parts["loss"]
        per_task = {t: parts[t] for t in self.tasks}
        bs = int(next(iter(targets.values())).shape[0])
        on_step = stage == "train"
        self.log(f"{stage}/loss", total, on_step=on_step, on_epoch=True, prog_bar=True,
                 batch_size=bs, sync_dist=True)
        for t, v in per_task.items():
            self.log(f"{stage}/{t}_loss", v, on_step=False, on_epoch=True,
                     prog_bar=stage == "val" and t == self.tasks[0], batch_size=bs,
                     sync_dist=True)
        for t in self.tasks:  # training accuracy: the check that the model fits at all
            self.log(f"{stage}/{t}_acc", _accuracy(logits[t].detach(), targets[t], self.task_kind),
                     on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
        return total

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        for t, w in effective_weights(self.loss_fn).items():
            self.log(f"weights/{t}", w, on_step=False, on_epoch=True, batch_size=1, sync_dist=True)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def configure_optimizers(self):

        hp = self.hparams
        opt = make_optimizer(
            self.model.parameters(), self.loss_fn.parameters(), lr=hp.lr, weight_decay=hp.weight_decay
        )
        if hp.schedule == "constant" and hp.warmup == 0:
            return opt
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        sched = make_scheduler(opt, total_steps=total, warmup=hp.warmup, schedule=hp.schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def make_loss(*, task_set: str, weighting: str, gamma: float, alpha: float) -> torch.nn.Module:
    """The models package's :class:`MultiTaskLoss` for ``task_set``."""

    return MultiTaskLoss(task_set=task_set, weighting=weighting, gamma=gamma, alpha=alpha)


def effective_weights(loss_fn: torch.nn.Module) -> dict[str, float]:
    """The loss's current task weights as floats (``{}`` if it exposes none)."""
    w = getattr(loss_fn, "effective_weights", None)
    if w is None:
        return {}
    if callable(w):
        w = w()
    return {t: float(v) for t, v in dict(w).items()}


def _accuracy(logits: Tensor, target: Tensor, kind: str) -> Tensor:
    if kind == "multilabel":
        return ((logits > 0) == (target > 0.5)).all(dim=1).float().mean()
    return (logits.argmax(dim=1) == target).float().mean()


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, batches: Any, *, device: str | torch.device = "cpu"
) -> dict[str, Tensor]:
    """Run ``model`` in eval mode over an iterable of batches; concatenated logits per task.

    Parameters
    ----------
    model : nn.Module
        A registered model (not the LightningModule).
    batches : iterable of dict
        Batches with ``"x"`` (``{modality: Tensor(B, C, T)}``).

    Returns
    -------
    dict of str to Tensor, shape (n, n_outputs)
    """
    was_training = model.training
    model.eval()
    out: dict[str, list[Tensor]] = {}
    try:
        for batch in batches:
            x = {m: v.to(device) for m, v in batch["x"].items()}
            for t, v in model(x).items():
                out.setdefault(t, []).append(v.detach().float().cpu())
    finally:
        model.train(was_training)
    return {t: torch.cat(v) for t, v in out.items()}


@torch.no_grad()
def predict_embeddings(
    model: torch.nn.Module, batches: Any, *, device: str | torch.device = "cpu"
) -> Tensor:
    """``model.embed`` over an iterable of batches, in eval mode: ``(n, D)`` on the CPU.

    The fused embedding the task heads read (per-listener calibration works on it).
    """
    was_training = model.training
    model.eval()
    out: list[Tensor] = []
    try:
        for batch in batches:
            out.append(model.embed({m: v.to(device) for m, v in batch["x"].items()}).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, getattr(model, "dim", 0))
