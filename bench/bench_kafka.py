"""Kafka daemon throughput and latency on a local Tansu broker, both clients and both
processing guarantees in one run.

    python bench/bench_kafka.py [--events 100000] [--streams 100] [--partitions 2]
                                [--rate 2000] [--latency-events 10000] [--hidden-size 32]
                                [--output-mode batch|event] [--clients confluent,kafka-python]
                                [--guarantees at_least_once,exactly_once]
                                [--checkpoint-events 10000] [--checkpoint-seconds 1]
                                [--before] [--set KEY=VALUE ...]

For each client (`kafka.client`) and guarantee (`kafka.processing_guarantee`), on a topic of
its own holding the same events, with the state in a changelog topic and a checkpoint every
`--checkpoint-events` events or `--checkpoint-seconds` seconds (in exactly_once, each one
commits a transaction: results become visible then):

1. Consume alone: the client reads the backlog of `--events` events (univariate, `--streams`
   streams keyed by stream id) through the seam's `read_topic` (messages/s).
2. Throughput: the daemon (bench/kafka_daemon_proc.py, as the CLI runs it) consumes the
   backlog; sustained events/s from the first result read (read_committed) to the last, not
   counting those read at the first, and the CPU the daemon's process used meanwhile (all its
   threads, in cores), and per event (µs: what the other jobs on a shared machine move least,
   so the figure to compare between runs). Its own per-stage time breakdown over the backlog (from the log lines
   of its checkpoints) is printed too.
3. Latency: `--latency-events` more at `--rate` events/s, each carrying its produce time as
   `ts` (the results echo it; produced with a 1 ms linger, not flushed one by one): result
   arrival − produce time, p50 and p99, as a downstream consumer with sensible settings sees it
   (`Results`: read_committed, fetch.wait.max.ms 10, stamped as each poll returns). In
   exactly_once results become visible at each checkpoint's commit, so there the latency is
   bounded by `--checkpoint-seconds`.

`--before` runs each client and guarantee twice, with the client settings the daemon had
until issue 18 (`BEFORE`: fetch wait 100 ms, linger 5 ms, kafka-python's retry backoff
100 ms) and with today's defaults, in turn; `--set kafka.poll_timeout_ms=100` (a YAML value)
sets a daemon setting for every run.

Then, once, the kernel alone: `MultiStreamDetector.process` with the project's default model
on the same events, per input partition in offset order and in micro-batches of the daemon's
size (`kafka.poll_max_records` / partitions) — the rate no daemon can exceed. Results are read
with a confluent-kafka consumer, whichever client the daemon uses.
"""

from __future__ import annotations

import argparse
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
import orjson  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402
from kafka_broker import TansuBroker  # noqa: E402

from streamlstm.config import KafkaConfig, load_config  # noqa: E402
from streamlstm.event import Rejected  # noqa: E402
from streamlstm.io.parsers import JsonlParser  # noqa: E402
from streamlstm.config import GUARANTEES  # noqa: E402
from streamlstm.kafka.client import CLIENTS, open_client  # noqa: E402
from streamlstm.kafka.sink import OUTPUT_MODES  # noqa: E402
from streamlstm.pool import detector_for  # noqa: E402


READER_FETCH_WAIT_MS = 10  # the result reader's fetch.wait.max.ms (Results)

# `--before`: the client settings the daemon had until issue 18, run beside today's defaults.
BEFORE = {"confluent": {"consumer": {"fetch.wait.max.ms": 100}, "producer": {"linger.ms": 5}},
          "kafka-python": {"consumer": {"fetch_max_wait_ms": 100, "retry_backoff_ms": 100},
                           "producer": {"linger_ms": 5}}}


