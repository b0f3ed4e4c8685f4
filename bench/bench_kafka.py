"""Kafka daemon throughput and latency on a local Tansu broker.

    python bench/bench_kafka.py [--events 100000] [--streams 100] [--partitions 2]
                                [--rate 2000] [--latency-events 10000] [--hidden-size 32]
                                [--output-mode batch|event]

1. Produces `--events` events (univariate, `--streams` streams keyed by stream id) into a fresh
   topic on a Tansu broker this script starts.
2. Raw consume: a bare kafka-python consumer (its default settings) reads that topic from the
   beginning (messages/s). For context it is repeated with the daemon's fetch settings. Both
   verify each batch's CRC-32C with the implementation kafka-python resolved (printed; the
   `crc32c` package's C extension when installed, else pure Python), as the daemon does.
3. Throughput: starts the daemon (bench/kafka_daemon_proc.py, as the CLI runs it) on the
   backlog and measures sustained events/s from its first result to its last; the daemon's
   own per-stage time breakdown (from its shutdown log line) is printed too.
4. Latency: produces `--latency-events` more at `--rate` events/s, each carrying its produce
   time as `ts`, and measures result arrival − produce time (p50/p99); the results echo `ts`.
5. Kernel only: `MultiStreamDetector.process` with the project's default model on the same
   events, per input partition in offset order and in micro-batches of the daemon's size
   (`kafka.poll_max_records` / partitions) — the rate the daemon cannot exceed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka_broker import TansuBroker  # noqa: E402

from streamlstm.config import load_config  # noqa: E402
from streamlstm.event import Rejected  # noqa: E402
from streamlstm.io.parsers import JsonlParser  # noqa: E402
from streamlstm.kafka.kafka_python_client import CONSUMER_DEFAULTS  # noqa: E402
from streamlstm.kafka.sink import OUTPUT_MODES  # noqa: E402
from streamlstm.pool import detector_for  # noqa: E402


def produce(producer, topic, streams, start, n, rate=None, ts_now=False):
    t0 = time.perf_counter()
    for i in range(start, start + n):
        s = f"s{i % streams}"
        x = math.sin(i / 50.0) + 0.1 * math.sin(i * 12.9898)
        if rate:
            due = t0 + (i - start) / rate
            while time.perf_counter() < due:
                time.sleep(min(0.001, due - time.perf_counter()))
        ts = time.time() if ts_now else 1_700_000_000 + i
        producer.send(topic, key=s.encode(), value=json.dumps({"stream": s, "ts": ts, "value": x}).encode())
        if rate:
            producer.flush()  # no client-side batching delay in the latency phase
    producer.flush()
    return time.perf_counter() - t0


class Results:
    def __init__(self, bootstrap, topic):
        self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                               auto_offset_reset="earliest", fetch_max_wait_ms=10)
        self.topic = topic
        self.arrivals: list[tuple[float, float]] = []  # (arrival time, echoed ts)
        self.assigned = False

    def read(self, n, timeout_s):
        deadline = time.monotonic() + timeout_s
        while len(self.arrivals) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {len(self.arrivals)}/{n} results")
            if not self.assigned:
                parts = self.c.partitions_for_topic(self.topic)
                if not parts:
                    time.sleep(0.1)
                    continue
                tps = [TopicPartition(self.topic, p) for p in parts]
                self.c.assign(tps)
                self.c.seek_to_beginning(*tps)
                self.assigned = True
            for recs in self.c.poll(timeout_ms=100).values():
                now = time.time()
                for r in recs:
                    value = json.loads(r.value)  # a result, or (output_mode batch) a list of them
                    if type(value) is list:
                        self.arrivals.extend((now, v["ts"]) for v in value)
                    else:
                        self.arrivals.append((now, value["ts"]))


def raw_consume(bootstrap, topic, n, **settings):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **settings)
    tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got, t0 = 0, None
    while got < n:
        for recs in c.poll(timeout_ms=200, max_records=5000).values():
            if t0 is None:
                t0 = time.perf_counter()
            got += len(recs)
    dt = time.perf_counter() - t0
    c.close()
    return got / dt


def read_topic(bootstrap, topic, n):
    """The first `n` messages of `topic`: {partition: [(offset, key, value)] in offset order}."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out, got = {tp.partition: [] for tp in tps}, 0
    while got < n:
        for tp, recs in c.poll(timeout_ms=200, max_records=5000).items():
            out[tp.partition].extend((r.offset, r.key, r.value) for r in recs)
            got += len(recs)
    c.close()
    return out


def kernel_only(config, messages, batch):
    """events/s of `MultiStreamDetector.process` alone on the daemon's events and batches."""
    parts = []
    for msgs in messages.values():
        parser = JsonlParser(config.input, max_streams=config.max_streams)
        events = [e for o, k, v in msgs if not isinstance(e := parser.parse(o, v), Rejected)]
        parts.append(([e.stream for e in events], np.array([e.values for e in events], dtype=np.float64)))
    warm = detector_for(config.model, 1, config.max_streams)
    warm.process(parts[0][0][:1], parts[0][1][:1])  # load the compiled kernel
    n, dt = 0, 0.0
    for ids, X in parts:
        det = detector_for(config.model, 1, config.max_streams)
        t0 = time.perf_counter()
        for a in range(0, len(ids), batch):
            det.process(ids[a:a + batch], X[a:a + batch])
        dt += time.perf_counter() - t0
        n += len(ids)
    return n / dt


