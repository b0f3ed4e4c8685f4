"""The Kafka daemon against a real Kafka-protocol broker (tansu; skipped when missing).

Every test compares the daemon's results with a reference computed in-process: per input
partition, one `DetectorPool` fed that partition's events in offset order. Scoring is
deterministic, so the reference is what an uninterrupted single daemon produces (the first
test checks exactly that), and crash/restart and partition moves must reproduce it exactly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import namedtuple
from pathlib import Path

import pytest
import yaml
from faults import sigterm_during_start_up

kafka = pytest.importorskip("kafka")
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from streamlstm.config import load_config  # noqa: E402
from streamlstm.event import Rejected  # noqa: E402
from streamlstm.io.parsers import JsonlParser  # noqa: E402
from streamlstm.kafka.client import TP, Records, open_client  # noqa: E402
from streamlstm.kafka.daemon import KafkaDaemon  # noqa: E402
from streamlstm.kafka.metrics import DaemonMetrics  # noqa: E402
from streamlstm.kafka.sink import OUTPUT_MODES, KafkaSink, pack_results  # noqa: E402
from streamlstm.kafka.state_store import KafkaChangelogStore  # noqa: E402
from streamlstm.pool import DetectorPool  # noqa: E402

PARTITIONS = 2  # of the input topic, unless a test asks for more


def _uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _write_config(tmp_path: Path, broker, client: str, name: str, partitions: int = PARTITIONS,
                  **kafka_extra) -> tuple[Path, dict]:
    topic = _uniq(f"{name}-in")
    broker.create_topic(topic, partitions=partitions)
    data = {
        "source": "kafka",
        "model": {"hidden_size": 4, "k1": 4, "k2": 4, "warmup": 5, "threshold": 0.9},
        "checkpoint": {"every_events": 100, "every_seconds": 30.0, "state_dir": str(tmp_path / "state")},
        "kafka": {"client": client, "bootstrap_servers": [broker.bootstrap], "topics": [topic],
                  "group_id": _uniq(f"{name}-g"), "output_topic": _uniq(f"{name}-out"),
                  "dead_letter_topic": _uniq(f"{name}-dlq"),
                  "poll_max_records": 40, "poll_timeout_ms": 100,
                  # Group joins on the test broker take about session_timeout_ms / 2 (tests/kafka_broker.py).
                  "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, **kafka_extra},
        "metrics": {"enabled": False},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def _events(partition: int, start: int, n: int) -> list[tuple[str, bytes]]:
    """(key, value) messages for one partition, streams s<2p> and s<2p+1>; a spike now and then."""
    out = []
    for i in range(start, start + n):
        stream = f"s{2 * partition + i % 2}"
        x = math.sin(i / 7.0 + partition) + (6.0 if i % 97 == 50 else 0.0)
        out.append((stream, json.dumps({"stream": stream, "ts": 1_700_000_000 + i, "value": round(x, 6)}).encode()))
    return out


class Feed:
    """Produces messages to the input topic and remembers them per partition in offset order."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = PARTITIONS):
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.sent: dict[int, dict[int, bytes]] = {p: {} for p in range(partitions)}
        self.count = {p: 0 for p in range(partitions)}

    def produce(self, n_per_partition: int, extra: dict[int, list[bytes | tuple[bytes, bytes]]] | None = None) -> None:
        """`n_per_partition` events to each partition, then its `extra` messages: a value (keyed
        b"bad") or a (key, value)."""
        futures = []
        for p in self.sent:
            msgs = _events(p, self.count[p], n_per_partition)
            self.count[p] += n_per_partition
            for key, value in msgs:
                futures.append((p, value, self.producer.send(self.topic, key=key.encode(), value=value, partition=p)))
            for message in (extra or {}).get(p, []):
                key, value = message if isinstance(message, tuple) else (b"bad", message)
                futures.append((p, value, self.producer.send(self.topic, key=key, value=value, partition=p)))
        self.producer.flush()
        for p, value, fut in futures:
            self.sent[p][fut.get(timeout=10).offset] = value

    def offsets(self) -> set[tuple[int, int]]:
        return {(p, o) for p, offs in self.sent.items() for o in offs}

    def close(self):
        self.producer.close()