def produce(producer, topic, streams, start, n, rate=None, ts_now=False):
    """Events start..start+n−1, at `rate` events/s if given, through the seam's producer with
    the daemon's defaults (linger 1 ms; `ts`, if `ts_now`, is the time of the send, so the
    linger counts in the latency). Until issue 18 each event at `rate` was flushed on its own:
    a produce request per event, which made Tansu (memory storage) slower as the partition
    grew — producer to a bare consumer, the worst of each 200 events rose from 8 to 42 ms over
    10,000 events at 2,000/s (p99 31 ms), against 8 to ~20 ms (p99 14 ms) without."""
    t0 = time.perf_counter()
    for i in range(start, start + n):
        s = f"s{i % streams}"
        x = math.sin(i / 50.0) + 0.1 * math.sin(i * 12.9898)
        if rate:
            due = t0 + (i - start) / rate
            while (left := due - time.perf_counter()) > 0:
                time.sleep(min(0.001, left))
        ts = time.time() if ts_now else 1_700_000_000 + i
        producer.send(topic, s.encode(), orjson.dumps({"stream": s, "ts": ts, "value": x}))
    producer.flush()
    return time.perf_counter() - t0


class Results:
    """Reads the output topic from its beginning: (arrival time, echoed ts) per result.

    A downstream consumer as one should be set up for latency: read_committed (in
    exactly_once only committed results), fetches held at most READER_FETCH_WAIT_MS by the
    broker (Tansu holds a fetch for its whole wait even when records are there), and each
    result stamped when the call that returned it returns: `poll` comes back with the first
    record, then `consume(n, 0)` takes what else is ready. (`consume(n, timeout)` waits out
    its timeout unless n records come: reading with consume(1000, 0.05), as this bench did
    until issue 18, added up to 50 ms to every figure, p50 ~27 ms.)"""

    def __init__(self, bootstrap, topic, partitions):
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-results", "enable.auto.commit": False,
                           "fetch.wait.max.ms": READER_FETCH_WAIT_MS, "isolation.level": "read_committed"})
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.arrivals: list[tuple[float, float]] = []

    def read(self, n, timeout_s):
        deadline = time.monotonic() + timeout_s
        while len(self.arrivals) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {len(self.arrivals)}/{n} results")
            first = self.c.poll(0.05)
            if first is None:
                continue
            msgs = [first, *self.c.consume(1000, 0)]
            now = time.time()
            for m in msgs:
                if m.error() is None:
                    value = orjson.loads(m.value())  # a result, or (output_mode batch) a list of them
                    if type(value) is list:
                        self.arrivals.extend((now, v["ts"]) for v in value)
                    else:
                        self.arrivals.append((now, value["ts"]))

    def close(self):
        self.c.close()


