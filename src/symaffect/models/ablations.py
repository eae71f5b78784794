"""Ablations of Table 6: without DTFE, and without cross-modal fusion."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from symaffect.models.dtfe import ChannelMLP, instance_norm
from symaffect.models.registry import register_model
from symaffect.models.symaffect import SymAffect
from symaffect.spec import ModalitySpec


class PlainEncoder(nn.Module):
    """The "w/o DTFE" encoder: instance norm + channel MLP + mean over time -> 1 token.

    Shape
    -----
    x : (B, C, T) -> (B, 1, tau)
    """

    def __init__(self, *, n_chans: int, d: int = 64, tau: int = 64, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.proj = ChannelMLP(n_chans=n_chans, d=d)
        self.embed = nn.Linear(d, tau)

    def forward(self, x: Tensor) -> Tensor:
        h = self.proj(instance_norm(x, self.eps)).mean(dim=-1)  # (B, d)
        return self.embed(F.gelu(h)).unsqueeze(1)


@register_model(
    "symaffect_no_dtfe",
    test_kwargs={"n_times": 64, "d": 16, "tau": 16, "n_heads": 2},
)
class SymAffectNoDTFE(SymAffect):
    """Table 6 "w/o DTFE": each DTFE replaced by :class:`PlainEncoder` (one token each).

    Same parameters as :class:`~symaffect.models.symaffect.SymAffect`; the DTFE-only
    ones (``mixer``, ``csi_rank``, ``spectral``, ``n_tokens``) are ignored.
    """

    def __init__(self, **kw) -> None:
        kw["n_tokens"] = 1
        super().__init__(**kw)

    def make_encoder(self, spec: ModalitySpec) -> nn.Module:
        return PlainEncoder(n_chans=spec.n_chans, d=self._dtfe_kw["d"], tau=self._dtfe_kw["tau"])


@register_model(
    "symaffect_no_fusion",
    test_kwargs={"n_times": 64, "d": 16, "tau": 16, "n_tokens": "paper"},
)
class SymAffectNoFusion(SymAffect):
    """Table 6 "w/o cross-modal fusion": modality tokens concatenated, then an MLP.

    Missing modalities fill their slots with a learned "missing" embedding.
    """

    def __init__(self, **kw) -> None:
        kw["fusion"] = "concat"
        super().__init__(**kw)
