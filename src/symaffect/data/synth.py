"""Synthetic data in DEAP's exact preprocessed format, with known, documented label effects.

``generate(out_dir)`` writes ``s01.dat ... sNN.dat`` (latin1-loadable pickles of
``{"data": float64 (n_trials, 40, n_samples), "labels": float64 (n_trials, 4)}``),
``participant_ratings.csv`` and ``synth_meta.json``. The signals are physiologically
plausible per channel type and carry small label effects spread over modalities
(:data:`EFFECTS`), with subject-to-subject variability and a per-trial fingerprint
that is independent of the labels. See ``docs/synthetic.md`` for the true effects and
a reference accuracy.

Determinism: subject ``k``'s file depends only on ``(seed, k, n_trials, seconds,
effect_scale)``, never on ``n_subjects``, so a subset of a larger set is identical to the
smaller set. Every random draw is made whatever ``effect_scale`` is, so
``effect_scale=0`` gives the same signals minus the label effects.

Units (channel: unit): EEG, hEOG, vEOG, zEMG, tEMG: microvolts; GSR: skin resistance in
Ohm (DEAP's convention; ``1e6 / conductance_in_microsiemens``); Resp and BVP: arbitrary
units (as DEAP's belt and plethysmograph); Temp: degrees Celsius.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft

from symaffect._io import write_json, write_text
from symaffect.data.deap import RATING_COLUMNS
from symaffect.data.deap_writer import write_subject
from symaffect.errors import ConfigError
from symaffect.spec import (
    BASELINE_SAMPLES,
    CH_INDEX,
    DEAP_CHANNELS,
    EEG_CHANNELS,
    LABEL_COLUMNS,
    SFREQ,
)

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
"""Bumped whenever the same arguments would produce different files."""

BASELINE_S = BASELINE_SAMPLES / SFREQ
"""The 3-s pre-trial baseline at the start of every trial (label-free)."""

NO_FAMILIARITY = (2, 15, 23)
"""Participants whose Familiarity is missing in DEAP (left empty here too)."""

CHANNEL_UNITS: dict[str, str] = {
    **{c: "uV" for c in EEG_CHANNELS},
    "hEOG": "uV", "vEOG": "uV", "zEMG": "uV", "tEMG": "uV",
    "GSR": "Ohm", "Resp": "a.u.", "BVP": "a.u.", "Temp": "degC",
}

# Random streams: every component draws from its own stream keyed by (seed, tag, ...).
_TAG_VIDEO, _TAG_RATINGS, _TAG_SUBJECT, _TAG_TRIALS = 11, 12, 13, 14


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *map(int, keys)])


# ----------------------------------------------------------------------------------------
# The true effects
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrueEffect:
    """One label effect built into the generator.

    The effect at a trial is ``effect_scale * gain_s * size * c`` where
    ``c = (rating - 5) / 4`` (so ``c`` is in [-1, 1]; ``c = 1`` is a rating of 9) and
    ``gain_s`` is the subject's gain for this effect (see :data:`SUBJECT_GAIN`).

    Parameters
    ----------
    name : str
    label : str
        ``"valence"``, ``"arousal"`` or ``"liking"``.
    modality : str
        ``"eeg"``, ``"peripheral"`` or ``"eog"``.
    channels : str
        Where the effect is (human-readable).
    size : float
        Effect at ``c = 1`` and gain 1, in ``unit``.
    unit : str
    description : str
    """

    name: str
    label: str
    modality: str
    channels: str
    size: float
    unit: str
    description: str


EFFECTS: dict[str, TrueEffect] = {
    e.name: e
    for e in (
        TrueEffect("frontal_alpha_asymmetry", "valence", "eeg",
                   "Fp1 AF3 F3 F7 FC5 vs Fp2 AF4 F4 F8 FC6", 1.2, "ln power",
                   "ln alpha power right-frontal minus left-frontal rises with valence "
                   "(half on each side, opposite signs)"),
        TrueEffect("temporal_gamma_valence", "valence", "eeg", "T7 T8 (and neighbours)",
                   0.8, "ln power", "gamma (30-45 Hz) power at temporal sites rises with valence"),
        TrueEffect("beta_gamma_arousal", "arousal", "eeg", "all EEG", 0.3, "ln power",
                   "beta (13-30 Hz) and gamma power rise with arousal"),
        TrueEffect("posterior_alpha_arousal", "arousal", "eeg", "P/PO/O sites", -0.3,
                   "ln power", "posterior alpha power falls with arousal"),
        TrueEffect("frontal_theta_liking", "liking", "eeg", "Fz AF3 AF4 FC1 FC2 (midline)",
                   0.5, "ln power", "frontal-midline theta power rises with liking"),
        TrueEffect("idiosyncratic_valence", "valence", "eeg",
                   "subject-specific smooth topography, all bands", 0.2, "ln power (rms)",
                   "a per-subject random spatial-spectral pattern of power changes with "
                   "valence (mean zero over subjects: learnable within a subject only)"),
        TrueEffect("idiosyncratic_arousal", "arousal", "eeg",
                   "subject-specific smooth topography, all bands", 0.2, "ln power (rms)",
                   "as idiosyncratic_valence, for arousal"),
        TrueEffect("heart_rate_arousal", "arousal", "peripheral", "BVP", 5.0, "bpm",
                   "heart rate rises with arousal"),
        TrueEffect("scr_rate_arousal", "arousal", "peripheral", "GSR", 0.7, "ln rate",
                   "rate of skin-conductance responses rises with arousal"),
        TrueEffect("scl_arousal", "arousal", "peripheral", "GSR", 0.15, "ln conductance",
                   "tonic skin conductance rises with arousal (resistance falls)"),
        TrueEffect("resp_rate_arousal", "arousal", "peripheral", "Resp", 2.0,
                   "breaths/min", "breathing rate rises with arousal"),
        TrueEffect("temg_tone_arousal", "arousal", "peripheral", "tEMG", 0.3, "ln amplitude",
                   "tonic trapezius EMG amplitude rises with arousal"),
        TrueEffect("zemg_bursts_valence", "valence", "peripheral", "zEMG", 1.5, "ln rate",
                   "rate of zygomatic EMG bursts (smiles) rises with valence"),
        TrueEffect("zemg_amplitude_liking", "liking", "peripheral", "zEMG", 0.5,
                   "ln amplitude", "zygomatic EMG burst amplitude rises with liking"),
        TrueEffect("blink_rate_arousal", "arousal", "eog", "vEOG", 0.45, "ln rate",
                   "blink rate rises with arousal"),
    )
}
"""The generator's true label effects (sizes at ``effect_scale=1`` and subject gain 1)."""