class Reader:
    """Reads a topic from the beginning, accumulating JSON values (read_committed: only those
    of committed transactions)."""

    def __init__(self, bootstrap: str, topic: str, isolation_level: str = "read_uncommitted"):
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      auto_offset_reset="earliest", isolation_level=isolation_level)
        self.topic = topic
        self.records: list[dict] = []
        self.keys: list[bytes] = []
        self.messages: list[tuple[bytes, object]] = []  # (key, decoded value) per message
        self.assigned = False

    def _assign(self) -> bool:
        parts = self.consumer.partitions_for_topic(self.topic)
        if not parts:
            return False
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.assigned = True
        return True

    def until(self, done, timeout_s: float = 60.0, what: str = "records") -> list[dict]:
        """Records until `done(records)`; a message holding a JSON array (output_mode batch)
        counts as its records, each with the message's key."""
        deadline = time.monotonic() + timeout_s
        while not done(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: have {len(self.records)}")
            if not self.assigned and not self._assign():
                time.sleep(0.2)
                continue
            for recs in self.consumer.poll(timeout_ms=200).values():
                for r in recs:
                    self._add(r.key, r.value)
        return self.records

    def _add(self, key: bytes | None, raw: bytes) -> None:
        value = json.loads(raw)
        self.messages.append((key, value))
        for rec in value if isinstance(value, list) else [value]:
            self.records.append(rec)
            self.keys.append(key)

    def close(self):
        self.consumer.close()


def _covers(offsets: set) -> callable:
    return lambda recs: offsets <= {(r["partition"], r["offset"]) for r in recs}


def _reference(config_path: Path, feed: Feed) -> dict[tuple[int, int], dict]:
    """Per partition, one pool fed that partition's events in offset order."""
    config = load_config(config_path)
    ref = {}
    for p, msgs in feed.sent.items():
        parser, pool = JsonlParser(config.input, max_streams=config.max_streams), DetectorPool(config)
        events = [e for o, v in sorted(msgs.items()) if not isinstance(e := parser.parse(o, v), Rejected)]
        for s in pool.process(events):
            ref[(p, s.event.seq)] = {"score": s.score, "error": s.error, "prediction": s.prediction[0],
                                     "is_anomaly": s.is_anomaly, "stream": s.event.stream}
    return ref


def _assert_matches(results: list[dict], ref: dict, exact_once: bool) -> None:
    last = {}
    for r in results:
        last[(r["partition"], r["offset"])] = r
    assert set(last) == set(ref), "every input offset has exactly one result offset"
    if exact_once:
        assert len(results) == len(ref), f"{len(results) - len(ref)} duplicate results"
    for key, want in ref.items():
        got = last[key]
        assert got["stream"] == want["stream"]
        assert got["score"] == want["score"], (key, got, want)
        assert got["is_anomaly"] == want["is_anomaly"], key
        if not math.isnan(want["error"]):
            assert got["error"] == want["error"], key
            assert got["prediction"] == want["prediction"], key


def _start_thread(config, **kw) -> tuple[KafkaDaemon, threading.Event, threading.Thread, list]:
    stop = threading.Event()
    daemon = KafkaDaemon(config, stop, **kw)
    status: list = []
    thread = threading.Thread(target=lambda: status.append(daemon.run()), daemon=True)
    thread.start()
    return daemon, stop, thread, status


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_lag_reaches_0_on_an_input_written_in_transactions(kafka_broker, kafka_client, tmp_path):
    """Each committed transaction leaves a marker at an offset of its own: the lag stayed at 1
    for good (the next offset after the last record is the marker's)."""
    path, data = _write_config(tmp_path, kafka_broker, kafka_client, "txnin", partitions=1)
    k = data["kafka"]
    upstream = open_client(load_config(path).kafka).transactional_producer(_uniq("upstream"), 60)
    for t in range(3):
        upstream.begin()
        for stream, value in _events(0, 5 * t, 5):
            upstream.send(k["topics"][0], stream.encode(), value)
        upstream.commit_transaction({}, None)
    upstream.close()
    daemon, stop, thread, status = _start_thread(load_config(path), metrics=DaemonMetrics())
    lag = {"topic": k["topics"][0], "partition": "0"}
    try:
        deadline = time.monotonic() + 60
        while daemon.processed < 15 and time.monotonic() < deadline:
            time.sleep(0.1)
        while daemon.metrics.registry.get_sample_value("streamlstm_consumer_lag", lag) != 0.0 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert daemon.processed == 15
        assert daemon.metrics.registry.get_sample_value("streamlstm_consumer_lag", lag) == 0.0
    finally:
        stop.set()
        thread.join(30)
    assert status == [0]


@pytest.mark.parametrize("output_mode", OUTPUT_MODES)
def test_end_to_end_results_dead_letters_and_metrics(kafka_broker, kafka_client, tmp_path, output_mode):
    path, data = _write_config(tmp_path, kafka_broker, kafka_client, "e2e")
    data["metrics"] = {"enabled": True, "address": "127.0.0.1", "port": 0}
    path.write_text(yaml.safe_dump(data))
    k = data["kafka"]
    feed = Feed(kafka_broker.bootstrap, k["topics"][0])
    # A key of 100 kB would key every result and be in each: a dead letter without it. Its
    # stream field is as long, so that _reference, which reads values alone, rejects it too.
    long_key = (b"k" * 100_000, json.dumps({"stream": "k" * 100_000, "value": 1.5}).encode())
    bad = {0: [b'{"stream": "s0", "value": ', b"not json"],
           1: [b'{"stream": "s2", "value": "x"}', b'{"stream": "s2", "value": ' + b"1" * 4301 + b"}", long_key]}
    feed.produce(150, extra=bad)
    daemon, stop, thread, status = _start_thread(load_config(path), metrics=DaemonMetrics(),
                                                 output_mode=output_mode)
    out, dlq = Reader(kafka_broker.bootstrap, k["output_topic"]), Reader(kafka_broker.bootstrap, k["dead_letter_topic"])
    try:
        ref = _reference(path, feed)
        results = out.until(_covers(set(ref)), what="results")
        errors = dlq.until(lambda r: len(r) >= 5, what="dead letters")
        # Metrics and probes while running.
        base = f"http://127.0.0.1:{daemon.server.port}"
        assert _get(base + "/healthz")[0] == 200
        assert _get(base + "/readyz")[0] == 200
        code, text = _get(base + "/metrics")
        assert code == 200 and "streamlstm_events_total 300.0" in text
        assert 'streamlstm_errors_total{kind="malformed_json"} 2.0' in text
        assert "streamlstm_consumer_lag" in text and "streamlstm_batch_seconds_bucket" in text
    finally:
        stop.set()
        thread.join(30)
        out.close()
        feed.close()
        dlq.close()
    assert status == [0] and daemon.client.name == kafka_client
    _assert_matches(results, ref, exact_once=True)
    # Results are keyed by stream id and carry their source.
    assert {key.decode() for key in out.keys} == {"s0", "s1", "s2", "s3"}
    assert all(key.decode() == r["stream"] for key, r in zip(out.keys, results))
    assert all(r["topic"] == k["topics"][0] for r in results)
    if output_mode == "batch":  # one array per stream and poll: fewer messages than results
        assert all(isinstance(v, list) and v for _, v in out.messages)
        assert len(out.messages) < len(results) / 2
        for _, v in out.messages:  # in offset order within a message
            assert [r["offset"] for r in v] == sorted(r["offset"] for r in v)
    else:
        assert all(isinstance(v, dict) for _, v in out.messages)
    bad_offsets = set(feed.offsets()) - set(ref)
    assert {(e["partition"], e["offset"]) for e in errors} == bad_offsets
    assert sorted(e["error"] for e in errors) == ["malformed_json", "malformed_json", "non_finite", "not_numeric",
                                                  "stream_id_too_long"]
    assert all(e["topic"] == k["topics"][0] and e["detail"] for e in errors)
    assert [(key, e["key"]) for key, e in zip(dlq.keys, errors)
            if e["error"] == "stream_id_too_long"] == [(None, "k" * 200)]
    assert [e["key"] for e in errors if e["error"] != "stream_id_too_long"] == ["bad"] * 4
    # The shutdown committed everything: a new member of the group would start at the end.
    check = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id=k["group_id"], enable_auto_commit=False)
    try:
        for p in range(PARTITIONS):
            assert check.committed(TopicPartition(k["topics"][0], p)) == max(feed.sent[p]) + 1
    finally:
        check.close()
    # Per-partition checkpoints on disk.
    assert sorted(d.name for d in (tmp_path / "state").iterdir()) == [f"{k['topics'][0]}-{p}" for p in range(PARTITIONS)]


