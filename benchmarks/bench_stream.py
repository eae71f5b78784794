"""Streaming benchmark: latency, CPU per session, and many sessions in one process.

Run: ``.venv/bin/python benchmarks/bench_stream.py [--hours 1] [--speed 30] [--sessions 32] [--seconds 60]``

1. **Accelerated replay** of ``--hours`` of 40-channel 128-Hz signal (seeded noise: the
   cost does not depend on the values) through LSL on loopback into one ``symaffect
   stream`` process (``run_stream``; model loaded in that process, one torch thread).
   Latency = LSL clock when the prediction's transaction has committed minus the LSL
   timestamp of the window's last sample (which the replay stamps with its push time).
   CPU per session = the streamer process's CPU time / stream seconds.
2. **Many real-time sessions in one process** (issue 13): ``--sessions`` LSL streams,
   replayed in real time by one replayer process, monitored by one hub process
   (``run_streams``: one shared model, every hop stored in one shared SQLite store and
   published on LSL), for ``--seconds`` of stream time each. Two designs, in the same
   run, on the same streams: ``batched`` (the hops that fall due in a round are predicted
   in one forward pass, at most ``--max-batch`` windows) and ``per-call`` (one model call
   per hop). Two start patterns: ``staggered`` (each session starts at a random phase
   within one second, seeded: hops fall due spread over the second, sometimes a few
   together, as rooms that started at different times) and
   ``aligned`` (every session starts at the same instant: every hop of every session
   falls due together, the worst case). A session keeps up if it stored every hop with a
   p99 latency under one hop.

The model is the paper's DTFE model in its efficient configuration
(``symaffect.models.symaffect.EFFICIENT_KWARGS``: low-rank temporal mixer, one token per
modality), full 10-s window (T = 1280), randomly initialised (the cost does not depend
on the weights). Prints a Markdown section and writes ``benchmarks/results/bench_stream.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

NOTE = ("Note: quality rows appeared in the accelerated run (see the counts above): each flags the samples "
        "that the streamer found missing from the LSL timestamps; the windows holding them give a `no_prediction` row.")

STREAMER = """
import json, sys
from symaffect.stream.lsl import run_stream
st = run_stream(sys.argv[1], source=sys.argv[2], db=sys.argv[3], participant=sys.argv[4],
                stop_at_eof=True, handle_signals=True, publish=sys.argv[2] + "-preds",
                resolve_timeout=60, num_threads=1)
from symaffect.stream.store import SessionStore
with SessionStore(sys.argv[3]) as s:
    q = {}
    for r in s.quality(st.session_id):
        q[r.modality + ":" + r.flag] = q.get(r.modality + ":" + r.flag, 0) + 1
json.dump({"quality": q, "hops": st.hops, "predictions": st.predictions, "stream_seconds": st.stream_seconds,
           "cpu_seconds": st.cpu_seconds, "latencies_ms": st.latencies_ms,
           "reconnects": st.reconnects}, sys.stdout)
"""


def make_run(folder: Path) -> Path:
    import torch

    from symaffect.models import build_model, save_checkpoint
    from symaffect.models.symaffect import EFFICIENT_KWARGS

    torch.manual_seed(0)
    kw = dict(EFFICIENT_KWARGS)
    model = build_model("symaffect", **kw)
    save_checkpoint(folder / "model.pt", model, name="symaffect", kwargs=kw, extra={"window_seconds": 10})
    return folder


def recording(seconds: float, seed: int):
    from symaffect.stream.recording import deap_recording

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, int(seconds * 128)), dtype=np.float32)
    return deap_recording(x)


def start_streamer(run: Path, name: str, db: Path, participant: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", STREAMER, str(run), name, str(db), participant],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)


def play(rec, name: str, speed: float) -> threading.Thread:
    from symaffect.stream.lsl import replay

    th = threading.Thread(target=replay, args=(rec,),
                          kwargs=dict(name=name, speed=speed, chunk_seconds=1 / 16, wait_for_consumer=60),
                          daemon=True)
    th.start()
    return th


def pct(a, q) -> float:
    return float(np.percentile(np.asarray(a), q)) if len(a) else float("nan")


def accelerated(run: Path, db: Path, hours: float, speed: float) -> dict:
    rec = recording(hours * 3600, seed=0)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    proc = start_streamer(run, name, db, "bench-accel")
    t0 = time.monotonic()
    th = play(rec, name, speed)
    out, _ = proc.communicate(timeout=hours * 3600 / speed * 3 + 120)
    th.join(30)
    res = json.loads(out)
    res["wall_seconds"] = time.monotonic() - t0
    res["expected_hops"] = int(hours * 3600 - 10) + 1
    return res


REPLAYER = """
import gc, heapq, json, sys, time
import numpy as np
from symaffect.stream.lsl import SPEED_KEY, lsl, marker_name
pylsl = lsl()  # liblsl with symaffect's configuration, as the library's own replay uses
StreamInfo, StreamOutlet, local_clock = pylsl.StreamInfo, pylsl.StreamOutlet, pylsl.local_clock
from symaffect.spec import DEAP_CHANNELS
# One thread pushes every stream (32 Python threads, each with its own timer, and this
# process's garbage collector made the replays themselves late by tens of ms every ~16 s).
cfg = json.loads(sys.argv[1])
fs, step = 128, 8  # chunks of 1/16 s, stamped like symaffect.stream.lsl.replay
n = int(cfg["seconds"] * fs)
outs, marks, data = [], [], []
for i, name in enumerate(cfg["names"]):
    info = StreamInfo(name, "EXG", 40, fs, "float32", name)
    info.set_channel_names(list(DEAP_CHANNELS))
    info.desc.append_child_value(SPEED_KEY, "1.0")
    outs.append(StreamOutlet(info, chunk_size=step, max_buffered=360))
    minfo = StreamInfo(marker_name(name), "Markers", 1, 0.0, "string", name + "-markers")
    minfo.desc.append_child_value(SPEED_KEY, "1.0")
    marks.append(StreamOutlet(minfo))
    rng = np.random.default_rng(i + 1)
    data.append(np.ascontiguousarray(rng.standard_normal((n, 40), dtype=np.float32)))
