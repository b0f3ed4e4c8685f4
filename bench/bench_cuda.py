"""Throughput of the CUDA backend against the CPU path, for many streams.

    python bench/bench_cuda.py                       # 1k, 10k, 100k, 1M streams
    python bench/bench_cuda.py --streams 1000 10000 --rounds 5

Model: LSTM, hidden 32, k2 (BPTT window) 16, k1 1, one feature, float32, shared weights.
Each round is one micro-batch holding one event of every stream (so one wave; in shared
mode one optimiser update per `--max-wave` events). Reported per stream count:
  gpu ev/s   events per second of the CUDA engine (after a warm-up round that compiles
             the kernels and fills the windows), host<->device copies included
  cpu ev/s   events per second of kernels_cpu.process_batch in the same run, on the
             same model, over `--cpu-events` events (one thread)
  B/stream   device bytes per stream: the state tables (`bytes_per_stream`) and the
             measured growth of used device memory divided by the stream count (the
             latter includes the per-thread workspace of one wave, shared by all streams)

Exits with status 2 and a message when no CUDA device is present. Under the CUDA
simulator (NUMBA_ENABLE_CUDASIM=1) it runs, very slowly, as a smoke test: use tiny sizes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamlstm.engine import hyperparams  # noqa: E402
from streamlstm.engine.backend import cuda_device_name  # noqa: E402
from streamlstm.engine.kernels_cpu import make_workspace, new_outputs, process_batch  # noqa: E402
from streamlstm.engine.layout import C_RNG  # noqa: E402
from streamlstm.engine.params import init_params, param_size  # noqa: E402
from streamlstm.engine.state import alloc_params, alloc_streams  # noqa: E402


def events(S: int, r: int, rng) -> np.ndarray:
    t = np.arange(S) * 0.37 + r * 0.2
    return (np.sin(t) + 0.05 * rng.normal(size=S))[:, None]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--k2", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5, help="timed micro-batches per stream count")
    ap.add_argument("--max-wave", type=int, default=65536, help="threads per launch (workspace rows)")
    ap.add_argument("--tpb", type=int, default=128, help="threads per block")
    ap.add_argument("--cpu-events", type=int, default=50_000, help="events timed on the CPU path")
    ap.add_argument("--weight-mode", choices=["shared", "per_stream"], default="shared")
    args = ap.parse_args()

    device = cuda_device_name()
    if device is None:
        print("bench_cuda: no CUDA device found (numba-cuda missing, no GPU, or no driver); "
              "nothing to measure. Install with pip install 'streamlstm[cuda]' on a machine with an "
              "NVIDIA GPU.", file=sys.stderr)
        return 2

    from numba import cuda

    from streamlstm.engine.cuda_engine import CudaEngine

    sim = device == "CUDA simulator"
    settings = {**hyperparams.DEFAULTS, "hidden_size": args.hidden, "k2": args.k2, "k1": 1, "dtype": "float32",
                "warmup": 50}
    shared = args.weight_mode == "shared"
    hy = hyperparams.kernel_hyper(settings, 1, shared)
    dtype = np.float32
    theta0 = init_params(hy.cell, 1, hy.H, 0, dtype)
    P = param_size(hy.cell, 1, hy.H)
    print(f"device: {device}; LSTM H={hy.H} K={hy.K} k1=1 D=1 float32 {args.weight_mode}; P={P}")
    print(f"{'streams':>9} {'gpu ev/s':>12} {'cpu ev/s':>10} {'speed-up':>8} {'state B/stream':>14} "
          f"{'used B/stream':>13} {'batch ms':>9}")
    rng = np.random.default_rng(0)
    for S in args.streams:
        def mem_used():
            if sim:
                return 0
            free, total = cuda.current_context().get_memory_info()
            return total - free

        used0 = mem_used()
        streams = alloc_streams(0, hy, dtype)
        params = alloc_params(1 if shared else 0, theta0, False)
        eng = CudaEngine(hy, streams, params, theta0, max_wave=args.max_wave, threads_per_block=args.tpb)
        slots = np.arange(S, dtype=np.int64)
        eng.reset_slots(slots, (slots * 0x9E3779B9) | 1)
        eng.process(slots, events(S, 0, rng))  # compile + warm up
        eng.synchronize()
        used = (mem_used() - used0) / S
        t0 = time.perf_counter()
        for r in range(args.rounds):
            eng.process(slots, events(S, r + 1, rng))
        eng.synchronize()
        gpu_s = time.perf_counter() - t0
        gpu_rate = S * args.rounds / gpu_s

        # CPU path on the same model and event pattern (a bounded number of events).
        n_cpu = min(args.cpu_events, S * args.rounds)
        cs = alloc_streams(S, hy, dtype)
        cs.counters[:, C_RNG] = (slots * 0x9E3779B9) | 1
        cp = alloc_params(1 if shared else S, theta0, False)
        ws = make_workspace(hy.cell, 1, hy.H, hy.K, P, dtype)
        warm = min(S, 1000)
        process_batch(new_outputs(warm, 1), np.arange(warm), slots[:warm], events(S, 0, rng)[:warm],
                      np.full(warm, np.nan), True, True, cs, cp, ws, hy)
        cpu_slots = np.resize(slots, n_cpu)
        cpu_X = np.resize(events(S, 1, rng), (n_cpu, 1))
        t0 = time.perf_counter()
        process_batch(new_outputs(n_cpu, 1), np.arange(n_cpu), cpu_slots, cpu_X, np.full(n_cpu, np.nan), True, True,
                      cs, cp, ws, hy)
        cpu_rate = n_cpu / (time.perf_counter() - t0)
        print(f"{S:>9} {gpu_rate:>12,.0f} {cpu_rate:>10,.0f} {gpu_rate / cpu_rate:>8.1f} "
              f"{eng.bytes_per_stream():>14} {used:>13,.0f} {1e3 * gpu_s / args.rounds:>9.1f}", flush=True)
        del eng
    return 0


if __name__ == "__main__":
    sys.exit(main())