def kafka_crc32c() -> str:
    """Which CRC-32C kafka-python checks and builds record batches with in this process."""
    from kafka.record import default_records, util

    c = getattr(util, "crc32c_c", None)
    if c is not None and getattr(default_records.calc_crc32c, "__defaults__", None) == (c,):
        return "crc32c (C extension)"
    return "pure Python"


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--latency-events", type=int, default=10_000)
    ap.add_argument("--hidden-size", type=int, default=None,
                    help="model.hidden_size (default: the project default)")
    ap.add_argument("--output-mode", choices=OUTPUT_MODES, default="batch")
    args = ap.parse_args()

    with TansuBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bs = broker.bootstrap
        topic, out = f"bench-in-{uuid.uuid4().hex[:6]}", f"bench-out-{uuid.uuid4().hex[:6]}"
        broker.create_topic(topic, partitions=args.partitions)
        broker.create_topic(out, partitions=args.partitions)
        producer = KafkaProducer(bootstrap_servers=bs, acks="all", linger_ms=5, batch_size=256 * 1024)
        dt = produce(producer, topic, args.streams, 0, args.events)
        print(f"produced {args.events} events in {dt:.1f} s ({args.events / dt:,.0f}/s)", file=sys.stderr)

        raw = raw_consume(bs, topic, args.events)
        raw_tuned = raw_consume(bs, topic, args.events, **CONSUMER_DEFAULTS)

        cfg = {
            "source": "kafka",
            "model": {} if args.hidden_size is None else {"hidden_size": args.hidden_size},
            "checkpoint": {"state_dir": f"{tmp}/state"},
            "kafka": {"bootstrap_servers": [bs], "topics": [topic], "group_id": f"bench-{uuid.uuid4().hex[:6]}",
                      "output_topic": out, "dead_letter_topic": f"{out}-dlq"},
            "metrics": {"enabled": False},
        }
        cfg_path = Path(tmp) / "bench.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(Path(tmp) / "daemon.log", "wb")
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "kafka_daemon_proc.py"), str(cfg_path),
                                 "--output-mode", args.output_mode],
                                stderr=log, env=env)
        try:
            results = Results(bs, out)
            results.read(1, 120)
            results.read(args.events, 600)
            first, last = results.arrivals[0][0], results.arrivals[-1][0]
            throughput = (args.events - 1) / (last - first)

            n0 = len(results.arrivals)
            feeder = threading.Thread(target=produce, args=(producer, topic, args.streams, args.events,
                                                            args.latency_events, args.rate, True))
            feeder.start()  # results are read concurrently, so arrival times are real
            results.read(n0 + args.latency_events, 120)
            feeder.join()
            lat = [(arr - ts) * 1000 for arr, ts in results.arrivals[n0:]]
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
        daemon_log = (Path(tmp) / "daemon.log").read_text()
        if rc != 0:
            print(daemon_log[-3000:], file=sys.stderr)
        stages = [line.split("streamlstm.kafka: ", 1)[1] for line in daemon_log.splitlines()
                  if "µs per event" in line or "CRC-32C" in line]

        config = load_config(cfg_path, env={})
        kernel = kernel_only(config, read_topic(bs, topic, args.events),
                             max(1, config.kafka.poll_max_records // args.partitions))

        m = config.model
        print(f"\nKafka daemon on Tansu (memory storage), {args.partitions} partitions, {args.streams} streams, "
              f"model hidden_size {m.hidden_size} k1 {m.k1} k2 {m.k2} {m.dtype}, output_mode {args.output_mode}"
              f", {os.cpu_count()} CPUs, daemon exit {rc}, CRC-32C {kafka_crc32c()}")
        print(f"{'measure':56s} {'value':>12s}")
        print(f"{'bare kafka-python consume, default settings (msgs/s)':56s} {raw:12,.0f}")
        print(f"{'  same, daemon fetch settings (msgs/s)':56s} {raw_tuned:12,.0f}")
        print(f"{'kernel only, MultiStreamDetector.process (events/s)':56s} {kernel:12,.0f}")
        print(f"{'daemon sustained, backlog of %d (events/s)' % args.events:56s} {throughput:12,.0f}")
        print(f"{'  of bare consume / of kernel':56s} {f'{throughput / raw:.0%} / {throughput / kernel:.0%}':>12s}")
        print(f"{'end-to-end latency p50 at %g ev/s (ms)' % args.rate:56s} {pct(lat, 0.5):12.1f}")
        print(f"{'end-to-end latency p99 at %g ev/s (ms)' % args.rate:56s} {pct(lat, 0.99):12.1f}")
        print(f"{'end-to-end latency max (ms)':56s} {max(lat):12.1f}")
        for line in stages:
            print(f"daemon: {line}")


if __name__ == "__main__":
    main()