t_end = time.monotonic() + cfg["lead"]
while time.monotonic() < t_end and not all(o.has_consumers for o in outs):
    time.sleep(0.05)
start = local_clock() + max(1.0, t_end - time.monotonic())
gc.collect()
gc.freeze()
heap = [(start + cfg["offsets"][i] + step / fs, i, 0) for i in range(len(outs))]
heapq.heapify(heap)
while heap:
    due, i, a = heapq.heappop(heap)
    wait = due - local_clock()
    if wait > 0:
        time.sleep(wait)
    b = min(a + step, n)
    t0 = start + cfg["offsets"][i]
    outs[i].push_chunk(data[i][a:b], timestamp=t0 + np.arange(a + 1, b + 1) / fs)
    if b < n:
        heapq.heappush(heap, (t0 + (b + step) / fs, i, b))
    else:
        marks[i].push_sample([json.dumps({"event": "eof", "n_samples": n, "t": n / fs})])
time.sleep(3)
"""

HUB = """
import json, sys, time
from symaffect.stream.lsl import run_streams
cfg = json.loads(sys.argv[1])
wall = time.monotonic()
stats, rounds = run_streams(cfg["run"], sources=cfg["names"], db=cfg["db"], stop_at_eof=True,
                            handle_signals=True, publish="symaffect-predictions", resolve_timeout=60, num_threads=1,
                            batched=cfg["batched"], max_batch=cfg["max_batch"], gap_timeout=cfg["gap_timeout"])
json.dump({"sessions": [{"hops": s.hops, "predictions": s.predictions, "stream_seconds": s.stream_seconds,
                         "latencies_ms": s.latencies_ms, "reconnects": s.reconnects} for s in stats],
           "cpu_seconds": time.process_time(), "rounds": rounds.rounds, "forward_passes": rounds.forward_passes,
           "hops": rounds.hops, "largest_batch": rounds.largest_batch}, sys.stdout)
