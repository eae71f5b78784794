"""Vital signs with a plausibility check, and short raw-signal strips, for the live view.

The live view's quality flags (:mod:`symaffect.stream.quality`) say whether a channel is
*there* (NaN, gaps, flat, clipping); they cannot say whether it is *physiological*. This
module computes a few vital signs from the unfiltered window with NeuroKit2's maintained
building blocks and checks each against a physiological range (:class:`PlausibleRanges`),
so that a heart rate of 300 bpm or 120 breaths a minute shows up as a sensor problem
instead of as data. :func:`signal_strips` gives the last few seconds of raw signal per
modality, decimated for drawing.

Vitals
------
One :class:`Vital` each; ``status`` is ``"ok"``, ``"implausible"``, ``"poor"`` or
``"unknown"``, and ``detail`` says why in plain words.

``BVP`` (photoplethysmogram, any units)
    ``heart_rate`` (bpm): ``ppg_clean`` (Elgendi, 0.5-8 Hz) -> ``ppg_findpeaks``
    (Elgendi) -> ``signal_rate``, median over the beats; at least 3 beats. The detector
    ignores beats closer than 0.3 s (rates above 200 bpm come out halved), so the dominant
    frequency of the cleaned pulse wave is checked too: a rhythm faster than the range
    (e.g. a 5-Hz oscillation, 300 "bpm") is ``implausible`` even when the detector
    reports a plausible half of it. ``ppg_quality`` (0-1): NeuroKit2's ``templatematch``
    index (correlation of each beat with the window's average beat, Orphanidou et al.
    2015), averaged over the window; ``poor`` below ``ppg_quality_min``, and then the heart
    rate is ``poor`` too. Limits: 10 s hold 5-35 beats, so the rate is an average (no
    beat-to-beat variability); arrhythmia and motion artefacts lower the quality index;
    pulses slower than 30/min lie below the cleaning filter's 0.5-Hz band and come out
    ``poor``/``unknown``/``implausible`` with a wrong value, never ``ok``.
``Resp`` (breathing belt, any units)
    ``breathing_rate`` (breaths/min): ``rsp_clean`` (Khodadad 2018, 0.05-3 Hz) ->
    ``rsp_findpeaks`` (Khodadad 2018), median breath length over inhalation peaks and
    troughs. A 10-s window holds only 1-7 breaths and that detector drops incomplete
    breaths at the edges, so with less than one full breath detected the rate is the
    dominant frequency of the cleaned belt signal (said in ``detail``); when the breath
    count and that rhythm disagree by more than 25 % the rate is ``poor`` (irregular
    breathing). The estimate is **coarse**: on the real recordings in
    ``../shared/data/real`` the 10-s rate is within about 1 breath/min of NeuroKit2's
    whole-recording ``rsp_process`` rate in the median window, but single windows can be
    off by 5-20/min (sighs, irregular breathing). Breathing slower than about 1.5 cycles
    per window (9 per minute for 10 s) cannot be measured and is ``unknown``: compute on
    a longer window for slow paced breathing.
``GSR`` (skin conductance in microsiemens, or DEAP's skin resistance in Ohm)
    ``skin_conductance_level`` (uS, median over the window) and ``scr_rate`` (skin
    conductance responses per minute): ``eda_clean`` (3-Hz low-pass) -> ``eda_phasic``
    (``"highpass"``, 0.05 Hz, the fast decomposition) -> ``eda_findpeaks``
    (``"neurokit"``), keeping responses of at least :data:`SCR_MIN_AMPLITUDE` uS.
    Units are inferred from the level (:func:`skin_conductance`): a median above
    1000 is a resistance in Ohm (DEAP's documented unit) and is converted as
    ``1e6 / R``; 0-100 is a conductance in uS; anything else is ``unknown`` (raw ADC
    counts, kOhm). Limits: 10 s see 0-5 responses, so the rate moves in steps of
    6 SCR/min; a response that started before the window may be missed; the high-pass
    phasic estimate is rough at the window's edges.
``Temp`` (skin temperature)
    ``skin_temperature``: DEAP does not document its temperature unit. A window median in
    15-45 is taken as degrees Celsius (no plausible skin temperature in Kelvin or
    Fahrenheit falls there) and checked against ``skin_temperature``; a change of more
    than ``temperature_change`` degrees within the window is ``poor`` (a sensor touching
    or leaving the skin). Any other value is reported as is with unit ``""`` and status
    ``unknown`` (units unclear, no check).

A channel absent from ``ch_names`` gives no vital. A channel that cannot be assessed
(too short, mostly filled-in samples, NaN, flat) gives its vitals with ``value=None`` and
status ``unknown``; nothing here raises on a bad signal.

Cost
----
Measured on this project's 2-core development machine (shared, load average about 5),
one thread (``OMP_NUM_THREADS=1``), ``time.perf_counter`` over 50 calls of
:func:`window_vitals` on a 10-s, 128-Hz window with all six peripheral channels (GSR in
Ohm, BVP, Resp, Temp, plus the two EMG, which are skipped): **11-13 ms per call**, of
which about 7 ms is ``ppg_quality`` (its template matching epochs the beats through
pandas). The all-in-one ``ppg_process`` / ``rsp_process`` / ``eda_process`` would cost
about 18 + 13 + 4 ms. For 32 live sessions, vitals every 5 s cost about 8 % of one core;
the caller need not compute them every hop. :func:`signal_strips` (EEG, EOG and
peripheral strips of a 40-channel window) costs about 0.3 ms.

References
----------
Elgendi et al. (2013), PLoS ONE 8(10): e76585 (PPG peaks). Orphanidou et al. (2015),
IEEE J Biomed Health Inform 19(3): 832-838 (template-matching quality, threshold 0.86).
Khodadad et al. (2018), Physiol Meas 39(9): 094001 (breathing extrema).
Boucsein et al. (2012), Psychophysiology 49(8): 1017-1034 (EDA recommendations).
Makowski et al. (2021), Behav Res Methods 53: 1689-1696 (NeuroKit2).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import neurokit2 as nk
import numpy as np
from neurokit2.misc import NeuroKitWarning
from scipy.signal import resample_poly

from symaffect.spec import MODALITIES, SFREQ

log = logging.getLogger(__name__)

STATUSES = ("ok", "implausible", "poor", "unknown")
"""Values of :attr:`Vital.status`."""

SCR_MIN_AMPLITUDE = 0.05
"""Smallest skin conductance response counted (uS, onset to peak of the phasic signal):
the upper end of the usual 0.01-0.05 uS criterion (Boucsein et al. 2012), since a 10-s
window's high-pass phasic estimate is noisier than a whole recording's."""

EEG_STRIP_CHANNELS = ("Fz", "Cz", "Pz", "Oz", "Fp1", "Fp2")
"""EEG channels preferred for a strip: midline front to back, plus the frontal pair
where eye blinks show."""

_MIN_SECONDS = {"BVP": 4.0, "Resp": 6.0, "GSR": 4.0, "Temp": 1.0}
"""Shortest window each channel's vitals are computed from."""

