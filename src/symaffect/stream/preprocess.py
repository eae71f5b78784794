"""Causal, chunk-invariant preprocessing shared by offline ``predict`` and live ``stream``.

Both paths push the signal through the same objects, so their windows match: processing
a signal in one piece or in arbitrary chunks gives the same output (up to float rounding
of the running statistics, ~1e-12). Steps, per channel:

1. **Missing samples** (NaN/inf in a file, dropped samples or outages in a stream): held
   at the last finite value before filtering (so they never poison filter states) and
   tracked in a per-sample code (:data:`MISSING_CODES`) for the quality checks.
2. **Resampling to 128 Hz**: if the input is faster, a stateful Butterworth low-pass
   (``sosfilt`` with its state carried across chunks, cut-off 0.45 x 128 Hz) then
   linear interpolation at the exact rational positions ``k * sfreq_in / 128`` with the
   phase carried across chunks. Slower inputs (e.g. 100 Hz) are interpolated only.
   Output sample ``k`` is emitted as soon as the input samples it needs have arrived.
3. **EEG band-pass** (stateful Butterworth, order 4) on EEG channels, to the band the
   training signal carried (the contract's ``eeg_band``; 4-45 Hz for DEAP).
4. **Normalisation** (:class:`WindowBuffer`), as the contract says: ``"running"``, a
   per-channel running mean / std (Welford, from the session start, missing samples
   excluded), each window z-scored with the statistics at its last sample (one affine
   map per window); ``"fixed"``, the training subjects' mean / std of each channel;
   ``"none"``, no z-score.

Training and the live path: every model carries a
:class:`~symaffect.data.contract.PreprocessingContract` (what training did to the
signal), and :class:`~symaffect.stream.pipeline.SessionPipeline` applies it: the same
rate, window length, EEG band and normalisation. A model whose contract the live path
cannot honour exactly (a per-trial baseline subtraction, another rate or window) is
refused when it is loaded. One difference remains, for ``per_subject`` models: the
trainer z-scores each subject with statistics over all of its trials, which a live
session does not have; the running statistics (the listener's own, the closest causal
equivalent) converge to the session's after a few windows. The model's own per-window
instance normalisation removes most of the difference (it cancels any per-window affine
map); what remains is the eps of that normalisation and the first windows of a session.
A ``train_subjects`` model gets exactly its training statistics, a ``none`` model the
filtered signal.

All filters start from the steady state of the first sample (no start-up transient
for a DC offset). Filters add group delay; offline and live share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal

from symaffect.errors import DataError
from symaffect.spec import EEG_CHANNELS, SFREQ

MISSING_CODES: dict[int, str] = {0: "ok", 1: "nan", 2: "dropped", 3: "gap"}
"""Per-sample codes: 1 = non-finite value, 2 = dropped samples (timestamp gap), 3 = outage."""


@dataclass
class Chunk:
    """Preprocessed 128-Hz samples from one push.

    Attributes
    ----------
    model : ndarray, shape (C, m)
        Filtered signal (the model's input before normalisation).
    raw : ndarray, shape (C, m)
        Unfiltered signal interpolated at 128 Hz (for quality checks).
    missing : ndarray of uint8, shape (C, m)
        :data:`MISSING_CODES` per sample.
    """

    model: np.ndarray
    raw: np.ndarray
    missing: np.ndarray

    @property
    def n_times(self) -> int:
        return int(self.model.shape[1])

    def split(self, i: int) -> tuple[Chunk, Chunk]:
        """The first ``i`` samples and the rest."""
        a = Chunk(self.model[:, :i], self.raw[:, :i], self.missing[:, :i])
        b = Chunk(self.model[:, i:], self.raw[:, i:], self.missing[:, i:])
        return a, b


class StreamPreprocessor:
    """Stateful causal preprocessing from ``sfreq`` to 128 Hz (see module docstring).

    Parameters
    ----------
    ch_names : sequence of str
        DEAP channel names of the input rows.
    sfreq : float
        Input sampling rate (Hz).
    sfreq_out : float
        Output rate (default 128).
    eeg_band : (float, float) or None
        EEG band-pass edges in Hz; None disables it.
    antialias_order : int
        Order of the anti-alias Butterworth low-pass.
    """

    def __init__(
        self,
        ch_names: Sequence[str],
        sfreq: float,
        *,
        sfreq_out: float = SFREQ,
        eeg_band: tuple[float, float] | None = (4.0, 45.0),
        antialias_order: int = 8,
    ):
        if not np.isfinite(sfreq) or sfreq <= 0:
            raise DataError("sfreq", f"must be positive, got {sfreq}")
        self.ch_names = tuple(ch_names)
        self.n_chans = len(self.ch_names)
        self.sfreq = float(sfreq)
        self.sfreq_out = float(sfreq_out)
        ratio = Fraction(self.sfreq / self.sfreq_out).limit_denominator(100_000)
        self._p, self._q = ratio.numerator, ratio.denominator  # in-position of out k: k p / q
        self._aa = None
        if self.sfreq > self.sfreq_out * 1.0001:
            self._aa = signal.butter(antialias_order, 0.45 * self.sfreq_out, fs=self.sfreq, output="sos")
        self._eeg = np.array([c in EEG_CHANNELS for c in self.ch_names])
        self._bp = None
        if eeg_band is not None and self._eeg.any():
            lo, hi = eeg_band
            hi = min(hi, 0.49 * self.sfreq_out)
            self._bp = signal.butter(4, [lo, hi], btype="bandpass", fs=self.sfreq_out, output="sos")
        self._aa_zi: np.ndarray | None = None
        self._bp_zi: np.ndarray | None = None
        self._last_finite: np.ndarray | None = None
        self._n_in = 0  # input samples consumed
        self._k_next = 0  # next output index
        self._tail: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # last input sample
        # for missing codes of input samples that fall between output samples: per code
        # v (1..3), the last input index with code v; and the last input index covered
        self._last_bad = np.full((3, self.n_chans), -1, dtype=np.int64)
        self._hi_prev = -1

    @property
    def n_in(self) -> int:
        return self._n_in

    @property
    def n_out(self) -> int:
        return self._k_next

    def input_index(self, k: int) -> int:
        """Index of the input sample whose arrival completes output sample ``k``.

        Output ``k`` sits at input position ``k * sfreq / sfreq_out``; it is emitted once
        the input sample at the next integer position has arrived (the same sample at
        equal rates).
        """
        return -(-k * self._p // self._q)

    def push(self, x: np.ndarray, missing: np.ndarray | None = None) -> Chunk:
        """Process the next input samples.

        Parameters
        ----------
        x : ndarray, shape (C, n)
            Input samples (NaN/inf allowed: held and marked code 1).
        missing : ndarray of uint8, shape (C, n) or (n,), optional
            Extra missing codes (2 = dropped, 3 = gap) for samples that were filled.

        Returns
        -------
        Chunk
            The 128-Hz samples that became available (possibly none).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_chans:
            raise DataError("chunk", f"expected shape ({self.n_chans}, n), got {x.shape}")
        n = x.shape[1]
        code = np.zeros(x.shape, dtype=np.uint8)
        if missing is not None:
            code |= np.broadcast_to(np.asarray(missing, dtype=np.uint8), x.shape)
        if n == 0:
            return self._empty()
        bad = ~np.isfinite(x)
        if bad.any():
            code[bad & (code == 0)] = 1
            x = self._hold(x, bad)
        else:
            self._last_finite = x[:, -1].copy()
        if self._last_finite is None:
            self._last_finite = np.zeros(self.n_chans)
        raw = x
        filt = x
        if self._aa is not None:
            if self._aa_zi is None:
                self._aa_zi = signal.sosfilt_zi(self._aa)[:, None, :] * x[:, 0][None, :, None]
            filt, self._aa_zi = signal.sosfilt(self._aa, x, axis=1, zi=self._aa_zi)
        model, raw_o, code_o = self._interp(filt, raw, code)
        if self._bp is not None and model.shape[1]:
            e = self._eeg
            if self._bp_zi is None:
                self._bp_zi = signal.sosfilt_zi(self._bp)[:, None, :] * model[e][:, 0][None, :, None]
            model = model.copy()
            model[e], self._bp_zi = signal.sosfilt(self._bp, model[e], axis=1, zi=self._bp_zi)
        return Chunk(model, raw_o, code_o)

    def _empty(self) -> Chunk:
        z = np.zeros((self.n_chans, 0))
        return Chunk(z, z.copy(), np.zeros((self.n_chans, 0), dtype=np.uint8))

    def _hold(self, x: np.ndarray, bad: np.ndarray) -> np.ndarray:
        """Replace non-finite samples by the last finite one of their channel."""
        x = x.copy()
        if self._last_finite is None:  # first chunk: start from the first finite value
            first = np.zeros(self.n_chans)
            for c in range(self.n_chans):
                ok = np.flatnonzero(~bad[c])
                first[c] = x[c, ok[0]] if ok.size else 0.0
            self._last_finite = first
        n = x.shape[1]
        idx = np.where(~bad, np.arange(n)[None, :], -1)
        idx = np.maximum.accumulate(idx, axis=1)
        prev = np.take_along_axis(x, np.maximum(idx, 0), axis=1)
        x = np.where(idx >= 0, prev, self._last_finite[:, None])
        self._last_finite = x[:, -1].copy()
        return x

    def _interp(self, filt: np.ndarray, raw: np.ndarray, code: np.ndarray):
        n = filt.shape[1]
        if self._p == self._q:  # same rate: pass through
            self._n_in += n
            self._k_next += n
            return filt, raw, code
        # prepend the carried last input sample (index n_in - 1)
        if self._tail is not None:
            f0, r0, c0 = self._tail
            filt = np.concatenate([f0, filt], axis=1)
            raw = np.concatenate([r0, raw], axis=1)
            code = np.concatenate([c0, code], axis=1)
            start = self._n_in - 1
        else:
            start = 0
        last = self._n_in + n - 1  # last available input index
        k_max = (last * self._q) // self._p
        ks = np.arange(self._k_next, k_max + 1, dtype=np.int64)
        self._n_in += n
        self._tail = (filt[:, -1:].copy(), raw[:, -1:].copy(), code[:, -1:].copy())
        if ks.size == 0:
            e = np.zeros((self.n_chans, 0))
            return e, e.copy(), np.zeros((self.n_chans, 0), dtype=np.uint8)
        self._k_next = int(k_max) + 1
        num = ks * self._p
        i0 = num // self._q
        frac = (num - i0 * self._q) / self._q
        i1 = np.minimum(i0 + 1, last)
        a, b = i0 - start, i1 - start
        w = frac[None, :]
        fo = filt[:, a] * (1.0 - w) + filt[:, b] * w
        ro = raw[:, a] * (1.0 - w) + raw[:, b] * w
        co = np.where(frac[None, :] > 0, np.maximum(code[:, a], code[:, b]), code[:, a])
        # an output sample also carries the codes of every input sample since the last one
        hi = i0 + (frac > 0)
        prev = np.concatenate([[self._hi_prev], hi[:-1]])
        if code.any() or (self._last_bad > self._hi_prev).any():
            gidx = np.arange(start, last + 1, dtype=np.int64)[None, :]
            for v in (1, 2, 3):
                marked = np.where(code == v, gidx, -1)
                marked[:, 0] = np.maximum(marked[:, 0], self._last_bad[v - 1])
                acc = np.maximum.accumulate(marked, axis=1)
                hit = acc[:, hi - start] > prev[None, :]
                co = np.where(hit, np.maximum(co, v), co)
                self._last_bad[v - 1] = acc[:, -1]
        self._hi_prev = int(hi[-1])
        return fo, ro, co.astype(np.uint8)


class RunningStats:
    """Per-channel running mean and variance (Chan/Welford merge), missing excluded.

    Parameters
    ----------
    n_chans : int
    """

    def __init__(self, n_chans: int):
        self.count = np.zeros(n_chans)
        self.mean = np.zeros(n_chans)
        self.m2 = np.zeros(n_chans)

    def update(self, x: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add samples ``x`` (C, n); ``valid`` (C, n) bool excludes missing ones."""
        if x.shape[1] == 0:
            return
        if valid is None:
            nb = np.full(x.shape[0], float(x.shape[1]))
            mb = x.mean(axis=1)
            m2b = ((x - mb[:, None]) ** 2).sum(axis=1)
        else:
            nb = valid.sum(axis=1).astype(np.float64)
            safe = np.maximum(nb, 1.0)
            mb = np.where(valid, x, 0.0).sum(axis=1) / safe
            m2b = np.where(valid, (x - mb[:, None]) ** 2, 0.0).sum(axis=1)
        n = self.count + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mb - self.mean
            frac = np.where(n > 0, nb / np.maximum(n, 1.0), 0.0)
            self.mean = self.mean + delta * frac
            self.m2 = self.m2 + m2b + delta**2 * self.count * frac
        self.count = n

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.count, 1.0))


class _Ring:
    """Fixed-length ring buffer of (C, T) samples."""

    def __init__(self, n_chans: int, n_times: int, dtype=np.float64):
        self.buf = np.zeros((n_chans, n_times), dtype=dtype)
        self.pos = 0  # next write column
        self.n_times = n_times

    def append(self, x: np.ndarray) -> None:
        n = x.shape[1]
        if n >= self.n_times:
            self.buf[:] = x[:, -self.n_times:]
            self.pos = 0
            return
        end = self.pos + n
        if end <= self.n_times:
            self.buf[:, self.pos:end] = x
        else:
            k = self.n_times - self.pos
            self.buf[:, self.pos:] = x[:, :k]
            self.buf[:, : n - k] = x[:, k:]
        self.pos = end % self.n_times

    def last(self) -> np.ndarray:
        """The buffer in time order, shape (C, T)."""
        if self.pos == 0:
            return self.buf.copy()
        return np.concatenate([self.buf[:, self.pos:], self.buf[:, : self.pos]], axis=1)


LIVE_NORMS = ("running", "fixed", "none")
"""How :class:`WindowBuffer` z-scores a window (:attr:`PreprocessingContract.live_norm
<symaffect.data.contract.PreprocessingContract.live_norm>`)."""


class WindowBuffer:
    """The last window of 128-Hz samples, and how to normalise it.

    Parameters
    ----------
    n_chans : int
    n_times : int
        Window length in samples.
    norm : {"running", "fixed", "none"}
        ``"running"``: z-score with a per-channel running mean / std from the first
        sample (missing samples excluded), taken at the window's last sample;
        ``"fixed"``: z-score with ``mean`` / ``std``; ``"none"``: the filtered signal as is.
    mean, std : sequence of float, shape (n_chans,), optional
        Per-channel statistics for ``norm="fixed"`` (finite; ``std > 0``); not given
        otherwise.
    min_std : float
        A running std below this is replaced by 1 (a flat channel; flagged elsewhere).

    Attributes
    ----------
    stats : RunningStats or None
        The running statistics (``norm="running"`` only).
    mean, std : ndarray, shape (n_chans,), or None
        The fixed statistics (``norm="fixed"`` only).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        *,
        norm: str = "running",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        min_std: float = 1e-12,
    ):
        if norm not in LIVE_NORMS:
            raise DataError("norm", f"{norm!r} is not one of {LIVE_NORMS}")
        if norm == "fixed" and (mean is None or std is None):
            raise DataError("norm", "'fixed' needs mean and std")
        if norm != "fixed" and (mean is not None or std is not None):
            raise DataError("norm", f"mean / std given but norm is {norm!r}")
        self.n_times = int(n_times)
        self.norm = norm
        self.model = _Ring(n_chans, n_times)
        self.raw = _Ring(n_chans, n_times)
        self.missing = _Ring(n_chans, n_times, dtype=np.uint8)
        self.stats = RunningStats(n_chans) if norm == "running" else None
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.n_total = 0
        self.min_std = min_std
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v is not None and (v.shape != (n_chans,) or not np.isfinite(v).all()):
                raise DataError(name, f"must be {n_chans} finite values, got shape {v.shape}")
        if self.std is not None and (self.std <= 0).any():
            raise DataError("std", "must be > 0 for every channel")

    def append(self, chunk: Chunk) -> None:
        """Add preprocessed samples (and update the running statistics)."""
        if chunk.n_times == 0:
            return
        self.model.append(chunk.model)
        self.raw.append(chunk.raw)
        self.missing.append(chunk.missing)
        if self.stats is not None:
            self.stats.update(chunk.model, chunk.missing == 0)
        self.n_total += chunk.n_times

    @property
    def full(self) -> bool:
        return self.n_total >= self.n_times

    def window(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last window.

        Returns
        -------
        z : ndarray, shape (C, T), float32
            Filtered signal, normalised as ``norm`` says.
        raw : ndarray, shape (C, T)
            Unfiltered 128-Hz signal (for quality checks).
        missing : ndarray of uint8, shape (C, T)
        """
        x = self.model.last()
        if self.norm == "running":
            std = self.stats.std
            std = np.where(std < self.min_std, 1.0, std)
            x = (x - self.stats.mean[:, None]) / std[:, None]
        elif self.norm == "fixed":
            x = (x - self.mean[:, None]) / self.std[:, None]
        return x.astype(np.float32), self.raw.last(), self.missing.last()