def consume_alone(client, topic, n):
    """Messages/s of the client reading `topic` from its beginning (first message to last)."""
    got, t0 = 0, None
    for _ in client.read_topic(topic, timeout_s=600):
        if t0 is None:
            t0 = time.perf_counter()
        got += 1
    assert got == n, (got, n)
    return (got - 1) / (time.perf_counter() - t0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backlog_stages(log: str, n: int) -> str:
    """µs per event of each stage over the first ~`n` events, from the periodic checkpoints'
    DEBUG lines ("since the last checkpoint: N events (...); µs per event: poll x, ...")."""
    done, total = 0, {}
    for line in log.splitlines():
        if "since the last checkpoint:" not in line or done >= n:
            continue
        events = int(line.split("since the last checkpoint: ", 1)[1].split()[0])
        for item in line.split("µs per event: ", 1)[1].split(", "):
            name, value = item.rsplit(" ", 1)
            total[name] = total.get(name, 0.0) + float(value) * events
        done += events
    return ", ".join(f"{k} {v / done:.1f}" for k, v in total.items()) if done else "(no checkpoint line)"


def run_daemon(args, broker, client_name, guarantee, variant, tmp, producer):
    """The daemon on a backlog, then at `--rate`: (events/s of the client alone, sustained events/s,
    cores the daemon used meanwhile, latencies in ms, its stage line, the input topic)."""
    topic, out = f"bench-in-{uuid.uuid4().hex[:6]}", f"bench-out-{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic, partitions=args.partitions)
    broker.create_topic(out, partitions=args.partitions)
    produce(producer, topic, args.streams, 0, args.events)
    client = open_client(KafkaConfig(client=client_name, bootstrap_servers=(broker.bootstrap,)))
    alone = consume_alone(client, topic, args.events)
    cfg = {
        "source": "kafka",
        "model": {} if args.hidden_size is None else {"hidden_size": args.hidden_size},
        "checkpoint": {"every_events": args.checkpoint_events, "every_seconds": args.checkpoint_seconds},
        # Group joins on Tansu take session_timeout_ms / 2 (tests/kafka_broker.py).
        "kafka": {"client": client_name, "bootstrap_servers": [broker.bootstrap], "topics": [topic],
                  "group_id": f"bench-{uuid.uuid4().hex[:6]}", "output_topic": out, "dead_letter_topic": f"{out}-dlq",
                  "changelog_topic": f"{out}-changelog", "processing_guarantee": guarantee,
                  "output_mode": args.output_mode, "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
        "metrics": {"enabled": False},
    }
    for item in args.set:  # --set kafka.x.y=VALUE (a YAML value)
        key, value = item.split("=", 1)
        *path, last = key.split(".")
        d = cfg
        for part in path:
            d = d.setdefault(part, {})
        d[last] = yaml.safe_load(value)
    if variant == "before":  # over --set: these are what "before" means
        options = cfg["kafka"].setdefault("client_options", {})
        for role, settings in BEFORE[client_name].items():
            options[role] = {**options.get(role, {}), **settings}
    cfg_path = Path(tmp) / f"bench-{client_name}-{guarantee}-{variant}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    log_path = Path(tmp) / f"daemon-{client_name}-{guarantee}-{variant}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "kafka_daemon_proc.py"), str(cfg_path)],
                                stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
    results = Results(broker.bootstrap, out, args.partitions)
    try:
        results.read(1, 120)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        results.read(args.events, 600)
        cores = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        first, last = results.arrivals[0][0], results.arrivals[-1][0]
        at_first = sum(1 for arrival, _ in results.arrivals if arrival == first)
        throughput = (args.events - at_first) / (last - first)
        n0 = len(results.arrivals)
        feeder = threading.Thread(target=produce, args=(producer, topic, args.streams, args.events,
                                                        args.latency_events, args.rate, True))
        feeder.start()  # results are read meanwhile, so arrival times are real
        results.read(n0 + args.latency_events, 120)
        feeder.join()
        latencies = [(arrival - ts) * 1000 for arrival, ts in results.arrivals[n0:]]
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        results.close()
    daemon_log = log_path.read_text()
    if rc != 0:
        raise SystemExit(f"daemon ({client_name}, {guarantee}) exited {rc}:\n{daemon_log[-3000:]}")
    return alone, throughput, cores, latencies, backlog_stages(daemon_log, args.events), topic