_OF_MODALITY = {ch: spec.name for spec in MODALITIES.values() for ch in spec.ch_names}

_NK_ERRORS = (ValueError, IndexError, ZeroDivisionError, np.linalg.LinAlgError)
"""What NeuroKit2 raises on too-short or degenerate input (e.g. no peaks at all)."""


@dataclass(frozen=True)
class PlausibleRanges:
    """Physiologically plausible ranges of the vitals, and the limits of the assessment.

    Parameters
    ----------
    heart_rate : (float, float)
        bpm. 30: the slowest resting rates (trained athletes, sleep) sit around 30-40 bpm;
        220: the conventional age-predicted maximum (220 - age) of a healthy adult. Outside
        this the PPG almost certainly measures movement, light leak or noise.
    breathing_rate : (float, float)
        Breaths/min. 4: the slowest sustained breathing, as in slow-paced/resonance
        breathing exercises (about 4-6/min); 40: adult tachypnoea at rest stays below it,
        and a belt signal faster than that is movement, talking or electrical noise.
        (A 10-s window cannot measure rates below about 9/min; see the module docstring.)
    scr_rate : (float, float)
        Skin conductance responses per minute. 0 is normal (a calm person may have none
        in 10 s); an SCR rises for 1-3 s and recovers over several seconds, so more than
        about one every 2 s (30/min) are not separate responses but electrode noise or
        movement.
    skin_conductance : (float, float)
        uS. Resting skin conductance is usually 1-20 uS; below 0.05 uS (over 20 MOhm)
        the electrodes are off or dry, above 100 uS (under 10 kOhm) they are shorted or
        wet -- or the channel is not in uS/Ohm at all.
    skin_temperature : (float, float)
        Degrees Celsius at the hand or wrist. Finger skin cools to about 20-22 degrees in
        strong vasoconstriction in a cool room; 42 is above any fever. Outside this the
        sensor is off the skin (measuring room air) or broken.
    temperature_change : float
        Largest change of skin temperature within one window (degrees). Skin temperature
        moves by well under a degree in 10 s; faster changes mean the sensor touched or
        left the skin.
    ppg_quality_min : float
        Template-matching PPG quality below which a window is ``poor``: 0.86, the
        threshold Orphanidou et al. (2015) derived for acceptable PPG.
    max_missing : float
        Largest fraction of filled-in samples (``missing != 0``) or NaN with which a
        channel's vitals are still computed; above it they are ``unknown``.
    """

    heart_rate: tuple[float, float] = (30.0, 220.0)
    breathing_rate: tuple[float, float] = (4.0, 40.0)
    scr_rate: tuple[float, float] = (0.0, 30.0)
    skin_conductance: tuple[float, float] = (0.05, 100.0)
    skin_temperature: tuple[float, float] = (20.0, 42.0)
    temperature_change: float = 2.0
    ppg_quality_min: float = 0.86
    max_missing: float = 0.2


