"""Building blocks shared by the Table 3 baselines (private to this package).

Every baseline is a :class:`BaselineModel`: one encoder per modality mapping
``(B, C, T)`` to one token ``(B, 1, D)``, then the paper's model's own
:class:`~symaffect.models.fusion.ModalityFusion` (eq. 24-27) and
:class:`~symaffect.models.heads.TaskHeads`. Only the encoder differs between a baseline
and :class:`~symaffect.models.symaffect.SymAffect`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from symaffect.models.base import EncoderFusionModel
from symaffect.models.dtfe import instance_norm
from symaffect.models.fusion import MaskedSelfAttention


class BaselineModel(EncoderFusionModel):
    """Common part of the baselines: per-modality encoder -> fusion -> heads.

    Subclasses store their encoder hyper-parameters as plain attributes, then call
    ``super().__init__(**kw)`` (which calls :meth:`make_encoder` per modality).

    Parameters
    ----------
    dim : int
        Token width D: the encoder's output, the fusion width and the heads' input.
    normalize : bool
        Standardise each channel of each window over time before the encoder (the
        DTFE's eq. 2, :func:`symaffect.models.dtfe.instance_norm`), so that a baseline
        and the paper's model see the same input scale.
    dropout : float
        Dropout inside the encoder (0 by default, like the paper's model).
    fusion : {"attention", "concat"}
        ``"attention"`` (default) is the paper's eq. 24-27, the same block as in the
        paper's model.
    n_heads, ffn_mult, fusion_dropout, attn_residual, modality_dropout
        As in :class:`~symaffect.models.base.EncoderFusionModel`.
    modalities, task_set, n_times
        As in :class:`~symaffect.models.base.AffectModel`.
    """

    def __init__(
        self,
        *,
        dim: int = 64,
        normalize: bool = True,
        dropout: float = 0.0,
        **kw,
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: {dropout} not in [0, 1)")
        self._normalize = bool(normalize)
        self._dropout = float(dropout)
        super().__init__(dim=dim, **kw)


class InstanceNorm(nn.Module):
    """Per-sample, per-channel standardisation over time, or the identity.

    Shape
    -----
    x : (B, C, T) -> (B, C, T)
    """

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled

    def forward(self, x: Tensor) -> Tensor:
        return instance_norm(x) if self.enabled else x


def check_divides(n_times: int, patch_size: int, what: str = "patch_size") -> int:
    """Number of patches ``n_times // patch_size``; refuses a remainder or zero patches."""
    if patch_size < 1 or n_times % patch_size or n_times // patch_size < 1:
        raise ValueError(
            f"{what}: {patch_size} must divide n_times {n_times} into at least one patch"
        )
    return n_times // patch_size


class PatchEmbedding(nn.Module):
    """Linear embedding of non-overlapping time patches (a strided convolution).

    Patch ``l`` of all channels, ``x[:, :, l*P:(l+1)*P]`` (C x P values), is mapped to
    a D-vector by one linear map: ``Conv1d(C, D, kernel_size=P, stride=P)``.

    Parameters
    ----------
    n_chans : int
    dim : int
        Output width D.
    patch_size : int
        P samples per patch (16 samples = 0.125 s at 128 Hz).

    Shape
    -----
    x : (B, C, T) -> (B, T // P, D)
    """

    def __init__(self, *, n_chans: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv1d(n_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).transpose(1, 2)  # (B, L, D)


def _n_groups(n_channels: int, max_groups: int = 8) -> int:
    return math.gcd(n_channels, max_groups)


class ConvStack(nn.Module):
    """Blocks of ``Conv1d('same') -> GroupNorm -> GELU -> MaxPool1d`` over time.

    GroupNorm (per sample) instead of BatchNorm: a sample's output must not depend on
    the other samples of the batch (a masked modality's values never leak into another
    sample's output, and train / eval behave alike).

    Parameters
    ----------
    n_chans : int
        Input channels C.
    channels : sequence of int
        Output channels of each block.
    kernel_size : int
        Odd kernel length (7 samples = 55 ms at 128 Hz).
    pool : int
        Max-pool factor after each block (time shrinks by ``pool ** len(channels)``).
    dropout : float

    Shape
    -----
    x : (B, C, T) -> (B, channels[-1], T // pool ** len(channels))
    """

    def __init__(
        self,
        *,
        n_chans: int,
        channels: Sequence[int],
        kernel_size: int = 7,
        pool: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels: at least one conv block is required")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: {kernel_size} must be odd")
        if pool < 1:
            raise ValueError(f"pool: {pool} must be >= 1")
        layers: list[nn.Module] = []
        c_in = n_chans
        for c_out in channels:
            layers += [
                nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
                nn.GroupNorm(_n_groups(c_out), c_out),
                nn.GELU(),
                nn.MaxPool1d(pool) if pool > 1 else nn.Identity(),
                nn.Dropout(dropout),
            ]
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.out_channels = int(channels[-1])
        self.n_blocks = len(channels)
        self.pool = int(pool)
        self.reduction = int(pool ** len(channels))

    def out_length(self, n_times: int) -> int:
        """Time steps left after the stack (refuses windows too short for it)."""
        n = n_times // self.reduction
        if n < 1:
            raise ValueError(
                f"n_times: {n_times} is too short for {self.n_blocks} conv blocks "
                f"with pool {self.pool} (needs >= {self.reduction})"
            )
        return n

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


RNN_CELLS = ("lstm", "gru")


class RecurrentSummary(nn.Module):
    """A (Bi)LSTM / GRU over a sequence; its top layer's final state(s) as one vector.

    Parameters
    ----------
    in_features : int
    hidden : int
        Hidden size H per direction.
    n_layers : int
    cell : {"lstm", "gru"}
    bidirectional : bool
        Concatenate the last forward and the last backward state (2H).
    dropout : float
        Between stacked layers (``nn.LSTM``'s ``dropout``).

    Shape
    -----
    x : (B, L, F) -> (B, H * (2 if bidirectional else 1))
    """

    def __init__(
        self,
        *,
        in_features: int,
        hidden: int,
        n_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in RNN_CELLS:
            raise ValueError(f"cell: {cell!r} not in {RNN_CELLS}")
        if n_layers < 1:
            raise ValueError(f"n_layers: {n_layers} must be >= 1")
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            in_features,
            hidden,
            num_layers=n_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if n_layers > 1 else 0.0,
        )
        self.n_dirs = 2 if bidirectional else 1
        self.out_features = hidden * self.n_dirs

    def forward(self, x: Tensor) -> Tensor:
        _, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
        top = h_n[-self.n_dirs :]  # (dirs, B, H): the top layer's last states
        return top.transpose(0, 1).reshape(x.shape[0], self.out_features)


def sinusoidal_positions(n_positions: int, dim: int) -> Tensor:
    """Fixed sine / cosine position codes (Vaswani et al., 2017).

    Returns
    -------
    Tensor, shape (n_positions, dim)
        ``[l, 2i] = sin(l / 10000^(2i/dim))``, ``[l, 2i+1] = cos(...)``.
    """
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(n_positions, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class TransformerBlock(nn.Module):
    """Pre-norm encoder layer: ``x + MHA(LN(x))``, then ``x + FFN(LN(x))``.

    The attention is :class:`~symaffect.models.fusion.MaskedSelfAttention` (written out
    so that it exports to ONNX and ``torch.export`` the same way in every mode) with
    every position present.

    Parameters
    ----------
    dim : int
        Model width (divisible by ``n_heads``).
    n_heads : int
    ffn_mult : int
        FFN hidden width is ``ffn_mult * dim``.
    dropout : float

    Shape
    -----
    x : (B, L, D) -> (B, L, D)
    """

    def __init__(
        self, *, dim: int, n_heads: int = 4, ffn_mult: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MaskedSelfAttention(dim=dim, n_heads=n_heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_mult * dim, dim),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        every = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)  # (B, L)
        att, _ = self.attn(self.norm1(x), every)
        x = x + self.dropout(att)
        return x + self.dropout(self.ffn(self.norm2(x)))


def patch_statistics(x: Tensor, patch_size: int, eps: float = 1e-6) -> Tensor:
    """Mean and log standard deviation of every channel in every time patch.

    Parameters
    ----------
    x : Tensor, shape (B, C, T)
    patch_size : int
        P, dividing T.
    eps : float
        Added to the variance before the log.

    Returns
    -------
    Tensor, shape (B, C, T // P, 2)
        ``[..., 0]`` the patch mean, ``[..., 1]`` ``0.5 * log(var + eps)``.
    """
    B, C, T = x.shape
    p = x.reshape(B, C, T // patch_size, patch_size)
    mean = p.mean(dim=-1)
    var = (p - mean[..., None]).square().mean(dim=-1)
    return torch.stack([mean, 0.5 * torch.log(var + eps)], dim=-1)


def gelu_linear(in_features: int, out_features: int, dropout: float = 0.0) -> nn.Sequential:
    """``Linear -> GELU -> Dropout`` (a hidden layer of an MLP)."""
    return nn.Sequential(nn.Linear(in_features, out_features), nn.GELU(), nn.Dropout(dropout))


def as_token(z: Tensor) -> Tensor:
    """``(B, D) -> (B, 1, D)``: one token per modality."""
    return z.unsqueeze(1)


class PatchRNNEncoder(nn.Module):
    """Recurrent encoder on patches: norm -> patch embedding -> (Bi)LSTM / GRU -> token.

    A recurrence over all 1280 samples of a 10-s window is slow on a CPU and hard to
    train (long back-propagation through time), so time is first cut into
    non-overlapping patches of ``patch_size`` samples, each linearly embedded
    (:class:`PatchEmbedding`; 16 samples -> 80 steps of 0.125 s, which keeps every
    frequency up to 64 Hz available to the embedding), and the recurrence runs over
    the patches. The top layer's final state (both directions' for a bidirectional
    network) is projected to the token.

    Parameters
    ----------
    n_chans, n_times : int
    dim : int
        Token width D.
    hidden : int
        Patch-embedding width and RNN hidden size H per direction.
    n_layers : int
    patch_size : int
        Divides ``n_times``.
    cell : {"lstm", "gru"}
    bidirectional : bool
    normalize : bool
        Instance norm first (see :class:`BaselineModel`).
    dropout : float
        Between stacked RNN layers and before the output projection.

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
        hidden: int = 64,
        n_layers: int = 2,
        patch_size: int = 16,
        cell: str = "lstm",
        bidirectional: bool = False,
        normalize: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_steps = check_divides(n_times, patch_size)
        self.norm = InstanceNorm(normalize)
        self.embed = PatchEmbedding(n_chans=n_chans, dim=hidden, patch_size=patch_size)
        self.rnn = RecurrentSummary(
            in_features=hidden, hidden=hidden, n_layers=n_layers, cell=cell,
            bidirectional=bidirectional, dropout=dropout,
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.rnn.out_features, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(self.norm(x))  # (B, L, H)
        return as_token(self.out(self.dropout(self.rnn(h))))  # (B, 1, D)


class PatchRNNBaseline(BaselineModel):
    """Shared part of the LSTM, BiLSTM and GRU baselines (see :class:`PatchRNNEncoder`).

    Subclasses set the class attributes ``cell`` and ``bidirectional``.

    Parameters
    ----------
    hidden : int
        Patch-embedding width and hidden size per direction.
    n_layers : int
        Stacked recurrent layers.
    patch_size : int
        Samples per recurrent step (divides ``n_times``).
    **kw
        :class:`BaselineModel` parameters (``dim``, ``normalize``, ``dropout``, fusion
        and the signal contract).
    """

    cell: str = "lstm"
    bidirectional: bool = False

    def __init__(self, *, hidden: int = 64, n_layers: int = 2, patch_size: int = 16, **kw) -> None:
        self._rnn_kw = dict(hidden=hidden, n_layers=n_layers, patch_size=patch_size)
        super().__init__(**kw)

    def make_encoder(self, spec) -> nn.Module:
        return PatchRNNEncoder(
            n_chans=spec.n_chans,
            n_times=spec.n_times,
            dim=self.dim,
            cell=self.cell,
            bidirectional=self.bidirectional,
            normalize=self._normalize,
            dropout=self._dropout,
            **self._rnn_kw,
        )


__all__ = [
    "BaselineModel",
    "ConvStack",
    "InstanceNorm",
    "PatchEmbedding",
    "PatchRNNBaseline",
    "PatchRNNEncoder",
    "RecurrentSummary",
    "TransformerBlock",
    "as_token",
    "check_divides",
    "gelu_linear",
    "patch_statistics",
    "sinusoidal_positions",
]
