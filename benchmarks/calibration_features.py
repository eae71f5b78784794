"""Per-listener calibration of the reference feature classifier: what the calibration
protocol gives when the representation carries the listener's information.

The reference classifier of ``benchmarks/reference_accuracy.py`` (per-window EEG log band
powers and peripheral statistics, z-scored per subject -- the re-centring -- then a
logistic regression) is a linear head over a fixed representation, like the paper's model's
heads over its fused embedding. Its calibration uses the package's own methods
(:func:`symaffect.models.calibration.fit_calibration`: ``threshold`` and ``pooled``) with the
features in the place of the embedding, under the protocol of ``symaffect bench
calibration``: leave one subject out; for every held-out subject, 5 draws of K = 8 of their
trials calibrate and the other trials test; the within-subject ceiling is a model fitted
on the listener's own trials (5-fold over them).

Usage: ``.venv/bin/python benchmarks/calibration_features.py DATA_DIR [--k 8] [--draws 5]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_accuracy import WIN_SEGS, segment_features, window_features, zscore_per_subject  # noqa: E402

from symaffect.data.deap import read_deap  # noqa: E402
from symaffect.models.calibration import CalibrationPool, fit_calibration  # noqa: E402


def features(folder: Path):
    data = read_deap(folder)
    xs, labels, subj, trial = [], [], [], []
    for rec in data.subjects:
        f = window_features(segment_features(rec.data), WIN_SEGS)
        n, w = f.shape[:2]
        xs.append(f.reshape(n * w, -1))
        labels.append(np.repeat(rec.labels, w, axis=0))
        subj.append(np.full(n * w, rec.subject))
        trial.append(np.repeat(np.arange(n), w))
    x, lab, s, t = map(np.concatenate, (xs, labels, subj, trial))
    return zscore_per_subject(x, s), lab, s, t


def generator_gains(folder: Path) -> dict[str, dict[int, float]]:
    """Per task, each subject's mean generator gain of the task's effects (synth_meta.json)."""
    meta_path = folder / "synth_meta.json"
    if not meta_path.is_file():
        return {}
    meta = json.loads(meta_path.read_text())
    out: dict[str, dict[int, float]] = {}
    for task in ("valence", "arousal"):
        names = {e["name"] for e in meta["effects"] if e["label"] == task}
        out[task] = {int(str(s).lstrip("s")): float(np.mean([v for k, v in g.items() if k in names]))
                     for s, g in meta["gains"].items()}
    return out


def _lr():
    return LogisticRegression(C=0.1, max_iter=2000)


def run(folder: Path, *, k: int, draws: int) -> dict:
    x, lab, subj, trial = features(folder)
    gains = generator_gains(folder)
    out = {}
    for task, col in (("valence", 0), ("arousal", 1)):
        y = (lab[:, col] > 5).astype(np.int64)
        acc: dict[str, list[float]] = {}
        gain: dict[int, list[float]] = {}
        for s in np.unique(subj):
            tr, te = subj != s, np.flatnonzero(subj == s)
            sc = StandardScaler().fit(x[tr])
            xp, xs = sc.transform(x[tr]), sc.transform(x[te])
            pop = _lr().fit(xp, y[tr])
            w = np.stack([-pop.coef_[0] / 2, pop.coef_[0] / 2])  # the binary LR as a 2-class linear head
            b = np.array([-pop.intercept_[0] / 2, pop.intercept_[0] / 2])
            heads = {task: (w, b)}
            pool = CalibrationPool(z=xp, targets={task: y[tr]})
            ys, ts = y[te], trial[te]
            for d in range(draws):
                order = np.random.default_rng([0, int(s), d]).permutation(np.unique(ts))
                cal = np.isin(ts, order[:k])
                test = ~cal

                def score(name, pred):
                    acc.setdefault(name, []).append(float(np.mean(pred == ys[test])))

                score("none", pop.predict(xs[test]))
                score("majority of the test trials", np.full(test.sum(), np.bincount(ys[test]).argmax()))
                own = _lr().fit(xs[cal], ys[cal]) if len(np.unique(ys[cal])) > 1 else None
                score(f"the listener's {k} tracks only", own.predict(xs[test]) if own else np.full(test.sum(), ys[cal][0]))
                for method in ("threshold", "pooled"):
                    c = fit_calibration(method, heads, np.zeros(xs.shape[1]), unlabelled=xs, z=xs[cal],
                                        y={task: ys[cal]}, tracks=ts[cal], pool=pool)
                    wc, bc = c.heads[task]
                    score(method, np.argmax((xs[test] - c.shift) @ wc.T + bc, axis=1))
                gain.setdefault(int(s), []).append(acc["pooled"][-1] - acc["none"][-1])
            pred = np.empty_like(ys)
            for a, bb in GroupKFold(5).split(xs, groups=ts):
                pred[bb] = _lr().fit(xs[a], ys[a]).predict(xs[bb])
            acc.setdefault("within-subject (5-fold over the listener's trials)", []).append(float(np.mean(pred == ys)))
        out[task] = {m: float(np.mean(v)) for m, v in acc.items()}
        out[task]["per_subject_gain_pooled"] = {s: float(np.mean(v)) for s, v in gain.items()}
        out[task]["generator_gain"] = gains.get(task, {})
        base, ceil = out[task]["none"], out[task]["within-subject (5-fold over the listener's trials)"]
        out[task]["gap_closed_pooled"] = (out[task]["pooled"] - base) / (ceil - base) if ceil > base else None
        out[task]["gap_closed_threshold"] = (out[task]["threshold"] - base) / (ceil - base) if ceil > base else None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the numbers")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    res = run(a.data, k=a.k, draws=a.draws)
    res["seconds"] = time.perf_counter() - t0
    methods = [m for m in res["valence"] if not m.startswith(("gap_closed", "per_subject", "generator"))]
    print(f"\nK = {a.k}: accuracy (%) on the listener's other tracks, mean over subjects x draws\n")
    print("| method | valence | arousal |\n|---|---|---|")
    for m in methods:
        print(f"| {m} | {100 * res['valence'][m]:.1f} | {100 * res['arousal'][m]:.1f} |")
    for m in ("threshold", "pooled"):
        cells = [("n/a" if (v := res[t][f"gap_closed_{m}"]) is None else f"{100 * v:.0f} %") for t in ("valence", "arousal")]
        print(f"| share of the gap closed by {m} | {cells[0]} | {cells[1]} |")
    print(f"\nPer-subject gain of pooled at K = {a.k} (points), with the generator's mean gain of the task's "
          "effects (negative: reversed responder):\n")
    print("| subject | valence gain | valence generator gain | arousal gain | arousal generator gain |\n|---|---|---|---|---|")
    gv, ga = res["valence"]["generator_gain"], res["arousal"]["generator_gain"]
    for s in sorted(res["valence"]["per_subject_gain_pooled"], key=lambda s: gv.get(s, 0.0)):
        print(f"| {s} | {100 * res['valence']['per_subject_gain_pooled'][s]:+.1f} | {gv.get(s, float('nan')):+.2f} "
              f"| {100 * res['arousal']['per_subject_gain_pooled'][s]:+.1f} | {ga.get(s, float('nan')):+.2f} |")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    print(f"\n{res['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