@dataclass(frozen=True)
class Vital:
    """One vital sign of one channel in one window.

    Parameters
    ----------
    modality : str
        The model modality the channel belongs to (a key of
        :data:`symaffect.spec.MODALITIES`, ``"peripheral"`` for all vitals here).
    channel : str
        DEAP channel name: ``"BVP"``, ``"GSR"``, ``"Resp"`` or ``"Temp"``.
    name : str
        ``"heart_rate"``, ``"ppg_quality"``, ``"breathing_rate"``,
        ``"skin_conductance_level"``, ``"scr_rate"`` or ``"skin_temperature"``.
    value : float or None
        None when it cannot be computed from this window.
    unit : str
        ``"bpm"``, ``"breaths/min"``, ``"SCR/min"``, ``"uS"``, ``"degC"``, or ``""`` for a
        0-1 index or an unknown unit.
    status : str
        ``"ok"``, ``"implausible"`` (outside :class:`PlausibleRanges`: a sensor problem),
        ``"poor"`` (computed, but from a low-quality signal) or ``"unknown"``.
    detail : str
        Why implausible, poor or unknown, in plain words.
    """

    modality: str
    channel: str
    name: str
    value: float | None
    unit: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class Strip:
    """The last seconds of raw signal of some channels of one modality, for drawing.

    Parameters
    ----------
    modality : str
    channels : tuple of str
        DEAP names of the rows of ``values``.
    sfreq : float
        Sampling rate of ``values`` (Hz).
    values : ndarray of float32, shape (n_channels, n_times)
        Unfiltered signal in its own units (anti-alias filtered and decimated only); NaN
        where the input was NaN.
    """

    modality: str
    channels: tuple[str, ...]
    sfreq: float
    values: np.ndarray


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------


class _Unusable(Exception):
    """A channel's window cannot be assessed; the message says why, for a human."""


