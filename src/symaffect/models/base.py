"""The base class of every model, the task sets, and the generic encoder + fusion model.

How to add a model
------------------
1. Subclass :class:`AffectModel` (or, for "one encoder per modality, then fusion, then
   heads", :class:`EncoderFusionModel`, which only needs :meth:`~EncoderFusionModel.
   make_encoder`). Hyper-parameters are keyword-only with defaults; call
   ``super().__init__(modalities=..., task_set=..., n_times=...)`` first.
2. Name the output layer ``heads`` (a :class:`symaffect.models.heads.TaskHeads`).
3. Decorate the class with ``@register_model("name", test_kwargs={...})`` from
   :mod:`symaffect.models.registry`; ``test_kwargs`` builds a tiny version for the
   registry-wide tests (e.g. ``{"n_times": 256, "d": 16}``).
4. Add the module to ``MODEL_MODULES`` in :mod:`symaffect.models.registry`.

A per-modality encoder for :class:`EncoderFusionModel` maps ``(B, C, T)`` to tokens
``(B, K, D)``; the fusion (:class:`~symaffect.models.fusion.ModalityFusion` or
:class:`~symaffect.models.fusion.ConcatFusion`) and the heads are shared. Example::

    @register_model("gru", test_kwargs={"n_times": 64, "hidden": 16})
    class GRUModel(EncoderFusionModel):
        def __init__(self, *, hidden: int = 64, **kw):
            self._hidden = hidden  # plain attributes first: super() calls make_encoder
            super().__init__(dim=hidden, **kw)

        def make_encoder(self, spec):  # (B, C, T) -> (B, 1, hidden)
            return _GRUEncoder(spec.n_chans, self._hidden)

An encoder may set ``has_details = True`` and accept ``return_details`` to return
``(tokens, {name: tensor})`` for :meth:`EncoderFusionModel.explain`.

Input contract: ``forward(x, mask=None)`` with ``x = {modality: Tensor(B, C, T)}``; a
modality absent from ``x`` is missing for the whole batch (never zero-filled), and
``mask[b, m] = False`` marks modality ``self.modalities[m]`` missing for sample ``b``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from symaffect.models.fusion import ConcatFusion, ModalityFusion
from symaffect.models.heads import TaskHeads
from symaffect.spec import MODALITIES, ModalitySpec
from symaffect.spec import task_set as task_set_spec

log = logging.getLogger(__name__)

def _is_tracing() -> bool:
    """True while exporting / compiling, where data-dependent Python checks are banned."""
    return bool(
        torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


class AffectModel(nn.Module):
    """Base class: validates the signal contract and the modality mask.

    Parameters
    ----------
    modalities : tuple of str
        Modalities the model accepts, in mask-column order (keys of
        :data:`symaffect.spec.MODALITIES`).
    task_set : str
        One of :data:`symaffect.spec.TASK_SETS`.
    n_times : int or None
        Window length in samples (``None``: the spec's 1280). Tests use small values.

    Attributes
    ----------
    specs : dict of str to ModalitySpec
        The spec of each accepted modality (``n_times`` overridden if given).
    n_outputs : dict of str to int
        Logits per task.
    """

    def __init__(
        self,
        *,
        modalities: Sequence[str] = ("eeg", "peripheral", "eog"),
        task_set: str = "multitask9",
        n_times: int | None = None,
    ) -> None:
        super().__init__()
        modalities = tuple(modalities)
        if not modalities:
            raise ValueError("modalities: at least one modality is required")
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown:
            raise ValueError(f"modalities: unknown {unknown}; known {sorted(MODALITIES)}")
        if len(set(modalities)) != len(modalities):
            raise ValueError(f"modalities: duplicates in {modalities}")
        spec = task_set_spec(task_set)
        if n_times is not None and n_times < 8:
            raise ValueError(f"n_times: {n_times} is too short (>= 8)")
        self.modalities: tuple[str, ...] = modalities
        self.task_set = task_set
        self.task_spec = spec
        self.task_kind = spec.kind
        self.n_outputs: dict[str, int] = spec.n_outputs
        self.specs: dict[str, ModalitySpec] = {
            m: (
                MODALITIES[m]
                if n_times is None
                else dataclasses.replace(MODALITIES[m], n_times=int(n_times))
            )
            for m in modalities
        }

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.n_outputs)

    @property
    def n_times(self) -> int:
        return next(iter(self.specs.values())).n_times

    def presence(self, x: Mapping[str, Tensor], mask: Tensor | None = None) -> Tensor:
        """Validate the input and return which modality is present for each sample.

        Parameters
        ----------
        x : dict of str to Tensor, shape (B, C, T)
            Present modalities (a subset of :attr:`modalities`).
        mask : Tensor of bool, shape (B, M), optional
            ``False`` marks a modality missing for a sample; ``M = len(modalities)``.

        Returns
        -------
        present : Tensor of bool, shape (B, M)
            ``mask`` and "key is in ``x``".
        """
        extra = [k for k in x if k not in self.specs]
        if extra:
            raise ValueError(f"x: unexpected modalities {extra}; model has {self.modalities}")
        if not x:
            raise ValueError("x: no modality given")
        first = next(iter(x.values()))
        batch = first.shape[0]
        for name, t in x.items():
            spec = self.specs[name]
            if t.dim() != 3 or t.shape[1] != spec.n_chans or t.shape[2] != spec.n_times:
                raise ValueError(
                    f"x[{name!r}]: expected shape (B, {spec.n_chans}, {spec.n_times}), "
                    f"got {tuple(t.shape)}"
                )
            if t.shape[0] != batch:
                raise ValueError(f"x[{name!r}]: batch {t.shape[0]} != {batch}")
        given = torch.tensor([m in x for m in self.modalities], device=first.device)
        present = given.unsqueeze(0).expand(batch, -1)
        if mask is not None:
            if mask.shape != (batch, len(self.modalities)):
                raise ValueError(
                    f"mask: expected shape ({batch}, {len(self.modalities)}), "
                    f"got {tuple(mask.shape)}"
                )
            present = present & mask.to(torch.bool)
        if not _is_tracing() and not bool(present.any(dim=1).all()):
            raise ValueError("mask: a sample has no modality present")
        return present

    def forward(  # pragma: no cover - abstract
        self, x: Mapping[str, Tensor], mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        raise NotImplementedError


def modality_dropout_mask(present: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Drop whole modalities per sample with probability ``p``, never all of a sample's.

    Parameters
    ----------
    present : Tensor of bool, shape (B, M)
    p : float
        Drop probability per (sample, present modality).
    generator : torch.Generator, optional

    Returns
    -------
    keep : Tensor of bool, shape (B, M)
        A subset of ``present`` with at least one ``True`` per row that had one.
    """
    if p <= 0.0:
        return present
    u = torch.rand(present.shape, device=present.device, generator=generator)
    keep = present & (u >= p)
    # rows that lost everything keep the present modality with the largest draw
    none = ~keep.any(dim=1, keepdim=True)
    score = torch.where(present, u, torch.full_like(u, -1.0))
    best = torch.zeros_like(present).scatter_(1, score.argmax(dim=1, keepdim=True), True)
    return keep | (none & best & present)


class EncoderFusionModel(AffectModel):
    """Generic "encoder per modality -> token fusion -> task heads" model.

    Subclasses implement :meth:`make_encoder` (``(B, C, T) -> (B, K, D)``) and
    :meth:`tokens_for` (K of a modality).

    Parameters
    ----------
    dim : int
        Token width D (the fusion width and the heads' input).
    fusion : {"attention", "concat"}
        :class:`~symaffect.models.fusion.ModalityFusion` (eq. 24-27) or
        :class:`~symaffect.models.fusion.ConcatFusion` (the Table 6 ablation).
    n_heads, ffn_mult, fusion_dropout, attn_residual
        Passed to the fusion.
    modality_dropout : float
        Probability of dropping a whole modality per sample in training mode.
    **kw
        ``modalities``, ``task_set``, ``n_times`` of :class:`AffectModel`.
    """

    def __init__(
        self,
        *,
        dim: int = 64,
        fusion: str = "attention",
        n_heads: int = 4,
        ffn_mult: int = 2,
        fusion_dropout: float = 0.0,
        attn_residual: bool = False,
        modality_dropout: float = 0.0,
        **kw,
    ) -> None:

        super().__init__(**kw)
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout: {modality_dropout} not in [0, 1)")
        self.dim = dim
        self.modality_dropout = float(modality_dropout)
        self.encoders = nn.ModuleDict({m: self.make_encoder(self.specs[m]) for m in self.modalities})
        n_tokens = [self.tokens_for(m) for m in self.modalities]
        self.register_buffer(
            "token_owner",
            torch.repeat_interleave(torch.arange(len(n_tokens)), torch.tensor(n_tokens)),
            persistent=False,
        )
        if fusion == "attention":
            self.fusion: nn.Module = ModalityFusion(
                dim=dim, n_heads=n_heads, ffn_mult=ffn_mult, dropout=fusion_dropout,
                attn_residual=attn_residual,
            )
        elif fusion == "concat":
            self.fusion = ConcatFusion(dim=dim, n_tokens=sum(n_tokens), dropout=fusion_dropout)
        else:
            raise ValueError(f"fusion: {fusion!r} not in ('attention', 'concat')")
        self.fusion_kind = fusion
        self.heads = TaskHeads(in_features=dim, task_set=self.task_set)

    # --- to implement --------------------------------------------------------------
    def make_encoder(self, spec: ModalitySpec) -> nn.Module:  # pragma: no cover
        """Return a module mapping ``(B, spec.n_chans, spec.n_times)`` to ``(B, K, dim)``."""
        raise NotImplementedError

    def tokens_for(self, modality: str) -> int:
        """Number of tokens K the encoder of ``modality`` emits (default 1)."""
        return 1

    # --- shared forward ------------------------------------------------------------
    def encode(
        self,
        x: Mapping[str, Tensor],
        present: Tensor,
        details: dict | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Encode every modality given in ``x`` and lay tokens out in fixed slots.

        Parameters
        ----------
        x : dict of str to Tensor, shape (B, C, T)
        present : Tensor of bool, shape (B, M)
        details : dict, optional
            If given, encoders with ``has_details`` add ``details[modality]``.

        Returns
        -------
        tokens : Tensor, shape (B, N, D)
            ``N = sum(K)`` over all accepted modalities; slots of a missing modality
            hold zeros (never read: their ``token_present`` is False).
        token_present : Tensor of bool, shape (B, N)
        """
        first = next(iter(x.values()))
        batch = first.shape[0]
        parts = []
        for i, m in enumerate(self.modalities):
            k = self.tokens_for(m)
            if m in x:
                enc = self.encoders[m]
                if details is not None and getattr(enc, "has_details", False):
                    tok, details[m] = enc(x[m], return_details=True)
                else:
                    tok = enc(x[m])  # (B, K, D)
                # a masked sample's tokens are replaced (not multiplied) so that even
                # NaN/inf in a missing modality cannot leak into the output
                tok = torch.where(present[:, i, None, None], tok, torch.zeros_like(tok))
            else:
                tok = first.new_zeros(batch, k, self.dim)
            parts.append(tok)
        tokens = torch.cat(parts, dim=1)
        token_present = present[:, self.token_owner]
        return tokens, token_present

    def forward(
        self,
        x: Mapping[str, Tensor],
        mask: Tensor | None = None,
        return_details: bool = False,
    ):
        """Logits per task.

        Parameters
        ----------
        x : dict of str to Tensor, shape (B, C, T)
        mask : Tensor of bool, shape (B, M), optional
        return_details : bool
            Also return a dict of inspection tensors (see :meth:`explain`).

        Returns
        -------
        logits : dict of str to Tensor, shape (B, n_outputs[task])
        details : dict, only if ``return_details``
        """
        details: dict | None = {} if return_details else None
        z, weights, present = self._fused(x, mask, details)
        logits = self.heads(z)
        if details is None:
            return logits
        details["present"] = present
        if weights is not None:
            details["token_attention"] = weights
            details["cross_modal_attention"] = self._modality_attention(weights)
        return logits, details

    def _fused(self, x: Mapping[str, Tensor], mask: Tensor | None, details: dict | None):
        present = self.presence(x, mask)
        if self.training and self.modality_dropout > 0:
            present = modality_dropout_mask(present, self.modality_dropout)
        tokens, token_present = self.encode(x, present, details)
        z, weights = self.fusion(tokens, token_present)
        return z, weights, present

    def embed(self, x: Mapping[str, Tensor], mask: Tensor | None = None) -> Tensor:
        """The fused embedding the heads read, ``(B, D)``: ``heads(embed(x)) == forward(x)``.

        Per-listener calibration (:mod:`symaffect.models.calibration`) works on it.
        """
        return self._fused(x, mask, None)[0]

    def _modality_attention(self, w: Tensor) -> Tensor:
        """Token attention (B, N, N) -> modality attention (B, M, M).

        Entry (i, j): attention that modality i's tokens (mean over them) pay to all of
        modality j's tokens (sum over them); rows sum to 1.
        """
        onehot = F.one_hot(self.token_owner, len(self.modalities)).to(w.dtype)  # (N, M)
        per_mod = onehot.t() @ w @ onehot  # (B, M, M)
        return per_mod / onehot.sum(dim=0)[:, None]

    @torch.no_grad()
    def explain(self, x: Mapping[str, Tensor], mask: Tensor | None = None) -> dict:
        """Inspection tensors for a batch, computed in eval mode.

        Returns
        -------
        dict with
            ``logits`` : dict of task to (B, n_outputs);
            ``present`` : (B, M) bool;
            ``cross_modal_attention`` : (B, M, M) (attention fusion only);
            ``token_attention`` : (B, N, N) (attention fusion only);
            ``modalities`` : {modality: {...}} per encoder with details, e.g. for DTFE
            ``csi_affinity`` (B, C, C), ``temporal_attention`` (B, K, T),
            ``gate`` (F,), ``gate_hz`` (F,), ``ch_names``.
        """
        was_training = self.training
        self.eval()
        try:
            logits, details = self.forward(x, mask, return_details=True)
        finally:
            self.train(was_training)
        out: dict = {"logits": logits, "modalities": {}}
        for key in ("present", "cross_modal_attention", "token_attention"):
            if key in details:
                out[key] = details[key]
        for m in self.modalities:
            enc = self.encoders[m]
            info = dict(details.get(m, {}))
            if hasattr(enc, "gate"):
                info["gate"] = enc.gate()
                info["gate_hz"] = enc.gate_frequencies()
            if info:
                info["ch_names"] = self.specs[m].ch_names
                out["modalities"][m] = info
        out["modality_names"] = self.modalities
        return out
