"""Snapshot write and restore, the container of format 14 against the `.npz` of formats 6-13.

    python bench/bench_snapshot.py [--streams 50,1000,10000] [--modes per_stream,shared]
                                   [--rounds 10]

For each weight mode and number of streams: a `MultiStreamDetector` (the project's default
model, univariate) that has seen 20 events per stream; then, best of `--rounds`, in ms:

- write: `to_bytes()` (the state gathered, then packed), and the same with formats 6-13's
  container (`np.savez`, the baseline, in the same run);
- restore: `from_bytes()` of either blob (both read: the `.npz` through `unpack`'s older path).

The Kafka daemon writes one `DetectorPool` snapshot per partition at every checkpoint, which
nests each detector's snapshot in the pool's: twice the pack.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from streamlstm.engine import snapshot  # noqa: E402
from streamlstm.multistream import MultiStreamDetector  # noqa: E402


def npz_pack(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    """Formats 6-13's `snapshot.pack`: the baseline."""
    buf = io.BytesIO()
    meta = {**meta, "format_version": snapshot.FORMAT_VERSION}
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(buf, **arrays, __meta__=blob)
    return buf.getvalue()


def npz_to_bytes(det: MultiStreamDetector) -> bytes:
    """`det.to_bytes()` as it was with formats 6-13's container."""
    pack, snapshot.pack = snapshot.pack, npz_pack
    try:
        return det.to_bytes()
    finally:
        snapshot.pack = pack


def best_ms(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default="50,1000,10000")
    ap.add_argument("--modes", default="per_stream,shared")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    print(f"{'mode':10s} {'streams':>8s} {'MB':>8s} {'write npz':>10s} {'write':>8s} {'x':>6s}"
          f" {'restore npz':>12s} {'restore':>8s} {'x':>6s}")
    for mode in args.modes.split(","):
        for n in map(int, args.streams.split(",")):
            det = MultiStreamDetector(1, weight_mode=mode, max_streams=max(n, 1000), seed=0)
            ids = [f"s{i}" for i in range(n)] * 20
            det.process(ids, np.sin(np.arange(len(ids)) / 7.0)[:, None])
            blob, old = det.to_bytes(), npz_to_bytes(det)
            w_old = best_ms(lambda: npz_to_bytes(det), args.rounds)
            w_new = best_ms(det.to_bytes, args.rounds)
            r_old = best_ms(lambda: MultiStreamDetector.from_bytes(old), args.rounds)
            r_new = best_ms(lambda: MultiStreamDetector.from_bytes(blob), args.rounds)
            print(f"{mode:10s} {n:8d} {len(blob) / 1e6:8.2f} {w_old:10.2f} {w_new:8.2f} {w_old / w_new:5.1f}x"
                  f" {r_old:12.2f} {r_new:8.2f} {r_old / r_new:5.1f}x", flush=True)


if __name__ == "__main__":
    main()