def _spawn(path: Path, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`streamlstm run` with the config's `source: kafka`, logging to `log_path`; `env` adds
    to the environment (e.g. settings as STREAMLSTM_<SECTION>__<KEY>)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "streamlstm.cli", "--config", str(path), "run"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                env={**os.environ, **(env or {})})


def test_sigkill_then_restart_reproduces_uninterrupted_results(kafka_broker, kafka_client, tmp_path):
    path, data = _write_config(tmp_path, kafka_broker, kafka_client, "kill")
    k = data["kafka"]
    feed = Feed(kafka_broker.bootstrap, k["topics"][0])
    feed.produce(400)
    out = Reader(kafka_broker.bootstrap, k["output_topic"])
    log_path = tmp_path / "daemon.log"
    proc = _spawn(path, log_path)
    try:
        out.until(lambda r: len(r) >= 250, what="first results")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        seen_before = len(out.records)
        feed.produce(300)
        proc = _spawn(path, log_path)
        ref = _reference(path, feed)
        results = out.until(_covers(set(ref)), timeout_s=90, what="results after restart")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()
        feed.close()
    assert seen_before < len(ref), "the kill should land mid-stream"
    _assert_matches(results, ref, exact_once=False)
    assert "restored state" in log_path.read_text()


def test_partition_moves_between_daemons_with_its_state(kafka_broker, kafka_client, tmp_path):
    _move_a_partition(kafka_broker, tmp_path, kafka_client, kafka_client)


def test_a_group_can_mix_clients(kafka_broker, tmp_path):
    """A kafka-python member and a confluent one share a group and its partitions' state (a
    rolling move from one client to the other)."""
    _move_a_partition(kafka_broker, tmp_path, "kafka-python", "confluent")


def _move_a_partition(kafka_broker, tmp_path, client_a: str, client_b: str) -> None:
    path, data = _write_config(tmp_path, kafka_broker, client_a, "move", changelog_topic=_uniq("move-changelog"))
    data["checkpoint"]["state_dir"] = None
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    k = data["kafka"]
    feed = Feed(kafka_broker.bootstrap, k["topics"][0])
    out = Reader(kafka_broker.bootstrap, k["output_topic"])
    a = b = None
    try:
        feed.produce(150)
        a = _start_thread(config)
        out.until(_covers(feed.offsets()), what="phase 1 results")
        b = _start_thread(load_config(path, overrides={"kafka.client": client_b}))
        deadline = time.monotonic() + 30
        while not (len(a[0].states) == 1 and len(b[0].states) == 1):
            assert time.monotonic() < deadline, "the two daemons did not split the partitions"
            time.sleep(0.1)
        moved = next(iter(b[0].states))
        feed.produce(150)
        out.until(_covers(feed.offsets()), what="phase 2 results")
        assert b[0].states[moved].events == 300  # it carried phase 1's state: 150 + 150 events
        b[1].set()  # B leaves the group; A takes its partition back with B's state
        b[2].join(30)
        assert b[3] == [0]
        deadline = time.monotonic() + 30
        while len(a[0].states) != PARTITIONS:
            assert time.monotonic() < deadline, "A did not get the partition back"
            time.sleep(0.1)
        feed.produce(150)
        ref = _reference(path, feed)
        results = out.until(_covers(set(ref)), what="phase 3 results")
    finally:
        for d in (a, b):
            if d is not None:
                d[1].set()
                d[2].join(30)
        out.close()
        feed.close()
    assert a[3] == [0]
    _assert_matches(results, ref, exact_once=True)


# ---------------------------------------------------------------- without a broker


class _FakeProducer:
    def __init__(self):
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic, key, value):
        self.sent.append((topic, key, value))

    def flush(self):
        pass


def _offline_daemon(output_mode: str, only_anomalies: bool, **overrides):
    from streamlstm.kafka.daemon import PartitionState

    config = load_config(None, env={}, overrides={
        "model.hidden_size": 4, "model.k1": 4, "model.k2": 4, "model.warmup": 5, "model.threshold": 0.6,
        "output.only_anomalies": only_anomalies, "kafka.output_topic": "out", "kafka.dead_letter_topic": "dlq",
        **overrides})
    daemon = KafkaDaemon(config, threading.Event(), output_mode=output_mode)
    daemon.sink = KafkaSink(_FakeProducer(), "out", "dlq", output_mode, only_anomalies)
    tp = TP("in", 0)
    st = daemon.states[tp] = PartitionState.fresh(tp, config, daemon.budget)
    st.next_offset = st.parsed_to = 0
    return daemon, config, tp


Rec = namedtuple("Rec", "offset key value")


def _records(recs: list[Rec]) -> Records:
    """Messages as the consumer's poll returns them for one partition."""
    return Records([r.offset for r in recs], [r.key for r in recs], [r.value for r in recs])


