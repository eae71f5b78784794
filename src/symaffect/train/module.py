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
* ``test/loss``, ``test/<task>_loss``, ``test/<task>_acc``: the validation metrics on the
  test windows, from ``trainer.test`` (per dataloader, Lightning adds
  ``/dataloader_idx_<k>`` when there are several).

``trainer.predict`` returns, per batch, the dict documented in
:meth:`AffectModule.predict_step` (class probabilities and expected ratings per task);
:func:`concat_predictions` joins the batches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from symaffect.errors import DataError
from symaffect.models.losses import MultiTaskLoss
from symaffect.models.registry import build_model
from symaffect.spec import task_set as task_set_spec
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
        if "y" not in batch:
            raise DataError(None, f"{stage} batch has no labels ('y'); unlabelled windows go to trainer.predict")
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

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """The validation metrics under ``test/...`` (``test/loss``, ``test/<task>_loss``,
        ``test/<task>_acc``), averaged over the test windows."""
        return self._shared_step(batch, "test")

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Class probabilities (and expected ratings) of a batch; labels are not needed.

        Parameters
        ----------
        batch : dict
            A dataset batch ``{"x": {modality: Tensor(B, C, T)}, ...}`` (``"y"``, ids and
            an optional ``"mask"`` (B, M) may be there), or the modality mapping
            ``{modality: Tensor(B, C, T)}`` itself.

        Returns
        -------
        dict
            ``"probs"``: ``{task: Tensor(B, n_classes)}`` — softmax over classes
            (multi-class tasks) or independent sigmoids (the multi-label quadrant);
            ``"expected"``: ``{task: Tensor(B,)}`` — the expected rating in [1, 9],
            ``sum_k p_k r_k`` with ``r_k = k + 1`` for 9 classes, else the classes spread
            evenly over [1, 9] (the live predictor's rule), for the multi-class tasks that
            estimate a rating (valence, arousal, liking); empty otherwise;
            ``"subject"``, ``"trial"``, ``"start"``, ``"window"``, ``"y"``: copied from the
            batch when present, to line predictions up with windows. Tensors are float32
            (ids and labels as given) on the CPU.
        """
        x = batch["x"] if isinstance(batch.get("x"), Mapping) else batch
        logits = self.model(x, batch.get("mask") if x is not batch else None)
        probs: dict[str, Tensor] = {}
        expected: dict[str, Tensor] = {}
        for t, lg in logits.items():
            lg = lg.detach().float()
            if self.task_kind == "multilabel":
                probs[t] = torch.sigmoid(lg).cpu()
                continue
            p = torch.softmax(lg, dim=-1).cpu()
            probs[t] = p
            if self._rating_tasks.get(t):
                expected[t] = p @ _rating_values(p.shape[-1])
        out: dict[str, Any] = {"probs": probs, "expected": expected}
        if x is not batch:
            for k in ("subject", "trial", "start", "window", "y"):
                if k in batch:
                    v = batch[k]
                    out[k] = {t: w.detach().cpu() for t, w in v.items()} if isinstance(v, Mapping) else (
                        v.detach().cpu() if isinstance(v, Tensor) else v)
        return out

    @property
    def _rating_tasks(self) -> dict[str, bool]:
        spec = task_set_spec(self.model.task_set)
        return {t.name: t.rating is not None for t in spec.tasks}

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


def _rating_values(n: int) -> Tensor:
    """Rating of each of ``n`` ordinal classes: 1..9 for 9 classes, else spread over [1, 9]."""
    if n == 9:
        return torch.arange(1.0, 10.0)
    return torch.linspace(1.0, 9.0, n) if n > 1 else torch.tensor([5.0])


def concat_predictions(outputs: Any) -> dict[str, Any]:
    """Join ``trainer.predict``'s per-batch dicts (:meth:`AffectModule.predict_step`).

    ``outputs`` is a list of dicts, or a list of such lists (several dataloaders: they are
    joined in order). Returns the same layout with every tensor concatenated over batches.
    """
    flat = [o for group in outputs for o in (group if isinstance(group, list) else [group])]
    if not flat:
        return {"probs": {}, "expected": {}}
    out: dict[str, Any] = {}
    for k, v in flat[0].items():
        if isinstance(v, Mapping):
            out[k] = {t: torch.cat([o[k][t] for o in flat]) for t in v}
        elif isinstance(v, Tensor):
            out[k] = torch.cat([o[k].reshape(-1) if o[k].ndim == 0 else o[k] for o in flat])
    return out


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
