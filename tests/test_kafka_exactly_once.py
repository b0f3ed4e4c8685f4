"""`kafka.processing_guarantee: exactly_once` against Tansu, once per client library.

Each checkpoint interval is one transaction: results, dead letters, changelog snapshots and
the consumed offsets. A `read_committed` reader must see every input offset's result once.

Tansu lacks one piece of this (tests/kafka_broker.py: ABORTED_RECORDS_VISIBLE): its fetch
responses list no aborted transactions, so the clients' own read_committed shows the records
of an aborted transaction. It does write the commit and abort markers, so `CommittedReader`
computes read_committed from them, as a conforming broker's fetch would; the tests judge
exactly-once with it, and check what the clients' read_committed shows beside it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from collections import Counter

import pytest
import yaml
from kafka import KafkaProducer, TopicPartition
from kafka_broker import ABORTED_RECORDS_VISIBLE
from test_kafka_daemon import (
    Feed,
    Reader,
    _assert_matches,
    _covers,
    _fatal_error_record,
    _reference,
    _spawn,
    _start_thread,
    _uniq,
    _write_config,
)

from streamlstm.config import KafkaConfig, load_config
from streamlstm.kafka import daemon as daemon_module
from streamlstm.kafka.client import open_client
from streamlstm.kafka.daemon import KafkaDaemon

# kill -9 rounds of the two-member loop; the x20 is STREAMLSTM_EOS_KILLS=20 (docs/operations.md).
KILLS = int(os.environ.get("STREAMLSTM_EOS_KILLS", "3"))


class CommittedReader(Reader):
    """read_committed computed from the log's transaction markers: it reads every batch
    (read_uncommitted) and holds a transactional producer's records until its commit marker,
    dropping them at its abort marker; the records of an open transaction stay held."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(bootstrap, topic)
        self.bootstrap = bootstrap
        self.held: dict[tuple[int, int], list] = {}  # (partition, producer id) -> its open transaction's records
        reader = self

        class MarkerRecords(self.consumer._fetcher.PartitionRecords):
            def _unpack_records(self, tp, records, key_deserializer, value_deserializer):
                batch = records.next_batch()
                while batch is not None:
                    reader._batch(tp.partition, batch)
                    self.next_fetch_offset = batch.next_offset
                    batch = records.next_batch()
                self.drain()
                yield from ()  # the records go to the reader, not through poll()

        self.consumer._fetcher.PartitionRecords = MarkerRecords

    def held_records(self) -> int:
        """Records in open transactions (a message of output_mode batch holds several)."""
        values = [json.loads(value) for held in self.held.values() for _, value in held]
        return sum(len(v) if isinstance(v, list) else 1 for v in values)

    def _batch(self, partition: int, batch) -> None:
        if batch.is_control_batch:
            held = self.held.pop((partition, batch.producer_id), [])
            if not next(batch).abort:
                for key, value in held:
                    self._add(key, value)
        elif batch.is_transactional:
            self.held.setdefault((partition, batch.producer_id), []).extend((r.key, r.value) for r in batch)
        else:
            for r in batch:
                self._add(r.key, r.value)

    def to_end(self, timeout_s: float = 60.0) -> list[dict]:
        """Records once every partition is read to its high watermark as of now (asked of the
        broker, not the last fetch's)."""
        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as CTP

        probe = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "probe"})
        try:
            deadline = time.monotonic() + 5.0
            while not (parts := probe.list_topics(self.topic, timeout=10).topics[self.topic].partitions):
                if time.monotonic() > deadline:  # never created (nothing was ever produced to it)
                    return self.records
                time.sleep(0.2)
            ends = {p: probe.get_watermark_offsets(CTP(self.topic, p), timeout=10)[1] for p in parts}
        finally:
            probe.close()

        def at_end(_records) -> bool:
            return self.assigned and all(self.consumer.position(TopicPartition(self.topic, p)) >= end
                                         for p, end in ends.items())

        def where() -> str:
            at = {p: self.consumer.position(TopicPartition(self.topic, p)) for p in ends} if self.assigned else {}
            return f"the end of {self.topic} (at {at}, ends {ends}, {self.held_records()} records held)"

        try:
            return self.until(at_end, timeout_s=timeout_s, what="the end")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {where()}") from None


