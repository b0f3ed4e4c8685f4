"""Snapshot write and restore, the container of format 14 against the `.npz` of formats 6-13.

    python bench/bench_snapshot.py [--streams 50,1000,10000] [--modes per_stream,shared]
                                   [--rounds 10] [--rss]

For each weight mode and number of streams: a `MultiStreamDetector` (the project's default
model, univariate) that has seen 20 events per stream; then, best of `--rounds`, in ms:

- write: `to_bytes()` (the state gathered, then packed), and the same with formats 6-13's
  container (`np.savez`, the baseline, in the same run);
- restore: `from_bytes()` of either blob (both read: the `.npz` through `unpack`'s older path);
- with `--rss`, the peak RSS each restore adds beyond the blob it reads (MB), each in a fresh
  process (the blob written to a temporary file and read before measuring).

The Kafka daemon writes one `DetectorPool` snapshot per partition at every checkpoint, which
nests each detector's snapshot in the pool's: twice the pack.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
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


def restore_rss_mb(blob: bytes) -> float:
    """Peak RSS that `from_bytes(blob)` adds in a fresh process, beyond the blob (MB)."""
    with tempfile.NamedTemporaryFile(suffix=".snapshot") as f:
        f.write(blob)
        f.flush()
        out = subprocess.run([sys.executable, __file__, "--restore-rss", f.name], check=True,
                             capture_output=True, text=True).stdout
    return float(out)


def _peak_rss_kib() -> int:
    """This process's peak RSS (Linux: VmHWM; ru_maxrss would carry the parent's across exec)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:", 1)[1].split()[0])


def _restore_rss(path: str) -> None:
    data = Path(path).read_bytes()
    before = _peak_rss_kib()
    MultiStreamDetector.from_bytes(data)
    print((_peak_rss_kib() - before) * 1024 / 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default="50,1000,10000")
    ap.add_argument("--modes", default="per_stream,shared")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--rss", action="store_true", help="also the peak RSS of each restore, in a fresh process")
    ap.add_argument("--restore-rss", help=argparse.SUPPRESS)  # the fresh process's own mode
    args = ap.parse_args()
    if args.restore_rss:
        return _restore_rss(args.restore_rss)
    rss_head = f" {'RSS MB npz':>11s} {'RSS MB':>7s}" if args.rss else ""
    print(f"{'mode':10s} {'streams':>8s} {'MB':>8s} {'write npz':>10s} {'write':>8s} {'x':>6s}"
          f" {'restore npz':>12s} {'restore':>8s} {'x':>6s}{rss_head}")
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
            rss = f" {restore_rss_mb(old):11.0f} {restore_rss_mb(blob):7.0f}" if args.rss else ""
            print(f"{mode:10s} {n:8d} {len(blob) / 1e6:8.2f} {w_old:10.2f} {w_new:8.2f} {w_old / w_new:5.1f}x"
                  f" {r_old:12.2f} {r_new:8.2f} {r_old / r_new:5.1f}x{rss}", flush=True)


if __name__ == "__main__":
    main()