"""


def hub_run(run: Path, db: Path, n: int, seconds: float, *, batched: bool, aligned: bool, max_batch: int) -> dict:
    """One hub process monitoring ``n`` real-time replays (one replayer process, one thread)."""
    names = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(n)]
    offsets = [0.0] * n if aligned else np.random.default_rng(0).uniform(0, 1, n).tolist()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    lead = 25.0  # seconds for the hub to connect to every stream before the first sample
    # the streams are silent until their common start: not an outage (gap_timeout beyond the lead)
    hub = subprocess.Popen([sys.executable, "-c", HUB, json.dumps(
        {"run": str(run), "names": names, "db": str(db), "batched": batched, "max_batch": max_batch,
         "gap_timeout": lead + 5})],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    player = subprocess.Popen([sys.executable, "-c", REPLAYER, json.dumps(
        {"names": names, "seconds": seconds, "offsets": offsets, "lead": lead})],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    out, _ = hub.communicate(timeout=seconds * 3 + 240)
    player.wait(60)
    res = json.loads(out)
    # the hub process's CPU includes loading the model and connecting: count from the stream only
    res["design"] = "batched" if batched else "per-call"
    res["start"] = "aligned" if aligned else "staggered"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--speed", type=float, default=30.0)
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0, help="stream seconds of each concurrent session")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--skip-accelerated", action="store_true")
    ap.add_argument("--starts", default="staggered,aligned", help="start patterns to run (comma-separated)")
    ap.add_argument("--designs", default="batched,per-call", help="designs to run (comma-separated)")
    ap.add_argument("--liblsl-config", type=Path, default=None,
                    help="run both ends with this liblsl configuration (LSLAPICFG) instead of symaffect's")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_stream.md")
    args = ap.parse_args()
    if args.liblsl_config is not None:
        os.environ["LSLAPICFG"] = str(args.liblsl_config.resolve())  # inherited by every process started here
    load0 = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = make_run(tmp)
        acc = None if args.skip_accelerated else accelerated(run, tmp / "accel.db", args.hours, args.speed)
        for aligned in [a == "aligned" for a in args.starts.split(",")]:
            for batched in [d == "batched" for d in args.designs.split(",")]:
                db = tmp / f"hub-{len(runs)}.db"
                runs.append(hub_run(run, db, args.sessions, args.seconds, batched=batched, aligned=aligned,
                                    max_batch=args.max_batch))
    load1 = os.getloadavg()
    expected_rt = int(args.seconds - 10) + 1
    lines = [
        "## Streaming (`benchmarks/bench_stream.py`)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"load average {load0[0]:.1f} before / {load1[0]:.1f} after (the cores are shared with other work). "
        "Model: `symaffect` with `EFFICIENT_KWARGS` (low-rank mixer, one token per modality), 10-s window, "
        "1-s hop, one torch thread, randomly initialised. Signal: 40 channels at 128 Hz, "
        "replayed through LSL on loopback; every prediction committed to SQLite (WAL) and published on LSL.",
        "",
        f"liblsl configuration: `{args.liblsl_config or 'symaffect.stream.lsl.LIBLSL_CONFIG'}`.",
        "",
    ]
    if acc is not None:
        lat = acc["latencies_ms"]
        lines += [
            f"### Accelerated replay: {args.hours:g} h at {args.speed:g}x",
            "",
            "| hops stored / expected | latency p50 (ms) | latency p99 (ms) | latency max (ms) | CPU per session (% of one core, per stream second) | wall (s) |",
            "|---|---|---|---|---|---|",
            f"| {acc['predictions']} / {acc['expected_hops']} | {pct(lat, 50):.1f} | {pct(lat, 99):.1f} | "
            f"{max(lat) if lat else float('nan'):.1f} | {100 * acc['cpu_seconds'] / acc['stream_seconds']:.2f} % | "
            f"{acc['wall_seconds']:.0f} |",
            "",
            f"Hops: {acc['hops']} (with or without prediction); quality rows: {acc['quality'] or 'none'}.",
            "",
            NOTE if acc["quality"] else "",
            "",
        ]
    lines += [
        f"### {args.sessions} concurrent real-time sessions in one process, {args.seconds:g} s each",
        "",
        "One hub process (one thread, one shared model, one shared store) and one replayer process. "
        "`batched`: the hops due in a round share one forward pass (at most "
        f"{args.max_batch}); `per-call`: one model call per hop, all else equal. `staggered`: each session "
        "starts at a random phase within one second (seeded); `aligned`: all start together (every hop of every "
        "session falls due at once). Vital signs (every 5 s) and signal strips (every 2 s) are computed and "
        "stored for every session too.",
        "",
        "| start | design | sessions kept up | hops stored / expected | p50 (ms) | p99 (ms) | max (ms) | "
        "CPU per session (% of one core) | forward passes | mean / largest batch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        ses = r["sessions"]
        lat = [v for s in ses for v in s["latencies_ms"]]
        kept = sum(1 for s in ses if s["predictions"] >= expected_rt and pct(s["latencies_ms"], 99) < 1000)
        stored = sum(s["predictions"] for s in ses)
        stream_s = sum(s["stream_seconds"] for s in ses)
        mean_b = r["hops"] / r["forward_passes"] if r["forward_passes"] else float("nan")
        lines.append(
            f"| {r['start']} | {r['design']} | {kept} / {len(ses)} | {stored} / {expected_rt * len(ses)} | "
            f"{pct(lat, 50):.1f} | {pct(lat, 99):.1f} | {max(lat) if lat else float('nan'):.1f} | "
            f"{100 * r['cpu_seconds'] / max(stream_s, 1e-9):.2f} % | {r['forward_passes']} | "
            f"{mean_b:.1f} / {r['largest_batch']} |")
    lines += [
        "",
        "CPU per session = the hub process's CPU time (including loading the model and connecting) / the "
        "sessions' total stream seconds. Latency = LSL clock after the round's commit minus the LSL "
        "timestamp of the window's last sample.",
        "",
        "Target (issue 13): at least 32 concurrent real-time sessions with p99 latency under 50 ms.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "src"))
    from symaffect._io import write_text

    write_text(args.out, text)


if __name__ == "__main__":
    main()
