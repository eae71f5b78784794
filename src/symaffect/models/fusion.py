"""Cross-modal fusion of modality tokens (paper eq. 24-27) and the concatenation ablation.

Both blocks take tokens ``(B, N, D)`` in fixed slots plus ``present (B, N)`` and return
the fused embedding ``(B, D)``; a missing token is never read as signal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention over tokens with a key padding mask (eq. 25).

    Written out (instead of :class:`torch.nn.MultiheadAttention`) so that it exports
    to ONNX / ``torch.export`` the same way in every mode and returns the weights.

    Parameters
    ----------
    dim : int
        Token width D (divisible by ``n_heads``).
    n_heads : int
    dropout : float
        Dropout on the attention weights.

    Shape
    -----
    x : (B, N, D), present : (B, N) bool -> out (B, N, D), weights (B, N, N) (head mean)
    """

    def __init__(self, *, dim: int, n_heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        B, N, D = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).view(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)  # (B, H, N, Dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D // H)  # (B, H, N, N)
        # a row with no present token attends to all (its output is ignored by the pool)
        keys = present | ~present.any(dim=1, keepdim=True)  # (B, N)
        scores = scores.masked_fill(~keys[:, None, None, :], float("-inf"))
        w = scores.softmax(dim=-1)
        out = self.dropout(w) @ v  # (B, H, N, Dh)
        out = out.transpose(1, 2).reshape(B, N, D)
        return self.out(out), w.mean(dim=1)


def masked_mean(tokens: Tensor, present: Tensor) -> Tensor:
    """Mean over present tokens (eq. 27 with missing modalities left out).

    Parameters
    ----------
    tokens : Tensor, shape (B, N, D)
    present : Tensor of bool, shape (B, N)

    Returns
    -------
    Tensor, shape (B, D); zeros for a sample with no present token.
    """
    w = present.to(tokens.dtype)
    w = w / w.sum(dim=1, keepdim=True).clamp_min(1.0)
    return torch.einsum("bn,bnd->bd", w, tokens)


class ModalityFusion(nn.Module):
    """Attention fusion of modality tokens (eq. 24-27).

    ``F_att = MHA(F)`` (optionally ``F + MHA(F)``), ``F_ref = LayerNorm(FFN(F_att) +
    F_att)``, ``z = mean`` over the present tokens. There is no positional or modality
    embedding, so ``z`` is invariant to the order of the tokens.

    Parameters
    ----------
    dim : int
        Token width D.
    n_heads : int
    ffn_mult : int
        Hidden width of the FFN is ``ffn_mult * dim``.
    dropout : float
    attn_residual : bool
        Add the input to the attention output (not in the paper's eq. 25; off by default).

    Shape
    -----
    tokens : (B, N, D), present : (B, N) bool -> z (B, D), attention (B, N, N)
    """

    def __init__(
        self,
        *,
        dim: int,
        n_heads: int = 4,
        ffn_mult: int = 2,
        dropout: float = 0.0,
        attn_residual: bool = False,
    ) -> None:
        super().__init__()
        self.attn = MaskedSelfAttention(dim=dim, n_heads=n_heads, dropout=dropout)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_mult * dim, dim),
        )
        self.norm = nn.LayerNorm(dim)
        self.attn_residual = attn_residual

    def forward(self, tokens: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        att, weights = self.attn(tokens, present)  # eq. 25
        if self.attn_residual:
            att = att + tokens
        ref = self.norm(self.ffn(att) + att)  # eq. 26
        return masked_mean(ref, present), weights  # eq. 27


class ConcatFusion(nn.Module):
    """Ablation "without cross-modal fusion": concatenate the token slots, then an MLP.

    A missing token's slot holds a learned "missing" embedding (not zeros posing as
    signal), so any subset of modalities still works.

    Parameters
    ----------
    dim : int
        Token width D (and output width).
    n_tokens : int
        Number of slots N.
    dropout : float

    Shape
    -----
    tokens : (B, N, D), present : (B, N) bool -> z (B, D), None
    """

    def __init__(self, *, dim: int, n_tokens: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.missing = nn.Parameter(torch.zeros(n_tokens, dim))
        nn.init.normal_(self.missing, std=0.02)
        self.mlp = nn.Sequential(
            nn.Linear(n_tokens * dim, 2 * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(2 * dim, dim),
        )

    def forward(self, tokens: Tensor, present: Tensor) -> tuple[Tensor, None]:
        B = tokens.shape[0]
        filled = torch.where(present[..., None], tokens, self.missing.expand_as(tokens))
        return self.mlp(filled.reshape(B, -1)), None