def _nk(fn, *args, fail: str = "the signal could not be analysed", **kwargs):
    """Call a NeuroKit2 function with its expected warnings silenced; its errors on
    degenerate input become :class:`_Unusable` with the message ``fail``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NeuroKitWarning)
        warnings.filterwarnings("ignore", message="(Mean of empty slice|invalid value|divide by zero)",
                                category=RuntimeWarning)
        try:
            return fn(*args, **kwargs)
        except _NK_ERRORS as e:
            log.debug("neurokit2 %s failed: %s", getattr(fn, "__name__", fn), e)
            raise _Unusable(fail) from None


def _usable(x: np.ndarray, missing: np.ndarray | None, *, sfreq: float, min_seconds: float,
            max_missing: float, flat_ok: bool = False) -> np.ndarray:
    """The channel as float64 with short NaN stretches interpolated, or raise :class:`_Unusable`.

    ``flat_ok``: a constant signal is fine (skin temperature over a few seconds)."""
    n = x.size
    if n < min_seconds * sfreq:
        raise _Unusable(f"only {n / sfreq:.1f} s of signal; at least {min_seconds:g} s are needed")
    if missing is not None:
        frac = float(np.count_nonzero(missing)) / n
        if frac > max_missing:
            raise _Unusable(f"{100 * frac:.0f}% of the window was filled in (signal lost or dropped)")
    x = np.asarray(x, dtype=np.float64)
    good = np.isfinite(x)
    if not good.all():
        frac = 1.0 - float(good.mean())
        if frac > max_missing:
            raise _Unusable(f"{100 * frac:.0f}% of the samples are not numbers (NaN)")
        idx = np.arange(n)
        x = np.interp(idx, idx[good], x[good])
    span = float(x.max() - x.min())
    if not flat_ok and span <= 1e-12 + 1e-9 * abs(float(np.median(x))):
        raise _Unusable("the signal is flat (no variation): is the sensor connected?")
    return x


def _spectrum(x: np.ndarray, sfreq: float, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed, zero-padded power spectrum of ``x`` inside ``band`` (Hz)."""
    n_fft = max(8192, 1 << int(np.ceil(np.log2(x.size))))
    p = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size), n_fft)) ** 2
    f = np.fft.rfftfreq(n_fft, 1.0 / sfreq)
    keep = (f >= band[0]) & (f <= band[1])
    return f[keep], p[keep]


def _too_fast(f: np.ndarray, p: np.ndarray, rate: float | None, ceiling: float) -> float | None:
    """The dominant rhythm (per minute) when it is faster than ``ceiling`` and not a
    harmonic of a detected ``rate`` (per minute) with at least half its power; else None."""
    if not p.size:
        return None
    k = int(np.argmax(p))
    dominant = 60.0 * float(f[k])
    if dominant <= ceiling:
        return None
    if rate is not None and rate > 0:
        near = np.abs(f - rate / 60.0) <= 0.1
        if near.any() and p[near].max() >= 0.5 * p[k]:
            return None
    return dominant


def _dominant(f: np.ndarray, p: np.ndarray) -> float:
    return 60.0 * float(f[int(np.argmax(p))])


def skin_conductance(x: np.ndarray) -> tuple[np.ndarray, str]:
    """A GSR channel as skin conductance in microsiemens.

    Parameters
    ----------
    x : ndarray, shape (T,)
        Finite GSR samples.

    Returns
    -------
    conductance : ndarray, shape (T,)
        uS.
    source : str
        ``"uS"`` (taken as is) or ``"Ohm"`` (converted as ``1e6 / x``).

    Raises
    ------
    _Unusable
        The level is neither a plausible conductance in uS (0-100) nor a resistance in Ohm
        (above 1000), e.g. raw ADC counts or kOhm.
    """
    m = float(np.median(x))
    if m > 1000.0:
        if np.any(x <= 0):
            raise _Unusable("GSR looks like a resistance in Ohm but has non-positive values")
        return 1e6 / x, "Ohm"
    if 0.0 < m <= 100.0:
        return x, "uS"
    raise _Unusable(f"GSR values around {m:.3g} are neither skin conductance in uS nor "
                    "skin resistance in Ohm: units unknown")


# ----------------------------------------------------------------------------------------
# Vitals per channel
# ----------------------------------------------------------------------------------------


