"""Capability probes: small synthetic tasks that each part of a model must solve.

Each probe draws labelled windows whose label lives in one known property of the
signal, trains a registered model on them with the project's training recipe (the same
loss, Adam, warm-up + cosine schedule and clipping as :mod:`symaffect.train`), and
scores held-out windows drawn from the same generator. A model that cannot solve a
probe cannot use that property of real data either.

=============  ==========================  ==============================================
probe          modalities given            what the label is
=============  ==========================  ==============================================
frequency      peripheral                  the rate of a pulse train in the BVP channel
                                           (1.0 vs 1.25 Hz), random amplitude and phase;
                                           the other 5 channels are noise
band_power     eeg                         more alpha (10 Hz) than beta (20 Hz) power in
                                           5 posterior channels, or the reverse, on 1/f
                                           noise (what eq. 2's instance norm leaves)
cross_channel  peripheral                  the sign of the correlation between two
                                           channels (what CSI claims to capture)
fusion         eeg, peripheral, eog        the frequency probe's label in the peripheral
                                           modality; EEG and EOG are pure noise
multi_task     eeg, peripheral, eog        three heads, three effects: valence from EEG
                                           band power, arousal from the peripheral pulse
                                           rate, liking from the sign of the EOG
                                           channels' correlation
=============  ==========================  ==============================================

Usage::

    from symaffect.eval.probes import run_probe
    res = run_probe("band_power", "symaffect", seed=0)
    res.test_acc  # {"arousal": 1.0}

or ``symaffect probe --model symaffect --seeds 0,1,2``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from symaffect.models.losses import MultiTaskLoss
from symaffect.models.registry import build_model
from symaffect.spec import MODALITIES
from symaffect.train.config import quick_model_kwargs
from symaffect.train.recipe import make_optimizer, make_scheduler

SFREQ = 128.0
PULSE_CHANNEL = MODALITIES["peripheral"].ch_names.index("BVP")
BAND_CHANNELS = tuple(MODALITIES["eeg"].ch_names.index(c) for c in ("P3", "PO3", "O1", "Oz", "O2"))
# 9-class heads of the multi-task probe see two ratings: class 2 (rating 3) and 6 (rating 7)
LOW_HIGH = (2, 6)


# --- signal pieces ------------------------------------------------------------------------
def _pink(rng: np.random.Generator, n: int, c: int, t: int) -> np.ndarray:
    """1/f noise, unit variance per row: (n, c, t)."""
    spec = np.fft.rfft(rng.standard_normal((n, c, t)), axis=-1)
    f = np.fft.rfftfreq(t, 1.0 / SFREQ)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f), n=t, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def _narrow(rng: np.random.Generator, n: int, t: int, f0: float, bw: float = 1.0) -> np.ndarray:
    """Narrow-band Gaussian noise around ``f0`` Hz, unit variance per row: (n, t)."""
    spec = np.fft.rfft(rng.standard_normal((n, t)), axis=-1)
    f = np.fft.rfftfreq(t, 1.0 / SFREQ)
    x = np.fft.irfft(spec * np.exp(-0.5 * ((f - f0) / bw) ** 2), n=t, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def _noise(rng: np.random.Generator, modality: str, n: int, t: int) -> np.ndarray:
    c = MODALITIES[modality].n_chans
    return (_pink(rng, n, c, t) if modality == "eeg" else rng.standard_normal((n, c, t))).astype(
        np.float32
    )


def _add_band_effect(rng, x: np.ndarray, y: np.ndarray) -> None:
    """Alpha and beta components weighted 0.6 / 0.3 (y = 1) or 0.3 / 0.6 (y = 0)."""
    n, _, t = x.shape
    alpha, beta = _narrow(rng, n, t, 10.0), _narrow(rng, n, t, 20.0)
    wa = np.where(y == 1, 0.6, 0.3)[:, None]
    wb = np.where(y == 1, 0.3, 0.6)[:, None]
    for c in BAND_CHANNELS:
        x[:, c] += (wa * alpha + wb * beta).astype(np.float32)


def _add_pulse_effect(rng, x: np.ndarray, y: np.ndarray) -> None:
    """A pulse train at 1.0 Hz (y = 0) or 1.25 Hz (y = 1), +-3 %, random amplitude."""
    n, _, t = x.shape
    rate = np.where(y == 1, 1.25, 1.0) * rng.uniform(0.97, 1.03, n)
    cycle = (np.arange(t)[None, :] / SFREQ * rate[:, None] + rng.uniform(0, 1, n)[:, None]) % 1.0
    pulse = np.exp(-0.5 * ((cycle - 0.3) / 0.06) ** 2)
    amp = rng.lognormal(0.0, 0.5, n)[:, None]
    x[:, PULSE_CHANNEL] = (amp * pulse + 0.3 * rng.standard_normal((n, t))).astype(np.float32)


def _add_correlation_effect(rng, x: np.ndarray, y: np.ndarray, a: int = 0, b: int = 1) -> None:
    """Channels ``a`` and ``b`` share a slow source with sign +1 (y = 1) or -1 (y = 0)."""
    n, _, t = x.shape
    s, u, v = (_narrow(rng, n, t, 2.0, 2.0) for _ in range(3))
    sign = np.where(y == 1, 1.0, -1.0)[:, None]
    x[:, a] = (s + 0.6 * u).astype(np.float32)
    x[:, b] = (sign * s + 0.6 * v).astype(np.float32)


# --- probes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """One probe: which modalities and tasks, the window length, and a generator.

    ``make(rng, n)`` returns ``(x, y)``: ``x = {modality: float32 (n, C, T)}`` and
    ``y = {task: int64 (n,)}``.
    """

    name: str
    modalities: tuple[str, ...]
    task_set: str
    n_times: int
    make: Callable[[np.random.Generator, int], tuple[dict, dict]]
    description: str = ""


def _binary(modalities, n_times, effect):
    def make(rng, n):
        y = rng.integers(0, 2, n)
        x = {m: _noise(rng, m, n, n_times) for m in modalities}
        effect(rng, x, y)
        return x, {"arousal": y.astype(np.int64)}

    return make


def _multi_task(rng, n, n_times=384):
    ys = {t: rng.integers(0, 2, n) for t in ("valence", "arousal", "liking")}
    x = {m: _noise(rng, m, n, n_times) for m in ("eeg", "peripheral", "eog")}
    _add_band_effect(rng, x["eeg"], ys["valence"])
    _add_pulse_effect(rng, x["peripheral"], ys["arousal"])
    _add_correlation_effect(rng, x["eog"], ys["liking"])
    return x, {t: np.asarray(LOW_HIGH)[v].astype(np.int64) for t, v in ys.items()}


PROBES: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe("frequency", ("peripheral",), "binary_arousal", 384,
              _binary(("peripheral",), 384, lambda r, x, y: _add_pulse_effect(r, x["peripheral"], y)),
              "pulse rate 1.0 vs 1.25 Hz in one peripheral channel"),
        Probe("band_power", ("eeg",), "binary_arousal", 256,
              _binary(("eeg",), 256, lambda r, x, y: _add_band_effect(r, x["eeg"], y)),
              "alpha vs beta power in 5 of 32 EEG channels"),
        Probe("cross_channel", ("peripheral",), "binary_arousal", 256,
              _binary(("peripheral",), 256, lambda r, x, y: _add_correlation_effect(r, x["peripheral"], y)),
              "sign of the correlation of two channels"),
        Probe("fusion", ("eeg", "peripheral", "eog"), "binary_arousal", 384,
              _binary(("eeg", "peripheral", "eog"), 384,
                      lambda r, x, y: _add_pulse_effect(r, x["peripheral"], y)),
              "pulse rate in the peripheral modality; EEG and EOG are noise"),
        Probe("multi_task", ("eeg", "peripheral", "eog"), "multitask9", 384, _multi_task,
              "valence: EEG band power; arousal: pulse rate; liking: EOG correlation sign"),
    )
}
"""Every probe by name."""


@dataclass
class ProbeResult:
    """What one probe run measured.

    Attributes
    ----------
    test_acc, train_acc : dict of task to float
        Accuracy on held-out windows and on (a sample of) the training windows.
    majority : dict of task to float
        Held-out accuracy of predicting the training set's most frequent class.
    n_predicted_classes : dict of task to int
        Distinct classes predicted on the held-out windows.
    loss_start, loss_end : float
        Mean training loss over the first and the last 10 % of the steps.
    seconds : float
    """

    probe: str
    model: str
    seed: int
    steps: int
    test_acc: dict[str, float]
    train_acc: dict[str, float]
    majority: dict[str, float]
    n_predicted_classes: dict[str, int]
    loss_start: float
    loss_end: float
    seconds: float
    losses: list[float] = field(default_factory=list, repr=False)

    def solved(self, threshold: float = 0.9) -> bool:
        """Every task's held-out accuracy is at least ``threshold``."""
        return all(a >= threshold for a in self.test_acc.values())


