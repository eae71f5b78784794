"""CNN-LSTM baseline of Table 3: conv front end, then an LSTM over its output, per modality."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from symaffect.models.baselines._blocks import (
    BaselineModel,
    ConvStack,
    InstanceNorm,
    RecurrentSummary,
    as_token,
)
from symaffect.models.registry import register_model
from symaffect.spec import ModalitySpec


class CNNLSTMEncoder(nn.Module):
    """Norm -> conv blocks -> LSTM over the conv time steps -> last state -> one token.

    Parameters
    ----------
    n_chans, n_times : int
    dim : int
        Token width D.
    channels, kernel_size, pool
        See :class:`~symaffect.models.baselines._blocks.ConvStack`.
    hidden, n_layers : int
        LSTM size.
    normalize : bool
    dropout : float

    Shape
    -----
    x : (B, C, T) -> (B, 1, D)
    """

    def __init__(
        self,
        *,
        n_chans: int,
        n_times: int,
        dim: int,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 7,
        pool: int = 4,
        hidden: int = 64,
        n_layers: int = 1,
        normalize: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm = InstanceNorm(normalize)
        self.convs = ConvStack(
            n_chans=n_chans, channels=channels, kernel_size=kernel_size, pool=pool, dropout=dropout
        )
        self.n_steps = self.convs.out_length(n_times)
        self.rnn = RecurrentSummary(
            in_features=self.convs.out_channels, hidden=hidden, n_layers=n_layers,
            cell="lstm", dropout=dropout,
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.rnn.out_features, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs(self.norm(x)).transpose(1, 2)  # (B, T', F)
        return as_token(self.out(self.dropout(self.rnn(h))))  # (B, 1, D)


@register_model(
    "cnn_lstm",
    test_kwargs={"n_times": 64, "dim": 16, "channels": (8, 16), "hidden": 16, "n_heads": 2},
)
class CNNLSTMBaseline(BaselineModel):
    """CNN-LSTM encoder per modality, then the paper's fusion and heads.

    Per modality: instance norm (eq. 2) -> conv blocks as in
    :class:`~symaffect.models.baselines.cnn1d.CNN1DBaseline` (default (32, 64),
    kernel 7, pool 4: T = 1280 -> 80 steps of 0.125 s, local features over about
    0.4 s) -> ``n_layers``-layer LSTM over the 80 steps -> its last hidden state ->
    ``Linear(hidden, dim)`` -> one token. The conv front end plays the part of the
    recurrent baselines' patch embedding, with a non-linear, overlapping view. The
    tokens go through the same :class:`~symaffect.models.fusion.ModalityFusion` and
    :class:`~symaffect.models.heads.TaskHeads` as the paper's model.

    Parameters
    ----------
    channels : sequence of int
        Conv blocks' output channels (default (32, 64)).
    kernel_size : int
        Odd conv kernel length in samples (default 7).
    pool : int
        Max-pool factor per block (default 4).
    hidden : int
        LSTM hidden size (default 64).
    n_layers : int
        LSTM layers (default 1).
    dim : int
        Token / fusion / head-input width D (default 64).
    normalize : bool
        Instance norm per channel and window first (default True, as the DTFE).
    dropout : float
        After conv blocks, between LSTM layers, before the projection (default 0).
    fusion, n_heads, ffn_mult, fusion_dropout, attn_residual, modality_dropout
        The shared fusion, as in :class:`~symaffect.models.symaffect.SymAffect`.
    modalities, task_set, n_times
        The signal contract of :class:`~symaffect.models.base.AffectModel`.

    Shape
    -----
    x : {modality: (B, C, T)}, mask : (B, M) bool -> {task: (B, n_outputs)}

    Notes
    -----
    About 0.20 M parameters with the defaults and all three modalities at T = 1280.

    References
    ----------
    Table 3 of the paper cites this baseline as [38], but the reference list's [38]
    is Han et al. (2021), "Transformer in Transformer" (NeurIPS). The CNN-LSTM entry
    of the list is [37]: Lu, Li, Li, Sun & Wang (2020), "A CNN-LSTM-based model to
    forecast stock prices", Complexity 2020, 6622927. The architecture here is this
    project's own.
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 7,
        pool: int = 4,
        hidden: int = 64,
        n_layers: int = 1,
        **kw,
    ) -> None:
        self._enc_kw = dict(
            channels=tuple(int(c) for c in channels), kernel_size=kernel_size, pool=pool,
            hidden=hidden, n_layers=n_layers,
        )
        super().__init__(**kw)

    def make_encoder(self, spec: ModalitySpec) -> nn.Module:
        return CNNLSTMEncoder(
            n_chans=spec.n_chans,
            n_times=spec.n_times,
            dim=self.dim,
            normalize=self._normalize,
            dropout=self._dropout,
            **self._enc_kw,
        )