def _heart(x: np.ndarray, sfreq: float, r: PlausibleRanges) -> list[Vital]:
    def vital(name, value, unit, status, detail=""):
        return Vital(_OF_MODALITY["BVP"], "BVP", name, value, unit, status, detail)

    clean = np.asarray(_nk(nk.ppg_clean, x, sampling_rate=sfreq), dtype=np.float64)
    peaks = np.asarray(_nk(nk.ppg_findpeaks, clean, sampling_rate=sfreq,
                           fail="no pulse waves found: check the PPG sensor")["PPG_Peaks"], dtype=np.int64)
    rate = None
    if peaks.size >= 3:
        rate = float(np.median(_nk(nk.signal_rate, peaks, sampling_rate=sfreq, desired_length=None)))
    quality = None
    if peaks.size >= 3:
        try:
            q = np.asarray(_nk(nk.ppg_quality, clean, peaks=peaks, sampling_rate=sfreq), dtype=np.float64)
            quality = float(np.nanmean(q)) if np.isfinite(q).any() else None
        except _Unusable:
            quality = None
    if quality is None:
        qv = vital("ppg_quality", None, "", "unknown", "too few pulse beats to assess the PPG")
    elif quality < r.ppg_quality_min:
        qv = vital("ppg_quality", quality, "", "poor",
                   f"pulse waves are irregular (quality {quality:.2f}, below {r.ppg_quality_min:g}): "
                   "movement or a loose sensor")
    else:
        qv = vital("ppg_quality", quality, "", "ok")

    lo, hi = r.heart_rate
    f, p = _spectrum(clean, sfreq, (0.5, 8.0))
    fast = _too_fast(f, p, rate, hi)
    if fast is not None:
        hv = vital("heart_rate", fast, "bpm", "implausible",
                   f"the PPG oscillates at {fast:.0f} per minute, faster than any heart ({hi:g} bpm): "
                   "check the PPG sensor (movement, light, loose clip)")
    elif rate is None:
        hv = vital("heart_rate", None, "bpm", "unknown",
                   f"fewer than 3 pulse beats found in {x.size / sfreq:.0f} s: check the PPG sensor")
    elif not lo <= rate <= hi:
        hv = vital("heart_rate", rate, "bpm", "implausible",
                   f"heart rate {rate:.0f} bpm is not physiological (expected {lo:g}-{hi:g}): check the PPG sensor")
    elif qv.status == "poor":
        hv = vital("heart_rate", rate, "bpm", "poor", f"the heart rate may be wrong: {qv.detail}")
    else:
        hv = vital("heart_rate", rate, "bpm", "ok")
    return [hv, qv]


def _breathing(x: np.ndarray, sfreq: float, r: PlausibleRanges) -> list[Vital]:
    def vital(value, status, detail=""):
        return Vital(_OF_MODALITY["Resp"], "Resp", "breathing_rate", value, "breaths/min", status, detail)

    clean = np.asarray(_nk(nk.rsp_clean, x, sampling_rate=sfreq), dtype=np.float64)
    try:
        info = _nk(nk.rsp_findpeaks, clean, sampling_rate=sfreq)
        cycles = np.concatenate([np.diff(np.asarray(info["RSP_Peaks"], dtype=np.int64)),
                                 np.diff(np.asarray(info["RSP_Troughs"], dtype=np.int64))])
    except _Unusable:  # the Khodadad detector fails on windows with under two breaths
        cycles = np.zeros(0)
    cycles = cycles[cycles > 0] / sfreq
    rate = 60.0 / float(np.median(cycles)) if cycles.size else None
    lo, hi = r.breathing_rate
    seconds = x.size / sfreq
    # rhythms with at least 1.5 cycles in the window (slower ones are drift here)
    f, p = _spectrum(clean, sfreq, (max(0.05, 1.5 / seconds), 3.0))
    fast = _too_fast(f, p, rate, hi)
    if fast is not None:
        return [vital(fast, "implausible",
                      f"the breathing signal oscillates at {fast:.0f} per minute, faster than breathing "
                      f"({hi:g}/min): movement, talking or a loose belt?")]
    note = ""
    if rate is None:
        k = int(np.argmax(p)) if p.size else 0
        # a rhythm is a spectral peak of its own, not the tail of slower drift at the band edge
        if k == 0 or p[k] < 0.25 * _spectrum(clean, sfreq, (0.05, 3.0))[1].max():
            return [vital(None, "unknown",
                          f"fewer than two breaths in {seconds:.0f} s: slow or irregular breathing cannot be "
                          "measured from this window")]
        rate = _dominant(f, p)
        note = "estimated from the breathing rhythm (fewer than two full breaths detected); coarse"
    if not lo <= rate <= hi:
        return [vital(rate, "implausible",
                      f"breathing rate {rate:.0f}/min is not physiological (expected {lo:g}-{hi:g}): "
                      "check the breathing belt")]
    if not note and p.size:
        rhythm = _dominant(f, p)
        if abs(rhythm - rate) > 0.25 * rate:
            return [vital(rate, "poor", f"irregular breathing: the breaths counted ({rate:.0f}/min) and the "
                                        f"breathing rhythm ({rhythm:.0f}/min) disagree, so the rate is uncertain")]
    return [vital(rate, "ok", note)]