def wait_for(condition, timeout_s: float = 120.0, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _eos_config(tmp_path, broker, client: str, name: str, partitions: int = 2, **kafka_extra):
    path, data = _write_config(tmp_path, broker, client, name, partitions, processing_guarantee="exactly_once",
                               changelog_topic=_uniq(f"{name}-changelog"), transactional_id=_uniq(f"{name}-tx"),
                               **kafka_extra)
    data["checkpoint"]["state_dir"] = None
    path.write_text(yaml.safe_dump(data))
    return path, data


def _client_view(broker, topic: str) -> list[dict]:
    """What the clients' own read_committed shows of `topic` now (read to the last stable offset)."""
    client = open_client(KafkaConfig(client="confluent", bootstrap_servers=(broker.bootstrap,)))
    out = []
    for _, value in client.read_topic(topic, timeout_s=30):
        decoded = json.loads(value)
        out.extend(decoded if isinstance(decoded, list) else [decoded])
    return out


def _offsets(records) -> list[tuple[int, int]]:
    return [(r["partition"], r["offset"]) for r in records]


def test_committed_reader_hides_aborted_and_open_transactions(kafka_broker):
    """The reader the other tests judge by, and the Tansu gap it works around."""
    topic = _uniq("markers")
    kafka_broker.create_topic(topic, partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, transactional_id=_uniq("markers-tx"))
    plain = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    try:
        producer.init_transactions()
        for value, end in (("committed", producer.commit_transaction), ("aborted", producer.abort_transaction),
                           ("committed too", producer.commit_transaction), ("open", None)):
            producer.begin_transaction()
            producer.send(topic, json.dumps({"v": value}).encode())
            producer.flush()
            if end is not None:
                end()
        plain.send(topic, json.dumps({"v": "not transactional"}).encode()).get(10)
        reader = CommittedReader(kafka_broker.bootstrap, topic)
        try:
            seen = [r["v"] for r in reader.to_end()]
        finally:
            reader.close()
        assert seen == ["committed", "committed too", "not transactional"]
        assert reader.held_records() == 1  # "open"
        # The clients stop at the open transaction (the last stable offset), but show the aborted one.
        client = [r["v"] for r in _client_view(kafka_broker, topic)]
        assert client == (["committed", "aborted", "committed too"] if ABORTED_RECORDS_VISIBLE
                          else ["committed", "committed too"])
    finally:
        producer.close(timeout=5)
        plain.close()


def test_results_are_visible_once_and_only_when_their_transaction_commits(kafka_broker, kafka_client, tmp_path):
    """No checkpoint falls due while the backlog is scored: read_committed readers see none of
    it (a read_uncommitted one sees it all); the shutdown commits, and then every offset has
    exactly one result and every bad record one dead letter."""
    path, data = _eos_config(tmp_path, kafka_broker, kafka_client, "eos")
    data["checkpoint"].update(every_events=1_000_000, every_seconds=600.0)  # none due in the test
    path.write_text(yaml.safe_dump(data))
    k = data["kafka"]
    feed = Feed(kafka_broker.bootstrap, k["topics"][0])
    feed.produce(150, extra={0: [b"not json"], 1: [b'{"stream": "s2", "value": "x"}']})
    daemon, stop, thread, status = _start_thread(load_config(path))
    uncommitted = Reader(kafka_broker.bootstrap, k["output_topic"])
    committed = CommittedReader(kafka_broker.bootstrap, k["output_topic"])
    dlq = CommittedReader(kafka_broker.bootstrap, k["dead_letter_topic"])
    try:
        ref = _reference(path, feed)
        uncommitted.until(_covers(set(ref)), what="uncommitted results")
        assert committed.to_end() == [] and dlq.to_end() == []
        assert _client_view(kafka_broker, k["output_topic"]) == []
        stop.set()
        thread.join(30)
        results = committed.to_end()
        errors = dlq.to_end()
    finally:
        stop.set()
        thread.join(30)
        for reader in (uncommitted, committed, dlq):
            reader.close()
        feed.close()
    assert status == [0]
    _assert_matches(results, ref, exact_once=True)
    _assert_matches(_client_view(kafka_broker, k["output_topic"]), ref, exact_once=True)
    assert sorted(e["error"] for e in errors) == ["malformed_json", "not_numeric"]
    assert set(_offsets(errors)) == feed.offsets() - set(ref)


def test_a_transaction_cut_by_kill_9_stays_invisible(kafka_broker, kafka_client, tmp_path):
    """kill -9 with a whole backlog's results, dead letters and no snapshot yet in the open
    transaction: read_committed shows none of it. The restarted member (same transactional id)
    aborts it, scores the backlog again from the committed offsets (none) and commits: every
    offset's result and every dead letter once, equal to an uninterrupted run."""
    path, data = _eos_config(tmp_path, kafka_broker, kafka_client, "eoscut")
    data["checkpoint"].update(every_events=1_000_000, every_seconds=600.0)  # none due in the test
    path.write_text(yaml.safe_dump(data))
    k = data["kafka"]
    feed = Feed(kafka_broker.bootstrap, k["topics"][0])
    feed.produce(200, extra={0: [b"not json"]})
    ref = _reference(path, feed)
    uncommitted = Reader(kafka_broker.bootstrap, k["output_topic"])
    committed = CommittedReader(kafka_broker.bootstrap, k["output_topic"])
    dlq = CommittedReader(kafka_broker.bootstrap, k["dead_letter_topic"])
    log_path = tmp_path / "daemon.log"
    proc = _spawn(path, log_path)
    try:
        uncommitted.until(_covers(set(ref)), timeout_s=90, what="the open transaction's results")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert committed.to_end() == [] and dlq.to_end() == []
        assert committed.held_records() == len(ref)
        assert _client_view(kafka_broker, k["output_topic"]) == []
        proc = _spawn(path, log_path)
        uncommitted.until(lambda r: len(r) >= 2 * len(ref), timeout_s=90, what="results after the restart")
        proc.send_signal(signal.SIGTERM)  # (its final checkpoint commits them)
        assert proc.wait(30) == 0, log_path.read_text()[-3000:]
        results, errors = committed.to_end(), dlq.to_end()
    finally:
        if proc.poll() is None:
            proc.kill()
        for reader in (uncommitted, committed, dlq):
            reader.close()
        feed.close()
    _assert_matches(results, ref, exact_once=True)
    assert _offsets(errors) == [(0, max(feed.sent[0]))]
    assert not committed.held, "the restarted member's transaction ended"
    client = _client_view(kafka_broker, k["output_topic"])
    assert len(client) == (2 if ABORTED_RECORDS_VISIBLE else 1) * len(ref)  # Tansu shows the aborted copy


def test_kill_9_loop_two_members_loses_and_repeats_nothing(kafka_broker, kafka_client, tmp_path, request):
    """Two members share four partitions while events arrive; KILLS times, once the group has
    settled (see `settle`), one of them is killed (-9) and restarted with its transactional id.
    Read committed, every input offset has one result, equal to an uninterrupted run, and every
    poison message one dead letter."""
    request.applymarker(pytest.mark.xfail(reason=(
        "on Tansu, with two members, the offsets of committed transactions are sometimes not applied "
        "(docs/operations.md, What Tansu lacks): a restarted member then finds only snapshots ahead of "
        "its committed offsets and stops"), strict=False))
    path, data = _eos_config(tmp_path, kafka_broker, kafka_client, "eosloop", partitions=4)
    data["checkpoint"].update(every_events=100, every_seconds=1.0)
    path.write_text(yaml.safe_dump(data))
    k = data["kafka"]
    feed = Feed(kafka_broker.bootstrap, k["topics"][0], partitions=4)
    out = CommittedReader(kafka_broker.bootstrap, k["output_topic"])
    dlq = CommittedReader(kafka_broker.bootstrap, k["dead_letter_topic"])
    logs = [tmp_path / f"member{m}.log" for m in (0, 1)]

    def spawn(m: int):
        return _spawn(path, logs[m], env={"STREAMLSTM_KAFKA__TRANSACTIONAL_ID": f"{k['transactional_id']}-{m}"})

    feeding = threading.Event()

    def feed_loop():  # ~400 events/s, a poison message now and then
        i = 0
        while not feeding.is_set():
            i += 1
            feed.produce(5, extra={i % 4: [b"not json"]} if i % 20 == 0 else None)
            time.sleep(0.05)

    def joined(m: int) -> int:  # assignments member m has logged
        return logs[m].read_text().count(" assigned ") if logs[m].exists() else 0

    def running() -> bool:
        """True, or fails at once (not at a timeout) when a member has stopped."""
        for m, proc in enumerate(members):
            assert proc.poll() is None, f"member {m} exited {proc.returncode}: {logs[m].read_text()[-2000:]}"
        return True

    def settle(what: str) -> None:
        """Until the group's assignment stays the same while the feeder produces 8 s of events
        (more than a session timeout: the killed process's membership has expired) and the
        group commits their results: a kill lands in the steady flow of transactions."""
        while True:
            assignments = joined(0) + joined(1)
            live = {p: n + 800 for p, n in feed.count.items()}  # offsets of events produced from then on
            wait_for(lambda: running() and all(feed.count[p] >= n for p, n in live.items()),
                     what=f"the feeder ({what})")
            out.until(lambda r: running() and all(any(rec["partition"] == p and rec["offset"] >= n
                                                      for rec in r[-4000:]) for p, n in live.items()),
                      timeout_s=120, what=f"committed results of live events ({what})")
            if joined(0) > 0 and joined(1) > 0 and joined(0) + joined(1) == assignments:
                return

    members = [spawn(0), spawn(1)]
    feeder = threading.Thread(target=feed_loop, daemon=True)
    feeder.start()
    try:
        for i in range(KILLS):
            victim = i % 2
            settle(what=f"kill {i + 1}")
            members[victim].send_signal(signal.SIGKILL)
            members[victim].wait(10)
            members[victim] = spawn(victim)
        feeding.set()
        feeder.join(30)
        ref = _reference(path, feed)
        out.until(_covers(set(ref)), timeout_s=180, what="every result")
        for m, proc in enumerate(members):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, logs[m].read_text()[-3000:]
        results, errors = out.to_end(), dlq.to_end()
    finally:
        feeding.set()
        for proc in members:
            if proc.poll() is None:
                proc.kill()
        out.close()
        dlq.close()
        feed.close()
    _assert_matches(results, ref, exact_once=True)
    bad = feed.offsets() - set(ref)
    assert bad and sorted(_offsets(errors)) == sorted(bad)
    client = _client_view(kafka_broker, k["output_topic"])
    repeats = sum(n - 1 for n in Counter(_offsets(client)).values())
    text = "".join(log.read_text() for log in logs)
    assert "Traceback" not in text and text.count("restored state") >= KILLS
    print(f"\n[eos kill loop] {kafka_client}: {KILLS} kills, {len(ref)} results, {len(bad)} dead letters, "
          f"0 lost, 0 repeated read committed; the client's read_committed on Tansu shows {repeats} repeats "
          "(aborted transactions)")


def test_a_fenced_member_exits_1_with_one_line(kafka_broker, kafka_client, tmp_path, caplog):
    """A newer producer with the member's transactional id fences it: its next transaction
    fails, it leaves the group and exits 1 with one line naming the fencing; nothing after the
    fencing becomes visible."""
    path, data = _eos_config(tmp_path, kafka_broker, kafka_client, "fenced")
    k = data["kafka"]
    feed = Feed(kafka_broker.bootstrap, k["topics"][0])
    out = CommittedReader(kafka_broker.bootstrap, k["output_topic"])
    usurper = None
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        daemon, stop, thread, status = _start_thread(load_config(path))
        try:
            feed.produce(150)
            before = feed.offsets()
            out.until(_covers(before), what="results before the fencing")
            usurper = open_client(load_config(path).kafka).transactional_producer(k["transactional_id"], 60)
            feed.produce(150)
            thread.join(60)
            results = out.to_end()
        finally:
            stop.set()
            thread.join(30)
            if usurper is not None:
                usurper.close()
            out.close()
            feed.close()
    assert status == [1]
    line = _fatal_error_record(caplog)
    assert line.startswith("kafka daemon failed: Fenced: ") and "\n" not in line
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("streamlstm")]
    assert any(m.startswith("revoked ") for m in messages[messages.index(line):]), "it left the group"
    assert sorted(_offsets(results)) == sorted(before)