def kernel_only(config, topic, n, partitions, batch):
    """events/s of `MultiStreamDetector.process` alone on the daemon's events and batches."""
    messages: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap_servers[0], "group.id": "bench-kernel",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = 0
    while got < n:
        for m in consumer.consume(1000, 0.2):
            if m.error() is None and m.offset() < n:  # (the backlog, not the latency events)
                messages[m.partition()].append(m.value())
                got += 1
    consumer.close()
    parts = []
    for values in messages.values():
        parser = JsonlParser(config.input, max_streams=config.max_streams)
        events = [e for o, v in enumerate(values) if not isinstance(e := parser.parse(o, v), Rejected)]
        parts.append(([e.stream for e in events], np.array([e.values for e in events], dtype=np.float64)))
    warm = detector_for(config.model, 1, config.max_streams)
    warm.process(parts[0][0][:1], parts[0][1][:1])  # load the compiled kernel
    done, dt = 0, 0.0
    for ids, X in parts:
        det = detector_for(config.model, 1, config.max_streams)
        t0 = time.perf_counter()
        for a in range(0, len(ids), batch):
            det.process(ids[a:a + batch], X[a:a + batch])
        dt += time.perf_counter() - t0
        done += len(ids)
    return done / dt


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
    ap.add_argument("--hidden-size", type=int, default=None, help="model.hidden_size (default: the project default)")
    ap.add_argument("--output-mode", choices=OUTPUT_MODES, default="batch")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated kafka.client values")
    ap.add_argument("--guarantees", default=",".join(GUARANTEES),
                    help="comma-separated kafka.processing_guarantee values")
    ap.add_argument("--checkpoint-events", type=int, default=10_000)
    ap.add_argument("--checkpoint-seconds", type=float, default=1.0)
    ap.add_argument("--before", action="store_true",
                    help="also run each client with the settings it had before issue 18 (BEFORE), next to today's")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a daemon setting for every run, e.g. kafka.poll_timeout_ms=100 (VALUE is YAML)")
    args = ap.parse_args()
    variants = ["before", "now"] if args.before else ["now"]
    clients = [(c, g, v) for g in args.guarantees.split(",") for c in args.clients.split(",") for v in variants]

    load0 = os.getloadavg()[0]
    with TansuBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        producer = open_client(KafkaConfig(client="confluent", bootstrap_servers=(broker.bootstrap,))).producer("bench")
        rows = {}
        for name, guarantee, variant in clients:
            rows[name, guarantee, variant] = run_daemon(args, broker, name, guarantee, variant, tmp, producer)
            print(f"{name}, {guarantee}, {variant}: done", file=sys.stderr)
        producer.close()
        config = load_config(None, env={}, overrides={
            "kafka.bootstrap_servers": [broker.bootstrap],
            **({} if args.hidden_size is None else {"model.hidden_size": args.hidden_size})})
        kernel = kernel_only(config, rows[clients[0]][-1], args.events, args.partitions,
                             max(1, config.kafka.poll_max_records // args.partitions))

    m = config.model
    print(f"\nKafka daemon on Tansu (memory storage), {args.events} events, {args.partitions} partitions, "
          f"{args.streams} streams, model hidden_size {m.hidden_size} k1 {m.k1} k2 {m.k2} {m.dtype}, "
          f"output_mode {args.output_mode}, a checkpoint every {args.checkpoint_events} events or "
          f"{args.checkpoint_seconds:g} s{''.join(f', {x}' for x in args.set)}, {os.cpu_count()} CPUs, "
          f"load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n")
    print("| measure | " + " | ".join(f"{c}, {g}" + (f", {v}" if args.before else "") for c, g, v in clients) + " |")
    print("|---|" + "---:|" * len(clients))

    def row(label, fmt):
        print(f"| {label} | " + " | ".join(fmt(*rows[c]) for c in clients) + " |")

    row("client alone, reading the backlog (msgs/s)", lambda a, t, c, lat, st, _: f"{a:,.0f}")
    row("daemon sustained, backlog (events/s)", lambda a, t, c, lat, st, _: f"{t:,.0f}")
    row("daemon / kernel alone", lambda a, t, c, lat, st, _: f"{t / kernel:.0%}")
    row("daemon CPU meanwhile (cores)", lambda a, t, c, lat, st, _: f"{c:.2f}")
    row("daemon CPU per event (µs, all its threads)", lambda a, t, c, lat, st, _: f"{c / t * 1e6:.1f}")
    row(f"latency p50 / p99 at {args.rate:g} events/s (ms)",
        lambda a, t, c, lat, st, _: f"{pct(lat, 0.5):.1f} / {pct(lat, 0.99):.1f}")
    row("daemon µs per event of the backlog (log)", lambda a, t, c, lat, st, _: st)
    print(f"\nkernel alone, MultiStreamDetector.process on the same events: {kernel:,.0f} events/s")


if __name__ == "__main__":
    main()