def _skin(x: np.ndarray, sfreq: float, r: PlausibleRanges) -> list[Vital]:
    def vital(name, value, unit, status, detail=""):
        return Vital(_OF_MODALITY["GSR"], "GSR", name, value, unit, status, detail)

    us, source = skin_conductance(x)
    level = float(np.median(us))
    lo, hi = r.skin_conductance
    came = f" (from {float(np.median(x)):.4g} Ohm)" if source == "Ohm" else ""
    if not lo <= level <= hi:
        why = "electrodes off or dry" if level < lo else "electrodes shorted or wet"
        return [vital("skin_conductance_level", level, "uS", "implausible",
                      f"skin conductance {level:.3g} uS{came} is not physiological (expected {lo:g}-{hi:g}): "
                      f"{why}, or the GSR channel is not in uS or Ohm"),
                vital("scr_rate", None, "SCR/min", "unknown", "skin conductance level not plausible")]
    scl = vital("skin_conductance_level", level, "uS", "ok")
    clean = np.asarray(_nk(nk.eda_clean, us, sampling_rate=sfreq), dtype=np.float64)
    phasic = _nk(nk.eda_phasic, clean, sampling_rate=sfreq, method="highpass")["EDA_Phasic"].to_numpy()
    try:
        info = _nk(nk.eda_findpeaks, phasic, sampling_rate=sfreq, method="neurokit", amplitude_min=0.1)
        peaks = np.asarray(info["SCR_Peaks"], dtype=np.float64)
        onsets = np.asarray(info["SCR_Onsets"], dtype=np.float64)
    except _Unusable:  # no local maximum at all
        peaks = onsets = np.zeros(0)
    ok = np.isfinite(peaks)
    peaks, onsets = peaks[ok].astype(np.int64), onsets[ok]
    base = np.where(np.isfinite(onsets), phasic[np.nan_to_num(onsets, nan=0).astype(np.int64)], 0.0)
    n_scr = int(np.count_nonzero(phasic[peaks] - base >= SCR_MIN_AMPLITUDE))
    rate = n_scr * 60.0 * sfreq / x.size
    if rate > r.scr_rate[1]:
        return [scl, vital("scr_rate", rate, "SCR/min", "implausible",
                           f"{rate:.0f} skin responses per minute is more than skin produces "
                           f"(at most {r.scr_rate[1]:g}): electrode noise or movement")]
    return [scl, vital("scr_rate", rate, "SCR/min", "ok")]


def _temperature(x: np.ndarray, sfreq: float, r: PlausibleRanges) -> list[Vital]:
    mod = _OF_MODALITY["Temp"]
    level = float(np.median(x))
    if not 15.0 <= level <= 45.0:
        return [Vital(mod, "Temp", "skin_temperature", level, "", "unknown",
                      f"temperature value {level:.4g} is not in degrees Celsius and its unit is not "
                      "documented: not checked")]
    lo, hi = r.skin_temperature
    change = float(x.max() - x.min())
    if not lo <= level <= hi:
        return [Vital(mod, "Temp", "skin_temperature", level, "degC", "implausible",
                      f"skin temperature {level:.1f} degC is not physiological (expected {lo:g}-{hi:g}): "
                      "is the sensor on the skin?")]
    if change > r.temperature_change:
        return [Vital(mod, "Temp", "skin_temperature", level, "degC", "poor",
                      f"temperature changed by {change:.1f} degC within the window: loose sensor?")]
    return [Vital(mod, "Temp", "skin_temperature", level, "degC", "ok")]


