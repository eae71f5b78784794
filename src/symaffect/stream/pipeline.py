"""From a trained run to predictions: one window, a whole recording, or a live session.

:class:`SessionPipeline` is the single code path of both ``symaffect predict`` (offline)
and ``symaffect stream`` (live): preprocess (causal) -> window buffer -> quality ->
model. Predictions fall every ``hop`` of *stream time* (sample counts at 128 Hz, never
the wall clock), the first once a full window is available, so offline and live give the
same hops.

Partial modalities
------------------
The model takes whole-modality masks only. A modality is **present iff at least one of
its channels is in the recording** (after the channel map); its missing channels are
filled with the mean of its present channels (after normalisation), the prediction is
flagged ``<modality>:partial`` and its confidence counts that modality by the fraction of
channels present. This makes the common therapy-room case (EDA + PPG + respiration, no
EMG or temperature) usable, at the price of an input the model never saw in training:
read such predictions as indicative. A modality with no channel is simply absent (never
zero-filled).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from symaffect._io import atomic_write, write_json, write_text
from symaffect.data.contract import PreprocessingContract
from symaffect.errors import DataError
from symaffect.extras import require
from symaffect.models.calibration import (
    CalibrationPool,
    stored_pool,
    CalibratedModel,
    Calibration,
    describe,
    is_calibration_file,
    load_calibrated,
)
from symaffect.models.checkpoint import load_checkpoint
from symaffect.run_folder import model_file
from symaffect.spec import MODALITIES, SFREQ
from symaffect.stream.prediction import Prediction, predictions_frame
from symaffect.stream.preprocess import StreamPreprocessor, WindowBuffer
from symaffect.stream.quality import QualityFlag, QualityThresholds, modality_flags
from symaffect.stream.recording import Recording

log = logging.getLogger(__name__)


def load_run(run: str | Path, *, device: str = "cpu"):
    """Load a trained model from a run folder, a checkpoint, or a listener's calibration
    file (``symaffect calibrate``; its base model is loaded with it).

    Returns
    -------
    model : torch.nn.Module
        In eval mode, on ``device``.
    info : dict
        ``model_name``, ``kwargs``, ``extra`` (``window_seconds``, ``preprocess``,
        ``tasks`` when the trainer wrote them), ``checkpoint``; for a calibration file
        also ``calibration`` (method, k, listener, tracks) and ``base``.
    """
    if is_calibration_file(run):
        model, info = load_calibrated(run, map_location=device)
        info["checkpoint"] = str(run)
        return model.to(device).eval(), info
    ckpt = model_file(run)
    model, info = load_checkpoint(ckpt, map_location=device)
    info = dict(info)
    info["checkpoint"] = str(ckpt)
    return model.to(device).eval(), info


class Predictor:
    """A trained model ready to predict single windows.

    Parameters
    ----------
    run : str or Path
        Run folder (``model.pt`` inside) or checkpoint file.
    device : str
        Torch device.
    num_threads : int or None
        If given, ``torch.set_num_threads`` (process-wide) -- 1 for many concurrent
        sessions on few cores.

    Attributes
    ----------
    contract : PreprocessingContract
        What training did to the signal (``extra["preprocess"]`` of the checkpoint; for a
        checkpoint without one, the defaults with the model's window and modalities).
    calibration : Calibration or None
        The listener calibration the logits come from (None: the base heads). A run given
        as a calibration file starts with the file's; :meth:`set_calibration` switches.
    calibration_id : int or None
        The session store's id of :attr:`calibration` (None for none or a file's).
    base_path : Path
        The base model's checkpoint (for a calibration file, the model it points to).

    Notes
    -----
    Every prediction is ``heads(z)`` (or the calibration's logits of ``z``) of the fused
    embedding ``z = model.embed(x)`` -- the same numbers as ``model(x)`` -- and carries
    ``z`` and the label of the model that produced it (:attr:`model_label`).

    Raises
    ------
    DataError
        The contract is malformed, or asks for what the live path cannot apply exactly
        (:meth:`PreprocessingContract.check_live`), naming the field.
    """

    def __init__(self, run: str | Path, *, device: str = "cpu", num_threads: int | None = None):
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.device = device
        self.model, self.info = load_run(run, device=device)
        self.run = str(run)
        self.name: str = self.info["model_name"]
        self.modalities: tuple[str, ...] = tuple(self.model.modalities)
        self.n_times: int = int(self.model.n_times)
        self.task_kind: str = getattr(self.model, "task_kind", "multiclass")
        extra = self.info.get("extra") or {}
        preprocess = extra.get("preprocess")
        if preprocess:
            self.contract = PreprocessingContract.from_dict(preprocess)
        else:  # saved without one (save_checkpoint by hand): the defaults, at the model's shape
            self.contract = PreprocessingContract(window_samples=self.n_times, modalities=self.modalities)
        self.contract.check_live(n_times=self.n_times, modalities=self.modalities)
        ws = extra.get("window_seconds")
        if ws is not None and abs(float(ws) * SFREQ - self.n_times) > 0.5:
            log.warning("checkpoint window_seconds=%s but model n_times=%d; using n_times", ws, self.n_times)
        self.base_path = Path(self.info.get("base") or self.info["checkpoint"]).resolve()
        heads = getattr(self.model, "heads", None)
        self.can_embed: bool = hasattr(self.model, "embed") and hasattr(heads, "layers")
        self._own_calibration: Calibration | None = (
            self.model.calibration if isinstance(self.model, CalibratedModel) else None
        )
        self.calibration: Calibration | None = self._own_calibration
        self.calibration_id: int | None = None
        self._digest: str | None = None

    @property
    def window_seconds(self) -> float:
        return self.n_times / SFREQ

    def share(self) -> Predictor:
        """A predictor for another session on the same model: the loaded model, its
        contract and checkpoint info are shared (one copy in memory), the calibration is
        its own (:meth:`set_calibration` on one does not change the other)."""
        return copy.copy(self)

    @property
    def model_label(self) -> str:
        """Which model the next prediction comes from: ``"base model"`` or
        ``"calibrated (bias, K = 3)"`` (:func:`~symaffect.models.calibration.describe`)."""
        return describe(self.calibration)

    @property
    def task_set(self) -> str | None:
        """The model's task set (a key of :data:`symaffect.spec.TASK_SETS`)."""
        return getattr(self.model, "task_set", None) or (self.info.get("extra") or {}).get("task_set")

    @property
    def embedding_dim(self) -> int | None:
        """Width D of the fused embedding (None for a model without one)."""
        if not self.can_embed:
            return None
        return int(next(iter(self.model.heads.layers.values())).in_features)

    @property
    def calibration_pool(self) -> CalibrationPool | None:
        """The training population's re-centred embeddings a ``pooled`` calibration refits
        on (``extra["calibration_pool"]`` of ``model.pt``); None for checkpoints written
        before it was stored.

        Raises
        ------
        DataError
            A stored pool that does not fit the model's embedding or heads.
        """
        return stored_pool(self.model, self.info.get("extra")) if self.can_embed else None

    @property
    def population_mean(self) -> np.ndarray | None:
        """The training population's mean embedding, shape (D,) (``extra["embedding_mean"]``
        of ``model.pt``); None for checkpoints written before it was stored.

        Raises
        ------
        DataError
            A stored mean that is not a finite vector of length D.
        """
        mean = (self.info.get("extra") or {}).get("embedding_mean")
        if mean is None:
            return None
        try:
            arr = np.asarray(mean, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("model.pt extra.embedding_mean", "is not a list of numbers") from None
        if arr.shape != (self.embedding_dim,) or not np.all(np.isfinite(arr)):
            raise DataError("model.pt extra.embedding_mean",
                            f"must be {self.embedding_dim} finite numbers, got shape {arr.shape}")
        return arr

    @property
    def digest(self) -> str:
        """SHA-256 of the base model's checkpoint file (computed once)."""
        if self._digest is None:
            h = hashlib.sha256()
            with open(self.base_path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self._digest = h.hexdigest()
        return self._digest

    def check_calibration(self, calibration: Calibration) -> None:
        """Raise a one-line DataError unless ``calibration`` fits this model (same tasks,
        outputs and embedding width)."""
        if not self.can_embed:
            raise DataError("model", f"{self.name} has no fused embedding and linear heads; it cannot be calibrated")
        layers = self.model.heads.layers
        if set(calibration.heads) != set(layers):
            raise DataError("calibration", f"its tasks {sorted(calibration.heads)} are not the model's {sorted(layers)}")
        for task, layer in layers.items():
            w, _ = calibration.heads[task]
            if w.shape != (layer.out_features, layer.in_features):
                raise DataError("calibration", f"head {task!r} has shape {w.shape}, the model's is "
                                f"{(layer.out_features, layer.in_features)}")

    def set_calibration(self, calibration: Calibration | None, *, calibration_id: int | None = None) -> None:
        """Predict with ``calibration`` from now on (None: back to the run's own model).

        Parameters
        ----------
        calibration : Calibration or None
        calibration_id : int, optional
            Its id in the session store (stored with every prediction it makes).

        Raises
        ------
        DataError
            The calibration does not fit this model (:meth:`check_calibration`); the
            predictor is left as it was.
        """
        if calibration is None:
            self.calibration, self.calibration_id = self._own_calibration, None
        else:
            self.check_calibration(calibration)
            self.calibration, self.calibration_id = calibration, calibration_id
        log.info("predictor %s: now %s", self.name, self.model_label)

    def predict_window(
        self,
        x: dict[str, np.ndarray],
        *,
        t: float = 0.0,
        flags: Sequence[str] = (),
        coverage: float | None = None,
    ) -> Prediction:
        """Predict one window.

        Parameters
        ----------
        x : dict of str to ndarray, shape (C, T)
            Normalised windows of the present modalities, channels in
            ``MODALITIES[m].ch_names`` order, ``T = n_times``.
        t : float
            Stream time of the window's last sample (seconds).
        flags : sequence of str
        coverage : float or None
            See :meth:`Prediction.from_probabilities`.

        Returns
        -------
        Prediction
            With the window's fused embedding (``embedding``, shape (D,)) and the model
            that produced it (``model_label``, ``calibration_id``).
        """
        return predict_windows([(self, WindowInput(x, t, tuple(flags), coverage))])[0]

    def _check_window(self, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``x`` as float32 arrays of the model's shapes (a one-line DataError otherwise)."""
        if not x:
            raise DataError("window", "no modality given")
        out = {}
        for m, arr in x.items():
            if m not in self.modalities:
                raise DataError("window", f"modality {m!r} not accepted by the model ({self.modalities})")
            arr = np.asarray(arr, dtype=np.float32)
            want = (MODALITIES[m].n_chans, self.n_times)
            if arr.shape != want:
                raise DataError("window", f"{m}: expected shape {want}, got {arr.shape}")
            out[m] = arr
        return out


@dataclass(frozen=True)
class WindowInput:
    """One window ready for the model (what :meth:`Predictor.predict_window` takes).

    Attributes
    ----------
    x : dict of str to ndarray, shape (C, T)
        The present modalities.
    t : float
        Stream time of the window's last sample (s).
    flags : tuple of str
    coverage : float or None
    """

    x: dict[str, np.ndarray]
    t: float
    flags: tuple[str, ...] = ()
    coverage: float | None = None


def predict_windows(items: Sequence[tuple[Predictor, WindowInput]]) -> list[Prediction]:
    """Predict many windows in one forward pass (micro-batching across sessions).

    Every predictor must hold the same model (:meth:`Predictor.share`); each keeps its
    own calibration. The windows are stacked per modality; a window without a modality
    gets zeros there and ``False`` in the model's modality mask (the model replaces a
    masked modality's tokens, so the result equals a call without that modality). The
    fused embeddings of the batch go through the base heads at once, and through each
    session's calibration for the calibrated ones.

    Parameters
    ----------
    items : sequence of (Predictor, WindowInput)

    Returns
    -------
    list of Prediction
        In the order of ``items``.

    Raises
    ------
    DataError
        A window of the wrong shape or modality, or predictors of different models.
    """
    if not items:
        return []
    first = items[0][0]
    model = first.model
    if any(p.model is not model for p, _ in items):
        raise DataError("batch", "windows of different models cannot share a forward pass")
    xs = [p._check_window(w.x) for p, w in items]
    n = len(items)
    mods = [m for m in first.modalities if any(m in x for x in xs)]
    batch = {}
    for m in mods:
        shape = (MODALITIES[m].n_chans, first.n_times)
        arr = np.stack([x[m] if m in x else np.zeros(shape, np.float32) for x in xs])
        batch[m] = torch.from_numpy(arr).to(first.device)
    mask = None
    if n > 1:
        mask = torch.tensor([[m in x for m in first.modalities] for x in xs], device=first.device)
    with torch.inference_mode():
        if first.can_embed:
            z = model.embed(batch, mask) if mask is not None else model.embed(batch)  # (n, D)
            outs: list[dict] = [{} for _ in range(n)]
            base = [i for i, (p, _) in enumerate(items) if p.calibration is None]
            if base:
                logits = model.heads(z[base])
                for j, i in enumerate(base):
                    outs[i] = {task: v[j] for task, v in logits.items()}
            for i, (p, _) in enumerate(items):
                if p.calibration is not None:
                    outs[i] = {task: v[0] for task, v in p.calibration.logits(z[i:i + 1]).items()}
            embeddings = z.float().cpu().numpy()
        else:
            logits = model(batch, mask) if mask is not None else model(batch)
            outs = [{task: v[i] for task, v in logits.items()} for i in range(n)]
            embeddings = None
    preds = []
    for i, (p, w) in enumerate(items):
        probs = {}
        for task, lg in outs[i].items():
            lg = lg.float()
            pr = torch.sigmoid(lg) if p.task_kind == "multilabel" else torch.softmax(lg, dim=-1)
            probs[task] = pr.cpu().numpy().tolist()
        used = tuple(m for m in p.modalities if m in xs[i])
        preds.append(Prediction.from_probabilities(
            w.t, probs, modalities_used=used, n_modalities=len(p.modalities), flags=w.flags, coverage=w.coverage,
            multilabel=p.task_kind == "multilabel", embedding=None if embeddings is None else embeddings[i],
            model_label=p.model_label, calibration_id=p.calibration_id,
        ))
    return preds


@dataclass
class HopResult:
    """What one hop produced.

    Attributes
    ----------
    t : float
        Stream time of the window's last sample (s).
    prediction : Prediction or None
        None when every modality was dropped.
    quality : list of QualityFlag
        Flags that dropped a modality, and ``no_prediction`` (for the session store).
    raw, missing : ndarray, shape (C, T), or None
        The window's unfiltered signal and missing-sample codes (the live session
        computes vital signs and signal strips from them).
    """

    t: float
    prediction: Prediction | None
    quality: list[QualityFlag] = field(default_factory=list)
    raw: np.ndarray | None = field(default=None, repr=False, compare=False)
    missing: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass
class PendingHop:
    """A hop whose window is ready but not yet predicted (:meth:`SessionPipeline.push_pending`).

    Attributes
    ----------
    t : float
    window : WindowInput or None
        What to predict; None when every modality was dropped (the hop has no prediction).
    quality : list of QualityFlag
        As :attr:`HopResult.quality`.
    """

    t: float
    window: WindowInput | None
    quality: list[QualityFlag] = field(default_factory=list)
    raw: np.ndarray | None = field(default=None, repr=False)
    missing: np.ndarray | None = field(default=None, repr=False)

    def finish(self, prediction: Prediction | None) -> HopResult:
        """The hop's result, with the prediction of :attr:`window` (None without one)."""
        return HopResult(self.t, prediction, self.quality, self.raw, self.missing)


class SessionPipeline:
    """Preprocess, buffer, check and predict every hop of stream time.

    Parameters
    ----------
    predictor : Predictor
    ch_names : sequence of str
        DEAP channel names of the input rows (a :class:`Recording`'s ``ch_names``).
    sfreq : float
        Input rate (Hz).
    hop : float
        Seconds of stream time between predictions (a multiple of 1/128 s).
    window : float or None
        Window length in seconds; must equal the model's (default: the model's).
    thresholds : QualityThresholds
    eeg_band : (float, float) or None or "auto"
        EEG band-pass; "auto" takes the contract's ``eeg_band`` (the band of the training
        signal).
    before_hop : callable or None
        Called with the hop's stream time just before each hop is predicted (the live
        session switches its model there).

    Notes
    -----
    Normalisation follows the predictor's contract
    (:attr:`PreprocessingContract.live_norm`): ``"running"`` z-scores with running
    statistics from the session start, ``"fixed"`` with the training subjects' mean and
    std of each channel, ``"none"`` not at all.
    """

    def __init__(
        self,
        predictor: Predictor,
        ch_names: Sequence[str],
        sfreq: float,
        *,
        hop: float = 1.0,
        window: float | None = None,
        thresholds: QualityThresholds = QualityThresholds(),
        eeg_band: tuple[float, float] | None | str = "auto",
        before_hop: Callable[[float], None] | None = None,
    ):
        self.predictor = predictor
        self.before_hop = before_hop
        self.ch_names = tuple(ch_names)
        n_times = predictor.n_times
        if window is not None and abs(window * SFREQ - n_times) > 0.5:
            raise DataError("window", f"{window} s does not match the model's {n_times / SFREQ:g} s")
        self.hop_samples = int(round(hop * SFREQ))
        if self.hop_samples < 1 or abs(self.hop_samples - hop * SFREQ) > 1e-6:
            raise DataError("hop", f"must be a positive multiple of 1/128 s, got {hop}")
        contract = predictor.contract
        if eeg_band == "auto":
            eeg_band = contract.eeg_band
        self.pre = StreamPreprocessor(self.ch_names, sfreq, eeg_band=eeg_band)
        mean = std = None
        if contract.live_norm == "fixed":
            mean, std = contract.channel_stats(self.ch_names)
        self.buf = WindowBuffer(len(self.ch_names), n_times, norm=contract.live_norm, mean=mean, std=std)
        self.thresholds = thresholds
        self._next = n_times
        # channel rows of each model modality; missing channels and coverage
        self.groups: dict[str, list[int]] = {}
        self.fill: dict[str, tuple[list[int], list[int]]] = {}  # m -> (spec slots, rows)
        self.partial: dict[str, list[str]] = {}
        for m in predictor.modalities:
            spec = MODALITIES[m]
            slots = [i for i, c in enumerate(spec.ch_names) if c in self.ch_names]
            if not slots:
                continue
            rows = [self.ch_names.index(spec.ch_names[i]) for i in slots]
            self.groups[m] = rows
            self.fill[m] = (slots, rows)
            missing = [c for c in spec.ch_names if c not in self.ch_names]
            if missing:
                self.partial[m] = missing
        self.absent = [m for m in predictor.modalities if m not in self.groups]
        if not self.groups:
            raise DataError(
                "channels",
                f"none of {list(self.ch_names)[:8]} belongs to the model's modalities {predictor.modalities}",
            )
        for m, miss in self.partial.items():
            log.info("modality %s: %d channel(s) missing (%s): filled with the mean of the present ones",
                     m, len(miss), ", ".join(miss))

    @property
    def t(self) -> float:
        """Stream time of the samples processed so far (s)."""
        return self.buf.n_total / SFREQ

    def push(self, x: np.ndarray, missing: np.ndarray | None = None) -> list[HopResult]:
        """Feed input samples (C, n) at the input rate; return the hops that completed
        (each predicted on its own)."""
        return [h.finish(None if h.window is None else self.predictor.predict_window(
                    h.window.x, t=h.window.t, flags=h.window.flags, coverage=h.window.coverage))
                for h in self.push_pending(x, missing)]

    def push_pending(self, x: np.ndarray, missing: np.ndarray | None = None) -> list[PendingHop]:
        """Feed input samples (C, n); return the hops that completed, not yet predicted
        (a caller batches them across sessions: :func:`predict_windows`)."""
        chunk = self.pre.push(x, missing)
        results: list[PendingHop] = []
        while chunk.n_times:
            need = self._next - self.buf.n_total
            if chunk.n_times < need:
                self.buf.append(chunk)
                break
            head, chunk = chunk.split(need)
            self.buf.append(head)
            results.append(self._hop())
            self._next += self.hop_samples
        return results

    def _hop(self) -> PendingHop:
        t = self.buf.n_total / SFREQ
        if self.before_hop is not None:
            self.before_hop(t)
        z, raw, miss = self.buf.window()
        flags = modality_flags(raw, miss, self.ch_names, self.groups, thresholds=self.thresholds)
        dropped = {f.modality for f in flags if f.drops}
        use = [m for m in self.predictor.modalities if m in self.groups and m not in dropped]
        info_flags = [QualityFlag(m, "partial", "missing " + ", ".join(c)) for m, c in self.partial.items()]
        if not use:
            why = "; ".join(f"{f.modality} {f.flag}" for f in flags if f.drops) or "no usable modality"
            q = [f for f in flags if f.drops] + [QualityFlag("all", "no_prediction", why)]
            return PendingHop(t, None, q, raw, miss)
        x = {}
        coverage = 0.0
        for m in use:
            spec = MODALITIES[m]
            slots, rows = self.fill[m]
            arr = np.empty((spec.n_chans, z.shape[1]), dtype=np.float32)
            present = z[rows]
            if len(slots) < spec.n_chans:
                arr[:] = present.mean(axis=0, keepdims=True)
            arr[slots] = present
            x[m] = arr
            coverage += len(slots) / spec.n_chans
        coverage /= len(self.predictor.modalities)
        all_flags = [str(f) for f in flags] + [str(f) for f in info_flags if f.modality in use]
        return PendingHop(t, WindowInput(x, t, tuple(all_flags), coverage), [f for f in flags if f.drops], raw, miss)


def run_recording(
    predictor: Predictor | str | Path,
    recording: Recording,
    *,
    hop: float = 1.0,
    window: float | None = None,
    chunk_seconds: float | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> list[HopResult]:
    """Every hop of a recording (predictions and quality), offline.

    Parameters
    ----------
    predictor : Predictor or path
    recording : Recording
    hop, window : float
    chunk_seconds : float or None
        Feed the recording in chunks of this length (the result does not depend on it;
        None = one piece).

    Raises
    ------
    DataError
        The recording is shorter than one model window (no hop at all).
    """
    if not isinstance(predictor, Predictor):
        predictor = Predictor(predictor)
    pipe = SessionPipeline(predictor, recording.ch_names, recording.sfreq, hop=hop, window=window,
                           thresholds=thresholds)
    n = recording.n_samples
    step = n if chunk_seconds is None else max(1, int(round(chunk_seconds * recording.sfreq)))
    out: list[HopResult] = []
    for i in range(0, n, step):
        out.extend(pipe.push(recording.data[:, i:i + step]))
    if not out:  # never an empty result without a reason
        raise DataError(
            recording.source or "recording",
            f"{recording.duration:.2f} s of signal is shorter than one {predictor.window_seconds:g}-s model "
            "window: nothing to predict",
        )
    return out


def predict_recording(
    run: Predictor | str | Path,
    recording: Recording,
    hop: float = 1.0,
    window: float | None = None,
    **kwargs,
) -> list[Prediction]:
    """One prediction per hop of a recording (hops where every modality was dropped are
    left out; see :func:`run_recording` for those). The first is at ``t = window``."""
    return [h.prediction for h in run_recording(run, recording, hop=hop, window=window, **kwargs)
            if h.prediction is not None]


CSV_COLUMNS = ("t", "valence", "arousal", "liking", "quadrant", "confidence", "modalities_used", "flags")


def predictions_table(preds: Sequence[Prediction]) -> list[dict]:
    """Flat rows (CSV columns plus ``p_<task>_<k>`` probabilities)."""
    rows = []
    for p in preds:
        row = {
            "t": round(p.t, 6),
            "valence": p.valence,
            "arousal": p.arousal,
            "liking": p.liking,
            "quadrant": p.quadrant,
            "confidence": round(p.confidence, 6),
            "modalities_used": "+".join(p.modalities_used),
            "flags": ";".join(p.flags),
        }
        for task, probs in p.probabilities.items():
            for k, v in enumerate(probs, start=1):
                row[f"p_{task}_{k}"] = round(v, 6)
        rows.append(row)
    return rows


OUT_SUFFIXES = (".csv", ".json", ".parquet")
"""What :func:`write_predictions` writes."""


def write_predictions(path: str | Path, preds: Sequence[Prediction]) -> Path:
    """Write predictions atomically, as the suffix says: ``.csv`` (one row per hop,
    :func:`predictions_table`), ``.json`` (a list of :meth:`Prediction.to_dict`) or
    ``.parquet`` (:func:`predictions_frame`, full precision; needs pyarrow).

    Raises
    ------
    DataError
        Another suffix (the message names the file and the suffixes).
    MissingExtra
        ``.parquet`` without pandas or pyarrow.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUT_SUFFIXES:
        raise DataError(path, "output must end in .csv, .json or .parquet")
    if suffix == ".parquet":
        require("pyarrow", "writing .parquet")
        frame = predictions_frame(preds)
        with atomic_write(path, "wb") as f:
            frame.to_parquet(f, index=False)
    elif suffix == ".json":
        write_json(path, [p.to_dict() for p in preds])
    elif path.suffix.lower() == ".csv":
        rows = predictions_table(preds)
        cols = list(CSV_COLUMNS) + sorted({k for r in rows for k in r} - set(CSV_COLUMNS))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        write_text(path, buf.getvalue())
    return path


def summary(preds: Sequence[Prediction]) -> dict:
    """Means and quadrant shares of a list of predictions (for the CLI table)."""
    if not preds:
        return {"n": 0}
    out: dict = {"n": len(preds), "t_first": preds[0].t, "t_last": preds[-1].t}
    for task in ("valence", "arousal", "liking"):
        vals = [p.expected[task] for p in preds if task in p.expected]
        if vals:
            out[task] = {"mean": float(np.mean(vals)), "min": float(np.min(vals)), "max": float(np.max(vals))}
    quads = [p.quadrant for p in preds if p.quadrant]
    out["quadrants"] = {q: quads.count(q) / len(preds) for q in sorted(set(quads))}
    out["confidence"] = float(np.mean([p.confidence for p in preds]))
    out["flagged"] = sum(1 for p in preds if p.flags)
    return out

