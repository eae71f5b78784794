"""Reference accuracy of a simple classifier on the synthetic DEAP-format data.

A band-power + peripheral-statistics + logistic-regression classifier, on binary
valence and arousal (high when the rating > 5), under

* ``loso``: leave-one-subject-out (sklearn ``LeaveOneGroupOut``, groups = subject),
  non-overlapping 10-s windows;
* ``within``: one model per subject, trials held out (``GroupKFold`` over the subject's
  trials, 5 folds), non-overlapping 10-s windows;
* ``leaky``: the window-random split: ``KFold`` (5 folds, shuffled) over overlapping
  10-s windows at a 1-s stride, all subjects pooled, so windows of one trial sit on
  both sides of the split (for the leakage audit only).

Each accuracy sits beside the majority-class rate of the same split (predict the
training folds' majority class). Features are z-scored per subject (over the subject's
own windows, labels unused), as the paper does. Results are the numbers in
``docs/synthetic.md``.

Usage::

    .venv/bin/python benchmarks/reference_accuracy.py --subjects 16 --trials 40
    .venv/bin/python benchmarks/reference_accuracy.py --subjects 16 --trials 40 --effect-scale 0
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from symaffect.data.deap import read_deap
from symaffect.data.synth import generate
from symaffect.spec import BASELINE_SAMPLES, CH_INDEX, EEG_BANDS, SFREQ

SEG = int(SFREQ)  # 1-s segments; windows are 10 segments
WIN_SEGS = 10
N_EEG_FEATURES = 32 * len(EEG_BANDS)
PERIPHERAL = ("hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Resp", "BVP", "Temp")


def segment_features(data: np.ndarray) -> dict[str, np.ndarray]:
    """Per 1-s segment sums from which any window's features follow.

    data : (n_trials, 40, n_samples) -> arrays of shape (n_trials, n_seg, ...).
    """
    x = data[:, :, BASELINE_SAMPLES:].astype(np.float64)
    n_seg = x.shape[-1] // SEG
    x = x[..., : n_seg * SEG].reshape(x.shape[0], x.shape[1], n_seg, SEG)
    eeg = x[:, :32] - x[:, :32].mean(-1, keepdims=True)
    spec = np.abs(np.fft.rfft(eeg * np.hanning(SEG), axis=-1)) ** 2  # 1-Hz bins
    freqs = np.fft.rfftfreq(SEG, 1.0 / SFREQ)
    bands = np.stack([spec[..., (freqs >= lo) & (freqs < hi)].sum(-1)
                      for lo, hi in EEG_BANDS.values()], axis=-1)  # (n, 32, n_seg, 4)
    per = x[:, [CH_INDEX[c] for c in PERIPHERAL]]  # (n, 8, n_seg, SEG)
    d = np.abs(np.diff(per, axis=-1, append=per[..., -1:]))
    return {
        "bands": bands.transpose(0, 2, 1, 3),  # (n, n_seg, 32, 4)
        "sum": per.sum(-1).transpose(0, 2, 1),  # (n, n_seg, 8)
        "sumsq": (per**2).sum(-1).transpose(0, 2, 1),
        "absdiff": d.sum(-1).transpose(0, 2, 1),
        "raw_bvp": x[:, CH_INDEX["BVP"]].reshape(x.shape[0], -1),
        "raw_resp": x[:, CH_INDEX["Resp"]].reshape(x.shape[0], -1),
    }


def _dominant_freq(sig: np.ndarray, starts: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Peak frequency (Hz) in [lo, hi] of each 10-s window; sig (n, T) -> (n, n_windows)."""
    n_fft = 8 * WIN_SEGS * SEG
    win = np.stack([sig[:, s * SEG:(s + WIN_SEGS) * SEG] for s in starts], axis=1)
    win = win - win.mean(-1, keepdims=True)
    p = np.abs(np.fft.rfft(win * np.hanning(win.shape[-1]), n=n_fft, axis=-1))
    f = np.fft.rfftfreq(n_fft, 1.0 / SFREQ)
    m = (f >= lo) & (f <= hi)
    return f[m][np.argmax(p[..., m], axis=-1)]


def window_features(seg: dict[str, np.ndarray], stride_s: int) -> np.ndarray:
    """Features of 10-s windows at a stride of ``stride_s`` segments.

    Returns (n_trials, n_windows, n_features): EEG ln band power per channel and band
    (128), then per peripheral/EOG channel mean, ln sd and ln mean |first difference|
    (24), then BVP and respiration peak frequency (2).
    """
    n_seg = seg["sum"].shape[1]
    starts = np.arange(0, n_seg - WIN_SEGS + 1, stride_s)

    def wsum(a: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros_like(a[:, :1]), np.cumsum(a, axis=1)], axis=1)
        return c[:, starts + WIN_SEGS] - c[:, starts]

    n_t = WIN_SEGS * SEG
    bands = np.log(wsum(seg["bands"]) / WIN_SEGS + 1e-12)  # (n, W, 32, 4)
    mean = wsum(seg["sum"]) / n_t
    var = np.maximum(wsum(seg["sumsq"]) / n_t - mean**2, 1e-12)
    absdiff = wsum(seg["absdiff"]) / n_t
    hr = _dominant_freq(seg["raw_bvp"], starts, 0.7, 2.5)
    rr = _dominant_freq(seg["raw_resp"], starts, 0.1, 0.6)
    n, w = bands.shape[:2]
    return np.concatenate([
        bands.reshape(n, w, -1), mean, 0.5 * np.log(var), np.log(absdiff + 1e-12),
        hr[..., None], rr[..., None],
    ], axis=-1)