_VITALS = {  # channel -> (names and units of its vitals, function)
    "BVP": ((("heart_rate", "bpm"), ("ppg_quality", "")), _heart),
    "Resp": ((("breathing_rate", "breaths/min"),), _breathing),
    "GSR": ((("skin_conductance_level", "uS"), ("scr_rate", "SCR/min")), _skin),
    "Temp": ((("skin_temperature", "degC"),), _temperature),
}


def window_vitals(
    raw: np.ndarray,
    ch_names: Sequence[str],
    missing: np.ndarray | None = None,
    *,
    sfreq: float = SFREQ,
    ranges: PlausibleRanges = PlausibleRanges(),
) -> list[Vital]:
    """Vital signs of the peripheral channels of one window, each with a plausibility status.

    Parameters
    ----------
    raw : ndarray, shape (C, T)
        Unfiltered window (e.g. :class:`~symaffect.stream.preprocess.WindowBuffer`
        ``raw``), channels in their own units; a 10-s window at 128 Hz is T = 1280.
    ch_names : sequence of str
        DEAP name of each row. Vitals come from ``BVP``, ``Resp``, ``GSR`` and ``Temp``;
        other rows are ignored.
    missing : ndarray of uint8, shape (C, T), optional
        :data:`~symaffect.stream.preprocess.MISSING_CODES` (0 = received). A channel with
        more than ``ranges.max_missing`` filled-in samples gets status ``unknown``.
    sfreq : float
        Sampling rate of ``raw`` (Hz).
    ranges : PlausibleRanges

    Returns
    -------
    list of Vital
        In the order BVP (``heart_rate``, ``ppg_quality``), Resp (``breathing_rate``),
        GSR (``skin_conductance_level``, ``scr_rate``), Temp (``skin_temperature``), for
        the channels present. Never raises on a bad signal: such vitals have
        ``value=None``, status ``unknown`` and the reason in ``detail``.

    Raises
    ------
    ValueError
        ``raw``, ``ch_names`` and ``missing`` do not agree in shape, or ``sfreq <= 0``.
    """
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[0] != len(ch_names):
        raise ValueError(f"raw must be (C, T) with C = len(ch_names) = {len(ch_names)}, got {raw.shape}")
    if missing is not None and np.shape(missing) != raw.shape:
        raise ValueError(f"missing must have raw's shape {raw.shape}, got {np.shape(missing)}")
    if not sfreq > 0:
        raise ValueError(f"sfreq must be positive, got {sfreq}")
    rows = {name: i for i, name in reversed(list(enumerate(ch_names)))}  # first row of a name
    out: list[Vital] = []
    for ch, (names, fn) in _VITALS.items():
        if ch not in rows:
            continue
        i = rows[ch]
        try:
            x = _usable(raw[i], None if missing is None else missing[i], sfreq=sfreq,
                        min_seconds=_MIN_SECONDS[ch], max_missing=ranges.max_missing, flat_ok=ch == "Temp")
            out.extend(fn(x, sfreq, ranges))
        except _Unusable as e:
            out.extend(Vital(_OF_MODALITY[ch], ch, name, None, unit, "unknown", str(e)) for name, unit in names)
    return out


# ----------------------------------------------------------------------------------------
# Strips
# ----------------------------------------------------------------------------------------


def _strip_rows(modality: str, rows: Sequence[int], ch_names: Sequence[str], max_channels: int) -> list[int]:
    rows = list(rows)
    if modality == "eeg":
        by_name = {ch_names[r]: r for r in rows}
        first = [by_name[c] for c in EEG_STRIP_CHANNELS if c in by_name]
        rows = first + [r for r in rows if r not in first]
    return rows[:max_channels]


