"""MLP baseline of Table 3: an MLP on per-channel patch statistics per modality."""

from __future__ import annotations

from torch import Tensor, nn

from symaffect.models.baselines._blocks import (
    BaselineModel,
    InstanceNorm,
    as_token,
    check_divides,
    gelu_linear,
    patch_statistics,
)
from symaffect.models.registry import register_model
from symaffect.spec import ModalitySpec


class PatchStatsMLP(nn.Module):
    """Norm -> per-channel patch mean and log-std -> flatten -> MLP -> one token.

    Parameters
    ----------
    n_chans, n_times : int
    dim : int
        Token width D.
    hidden : int
    n_layers : int
        Hidden layers of width ``hidden``.
    patch_size : int
        Divides ``n_times``.
    normalize : bool
    dropout : float
        After every hidden layer.

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
        hidden: int = 128,
        n_layers: int = 2,
        patch_size: int = 64,
        normalize: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers: {n_layers} must be >= 1")
        self.patch_size = patch_size
        n_features = 2 * n_chans * check_divides(n_times, patch_size)
        self.norm = InstanceNorm(normalize)
        self.feature_norm = nn.LayerNorm(n_features)
        widths = [n_features] + [hidden] * n_layers
        self.hidden = nn.Sequential(
            *(gelu_linear(a, b, dropout) for a, b in zip(widths[:-1], widths[1:]))
        )
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        f = patch_statistics(self.norm(x), self.patch_size)  # (B, C, L, 2)
        f = self.feature_norm(f.flatten(1))  # (B, 2 C L)
        return as_token(self.out(self.hidden(f)))  # (B, 1, D)


@register_model(
    "mlp",
    test_kwargs={"n_times": 64, "dim": 16, "hidden": 32, "patch_size": 16, "n_heads": 2},
)
class MLPBaseline(BaselineModel):
    """MLP encoder per modality, then the paper's fusion and heads.

    An MLP on the raw 1280 x C samples would need tens of thousands of inputs per
    modality (2.6 M weights in the first layer for EEG alone) and would see every
    sample shift as a new input. Instead each channel's window (after instance norm)
    is cut into ``patch_size``-sample patches (64 = 0.5 s -> 20 patches at T = 1280)
    and summarised by the patch mean (slow drift) and ``0.5 * log(var + 1e-6)``
    (amplitude / power envelope); the ``2 * C * T / P`` features are layer-normed and
    fed to ``n_layers`` GELU layers of width ``hidden``, then ``Linear(hidden, dim)``
    gives the modality's token. The tokens go through the same
    :class:`~symaffect.models.fusion.ModalityFusion` and
    :class:`~symaffect.models.heads.TaskHeads` as the paper's model.

    Parameters
    ----------
    hidden : int
        Width of the hidden layers (default 128).
    n_layers : int
        Number of hidden layers (default 2).
    patch_size : int
        Samples per patch; must divide ``n_times`` (default 64).
    dim : int
        Token / fusion / head-input width D (default 64).
    normalize : bool
        Instance norm per channel and window first (default True, as the DTFE).
    dropout : float
        After every hidden layer (default 0).
    fusion, n_heads, ffn_mult, fusion_dropout, attn_residual, modality_dropout
        The shared fusion, as in :class:`~symaffect.models.symaffect.SymAffect`.
    modalities, task_set, n_times
        The signal contract of :class:`~symaffect.models.base.AffectModel`.

    Shape
    -----
    x : {modality: (B, C, T)}, mask : (B, M) bool -> {task: (B, n_outputs)}

    Notes
    -----
    About 0.32 M parameters with the defaults and all three modalities at T = 1280.

    References
    ----------
    Table 3 of the paper cites this baseline as [41], but the reference list's [41]
    is Azizjon, Jumabek & Kim (2020), "1D CNN based network intrusion detection with
    normalization on imbalanced data" (a 1D-CNN). The list's entries [35], [37],
    [38], [41], [42] do not match the names they are cited for; the MLP-based entry is
    [35], Valanarasu & Patel (2022), "UNeXt: MLP-based rapid medical image
    segmentation network", MICCAI 2022, 23-33. Neither describes this encoder: it is
    a plain MLP of this project's design.
    """

    def __init__(self, *, hidden: int = 128, n_layers: int = 2, patch_size: int = 64, **kw) -> None:
        self._mlp_kw = dict(hidden=hidden, n_layers=n_layers, patch_size=patch_size)
        super().__init__(**kw)

    def make_encoder(self, spec: ModalitySpec) -> nn.Module:
        return PatchStatsMLP(
            n_chans=spec.n_chans,
            n_times=spec.n_times,
            dim=self.dim,
            normalize=self._normalize,
            dropout=self._dropout,
            **self._mlp_kw,
        )
