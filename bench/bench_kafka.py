"""Kafka daemon throughput and latency on a local Tansu broker.

    python bench/bench_kafka.py [--events 100000] [--streams 100] [--partitions 2]
                                [--rate 2000] [--latency-events 10000] [--hidden-size 32]

1. Produces `--events` events (univariate, `--streams` streams keyed by stream id) into a fresh
   topic on a Tansu broker this script starts.
2. Raw consume: a bare kafka-python consumer reads that topic from the beginning (messages/s).
3. Throughput: starts the daemon (a subprocess running `run_kafka`, as the CLI does) on the
   backlog and measures sustained events/s from its first result to its last.
4. Latency: produces `--latency-events` more at `--rate` events/s, each carrying its produce
   time as `ts`, and measures result arrival − produce time (p50/p99); the results echo `ts`.
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

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from kafka_broker import TansuBroker  # noqa: E402


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
                    self.arrivals.append((now, json.loads(r.value)["ts"]))


def raw_consume(bootstrap, topic, n):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
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
    ap.add_argument("--hidden-size", type=int, default=32)
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

        cfg = {
            "source": "kafka",
            "model": {"hidden_size": args.hidden_size},
            "checkpoint": {"state_dir": f"{tmp}/state"},
            "kafka": {"bootstrap_servers": [bs], "topics": [topic], "group_id": f"bench-{uuid.uuid4().hex[:6]}",
                      "output_topic": out, "dead_letter_topic": f"{out}-dlq"},
            "metrics": {"enabled": False},
        }
        cfg_path = Path(tmp) / "bench.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(Path(tmp) / "daemon.log", "wb")
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "kafka_daemon_proc.py"), str(cfg_path)],
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
        if rc != 0:
            print((Path(tmp) / "daemon.log").read_text()[-3000:], file=sys.stderr)

        print(f"\nKafka daemon on Tansu (memory storage), {args.partitions} partitions, {args.streams} streams, "
              f"hidden_size {args.hidden_size}, {os.cpu_count()} CPUs, daemon exit {rc}")
        print(f"{'measure':44s} {'value':>14s}")
        print(f"{'raw kafka-python consume (msgs/s)':44s} {raw:14,.0f}")
        print(f"{'daemon sustained, backlog of %d (events/s)' % args.events:44s} {throughput:14,.0f}")
        print(f"{'end-to-end latency p50 at %g ev/s (ms)' % args.rate:44s} {pct(lat, 0.5):14.1f}")
        print(f"{'end-to-end latency p99 at %g ev/s (ms)' % args.rate:44s} {pct(lat, 0.99):14.1f}")
        print(f"{'end-to-end latency max (ms)':44s} {max(lat):14.1f}")


if __name__ == "__main__":
    main()