def _decimate(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Polyphase anti-alias filter and resample along the last axis; NaN kept in place."""
    bad = ~np.isfinite(x)
    if bad.any():
        x = x.copy()
        idx = np.arange(x.shape[-1])
        for row, b in zip(x, bad):
            row[b] = np.interp(idx[b], idx[~b], row[~b]) if (~b).any() else 0.0
    y = resample_poly(x, up, down, axis=-1, padtype="line")
    if bad.any():  # an output sample is NaN when an input NaN lies within one output step
        n_out = y.shape[-1]
        pos = np.arange(n_out) * down / up
        for j, b in enumerate(bad):
            where = np.flatnonzero(b)
            if where.size:
                k = np.searchsorted(where, pos)
                near = np.minimum(
                    np.abs(where[np.clip(k, 0, where.size - 1)] - pos),
                    np.abs(where[np.clip(k - 1, 0, where.size - 1)] - pos),
                )
                y[j, near < down / up] = np.nan
    return y


def signal_strips(
    raw: np.ndarray,
    ch_names: Sequence[str],
    groups: dict[str, list[int]],
    *,
    seconds: float = 4.0,
    out_sfreq: float = 64.0,
    max_channels: int = 6,
    sfreq: float = SFREQ,
) -> list[Strip]:
    """The last seconds of raw signal per modality, decimated for drawing.

    Parameters
    ----------
    raw : ndarray, shape (C, T)
        Unfiltered window at ``sfreq``.
    ch_names : sequence of str
        DEAP name of each row.
    groups : dict of str to list of int
        Row indices of each modality's channels (as ``SessionPipeline.groups``); one
        strip per modality with at least one row, in this order.
    seconds : float
        Length of the strips; the whole window when it is shorter.
    out_sfreq : float
        Sampling rate of the strips (Hz), at most ``sfreq``. The ratio is applied with a
        polyphase anti-alias FIR (:func:`scipy.signal.resample_poly`), computed over half
        a second more than shown so the filter's start-up is not drawn.
    max_channels : int
        Most channels per strip. EEG takes Fz, Cz, Pz, Oz, Fp1, Fp2 first (those
        present), then its other channels in order; other modalities take their rows in
        order.
    sfreq : float
        Sampling rate of ``raw`` (Hz).

    Returns
    -------
    list of Strip
        ``values`` float32, shape (n_channels, round(seconds * out_sfreq)) (fewer samples
        for a shorter window). NaN in the input stays NaN at the output samples within
        one output step of it; the other samples are filtered from a copy with the NaN
        interpolated. The filter is zero-phase, so the last few samples (no future
        samples to filter with; the signal is extended by a fitted line) are less
        well anti-aliased than the rest.

    Raises
    ------
    ValueError
        Non-positive ``seconds``, ``out_sfreq`` above ``sfreq`` or not positive,
        ``max_channels < 1``, or a row index outside ``raw``.
    """
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[0] != len(ch_names):
        raise ValueError(f"raw must be (C, T) with C = len(ch_names) = {len(ch_names)}, got {raw.shape}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if not 0 < out_sfreq <= sfreq:
        raise ValueError(f"out_sfreq must be in (0, sfreq = {sfreq:g}], got {out_sfreq}")
    if max_channels < 1:
        raise ValueError(f"max_channels must be at least 1, got {max_channels}")
    ratio = Fraction(out_sfreq / sfreq).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    n_total = raw.shape[1]
    n_show = min(n_total, round(seconds * sfreq))
    n_show -= n_show % down
    margin = min(n_total - n_show, round(0.5 * sfreq))
    margin -= margin % down
    n_out = n_show * up // down
    out: list[Strip] = []
    for mod, rows in groups.items():
        if not rows:
            continue
        if max(rows) >= raw.shape[0] or min(rows) < 0:
            raise ValueError(f"groups[{mod!r}] has a row outside raw's {raw.shape[0]} rows")
        pick = _strip_rows(mod, rows, ch_names, max_channels)
        seg = raw[pick, n_total - n_show - margin:].astype(np.float64)
        if n_out == 0:
            y = np.zeros((len(pick), 0))
        elif up == down:
            y = seg
        else:
            y = _decimate(seg, up, down)
        out.append(Strip(mod, tuple(ch_names[r] for r in pick), float(out_sfreq),
                         np.ascontiguousarray(y[:, y.shape[1] - n_out:], dtype=np.float32)))
    return out