def run_probe(
    probe: str | Probe,
    model: str = "symaffect",
    *,
    seed: int = 0,
    model_kwargs: Mapping | None = None,
    steps: int = 250,
    n_train: int = 768,
    n_test: int = 256,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    warmup: float = 0.1,
    schedule: str = "cosine",
    grad_clip: float | None = 1.0,
    weighting: str = "learnable",
    gamma: float = 2.0,
    alpha: float = 0.1,
) -> ProbeResult:
    """Train ``model`` on one probe and score it on held-out windows.

    Parameters
    ----------
    probe : str or Probe
        A name of :data:`PROBES` or a :class:`Probe`.
    model : str
        Registered model name.
    seed : int
        Seeds the data draw, the initial weights and the batch order.
    model_kwargs : dict, optional
        Extra build kwargs (default: ``d = tau = 32``, the low-rank temporal mixer
        where the model has them, as in the ``quick`` preset).
    steps, n_train, n_test, batch_size : int
    lr, weight_decay, warmup, schedule, grad_clip
        The recipe (:mod:`symaffect.train.recipe`).
    weighting, gamma, alpha
        The loss (:class:`~symaffect.models.losses.MultiTaskLoss`).

    Returns
    -------
    ProbeResult
    """

    p = PROBES[probe] if isinstance(probe, str) else probe
    rng = np.random.default_rng([seed, 7919])
    x_tr, y_tr = p.make(rng, n_train)
    x_te, y_te = p.make(rng, n_test)
    torch.manual_seed(seed)
    kw = {**quick_model_kwargs(model), **dict(model_kwargs or {})}
    net = build_model(model, modalities=p.modalities, task_set=p.task_set, n_times=p.n_times, **kw)
    loss_fn = MultiTaskLoss(task_set=p.task_set, weighting=weighting, gamma=gamma, alpha=alpha)
    opt = make_optimizer(net.parameters(), loss_fn.parameters(), lr=lr, weight_decay=weight_decay)
    sched = make_scheduler(opt, total_steps=steps, warmup=warmup, schedule=schedule)
    gen = np.random.default_rng([seed, 104729])
    t0 = time.perf_counter()
    losses: list[float] = []
    net.train()
    for _ in range(steps):
        idx = gen.integers(0, n_train, batch_size)
        out = net({m: torch.from_numpy(v[idx]) for m, v in x_tr.items()})
        loss = loss_fn(out, {t: torch.from_numpy(v[idx]) for t, v in y_tr.items()})["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - t0
    pred_te = _predict(net, x_te)
    pred_tr = _predict(net, {m: v[:n_test] for m, v in x_tr.items()})
    k = max(1, steps // 10)
    majority = {}
    for t, v in y_tr.items():
        top = np.bincount(v).argmax()
        majority[t] = float(np.mean(y_te[t] == top))
    return ProbeResult(
        probe=p.name,
        model=model,
        seed=seed,
        steps=steps,
        test_acc={t: float(np.mean(pred_te[t] == y_te[t])) for t in y_te},
        train_acc={t: float(np.mean(pred_tr[t] == y_tr[t][:n_test])) for t in y_tr},
        majority=majority,
        n_predicted_classes={t: int(len(np.unique(pred_te[t]))) for t in y_te},
        loss_start=float(np.mean(losses[:k])),
        loss_end=float(np.mean(losses[-k:])),
        seconds=seconds,
        losses=losses,
    )


@torch.no_grad()
def _predict(net: torch.nn.Module, x: Mapping[str, np.ndarray], chunk: int = 256) -> dict[str, np.ndarray]:
    net.eval()
    n = len(next(iter(x.values())))
    parts: dict[str, list[np.ndarray]] = {}
    for b in range(0, n, chunk):
        out = net({m: torch.from_numpy(v[b : b + chunk]) for m, v in x.items()})
        for t, v in out.items():
            parts.setdefault(t, []).append(v.argmax(dim=1).numpy())
    net.train()
    return {t: np.concatenate(v) for t, v in parts.items()}


def run_probes(
    model: str = "symaffect",
    *,
    probes: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    model_kwargs: Mapping | None = None,
    **kw,
) -> list[ProbeResult]:
    """:func:`run_probe` for every probe (default all) x seed."""
    return [
        run_probe(name, model, seed=s, model_kwargs=model_kwargs, **kw)
        for name in (probes or list(PROBES))
        for s in seeds
    ]


__all__ = ["PROBES", "Probe", "ProbeResult", "run_probe", "run_probes"]
