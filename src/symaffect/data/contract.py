"""The preprocessing contract: what training did to the signal, written for the live path.

Training writes one :class:`PreprocessingContract` into every exported model
(``model.pt``, key ``extra["preprocess"]``); the live and offline prediction path
(:mod:`symaffect.stream`) reads it back and applies exactly the same steps, or refuses
with a one-line error naming the field it cannot honour. It replaces the untyped
``preprocess`` dict of earlier versions (which the live path partly ignored).

Fields and how the live path honours them:

``sfreq``
    Rate of the model's input (Hz). The live path resamples every input to it.
``window_samples``
    Window length in samples; must equal the model's ``n_times``.
``modalities``
    The model's modalities, in mask order.
``eeg_band``
    The EEG band-pass the training signal carried ((4, 45) Hz for DEAP's preprocessed
    files and for :mod:`symaffect.data.raw`'s default); the live path band-passes EEG to
    the same band. None: no EEG filter.
``baseline`` / ``baseline_seconds``
    Trial baseline handling of :class:`symaffect.data.windows.WindowConfig`. ``"drop"`` and
    ``"keep"`` need nothing live (a session has no trials); ``"subtract_mean"`` subtracts a
    per-trial pre-stimulus mean, which a live session does not have: refused.
``norm``
    ``"per_subject"``: each subject z-scored with its own statistics -> live: a running
    per-channel mean / std from the session start (the listener's own statistics, the
    closest causal equivalent). ``"train_subjects"``: one mean / std per channel from
    the training subjects -> live: exactly those numbers (``norm_mean`` / ``norm_std``,
    by channel name). ``"none"`` -> no z-score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from symaffect.data.normalize import NORM_MODES
from symaffect.data.windows import BASELINE_MODES
from symaffect.errors import DataError
from symaffect.spec import MODALITIES, SFREQ

CONTRACT_VERSION = 1
LIVE_BASELINES = ("drop", "keep")
"""Baseline modes the live path can honour."""


@dataclass(frozen=True)
class PreprocessingContract:
    """What training did to the signal (module docstring). Frozen; JSON round trip with
    :meth:`to_dict` / :meth:`from_dict`.

    Parameters
    ----------
    sfreq : float
    window_samples : int
    modalities : tuple of str
    eeg_band : (float, float) or None
    baseline : {"drop", "keep", "subtract_mean"}
    baseline_seconds : float
    norm : {"per_subject", "train_subjects", "none"}
    norm_mean, norm_std : dict of str to float
        Per channel name; given exactly when ``norm == "train_subjects"``.
    eval_stride_seconds : float or None
        Stride of the test windows training was scored on (informative).
    """

    sfreq: float = SFREQ
    window_samples: int = 1280
    modalities: tuple[str, ...] = ("eeg", "peripheral", "eog")
    eeg_band: tuple[float, float] | None = (4.0, 45.0)
    baseline: str = "drop"
    baseline_seconds: float = 3.0
    norm: str = "per_subject"
    norm_mean: Mapping[str, float] = field(default_factory=dict)
    norm_std: Mapping[str, float] = field(default_factory=dict)
    eval_stride_seconds: float | None = None
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        where = "preprocess"
        if self.version != CONTRACT_VERSION:
            raise DataError(f"{where}.version",
                            f"{self.version!r} is not {CONTRACT_VERSION} (made by another symaffect)")
        if not (isinstance(self.sfreq, (int, float)) and math.isfinite(self.sfreq) and self.sfreq > 0):
            raise DataError(f"{where}.sfreq", f"must be a positive number, got {self.sfreq!r}")
        if not (isinstance(self.window_samples, int) and self.window_samples >= 8):
            raise DataError(f"{where}.window_samples", f"must be an integer >= 8, got {self.window_samples!r}")
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if not self.modalities or unknown:
            raise DataError(f"{where}.modalities", f"unknown or empty: {list(self.modalities)}")
        if self.eeg_band is not None:
            lo, hi = self.eeg_band
            if not (0 <= lo < hi <= self.sfreq / 2 + 1e-9):
                raise DataError(f"{where}.eeg_band", f"must be 0 <= low < high <= sfreq/2, got {self.eeg_band}")
        if self.baseline not in BASELINE_MODES:
            raise DataError(f"{where}.baseline", f"{self.baseline!r} is not one of {BASELINE_MODES}")
        if self.norm not in NORM_MODES:
            raise DataError(f"{where}.norm", f"{self.norm!r} is not one of {NORM_MODES}")
        has_stats = bool(self.norm_mean) or bool(self.norm_std)
        if self.norm == "train_subjects":
            channels = [c for m in self.modalities for c in MODALITIES[m].ch_names]
            for name, stats in (("norm_mean", self.norm_mean), ("norm_std", self.norm_std)):
                missing = [c for c in channels if c not in stats]
                if missing:
                    raise DataError(f"{where}.{name}", f"no value for channel(s) {missing[:4]}")
                bad = [c for c in channels if not math.isfinite(float(stats[c]))]
                if bad:
                    raise DataError(f"{where}.{name}", f"not finite for channel(s) {bad[:4]}")
            if any(float(self.norm_std[c]) <= 0 for c in channels):
                raise DataError(f"{where}.norm_std", "must be > 0 for every channel")
        elif has_stats:
            raise DataError(f"{where}.norm_mean", f"statistics given but norm is {self.norm!r}")

    # ------------------------------------------------------------------ live use
    @property
    def live_norm(self) -> str:
        """How the live path normalises: ``"running"``, ``"fixed"`` or ``"none"``."""
        return {"per_subject": "running", "train_subjects": "fixed", "none": "none"}[self.norm]

    def check_live(self, *, n_times: int, modalities: Sequence[str]) -> None:
        """Refuse (DataError naming the field) what the live path cannot apply exactly.

        Parameters
        ----------
        n_times : int
            The model's window length in samples.
        modalities : sequence of str
            The model's modalities.
        """
        if abs(self.sfreq - SFREQ) > 1e-9:
            raise DataError("preprocess.sfreq", f"the live path produces {SFREQ:g} Hz; the model was trained at {self.sfreq:g} Hz")
        if self.window_samples != int(n_times):
            raise DataError("preprocess.window_samples", f"{self.window_samples} does not match the model's {n_times}")
        if tuple(modalities) != tuple(self.modalities):
            raise DataError("preprocess.modalities", f"{list(self.modalities)} do not match the model's {list(modalities)}")
        if self.baseline not in LIVE_BASELINES:
            raise DataError(
                "preprocess.baseline",
                f"{self.baseline!r} subtracts a per-trial pre-stimulus mean, which a live session has not; "
                f"retrain with data.window.baseline one of {LIVE_BASELINES}",
            )

    def channel_stats(self, ch_names: Sequence[str]) -> tuple[list[float], list[float]]:
        """``norm_mean`` / ``norm_std`` in the order of ``ch_names`` (``train_subjects`` only);
        a channel the model never saw gets mean 0, std 1 (it feeds no modality)."""
        if self.norm != "train_subjects":
            raise DataError("preprocess.norm", f"{self.norm!r} has no fixed statistics")
        mean = [float(self.norm_mean.get(c, 0.0)) for c in ch_names]
        std = [float(self.norm_std.get(c, 1.0)) for c in ch_names]
        return mean, std

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["eeg_band"] = list(self.eeg_band) if self.eeg_band is not None else None
        d["norm_mean"] = {k: float(v) for k, v in self.norm_mean.items()}
        d["norm_std"] = {k: float(v) for k, v in self.norm_std.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> PreprocessingContract:
        """Inverse of :meth:`to_dict`; also reads the untyped ``preprocess`` dict that
        models exported before the contract carried (``norm_mean`` as a list with
        ``ch_names``; no ``eeg_band``, which was always (4, 45))."""
        if not isinstance(d, Mapping):
            raise DataError("preprocess", f"expected a mapping, got {type(d).__name__}")
        d = dict(d)
        if "version" not in d:  # the untyped dict of earlier versions
            d = _from_legacy(d)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError("preprocess", f"unknown field(s) {unknown}")
        for key, convert in _CONVERT.items():
            if d.get(key) is not None:
                try:
                    d[key] = convert(d[key])
                except (TypeError, ValueError) as err:
                    raise DataError(f"preprocess.{key}", f"malformed: {err}") from None
        return cls(**d)


def _band(v) -> tuple[float, float]:
    lo, hi = v
    return float(lo), float(hi)


_CONVERT = {
    "modalities": lambda v: tuple(str(m) for m in v),
    "eeg_band": _band,
    "norm_mean": lambda v: {str(c): float(x) for c, x in dict(v).items()},
    "norm_std": lambda v: {str(c): float(x) for c, x in dict(v).items()},
    "sfreq": float,
    "baseline_seconds": float,
}
"""JSON value -> field value, per field that needs it (:meth:`PreprocessingContract.from_dict`)."""


def _from_legacy(d: dict) -> dict:
    out: dict = {}
    for k in ("sfreq", "window_samples", "baseline", "baseline_seconds", "eval_stride_seconds", "modalities"):
        if k in d:
            out[k] = d[k]
    if "norm" in d:
        out["norm"] = d["norm"]
    if "norm_mean" in d:
        names, mean, std = d.get("ch_names") or [], d["norm_mean"], d.get("norm_std") or []
        if not all(isinstance(v, (list, tuple)) for v in (names, mean, std)) or not len(names) == len(mean) == len(std):
            raise DataError("preprocess.norm_mean", "norm_mean, norm_std and ch_names must be lists of one length")
        out["norm_mean"] = dict(zip(names, mean))
        out["norm_std"] = dict(zip(names, std))
    out["eeg_band"] = d.get("eeg_band", (4.0, 45.0))
    return out
