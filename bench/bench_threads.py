"""Events/s of `MultiStreamDetector.process` on 1, 2 and all cores (the `threads` setting).

    python bench/bench_threads.py [--streams 1000 10000] [--batches 20] [--rounds 3]
    python bench/bench_threads.py --overhead    # the small-batch threshold (MIN_SHARD_EVENTS)

Model: the defaults (H=32, D=1, K=16, k1=1, float32, SGD), in per_stream mode, in shared
mode, and in shared mode with `record_window` (the BPTT window recorded, not re-run); events arrive from all streams in a random order, in micro-batches of 4,096 events
(the filter's `batch_size`). For each mode and stream count one detector is built and
taken past every stream's first events untimed (the warm-up, `--warmup` events per
stream); then each round times `--batches` micro-batches at each thread count in turn, on
the same detector (its engine's thread count is switched between blocks: per_stream
results do not depend on it, and shared mode always runs on one), and once more on one
thread with the batch unsplit, in input order (`process_batch`, as before streams were
grouped; the "input order" column). The table gives each best round and the ratios to
one thread's, measured in the same run, so a burst of load from other processes decides
none. It also prints `uptime`'s load.

--overhead times calls of N events (N/8 streams, 8 events each) with shards of any size
allowed, one thread against two: where two threads start to win is the threshold.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from streamlstm import MultiStreamDetector
from streamlstm.engine import cpu_engine

BATCH = 4096


def batches(n_streams: int, n_batches: int, rng) -> list[tuple[list[str], np.ndarray]]:
    """n_batches micro-batches of BATCH events of random streams (a noisy sine each)."""
    out = []
    for _ in range(n_batches):
        sid = rng.integers(0, n_streams, BATCH)
        X = (np.sin(sid * 0.1 + rng.random(BATCH) * 0.3) + 0.05 * rng.normal(size=BATCH))[:, None]
        out.append(([f"s{i}" for i in sid], X))
    return out


INPUT_ORDER = 0  # a column: one thread, batches unsplit (process_batch)


def timed(det: MultiStreamDetector, threads: int, work) -> float:
    """Events/s of processing `work` with the engine on this many threads (INPUT_ORDER:
    one, unsplit)."""
    det.engine.threads = 1 if det.hyper.shared else max(threads, 1)
    unsplit = cpu_engine.MIN_SHARD_EVENTS
    if threads == INPUT_ORDER:
        cpu_engine.MIN_SHARD_EVENTS = BATCH
    t0 = time.perf_counter()
    for ids, X in work:
        det.process(ids, X)
    cpu_engine.MIN_SHARD_EVENTS = unsplit
    return len(work) * BATCH / (time.perf_counter() - t0)


def label(t: int) -> str:
    return "1 thread, input order" if t == INPUT_ORDER else f"{t} thread{'s' * (t > 1)}"


def throughput(args, counts: list[int]) -> None:
    rng = np.random.default_rng(0)
    rows = []
    modes = {"per_stream": {}, "shared": {"weight_mode": "shared"},
             "shared, record_window": {"weight_mode": "shared", "record_window": True}}
    for mode, settings in modes.items():
        for n_streams in args.streams:
            det = MultiStreamDetector(1, max_streams=n_streams, **settings)
            for ids, X in batches(n_streams, max(1, n_streams * args.warmup // BATCH), rng):
                det.process(ids, X)  # untimed: compiles, allocates every stream, warms up
            best = dict.fromkeys(counts, 0.0)
            for _ in range(args.rounds):
                for t in counts:
                    best[t] = max(best[t], timed(det, t, batches(n_streams, args.batches, rng)))
            rows.append((mode, n_streams, best))
            print(f"  {mode} {n_streams}: " + ", ".join(f"{label(t)} {r:,.0f}" for t, r in best.items()), flush=True)
    print(f"\nload (uptime): {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
          f"{os.cpu_count()} CPUs; {args.rounds} rounds of {args.batches} x {BATCH} events, best round\n")
    others = [t for t in counts if t != 1]
    print("| mode | streams | " + " | ".join(label(t) for t in counts)
          + " | " + " | ".join("input order / 1" if t == INPUT_ORDER else f"{t} / 1" for t in others) + " |")
    print("|---|---:|" + "---:|" * (len(counts) + len(others)))
    for mode, n_streams, best in rows:
        print(f"| {mode} | {n_streams:,} | " + " | ".join(f"{best[t]:,.0f}" for t in counts)
              + " | " + " | ".join(f"{best[t] / best[1]:.2f}x" for t in others) + " |")


def overhead(args) -> None:
    """Microseconds per call of N events, one thread against two, shards of any size."""
    rng = np.random.default_rng(1)
    cpu_engine.MIN_SHARD_EVENTS = 1
    det = MultiStreamDetector(1)
    print("| events per call | 1 thread (us) | 2 threads (us) | saved per call (us) |")
    print("|---:|---:|---:|---:|")
    for n in (16, 32, 64, 128, 256, 512):
        ids = [f"s{i % (n // 8)}" for i in range(n)]
        X = rng.normal(size=(n, 1))
        best = {}
        for t in (1, 2):
            det.engine.threads = t
            det.process(ids, X)  # first use of the shard kernel and workers
        for _ in range(args.rounds):
            for t in (1, 2):
                det.engine.threads = t
                t0 = time.perf_counter()
                for _ in range(200):
                    det.process(ids, X)
                best[t] = min(best.get(t, np.inf), (time.perf_counter() - t0) / 200 * 1e6)
        print(f"| {n} | {best[1]:.0f} | {best[2]:.0f} | {best[1] - best[2]:.0f} |", flush=True)
    print(f"\nload (uptime): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[1000, 10_000])
    ap.add_argument("--batches", type=int, default=20, help="micro-batches per timed block")
    ap.add_argument("--warmup", type=int, default=20, help="untimed events per stream first")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--overhead", action="store_true", help="measure the small-batch threshold instead")
    args = ap.parse_args()
    if args.overhead:
        overhead(args)
        return
    cores = cpu_engine.resolve_threads(0)
    throughput(args, sorted({INPUT_ORDER, 1, 2, cores}))


if __name__ == "__main__":
    main()
