"""Interpretability figures from :meth:`EncoderFusionModel.explain` (matplotlib + MNE).

Every function returns a :class:`matplotlib.figure.Figure` (built without pyplot, so
no GUI backend is needed); :func:`write_explain_figures` writes them all as PNGs and
returns their paths with notes.

Honest colour scales: a learned quantity that has no structure is said to have none,
on the figure and in the notes, and drawn on a fixed scale so that noise does not
look like a pattern:

* a CSI affinity (rows softmax) every entry of which is within :data:`UNIFORM_TOL`
  (relative) of ``1/C`` (:func:`affinity_structure`): colour scale ``[0, 2/C]`` (the
  matrix colour scale always starts at 0), no scalp lines;
* an ISI gate with ``max |g| / min |g| - 1 <`` :data:`FLAT_TOL` (:func:`gate_structure`;
  per series for a filter bank ``(d, F)``);
* temporal attention within :data:`UNIFORM_TOL` of ``1/T``: y axis fixed at ``[0, 2/T]``.
"""

from __future__ import annotations

import io
import logging
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import mne
import numpy as np
from matplotlib import cm, colors
from matplotlib.figure import Figure
from torch import Tensor

from symaffect._io import atomic_write
from symaffect.spec import EEG_BANDS

log = logging.getLogger(__name__)

_BAND_COLOURS = ("#fde0c5", "#c7e9c0", "#c6dbef", "#e5d8f0")

UNIFORM_TOL = 0.01
"""An attention / affinity is "uniform" when every entry is within this fraction of
``1/n`` (relative): it has no structure."""

FLAT_TOL = 0.01
"""A gate is "flat" when ``max |g| / min |g| - 1`` is below this: it treats every
frequency alike."""

_NOTE_BOX = {"boxstyle": "round,pad=0.4", "facecolor": "#fff3cd", "edgecolor": "#b58900", "alpha": 0.95}


def _np(t: Tensor | np.ndarray) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)


def _note(ax, text: str, *, y: float = 0.97) -> None:
    """A visible boxed note near the top of ``ax``, wrapped to the axes' width."""

    bbox = ax.get_position()  # axes box in figure fractions
    chars = max(30, int(13 * ax.figure.get_figwidth() * bbox.width))  # ~13 characters per inch at 8 pt
    ax.text(0.5, y, "\n".join(textwrap.wrap(text, chars)), transform=ax.transAxes, ha="center", va="top",
            fontsize=8, bbox=_NOTE_BOX, zorder=10)


def affinity_structure(affinity: np.ndarray, *, tol: float = UNIFORM_TOL) -> dict:
    """How far a row-stochastic ``(..., n)`` array is from uniform (``1/n`` everywhere).

    Parameters
    ----------
    affinity : ndarray, shape (C, C) or (K, T)
        Rows sum to 1 (a CSI affinity, temporal attention weights).
    tol : float
        Relative tolerance.

    Returns
    -------
    dict
        ``uniform`` (bool: every entry within ``tol`` of ``1/n``, relative),
        ``max_rel_dev`` (``max |a - 1/n| * n``), ``uniform_value`` (``1/n``), ``tol``.
    """
    a = _np(affinity).astype(np.float64)
    u = 1.0 / a.shape[-1]
    dev = float(np.max(np.abs(a - u)) / u) if a.size else 0.0
    return {"uniform": bool(dev < tol), "max_rel_dev": dev, "uniform_value": u, "tol": tol}


def affinity_note(affinity: np.ndarray, *, tol: float = UNIFORM_TOL) -> str | None:
    """The "no structure" note of a CSI affinity ``(C, C)``, or None if it has structure."""
    st = affinity_structure(affinity, tol=tol)
    if not st["uniform"]:
        return None
    c = _np(affinity).shape[-1]
    return (f"no structure: every entry within {100 * tol:g} % of uniform (1/C = 1/{c} = "
            f"{st['uniform_value']:.4f}; largest deviation {100 * st['max_rel_dev']:.2f} %); "
            f"colour scale fixed at [0, 2/C]")


def gate_structure(gate: np.ndarray, *, tol: float = FLAT_TOL) -> dict:
    """Flatness of an ISI gate ``(F,)`` or of each series of a filter bank ``(d, F)``.

    Parameters
    ----------
    gate : ndarray, shape (F,) or (d, F)
        Gate values (their magnitude is used).
    tol : float

    Returns
    -------
    dict
        ``ratio`` (``max |g| / min |g| - 1`` per series, shape () or (d,); inf where the
        minimum is 0), ``flat`` (bool per series, ``ratio < tol``), ``n_series``,
        ``n_flat``, ``all_flat``, ``tol``.
    """
    g = np.abs(_np(gate).astype(np.float64))
    lo, hi = g.min(axis=-1), g.max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lo > 0, hi / np.where(lo > 0, lo, 1.0) - 1.0, np.inf)
    flat = ratio < tol
    n = 1 if g.ndim == 1 else g.shape[0]
    return {"ratio": ratio, "flat": flat, "n_series": n, "n_flat": int(np.sum(flat)),
            "all_flat": bool(np.all(flat)), "tol": tol}