def test_brokers_refusing_transactions_are_one_error_line_naming_the_setting(monkeypatch, caplog):
    """No silent fallback to at_least_once: the daemon stops at start-up."""

    class Refusing:
        name = "refusing"

        def consumer(self):
            return type("Idle", (), {"close": lambda self: None})()

        def transactional_producer(self, transactional_id, timeout_s, on_error=None):
            raise RuntimeError("TRANSACTIONAL_ID_AUTHORIZATION_FAILED")

    monkeypatch.setattr(daemon_module, "open_client", lambda config: Refusing())
    config = load_config(None, env={}, overrides={
        "source": "kafka", "kafka.topics": ["in"], "kafka.processing_guarantee": "exactly_once",
        "kafka.changelog_topic": "changelog", "metrics.enabled": False})
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert KafkaDaemon(config, threading.Event()).run() == 1
    line = _fatal_error_record(caplog)
    assert "kafka.processing_guarantee: exactly_once needs transactions" in line
    assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in line


def test_exactly_once_needs_the_changelog_store():
    from streamlstm.config import ConfigError

    with pytest.raises(ConfigError, match="kafka.processing_guarantee: exactly_once needs kafka.changelog_topic"):
        load_config(None, env={}, overrides={"kafka.processing_guarantee": "exactly_once"})


