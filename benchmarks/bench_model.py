"""Model speed on this CPU: matmul rate, single-window latency, training throughput.

Run:  .venv/bin/python benchmarks/bench_model.py [--quick] [--threads N]

Writes a Markdown section to stdout and to ``benchmarks/results/bench_model.md``.
Everything is measured in this one run (the dense matmul rate included), so the
fractions compare like with like. The load average is printed because the machine is
shared: a busy machine makes every number here slower.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from symaffect._io import write_text
from symaffect.models import build_model
from symaffect.models.losses import MultiTaskLoss
from symaffect.models.profile import model_profile

CONFIGS: dict[str, dict] = {
    "default (full T x T mixer, 1/1/1 tokens)": {},
    "paper tokens (full mixer, 4/2/1 tokens)": {"n_tokens": "paper"},
    "efficient (low-rank mixer r=16, 1/1/1 tokens)": {"mixer": "lowrank", "mixer_rank": 16},
}
LATENCY_ONLY: dict[str, dict] = {
    "default with matmul DFT gate (spectral='dft')": {"spectral": "dft"},
}
MATMUL_OPS = ("aten::mm", "aten::bmm", "aten::baddbmm", "aten::addmm", "aten::addmv", "aten::mv")


def matmul_rate(reps: int) -> tuple[float, dict[int, float]]:
    """Best dense float32 ``torch.mm`` rate (FLOP/s) over square sizes."""
    per: dict[int, float] = {}
    for n in (1024, 1536, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        best = 0.0
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - t))
        per[n] = best
    return max(per.values()), per


def latency(model, reps: int) -> tuple[float, float, float]:
    """Median, p90 and min (ms) of one-window inference, all modalities."""
    x = {m: torch.randn(1, s.n_chans, s.n_times) for m, s in model.specs.items()}
    ts = []
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        for _ in range(reps):
            t = time.perf_counter()
            model(x)
            ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts), 1e3 * float(np.percentile(ts, 90)), 1e3 * min(ts)


def onnx_latency(model, reps: int) -> tuple[float, float, float] | None:
    """Median, p90 and min (ms) with onnxruntime, or None if export is unavailable."""
    try:
        import tempfile

        import onnxruntime as ort

        from symaffect.models.export import export_onnx
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_onnx(model, Path(d) / "m.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feeds = {m: np.random.randn(1, s.n_chans, s.n_times).astype(np.float32) for m, s in model.specs.items()}
    feeds["mask"] = np.ones((1, len(model.modalities)), dtype=bool)
    for _ in range(10):
        sess.run(None, feeds)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        sess.run(None, feeds)
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts), 1e3 * float(np.percentile(ts, 90)), 1e3 * min(ts)


def training(model, batch: int, steps: int) -> dict:
    """Windows/s of forward + backward + Adam, and FLOP rates of the step."""
    model.train()
    loss_fn = MultiTaskLoss(task_set=model.task_set)
    opt = torch.optim.Adam(
        [*model.parameters(), *loss_fn.parameters()], lr=1e-4, weight_decay=1e-5, fused=True
    )
    x = {m: torch.randn(batch, s.n_chans, s.n_times) for m, s in model.specs.items()}
    y = {t: torch.randint(0, n, (batch,)) for t, n in model.n_outputs.items()}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y)["loss"].backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step()
    ts = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    dt = statistics.median(ts)
    # time and FLOPs inside the matrix-product kernels
    with torch.profiler.profile() as prof:
        step()
    mm_time = total_time = 0.0
    for ev in prof.key_averages():
        total_time += ev.self_cpu_time_total
        if ev.key in MATMUL_OPS:
            mm_time += ev.self_cpu_time_total
    return {
        "step_s": dt,
        "windows_per_s": batch / dt,
        "flops_per_step": flops,
        "step_rate": flops / dt,
        "mm_rate": flops / (mm_time * 1e-6) if mm_time else float("nan"),
        "mm_share": mm_time / total_time if total_time else float("nan"),
    }


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_model.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reps_mm, reps_lat, steps = (3, 40, 3) if args.quick else (5, 200, 8)
    load0 = os.getloadavg()

    peak, per_size = matmul_rate(reps_mm)
    lines = [
        "## Model speed (benchmarks/bench_model.py)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {args.threads} threads. Load average at start "
        f"{load0[0]:.2f} (shared machine: other jobs slow everything below).",
        "",
        "Dense float32 matmul rate (`torch.mm`, best of "
        f"{reps_mm}): " + ", ".join(f"{n}^2: {r / 1e9:.1f} GFLOP/s" for n, r in per_size.items())
        + f"; reference = **{peak / 1e9:.1f} GFLOP/s**.",
        "",
        "### Parameters and forward FLOPs per 10-s window",
        "",
        "| config | params | FLOPs/window | EEG params / FLOPs | peripheral params / FLOPs | EOG params / FLOPs |",
        "|---|---|---|---|---|---|",
    ]
    models = {}
    for name, kw in CONFIGS.items():
        model = build_model("symaffect", **kw).eval()
        models[name] = model
        p = model_profile(model)
        per = p["per_modality"]
        cells = [f"{per[m]['params'] / 1e6:.2f} M / {per[m]['flops'] / 1e6:.0f} M" for m in ("eeg", "peripheral", "eog")]
        lines.append(
            f"| {name} | {p['params_total'] / 1e6:.2f} M | {p['flops_total'] / 1e6:.0f} M | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "FLOPs are matrix-product FLOPs counted by `torch.utils.flop_counter` (FFTs and "
        "element-wise operations are not counted).",
        "",
        "### Single-window inference (batch 1, EEG + peripheral + EOG; target: median < 10 ms)",
        "",
        "| config | engine | median ms | p90 ms | min ms |",
        "|---|---|---|---|---|",
    ]
    for name, model in models.items():
        med, p90, lo = latency(model, reps_lat)
        lines.append(f"| {name} | torch eager | {med:.2f} | {p90:.2f} | {lo:.2f} |")
        if not args.no_onnx:
            res = onnx_latency(model, reps_lat)
            if res is not None:
                lines.append(f"| {name} | onnxruntime | {res[0]:.2f} | {res[1]:.2f} | {res[2]:.2f} |")
    for name, kw in LATENCY_ONLY.items():
        models_lat = build_model("symaffect", **kw).eval()
        med, p90, lo = latency(models_lat, reps_lat)
        lines.append(f"| {name} | torch eager | {med:.2f} | {p90:.2f} | {lo:.2f} |")
    lines += [
        "",
        "### Training throughput (batch 32, forward + backward + Adam(fused=True); target: >= 40 % of the matmul rate)",
        "",
        "| config | step s | windows/s | GFLOP/step | whole-step GFLOP/s (% of matmul) | in-GEMM GFLOP/s (% of matmul) | GEMM share of step time |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, kw in CONFIGS.items():
        r = training(build_model("symaffect", **kw), batch=32, steps=steps)
        lines.append(
            f"| {name} | {r['step_s']:.3f} | {r['windows_per_s']:.1f} | {r['flops_per_step'] / 1e9:.1f} | "
            f"{r['step_rate'] / 1e9:.1f} ({100 * r['step_rate'] / peak:.0f} %) | "
            f"{r['mm_rate'] / 1e9:.1f} ({100 * r['mm_rate'] / peak:.0f} %) | {100 * r['mm_share']:.0f} % |"
        )
    load1 = os.getloadavg()
    peak_end, per_end = matmul_rate(reps_mm)
    lines += [
        "",
        f"Matmul rate re-measured at the end: {peak_end / 1e9:.1f} GFLOP/s "
        f"(start: {peak / 1e9:.1f}). Percentages above use the start value; if the two "
        "differ much, the machine's load changed during the run.",
    ]
    lines += [
        "",
        "Whole-step rate = counted matmul FLOPs of one step / wall time of the step (every "
        "other operation counts as overhead). In-GEMM rate = the same FLOPs / time spent "
        "inside the matrix-product kernels (torch profiler, which slows the step a little). "
        f"Load average at end {load1[0]:.2f}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    write_text(args.out, text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
