"""Long cycles without timestamps: can the score point at one abnormal beat? A check in the
image of UCR's anomaly archive (long periodic series, one anomaly each, no timestamps),
which we do not hold, beside river's HalfSpaceTrees on the same series.

    python bench/beats_quality.py [--config FILE] [--seeds 10]

Each series is 12,000 events of a heartbeat-like pulse (a tall narrow peak and a low wide
one per beat, period 150 events, longer than the model's window of history), with noise
of 2 % of the peak, once with every beat the same length and once with each beat's length
drawn within +-3 % (a heart's rate varies). One beat from event 8,000 on is abnormal:
1.6 times as tall, missing (the signal flat for a beat), 1.5 times as fast, noisy,
shifted by a quarter of the peak, or inverted. UCR's rule: a detector finds the anomaly
when its score's largest value (here after the first 2,000 events, once warm) lies within
100 events of the abnormal beat. Columns: how many of the seeds' series each detector
found, per anomaly type; the seed draws the data and the model's initial weights.
HalfSpaceTrees runs as in synthetic_quality.py (`MinMaxScaler() | HalfSpaceTrees`).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from streamlstm.config import load_config
from streamlstm.evaluate.labelled import half_space_trees
from streamlstm.pool import detector_for

N, PERIOD, FROM, WARM, NEAR = 12_000, 150, 8_000, 2_000, 100
KINDS = ("taller", "missing", "faster", "noisy", "shifted", "inverted")


def beat(length: int) -> np.ndarray:
    """One beat of `length` events: a tall narrow peak at 0.3 of it, a low wide one at 0.6."""
    phase = np.arange(length) / length
    return np.exp(-0.5 * ((phase - 0.3) / 0.02) ** 2) + 0.3 * np.exp(-0.5 * ((phase - 0.6) / 0.06) ** 2)


def series(kind: str, seed: int, jitter: float) -> tuple[np.ndarray, int, int]:
    """The pulse train with one abnormal beat of `kind`: (values, the beat's first event, its length)."""
    rng = np.random.default_rng(seed)
    lengths = np.round(PERIOD * (1 + rng.uniform(-jitter, jitter, N // (PERIOD // 2)))).astype(int)
    starts = np.cumsum(np.r_[0, lengths[:-1]])
    pick = int(np.searchsorted(starts, FROM + rng.integers(0, N - FROM - 3 * PERIOD)))
    parts = []
    for k, length in enumerate(lengths):
        b = beat(length)
        if k == pick:
            b = {"taller": lambda: 1.6 * b, "missing": lambda: np.zeros(length), "faster": lambda: np.resize(
                beat(int(length / 1.5)), length), "noisy": lambda: b + rng.normal(0, 0.1, length),
                 "shifted": lambda: b + 0.25, "inverted": lambda: b.max() - b}[kind]()
        parts.append(b)
    x = np.concatenate(parts)[:N]
    return x + 0.02 * rng.normal(size=N), int(starts[pick]), int(lengths[pick])


def found(scores: np.ndarray, start: int, length: int) -> bool:
    """UCR's rule: the largest score after the warm-up within NEAR events of the anomaly."""
    top = WARM + int(np.argmax(scores[WARM:]))
    return start - NEAR <= top < start + length + NEAR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    model = load_config(args.config).model
    print(f"{'anomaly':10s} {'beats alike':>22s} {'beats within +-3 %':>22s}")
    print(f"{'':10s} {'ours':>11s} {'HST':>10s} {'ours':>11s} {'HST':>10s}")
    for kind in KINDS:
        row = []
        for jitter in (0.0, 0.03):
            ours = hst = 0
            for seed in range(args.seeds):
                x, start, length = series(kind, seed, jitter)
                det = detector_for(dataclasses.replace(model, seed=seed), 1, max_streams=1)
                ours += found(det.process(["beats"] * N, x[:, None]).scores, start, length)
                hst += found(half_space_trees(x[:, None], seed), start, length)
            row += [f"{ours:>7d}/{args.seeds:<3d}", f"{hst:>6d}/{args.seeds:<3d}"]
        print(f"{kind:10s} " + " ".join(row))
    print(f"\n{args.seeds} seeds; found: the largest score after event {WARM:,} within {NEAR} events of the abnormal beat")


if __name__ == "__main__":
    main()