def _offline_messages():
    multi = [("m0", json.dumps({"stream": "m0", "ts": f"2024-05-01T00:{i // 60:02d}:{i % 60:02d}Z",
                                "values": {"b": None if i % 9 == 4 else math.cos(i / 5), "a": i % 7}}).encode())
             for i in range(60)]
    uni = _events(0, 0, 120) + [("bad", b"not json")] + _events(1, 120, 100)
    msgs = [m for pair in zip(uni, multi + [None] * len(uni)) for m in pair if m is not None]
    return [Rec(o, k.encode(), v) for o, (k, v) in enumerate(msgs)]


@pytest.mark.parametrize("only_anomalies", [False, True])
@pytest.mark.parametrize("output_mode", OUTPUT_MODES)
def test_result_messages_are_the_reference_records(output_mode, only_anomalies):
    """Byte for byte: each result is `records.dumps` of `result_record` plus its source, alone
    (event) or in per-stream JSON arrays in offset order (batch); serial and pipelined agree;
    streamlstm_results_produced_total counts them."""
    from streamlstm.io.records import dumps, result_record

    recs = _offline_messages()
    runs = []
    for pipelined in (False, True):
        daemon, config, tp = _offline_daemon(output_mode, only_anomalies)
        for a in range(0, len(recs), 70):  # five polls
            daemon.pipeline.push(daemon.parse({tp: _records(recs[a:a + 70])}))
            if not pipelined:
                daemon.pipeline.drain()
        daemon.pipeline.drain()
        daemon.pipeline.close()
        assert daemon.states[tp].next_offset == len(recs) and not daemon.pipeline.busy
        runs.append(daemon.sink.producer.sent)
    assert runs[0] == runs[1]
    sent = runs[0]

    parser, pool = JsonlParser(config.input, max_streams=config.max_streams), DetectorPool(config)
    want = {}
    for s in pool.process([e for r in recs if not isinstance(e := parser.parse(r.offset, r.value), Rejected)]):
        if s.is_anomaly or not only_anomalies:
            want.setdefault(s.event.stream, []).append(
                dumps({**result_record(s), "topic": "in", "partition": 0, "offset": s.event.seq}))
    assert sum(map(len, want.values())) > (0 if only_anomalies else 270)

    results = [m for m in sent if m[0] == "out"]
    got: dict[str, list[str]] = {}
    for _, key, value in results:
        text = value.decode()
        if output_mode == "batch":
            assert text.startswith("[") and text.endswith("]")
            lines = [json.dumps(r, separators=(",", ":")) for r in json.loads(text)]
            assert text == "[" + ",".join(lines) + "]"
        else:
            lines = [text]
        assert all(json.loads(line)["stream"] == key.decode() for line in lines)
        got.setdefault(key.decode(), []).extend(lines)
    assert got == want
    # records, not messages (before: never counted)
    assert daemon.metrics.registry.get_sample_value("streamlstm_results_produced_total") == sum(map(len, want.values()))
    if output_mode == "batch":  # at most one message per stream per poll
        assert len(results) <= 5 * len(want)
    else:
        assert len(results) == sum(map(len, want.values()))
    dead = [m for m in sent if m[0] == "dlq"]
    bad_offset = next(r.offset for r in recs if r.key == b"bad")
    assert len(dead) == 1 and json.loads(dead[0][2])["offset"] == bad_offset and dead[0][1] == b"bad"
    assert "m0" in want  # multivariate results too


def test_anomalies_are_counted_per_model_group():
    """streamlstm_anomalies_total{group} is each group's count of flagged events; streams no
    group matches (here s0, s2 and the multivariate m0, two detectors) count as "default"."""
    groups = [{"name": "odd", "match": ["s1", "s3"], "model": {"hidden_size": 3}}]
    daemon, config, tp = _offline_daemon("batch", False, groups=groups)
    recs = _offline_messages()
    for a in range(0, len(recs), 70):
        daemon.pipeline.push(daemon.parse({tp: _records(recs[a:a + 70])}))
    daemon.pipeline.drain()
    daemon.pipeline.close()

    parser, pool = JsonlParser(config.input, max_streams=config.max_streams), DetectorPool(config)
    want = {"odd": 0, "default": 0}
    for s in pool.process([e for r in recs if not isinstance(e := parser.parse(r.offset, r.value), Rejected)]):
        want[config.model_for(s.event.stream)[0]] += s.is_anomaly
    assert all(want.values()), want  # both groups have anomalies to count
    registry = daemon.metrics.registry
    assert {g: registry.get_sample_value("streamlstm_anomalies_total", {"group": g}) for g in want} == want


def test_one_state_budget_spans_all_partitions():
    """max_streams holds across the pools of all assigned partitions: the least recently
    seen stream of any partition goes, and the metrics count it."""
    from streamlstm.kafka.daemon import PartitionState

    daemon, config, tp0 = _offline_daemon("batch", False, max_streams=3)
    tp1 = TP("in", 1)
    st1 = daemon.states[tp1] = PartitionState.fresh(tp1, config, daemon.budget)
    st1.next_offset = st1.parsed_to = 0
    daemon.consumer = type("NoLag", (), {"highwater": lambda self, tp: None})()
    value = json.dumps({"value": 1.5}).encode()
    daemon.pipeline.push(daemon.parse({tp0: _records([Rec(0, b"a", value), Rec(1, b"b", value)]),
                                       tp1: _records([Rec(0, b"c", value)])}))
    # a fourth stream: "a" of partition 0 goes
    daemon.pipeline.push(daemon.parse({tp1: _records([Rec(1, b"d", value)])}))
    daemon.pipeline.drain()
    daemon.pipeline.close()
    assert [daemon.states[tp].pool.n_streams for tp in (tp0, tp1)] == [1, 2]
    assert daemon.states[tp0].pool.detectors[("default", ("value",))].stream_ids == ["b"]
    daemon._update_gauges()
    registry = daemon.metrics.registry
    assert registry.get_sample_value("streamlstm_evictions_total", {"reason": "max_streams"}) == 1
    assert registry.get_sample_value("streamlstm_streams") == 3
    assert registry.get_sample_value("streamlstm_state_bytes") == daemon.budget.bytes > 0


