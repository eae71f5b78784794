"""The XGBoost baseline: per-window spectral features, one classifier per task.

Features of one window (``{modality: (C, T)}`` at ``sfreq``), from Welch's periodogram
(4-s Hann segments, 50 % overlap; 0.25 Hz resolution at 128 Hz):

* EEG: log band power of each channel in the bands of :data:`symaffect.spec.EEG_BANDS`
  (theta, alpha, beta, gamma) -> 4 per channel.
* Peripheral and EOG: per channel the mean, the standard deviation, the least-squares
  slope (per second) and the log band power in :data:`SLOW_BANDS` (0.25-1, 1-4, 4-20,
  20-45 Hz: respiration, heart rate / blinks, EMG) -> 7 per channel.

With all three modalities that is 32 x 4 + 8 x 7 = 184 features.

The peripheral block is chosen by ``peripheral_features`` (:data:`PERIPHERAL_FEATURE_SETS`;
in a run config ``model.kwargs.peripheral_features``, default ``"basic"``):

* ``"basic"``: the 6 x 7 statistics and band powers above (unchanged default).
* ``"neurokit"``: instead, the 8 NeuroKit2 features of
  :mod:`symaffect.data.physio_features` (heart rate, SDNN, RMSSD from the BVP pulse
  peaks; skin conductance level, SCR count and mean amplitude from GSR converted to
  conductance; breathing rate and depth), computed on the *recorded* signal (the
  dataset's normalisation is undone first) and NaN where a window cannot be analysed.
  EMG and temperature then give no features.
* ``"both"``: the basic 42 followed by the 8 NeuroKit2 columns.

The NeuroKit2 features need ``neurokit2`` (``pip install 'symaffect[live]'``). Every task gets its own
:class:`xgboost.XGBClassifier` (``tree_method="hist"``, ``n_jobs=2`` unless the run's
``model.kwargs`` say otherwise: on a busy 2-core machine ``n_jobs=1`` can be ten times
faster), early-stopped on the validation windows; the multi-label quadrant branch gets one binary classifier per label.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import welch

from symaffect._io import write_json
from symaffect.data import physio_features as pf
from symaffect.errors import ConfigError
from symaffect.extras import require
from symaffect.spec import EEG_BANDS, MODALITIES

log = logging.getLogger(__name__)

SLOW_BANDS: dict[str, tuple[float, float]] = {
    "slow": (0.25, 1.0),
    "cardiac": (1.0, 4.0),
    "mid": (4.0, 20.0),
    "high": (20.0, 45.0),
}
"""Bands of the peripheral and EOG band-power features (Hz)."""

DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "max_depth": 6,
    "learning_rate": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "early_stopping_rounds": 20,
    "n_jobs": 2,
}
"""XGBoost hyper-parameters unless the run's ``model.kwargs`` override them."""

PERIPHERAL_FEATURE_SETS: tuple[str, ...] = ("basic", "neurokit", "both")
"""Values of ``peripheral_features`` (module docstring)."""

FEATURE_KEYS: tuple[str, ...] = ("peripheral_features",)
"""Keys of ``model.kwargs`` that choose features, not XGBoost hyper-parameters."""


def peripheral_feature_set(params: Mapping[str, Any] | None) -> str:
    """The ``peripheral_features`` of a run's ``model.kwargs`` (default ``"basic"``), checked."""
    value = dict(params or {}).get("peripheral_features", "basic")
    if value not in PERIPHERAL_FEATURE_SETS:
        raise ConfigError(
            f"model.kwargs.peripheral_features: {value!r} is not one of {PERIPHERAL_FEATURE_SETS}"
        )
    return value


def feature_names(modalities: Sequence[str], *, peripheral_features: str = "basic") -> list[str]:
    """Names of the columns of :func:`window_features`, in order."""
    peripheral_feature_set({"peripheral_features": peripheral_features})
    names = []
    for m in modalities:
        spec = MODALITIES[m]
        if m == "eeg":
            names += [f"eeg:{c}:{b}" for c in spec.ch_names for b in EEG_BANDS]
            continue
        if m != "peripheral" or peripheral_features != "neurokit":
            stats = ["mean", "std", "slope", *SLOW_BANDS]
            names += [f"{m}:{c}:{s}" for c in spec.ch_names for s in stats]
        if m == "peripheral" and peripheral_features != "basic":
            names += pf.feature_names(spec.ch_names)
    return names


