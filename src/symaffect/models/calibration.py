"""Per-listener calibration: a few of the listener's own data make the model theirs.

A calibration changes only what sits after the fused embedding ``z = model.embed(x)``
(the encoders are never touched: with a handful of rated tracks they would overfit):

``"recentre"`` (unlabelled)
    ``z' = z - mean_listener(z) + mean_population(z)``: the listener's embeddings are moved
    onto the training population's, like re-estimating normalisation statistics on the
    new listener (adaptive batch norm, Euclidean alignment). Needs only unlabelled
    signal of the listener (a resting baseline, the first minutes, calibration tracks).
``"bias"`` (K rated tracks)
    ``recentre``, then the heads' biases refitted on the rated tracks, anchored at the
    base biases by an L2 penalty: the listener's own use of the rating scale (their
    offset and, for 9 classes, their spread), without touching the weights.
``"threshold"`` (K rated tracks)
    ``bias`` with the rated tracks weighted so that each rated class weighs the same: the
    biases move the decision boundary to the listener's own boundary between their
    classes, without learning how often the listener used each class (with few tracks
    drawn from a balanced set, that share misleads: the tracks left to predict lean the
    other way). A task whose rated tracks are all of one class keeps its heads (there is
    no boundary to place): it is only re-centred.
``"heads"`` (K rated tracks)
    ``recentre``, then the heads' weights and biases refitted, anchored at the base heads
    by a strong L2 penalty (a regularised linear probe on the frozen embedding).
``"pooled"`` (K rated tracks and the model's calibration pool)
    ``recentre``, then the heads' weights and biases refitted on the training population's
    embeddings (the *calibration pool* stored in ``model.pt``: every training listener
    re-centred on their own mean, like the new listener) together with the listener's
    rated tracks; the whole population weighs as much as :data:`POOL_WEIGHT` rated tracks.
    The population keeps the fit sane where the listener's tracks say little; the
    listener's tracks can turn a direction round (a reversed responder), which the
    anchored methods cannot.

Every window of one track is one track's evidence: the loss weights each track equally,
whatever its number of windows. With one rated track (one class seen) the anchors keep
the fit sane. The result is a :class:`Calibration` (plain numbers, saved as JSON) and a
:class:`CalibratedModel` that predicts like any model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from symaffect._io import atomic_write, read_json
from symaffect.errors import DataError
from symaffect.models.checkpoint import load_checkpoint

METHODS: tuple[str, ...] = ("none", "recentre", "bias", "threshold", "heads", "pooled")
"""Calibration methods, cheapest first (module docstring)."""
LABELLED: tuple[str, ...] = ("bias", "threshold", "heads", "pooled")
"""Methods that need rated tracks."""
FORMAT = "symaffect-calibration"
FORMAT_VERSION = 1
BIAS_PENALTY = 1.0
"""L2 weight pulling refitted biases to the base biases. The loss sums the tracks' mean
cross-entropies, so this prior weighs about as much as one rated track."""
HEADS_PENALTY = 10.0
"""L2 weight pulling refitted head weights and biases to the base heads: a prior worth
about ten rated tracks (the weights have D times more freedom than the biases)."""
POOL_WEIGHT = 8.0
"""Total weight of the calibration pool in a ``pooled`` fit, in rated tracks (each rated
track weighs 1). Chosen on the design set of docs/RESULTS.md among 8, 32 and 128 (K = 8:
the population and the listener weigh the same); checked on a second set."""
POOL_MAX_ITER = 50
"""L-BFGS iterations of a ``pooled`` fit. Unpenalised, a fit on tracks a direction
separates never converges (the weights grow without end): the cap bounds its time (design
set: 0.04 s mean, 0.06 s max per fit, against 0.3 s / 2.1 s with 200 iterations) at the
same accuracy (arousal 62.1 vs 61.8 %, valence 53.7 vs 53.9 % at K = 8)."""
POOL_WINDOWS = 2048
"""Most windows of the calibration pool stored in ``model.pt`` (evenly spaced)."""


@dataclass(frozen=True, eq=False)
class CalibrationPool:
    """The training population's embeddings for a ``pooled`` calibration.

    Parameters
    ----------
    z : ndarray, shape (n, D)
        Embeddings of training windows, every training listener re-centred on their own
        mean and moved onto the population mean (what a calibrated listener's look like).
    targets : dict of str to ndarray
        Their targets per task: class ids ``(n,)`` or multi-hot ``(n, C)``.
    """

    z: np.ndarray
    targets: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        if self.z.ndim != 2 or len(self.z) == 0 or not np.all(np.isfinite(self.z)):
            raise DataError("calibration_pool.z", "must be a non-empty finite (n, D) array")
        for t, y in self.targets.items():
            if len(y) != len(self.z):
                raise DataError(f"calibration_pool.targets.{t}", f"{len(y)} targets for {len(self.z)} windows")

    def to_extra(self) -> dict:
        """The form stored in ``model.pt``'s ``extra`` (tensors: loadable with weights_only)."""
        return {"z": torch.as_tensor(self.z, dtype=torch.float32),
                "targets": {t: torch.as_tensor(np.asarray(y)) for t, y in self.targets.items()}}

    @classmethod
    def from_extra(cls, d: Mapping, *, dim: int | None = None,
                   n_outputs: Mapping[str, int] | None = None) -> CalibrationPool:
        """Read and check a stored pool (``model.pt extra.calibration_pool``).

        Raises
        ------
        DataError
            Not an (n, D) array with one valid target per window and task.
        """
        where = "model.pt extra.calibration_pool"
        try:
            z = np.asarray(torch.as_tensor(d["z"]).double().numpy())
            targets = {str(t): np.asarray(torch.as_tensor(y).numpy()) for t, y in dict(d["targets"]).items()}
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise DataError(where, f"malformed ({type(e).__name__}: {e})") from None
        if dim is not None and (z.ndim != 2 or z.shape[1] != dim):
            raise DataError(where, f"embeddings of shape {z.shape}, the model's are {dim} wide")
        for t, n in (n_outputs or {}).items():
            y = targets.get(t)
            if y is None:
                raise DataError(where, f"no targets for task {t!r}")
            if y.ndim == 1 and (y.size and (y.min() < 0 or y.max() >= n)):
                raise DataError(where, f"targets of task {t!r} outside 0..{n - 1}")
            if y.ndim == 2 and y.shape[1] != n:
                raise DataError(where, f"targets of task {t!r} have {y.shape[1]} columns, the head {n}")
        return cls(z=z, targets=targets)


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration: per task, the heads ``W (C, D)``, ``b (C,)`` to use after the
    embedding shift ``shift (D,)`` (``z' = z - shift``).

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    k : int
        Number of rated tracks it was fitted on (0 for ``none`` / ``recentre``).
    shift : ndarray, shape (D,)
    heads : dict of str to (ndarray (C, D), ndarray (C,))
    listener : str or None
        Pseudonym of the listener, if known.
    tracks : tuple of str
        The rated tracks (trial numbers or segment names) it was fitted on.
    """

    method: str
    k: int
    shift: np.ndarray
    heads: Mapping[str, tuple[np.ndarray, np.ndarray]]
    listener: str | None = None
    tracks: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DataError("calibration.method", f"{self.method!r} is not one of {METHODS}")
        d = self.shift.shape
        if len(d) != 1 or not np.all(np.isfinite(self.shift)):
            raise DataError("calibration.shift", "must be a finite vector")
        for task, (w, b) in self.heads.items():
            if w.ndim != 2 or w.shape[1] != d[0] or b.shape != (w.shape[0],):
                raise DataError(f"calibration.heads.{task}", f"shapes {w.shape}, {b.shape} do not fit D = {d[0]}")
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise DataError(f"calibration.heads.{task}", "not finite")

    def logits(self, z: Tensor) -> dict[str, Tensor]:
        """Logits per task for embeddings ``z (B, D)``."""
        shift = torch.as_tensor(self.shift, dtype=z.dtype, device=z.device)
        zc = z - shift
        return {
            t: F.linear(zc, torch.as_tensor(w, dtype=z.dtype, device=z.device),
                        torch.as_tensor(b, dtype=z.dtype, device=z.device))
            for t, (w, b) in self.heads.items()
        }

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "k": int(self.k),
            "listener": self.listener,
            "tracks": list(self.tracks),
            "shift": self.shift.tolist(),
            "heads": {t: {"weight": w.tolist(), "bias": b.tolist()} for t, (w, b) in self.heads.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Calibration:
        try:
            heads = {
                str(t): (np.asarray(h["weight"], dtype=np.float64), np.asarray(h["bias"], dtype=np.float64))
                for t, h in dict(d["heads"]).items()
            }
            return cls(
                method=str(d["method"]), k=int(d["k"]), shift=np.asarray(d["shift"], dtype=np.float64),
                heads=heads, listener=None if d.get("listener") is None else str(d["listener"]),
                tracks=tuple(str(t) for t in d.get("tracks") or ()),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError("calibration", f"malformed ({type(e).__name__}: {e})") from None


def base_heads(model: nn.Module) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The model's task heads as ``{task: (W, b)}`` numpy arrays."""
    heads = getattr(model, "heads", None)
    if heads is None or not hasattr(heads, "layers"):
        raise DataError("model", "has no linear task heads (`heads.layers`); it cannot be calibrated")
    return {t: (layer.weight.detach().cpu().double().numpy(), layer.bias.detach().cpu().double().numpy())
            for t, layer in heads.layers.items()}


def stored_pool(model: nn.Module, extra: Mapping | None) -> CalibrationPool | None:
    """The calibration pool stored with ``model`` (``model.pt extra.calibration_pool``),
    checked against the model's heads; None when none is stored (checkpoints written
    before it was) or the model has no linear heads.

    Raises
    ------
    DataError
        A stored pool that does not fit the model's embedding or heads.
    """
    stored = (extra or {}).get("calibration_pool")
    heads = getattr(getattr(model, "heads", None), "layers", None)
    if stored is None or heads is None:
        return None
    return CalibrationPool.from_extra(stored, dim=next(iter(heads.values())).in_features,
                                      n_outputs={t: layer.out_features for t, layer in heads.items()})


def _track_weights(tracks: np.ndarray) -> np.ndarray:
    """Each track's windows share a total weight of 1 (the loss is a sum over tracks, so
    the evidence grows with the number of rated tracks, not of windows)."""
    _, inverse, counts = np.unique(tracks, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def _class_balanced(weights: np.ndarray, y: np.ndarray, multilabel: bool) -> np.ndarray:
    """``weights`` rescaled so that every class present weighs the same total (their sum
    is kept); multi-label targets are left as they are."""
    if multilabel or len(y) == 0:
        return weights
    classes = np.unique(y)
    total = weights.sum()
    out = weights.copy()
    for c in classes:
        m = y == c
        out[m] *= total / (len(classes) * weights[m].sum())
    return out


def _refit(
    z: np.ndarray, y: np.ndarray, w0: np.ndarray, b0: np.ndarray, weights: np.ndarray, *,
    multilabel: bool, fit_weight: bool, penalty: float,
    pool: tuple[np.ndarray, np.ndarray] | None = None, pool_weight: float = POOL_WEIGHT, max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the track-weighted cross-entropy of ``(W, b)`` (only ``b`` unless
    ``fit_weight``) plus ``penalty`` times the squared distance to ``(w0, b0)``, plus
    ``pool_weight`` times the mean cross-entropy over ``pool = (z, y)`` if given."""
    zt = torch.as_tensor(z, dtype=torch.float64)
    ydt = torch.float64 if multilabel else torch.long
    yt = torch.as_tensor(y, dtype=ydt)
    wt = torch.as_tensor(weights, dtype=torch.float64)
    if pool is not None:
        zp = torch.as_tensor(pool[0], dtype=torch.float64)
        yp = torch.as_tensor(pool[1], dtype=ydt)
        wp = torch.full((len(zp),), pool_weight / max(len(zp), 1), dtype=torch.float64)
        zt, yt, wt = torch.cat([zt, zp]), torch.cat([yt, yp]), torch.cat([wt, wp])
    W0, B0 = torch.as_tensor(w0, dtype=torch.float64), torch.as_tensor(b0, dtype=torch.float64)
    W = W0.clone().requires_grad_(fit_weight)
    B = B0.clone().requires_grad_(True)
    params = [B, W] if fit_weight else [B]
    scale = float(max(zt.pow(2).sum(dim=1).mean().item(), 1e-12))  # keeps the weight penalty unit-free
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = F.linear(zt, W, B)
        if multilabel:
            per = F.binary_cross_entropy_with_logits(logits, yt, reduction="none").mean(dim=1)
        else:
            per = F.cross_entropy(logits, yt, reduction="none")
        loss = (wt * per).sum() + penalty * (B - B0).pow(2).sum()
        if fit_weight:
            loss = loss + penalty * scale * (W - W0).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach().numpy(), B.detach().numpy()


def fit_calibration(
    method: str,
    heads: Mapping[str, tuple[np.ndarray, np.ndarray]],
    population_mean: np.ndarray,
    *,
    unlabelled: np.ndarray | None = None,
    z: np.ndarray | None = None,
    y: Mapping[str, np.ndarray] | None = None,
    tracks: Sequence | None = None,
    multilabel: bool = False,
    listener: str | None = None,
    bias_penalty: float = BIAS_PENALTY,
    heads_penalty: float = HEADS_PENALTY,
    pool: CalibrationPool | None = None,
    pool_weight: float = POOL_WEIGHT,
) -> Calibration:
    """Fit a calibration of ``method`` for one listener.

    Parameters
    ----------
    method : {"none", "recentre", "bias", "threshold", "heads", "pooled"}
    heads : dict of str to (W, b)
        The base model's heads (:func:`base_heads`).
    population_mean : ndarray, shape (D,)
        Mean embedding of the training population (``model.pt`` stores it).
    unlabelled : ndarray, shape (n, D), optional
        The listener's unlabelled embeddings for the re-centring (default: ``z``).
    z : ndarray, shape (n, D), optional
        Embeddings of the windows of the listener's rated tracks.
    y : dict of str to ndarray
        Their targets per task (class ids, or multi-hot for a multi-label task).
    tracks : sequence
        The rated track of each window (each track weighs the same in the fit).
    multilabel : bool
    listener : str, optional
    pool : CalibrationPool, optional
        The training population's re-centred embeddings (needed by ``pooled``).
    pool_weight : float
        Total weight of the pool in rated tracks (``pooled``).

    Raises
    ------
    DataError
        Unknown method, no data for the re-centring, no rated windows for a labelled
        method, or ``pooled`` without a pool.
    """
    if method not in METHODS:
        raise DataError("method", f"{method!r} is not one of {METHODS}")
    heads = {t: (np.asarray(w, np.float64), np.asarray(b, np.float64)) for t, (w, b) in heads.items()}
    pop = np.asarray(population_mean, dtype=np.float64)
    shift = np.zeros_like(pop)
    if method != "none":
        own = unlabelled if unlabelled is not None else z
        if own is None or len(own) == 0:
            raise DataError("calibration", "re-centring needs some of the listener's (unlabelled) signal")
        shift = np.asarray(own, dtype=np.float64).mean(axis=0) - pop
    k, names = 0, ()
    if method in LABELLED:
        if z is None or y is None or tracks is None or len(z) == 0:
            raise DataError("calibration", f"method {method!r} needs at least one rated track")
        if method == "pooled" and pool is None:
            raise DataError("calibration", "method 'pooled' needs the model's calibration pool (model.pt "
                                           "extra.calibration_pool; models trained before it was stored have "
                                           "none): retrain, or use 'threshold'")
        tracks = np.asarray([str(t) for t in tracks])
        names = tuple(dict.fromkeys(tracks.tolist()))
        k = len(names)
        zc = np.asarray(z, dtype=np.float64) - shift
        weights = _track_weights(tracks)
        refit = {}
        for t, (w, b) in heads.items():
            yt = np.asarray(y[t])
            if method == "threshold" and not multilabel and len(np.unique(yt)) < 2:
                refit[t] = (w, b)  # one class rated: there is no boundary to move, only the re-centring
                continue
            if method == "pooled":
                if t not in pool.targets:
                    raise DataError("calibration_pool", f"no targets for task {t!r}")
                refit[t] = _refit(zc, yt, w, b, weights, multilabel=multilabel, fit_weight=True, penalty=0.0,
                                  pool=(pool.z, pool.targets[t]), pool_weight=pool_weight, max_iter=POOL_MAX_ITER)
                continue
            refit[t] = _refit(zc, yt, w, b,
                              _class_balanced(weights, yt, multilabel) if method == "threshold" else weights,
                              multilabel=multilabel, fit_weight=method == "heads",
                              penalty=heads_penalty if method == "heads" else bias_penalty)
        heads = refit
    return Calibration(method=method, k=k, shift=shift, heads=heads, listener=listener, tracks=names)


class CalibratedModel(nn.Module):
    """A base model with a listener's calibration: ``logits = W (embed(x) - shift) + b``.

    It answers like the base model (``modalities``, ``n_times``, ``task_kind``, ...)."""

    def __init__(self, base: nn.Module, calibration: Calibration) -> None:
        super().__init__()
        if not hasattr(base, "embed"):
            raise DataError("model", "has no embed(); it cannot be calibrated")
        missing = set(base.n_outputs) - set(calibration.heads)
        if missing:
            raise DataError("calibration.heads", f"no head for task(s) {sorted(missing)}")
        for t, n in base.n_outputs.items():
            if calibration.heads[t][0].shape[0] != n:
                raise DataError(f"calibration.heads.{t}", f"{calibration.heads[t][0].shape[0]} outputs, the model has {n}")
        self.base = base
        self.calibration = calibration

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("base"), name)

    def forward(self, x: Mapping[str, Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        return self.calibration.logits(self.base.embed(x, mask))


def save_calibration(path: str | Path, calibration: Calibration, *, base: str | Path) -> Path:
    """Write ``calibration`` as JSON at ``path``, pointing to the base model ``base``
    (stored relative to the file's folder, so the pair moves together)."""
    path = Path(path)
    rel = Path(os.path.relpath(Path(base).resolve(), path.parent.resolve()))
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "base": rel.as_posix(), **calibration.to_dict()}
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=1)
    return path


def is_calibration_file(path: str | Path) -> bool:
    """True for a ``.json`` file written by :func:`save_calibration`."""
    path = Path(path)
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        return read_json(path, max_bytes=64 << 20).get("format") == FORMAT
    except DataError:
        return False


def load_calibrated(path: str | Path, *, map_location: str = "cpu") -> tuple[CalibratedModel, dict]:
    """Load a calibration file and its base model.

    Returns
    -------
    model : CalibratedModel
    info : dict
        The base checkpoint's info (``model_name``, ``kwargs``, ``extra``) plus
        ``calibration`` (the file's method, k, listener, tracks) and ``base``.
    """
    path = Path(path)
    doc = read_json(path, max_bytes=64 << 20)
    if doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
        raise DataError(path, f"not a {FORMAT} v{FORMAT_VERSION} file")
    base_rel = doc.get("base")
    if not isinstance(base_rel, str) or not base_rel:
        raise DataError(path, "no base model")
    base_path = (path.parent / base_rel).resolve()
    base, info = load_checkpoint(base_path, map_location=map_location)
    try:
        cal = Calibration.from_dict(doc)
    except DataError as e:
        raise DataError(path, str(e)) from None
    model = CalibratedModel(base, cal)
    info = dict(info)
    info["base"] = str(base_path)
    info["calibration"] = {"method": cal.method, "k": cal.k, "listener": cal.listener, "tracks": list(cal.tracks)}
    return model, info


def describe(cal: Calibration | None) -> str:
    """A short label: ``"base model"`` or ``"calibrated (bias, K = 8)"``."""
    if cal is None or cal.method == "none":
        return "base model"
    if cal.method == "recentre":
        return "calibrated (re-centred, no ratings)"
    return f"calibrated ({cal.method}, K = {cal.k})"


__all__ = [
    "Calibration",
    "CalibratedModel",
    "CalibrationPool",
    "METHODS",
    "base_heads",
    "describe",
    "fit_calibration",
    "is_calibration_file",
    "load_calibrated",
    "save_calibration",
    "stored_pool",
]