@pytest.mark.parametrize("output_mode", ["batch", "event"])
def test_a_result_too_long_for_a_message_is_a_dead_letter(output_mode):
    """One event of 30,000 features (a 0.8 MB message) has a 1.36 MB result: the producer
    refused it, and the daemon stopped at every restart on the same message."""
    daemon, _, tp = _offline_daemon(output_mode, False)
    wide = json.dumps({"values": {f"sensor_{i:05d}": 1.0 for i in range(30_000)}}).encode()
    daemon.pipeline.push(daemon.parse({tp: _records([Rec(0, b"wide", wide), Rec(1, b"a", b'{"value": 1}')])}))
    daemon.pipeline.drain()
    daemon.pipeline.close()
    sent = daemon.sink.producer.sent
    assert [(t, k) for t, k, _ in sent] == [("out", b"a"), ("dlq", b"wide")]
    letter = json.loads(sent[1][2])
    assert letter["error"] == "result_too_large" and letter["offset"] == 0 and letter["partition"] == 0
    assert re.fullmatch(r"its result record has \d+ bytes, more than the 900000 a message may hold "
                        r"\(30000 features\)", letter["detail"])
    assert daemon.metrics.registry.get_sample_value("streamlstm_errors_total", {"kind": "result_too_large"}) == 1
    assert daemon.states[tp].next_offset == 2


def test_the_daemon_answers_every_hostile_message_exactly_once():
    """The hostile corpus of tests/hostile.py as messages without keys: each offset gets
    exactly one result or one dead letter, and every score is finite."""
    from hostile import MAX_LINE_BYTES, answers, corpus

    daemon, config, tp = _offline_daemon("event", False, max_models=50, **{"input.max_line_bytes": MAX_LINE_BYTES})
    lines = corpus(1500, seed=2)
    recs = [Rec(offset, None, line) for offset, (_, line) in enumerate(lines)]
    for a in range(0, len(recs), 100):
        daemon.pipeline.push(daemon.parse({tp: _records(recs[a:a + 100])}))
    daemon.pipeline.drain()
    daemon.pipeline.close()
    results = [json.loads(value) for topic, _, value in daemon.sink.producer.sent if topic == "out"]
    dead = [json.loads(value) for topic, _, value in daemon.sink.producer.sent if topic == "dlq"]
    figures = answers(lines, results, dead, seq_of=lambda rec: rec["offset"] + 1)
    assert figures["answered_once"] == len(lines) and figures["wrong_answer"] == 0, figures
    assert figures["non_finite_scores"] == 0 and daemon.states[tp].next_offset == len(lines)


def test_pack_results_splits_large_batches():
    lines = [json.dumps({"offset": i, "pad": "x" * 50}) for i in range(100)]
    packed = pack_results(lines, limit=1000)
    assert len(packed) > 1 and all(len(p) <= 1000 for p in packed)
    assert [r for p in packed for r in json.loads(p)] == [json.loads(line) for line in lines]
    assert pack_results(["{}"], limit=1) == [b"[{}]"]  # an oversized record still goes out alone


def test_kafka_python_uses_the_crc32c_c_extension():
    """kafka-python checksums record batches with the `crc32c` dependency, not its pure-Python
    fallback (~10 µs per record): a missing or unusable wheel fails here."""
    import crc32c
    from kafka.record import default_records, util

    assert util.crc32c_c is crc32c.crc32c
    assert default_records.calc_crc32c is util.calc_crc32c
    assert util.calc_crc32c.__defaults__ == (crc32c.crc32c,)  # the implementation bound at import
    assert default_records.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the CRC-32C check value


def _fatal_error_record(caplog):
    """The fatal error's record, checking it is the only ERROR from streamlstm and carries no traceback,
    and that the traceback was logged at DEBUG."""
    ours = [r for r in caplog.records if r.name.startswith("streamlstm")]
    errors = [r for r in ours if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None, [r.getMessage() for r in errors]
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in ours)
    return errors[0].getMessage()


def test_unwritable_state_dir_is_one_error_line(kafka_broker, kafka_client, tmp_path, caplog):
    path, data = _write_config(tmp_path, kafka_broker, kafka_client, "unwritable")
    (tmp_path / "file").write_text("a regular file")
    data["checkpoint"]["state_dir"] = str(tmp_path / "file" / "state")
    path.write_text(yaml.safe_dump(data))
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert KafkaDaemon(load_config(path), threading.Event()).run() == 1
    assert "cannot write checkpoints to" in _fatal_error_record(caplog)


def test_an_unknown_client_option_is_one_error_line_naming_it(kafka_broker, kafka_client, tmp_path, caplog):
    path, _ = _write_config(tmp_path, kafka_broker, kafka_client, "options",
                            client_options={"consumer": {"bogus_setting": 1}})
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert KafkaDaemon(load_config(path), threading.Event()).run() == 1
    assert "bogus_setting" in _fatal_error_record(caplog)


def test_changelog_snapshot_that_cannot_be_restored_is_one_error_line(kafka_broker, kafka_client, tmp_path, caplog):
    path, data = _write_config(tmp_path, kafka_broker, kafka_client, "unrestorable",
                               changelog_topic=_uniq("unrestorable-cl"))
    data["checkpoint"]["state_dir"] = None
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    client = open_client(config.kafka)
    producer = client.producer("test")
    try:
        store = KafkaChangelogStore(client, data["kafka"]["changelog_topic"], producer)
        store.save(TP(data["kafka"]["topics"][0], 0), b"valid checksum, not a snapshot", {})
        store.flush()
    finally:
        producer.close()
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert KafkaDaemon(config, threading.Event()).run() == 1
    assert "cannot be restored" in _fatal_error_record(caplog)


def test_sigterm_during_start_up_exits_0(kafka_broker, kafka_client, tmp_path):
    """`streamlstm run --source kafka` honours a SIGTERM that arrived before its handler."""
    path, _ = _write_config(tmp_path, kafka_broker, kafka_client, "early")
    res = sigterm_during_start_up(["--config", str(path), "run"])
    assert res.returncode == 0, res.stderr.decode()
    assert "Traceback" not in res.stderr.decode() and "stopping: during start-up" in res.stderr.decode()


