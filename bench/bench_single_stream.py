"""Events/s per core for learn+score of one stream, against river's HalfSpaceTrees.

    python bench/bench_single_stream.py [--events 20000] [--warmup 100000] [--rounds 3]

Model: H=32, D=1, K=16, k1=1, float32, SGD (the default) and Adam. Every detector sees the
same noisy sine, event by event, in one process on one core: `--warmup` events untimed
(a long-running stream, not a fresh model: Adam once slowed to 1/3 after ~90k events on
subnormal floats, which a short run never saw), then `--events` timed. Each detector is
timed in `--rounds` interleaved rounds and its best round is reported, so a burst of load
from other processes does not decide the comparison. Also prints the fraction of the
CPU's single-precision FMA peak the kernel reaches (FMAs counted analytically).
"""

from __future__ import annotations

import argparse
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
    """Events/s of each fn's best round (fn returns the seconds its timed events took);
    rounds interleave the fns."""
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = max(best[i], n / fn())
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--warmup", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n, w = args.events, args.warmup
    x = np.sin(np.arange(w + n) / 8.0) + 0.1 * np.random.default_rng(0).normal(size=w + n)
    rows = [{"value": float(v)} for v in x]

    def timed(model):
        """Seconds for score_one+learn_one of the last n rows, after the first w untimed."""
        score, learn = model.score_one, model.learn_one
        for r in rows[:w]:
            score(r)
            learn(r)
        t0 = time.perf_counter()
        for r in rows[w:]:
            score(r)
            learn(r)
        return time.perf_counter() - t0

    def river_hst():  # a fresh model each round: every round learns the same stream
        return timed(compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=0)))

    def streamlstm_one(**kw):
        def run():
            return timed(LSTMDetector(hidden_size=H, k2=K, k1=1, **kw))
        return run

    def streamlstm_batch(**kw):
        def run():
            m = MultiStreamDetector(1, hidden_size=H, k2=K, k1=1, **kw)
            m.process(["s"] * w, x[:w, None])
            t0 = time.perf_counter()
            m.process(["s"] * n, x[w:, None])
            return time.perf_counter() - t0
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
          f" at {ghz:.2f} GHz); best of {args.rounds} rounds of {n:,} events after {w:,} untimed"
          f" (LSTMDetector: learn_one takes the judgement score_one made of the same event)")


if __name__ == "__main__":
    main()
