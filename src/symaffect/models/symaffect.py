"""The paper's model: one DTFE per modality, attention fusion, task heads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from symaffect.models.base import EncoderFusionModel
from symaffect.models.dtfe import DTFE
from symaffect.models.registry import register_model
from symaffect.spec import ModalitySpec

TOKEN_PRESETS: dict[str, dict[str, int]] = {
    "single": {"eeg": 1, "peripheral": 1, "eog": 1},
    "paper": {"eeg": 4, "peripheral": 2, "eog": 1},
}
"""Named token counts: ``"paper"`` is section 4.1's 4 / 2 / 1; ``"single"`` is
section 3.2's one token per modality (M = 3)."""

EFFICIENT_KWARGS: dict = {"mixer": "lowrank", "mixer_rank": 16, "n_tokens": "single"}
"""An efficient configuration: the low-rank temporal mixer instead of T x T."""


def resolve_tokens(
    n_tokens: int | str | Sequence[int] | Mapping[str, int], modalities: Sequence[str]
) -> dict[str, int]:
    """Token count per modality from an int, a preset name, a sequence or a mapping."""
    if isinstance(n_tokens, str):
        if n_tokens not in TOKEN_PRESETS:
            raise ValueError(f"n_tokens: preset {n_tokens!r} not in {sorted(TOKEN_PRESETS)}")
        n_tokens = TOKEN_PRESETS[n_tokens]
    if isinstance(n_tokens, int):
        out = {m: n_tokens for m in modalities}
    elif isinstance(n_tokens, Mapping):
        missing = [m for m in modalities if m not in n_tokens]
        if missing:
            raise ValueError(f"n_tokens: no count for {missing}")
        out = {m: int(n_tokens[m]) for m in modalities}
    else:
        n_tokens = list(n_tokens)
        if len(n_tokens) != len(modalities):
            raise ValueError(f"n_tokens: {len(n_tokens)} counts for {len(modalities)} modalities")
        out = {m: int(k) for m, k in zip(modalities, n_tokens)}
    if any(k < 1 for k in out.values()):
        raise ValueError(f"n_tokens: counts must be >= 1, got {out}")
    return out