@pytest.mark.parametrize("where", ["key", "field"])
def test_an_oversized_stream_id_is_one_dead_letter_that_can_be_produced(where):
    """A 1.5 MB key or a 900 KB `stream` field: one dead letter (stream_id_too_long) without
    that key, well under a broker's 1 MB message limit, and the events after it are scored.
    Before, its results were produced with it and the daemon failed on every restart."""
    daemon, config, tp = _offline_daemon("event", False)
    value = json.dumps({"value": 1.5}).encode()
    if where == "key":
        bad = Rec(1, b"k" * 1_500_000, value)
    else:
        bad = Rec(1, None, json.dumps({"stream": "s" * 900_000, "value": 1.5}).encode())
    daemon.pipeline.push(daemon.parse({tp: _records([Rec(0, b"a", value), bad, Rec(2, b"a", value)])}))
    daemon.pipeline.drain()
    daemon.pipeline.close()
    sent = daemon.sink.producer.sent
    assert [(topic, key) for topic, key, _ in sent] == [("out", b"a"), ("out", b"a"), ("dlq", None)]
    dead = json.loads(sent[2][2])
    assert dead["error"] == "stream_id_too_long" and dead["offset"] == 1 and len(sent[2][2]) < 2000
    assert dead["key"] == ("k" * 200 if where == "key" else None)
    assert daemon.states[tp].next_offset == 3


def test_an_empty_key_leaves_the_stream_id_to_the_json_field():
    """As a missing key: before, an empty key was a dead letter naming an internal field
    ("'\\x00streamlstm-message-key' must be a non-empty string")."""
    daemon, config, tp = _offline_daemon("event", False)
    values = [json.dumps({"stream": "x", "value": 1.5}).encode(), json.dumps({"stream": "", "value": 1.5}).encode()]
    daemon.pipeline.push(daemon.parse({tp: _records([Rec(0, b"", values[0]), Rec(1, b"", values[1])])}))
    daemon.pipeline.drain()
    daemon.pipeline.close()
    (out_topic, out_key, _), (dlq_topic, _, dead) = daemon.sink.producer.sent
    assert (out_topic, out_key, dlq_topic) == ("out", b"x", "dlq")
    assert json.loads(dead)["detail"] == "'stream' must be a non-empty string, got an empty string"


def test_a_key_that_is_not_utf8_is_an_invalid_utf8_dead_letter():
    """Before, b'\\xff' and b'\\xfe' were both decoded as U+FFFD: two producers' streams, one model."""
    daemon, config, tp = _offline_daemon("event", False)
    value = json.dumps({"value": 1.5}).encode()
    daemon.pipeline.push(daemon.parse({tp: _records([Rec(0, b"\xff", value), Rec(1, b"\xfe", value)])}))
    daemon.pipeline.drain()
    daemon.pipeline.close()
    sent = daemon.sink.producer.sent
    assert [(topic, key) for topic, key, _ in sent] == [("dlq", b"\xff"), ("dlq", b"\xfe")]
    dead = [json.loads(value) for _, _, value in sent]
    assert [d["error"] for d in dead] == ["invalid_utf8"] * 2
    assert dead[0]["detail"] == "message key not UTF-8: invalid start byte at byte 0"