SUBJECT_GAIN: dict[str, float] = {
    "p_responder": 0.6, "responder_mean": 1.0, "responder_sd": 0.35,
    "other_mean": 0.0, "other_sd": 0.4,
}
"""Per-subject, per-effect gain: with probability ``p_responder`` drawn from
N(responder_mean, responder_sd), otherwise from N(other_mean, other_sd) (a weak or
reversed responder). Drawn independently for every (subject, effect)."""

FINGERPRINT: dict[str, float] = {
    "eeg_band_ln_sd": 0.30,  # per-trial spatially smooth ln-power field, per band
    "hr_bpm_sd": 3.0,
    "scl_ln_sd": 0.15,
    "resp_rate_sd": 1.2,
    "temp_degc_sd": 0.3,
    "emg_tone_ln_sd": 0.25,
    "blink_rate_ln_sd": 0.25,
    "scr_rate_ln_sd": 0.25,
    "bvp_amp_ln_sd": 0.2,
}
"""Per-trial random signature, independent of the labels (sds; see docs/synthetic.md)."""

_EEG_BANDS = ("background", "theta", "alpha", "beta", "gamma")


# ----------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SyntheticSubject:
    """One generated subject.

    Parameters
    ----------
    subject : int
        1-based participant id.
    data : ndarray, shape (n_trials, 40, n_samples), float64
        Signals in DEAP channel order (units in :data:`CHANNEL_UNITS`).
    labels : ndarray, shape (n_trials, 4), float64
        Valence, arousal, dominance, liking in [1, 9], in video (Experiment_id) order.
    familiarity : ndarray, shape (n_trials,), float64
        1-5, NaN for the participants in :data:`NO_FAMILIARITY`.
    presentation : ndarray of int, shape (n_trials,)
        1-based presentation position ("Trial" in the csv) of each video.
    start_time : ndarray of int, shape (n_trials,)
        Start time of each video in microseconds.
    gains : dict of str to float
        The subject's gain of every effect in :data:`EFFECTS`.
    """

    subject: int
    data: np.ndarray
    labels: np.ndarray
    familiarity: np.ndarray
    presentation: np.ndarray
    start_time: np.ndarray
    gains: dict[str, float] = field(default_factory=dict)


