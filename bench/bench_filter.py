"""End-to-end rate of the stdin filter against the kernel alone, same model, same events.

    python bench/bench_filter.py [--streams 1000] [--events 100] [--repeat 3] [--hidden-size 32] [--threads 0]

Writes a JSONL file of `streams` × `events` interleaved events, then times (1) the batched
kernel alone (`MultiStreamDetector.process` on the already-parsed arrays, in micro-batches
of the size the filter uses), (2) the filter in-process (`FilterRunner`: read, parse,
group, kernel, JSON output to a null sink), (3) `streamlstm run < file > /dev/null` as a
subprocess (includes interpreter start and loading the compiled kernels) and (4) the same
command on a one-line input, i.e. its start-up alone, which row (5) subtracts. Each is run
`repeat` times, interleaved; rates are the best run, "of kernel" the best against the best
kernel run, and the range is that ratio over the repetitions (the kernel run next to it).

Then the work per event of each stage of the filter, run one after the other on one thread
(the filter overlaps the kernel with the rest: the main thread reads, parses, routes and
formats while a worker thread runs the kernel, which releases the GIL).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from streamlstm.config import load_config
from streamlstm.io.filter_loop import FilterRunner, line_batches, reader
from streamlstm.io.parsers import JsonlParser
from streamlstm.io.records import result_lines
from streamlstm.multistream import MultiStreamDetector
from streamlstm.pool import DetectorPool, advance


def write_events(path: str, S: int, E: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    ids = [f"host-{s}/cpu" for s in range(S)]
    values = np.sin(np.arange(E)[:, None] / 7.0 + rng.uniform(0, 6, S)[None, :]) + 0.1 * rng.normal(size=(E, S))
    with open(path, "w") as f:
        for t in range(E):
            for s in range(S):
                event = {"stream": ids[s], "ts": 1_700_000_000 + 60 * t, "value": float(values[t, s])}
                f.write(json.dumps(event) + "\n")
    return ids, values


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--events", type=int, default=100, help="events per stream")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each path, interleaved")
    ap.add_argument("--hidden-size", type=int, default=32, help="model size (a smaller one: a faster kernel)")
    ap.add_argument("--threads", type=int, default=0, help="the model.threads setting (0 = every core)")
    args = ap.parse_args()
    model_env = {"STREAMLSTM_MODEL__HIDDEN_SIZE": str(args.hidden_size),  # defaults otherwise
                 "STREAMLSTM_MODEL__THREADS": str(args.threads)}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STREAMLSTM_")}, **model_env}
    S, E = args.streams, args.events
    tmp = tempfile.mkdtemp()
    path, one = os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "one.jsonl")
    ids, values = write_events(path, S, E)
    with open(path, "rb") as f, open(one, "wb") as g:
        g.write(f.readline())
    n = S * E
    config = load_config(None, env=model_env)
    with open(path, "rb") as f:  # the filter's micro-batches: what one read of the file returns
        batches = list(line_batches(f.read1, config.input.max_line_bytes, config.batch_size))
    sizes = [len(b) for b in batches]
    m = MultiStreamDetector(1, hidden_size=args.hidden_size, threads=args.threads)
    m.process(ids * 2, values[:2].reshape(-1, 1))  # load compiled code (split into shards too)

    def kernel() -> None:
        det = MultiStreamDetector(1, hidden_size=args.hidden_size, threads=args.threads)
        flat_ids, flat_x = ids * E, values.reshape(-1, 1)
        a = 0
        for size in sizes:
            det.process(flat_ids[a:a + size], flat_x[a:a + size])
            a += size

    def in_process() -> None:
        with open(path, "rb") as f:
            FilterRunner(config, io.StringIO(), io.StringIO()).run(reader(f))

    def command(file: str) -> float:
        argv = [sys.executable, "-m", "streamlstm.cli", "--log-level", "WARNING", "run"]
        with open(file, "rb") as f:
            return timed(lambda: subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, check=True, env=env))

    runs: dict[str, list[float]] = {k: [] for k in ("kernel", "filter", "cmd", "startup")}
    for _ in range(args.repeat):
        runs["kernel"].append(timed(kernel))
        runs["filter"].append(timed(in_process))
        runs["cmd"].append(command(path))
        runs["startup"].append(command(one))
    runs["steady"] = [c - s for c, s in zip(runs["cmd"], runs["startup"])]

    print(f"{S:,} streams x {E} events = {n:,} events, H={args.hidden_size}, K=16, k1=1, float32, per_stream, "
          f"threads={args.threads}, "
          f"{len(sizes)} micro-batches of ~{n // len(sizes)} lines, best of {args.repeat}\n")
    print(f"{'path':56s} {'events/s':>10s} {'of kernel':>10s} {'range':>11s}")
    best_kernel = min(runs["kernel"])
    for key, name in [("kernel", "kernel only (MultiStreamDetector.process)"),
                      ("filter", "filter in-process (read, parse, kernel, JSON out)"),
                      ("cmd", "streamlstm run < file > /dev/null (with startup)"),
                      ("steady", "streamlstm run, startup subtracted")]:
        ratios = [100 * k / t for k, t in zip(runs["kernel"], runs[key])]
        print(f"{name:56s} {n / min(runs[key]):10,.0f} {100 * best_kernel / min(runs[key]):9.0f}% "
              f"{min(ratios):4.0f}–{max(ratios):.0f}%")
    print(f"{'streamlstm run < one line > /dev/null (startup)':56s} {min(runs['startup']):9.2f} s "
          f"({min(runs['startup']):.2f}–{max(runs['startup']):.2f} s)\n")

    # The stages one after the other, per event (each the best of `repeat` passes).
    names = ("read + split lines", "parse (io/parsers.py)", "route (pool.py)", "kernel (pool.advance)",
             "format (records.result_lines)")
    best = dict.fromkeys(names, float("inf"))
    for _ in range(args.repeat):
        spent = dict.fromkeys(names, 0.0)
        with open(path, "rb") as f:
            t0 = time.perf_counter()
            batches = list(line_batches(f.read1, config.input.max_line_bytes, config.batch_size))
            spent[names[0]] = time.perf_counter() - t0
        parser, pool, seq = JsonlParser(config.input, max_streams=config.max_streams), DetectorPool(config), 0
        for lines in batches:
            t0 = time.perf_counter()
            events = [parser.parse(seq + k + 1, line) for k, line in enumerate(lines)]
            t1 = time.perf_counter()
            routed = pool.route(events)
            t2 = time.perf_counter()
            results = advance(routed)
            t3 = time.perf_counter()
            result_lines(routed, results)
            t4 = time.perf_counter()
            seq += len(lines)
            for name, t in zip(names[1:], (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                spent[name] += t
        best = {name: min(best[name], spent[name]) for name in names}
    print(f"{'stage (one thread, one after the other)':56s} {'µs/event':>10s}")
    for name in names:
        print(f"{name:56s} {1e6 * best[name] / n:10.2f}")
    python = sum(t for name, t in best.items() if not name.startswith("kernel"))
    print(f"{'all but the kernel':56s} {1e6 * python / n:10.2f}")


if __name__ == "__main__":
    main()