@pytest.mark.parametrize("taken", [True, False])
def test_a_metrics_port_in_use_or_a_foreign_address_is_one_error_line(taken, caplog):
    """Before: a 42-line traceback, exit 1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        address, port = ("127.0.0.1", sock.getsockname()[1]) if taken else ("192.0.2.1", 0)  # (TEST-NET-1)
        config = load_config(None, env={}, overrides={"metrics.address": address, "metrics.port": port})
        with caplog.at_level(logging.DEBUG, logger="streamlstm"):
            assert KafkaDaemon(config, threading.Event()).run() == 1
    want = "Address already in use" if taken else "Cannot assign requested address"
    assert _fatal_error_record(caplog) == (f"cannot serve metrics on {address}:{port} (metrics.address, "
                                           f"metrics.port): {want}")


def test_revoked_partitions_make_the_member_not_ready():
    """Before, /readyz stayed 200 after the group took every partition away (a broker outage
    past the session timeout, with confluent)."""
    daemon, config, tp = _offline_daemon("event", False)
    daemon.metrics.assigned = True  # as the assignment callback of its partition left it
    daemon.metrics.last_poll = time.monotonic()
    assert daemon.metrics.ready(30)
    daemon.revoked([tp])
    assert not daemon.metrics.ready(30) and daemon.metrics.registry.get_sample_value(
        "streamlstm_assigned_partitions") == 0


class _FailingCommits:
    def __init__(self):
        self.fail = True

    def commit(self, offsets):
        if self.fail:
            raise ConnectionError("the group coordinator is not available")


def test_the_checkpoint_age_counts_from_the_last_commit_that_succeeded():
    """Before, each scheduled checkpoint reset the age, with nothing to commit or a failed commit."""
    daemon, config, tp = _offline_daemon("event", False)
    daemon.consumer = _FailingCommits()
    daemon.states[tp].committed = 0
    metrics = daemon.metrics
    metrics.last_checkpoint = start = time.monotonic() - 100
    daemon.checkpoint_and_commit()  # nothing to commit
    daemon.pipeline.push(daemon.parse({tp: _records([Rec(0, b"a", json.dumps({"value": 1}).encode())])}))
    daemon.checkpoint_and_commit()  # the commit fails
    assert metrics.last_checkpoint == start and metrics.registry.get_sample_value(
        "streamlstm_errors_total", {"kind": "commit"}) == 1
    daemon.consumer.fail = False
    daemon.checkpoint_and_commit()
    daemon.pipeline.close()
    assert metrics.last_checkpoint > start + 99 and daemon.states[tp].committed == 1


class _NothingCommitted(_FailingCommits):
    def committed(self, tps):
        return {tp: None for tp in tps}


def test_a_restored_state_ahead_of_a_group_with_no_committed_offset_is_warned_of(tmp_path, caplog):
    """A snapshot at offset 1 and a group that has committed nothing (a new group id, the
    topic recreated): the daemon resumes at the snapshot's offset, as before, but says so,
    where it resumed without a word and skipped the records before it."""
    from streamlstm.kafka.state_store import DirectoryStateStore

    first, config, tp = _offline_daemon("event", False)
    first.consumer, first.store = _NothingCommitted(), DirectoryStateStore(tmp_path, keep=2)
    first.consumer.fail = False
    first.pipeline.push(first.parse({tp: _records([Rec(0, b"a", json.dumps({"value": 1}).encode())])}))
    first.checkpoint_and_commit()
    first.pipeline.close()
    first.store.close()  # it stops
    second, _, _ = _offline_daemon("event", False)
    second.states.clear()
    second.consumer, second.store = _NothingCommitted(), DirectoryStateStore(tmp_path, keep=2)
    with caplog.at_level(logging.INFO, logger="streamlstm"):
        assert second.assigned([tp]) == {tp: 1}
    second.pipeline.close()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "in-0: the restored state resumes at offset 1, but the group has committed none (a new group id, the "
        "topic recreated, or a stop before the first commit?): records before it are not read; remove the "
        "partition's state to start from the beginning"]
    assert any(r.getMessage().endswith("from offset 1 (committed none)") for r in caplog.records)


class _ReadOnlyStore:
    def save(self, tp, payload, meta):
        raise OSError(30, "Read-only file system")


def test_a_checkpoint_that_cannot_be_saved_is_counted():
    """A directory store fails in save, not in flush: errors_total{kind="checkpoint"} counts
    it (only a changelog's failed flush was counted), before the fatal error."""
    daemon, config, tp = _offline_daemon("event", False)
    daemon.consumer, daemon.store = _FailingCommits(), _ReadOnlyStore()
    daemon.pipeline.push(daemon.parse({tp: _records([Rec(0, b"a", json.dumps({"value": 1}).encode())])}))
    with pytest.raises(OSError, match="Read-only"):
        daemon.checkpoint_and_commit()
    daemon.pipeline.close()
    assert daemon.metrics.registry.get_sample_value("streamlstm_errors_total", {"kind": "checkpoint"}) == 1


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_stop_while_the_brokers_do_not_answer_at_start_up_exits_0_at_once(client, caplog):
    """SIGTERM (the stop event) while the client waits for an unreachable broker: before, the
    daemon waited out the client's 30 s and exited 1 ('no answer ... within 30 s')."""
    if client == "confluent":
        pytest.importorskip("confluent_kafka")
    config = load_config(None, env={}, overrides={"kafka.client": client, "kafka.bootstrap_servers": ["127.0.0.1:1"],
                                                  "metrics.enabled": False})
    stop, status = threading.Event(), []
    with caplog.at_level(logging.INFO, logger="streamlstm"):
        thread = threading.Thread(target=lambda: status.append(KafkaDaemon(config, stop).run()), daemon=True)
        thread.start()
        time.sleep(2)
        t0 = time.monotonic()
        stop.set()
        thread.join(10)
    assert status == [0] and time.monotonic() - t0 < 2
    assert "stopping: during start-up, before consuming anything" in caplog.messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("streamlstm")]


@pytest.mark.parametrize("security, hint", [({"security_protocol": "SSL"},
                                              " (kafka.security's TLS against a plaintext listener?)"),
                                             ({}, "")])
def test_connecting_that_never_ends_is_one_error_line(monkeypatch, caplog, security, hint):
    """kafka-python's SSL handshake with a plaintext listener never ended: before, the daemon
    hung in start-up for good. The hint is for TLS settings only (it was given to a config
    without any, whose connection hung for another reason)."""
    import streamlstm.kafka.daemon as daemon_module

    monkeypatch.setattr(daemon_module, "CONNECT_S", 0.5)
    monkeypatch.setattr(KafkaDaemon, "_connect", lambda self: threading.Event().wait())
    config = load_config(None, env={}, overrides={"kafka.bootstrap_servers": ["127.0.0.1:9093"],
                                                  "kafka.security": security, "metrics.enabled": False})
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert KafkaDaemon(config, threading.Event()).run() == 1
    assert _fatal_error_record(caplog) == (
        "kafka daemon failed: ConnectionError: no connection to the Kafka brokers 127.0.0.1:9093 within 0.5 s" + hint)


def test_an_error_text_of_several_lines_is_one_line(monkeypatch, caplog):
    """librdkafka's configuration errors end in a newline: the fatal line was two."""
    def refuse(self):
        raise RuntimeError('"transaction.timeout.ms" value -2094907296 is outside allowed range 1000..2147483647\n')

    monkeypatch.setattr(KafkaDaemon, "_connect", refuse)
    config = load_config(None, env={}, overrides={"metrics.enabled": False})
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert KafkaDaemon(config, threading.Event()).run() == 1
    assert _fatal_error_record(caplog) == ('kafka daemon failed: RuntimeError: "transaction.timeout.ms" value '
                                           '-2094907296 is outside allowed range 1000..2147483647')


