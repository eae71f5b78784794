"""The Dynamic Token Feature Extractor (DTFE, paper section 3.1, eq. 1-23).

One DTFE per modality maps ``X (B, C, T)`` to ``K`` tokens ``(B, K, tau)``:
instance norm (eq. 2) -> channel MLP (eq. 3-4) -> temporal mixer ``Q_i`` (eq. 5-6)
-> Cross-Series Intersection over the C physical channels (eq. 8-12) -> Intra-Series
Intersection with a frequency gate in Hz (eq. 13-19) -> attention pooling with K
queries and output projection (eq. 20-23). ``docs/paper_map.md`` explains every point
where this differs from the paper's text and why.

Internal layout is ``(B, d, T)`` (latent series x time), so that the temporal mixer is
one GEMM ``(B*d, T) @ (T, T)`` and the FFT runs on contiguous rows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from symaffect.models.base import _is_tracing

MIXERS = ("full", "lowrank", "identity")
SPECTRAL_IMPLS = ("fft", "dft", "matrix")
GATES = ("shared", "bank")
POOLS = ("attention", "attention+power")


def instance_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-sample, per-channel standardisation over time (eq. 2), no affine.

    ``(x - mean_t) / (std_t + eps)`` with the biased standard deviation, as written in
    the paper (eps added to the std, not the variance).

    Parameters
    ----------
    x : Tensor, shape (B, C, T)
    eps : float

    Returns
    -------
    Tensor, shape (B, C, T)
    """
    mu = x.mean(dim=-1, keepdim=True)
    xc = x - mu
    # clamp: d sqrt/dv is infinite at v = 0 (a flat channel); 1e-12 changes nothing else
    sigma = xc.square().mean(dim=-1, keepdim=True).clamp_min(1e-12).sqrt()
    return xc / (sigma + eps)


def _pointwise(lin: nn.Linear, x: Tensor) -> Tensor:
    """Apply ``lin`` along axis 1 of ``x (B, D_in, T)`` -> ``(B, D_out, T)``.

    A batched GEMM with the weight broadcast over B (stride 0): unlike
    ``torch.matmul(W, x)``, it neither copies ``x`` into (B*T, D_in) nor returns a
    transposed (non-contiguous) result; about 2x faster forward + backward on CPU.
    """
    B = x.shape[0]
    w = lin.weight.expand(B, -1, -1)
    if lin.bias is None:
        return torch.bmm(w, x)
    return torch.baddbmm(lin.bias[None, :, None], w, x)