def zscore_per_subject(x: np.ndarray, subj: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for s in np.unique(subj):
        m = subj == s
        out[m] = (x[m] - x[m].mean(0)) / (x[m].std(0) + 1e-9)
    return out


def _classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))


def evaluate(x: np.ndarray, y: np.ndarray, splits) -> dict[str, float]:
    """Accuracy, macro-F1 and the majority-class rate pooled over the test folds."""
    pred = np.empty_like(y)
    major = np.empty_like(y)
    for tr, te in splits:
        if np.unique(y[tr]).size < 2:
            pred[te] = y[tr][0]
        else:
            pred[te] = _classifier().fit(x[tr], y[tr]).predict(x[te])
        major[te] = int(y[tr].mean() > 0.5)
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "majority": float((major == y).mean()),
        "n_windows": int(y.size),
    }


def run(folder: Path, *, seed: int, leaky: bool = True) -> dict:
    data = read_deap(folder)
    rows = {"nonoverlap": [], "stride1": []}
    for rec in data.subjects:
        seg = segment_features(rec.data)
        for key, stride in (("nonoverlap", WIN_SEGS), ("stride1", 1)):
            f = window_features(seg, stride)
            n, w = f.shape[:2]
            rows[key].append((f.reshape(n * w, -1), np.repeat(rec.labels, w, axis=0),
                              np.full(n * w, rec.subject), np.repeat(np.arange(n), w)))
    out: dict[str, dict] = {}
    for key in rows:
        x = np.concatenate([r[0] for r in rows[key]])
        lab = np.concatenate([r[1] for r in rows[key]])
        subj = np.concatenate([r[2] for r in rows[key]])
        trial = np.concatenate([r[3] for r in rows[key]])
        rows[key] = (zscore_per_subject(x, subj), lab, subj, trial)
    for task, col in (("valence", 0), ("arousal", 1)):
        x, lab, subj, trial = rows["nonoverlap"]
        y = (lab[:, col] > 5).astype(int)
        loso = list(LeaveOneGroupOut().split(x, y, subj))
        res = {"loso": evaluate(x, y, loso),
               "loso_eeg": evaluate(x[:, :N_EEG_FEATURES], y, loso),
               "loso_peripheral": evaluate(x[:, N_EEG_FEATURES:], y, loso)}
        within = []
        for s in np.unique(subj):
            idx = np.flatnonzero(subj == s)
            k = min(5, np.unique(trial[idx]).size)
            within += [(idx[tr], idx[te]) for tr, te in GroupKFold(k).split(idx, groups=trial[idx])]
        res["within"] = _evaluate_within(x, y, within)
        if leaky:
            x1, lab1, _, _ = rows["stride1"]
            y1 = (lab1[:, col] > 5).astype(int)
            res["leaky"] = evaluate(x1, y1, KFold(5, shuffle=True, random_state=seed).split(x1))
        out[task] = res
    return out


def _evaluate_within(x, y, splits):
    """Per-subject models: the same classifier fitted on one subject's training trials."""
    return evaluate(x, y, splits)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subjects", type=int, default=16)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--seconds", type=float, default=63.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--effect-scale", type=float, default=1.0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data", type=Path, default=None, help="use (or write) this folder")
    p.add_argument("--no-leaky", action="store_true", help="skip the (slowest) leaky protocol")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="synth-ref-") as tmp:
        folder = a.data or Path(tmp)
        if not (folder / "synth_meta.json").is_file():
            generate(folder, n_subjects=a.subjects, n_trials=a.trials, seconds=a.seconds,
                     seed=a.seed, effect_scale=a.effect_scale, n_jobs=a.jobs)
        t_gen = time.perf_counter() - t0
        res = run(folder, seed=a.seed, leaky=not a.no_leaky)
    res["config"] = {"subjects": a.subjects, "trials": a.trials, "seconds": a.seconds,
                     "seed": a.seed, "effect_scale": a.effect_scale,
                     "generate_s": round(t_gen, 1), "total_s": round(time.perf_counter() - t0, 1)}
    print(f"scale: {a.subjects} subjects x {a.trials} trials x {a.seconds:g} s, seed {a.seed}, "
          f"effect_scale {a.effect_scale:g}")
    print("| task | protocol | windows | accuracy | macro-F1 | majority |")
    print("|---|---|---|---|---|---|")
    names = {"loso": "leave-one-subject-out (10-s, non-overlapping)",
             "loso_eeg": "leave-one-subject-out, EEG features only",
             "loso_peripheral": "leave-one-subject-out, peripheral + EOG features only",
             "within": "within-subject, trials held out (10-s, non-overlapping)",
             "leaky": "window-random KFold (10-s, 1-s stride) LEAKY"}
    for task in ("valence", "arousal"):
        for prot, r in res[task].items():
            print(f"| {task} | {names[prot]} | {r['n_windows']} | {100 * r['accuracy']:.1f} % | "
                  f"{100 * r['macro_f1']:.1f} % | {100 * r['majority']:.1f} % |")
    print(f"time: {res['config']['total_s']} s (generation {res['config']['generate_s']} s)")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