def window_features(
    x: Mapping[str, np.ndarray], *, sfreq: float, peripheral_features: str = "basic",
    raw_peripheral: np.ndarray | None = None,
) -> np.ndarray:
    """Spectral and statistical features of a batch of windows.

    Parameters
    ----------
    x : dict of str to ndarray, shape (N, C, T)
        Windows per modality (the keys' order fixes the column order).
    sfreq : float
        Sampling rate in Hz.
    peripheral_features : {"basic", "neurokit", "both"}
        The peripheral block (module docstring).
    raw_peripheral : ndarray, shape (N, 6, T), optional
        The peripheral windows in recorded units (GSR in Ohm), for the NeuroKit2
        features; default ``x["peripheral"]`` (right when ``x`` is not normalised).

    Returns
    -------
    ndarray, shape (N, n_features), float32
        Columns named by :func:`feature_names` ``(list(x), peripheral_features=...)``.
    """
    peripheral_feature_set({"peripheral_features": peripheral_features})
    cols = []
    for m, w in x.items():
        if m == "peripheral" and peripheral_features != "basic":
            raw = w if raw_peripheral is None else raw_peripheral
            nkf = pf.physio_features(raw, sfreq=sfreq, ch_names=MODALITIES[m].ch_names)
            if peripheral_features == "neurokit":
                cols.append(nkf)
                continue
            cols.append(window_features({m: w}, sfreq=sfreq))
            cols.append(nkf)
            continue
        w = np.asarray(w, dtype=np.float64)
        N, C, T = w.shape
        nperseg = min(T, int(4 * sfreq))
        freqs, psd = welch(w, fs=sfreq, nperseg=nperseg, axis=-1)  # (N, C, F)
        bands = EEG_BANDS if m == "eeg" else SLOW_BANDS
        bp = np.stack([_band_power(freqs, psd, lo, hi) for lo, hi in bands.values()], axis=-1)
        logbp = np.log(bp + 1e-12)  # (N, C, n_bands)
        if m == "eeg":
            cols.append(logbp.reshape(N, -1))
            continue
        t = (np.arange(T) - (T - 1) / 2) / sfreq  # centred time in s
        slope = (w @ t) / (t @ t)  # (N, C) least-squares slope per second
        stats = np.stack([w.mean(-1), w.std(-1), slope], axis=-1)  # (N, C, 3)
        cols.append(np.concatenate([stats, logbp], axis=-1).reshape(N, -1))
    return np.concatenate(cols, axis=1).astype(np.float32)


def _band_power(freqs: np.ndarray, psd: np.ndarray, lo: float, hi: float) -> np.ndarray:
    sel = (freqs >= lo) & (freqs < hi)
    if not sel.any():  # a band above Nyquist or below the resolution: nearest bin
        sel = np.zeros_like(freqs, dtype=bool)
        sel[int(np.argmin(np.abs(freqs - (lo + hi) / 2)))] = True
    df = freqs[1] - freqs[0] if freqs.size > 1 else 1.0
    return psd[..., sel].sum(axis=-1) * df


def dataset_features(ds, sfreq: float, chunk: int = 256, *, peripheral_features: str = "basic") -> np.ndarray:
    """:func:`window_features` of every window of a :class:`~symaffect.data.dataset.WindowDataset`,
    ``(n_windows, n_features)``, read ``chunk`` windows at a time.

    The NeuroKit2 features (``peripheral_features`` ``"neurokit"`` or ``"both"``) are
    computed on the recorded signal (:func:`symaffect.data.physio_features.raw_windows`),
    the others on the dataset's (normalised) windows."""
    peripheral_feature_set({"peripheral_features": peripheral_features})
    nk = peripheral_features != "basic" and "peripheral" in ds.modalities
    parts = []
    for b in range(0, len(ds), chunk):
        pos = np.arange(b, min(b + chunk, len(ds)))
        batch = ds.get_batch(pos)
        raw = pf.raw_windows(ds, pos) if nk else None
        parts.append(window_features({m: v.numpy() for m, v in batch["x"].items()}, sfreq=sfreq,
                                     peripheral_features=peripheral_features, raw_peripheral=raw))
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts)