class ChannelMLP(nn.Module):
    """Point-wise projection MLP over channels (eq. 3-4): ``W2 GELU(W1 x + b1) + b2``.

    Shape
    -----
    x : (B, C, T) -> (B, d, T)
    """

    def __init__(self, *, n_chans: int, d: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(n_chans, d)  # W1 (d x C)
        self.lin2 = nn.Linear(d, d)  # W2 (d x d)

    def forward(self, x: Tensor) -> Tensor:
        return _pointwise(self.lin2, F.gelu(_pointwise(self.lin1, x)))


class TemporalMixer(nn.Module):
    """Learnable temporal tokenization ``F = X Q`` (eq. 5-6), ``Q`` initialised to I.

    Parameters
    ----------
    n_times : int
        T.
    kind : {"full", "lowrank", "identity"}
        ``"full"``: the paper's ``Q (T x T)``; ``"lowrank"``: ``Q = I + U V^T`` with
        ``U, V (T x rank)`` (``V`` starts at zero, so ``Q`` starts at I);
        ``"identity"``: no mixing (``Q = I``, no parameters).
    rank : int
        Rank of the low-rank update.

    Shape
    -----
    x : (B, d, T) -> (B, d, T)
    """

    def __init__(self, *, n_times: int, kind: str = "full", rank: int = 16) -> None:
        super().__init__()
        if kind not in MIXERS:
            raise ValueError(f"mixer: {kind!r} not in {MIXERS}")
        self.kind = kind
        self.n_times = n_times
        if kind == "full":
            self.Q = nn.Parameter(torch.eye(n_times))
        elif kind == "lowrank":
            self.U = nn.Parameter(torch.randn(n_times, rank) / math.sqrt(n_times))
            self.V = nn.Parameter(torch.zeros(n_times, rank))

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "full":
            return torch.matmul(x, self.Q)
        if self.kind == "lowrank":
            return x + torch.matmul(torch.matmul(x, self.U), self.V.t())
        return x

    def row_mean(self) -> Tensor | None:
        """``Q.mean(dim=1)`` (T,): ``mean_t (X Q)_t = X @ row_mean`` (None for I: 1/T).

        Without autograd (inference) the full mixer's row mean is cached and refreshed
        whenever ``Q`` changes (its version counter), saving a pass over T x T values.
        """
        if self.kind == "full":
            if torch.is_grad_enabled() or _is_tracing():
                return self.Q.mean(dim=1)
            key = (self.Q._version, self.Q.data_ptr())
            if getattr(self, "_row_mean_key", None) != key:
                self._row_mean_cache = self.Q.detach().mean(dim=1)
                self._row_mean_key = key
            return self._row_mean_cache
        if self.kind == "lowrank":
            return 1.0 / self.n_times + self.U @ self.V.mean(dim=0)
        return None

    def matrix(self) -> Tensor:
        """The mixing matrix ``Q (T, T)`` (for inspection)."""
        eye = torch.eye(self.n_times)
        if self.kind == "full":
            return self.Q.detach().clone()
        if self.kind == "lowrank":
            return eye + (self.U @ self.V.t()).detach()
        return eye


class CrossSeriesIntersection(nn.Module):
    """CSI (eq. 8-12): a per-sample C x C affinity over the physical channels.

    ``G = mean_t F_i (B, d)`` (eq. 8); ``U = W_u G``, ``V = W_v G`` reshaped to
    ``(B, C, r)`` (eq. 9); ``A = softmax_rows(U V^T / sqrt(r))`` (eq. 10-11);
    aggregation in channel space ``X_csi = A X_hat + X_hat`` (eq. 12), where A's
    dimensions match. The caller then projects and mixes ``X_csi`` (see
    :class:`DTFE`). ``r = 1`` is the paper's outer product ``U^T V``.

    Shape
    -----
    x_hat : (B, C, T), g : (B, d) -> x_csi (B, C, T), affinity (B, C, C)
    """

    def __init__(self, *, n_chans: int, d: int, rank: int = 1) -> None:
        super().__init__()
        self.n_chans = n_chans
        self.rank = rank
        self.W_u = nn.Linear(d, n_chans * rank, bias=False)
        self.W_v = nn.Linear(d, n_chans * rank, bias=False)

    def affinity(self, g: Tensor) -> Tensor:
        B = g.shape[0]
        u = self.W_u(g).view(B, self.n_chans, self.rank)
        v = self.W_v(g).view(B, self.n_chans, self.rank)
        return torch.softmax(u @ v.transpose(1, 2) / math.sqrt(self.rank), dim=-1)

    def forward(self, x_hat: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        a = self.affinity(g)
        return torch.baddbmm(x_hat, a, x_hat), a


class FrequencyGate(nn.Module):
    """Real learnable gate on the half spectrum (eq. 15-18), initialised to ones.

    Gate bin ``k`` multiplies frequency ``k * sfreq / T`` Hz. A real gate on the
    ``T // 2 + 1`` bins of ``rfft`` is the paper's length-T gate constrained to be
    Hermitian-symmetric, so that the inverse transform is real.

    Parameters
    ----------
    n_times : int
    sfreq : float
    n_series : int or None
        ``None``: the paper's one gate ``Q_f (F,)`` shared by every latent series,
        initialised to ones. An int ``d``: a *filter bank*, one gate per latent series
        ``Q_f (d, F)``, initialised to band-pass bumps whose centres are log-spaced over
        ``band_hz`` (see :func:`bank_init`). A departure from the paper
        (``docs/paper_map.md``): a shared gate can select one frequency profile only, so
        it cannot compare two bands.
    band_hz : (float, float)
        Range of the filter bank's centre frequencies.
    impl : {"fft", "dft", "matrix"}
        ``"fft"``: ``torch.fft.rfft/irfft``. ``"dft"``: a real DFT as two matrix
        products with precomputed cos/sin bases. ``"matrix"``: the whole filter as one
        T x T matrix ``H = fwd diag(g) inv`` built from the gate at every call (slow in
        training; in an exported graph the gate is a constant, so the runtime folds
        ``H`` once and the filter is a single matmul); a filter bank, which would need
        d such matrices, uses the ``"dft"`` form. All three compute the same map.

    Shape
    -----
    x : (B, d, T) -> (B, d, T)
    """

    def __init__(
        self,
        *,
        n_times: int,
        sfreq: float,
        n_series: int | None = None,
        band_hz: tuple[float, float] = (0.5, 45.0),
        impl: str = "fft",
    ) -> None:
        super().__init__()
        self.n_times = n_times
        self.sfreq = float(sfreq)
        self.n_freqs = n_times // 2 + 1
        if n_series is None:
            self.weight = nn.Parameter(torch.ones(self.n_freqs))  # Q_f (F,)
        else:
            self.weight = nn.Parameter(bank_init(n_series, self.frequencies(), band_hz))  # (d, F)
        self.set_impl(impl)

    def set_impl(self, impl: str) -> None:
        """Switch the implementation (same result; see the class docstring)."""
        if impl not in SPECTRAL_IMPLS:
            raise ValueError(f"spectral: {impl!r} not in {SPECTRAL_IMPLS}")
        self.impl = impl
        if impl != "fft" and not hasattr(self, "fwd"):
            fwd, inv = _real_dft_bases(self.n_times)
            self.register_buffer("fwd", fwd.to(self.weight.device), persistent=False)
            self.register_buffer("inv", inv.to(self.weight.device), persistent=False)

    def frequencies(self) -> Tensor:
        """Frequency of each gate bin in Hz, shape (T // 2 + 1,)."""
        return torch.arange(self.n_freqs, dtype=torch.float32) * (self.sfreq / self.n_times)

    def forward(self, x: Tensor) -> Tensor:
        return self.filter_and_power(x, power=False)[0]

    def filter_and_power(self, x: Tensor, power: bool = True) -> tuple[Tensor, Tensor | None]:
        """The gated signal (eq. 15-18) and, if ``power``, the log of its mean square.

        Shape
        -----
        x : (B, d, T) -> y (B, d, T), log_power (B, d) or None
        """
        if self.impl == "fft":
            spec = torch.fft.rfft(x, dim=-1) * self.weight  # eq. 15, 17
            y = torch.fft.irfft(spec, n=self.n_times, dim=-1)  # eq. 18
        else:
            g = torch.cat([self.weight, self.weight], dim=-1)  # (2F,) or (d, 2F): re, im parts
            if self.impl == "matrix" and g.dim() == 1:  # one (T, T) filter; a bank would need d of them
                y = torch.matmul(x, torch.matmul(self.fwd * g, self.inv))
            else:
                y = torch.matmul(torch.matmul(x, self.fwd) * g, self.inv)
        if not power:
            return y, None
        return y, torch.log(y.square().mean(dim=-1) + 1e-6)


def bank_init(n_series: int, freqs: Tensor, band_hz: tuple[float, float]) -> Tensor:
    """Band-pass gates with log-spaced centres over ``band_hz`` (a filter bank).

    Gate ``i`` is a Gaussian bump in log frequency centred at ``f_i``, its width one
    spacing of the centres, so neighbouring bands overlap at about 0.6 and together
    they tile the range.

    Returns
    -------
    Tensor, shape (n_series, F)
    """
    nyq = float(freqs[-1])
    lo = max(float(band_hz[0]), float(freqs[1]) if len(freqs) > 1 else 0.0)
    hi = min(float(band_hz[1]), 0.9 * nyq)
    if hi <= lo:
        hi = max(lo * 2.0, nyq)
    centres = torch.logspace(math.log10(lo), math.log10(hi), n_series)
    step = (math.log(hi) - math.log(lo)) / max(n_series - 1, 1)
    width = max(step, 1e-3)
    logf = torch.log(freqs.clamp_min(freqs[1] * 0.5 if len(freqs) > 1 else 1e-3))
    return torch.exp(-0.5 * ((logf[None, :] - torch.log(centres)[:, None]) / width) ** 2)


def _real_dft_bases(n: int) -> tuple[Tensor, Tensor]:
    """Bases so that ``irfft(rfft(x) * g) == ((x @ fwd) * [g, g]) @ inv``.

    Returns
    -------
    fwd : Tensor, shape (T, 2F)
        ``[cos(2 pi k t / T) | -sin(2 pi k t / T)]`` (real and imaginary parts).
    inv : Tensor, shape (2F, T)
        The inverse real DFT with Hermitian weights (1 for DC and Nyquist, else 2) / T.
    """
    nf = n // 2 + 1
    t = torch.arange(n, dtype=torch.float64)
    k = torch.arange(nf, dtype=torch.float64)
    ang = 2 * math.pi * torch.outer(t, k) / n  # (T, F)
    fwd = torch.cat([torch.cos(ang), -torch.sin(ang)], dim=1)
    w = torch.full((nf,), 2.0, dtype=torch.float64)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    inv = torch.cat([torch.cos(ang).t() * w[:, None], -torch.sin(ang).t() * w[:, None]], dim=0) / n
    return fwd.float(), inv.float()


class IntraSeriesIntersection(nn.Module):
    """ISI (eq. 13-19): ``F_act = GELU(W_l F + b_l)``; ``F_ISI = gate(F_act) + LN_d(F_act)``.

    Parameters
    ----------
    d : int
    n_times : int
    sfreq : float
    spectral : {"fft", "dft", "matrix"}
    gate : {"shared", "bank"}
        The paper's shared gate ``Q_f (F,)`` or a per-series filter bank ``(d, F)``
        (see :class:`FrequencyGate`).
    band_hz : (float, float)
        Centre range of the filter bank.

    Shape
    -----
    x : (B, d, T) -> (B, d, T); with ``power=True`` also the log mean power of each
    gated series (B, d).
    """

    def __init__(
        self,
        *,
        d: int,
        n_times: int,
        sfreq: float,
        spectral: str = "fft",
        gate: str = "shared",
        band_hz: tuple[float, float] = (0.5, 45.0),
    ) -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"gate: {gate!r} not in {GATES}")
        self.lin = nn.Linear(d, d)  # W_l, b_l
        self.gate = FrequencyGate(
            n_times=n_times, sfreq=sfreq, impl=spectral,
            n_series=d if gate == "bank" else None, band_hz=band_hz,
        )
        self.norm_weight = nn.Parameter(torch.ones(d))
        self.norm_bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: Tensor, power: bool = False):
        act = F.gelu(_pointwise(self.lin, x))  # eq. 13-14
        mu = act.mean(dim=1, keepdim=True)  # LayerNorm over d (axis 1), eq. 19
        var = (act - mu).square().mean(dim=1, keepdim=True)
        normed = (act - mu) * torch.rsqrt(var + 1e-5)
        normed = normed * self.norm_weight[:, None] + self.norm_bias[:, None]
        gated, log_power = self.gate.filter_and_power(act, power=power)
        if power:
            return gated + normed, log_power
        return gated + normed


