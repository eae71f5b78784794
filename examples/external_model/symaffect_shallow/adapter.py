"""Adapter: a plain ``(B, C, T) -> (B, n_outputs)`` network as a symaffect model."""

from __future__ import annotations

from torch import Tensor, nn

from symaffect.models.base import EncoderFusionModel
from symaffect.spec import ModalitySpec


class _OneToken(nn.Module):
    """``(B, C, T) -> (B, 1, D)``: the wrapped network's ``D = n_outputs`` values as one token."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).unsqueeze(1)  # (B, D) -> (B, 1, D)


class PlainNetAffect(EncoderFusionModel):
    """Base of models whose per-modality encoder is a plain decoding network.

    Subclasses implement :meth:`make_net` returning a network that maps
    ``(B, n_chans, n_times)`` to ``(B, n_outputs)``, as braindecode's models do; each
    modality gets its own network with ``n_outputs = dim``, whose output is that
    modality's token. The symaffect fusion and task heads (``heads``) follow, so the
    model meets the whole interface (``{modality: (B, C, T)}`` and a mask in,
    ``{task: logits}`` out): train, evaluate, predict, stream and serve need nothing else.

    Parameters
    ----------
    dim : int
        Token width D = the wrapped network's ``n_outputs`` (default 32).
    **kw
        ``modalities``, ``task_set``, ``n_times`` and the fusion's parameters
        (:class:`~symaffect.models.base.EncoderFusionModel`).
    """

    def __init__(self, *, dim: int = 32, **kw) -> None:
        super().__init__(dim=dim, **kw)

    def make_net(self, n_chans: int, n_outputs: int, n_times: int) -> nn.Module:  # pragma: no cover
        """A network ``(B, n_chans, n_times) -> (B, n_outputs)``."""
        raise NotImplementedError

    def make_encoder(self, spec: ModalitySpec) -> nn.Module:
        return _OneToken(self.make_net(spec.n_chans, self.dim, spec.n_times))
