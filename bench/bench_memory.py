"""Memory per stream: the bytes of state a stream's slot takes in each weight mode, and the
resident memory of a process that holds many streams of one shared-mode model.

    python bench/bench_memory.py [--streams 1000000] [--events 2] [--batch 65536]

Model: the defaults (H=32, K=16, D=1, 24 seasonal bins, short window 10, float32, SGD).
First the slot bytes (`MultiStreamDetector.bytes_per_stream`) of each mode and cell. Then
a fresh process builds a shared-mode detector with `max_streams` = --streams, advances
`--events` events of each of that many distinct streams (ids "stream-0000042", timestamps,
in micro-batches of --batch events) and reports its RSS (VmRSS) and peak (VmHWM) against
its own baseline in the same run: the process after importing and compiling on one
stream. The growth splits into the slot tables (capacity x slot bytes; the tables grow
by doubling, up to max_streams) and the rest, which is the Python bookkeeping of the
stream ids (`StreamTable`) and the allocator's.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys

import numpy as np

from streamlstm import MultiStreamDetector

GiB = 2.0 ** 30


def rss() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process, bytes."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return tuple(int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))


def child(n_streams: int, events: int, batch: int) -> dict:
    det = MultiStreamDetector(1, weight_mode="shared", max_streams=n_streams)
    det.process(["warm"], np.zeros((1, 1)), np.zeros(1))  # compile, allocate the first tables
    det.evict(["warm"])
    gc.collect()
    base, _ = rss()
    rng = np.random.default_rng(0)
    t0 = 1.7e9
    for e in range(events):
        for lo in range(0, n_streams, batch):
            n = min(batch, n_streams - lo)
            ids = [f"stream-{i:07d}" for i in range(lo, lo + n)]
            det.process(ids, rng.normal(size=(n, 1)), np.full(n, t0 + 3600.0 * e))
    gc.collect()
    now, peak = rss()
    return {"streams": det.n_streams, "capacity": det.capacity, "row_bytes": det.bytes_per_stream(),
            "base": base, "rss": now, "peak": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=2)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.streams, args.events, args.batch)))
        return

    print("bytes of state per stream (slot tables), H=32, K=16, D=1, defaults")
    print(f"{'mode':>22s} {'LSTM, SGD':>10s} {'LSTM, Adam':>11s} {'GRU, SGD':>9s} {'GRU, Adam':>10s}")
    modes = {"per_stream": {}, "shared": {"weight_mode": "shared"},
             "shared, record_window": {"weight_mode": "shared", "record_window": True}}
    for mode, settings in modes.items():
        sizes = [MultiStreamDetector(1, cell=cell, optimizer=opt, **settings).bytes_per_stream()
                 for cell in ("lstm", "gru") for opt in ("sgd", "adam")]
        print(f"{mode:>22s} {sizes[0]:>10,d} {sizes[1]:>11,d} {sizes[2]:>9,d} {sizes[3]:>10,d}")
    print(f"{'shared, no bins':>22s} {MultiStreamDetector(1, weight_mode='shared', seasonal_bins=0).bytes_per_stream():>10,d}")

    out = subprocess.run([sys.executable, __file__, "--child", "--streams", str(args.streams), "--events",
                          str(args.events), "--batch", str(args.batch)], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    grown = r["rss"] - r["base"]
    tables = r["capacity"] * r["row_bytes"]
    print(f"\n{r['streams']:,d} streams of one shared-mode model ({args.events} events each); RSS of the process")
    print(f"{'':>28s} {'GiB':>7s} {'bytes/stream':>13s}")
    for name, value in (("baseline (one stream)", r["base"]), ("holding the streams", r["rss"]),
                        ("peak", r["peak"]), ("growth", grown),
                        (f"  slot tables ({r['capacity']:,d} slots)", tables), ("  the rest", grown - tables)):
        print(f"{name:>28s} {value / GiB:>7.3f} {value / r['streams']:>13,.0f}")


if __name__ == "__main__":
    main()