class AttentionPool(nn.Module):
    """Attention pooling over time with K learnable queries (eq. 21-22; K = 1 is w_a).

    Shape
    -----
    x : (B, d, T) -> z (B, K, d), alpha (B, K, T)
    """

    def __init__(self, *, d: int, n_tokens: int = 1) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_tokens, d) / math.sqrt(d))  # w_a / Q_o
        self.scale = 1.0 / math.sqrt(d)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        q = self.queries.expand(x.shape[0], -1, -1)  # (B, K, d)
        alpha = torch.softmax(torch.bmm(q, x) * self.scale, dim=-1)  # (B, K, T)
        return torch.matmul(alpha, x.transpose(1, 2)), alpha


class DTFE(nn.Module):
    """Dynamic Token Feature Extractor for one modality (section 3.1).

    Parameters
    ----------
    n_chans : int
        C, physical channels of the modality.
    n_times : int
        T, samples per window.
    sfreq : float
        Sampling rate (Hz), for the gate's frequency axis.
    d : int
        Latent width.
    tau : int
        Output token width (eq. 23).
    n_tokens : int
        K output tokens (attention-pooling queries).
    mixer : {"full", "lowrank", "identity"}
        Temporal mixer ``Q_i`` (see :class:`TemporalMixer`).
    mixer_rank : int
        Rank of the ``"lowrank"`` mixer.
    csi_rank : int
        Rank r of the CSI bilinear affinity (1 = the paper).
    spectral : {"fft", "dft", "matrix"}
        Implementation of the frequency gate (same result, see :class:`FrequencyGate`).
    eps : float
        Instance-norm epsilon (eq. 2).
    input_norm : {"instance", "none"}
        Eq. 2's per-window instance norm, or none.
    gate : {"shared", "bank"}
        ISI frequency gate: the paper's one gate shared by all latent series, or a
        filter bank (one gate per series, band-pass initialised). See
        ``docs/paper_map.md``.
    pool : {"attention", "attention+power"}
        ``"attention"``: eq. 21-22 only. ``"attention+power"``: the attention-pooled
        vector concatenated with the log mean power of each gated ISI series (a
        learned spatial filter x band -> log band power, as in FBCSP /
        ShallowFBCSPNet); eq. 23 then maps ``2 d -> tau``. A departure from the paper:
        a weighted mean over time of features that are linear in the signal cannot
        measure power (see the capability probes, ``docs/RESULTS.md``).
    band_hz : (float, float)
        Centre range of the filter bank (``gate="bank"``).

    Shape
    -----
    x : (B, C, T) -> tokens (B, K, tau)

    References
    ----------
    Qu & Wang (2026), section 3.1, eq. 1-23.
    """

    has_details = True

    def __init__(
        self,
        *,
        n_chans: int,
        n_times: int,
        sfreq: float,
        d: int = 64,
        tau: int = 64,
        n_tokens: int = 1,
        mixer: str = "full",
        mixer_rank: int = 16,
        csi_rank: int = 1,
        spectral: str = "fft",
        eps: float = 1e-5,
        input_norm: str = "instance",
        gate: str = "shared",
        pool: str = "attention",
        band_hz: tuple[float, float] = (0.5, 45.0),
    ) -> None:
        super().__init__()
        if input_norm not in ("instance", "none"):
            raise ValueError(f"input_norm: {input_norm!r}; allowed: 'instance' (eq. 2), 'none'")
        if pool not in POOLS:
            raise ValueError(f"pool: {pool!r} not in {POOLS}")
        self.n_chans, self.n_times, self.eps = n_chans, n_times, eps
        self.input_norm = input_norm
        self.pool_kind = pool
        self.proj = ChannelMLP(n_chans=n_chans, d=d)  # eq. 3-4
        self.mixer = TemporalMixer(n_times=n_times, kind=mixer, rank=mixer_rank)  # eq. 5-6
        self.csi = CrossSeriesIntersection(n_chans=n_chans, d=d, rank=csi_rank)  # eq. 8-12
        self.isi = IntraSeriesIntersection(
            d=d, n_times=n_times, sfreq=sfreq, spectral=spectral, gate=gate,
            band_hz=tuple(band_hz),
        )
        self.out_lin = nn.Linear(d, d)  # W_d, b_d (eq. 20)
        self.pool = AttentionPool(d=d, n_tokens=n_tokens)  # eq. 21-22
        with_power = pool == "attention+power"
        # log band power (B, d) has its own level; LayerNorm puts it on the scale of z
        self.power_norm = nn.LayerNorm(d) if with_power else None
        self.embed = nn.Linear(2 * d if with_power else d, tau)  # W_p, b_p (eq. 23)

    def descriptors(self, x_hat: Tensor) -> Tensor:
        """``G = mean_t (MLP(x_hat) Q_i)`` (eq. 8) without forming ``F_i``: (B, d)."""
        x_proj = self.proj(x_hat)  # (B, d, T)
        q_mean = self.mixer.row_mean()
        if q_mean is None:
            return x_proj.mean(dim=-1)
        return torch.matmul(x_proj, q_mean)

    def forward(self, x: Tensor, return_details: bool = False):
        # eq. 2 ("none" keeps per-window level and scale, which eq. 2 removes)
        x_hat = instance_norm(x, self.eps) if self.input_norm == "instance" else x  # (B, C, T)
        g = self.descriptors(x_hat)  # eq. 3-8                  (B, d)
        x_csi, affinity = self.csi(x_hat, g)  # eq. 9-12        (B, C, T), (B, C, C)
        f_csi = self.mixer(self.proj(x_csi))  # eq. 3-6 on X_csi (B, d, T)
        if self.power_norm is None:
            f_isi = self.isi(f_csi)  # eq. 13-19                 (B, d, T)
        else:
            f_isi, log_power = self.isi(f_csi, power=True)  #   (B, d, T), (B, d)
        f_proj = _pointwise(self.out_lin, f_isi)  # eq. 20       (B, d, T)
        z, alpha = self.pool(f_proj)  # eq. 21-22                (B, K, d), (B, K, T)
        if self.power_norm is not None:
            pw = self.power_norm(log_power)[:, None, :].expand(-1, z.shape[1], -1)
            z = torch.cat([z, pw], dim=-1)  #                   (B, K, 2d)
        y = self.embed(z)  # eq. 23                              (B, K, tau)
        if return_details:
            return y, {"csi_affinity": affinity, "temporal_attention": alpha}
        return y

    def gate(self) -> Tensor:
        """The ISI frequency gate ``Q_f``, detached: (T // 2 + 1,) or (d, T // 2 + 1)."""
        return self.isi.gate.weight.detach().clone()

    def gate_frequencies(self) -> Tensor:
        """Frequency in Hz of each gate bin (T // 2 + 1,)."""
        return self.isi.gate.frequencies()