def generate(
    out_dir: str | Path,
    *,
    n_subjects: int = 32,
    n_trials: int = 40,
    seconds: float = 63.0,
    seed: int = 0,
    effect_scale: float = 1.0,
    n_jobs: int = 1,
) -> Path:
    """Write a synthetic DEAP-format data set.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write (created if needed). Files of the same names are replaced;
        other files (e.g. ``s33.dat`` of an earlier, larger run) are left alone.
    n_subjects, n_trials : int
        Subjects ``s01 .. sNN`` and trials (videos) per subject.
    seconds : float
        Trial length including the 3-s baseline; ``n_samples = round(seconds * 128)``.
    seed : int
        Seed of every random stream.
    effect_scale : float
        Multiplies every label effect; 0 makes the signals carry no label information.
    n_jobs : int
        Worker processes (each generates and writes whole subjects); the files do not
        depend on it.

    Returns
    -------
    Path
        ``out_dir``.
    """
    _check_args(n_subjects=n_subjects, n_trials=n_trials, seconds=seconds,
                effect_scale=effect_scale, n_jobs=n_jobs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(n_trials=n_trials, seconds=seconds, seed=seed, effect_scale=effect_scale)
    subjects = list(range(1, n_subjects + 1))
    if n_jobs > 1 and n_subjects > 1:
        with ProcessPoolExecutor(max_workers=min(n_jobs, n_subjects)) as pool:
            results = list(pool.map(_generate_and_write, subjects, [out] * n_subjects,
                                    [kw] * n_subjects))
    else:
        results = [_generate_and_write(k, out, kw) for k in subjects]
    write_text(out / "participant_ratings.csv", _ratings_csv(results))
    write_json(out / "synth_meta.json", _meta(results, n_subjects=n_subjects, **kw))
    return out


def synth_subject(
    subject: int,
    *,
    n_trials: int = 40,
    seconds: float = 63.0,
    seed: int = 0,
    effect_scale: float = 1.0,
) -> SyntheticSubject:
    """Generate one subject in memory (what ``generate`` writes to ``sNN.dat``).

    Parameters
    ----------
    subject : int
        1-based participant id; the result depends only on it and the other arguments.
    n_trials, seconds, seed, effect_scale
        As in :func:`generate`.

    Returns
    -------
    SyntheticSubject
    """
    _check_args(n_subjects=subject, n_trials=n_trials, seconds=seconds,
                effect_scale=effect_scale, n_jobs=1)
    n_samples = int(round(seconds * SFREQ))
    ratings = synth_ratings(subject, n_trials=n_trials, seed=seed)
    labels = ratings["labels"]
    prm = _subject_params(_rng(seed, _TAG_SUBJECT, subject))
    gains = prm["gains"]
    rng = _rng(seed, _TAG_TRIALS, subject, n_trials)
    c = {name: (labels[:, i] - 5.0) / 4.0 for i, name in enumerate(LABEL_COLUMNS)}
    eff = {name: effect_scale * gains[name] * e.size * c[e.label] for name, e in EFFECTS.items()}

    data = np.empty((n_trials, len(DEAP_CHANNELS), n_samples), dtype=np.float64)
    t = np.arange(n_samples) / SFREQ
    ramp = _ramp(t)
    data[:, :32] = _eeg(rng, prm, eff, n_trials, n_samples)
    data[:, CH_INDEX["hEOG"]], data[:, CH_INDEX["vEOG"]] = _eog(rng, prm, eff, n_trials, t)
    data[:, CH_INDEX["GSR"]] = _gsr(rng, prm, eff, n_trials, t, ramp)
    resp, resp_phase = _resp(rng, prm, eff, n_trials, t, ramp)
    data[:, CH_INDEX["Resp"]] = resp
    data[:, CH_INDEX["BVP"]] = _bvp(rng, prm, eff, n_trials, t, ramp, resp, resp_phase)
    data[:, CH_INDEX["zEMG"]], data[:, CH_INDEX["tEMG"]] = _emg(rng, prm, eff, n_trials, t, ramp)
    data[:, CH_INDEX["Temp"]] = _temp(rng, prm, n_trials, t)
    return SyntheticSubject(
        subject=subject, data=data, labels=labels, familiarity=ratings["familiarity"],
        presentation=ratings["presentation"], start_time=ratings["start_time"],
        gains={k: float(v) for k, v in gains.items()},
    )


def synth_ratings(subject: int, *, n_trials: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """Ratings of one subject, distributed like DEAP's.

    Each video has a latent valence and arousal (shared by all subjects; the videos
    cycle through the four quadrants); a subject's rating adds a personal bias and
    trial noise. Liking correlates with valence (r about 0.6), dominance with valence
    (about 0.4), arousal weakly with both. Ratings are continuous in [1, 9], rounded to
    two decimals.

    Returns
    -------
    dict
        ``labels`` (n_trials, 4) float64 in video order; ``familiarity`` (n_trials,)
        (NaN for :data:`NO_FAMILIARITY`); ``presentation`` (n_trials,) int, 1-based;
        ``start_time`` (n_trials,) int microseconds.
    """
    video = np.empty((n_trials, 2))
    for v in range(n_trials):  # video v's latent (valence, arousal): depends on (seed, v) only
        quadrant = v % 4  # HVHA, LVHA, LVLA, HVLA
        sv = 1.0 if quadrant in (0, 3) else -1.0
        sa = 1.0 if quadrant in (0, 1) else -1.0
        r = _rng(seed, _TAG_VIDEO, v)
        video[v] = (sv * abs(r.normal(0.85, 0.35)), sa * abs(r.normal(0.6, 0.35)))
    rng = _rng(seed, _TAG_RATINGS, subject)
    bias = rng.normal(0.0, 0.25, size=4)
    e = rng.standard_normal((n_trials, 4))
    # standardised latent ratings (valence, arousal, dominance, liking)
    zv = video[:, 0] + 0.75 * e[:, 0]
    za = video[:, 1] + 0.85 * (0.15 * e[:, 0] + np.sqrt(1 - 0.15**2) * e[:, 1])
    zd = 0.45 * zv - 0.15 * za + 0.85 * e[:, 2]
    zl = 0.62 * zv + 0.2 * za + 0.75 * e[:, 3]
    z = np.stack([zv, za, zd, zl], axis=1) + bias
    labels = np.round(np.clip(5.0 + 1.9 * z, 1.0, 9.0), 2)
    fam = np.clip(np.round(2.6 + 0.35 * zl + rng.normal(0, 1.1, n_trials)), 1, 5)
    if subject in NO_FAMILIARITY:
        fam = np.full(n_trials, np.nan)
    order = rng.permutation(n_trials)  # order[p] = video shown at position p
    presentation = np.empty(n_trials, dtype=np.int64)
    presentation[order] = np.arange(1, n_trials + 1)
    gaps = rng.uniform(80.0, 95.0, n_trials)  # video + fixation + rating screens (s)
    gaps[n_trials // 2] += 300.0  # the mid-experiment break
    starts_by_position = 120.0 + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    start_time = np.round(starts_by_position[presentation - 1] * 1e6).astype(np.int64)
    return {"labels": labels.astype(np.float64), "familiarity": fam,
            "presentation": presentation, "start_time": start_time}


# ----------------------------------------------------------------------------------------
# Subject parameters
# ----------------------------------------------------------------------------------------


def _subject_params(rng: np.random.Generator) -> dict:
    """Per-subject constants: signal baselines, spectral offsets and effect gains."""
    g = SUBJECT_GAIN
    gains = {}
    for name in EFFECTS:
        responder = rng.random() < g["p_responder"]
        mean, sd = (g["responder_mean"], g["responder_sd"]) if responder else (g["other_mean"], g["other_sd"])
        gains[name] = float(rng.normal(mean, sd))
    return {
        "gains": gains,
        "eeg_scale": float(np.exp(rng.normal(0.0, 0.2))),
        "eeg_exponent": float(rng.uniform(1.6, 2.2)),
        "iaf": float(np.clip(rng.normal(10.0, 0.7), 8.5, 12.0)),
        "eeg_offset": rng.standard_normal((len(EEG_CHANNELS), len(_EEG_BANDS))),  # x 0.35 field
        "idio_valence": rng.standard_normal((len(EEG_CHANNELS), len(_EEG_BANDS))),
        "idio_arousal": rng.standard_normal((len(EEG_CHANNELS), len(_EEG_BANDS))),
        "blink_rate": float(np.clip(rng.normal(15.0, 4.0), 6.0, 28.0)) / 60.0,  # per s
        "blink_amp": float(rng.uniform(100.0, 300.0)),
        "blink_dur": float(rng.uniform(0.2, 0.4)),
        "saccade_rate": float(rng.uniform(0.8, 2.0)),
        "gaze_sd": float(rng.uniform(30.0, 70.0)),
        "scl": float(np.exp(rng.normal(np.log(5.0), 0.5))),  # microsiemens
        "scr_rate": float(rng.uniform(2.0, 6.0)) / 60.0,
        "scr_amp": float(np.exp(rng.normal(np.log(0.25), 0.4))),
        "scr_decay": float(rng.uniform(2.5, 5.0)),
        "hr": float(np.clip(rng.normal(73.0, 7.0), 58.0, 90.0)),
        "rsa": float(rng.uniform(1.5, 5.0)),
        "bvp_amp": float(np.exp(rng.normal(0.0, 0.3))),
        "resp_rate": float(rng.uniform(12.0, 18.0)),
        "resp_amp": float(np.exp(rng.normal(0.0, 0.3))),
        "temp": float(rng.uniform(30.5, 34.5)),
        "zemg_tone": float(rng.uniform(2.0, 5.0)),
        "zemg_rate": float(rng.uniform(2.0, 6.0)) / 60.0,
        "zemg_amp": float(rng.uniform(10.0, 30.0)),
        "temg_tone": float(rng.uniform(3.0, 8.0)),
        "temg_rate": float(rng.uniform(1.0, 3.0)) / 60.0,
        "temg_amp": float(rng.uniform(10.0, 40.0)),
    }


# ----------------------------------------------------------------------------------------
# EEG: 1/f background + rhythms on sources at the electrode sites, smooth spatial mixing,
# common average reference, 4-45 Hz, microvolts.
# ----------------------------------------------------------------------------------------

_MONTAGE_CACHE: dict[str, np.ndarray] = {}


def eeg_positions() -> np.ndarray:
    """Unit vectors of DEAP's 32 EEG sites on an idealised spherical 10-20 head.

    x to the right, y to the nose, z to the vertex. Sites on the 10-20 grid are placed
    from their inclination (from Cz) and azimuth; 10-10 sites are midpoints of their
    neighbours on the sphere.

    Returns
    -------
    ndarray, shape (32, 3)
        In the order of :data:`symaffect.spec.EEG_CHANNELS`.
    """
    if "pos" in _MONTAGE_CACHE:
        return _MONTAGE_CACHE["pos"]

    def sph(incl: float, azim: float) -> np.ndarray:  # azimuth from the nose, + to the left
        i, a = np.deg2rad(incl), np.deg2rad(azim)
        return np.array([-np.sin(i) * np.sin(a), np.sin(i) * np.cos(a), np.cos(i)])

    p = {
        "Fp1": sph(72, 18), "Fp2": sph(72, -18), "F7": sph(72, 54), "F8": sph(72, -54),
        "T7": sph(72, 90), "T8": sph(72, -90), "P7": sph(72, 126), "P8": sph(72, -126),
        "O1": sph(72, 162), "O2": sph(72, -162), "Oz": sph(72, 180),
        "Fz": sph(36, 0), "Cz": sph(0, 0), "Pz": sph(36, 180), "C3": sph(36, 90), "C4": sph(36, -90),
    }

    def mid(a: str, b: str) -> np.ndarray:
        v = p[a] + p[b]
        return v / np.linalg.norm(v)

    for name, (a, b) in {
        "F3": ("Fz", "F7"), "F4": ("Fz", "F8"), "P3": ("Pz", "P7"), "P4": ("Pz", "P8"),
        "AF3": ("Fp1", "F3"), "AF4": ("Fp2", "F4"), "FC1": ("F3", "Cz"), "FC2": ("F4", "Cz"),
        "FC5": ("F7", "C3"), "FC6": ("F8", "C4"), "CP1": ("P3", "Cz"), "CP2": ("P4", "Cz"),
        "CP5": ("P7", "C3"), "CP6": ("P8", "C4"), "PO3": ("P3", "O1"), "PO4": ("P4", "O2"),
    }.items():
        p[name] = mid(a, b)
    pos = np.array([p[c] for c in EEG_CHANNELS])
    _MONTAGE_CACHE["pos"] = pos
    return pos


def _eeg_layout() -> dict[str, np.ndarray]:
    """Mixing matrix (with common average reference), field factor and region weights."""
    if "mix" in _MONTAGE_CACHE:
        return _MONTAGE_CACHE
    pos = eeg_positions()
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)  # squared chord distance on the unit sphere
    mix = np.exp(-d2 / (2 * 0.25**2)) + 0.1  # local spread + a global volume-conducted part
    mix /= np.linalg.norm(mix, axis=1, keepdims=True)
    mix -= mix.mean(axis=0, keepdims=True)  # common average reference
    # square root of a smooth spatial covariance: turns white per-site draws into smooth fields
    k = np.exp(-d2 / (2 * 0.6**2))
    w, v = np.linalg.eigh(k)
    field_ = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    field_ /= np.sqrt((field_**2).sum(1, keepdims=True))  # unit variance at every site
    idx = {c: i for i, c in enumerate(EEG_CHANNELS)}

    def near(*names: str, width: float = 0.3) -> np.ndarray:
        dd = np.min([((pos - pos[idx[n]]) ** 2).sum(1) for n in names], axis=0)
        return np.exp(-dd / (2 * width**2))

    y = pos[:, 1]
    posterior = np.clip((0.2 - y) / 1.0, 0, 1) ** 1.5 / 1.2**1.5  # 0 front .. 1 occipital
    left = np.array([idx[c] for c in ("Fp1", "AF3", "F3", "F7", "FC5")])
    right = np.array([idx[c] for c in ("Fp2", "AF4", "F4", "F8", "FC6")])
    faa = np.zeros(32)
    faa[left], faa[right] = -0.5, 0.5
    _MONTAGE_CACHE.update(
        mix=mix.astype(np.float32),
        field=field_,
        posterior=posterior,
        frontal_midline=near("Fz", width=0.25),
        temporal=near("T7", "T8", width=0.3),
        central=near("C3", "C4", "Cz", width=0.4),
        faa=faa,
    )
    return _MONTAGE_CACHE


def _eeg_band_strengths(prm: dict, lay: dict) -> np.ndarray:
    """Per-site linear strength of each component, shape (32, 5), before any trial effect."""
    s = np.empty((32, 5))
    s[:, 0] = 60.0  # background PSD at 4 Hz (uV^2/Hz)
    s[:, 1] = 30.0 * (0.4 + 0.6 * lay["frontal_midline"])  # theta power (uV^2)
    s[:, 2] = 500.0 * (0.12 + 0.88 * lay["posterior"])  # alpha power (uV^2)
    s[:, 3] = 30.0 * (0.6 + 0.4 * lay["central"])  # beta power (uV^2)
    s[:, 4] = 8.0 * (0.7 + 0.3 * lay["temporal"])  # gamma power (uV^2)
    return s * prm["eeg_scale"] ** 2


def _eeg_shapes(prm: dict, freqs: np.ndarray) -> np.ndarray:
    """Spectral shape of each component, shape (5, n_freqs): PSD per unit strength."""
    f = np.maximum(freqs, 0.5)

    def peak(f0: float, sd: float) -> np.ndarray:
        return np.exp(-0.5 * ((f - f0) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))

    band = 1.0 / np.sqrt(1 + (4.0 / f) ** 8) / np.sqrt(1 + (f / 45.0) ** 8)  # 4-45 Hz
    band[freqs == 0] = 0.0
    shapes = np.stack([
        (f / 4.0) ** -prm["eeg_exponent"],
        peak(6.0, 1.0),
        peak(prm["iaf"], 1.0),
        peak(20.0, 4.5),
        peak(38.0, 5.0),
    ])
    return shapes * band**2


def _eeg(rng: np.random.Generator, prm: dict, eff: dict, n_trials: int, n_samples: int) -> np.ndarray:
    """EEG of all trials, shape (n_trials, 32, n_samples), float32, microvolts."""
    lay = _eeg_layout()
    fp_sd = FINGERPRINT["eeg_band_ln_sd"]
    # ln-gain fields per (trial, site, component): subject offset + trial fingerprint
    subj = lay["field"] @ (0.35 * prm["eeg_offset"])  # (32, 5)
    fp = np.einsum("jk,ikb->ijb", lay["field"], rng.standard_normal((n_trials, 32, 5))) * fp_sd
    base_ln = subj[None] + fp  # (n_trials, 32, 5)
    eff_ln = np.zeros_like(base_ln)
    eff_ln[:, :, 2] += eff["frontal_alpha_asymmetry"][:, None] * lay["faa"]
    eff_ln[:, :, 4] += eff["temporal_gamma_valence"][:, None] * lay["temporal"]
    eff_ln[:, :, 3:5] += eff["beta_gamma_arousal"][:, None, None]
    eff_ln[:, :, 2] += eff["posterior_alpha_arousal"][:, None] * lay["posterior"]
    eff_ln[:, :, 1] += eff["frontal_theta_liking"][:, None] * lay["frontal_midline"]
    for label in ("valence", "arousal"):
        pattern = lay["field"] @ prm[f"idio_{label}"]  # (32, 5), smooth over the scalp
        pattern /= np.sqrt((pattern**2).mean())
        eff_ln += eff[f"idiosyncratic_{label}"][:, None, None] * pattern
    strengths = _eeg_band_strengths(prm, lay)
    video = _eeg_segment(rng, prm, strengths * np.exp(base_ln + eff_ln), n_samples)
    # the 3-s baseline carries no label effect: a label-free segment, cross-faded in
    n_base = min(n_samples, int(round((BASELINE_S + 1.0) * SFREQ)))
    base = _eeg_segment(rng, prm, strengths * np.exp(base_ln), n_base)
    t = np.arange(n_base) / SFREQ
    r = np.clip((t - BASELINE_S) / 0.5, 0.0, 1.0)
    a, b = np.cos(0.5 * np.pi * r), np.sin(0.5 * np.pi * r)  # a^2 + b^2 = 1 keeps the variance
    video[:, :, :n_base] = a * base + b * video[:, :, :n_base]
    return video


def _eeg_segment(rng: np.random.Generator, prm: dict, strength: np.ndarray, n: int) -> np.ndarray:
    """Gaussian EEG with per-(trial, site) spectra, mixed over the montage.

    strength : (n_trials, 32, 5) linear strengths of the components; returns
    (n_trials, 32, n) float32.
    """
    freqs = np.fft.rfftfreq(n, 1.0 / SFREQ)
    shapes = _eeg_shapes(prm, freqs).astype(np.float32)  # (5, F)
    n_trials = strength.shape[0]
    amp = (strength.reshape(-1, 5).astype(np.float32) @ shapes).reshape(n_trials, 32, -1)  # PSD, uV^2/Hz
    np.sqrt(amp, out=amp)
    amp *= np.float32(np.sqrt(SFREQ / n / 4.0))  # E|z|^2 = 2: the variance is sum(PSD * df)
    z = rng.standard_normal((n_trials, 32, freqs.size, 2), dtype=np.float32).view(np.complex64)[..., 0]
    z *= amp
    src = scipy.fft.irfft(z, n=n, axis=-1, norm="forward")  # (n_trials, 32, n) float32
    return np.einsum("cj,ijt->ict", _eeg_layout()["mix"], src)


# ----------------------------------------------------------------------------------------
# Peripheral signals and EOG: vectorised over (trial, time); events rendered with bincount.
# ----------------------------------------------------------------------------------------


def _ramp(t: np.ndarray) -> np.ndarray:
    """0 in the baseline, rising smoothly to 1 over the first 3 s of the video."""
    r = np.clip((t - BASELINE_S) / 3.0, 0.0, 1.0)
    return r * r * (3 - 2 * r)


def _slow(rng: np.random.Generator, n_rows: int, n: int, fmax: float) -> np.ndarray:
    """Unit-variance smooth noise band-limited to (0, fmax] Hz, shape (n_rows, n)."""
    nb = max(1, int(fmax * n / SFREQ))
    spec = np.zeros((n_rows, n // 2 + 1), dtype=np.complex128)
    re, im = rng.standard_normal((n_rows, nb)), rng.standard_normal((n_rows, nb))
    spec[:, 1:nb + 1] = (re + 1j * im) / np.sqrt(2)
    return scipy.fft.irfft(spec, n=n, axis=-1, norm="forward") / np.sqrt(2 * nb)


def _events(
    rng: np.random.Generator, rate_base: np.ndarray, rate_video: np.ndarray, n: int, n_attr: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson event onsets per trial: ``rate_base`` (per s) in the baseline, ``rate_video`` after.

    Each segment draws from its own child generator (the parent always advances by the
    same amount), so the rates change neither the baseline's events nor any later draw.

    Returns
    -------
    rows, onsets : ndarray of int, shape (n_events,)
        Trial index and onset sample, sorted by row, then onset.
    attrs : ndarray, shape (n_events, n_attr)
        Standard-normal draws that travel with each event (durations, amplitudes).
    """
    n_base = min(n, BASELINE_SAMPLES)
    seeds = rng.integers(0, 2**63, size=2)
    rows, onsets, attrs = [], [], []
    for seg_seed, (lo, hi, rate) in zip(seeds, ((0, n_base, rate_base), (n_base, n, rate_video))):
        if hi <= lo:
            continue
        r = np.random.default_rng(seg_seed)
        counts = r.poisson(np.asarray(rate) * (hi - lo) / SFREQ)
        rows.append(np.repeat(np.arange(counts.size), counts))
        onsets.append(r.integers(lo, hi, counts.sum()))
        attrs.append(r.standard_normal((counts.sum(), n_attr)))
    ro, on, at = np.concatenate(rows), np.concatenate(onsets), np.concatenate(attrs)
    order = np.lexsort((on, ro))
    return ro[order], on[order], at[order]


def _render(n_rows: int, n: int, rows: np.ndarray, onsets: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Sum event kernels (n_events, L) starting at ``onsets`` into an (n_rows, n) array."""
    if rows.size == 0:
        return np.zeros((n_rows, n))
    idx = onsets[:, None] + np.arange(kernels.shape[1])
    ok = idx < n
    flat = (rows[:, None] * n + idx)[ok]
    return np.bincount(flat, weights=kernels[ok], minlength=n_rows * n).reshape(n_rows, n)


def _bump(u: np.ndarray) -> np.ndarray:
    """A smooth bump on u in [0, 1] (0 outside), peak 1."""
    return np.where((u >= 0) & (u <= 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0)


def _eog(rng, prm, eff, n_trials, t):
    """hEOG (saccades, drift) and vEOG (blinks, drift), each (n_trials, n), microvolts."""
    n = t.size
    fpb = np.exp(FINGERPRINT["blink_rate_ln_sd"] * rng.standard_normal(n_trials))
    rate0 = prm["blink_rate"] * fpb
    rows, on, z = _events(rng, rate0, rate0 * np.exp(eff["blink_rate_arousal"]), n, 2)
    dur = prm["blink_dur"] * np.exp(0.15 * z[:, 0])
    amp = prm["blink_amp"] * np.exp(0.2 * z[:, 1])
    length = int(np.ceil(0.6 * SFREQ))
    u = (np.arange(length)[None] / SFREQ) / dur[:, None]
    # quick lid closure, slower opening
    blinks = _render(n_trials, n, rows, on, amp[:, None] * _bump(u**0.65))
    # saccades: gaze jumps to a new random position at Poisson times
    rate = np.full(n_trials, prm["saccade_rate"])
    srows, son, z = _events(rng, rate, rate, n, 2)
    target = prm["gaze_sd"] * z
    start = rng.normal(0, prm["gaze_sd"], (n_trials, 2))
    first = np.r_[True, srows[1:] != srows[:-1]] if srows.size else np.zeros(0, bool)
    prev = np.roll(target, 1, axis=0)
    prev[first] = start[srows[first]]
    jumps = target - prev
    gaze_h = np.cumsum(_render(n_trials, n, srows, son, jumps[:, :1]), axis=1) + start[:, :1]
    gaze_v = np.cumsum(_render(n_trials, n, srows, son, 0.3 * jumps[:, 1:]), axis=1) + 0.3 * start[:, 1:]
    heog = (gaze_h + 0.08 * blinks + 25.0 * _slow(rng, n_trials, n, 0.2)
            + 4.0 * rng.standard_normal((n_trials, n)))
    veog = blinks + gaze_v + 30.0 * _slow(rng, n_trials, n, 0.2) + 4.0 * rng.standard_normal((n_trials, n))
    return heog, veog


def _gsr(rng, prm, eff, n_trials, t, ramp):
    """Skin resistance (Ohm) from tonic conductance and phasic SCRs, (n_trials, n)."""
    n = t.size
    fp = FINGERPRINT
    scl = prm["scl"] * np.exp(fp["scl_ln_sd"] * rng.standard_normal(n_trials))[:, None]
    habituation = rng.normal(-0.08, 0.06, n_trials)[:, None] * (t / max(t[-1], 1.0))
    tonic = scl * np.exp(eff["scl_arousal"][:, None] * ramp + habituation
                         + 0.04 * _slow(rng, n_trials, n, 0.05))
    rate0 = prm["scr_rate"] * np.exp(fp["scr_rate_ln_sd"] * rng.standard_normal(n_trials))
    rows, on, z = _events(rng, rate0, rate0 * np.exp(eff["scr_rate_arousal"]), n, 1)
    tk = np.arange(int(20 * SFREQ)) / SFREQ
    k = np.exp(-tk / prm["scr_decay"]) - np.exp(-tk / 0.75)  # Bateman-shaped SCR
    k /= k.max()
    amp = prm["scr_amp"] * np.exp(0.5 * z[:, 0])
    phasic = _render(n_trials, n, rows, on, amp[:, None] * k[None])
    sc = tonic + phasic  # microsiemens
    return 1e6 / sc * (1 + 1e-5 * rng.standard_normal((n_trials, n)))


def _resp(rng, prm, eff, n_trials, t, ramp):
    """Respiration belt (a.u.) and its phase, each (n_trials, n)."""
    n = t.size
    rate = (prm["resp_rate"] + FINGERPRINT["resp_rate_sd"] * rng.standard_normal(n_trials)[:, None]
            + eff["resp_rate_arousal"][:, None] * ramp + 1.0 * _slow(rng, n_trials, n, 0.05))
    rate = np.clip(rate, 6.0, 30.0)  # breaths/min
    phase = 2 * np.pi * np.cumsum(rate / 60.0, axis=1) / SFREQ + rng.uniform(0, 2 * np.pi, (n_trials, 1))
    amp = prm["resp_amp"] * np.exp(0.15 * _slow(rng, n_trials, n, 0.1))
    wave = -np.cos(phase) + 0.25 * np.sin(2 * phase)  # quicker inhale, slower exhale
    resp = amp * wave + 0.3 * _slow(rng, n_trials, n, 0.03) + 0.02 * rng.standard_normal((n_trials, n))
    return resp, phase


def _bvp(rng, prm, eff, n_trials, t, ramp, resp, resp_phase):
    """Plethysmograph pulse wave (a.u.), heart rate with HRV (RSA, Mayer waves), (n_trials, n)."""
    n = t.size
    hr = (prm["hr"] + FINGERPRINT["hr_bpm_sd"] * rng.standard_normal(n_trials)[:, None]
          + eff["heart_rate_arousal"][:, None] * ramp
          + prm["rsa"] * np.sin(resp_phase)
          + 1.5 * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 2 * np.pi, (n_trials, 1)))
          + 1.5 * _slow(rng, n_trials, n, 0.04))
    hr = np.clip(hr, 40.0, 150.0)
    phase = np.cumsum(hr / 60.0, axis=1) / SFREQ + rng.uniform(0, 1, (n_trials, 1))
    u = phase % 1.0
    pulse = np.exp(-0.5 * ((u - 0.2) / 0.07) ** 2) + 0.45 * np.exp(-0.5 * ((u - 0.48) / 0.09) ** 2)
    amp = prm["bvp_amp"] * np.exp(FINGERPRINT["bvp_amp_ln_sd"] * rng.standard_normal(n_trials))[:, None]
    amp = amp * (1 + 0.1 * np.cos(resp_phase))
    return (amp * (pulse - 0.4) + 0.15 * resp + 0.2 * _slow(rng, n_trials, n, 0.05)
            + 0.01 * rng.standard_normal((n_trials, n)))


def _emg_noise(rng, n_trials: int, n: int) -> np.ndarray:
    """Unit-variance broadband noise above 20 Hz, shape (n_trials, n)."""
    freqs = np.fft.rfftfreq(n, 1.0 / SFREQ)
    mask = 1.0 / np.sqrt(1 + (20.0 / np.maximum(freqs, 1e-3)) ** 8)
    z = rng.standard_normal((n_trials, freqs.size, 2), dtype=np.float32).view(np.complex64)[..., 0]
    x = scipy.fft.irfft(z * mask.astype(np.float32), n=n, axis=-1, norm="forward")
    return x / np.sqrt(4.0 * (mask[1:] ** 2).sum())  # E|z|^2 = 2


def _emg_envelope(rng, n_trials, n, tone, rate0, rate_video, amp, amp_ln):
    rows, on, z = _events(rng, rate0, rate_video, n, 2)
    length = int(1.5 * SFREQ)
    dur = np.clip(0.7 * np.exp(0.4 * z[:, 0]), 0.3, 1.5)
    u = (np.arange(length)[None] / SFREQ) / dur[:, None]
    a = amp * np.exp(0.3 * z[:, 1] + amp_ln[rows] * (on >= BASELINE_SAMPLES))
    return tone + _render(n_trials, n, rows, on, a[:, None] * _bump(u))


def _emg(rng, prm, eff, n_trials, t, ramp):
    """zEMG and tEMG (microvolts), each (n_trials, n): noise times a bursty envelope."""
    n = t.size
    sd = FINGERPRINT["emg_tone_ln_sd"]
    ztone = prm["zemg_tone"] * np.exp(sd * rng.standard_normal(n_trials))[:, None]
    zrate = np.full(n_trials, prm["zemg_rate"])
    zenv = _emg_envelope(rng, n_trials, n, ztone, zrate, zrate * np.exp(eff["zemg_bursts_valence"]),
                         prm["zemg_amp"], eff["zemg_amplitude_liking"])
    ttone = prm["temg_tone"] * np.exp(sd * rng.standard_normal(n_trials)[:, None]
                                      + eff["temg_tone_arousal"][:, None] * ramp)
    trate = np.full(n_trials, prm["temg_rate"])
    tenv = _emg_envelope(rng, n_trials, n, ttone, trate, trate, prm["temg_amp"], np.zeros(n_trials))
    noise = _emg_noise(rng, 2 * n_trials, n)
    return zenv * noise[:n_trials], tenv * noise[n_trials:]


def _temp(rng, prm, n_trials, t):
    """Skin temperature (degrees C), slow drift, (n_trials, n); carries no label effect."""
    n = t.size
    level = prm["temp"] + FINGERPRINT["temp_degc_sd"] * rng.standard_normal(n_trials)[:, None]
    slope = rng.normal(0.0, 0.004, n_trials)[:, None] * t
    return level + slope + 0.05 * _slow(rng, n_trials, n, 0.02) + 0.003 * rng.standard_normal((n_trials, n))


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------


def _write_subject(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    """Write one ``sNN.dat`` in DEAP's exact format (atomic; see :func:`write_subject`)."""
    write_subject(path, data, labels)


def _generate_and_write(subject: int, out: Path, kw: dict) -> SyntheticSubject:
    s = synth_subject(subject, **kw)
    _write_subject(out / f"s{subject:02d}.dat", s.data, s.labels)
    log.info("wrote %s", out / f"s{subject:02d}.dat")
    # the caller needs no signals: drop them before sending the result back
    return SyntheticSubject(subject=s.subject, data=np.empty((0,)), labels=s.labels,
                            familiarity=s.familiarity, presentation=s.presentation,
                            start_time=s.start_time, gains=s.gains)


def _ratings_csv(results: Sequence[SyntheticSubject]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RATING_COLUMNS)
    for s in results:
        for video in np.argsort(s.presentation, kind="stable"):
            v, a, d, lik = (f"{x:g}" for x in s.labels[video])
            fam = "" if np.isnan(s.familiarity[video]) else str(int(s.familiarity[video]))
            w.writerow([s.subject, int(s.presentation[video]), int(video) + 1,
                        int(s.start_time[video]), v, a, d, lik, fam])
    return buf.getvalue()


def _meta(results: Sequence[SyntheticSubject], *, n_subjects, n_trials, seconds, seed, effect_scale) -> dict:
    return {
        "generator": "symaffect.data.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n_subjects": n_subjects,
        "n_trials": n_trials,
        "seconds": seconds,
        "sfreq": SFREQ,
        "n_samples": int(round(seconds * SFREQ)),
        "baseline_s": BASELINE_S,
        "effect_scale": effect_scale,
        "channel_units": CHANNEL_UNITS,
        "effects": [
            {"name": e.name, "label": e.label, "modality": e.modality, "channels": e.channels,
             "size": e.size, "unit": e.unit, "description": e.description}
            for e in EFFECTS.values()
        ],
        "effect_definition": "effect = effect_scale * gain[subject][name] * size * (rating - 5) / 4",
        "subject_gain_distribution": SUBJECT_GAIN,
        "fingerprint_sd": FINGERPRINT,
        "gains": {f"s{s.subject:02d}": {k: round(v, 4) for k, v in s.gains.items()} for s in results},
    }


def _check_args(*, n_subjects, n_trials, seconds, effect_scale, n_jobs) -> None:
    if int(n_subjects) != n_subjects or not 1 <= n_subjects <= 99:
        raise ConfigError(f"n_subjects: must be an integer in 1..99, got {n_subjects}")
    if int(n_trials) != n_trials or n_trials < 1:
        raise ConfigError(f"n_trials: must be a positive integer, got {n_trials}")
    if not np.isfinite(seconds) or seconds < BASELINE_S + 1.0:
        raise ConfigError(f"seconds: must be at least {BASELINE_S + 1.0:g} (3-s baseline + 1 s), "
                          f"got {seconds}")
    if not np.isfinite(effect_scale) or effect_scale < 0:
        raise ConfigError(f"effect_scale: must be a finite number >= 0, got {effect_scale}")
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise ConfigError(f"n_jobs: must be a positive integer, got {n_jobs}")
