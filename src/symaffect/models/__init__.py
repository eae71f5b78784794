"""symaffect.models: the paper's model (DTFE + fusion), ablations, baselines, losses.

Public API: :func:`build_model`, :func:`list_models`, :func:`register_model`,
:class:`AffectModel`, :class:`EncoderFusionModel`, :class:`TaskHeads`,
:class:`ModalityFusion`, :class:`ConcatFusion`, :class:`MultiTaskLoss`,
:func:`save_checkpoint`, :func:`load_checkpoint`, :func:`model_profile`.
This package never imports :mod:`symaffect.data` (only :mod:`symaffect.spec`, where the
task sets live: :data:`symaffect.spec.TASK_SETS`).
"""

from symaffect.models.base import AffectModel, EncoderFusionModel, modality_dropout_mask
from symaffect.models.checkpoint import load_checkpoint, save_checkpoint
from symaffect.models.fusion import ConcatFusion, ModalityFusion, masked_mean
from symaffect.models.heads import TaskHeads
from symaffect.models.losses import MultiTaskLoss, focal_label_smoothing_ce
from symaffect.models.profile import model_profile
from symaffect.models.registry import UntrustedModel, build_model, list_models, register_model, trust_models

__all__ = [
    "AffectModel",
    "ConcatFusion",
    "EncoderFusionModel",
    "ModalityFusion",
    "MultiTaskLoss",
    "TaskHeads",
    "UntrustedModel",
    "build_model",
    "list_models",
    "load_checkpoint",
    "focal_label_smoothing_ce",
    "masked_mean",
    "modality_dropout_mask",
    "model_profile",
    "register_model",
    "save_checkpoint",
    "trust_models",
]