@pytest.mark.parametrize("delivered", [False, True])
def test_a_stop_that_takes_too_long_is_one_line_and_exit_1_unless_only_the_commit_is_left(monkeypatch, caplog,
                                                                                         delivered):
    """Before, SIGTERM with brokers that stopped answering left the daemon waiting on its final
    checkpoint past the 60 s before SIGKILL, without a line. Its handler, or the signal's byte
    on the wakeup fd (what arrives while the main thread is in confluent's flush), starts the
    deadline, once. Where the final checkpoint has delivered the results and saved the state
    and only at_least_once's offset commit is left (confluent's waits on frozen brokers), the
    stop is a warning and exit 0, as when kafka-python's commit fails within the limit (before:
    exit 1 with confluent, 0 with kafka-python)."""
    import signal

    import streamlstm.kafka.daemon as daemon_module

    monkeypatch.setattr(daemon_module, "STOP_S", 0.2)
    for via_fd in (False, True):
        caplog.clear()
        stop, exits, done = threading.Event(), [], threading.Event()
        handler = daemon_module.stopper(stop, exit=exits.append, delivered=done)
        wake = signal.set_wakeup_fd(-1)
        try:
            with caplog.at_level(logging.INFO, logger="streamlstm"):
                if via_fd:
                    os.write(wake, bytes([signal.SIGTERM]))
                    time.sleep(0.05)
                handler(signal.SIGTERM, None)
                assert stop.is_set()
                if delivered:
                    done.set()
                time.sleep(0.6)
        finally:
            os.close(wake)
        lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
        if delivered:
            assert exits == [0] and lines == [("WARNING", (
                "stopped 0.2 s after the signal, the brokers not answering the final offset commit or the group's "
                "leave; the results were delivered and the state saved before it, so a restart resumes from that "
                "checkpoint, as after any failed commit"))]
        else:
            assert exits == [1] and lines == [("ERROR", (
                "kafka daemon failed: not stopped within 0.2 s of the signal (the brokers do not answer?); offsets "
                "after the last checkpoint are not committed"))]


def test_the_final_checkpoint_says_when_only_the_commit_is_left(tmp_path):
    """at_least_once: `delivered` (what `stopper` reads) is set by the stop's checkpoint after
    it has flushed the results and saved the states, before its offset commit; by no
    periodic checkpoint, and not without a state store (a restart would start afresh from
    an older committed offset)."""
    from streamlstm.kafka.state_store import DirectoryStateStore

    for store in (DirectoryStateStore(tmp_path / "state"), None):
        daemon, config, tp = _offline_daemon("event", False)
        seen = []  # whether it was set at each flush and commit
        daemon.sink.producer.flush = lambda: seen.append(("flush", daemon.delivered.is_set()))
        daemon.consumer, daemon.store = _FailingCommits(), store
        daemon.consumer.commit = lambda offsets: seen.append(("commit", daemon.delivered.is_set()))
        daemon.pipeline.push(daemon.parse({tp: _records([Rec(0, b"a", json.dumps({"value": 1}).encode())])}))
        daemon.checkpoint_and_commit()
        daemon.pipeline.push(daemon.parse({tp: _records([Rec(1, b"a", json.dumps({"value": 2}).encode())])}))
        daemon.checkpoint_and_commit(final=True)
        daemon.pipeline.close()
        final = store is not None
        assert seen == [("flush", False), ("commit", False), ("flush", False), ("commit", final)]
        assert daemon.delivered.is_set() == final and len(daemon.sink.producer.sent) == 2


def test_a_stop_whose_commit_the_brokers_do_not_answer_exits_0(kafka_client, tmp_path, monkeypatch, caplog):
    """SIGTERM while the brokers are frozen (kill -STOP on the broker, as a network partition
    that drops packets), the results delivered and the state saved, only the offset commit
    left: kafka-python's commit failed within the stop's limit (a warning, exit 0), and
    confluent's waited on, past the limit (exit 1). Both exit 0 now, with one warning."""
    from kafka_broker import TansuBroker

    import streamlstm.kafka.daemon as daemon_module

    monkeypatch.setattr(daemon_module, "STOP_S", 4.0)
    with TansuBroker() as broker:
        path, data = _write_config(tmp_path, broker, kafka_client, "frozen", partitions=1)
        data["checkpoint"].update(every_events=10_000, every_seconds=3600.0)  # none due but the stop's
        path.write_text(yaml.safe_dump(data))
        feed = Feed(broker.bootstrap, data["kafka"]["topics"][0], partitions=1)
        feed.produce(30)
        stop, done, exits = threading.Event(), threading.Event(), []
        handler = daemon_module.stopper(stop, exit=exits.append, delivered=done)
        os.close(signal.set_wakeup_fd(-1))
        daemon = KafkaDaemon(load_config(path), stop, delivered=done)
        status: list = []
        thread = threading.Thread(target=lambda: status.append(daemon.run()), daemon=True)
        thread.start()
        out = Reader(broker.bootstrap, data["kafka"]["output_topic"])
        try:
            # Delivered: nothing left to flush (a first run compiles the kernels meanwhile).
            out.until(lambda r: len(r) >= 30, timeout_s=300, what="results")
            broker.proc.send_signal(signal.SIGSTOP)
            try:
                with caplog.at_level(logging.INFO, logger="streamlstm"):
                    handler(signal.SIGTERM, None)
                    deadline = time.monotonic() + 8.0
                    while not exits and time.monotonic() < deadline:  # the deadline fires in any case
                        time.sleep(0.1)
            finally:
                broker.proc.send_signal(signal.SIGCONT)
            thread.join(60)
            assert not thread.is_alive()
        finally:
            out.close()
            feed.close()
    assert exits == [0] and status == [0] and done.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("streamlstm")]
    assert [r for r in caplog.records if r.levelno == logging.WARNING and (
        "final offset commit" in r.getMessage() or "commit failed" in r.getMessage())]


def test_a_start_up_failure_says_nothing_of_offsets_nor_its_class_twice(monkeypatch, caplog):
    """Before: 'kafka daemon failed: KafkaTimeoutError: KafkaTimeoutError: Unable to bootstrap ...;
    offsets after the last checkpoint are not committed', with nothing consumed yet."""
    from kafka.errors import KafkaTimeoutError

    def fail(self):
        raise KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:1']")

    monkeypatch.setattr(KafkaDaemon, "_connect", fail)
    config = load_config(None, env={}, overrides={"metrics.enabled": False})
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert KafkaDaemon(config, threading.Event()).run() == 1
    assert _fatal_error_record(caplog) == (
        "kafka daemon failed: KafkaTimeoutError: Unable to bootstrap from ['127.0.0.1:1']")
