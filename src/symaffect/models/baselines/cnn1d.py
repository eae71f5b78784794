"""1D-CNN baseline of Table 3: temporal conv blocks + global average pooling per modality."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from symaffect.models.baselines._blocks import (
    BaselineModel,
    ConvStack,
    InstanceNorm,
    as_token,
)
from symaffect.models.registry import register_model
from symaffect.spec import ModalitySpec


class CNN1DEncoder(nn.Module):
    """Norm -> conv blocks -> mean over time -> linear -> one token.

    Parameters
    ----------
    n_chans, n_times : int
    dim : int
        Token width D.
    channels, kernel_size, pool
        See :class:`~symaffect.models.baselines._blocks.ConvStack`.
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
        channels: Sequence[int] = (32, 64, 64),
        kernel_size: int = 7,
        pool: int = 4,
        normalize: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm = InstanceNorm(normalize)
        self.convs = ConvStack(
            n_chans=n_chans, channels=channels, kernel_size=kernel_size, pool=pool, dropout=dropout
        )
        self.convs.out_length(n_times)  # refuses windows too short for the stack
        self.out = nn.Linear(self.convs.out_channels, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs(self.norm(x))  # (B, F, T')
        return as_token(self.out(h.mean(dim=-1)))  # (B, 1, D)


@register_model(
    "cnn1d",
    test_kwargs={"n_times": 64, "dim": 16, "channels": (8, 16), "n_heads": 2},
)
class CNN1DBaseline(BaselineModel):
    """1D-CNN encoder per modality, then the paper's fusion and heads.

    Per modality: instance norm (eq. 2) -> ``len(channels)`` blocks of
    ``Conv1d(kernel_size, 'same') -> GroupNorm -> GELU -> MaxPool1d(pool)`` (the
    defaults (32, 64, 64), kernel 7 (55 ms), pool 4 take T = 1280 to 20 steps of
    0.5 s and give a receptive field of about 1.6 s) -> mean over the remaining time
    steps -> ``Linear(channels[-1], dim)`` -> one token. GroupNorm rather than
    BatchNorm keeps every sample independent of the rest of its batch (needed for the
    per-sample modality mask). The tokens go through the same
    :class:`~symaffect.models.fusion.ModalityFusion` and
    :class:`~symaffect.models.heads.TaskHeads` as the paper's model.

    Parameters
    ----------
    channels : sequence of int
        Output channels of the conv blocks (default (32, 64, 64)).
    kernel_size : int
        Odd conv kernel length in samples (default 7).
    pool : int
        Max-pool factor per block (default 4); ``n_times`` must be at least
        ``pool ** len(channels)``.
    dim : int
        Token / fusion / head-input width D (default 64).
    normalize : bool
        Instance norm per channel and window first (default True, as the DTFE).
    dropout : float
        After every conv block (default 0).
    fusion, n_heads, ffn_mult, fusion_dropout, attn_residual, modality_dropout
        The shared fusion, as in :class:`~symaffect.models.symaffect.SymAffect`.
    modalities, task_set, n_times
        The signal contract of :class:`~symaffect.models.base.AffectModel`.

    Shape
    -----
    x : {modality: (B, C, T)}, mask : (B, M) bool -> {task: (B, n_outputs)}

    Notes
    -----
    About 0.19 M parameters with the defaults and all three modalities at T = 1280.

    References
    ----------
    Table 3 of the paper cites this baseline as [42], but the reference list's [42]
    is Nielsen (2016), "Tree boosting with XGBoost" (NTNU master's thesis). The 1D-CNN
    entry of the list is [41]: Azizjon, Jumabek & Kim (2020), "1D CNN based network
    intrusion detection with normalization on imbalanced data", ICAIIIC 2020,
    218-224. The architecture here is this project's own small 1D-CNN.
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (32, 64, 64),
        kernel_size: int = 7,
        pool: int = 4,
        **kw,
    ) -> None:
        self._cnn_kw = dict(
            channels=tuple(int(c) for c in channels), kernel_size=kernel_size, pool=pool
        )
        super().__init__(**kw)

    def make_encoder(self, spec: ModalitySpec) -> nn.Module:
        return CNN1DEncoder(
            n_chans=spec.n_chans,
            n_times=spec.n_times,
            dim=self.dim,
            normalize=self._normalize,
            dropout=self._dropout,
            **self._cnn_kw,
        )
