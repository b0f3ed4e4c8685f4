"""Events/s per core for learn+score of one stream, against river's HalfSpaceTrees.

    python bench/bench_single_stream.py [--events 20000]

Model: H=32, D=1, K=16, k1=1, float32, SGD (the default) and Adam. Both detectors see the
same noisy sine, event by event, in one process on one core. Also prints the fraction of
the CPU's single-precision FMA peak the kernel reaches (FMAs counted analytically).
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
    """Multiply-adds of one learn+score event at k1=1 (gates dominate; head/optimiser added)."""
    G = 4 * H
    step = (H + D) * G
    forward = (K + 2) * step  # window re-run + window-start roll + carried state
    backward = K * 2 * step  # dW accumulation and dh propagation per step
    P = (H + D) * G + G + H * D + D
    return forward + backward + 3 * P


def cpu_ghz() -> float:
    with open("/proc/cpuinfo") as f:
        mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
    return max(mhz) / 1000.0


def timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    n = ap.parse_args().events
    x = np.sin(np.arange(n) / 8.0) + 0.1 * np.random.default_rng(0).normal(size=n)
    rows = [{"value": float(v)} for v in x]

    def river_hst():
        model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=0))
        for r in rows:
            model.score_one(r)
            model.learn_one(r)

    def streamlstm_one(**kw):
        det = LSTMDetector(hidden_size=H, k2=K, k1=1, **kw)
        det.learn_one(rows[0])  # compile / load the cached kernels outside the timing

        def run():
            for r in rows:
                det.score_one(r)
                det.learn_one(r)
        return run

    def streamlstm_batch(**kw):
        m = MultiStreamDetector(1, hidden_size=H, k2=K, k1=1, **kw)
        m.process(["s"], x[:1, None])
        return lambda: m.process(["s"] * n, x[:, None])

    peak = 16 * cpu_ghz() * 1e9  # two 256-bit FMA pipes: 16 float32 FMAs per cycle
    results = [
        ("river MinMaxScaler | HalfSpaceTrees (score_one+learn_one)", timed(river_hst, n), None),
        ("streamlstm LSTMDetector sgd (score_one+learn_one)", timed(streamlstm_one(), n), True),
        ("streamlstm MultiStreamDetector.process sgd", timed(streamlstm_batch(), n), True),
        ("streamlstm MultiStreamDetector.process adam", timed(streamlstm_batch(optimizer="adam"), n), True),
    ]
    base = results[0][1]
    print(f"{'detector':62s} {'events/s':>10s} {'vs HST':>7s} {'FMA peak':>9s}")
    for name, rate, counted in results:
        frac = f"{100 * rate * fmas_per_event() / peak:8.1f}%" if counted else f"{'':>9s}"
        print(f"{name:62s} {rate:10,.0f} {rate / base:6.1f}x {frac}")
    print(f"\n{fmas_per_event():,} FMAs/event; peak {peak / 1e9:.0f} GFMA/s/core at {cpu_ghz():.2f} GHz"
          f" (LSTMDetector.score_one+learn_one scores each event twice)")


if __name__ == "__main__":
    main()