def gate_note(gate: np.ndarray, *, tol: float = FLAT_TOL) -> str | None:
    """The note on a gate's (lack of) structure, or None if every series has some."""
    st = gate_structure(gate, tol=tol)
    if st["n_flat"] == 0:
        return None
    if _np(gate).ndim == 1:
        return (f"no structure: gate within {100 * tol:g} % of flat (max/min - 1 = {100 * float(st['ratio']):.2f} %); "
                "it passes every frequency alike; y axis fixed from 0")
    if st["all_flat"]:
        return (f"no structure: all {st['n_series']} series' gates within {100 * tol:g} % of flat "
                f"(largest max/min - 1 = {100 * float(np.max(st['ratio'])):.2f} %); colour scale fixed from 0")
    return (f"{st['n_flat']} of {st['n_series']} series' gates within {100 * tol:g} % of flat "
            "(no frequency selectivity in those series)")


def plot_channel_affinity(
    affinity: np.ndarray, ch_names: Sequence[str], *, title: str = "CSI channel affinity",
    tol: float = UNIFORM_TOL,
) -> Figure:
    """Affinity matrix ``A (C, C)`` with channel names; row i = how channel i aggregates.

    The colour scale runs from 0 to ``max(2/C, max A)`` (never min-max, which would turn
    noise around ``1/C`` into a pattern): a uniform matrix is one flat colour. An
    affinity within ``tol`` of uniform (:func:`affinity_structure`) also gets a note
    saying it has no structure; the title gives the largest deviation from ``1/C``.

    Parameters
    ----------
    affinity : ndarray, shape (C, C)
        Row-stochastic CSI affinity (e.g. a batch mean).
    ch_names : sequence of str, length C
    title : str
    tol : float
    """
    a = _np(affinity)
    c = a.shape[0]
    st = affinity_structure(a, tol=tol)
    size = 3.0 + 0.2 * c
    fig = Figure(figsize=(size + 1.2, size + (0.5 if st["uniform"] else 0.0)), layout="constrained")
    ax = fig.add_subplot()
    # colour from 0 (never min-max): a uniform matrix is one flat colour, and a contrast
    # on the figure is a contrast in value
    im = ax.imshow(a, cmap="viridis", interpolation="nearest", vmin=0.0, vmax=max(2.0 / c, float(a.max())))
    ax.set_xticks(range(c), ch_names, rotation=90, fontsize=8)
    ax.set_yticks(range(c), ch_names, fontsize=8)
    ax.set_xlabel("source channel j")
    ax.set_ylabel("target channel i")
    ax.set_title(f"{title}\nlargest |A - 1/C| = {100 * st['max_rel_dev']:.1f} % of 1/C", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="A[i, j] (rows sum to 1)")
    note = affinity_note(a, tol=tol)
    if note:
        _note(ax, note)
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
    largest pairs are drawn, width and colour by strength. An affinity within
    :data:`UNIFORM_TOL` of uniform gets a note and no lines (its "strongest" pairs are noise).

    Parameters
    ----------
    affinity : ndarray, shape (C, C)
    ch_names : sequence of str
        EEG channel names known to the ``standard_1020`` montage.
    n_lines : int
    """

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
    note = affinity_note(a)
    if note is not None:  # no pair stands out: drawing the "strongest" would draw noise
        _note(ax, note.replace("colour scale fixed at [0, 2/C]", "no lines drawn"))
        ax.set_title(f"{title}: none (uniform affinity)")
        return fig
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


def plot_gates(gates: Mapping[str, tuple[np.ndarray, np.ndarray]], *, tol: float = FLAT_TOL) -> Figure:
    """ISI gate magnitude ``|Q_f|`` against frequency in Hz, one panel per modality.

    A shared gate ``(F,)`` is drawn as a curve (y axis from 0); a filter bank ``(d, F)``
    as an image, series x frequency, with the series sorted by the frequency of their
    peak and the colour scale fixed from 0. A gate (or bank series) within ``tol`` of
    flat (:func:`gate_structure`) is noted on its panel.

    Parameters
    ----------
    gates : dict of modality to (gate (F,) or (d, F), frequencies_hz (F,))
        The EEG bands of :data:`symaffect.spec.EEG_BANDS` are marked in every panel.
    tol : float
    """
    items = [(mod, np.abs(_np(g)), _np(hz)) for mod, (g, hz) in gates.items()]
    heights = [2.6 if g.ndim == 2 else 2.0 for _, g, _ in items]
    fig = Figure(figsize=(8.0, sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(len(items), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (mod, g, f) in zip(axes, items):
        df = float(f[1] - f[0]) if len(f) > 1 else 1.0
        if g.ndim == 1:
            for (band, (lo, hi)), colour in zip(EEG_BANDS.items(), _BAND_COLOURS):
                ax.axvspan(lo, hi, color=colour, alpha=0.7, lw=0)
            ax.plot(f, g, color="black", lw=1.2)
            ax.axhline(1.0, color="grey", ls=":", lw=0.8)
            ax.set_xlim(f[0], f[-1])
            ax.set_ylim(0.0, max(1.2, 1.1 * float(g.max())))
            ax.set_ylabel(f"{mod}\n|gate|")
        else:
            order = np.argsort(f[np.argmax(g, axis=1)], kind="stable")  # by peak frequency
            im = ax.imshow(g[order], aspect="auto", interpolation="nearest", cmap="magma",
                           vmin=0.0, vmax=max(1.0, float(g.max())),
                           extent=(f[0] - df / 2, f[-1] + df / 2, g.shape[0] - 0.5, -0.5))
            for lo, hi in EEG_BANDS.values():
                for edge in (lo, hi):
                    ax.axvline(edge, color="white", lw=0.6, ls=":", alpha=0.8)
            ax.set_ylabel(f"{mod}\nseries (by peak Hz)")
            fig.colorbar(im, ax=ax, shrink=0.9, label="|gate|", pad=0.01)
        for band, (lo, hi) in EEG_BANDS.items():
            ax.text((lo + hi) / 2, 1.0, band, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8)
        note = gate_note(g, tol=tol)
        if note:
            _note(ax, note)
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
        Attention of each of the K token queries over the window (rows sum to 1);
        weights all within :data:`UNIFORM_TOL` of ``1/T`` get a note and the y axis
        ``[0, 2/T]``.
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
        note = attention_note(a)
        if note:
            ax.set_ylim(0.0, 2.0 / a.shape[-1])
            _note(ax, note)
    axes[-1].set_xlabel("time in window (s)")
    fig.suptitle("DTFE temporal attention pooling")
    return fig


def attention_note(attention: np.ndarray, *, tol: float = UNIFORM_TOL) -> str | None:
    """The "no structure" note of temporal attention ``(K, T)``, or None."""
    st = affinity_structure(attention, tol=tol)
    if not st["uniform"]:
        return None
    t = _np(attention).shape[-1]
    return (f"no structure: every weight within {100 * tol:g} % of uniform (1/T = 1/{t}; largest deviation "
            f"{100 * st['max_rel_dev']:.2f} %); y axis fixed at [0, 2/T]")


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


@dataclass(frozen=True)
class ExplainFigures:
    """What :func:`write_explain_figures` wrote.

    Attributes
    ----------
    paths : list of Path
        The PNG files.
    notes : list of str
        One line per learned quantity without structure (uniform affinity or
        attention, flat gate), naming the modality; also drawn on its figure.
    """

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def write_explain_figures(
    model,
    batch: Mapping[str, Tensor],
    out_dir: str | Path,
    *,
    mask: Tensor | None = None,
    n_lines: int = 25,
) -> ExplainFigures:
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
    ExplainFigures
        ``paths``: ``eeg_affinity_matrix.png``, ``eeg_affinity_scalp.png`` (if EEG
        present), ``<modality>_affinity_matrix.png`` for the other modalities,
        ``isi_gate.png``, ``temporal_attention.png``, ``cross_modal_attention.png``
        (attention fusion); ``notes``: the quantities without structure.
    """
    out_dir = Path(out_dir)
    info = model.explain(batch, mask)
    present = _np(info["present"])  # (B, M)
    names = list(info["modality_names"])
    paths: list[Path] = []
    notes: list[str] = []
    gates: dict = {}
    attention: dict = {}
    for mi, mod in enumerate(names):
        d = info["modalities"].get(mod, {})
        rows = present[:, mi]
        if "gate" in d:
            gates[mod] = (d["gate"], d["gate_hz"])
            note = gate_note(_np(d["gate"]))
            if note:
                notes.append(f"{mod} ISI gate: {note}")
        if "csi_affinity" in d and rows.any():
            a = _np(d["csi_affinity"])[rows].mean(axis=0)
            label = f"{mod} CSI channel affinity (mean of {int(rows.sum())} windows)"
            paths.append(_save(plot_channel_affinity(a, d["ch_names"], title=label),
                               out_dir / f"{mod}_affinity_matrix.png"))
            note = affinity_note(a)
            if note:
                notes.append(f"{mod} CSI channel affinity: {note}")
            if mod == "eeg":
                paths.append(_save(plot_scalp_connectivity(a, d["ch_names"], n_lines=n_lines),
                                   out_dir / "eeg_affinity_scalp.png"))
        if "temporal_attention" in d and rows.any():
            attention[mod] = _np(d["temporal_attention"])[rows].mean(axis=0)
            note = attention_note(attention[mod])
            if note:
                notes.append(f"{mod} temporal attention: {note}")
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
    log.info("wrote %d explain figures to %s (%d without structure)", len(paths), out_dir, len(notes))
    return ExplainFigures(paths, notes)


__all__ = [
    "FLAT_TOL",
    "UNIFORM_TOL",
    "ExplainFigures",
    "affinity_note",
    "affinity_structure",
    "attention_note",
    "gate_note",
    "gate_structure",
    "plot_channel_affinity",
    "plot_cross_modal",
    "plot_gates",
    "plot_scalp_connectivity",
    "plot_temporal_attention",
    "write_explain_figures",
]
