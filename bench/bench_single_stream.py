"""Events/s per core for learn+score of one stream, against river's HalfSpaceTrees.

    python bench/bench_single_stream.py [--events 20000]

Model: H=32, D=1, K=16, k1=1, float32, SGD (the default) and Adam. Both detectors see the
same noisy sine, event by event, in one process on one core. Each detector is timed in
`--rounds` interleaved rounds and its best round is reported, so a burst of load from other
processes does not decide the comparison. Also prints the fraction of the CPU's
single-precision FMA peak the kernel reaches (FMAs counted analytically).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from river import anomaly, compose, preprocessing

from streamlstm import LSTMDetector, MultiStreamDetector

H, D, K = 32, 1, 16


def fmas_per_event() -> int:
    """Multiply-adds of one learn+score event at k1=1 in per_stream mode (gates dominate;
    head/optimiser added)."""
    G = 4 * H
    step = (H + D) * G
    forward = step  # the carried step (it records the window's forward cache)
    backward = K * 2 * step  # dW accumulation and dh propagation per step
    P = (H + D) * G + G + H * D + D
    return forward + backward + 3 * P


def cpu_peak() -> tuple[float, int]:
    """(GHz, float32 FMAs per cycle): two FMA pipes of 8 lanes (AVX2) or 16 (AVX-512)."""
    with open("/proc/cpuinfo") as f:
        info = f.read()
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    return max(mhz) / 1000.0, 32 if " avx512f" in info else 16


def best_rates(fns: list, n: int, rounds: int) -> list[float]:
    """Events/s of each fn's best round; rounds interleave the fns."""
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = max(best[i], n / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.events
    x = np.sin(np.arange(n) / 8.0) + 0.1 * np.random.default_rng(0).normal(size=n)
    rows = [{"value": float(v)} for v in x]

    def river_hst():
        model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=0))
        for r in rows:
            model.score_one(r)
            model.learn_one(r)

    def streamlstm_one(**kw):
        def run():  # a fresh detector each round: every round learns the same stream
            det = LSTMDetector(hidden_size=H, k2=K, k1=1, **kw)
            for r in rows:
                det.score_one(r)
                det.learn_one(r)
        return run

    def streamlstm_batch(**kw):
        def run():
            m = MultiStreamDetector(1, hidden_size=H, k2=K, k1=1, **kw)
            m.process(["s"] * n, x[:, None])
        return run

    LSTMDetector().learn_one(rows[0])  # load the compiled kernels outside the timing
    names = [
        ("river MinMaxScaler | HalfSpaceTrees (score_one+learn_one)", river_hst, False),
        ("streamlstm LSTMDetector sgd (score_one+learn_one)", streamlstm_one(), True),
        ("streamlstm MultiStreamDetector.process sgd", streamlstm_batch(), True),
        ("streamlstm MultiStreamDetector.process adam", streamlstm_batch(optimizer="adam"), True),
    ]
    rates = best_rates([fn for _, fn, _ in names], n, args.rounds)
    ghz, lanes = cpu_peak()
    peak = lanes * ghz * 1e9
    base = rates[0]
    print(f"{'detector':62s} {'events/s':>10s} {'vs HST':>7s} {'FMA peak':>9s}")
    for (name, _, counted), rate in zip(names, rates):
        frac = f"{100 * rate * fmas_per_event() / peak:8.1f}%" if counted else f"{'':>9s}"
        print(f"{name:62s} {rate:10,.0f} {rate / base:6.1f}x {frac}")
    print(f"\n{fmas_per_event():,} FMAs/event; peak {peak / 1e9:.0f} GFMA/s/core ({lanes} float32 FMAs/cycle"
          f" at {ghz:.2f} GHz); best of {args.rounds} rounds of {n:,} events"
          f" (LSTMDetector.score_one+learn_one scores each event twice)")


if __name__ == "__main__":
    main()
