"""End-to-end rate of the stdin filter against the kernel alone, same model, same events.

    python bench/bench_filter.py [--streams 1000] [--events 100]

Writes a JSONL file of `streams` × `events` interleaved events, then times (1) the batched
kernel alone (`MultiStreamDetector.process` on the already-parsed arrays, in micro-batches
of the size the filter uses), (2) the filter in-process (`FilterRunner`: read, parse,
group, kernel, JSON output to a null sink) and (3) `streamlstm run < file > /dev/null` as
a subprocess (includes interpreter start and loading the compiled kernels).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from streamlstm.config import load_config
from streamlstm.filter_loop import FilterRunner, reader
from streamlstm.multistream import MultiStreamDetector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--events", type=int, default=100, help="events per stream")
    args = ap.parse_args()
    S, E = args.streams, args.events
    rng = np.random.default_rng(0)
    ids = [f"host-{s}/cpu" for s in range(S)]
    values = np.sin(np.arange(E)[:, None] / 7.0 + rng.uniform(0, 6, S)[None, :]) + 0.1 * rng.normal(size=(E, S))
    path = os.path.join(tempfile.mkdtemp(), "events.jsonl")
    with open(path, "w") as f:
        for t in range(E):
            for s in range(S):
                f.write(json.dumps({"stream": ids[s], "ts": 1_700_000_000 + 60 * t, "value": float(values[t, s])}) + "\n")
    n = S * E
    config = load_config(None, env={})
    batch = (1 << 16) // 80  # lines per 64 KiB read at ~80 bytes per line

    # (1) kernel only, same micro-batches
    m = MultiStreamDetector(1)
    m.process(ids[:1], values[:1, :1])  # load compiled code
    m = MultiStreamDetector(1)
    flat_ids, flat_x = ids * E, values.reshape(-1, 1)
    t0 = time.perf_counter()
    for a in range(0, n, batch):
        m.process(flat_ids[a:a + batch], flat_x[a:a + batch])
    kernel = n / (time.perf_counter() - t0)

    # (2) the filter in-process
    runner = FilterRunner(config, io.StringIO(), io.StringIO())
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        runner.run(reader(f))
        filt = n / (time.perf_counter() - t0)

    # (3) the command
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "streamlstm.cli", "--log-level", "WARNING", "run"], stdin=f,
                       stdout=subprocess.DEVNULL, check=True)
        cmd = n / (time.perf_counter() - t0)

    print(f"{S:,} streams x {E} events = {n:,} events, H=32, K=16, k1=1, float32, per_stream\n")
    print(f"{'path':52s} {'events/s':>10s} {'of kernel':>10s}")
    for name, rate in [("kernel only (MultiStreamDetector.process)", kernel),
                       ("filter in-process (read, parse, kernel, JSON out)", filt),
                       ("streamlstm run < file > /dev/null (with startup)", cmd)]:
        print(f"{name:52s} {rate:10,.0f} {100 * rate / kernel:9.0f}%")


if __name__ == "__main__":
    main()
