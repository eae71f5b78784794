"""How much of a listener's own affect information survives in a representation?

For every held-out subject of the cross-subject runs of ``symaffect bench calibration``,
a linear probe (standardised logistic regression, C = 0.1, 5-fold over the listener's
trials: :func:`symaffect.eval.calibration.probe_ceiling`) is fitted on the listener's own
windows, in four representations of the same test windows: the fused embedding and the
concatenated modality tokens of the trained model, and of untrained models (random
initialisation, two seeds) with and without eq. 2's per-window instance norm. A
representation the probe reads well holds what a per-listener calibration could use.

    .venv/bin/python benchmarks/probe_listener_info.py --data DIR --bench-out DIR [--task-set binary_valence]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from symaffect.eval.calibration import probe_ceiling
from symaffect.models import build_model
from symaffect.run_folder import RunFolder
from symaffect.train.checkpoints import load_lightning_weights
from symaffect.train.config import RunConfig
from symaffect.train.datamodule import batches
from symaffect.train.rundata import RunData


@torch.no_grad()
def representations(model, ds) -> dict[str, np.ndarray]:
    model.eval()
    z, tok = [], []
    for b in batches(ds, 256):
        x = b["x"]
        tokens, present = model.encode(x, model.presence(x, None), None)
        z.append(model.fusion(tokens, present)[0])
        tok.append(tokens.flatten(1))
    return {"fused embedding": torch.cat(z).double().numpy(), "modality tokens": torch.cat(tok).double().numpy()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--bench-out", type=Path, required=True, help="the --out of `symaffect bench calibration`")
    p.add_argument("--task-set", default="binary_valence")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the numbers")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    run = RunFolder(a.bench_out / "runs" / f"symaffect-{a.task_set}-subject_kfold")
    cfg = RunConfig.from_yaml(run.config)
    data = RunData.from_splits(cfg, run.splits, a.data)
    task = data.tasks.names[0]
    kw = data.model_kwargs()
    acc: dict[str, list[float]] = {}
    for fold in data.folds:
        ds = data.dataset(fold, "test")
        rows = np.asarray(ds.index)
        y, subj, trial = np.asarray(ds.targets(task)), fold.meta.subject_of(rows), fold.meta.trial_of(rows)
        acc.setdefault("majority class of the listener's windows (oracle) | -", []).extend(
            float(np.bincount(y[subj == s]).max() / np.sum(subj == s)) for s in np.unique(subj))
        fit = run.read_fit(fold.fold, cfg.seeds[0])
        models = {"trained": load_lightning_weights(run.resolve(fit["checkpoint"]), cfg.model.name, kw,
                                                    root=run.root)[0]}
        for seed in (0, 1):
            for norm in ("eq. 2 instance norm", "no input norm"):
                torch.manual_seed(seed)
                extra = {} if norm.startswith("eq.") else {"input_norm": "none"}
                models[f"untrained (seed {seed}), {norm}"] = build_model(cfg.model.name, **{**kw, **extra})
        for name, model in models.items():
            for rep, z in representations(model, ds).items():
                acc.setdefault(f"{name} | {rep}", []).extend(
                    probe_ceiling(z[subj == s], y[subj == s], trial[subj == s]) for s in np.unique(subj))
        print(f"fold {fold.fold} done", flush=True)
    base = np.mean  # over held-out subjects
    print(f"\n{task}: within-subject probe accuracy (%), mean over the {len(acc[next(iter(acc))])} held-out subjects\n")
    print("| model | representation | probe accuracy |\n|---|---|---|")
    for key, v in acc.items():
        model, rep = key.split(" | ")
        print(f"| {model} | {rep} | {100 * base(v):.1f} |")
    if a.out:
        a.out.write_text(json.dumps({k: float(base(v)) for k, v in acc.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
