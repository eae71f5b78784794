"""LSTM baseline of Table 3: patch embedding -> 2-layer LSTM per modality."""

from __future__ import annotations

from symaffect.models.baselines._blocks import PatchRNNBaseline
from symaffect.models.registry import register_model


@register_model(
    "lstm",
    test_kwargs={"n_times": 64, "dim": 16, "hidden": 16, "patch_size": 16, "n_heads": 2},
)
class LSTMBaseline(PatchRNNBaseline):
    """LSTM encoder per modality, then the paper's fusion and heads.

    Per modality: instance norm (eq. 2) -> linear embedding of non-overlapping
    ``patch_size``-sample patches (``Conv1d(C, hidden, P, stride=P)``; T = 1280 and
    P = 16 give 80 steps of 0.125 s) -> ``n_layers``-layer unidirectional LSTM -> the
    top layer's last hidden state -> ``Linear(hidden, dim)`` -> one token. Tokens of
    the present modalities go through the same
    :class:`~symaffect.models.fusion.ModalityFusion` and
    :class:`~symaffect.models.heads.TaskHeads` as the paper's model; any subset of
    modalities works (see :class:`~symaffect.models.base.EncoderFusionModel`).

    Parameters
    ----------
    hidden : int
        Patch-embedding width and LSTM hidden size (default 64).
    n_layers : int
        Stacked LSTM layers (default 2).
    patch_size : int
        Samples per LSTM step; must divide ``n_times`` (default 16).
    dim : int
        Token / fusion / head-input width D (default 64).
    normalize : bool
        Instance norm per channel and window first (default True, as the DTFE).
    dropout : float
        Between LSTM layers and before the token projection (default 0).
    fusion, n_heads, ffn_mult, fusion_dropout, attn_residual, modality_dropout
        The shared fusion, as in :class:`~symaffect.models.symaffect.SymAffect`.
    modalities, task_set, n_times
        The signal contract of :class:`~symaffect.models.base.AffectModel`.

    Shape
    -----
    x : {modality: (B, C, T)}, mask : (B, M) bool -> {task: (B, n_outputs)}

    Notes
    -----
    About 0.29 M parameters with the defaults and all three modalities at T = 1280.
    The sizes are this project's choice: the paper gives none for its baselines.

    References
    ----------
    Paper ref. [39]: Gers, Schmidhuber & Cummins (2000), "Learning to forget:
    continual prediction with LSTM", Neural Computation 12, 2451-2471 (the LSTM with
    a forget gate, as in :class:`torch.nn.LSTM`).
    """

    cell = "lstm"
    bidirectional = False
