"""BiLSTM baseline of Table 3: patch embedding -> 2-layer bidirectional LSTM per modality."""

from __future__ import annotations

from symaffect.models.baselines._blocks import PatchRNNBaseline
from symaffect.models.registry import register_model


@register_model(
    "bilstm",
    test_kwargs={"n_times": 64, "dim": 16, "hidden": 16, "patch_size": 16, "n_heads": 2},
)
class BiLSTMBaseline(PatchRNNBaseline):
    """Bidirectional LSTM encoder per modality, then the paper's fusion and heads.

    As :class:`~symaffect.models.baselines.lstm.LSTMBaseline`, but each LSTM layer
    runs both ways; the token is ``Linear(2 * hidden, dim)`` of the top layer's last
    forward state (after the last patch) concatenated with its last backward state
    (after the first patch).

    Parameters
    ----------
    hidden : int
        Patch-embedding width and hidden size per direction (default 64).
    n_layers : int
        Stacked bidirectional layers (default 2).
    patch_size : int
        Samples per step; must divide ``n_times`` (default 16 -> 80 steps at T = 1280).
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
    About 0.60 M parameters with the defaults and all three modalities at T = 1280.

    References
    ----------
    Paper ref. [36]: Siami-Namini, Tavakoli & Namin (2019), "The performance of LSTM
    and BiLSTM in forecasting time series", IEEE Big Data 2019, 3285-3292.
    """

    cell = "lstm"
    bidirectional = True
