"""GRU baseline of Table 3: patch embedding -> 2-layer GRU per modality."""

from __future__ import annotations

from symaffect.models.baselines._blocks import PatchRNNBaseline
from symaffect.models.registry import register_model


@register_model(
    "gru",
    test_kwargs={"n_times": 64, "dim": 16, "hidden": 16, "patch_size": 16, "n_heads": 2},
)
class GRUBaseline(PatchRNNBaseline):
    """GRU encoder per modality, then the paper's fusion and heads.

    As :class:`~symaffect.models.baselines.lstm.LSTMBaseline` with GRU cells
    (:class:`torch.nn.GRU`): instance norm -> patch embedding -> ``n_layers``-layer
    GRU -> the top layer's last hidden state -> ``Linear(hidden, dim)`` -> one token.

    Parameters
    ----------
    hidden : int
        Patch-embedding width and GRU hidden size (default 64).
    n_layers : int
        Stacked GRU layers (default 2).
    patch_size : int
        Samples per step; must divide ``n_times`` (default 16 -> 80 steps at T = 1280).
    dim : int
        Token / fusion / head-input width D (default 64).
    normalize : bool
        Instance norm per channel and window first (default True, as the DTFE).
    dropout : float
        Between GRU layers and before the token projection (default 0).
    fusion, n_heads, ffn_mult, fusion_dropout, attn_residual, modality_dropout
        The shared fusion, as in :class:`~symaffect.models.symaffect.SymAffect`.
    modalities, task_set, n_times
        The signal contract of :class:`~symaffect.models.base.AffectModel`.

    Shape
    -----
    x : {modality: (B, C, T)}, mask : (B, M) bool -> {task: (B, n_outputs)}

    Notes
    -----
    About 0.24 M parameters with the defaults and all three modalities at T = 1280.

    References
    ----------
    Paper ref. [40]: Rana (2016), "Gated recurrent unit (GRU) for emotion
    classification from noisy speech", arXiv:1612.07778.
    """

    cell = "gru"
    bidirectional = False