@register_model(
    "symaffect",
    test_kwargs={"n_times": 64, "d": 16, "tau": 16, "n_heads": 2, "n_tokens": "paper"},
)
class SymAffect(EncoderFusionModel):
    """Symmetry-aware multi-modal model: DTFE per modality + cross-modal fusion + heads.

    Parameters
    ----------
    modalities : tuple of str
        Accepted modalities (mask-column order); default all three.
    task_set : str
        See :data:`symaffect.models.base.TASK_SETS`.
    n_times : int or None
        Window length (default 1280).
    d : int
        DTFE latent width.
    tau : int
        Token width (DTFE output, fusion width, heads' input).
    n_tokens : int, str, sequence or mapping
        Tokens per modality; ``"paper"`` = EEG 4 / peripheral 2 / EOG 1; default 1 each.
    mixer : {"full", "lowrank", "identity"}
        Temporal mixer ``Q_i`` (``"full"`` is the paper's T x T).
    mixer_rank, csi_rank : int
        Ranks of the low-rank mixer and of the CSI affinity (1 = paper).
    spectral : {"fft", "dft", "matrix"}
        Frequency-gate implementation (same maths; ONNX export switches to
        ``"matrix"`` by itself).
    input_norm : {"instance", "none"}
        Per-window instance normalisation of every channel (eq. 2, the paper's) or
        none (the data's own per-subject z-score only). Eq. 2 removes each window's
        level and scale per channel — tonic GSR, temperature, absolute and
        between-channel band power — see docs/RESULTS.md.
    gate : {"bank", "shared"}
        ISI frequency gate: a filter bank, one band-pass-initialised gate per latent
        series (default), or the paper's single gate ``Q_f`` shared by all series.
    pool : {"attention+power", "attention"}
        DTFE read-out: the attention-pooled vector plus the log power of each gated
        series (default), or the paper's attention pooling alone (eq. 21-22).
    band_hz : (float, float)
        Centre range of the filter bank.

        The defaults of ``gate`` and ``pool`` depart from the paper: with the paper's
        choices the model cannot learn band power or a rate (the capability probes of
        :mod:`symaffect.eval.probes`; ``docs/paper_map.md``). ``symaffect_paper_dtfe``
        is the model with the paper's choices.
    fusion : {"attention", "concat"}
        Eq. 24-27, or the Table 6 "w/o cross-modal fusion" ablation.
    n_heads, ffn_mult, fusion_dropout, attn_residual
        Fusion hyper-parameters.
    modality_dropout : float
        Training-time probability of dropping a whole modality per sample.

    Shape
    -----
    x : {modality: (B, C, T)}, mask : (B, M) bool -> {task: (B, n_outputs)}

    References
    ----------
    Qu & Wang (2026), sections 3.1-3.2; ``docs/paper_map.md``.
    """

    def __init__(
        self,
        *,
        d: int = 64,
        tau: int = 64,
        n_tokens: int | str | Sequence[int] | Mapping[str, int] = 1,
        mixer: str = "full",
        mixer_rank: int = 16,
        csi_rank: int = 1,
        spectral: str = "fft",
        input_norm: str = "instance",
        gate: str = "bank",
        pool: str = "attention+power",
        band_hz: Sequence[float] = (0.5, 45.0),
        fusion: str = "attention",
        n_heads: int = 4,
        ffn_mult: int = 2,
        fusion_dropout: float = 0.0,
        attn_residual: bool = False,
        modality_dropout: float = 0.0,
        modalities: Sequence[str] = ("eeg", "peripheral", "eog"),
        task_set: str = "multitask9",
        n_times: int | None = None,
    ) -> None:
        self._n_tokens = resolve_tokens(n_tokens, tuple(modalities))
        self._dtfe_kw = dict(
            d=d, tau=tau, mixer=mixer, mixer_rank=mixer_rank, csi_rank=csi_rank, spectral=spectral,
            input_norm=input_norm, gate=gate, pool=pool, band_hz=tuple(band_hz),
        )
        super().__init__(
            dim=tau,
            fusion=fusion,
            n_heads=n_heads,
            ffn_mult=ffn_mult,
            fusion_dropout=fusion_dropout,
            attn_residual=attn_residual,
            modality_dropout=modality_dropout,
            modalities=modalities,
            task_set=task_set,
            n_times=n_times,
        )

    def tokens_for(self, modality: str) -> int:
        return self._n_tokens[modality]

    def make_encoder(self, spec: ModalitySpec) -> nn.Module:
        return DTFE(
            n_chans=spec.n_chans,
            n_times=spec.n_times,
            sfreq=spec.sfreq,
            n_tokens=self._n_tokens[spec.name],
            **self._dtfe_kw,
        )


register_model(
    "symaffect_efficient",
    test_kwargs={"n_times": 64, "d": 16, "tau": 16, "n_heads": 2, "mixer_rank": 4},
    defaults=EFFICIENT_KWARGS,
)(SymAffect)
"""``symaffect_efficient``: the same class with :data:`EFFICIENT_KWARGS` as defaults."""


PAPER_DTFE_KWARGS: dict = {"gate": "shared", "pool": "attention"}
"""The DTFE exactly as the paper writes it: one shared frequency gate, attention pooling."""

register_model(
    "symaffect_paper_dtfe",
    test_kwargs={"n_times": 64, "d": 16, "tau": 16, "n_heads": 2},
    defaults=PAPER_DTFE_KWARGS,
)(SymAffect)
"""``symaffect_paper_dtfe``: the same class with the paper's DTFE read-out (the ablation
that shows what the filter bank and the power read-out add)."""
