"""Transformer baseline of Table 3: patch embedding + a small Transformer encoder per modality."""

from __future__ import annotations

from torch import Tensor, nn

from symaffect.models.baselines._blocks import (
    BaselineModel,
    InstanceNorm,
    PatchEmbedding,
    TransformerBlock,
    as_token,
    check_divides,
    sinusoidal_positions,
)
from symaffect.models.registry import register_model
from symaffect.spec import ModalitySpec


class PatchTransformerEncoder(nn.Module):
    """Norm -> patch embedding + sine positions -> pre-norm blocks -> mean -> one token.

    Parameters
    ----------
    n_chans, n_times : int
    dim : int
        Token width D.
    d_model : int
        Transformer width.
    n_layers : int
    enc_heads : int
        Attention heads (divides ``d_model``).
    enc_ffn_mult : int
    patch_size : int
        Divides ``n_times``.
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
        d_model: int = 64,
        n_layers: int = 2,
        enc_heads: int = 4,
        enc_ffn_mult: int = 2,
        patch_size: int = 32,
        normalize: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if d_model % enc_heads:
            raise ValueError(f"d_model {d_model} is not divisible by enc_heads {enc_heads}")
        if d_model % 2:
            raise ValueError(f"d_model: {d_model} must be even (sine / cosine positions)")
        if n_layers < 1:
            raise ValueError(f"n_layers: {n_layers} must be >= 1")
        n_patches = check_divides(n_times, patch_size)
        self.norm = InstanceNorm(normalize)
        self.embed = PatchEmbedding(n_chans=n_chans, dim=d_model, patch_size=patch_size)
        positions = sinusoidal_positions(n_patches, d_model)  # (L, d_model), fixed
        self.register_buffer("positions", positions, persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(
            *(
                TransformerBlock(
                    dim=d_model, n_heads=enc_heads, ffn_mult=enc_ffn_mult, dropout=dropout
                )
                for _ in range(n_layers)
            )
        )
        self.final_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.dropout(self.embed(self.norm(x)) + self.positions)  # (B, L, d_model)
        h = self.final_norm(self.blocks(h))
        return as_token(self.out(h.mean(dim=1)))  # (B, 1, D)


@register_model(
    "transformer",
    test_kwargs={
        "n_times": 64, "dim": 16, "d_model": 16, "enc_heads": 2, "patch_size": 8, "n_heads": 2,
    },
)
class TransformerBaseline(BaselineModel):
    """Transformer encoder per modality, then the paper's fusion and heads.

    Per modality: instance norm (eq. 2) -> linear embedding of non-overlapping
    ``patch_size``-sample patches (default 32 = 0.25 s -> 40 patch tokens at
    T = 1280; self-attention over 1280 single samples would cost 1280^2 per head and
    layer) -> plus fixed sinusoidal position codes (no parameters; the window length
    is fixed, so learned positions would add parameters for no gain in
    generality) -> ``n_layers`` pre-norm encoder blocks (multi-head self-attention,
    GELU FFN of width ``enc_ffn_mult * d_model``) -> final LayerNorm -> mean over
    patches -> ``Linear(d_model, dim)`` -> one token. The attention is the same
    hand-written, export-friendly :class:`~symaffect.models.fusion.MaskedSelfAttention`
    as the fusion uses. The tokens go through the same
    :class:`~symaffect.models.fusion.ModalityFusion` and
    :class:`~symaffect.models.heads.TaskHeads` as the paper's model.

    Parameters
    ----------
    d_model : int
        Encoder width (default 64).
    n_layers : int
        Encoder blocks (default 2).
    enc_heads : int
        Attention heads in the encoder (default 4); ``n_heads`` is the fusion's.
    enc_ffn_mult : int
        Encoder FFN width multiplier (default 2).
    patch_size : int
        Samples per patch token; must divide ``n_times`` (default 32).
    dim : int
        Token / fusion / head-input width D (default 64).
    normalize : bool
        Instance norm per channel and window first (default True, as the DTFE).
    dropout : float
        On embeddings, attention weights, FFN and residual branches (default 0).
    fusion, n_heads, ffn_mult, fusion_dropout, attn_residual, modality_dropout
        The shared fusion, as in :class:`~symaffect.models.symaffect.SymAffect`.
    modalities, task_set, n_times
        The signal contract of :class:`~symaffect.models.base.AffectModel`.

    Shape
    -----
    x : {modality: (B, C, T)}, mask : (B, M) bool -> {task: (B, n_outputs)}

    Notes
    -----
    About 0.33 M parameters with the defaults and all three modalities at T = 1280.

    References
    ----------
    Table 3 of the paper cites this baseline as [35], but the reference list's [35]
    is UNeXt (an MLP-based segmentation network). The Transformer entry of the list
    is [38]: Han, Xiao, Wu, Guo, Xu & Wang (2021), "Transformer in Transformer",
    NeurIPS 34, 15908-15919. The encoder here is a plain patch Transformer of this
    project's design (Vaswani et al. (2017), "Attention is all you need", NeurIPS 30,
    for the block and the position codes).
    """

    def __init__(
        self,
        *,
        d_model: int = 64,
        n_layers: int = 2,
        enc_heads: int = 4,
        enc_ffn_mult: int = 2,
        patch_size: int = 32,
        **kw,
    ) -> None:
        self._enc_kw = dict(
            d_model=d_model, n_layers=n_layers, enc_heads=enc_heads, enc_ffn_mult=enc_ffn_mult,
            patch_size=patch_size,
        )
        super().__init__(**kw)

    def make_encoder(self, spec: ModalitySpec) -> nn.Module:
        return PatchTransformerEncoder(
            n_chans=spec.n_chans,
            n_times=spec.n_times,
            dim=self.dim,
            normalize=self._normalize,
            dropout=self._dropout,
            **self._enc_kw,
        )