class TaskClassifier:
    """One XGBoost classifier for one single-label task, robust to absent classes.

    XGBoost needs labels ``0..k-1``; the training labels' classes are encoded as such
    and decoded back. With a single training class it predicts that class.

    Parameters
    ----------
    n_classes : int
        Number of classes of the task (predictions lie in ``[0, n_classes)``).
    seed : int
    params : dict
        :class:`xgboost.XGBClassifier` keyword arguments.
    """

    def __init__(self, *, n_classes: int, seed: int = 0, params: Mapping[str, Any] | None = None):
        self.n_classes = int(n_classes)
        self.seed = int(seed)
        self.params = {k: v for k, v in {**DEFAULT_PARAMS, **dict(params or {})}.items() if k not in FEATURE_KEYS}
        self.classes_: np.ndarray | None = None
        self.model_: Any = None

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> TaskClassifier:
        """Fit on (X (n, F), y (n,)); early stopping on (X_val, y_val) when given."""
        xgb = require("xgboost", "the XGBoost baseline")

        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            return self
        enc = np.searchsorted(self.classes_, y)
        params = dict(self.params)
        eval_set = None
        if X_val is not None and y_val is not None:
            keep = np.isin(y_val, self.classes_)  # XGBoost cannot score unseen classes
            if keep.any():
                eval_set = [(X_val[keep], np.searchsorted(self.classes_, y_val[keep]))]
        if eval_set is None:
            params.pop("early_stopping_rounds", None)
        self.model_ = xgb.XGBClassifier(
            tree_method="hist", random_state=self.seed, **params
        )
        self.model_.fit(X, enc, eval_set=eval_set, verbose=False)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes) (zero for classes never trained on)."""
        out = np.zeros((X.shape[0], self.n_classes), dtype=np.float64)
        if self.classes_ is None:
            raise RuntimeError("fit first")
        if self.model_ is None:
            out[:, self.classes_[0]] = 1.0
            return out
        out[:, self.classes_] = self.model_.predict_proba(X)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted classes, shape (n,)."""
        return self.predict_proba(X).argmax(axis=1)

    def save(self, path: str | Path) -> None:
        """Write the booster (``.ubj``) and a JSON sidecar with the class encoding."""

        path = Path(path)
        meta = {"n_classes": self.n_classes, "classes": self.classes_.tolist(), "seed": self.seed}
        if self.model_ is not None:
            tmp = path.with_name(f".{path.name}.tmp.ubj")
            self.model_.save_model(tmp)
            tmp.replace(path)
        write_json(path.with_suffix(".json"), meta)

    @classmethod
    def load(cls, path: str | Path) -> TaskClassifier:
        """Inverse of :meth:`save`."""

        xgb = require("xgboost", "the XGBoost baseline")

        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        c = cls(n_classes=meta["n_classes"], seed=meta["seed"])
        c.classes_ = np.asarray(meta["classes"], dtype=np.int64)
        if c.classes_.size >= 2:
            c.model_ = xgb.XGBClassifier()
            c.model_.load_model(path)
        return c


def fit_tasks(
    X: np.ndarray,
    targets: Mapping[str, np.ndarray],
    X_val: np.ndarray | None,
    val_targets: Mapping[str, np.ndarray] | None,
    *,
    n_outputs: Mapping[str, int],
    multilabel: bool,
    seed: int,
    params: Mapping[str, Any] | None = None,
    features: str = "basic",
) -> dict[str, TaskClassifier | list[TaskClassifier]]:
    """One classifier per task (a list of binary ones per label when ``multilabel``).

    Parameters
    ----------
    X : ndarray, shape (n, F)
    targets : dict of str to ndarray, shape (n,) or (n, n_labels)
    X_val, val_targets : validation features and targets, or None
    n_outputs : dict of str to int
        Classes (or labels) per task.
    multilabel : bool
    seed : int
    params : dict, optional
        The run's ``model.kwargs``: XGBoost hyper-parameters and ``peripheral_features``.
    features : {"basic", "neurokit", "both"}
        The peripheral feature set ``X`` was computed with; must be the one ``params``
        ask for (a run that asks for NeuroKit2 features never silently gets others).

    Raises
    ------
    ConfigError
        ``params["peripheral_features"]`` differs from ``features``.
    """
    wanted = peripheral_feature_set(params)
    if wanted != peripheral_feature_set({"peripheral_features": features}):
        raise ConfigError(
            f"model.kwargs.peripheral_features is {wanted!r} but the features were computed as "
            f"{features!r}: pass peripheral_features={wanted!r} to dataset_features and "
            f"features={wanted!r} to fit_tasks"
        )
    out: dict[str, Any] = {}
    for task, y in targets.items():
        yv = None if val_targets is None else val_targets[task]
        if multilabel:
            out[task] = [
                TaskClassifier(n_classes=2, seed=seed, params=params).fit(
                    X, y[:, j].astype(np.int64), X_val, None if yv is None else yv[:, j].astype(np.int64)
                )
                for j in range(y.shape[1])
            ]
        else:
            out[task] = TaskClassifier(n_classes=n_outputs[task], seed=seed, params=params).fit(
                X, y, X_val, yv
            )
        log.info("xgboost: fitted task %s", task)
    return out


def predict_tasks(models: Mapping[str, Any], X: np.ndarray) -> dict[str, np.ndarray]:
    """Predictions per task: class ids (n,) or multi-hot (n, n_labels)."""
    out = {}
    for task, m in models.items():
        if isinstance(m, list):
            out[task] = np.stack([c.predict(X) for c in m], axis=1)
        else:
            out[task] = m.predict(X)
    return out


def save_tasks(models: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Save every classifier as ``<folder>/<task>[_<label>].ubj`` (+ ``.json``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for task, m in models.items():
        for j, c in enumerate(m if isinstance(m, list) else [m]):
            p = folder / (f"{task}_{j}.ubj" if isinstance(m, list) else f"{task}.ubj")
            c.save(p)
            paths.append(p)
    return paths


def load_tasks(folder: str | Path, rules: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`save_tasks` for tasks ``{name: LabelRule}``."""
    folder = Path(folder)
    out: dict[str, Any] = {}
    for task, rule in rules.items():
        if rule.kind == "multilabel":
            out[task] = [TaskClassifier.load(folder / f"{task}_{j}.ubj") for j in range(rule.n_classes)]
        else:
            out[task] = TaskClassifier.load(folder / f"{task}.ubj")
    return out
