"""Interpretability figures from :meth:`EncoderFusionModel.explain` (matplotlib + MNE).

Every function returns a :class:`matplotlib.figure.Figure` (built without pyplot, so
no GUI backend is needed); :func:`write_explain_figures` writes them all as PNGs.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from symaffect._io import atomic_write
from symaffect.spec import EEG_BANDS

log = logging.getLogger(__name__)

_BAND_COLOURS = ("#fde0c5", "#c7e9c0", "#c6dbef", "#e5d8f0")


def _np(t: Tensor | np.ndarray) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)


def plot_channel_affinity(
    affinity: np.ndarray, ch_names: Sequence[str], *, title: str = "CSI channel affinity"
) -> Figure:
    """Affinity matrix ``A (C, C)`` with channel names; row i = how channel i aggregates.

    Parameters
    ----------
    affinity : ndarray, shape (C, C)
        Row-stochastic CSI affinity (e.g. a batch mean).
    ch_names : sequence of str, length C
    """
    a = _np(affinity)
    c = a.shape[0]
    size = 3.0 + 0.2 * c
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(a, cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(c), ch_names, rotation=90, fontsize=8)
    ax.set_yticks(range(c), ch_names, fontsize=8)
    ax.set_xlabel("source channel j")
    ax.set_ylabel("target channel i")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8, label="A[i, j] (rows sum to 1)")
    return fig


def plot_scalp_connectivity(
    affinity: np.ndarray,
    ch_names: Sequence[str],
    *,
    n_lines: int = 25,
    title: str = "Strongest CSI channel affinities",
) -> Figure:
    """Sensors on the scalp (MNE's 10-20 montage) with lines for the strongest pairs.

    The off-diagonal affinity is symmetrised, ``(A + A^T) / 2``, and the ``n_lines``
    largest pairs are drawn, width and colour by strength.

    Parameters
    ----------
    affinity : ndarray, shape (C, C)
    ch_names : sequence of str
        EEG channel names known to the ``standard_1020`` montage.
    n_lines : int
    """
    import matplotlib
    import mne
    from matplotlib import cm, colors

    a = _np(affinity)
    info = mne.create_info(list(ch_names), sfreq=128.0, ch_types="eeg")
    montages = mne.channels.get_builtin_montages()
    name = "colin27_1020" if "colin27_1020" in montages else "standard_1020"
    info.set_montage(mne.channels.make_standard_montage(name))
    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = fig.add_subplot()
    mne.viz.plot_sensors(info, kind="topomap", show_names=True, axes=ax, show=False)
    pos = np.asarray(ax.collections[0].get_offsets())  # plotted 2-D sensor positions
    if pos.shape[0] != len(ch_names):
        raise RuntimeError("could not read the sensor positions back from MNE's plot")
    sym = (a + a.T) / 2
    np.fill_diagonal(sym, -np.inf)
    iu = np.triu_indices(len(ch_names), k=1)
    order = np.argsort(sym[iu])[::-1][:n_lines]
    strengths = sym[iu][order]
    norm = colors.Normalize(vmin=float(strengths.min()), vmax=float(strengths.max()) + 1e-12)
    cmap = matplotlib.colormaps["plasma"]
    for k in order[::-1]:  # strongest drawn last (on top)
        i, j = iu[0][k], iu[1][k]
        s = norm(sym[i, j])
        ax.plot(
            [pos[i, 0], pos[j, 0]], [pos[i, 1], pos[j, 1]],
            color=cmap(s), linewidth=0.8 + 3.0 * s, alpha=0.85, zorder=1,
        )
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, shrink=0.7, label="(A[i, j] + A[j, i]) / 2")
    ax.set_title(f"{title} (top {len(order)})")
    return fig


def plot_gates(gates: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """ISI gate magnitude ``|Q_f|`` against frequency in Hz, one panel per modality.

    Parameters
    ----------
    gates : dict of modality to (gate (F,), frequencies_hz (F,))
        The EEG bands of :data:`symaffect.spec.EEG_BANDS` are shaded in every panel.
    """
    n = len(gates)
    fig = Figure(figsize=(8.0, 2.4 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, (mod, (gate, hz)) in zip(axes, gates.items()):
        g, f = np.abs(_np(gate)), _np(hz)
        for (band, (lo, hi)), colour in zip(EEG_BANDS.items(), _BAND_COLOURS):
            ax.axvspan(lo, hi, color=colour, alpha=0.7, lw=0)
            ax.text((lo + hi) / 2, 1.0, band, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8)
        ax.plot(f, g, color="black", lw=1.2)
        ax.axhline(1.0, color="grey", ls=":", lw=0.8)
        ax.set_xlim(f[0], f[-1])
        ax.set_ylim(0.0, max(1.2, 1.1 * float(g.max())))
        ax.set_ylabel(f"{mod}\n|gate|")
    axes[-1].set_xlabel("frequency (Hz)")
    fig.suptitle("ISI frequency gate (1 = pass unchanged)")
    return fig


def plot_temporal_attention(
    attention: Mapping[str, np.ndarray], sfreq: float
) -> Figure:
    """Temporal attention weights ``alpha (K, T)`` per modality against time.

    Parameters
    ----------
    attention : dict of modality to ndarray, shape (K, T)
        Attention of each of the K token queries over the window (rows sum to 1).
    sfreq : float
    """
    n = len(attention)
    fig = Figure(figsize=(8.0, 2.2 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
    for ax, (mod, alpha) in zip(axes, attention.items()):
        a = _np(alpha)
        t = np.arange(a.shape[-1]) / sfreq
        for k, row in enumerate(a):
            ax.plot(t, row, lw=0.7, alpha=0.8, label=f"token {k + 1}")
        ax.axhline(1.0 / a.shape[-1], color="grey", ls=":", lw=0.8, label="uniform")
        ax.set_ylabel(f"{mod}\nweight")
        ax.legend(fontsize=7, loc="upper right", ncols=min(5, a.shape[0] + 1))
    axes[-1].set_xlabel("time in window (s)")
    fig.suptitle("DTFE temporal attention pooling")
    return fig


def plot_cross_modal(attention: np.ndarray, names: Sequence[str]) -> Figure:
    """Cross-modal attention ``(M, M)``: row = attending modality, column = attended."""
    a = _np(attention)
    fig = Figure(figsize=(4.6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(a, cmap="magma", vmin=0.0, vmax=max(1e-6, float(a.max())))
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            ax.text(j, i, f"{a[i, j]:.2f}", ha="center", va="center",
                    color="white" if a[i, j] < 0.6 * a.max() else "black", fontsize=9)
    ax.set_xlabel("attended (key)")
    ax.set_ylabel("attending (query)")
    ax.set_title("Cross-modal attention")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _save(fig: Figure, path: Path, dpi: int = 120) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def write_explain_figures(
    model,
    batch: Mapping[str, Tensor],
    out_dir: str | Path,
    *,
    mask: Tensor | None = None,
    n_lines: int = 25,
) -> list[Path]:
    """Run :meth:`explain` on ``batch`` and write every figure as a PNG.

    Per-sample quantities (affinities, attention) are averaged over the samples in
    which the modality is present.

    Parameters
    ----------
    model : EncoderFusionModel
        A model with ``explain`` (e.g. ``symaffect``).
    batch : dict of str to Tensor, shape (B, C, T)
    out_dir : str or Path
    mask : Tensor of bool, shape (B, M), optional

    Returns
    -------
    list of Path
        ``eeg_affinity_matrix.png``, ``eeg_affinity_scalp.png`` (if EEG present),
        ``<modality>_affinity_matrix.png`` for the other modalities, ``isi_gate.png``,
        ``temporal_attention.png``, ``cross_modal_attention.png`` (attention fusion).
    """
    out_dir = Path(out_dir)
    info = model.explain(batch, mask)
    present = _np(info["present"])  # (B, M)
    names = list(info["modality_names"])
    paths: list[Path] = []
    gates: dict = {}
    attention: dict = {}
    for mi, mod in enumerate(names):
        d = info["modalities"].get(mod, {})
        rows = present[:, mi]
        if "gate" in d:
            gates[mod] = (d["gate"], d["gate_hz"])
        if "csi_affinity" in d and rows.any():
            a = _np(d["csi_affinity"])[rows].mean(axis=0)
            label = f"{mod} CSI channel affinity (mean of {int(rows.sum())} windows)"
            paths.append(_save(plot_channel_affinity(a, d["ch_names"], title=label),
                               out_dir / f"{mod}_affinity_matrix.png"))
            if mod == "eeg":
                paths.append(_save(plot_scalp_connectivity(a, d["ch_names"], n_lines=n_lines),
                                   out_dir / "eeg_affinity_scalp.png"))
        if "temporal_attention" in d and rows.any():
            attention[mod] = _np(d["temporal_attention"])[rows].mean(axis=0)
    if gates:
        paths.append(_save(plot_gates(gates), out_dir / "isi_gate.png"))
    if attention:
        sfreq = next(iter(model.specs.values())).sfreq
        paths.append(_save(plot_temporal_attention(attention, sfreq), out_dir / "temporal_attention.png"))
    if "cross_modal_attention" in info:
        cm = _np(info["cross_modal_attention"])
        # row i: mean over the samples where modality i is present (rows sum to 1)
        rows = present[:, :, None].astype(cm.dtype)
        mean = (cm * rows).sum(0) / np.maximum(rows.sum(0), 1.0)
        paths.append(_save(plot_cross_modal(mean, names), out_dir / "cross_modal_attention.png"))
    log.info("wrote %d explain figures to %s", len(paths), out_dir)
    return paths


__all__ = [
    "plot_channel_affinity",
    "plot_cross_modal",
    "plot_gates",
    "plot_scalp_connectivity",
    "plot_temporal_attention",
    "write_explain_figures",
]