@pytest.mark.parametrize("overrides, error", [
    ({"checkpoint.every_seconds": 2_200_000},
     "checkpoint.every_seconds: at most 840 under exactly_once: each checkpoint interval is a transaction, which "
     "brokers abort after transaction.max.timeout.ms (15 minutes by default)"),
    ({"kafka.client_options": {"producer": {"acks": 1}}},
     "kafka.client_options.producer.acks: 1 contradicts exactly_once, which needs acks=all"),
    ({"kafka.client_options": {"producer": {"enable.idempotence": False}}},
     "kafka.client_options.producer.enable.idempotence: false contradicts exactly_once"),
])
def test_exactly_once_settings_that_cannot_work_are_configuration_errors(overrides, error):
    """They were accepted, then failed at start-up as 'needs transactions, and registering ... failed'
    (a transaction timeout of -2094907296 ms overflowed); kafka-python hung 60 s first."""
    from streamlstm.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(error)):
        load_config(None, env={}, overrides={"kafka.processing_guarantee": "exactly_once",
                                             "kafka.changelog_topic": "cl", **overrides})



def test_a_kafka_python_without_transactions_is_one_error_line_naming_the_settings(monkeypatch, caplog):
    """kafka-python before 2.1 has no transactions: no silent fallback either."""
    from kafka import KafkaProducer

    monkeypatch.delattr(KafkaProducer, "send_offsets_to_transaction")
    config = load_config(None, env={}, overrides={
        "source": "kafka", "kafka.topics": ["in"], "kafka.client": "kafka-python",
        "kafka.processing_guarantee": "exactly_once", "kafka.changelog_topic": "changelog", "metrics.enabled": False})
    monkeypatch.setattr(type(open_client(config.kafka)), "consumer", lambda self: None)
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert KafkaDaemon(config, threading.Event()).run() == 1
    line = _fatal_error_record(caplog)
    assert "kafka.processing_guarantee: exactly_once needs transactions" in line
    assert "has no transactions: set kafka.client: confluent, or install kafka-python 2.1 or later" in line
