"""The client seam (streamlstm/kafka/client.py), once per client library, against Tansu: what
the daemon, the sink and the changelog store rely on, checked without them."""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
import time
import traceback
import uuid

import pytest
from kafka_broker import TansuBroker

from streamlstm.config import KafkaConfig, load_config
from streamlstm.kafka import client as client_module
from streamlstm.kafka.client import TP, Fenced, ProduceError, cut_non_exceptions, open_client
from streamlstm.kafka.daemon import KafkaDaemon


def _client(broker, name: str, **settings):
    return open_client(KafkaConfig(client=name, bootstrap_servers=(broker.bootstrap,),
                                   group_id=f"g-{uuid.uuid4().hex[:8]}", session_timeout_ms=6000,
                                   heartbeat_interval_ms=1000, **settings))


class Recorder:
    """A `Rebalance` that starts each partition at a chosen offset and commits on revoke."""

    def __init__(self, start: dict[TP, int | None], commit: dict[TP, int]):
        self.start, self.commit = start, commit
        self.events: list[tuple[str, list[TP]]] = []
        self.failed: list[Exception] = []

    def assigned(self, tps):
        self.events.append(("assigned", sorted(tps)))
        return {tp: self.start.get(tp) for tp in tps}

    def revoked(self, tps):
        self.events.append(("revoked", sorted(tps)))
        return self.commit

    def commit_failed(self, exc):
        self.failed.append(exc)


def test_consume_commit_and_rebalance(kafka_broker, kafka_client):
    """Keys land where Kafka's Java client puts them (murmur2, the same for both clients); an
    assigned partition starts where `assigned` says; commit, committed and the high watermark
    read back; close revokes and commits what `revoked` returns."""
    topic = f"seam-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=2)
    client = _client(kafka_broker, kafka_client)
    producer = client.producer("test")
    keys = [f"k{i % 10}".encode() for i in range(100)]
    for i, key in enumerate(keys):
        producer.send(topic, key, str(i).encode())
    producer.flush()
    producer.close()

    tp0, tp1 = TP(topic, 0), TP(topic, 1)
    rebalance = Recorder(start={tp0: 5, tp1: None}, commit={tp0: 7, tp1: 9})
    consumer = client.consumer()
    got: dict[TP, list[tuple[int, bytes, bytes]]] = {tp0: [], tp1: []}
    try:
        consumer.subscribe([topic], rebalance)
        while sum(map(len, got.values())) < 95:
            for tp, recs in consumer.poll(200, 30).items():
                assert len(recs.offsets) <= 30
                got[tp].extend(zip(*recs))
        assert rebalance.events == [("assigned", [tp0, tp1])]
        # murmur2 of the key over 2 partitions, positive: Kafka's default partitioner
        from kafka.partitioner.default import murmur2

        sent = {p: [(i, k) for i, k in enumerate(keys) if (murmur2(k) & 0x7FFFFFFF) % 2 == p] for p in (0, 1)}
        assert [(int(v), k) for _, k, v in got[tp0]] == sent[0][5:]  # from offset 5
        assert [(int(v), k) for _, k, v in got[tp1]] == sent[1]  # from the beginning
        assert [o for o, _, _ in got[tp0]] == list(range(5, len(sent[0])))
        assert {tp: consumer.highwater(tp) for tp in (tp0, tp1)} == {tp0: len(sent[0]), tp1: len(sent[1])}
        assert consumer.committed([tp0, tp1]) == {tp0: None, tp1: None}
        consumer.commit({tp0: 3, tp1: 4})
        assert consumer.committed([tp0, tp1]) == {tp0: 3, tp1: 4}
    finally:
        consumer.close()
    assert rebalance.events[-1] == ("revoked", [tp0, tp1]) and not rebalance.failed
    reader = client.consumer()
    try:
        assert reader.committed([tp0, tp1]) == {tp0: 7, tp1: 9}
    finally:
        reader.close()


def _assigned(consumer, topic: str, rebalance) -> None:
    consumer.subscribe([topic], rebalance)
    deadline = time.monotonic() + 30
    while not rebalance.events and time.monotonic() < deadline:
        consumer.poll(200, 10)
    assert rebalance.events == [("assigned", [TP(topic, 0)])]


def test_kafka_python_runs_a_revokes_checkpoint_off_its_io_thread(kafka_broker):
    """kafka-python 3 calls rebalance listeners on its IO thread, whose event loop also sends
    the heartbeats: a revoke's checkpoint (drain, flush, snapshot: seconds under load) that
    ran there held the loop up for as long. It now runs on a thread of its own, and the loop
    runs meanwhile: a task handed to it during `revoked` is done before `revoked` returns
    (before, it waited for `revoked`, here 5 s)."""
    topic = f"seam-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    tp = TP(topic, 0)
    consumer = _client(kafka_broker, "kafka-python").consumer()
    loop_ran = threading.Event()
    seen: list[tuple[str, bool]] = []

    class SlowRevoke(Recorder):
        def revoked(self, tps):
            consumer.c._client._net.call_soon_threadsafe(loop_ran.set)
            seen.append((threading.current_thread().name, loop_ran.wait(5.0)))
            return super().revoked(tps)

    rebalance = SlowRevoke(start={tp: None}, commit={tp: 0})
    try:
        _assigned(consumer, topic, rebalance)
    finally:
        consumer.close()
    assert len(seen) == 1 and not seen[0][0].startswith("kafka-io") and seen[0][1], seen
    assert rebalance.events[-1] == ("revoked", [tp]) and not rebalance.failed


def test_kafka_python_a_revoke_that_fails_is_raised_by_close_at_once(kafka_broker, caplog):
    """A revoke that raises (a checkpoint that failed) reaches `close` at once, as the
    KafkaError kafka-python raises for a failed listener, with the error in its log: the
    error is handed from the revoke's thread to kafka-python's event loop bound as it was
    raised (a first version read it there after Python had deleted it, and the loop waited
    for the revoke for good)."""
    from kafka.errors import KafkaError

    topic = f"seam-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    consumer = _client(kafka_broker, "kafka-python").consumer()

    class FailingRevoke(Recorder):
        def revoked(self, tps):
            super().revoked(tps)
            raise ValueError("the checkpoint failed")

    rebalance = FailingRevoke(start={TP(topic, 0): None}, commit={})
    _assigned(consumer, topic, rebalance)
    outcome: list[BaseException | None] = []

    def close() -> None:
        try:
            consumer.close()
        except BaseException as exc:  # noqa: BLE001 - the outcome is asserted below
            outcome.append(exc)
        else:
            outcome.append(None)

    closer = threading.Thread(target=close, daemon=True)
    closer.start()
    closer.join(30)
    assert not closer.is_alive(), "close() still waits for the revoke"
    assert len(outcome) == 1 and isinstance(outcome[0], KafkaError), outcome
    assert any(r.exc_info and "the checkpoint failed" in str(r.exc_info[1]) for r in caplog.records)


def test_kafka_python_revokes_partitions_lost_with_the_membership(kafka_broker):
    """Partitions lost with the group membership (a session that expired) are revoked as
    others are (Kafka's Java client's default): kafka-python's own default called the
    listener's coroutine without awaiting it, so the revoke never ran and the daemon kept
    the partitions' states. Called here as kafka-python calls it when the membership is lost."""
    from kafka import TopicPartition

    topic = f"seam-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    consumer = _client(kafka_broker, "kafka-python").consumer()
    rebalance = Recorder(start={TP(topic, 0): None}, commit={})
    _assigned(consumer, topic, rebalance)
    try:
        kc = consumer.c
        kc._client._net.run(kc._coordinator._invoke_rebalance_listener_async, "on_partitions_lost",
                            {TopicPartition(topic, 0)})
        assert rebalance.events[-1] == ("revoked", [TP(topic, 0)]), rebalance.events
    finally:
        consumer.close()


def test_read_topic_and_ensure_topic(kafka_broker, kafka_client):
    """read_topic gives every record from the beginning to the end, tombstones included, and
    nothing for an empty topic; ensure_topic creates a topic once."""
    client = _client(kafka_broker, kafka_client)
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    assert client.ensure_topic(topic, {"cleanup.policy": "compact"}) is True
    assert client.ensure_topic(topic, {"cleanup.policy": "compact"}) is False
    assert list(client.read_topic(topic, timeout_s=30)) == []
    producer = client.producer("test")
    records = [(f"k{i % 3}".encode(), None if i % 4 == 3 else b"x" * i) for i in range(20)]
    for key, value in records:
        producer.send(topic, key, value)
    producer.flush(30)
    producer.close()
    assert list(client.read_topic(topic, timeout_s=30)) == records


# Give up on a message after 2 s (librdkafka's and kafka-python's names).
_DELIVERY_TIMEOUT = {"confluent": {"message.timeout.ms": 2000},
                     "kafka-python": {"request_timeout_ms": 1000, "delivery_timeout_ms": 2000}}


def test_a_message_that_cannot_be_delivered_is_raised_by_flush(kafka_broker, kafka_client):
    """A failed delivery is reported to on_error and raised by flush: here the broker went away
    (a broker of its own; `kafka_broker` brings the markers and the skip)."""
    with TansuBroker() as broker:
        topic = f"gone-{uuid.uuid4().hex[:8]}"
        broker.create_topic(topic, partitions=1)
        client = open_client(KafkaConfig(client=kafka_client, bootstrap_servers=(broker.bootstrap,),
                                         client_options={"producer": _DELIVERY_TIMEOUT[kafka_client]}))
        failed = []
        producer = client.producer("test", on_error=failed.append)
        try:
            producer.send(topic, b"k", b"delivered")
            producer.flush(30)
            broker.stop()
            producer.send(topic, b"k", b"not delivered")
            with pytest.raises(ProduceError, match=f"producing to {topic} failed"):
                producer.flush(30)
        finally:
            producer.close()
    assert len(failed) == 1


def test_a_commit_the_brokers_do_not_answer_is_warned_of_while_it_waits(kafka_broker, kafka_client, monkeypatch,
                                                                          caplog):
    """A broker that stops answering without closing its connections (kill -STOP, as a network
    partition that drops packets): the synchronous commit waited minutes without a log line."""
    monkeypatch.setattr(client_module, "WAIT_WARNING_S", 1.0)
    with TansuBroker() as broker:
        topic = f"stalled-{uuid.uuid4().hex[:8]}"
        broker.create_topic(topic, partitions=1)
        tp = TP(topic, 0)
        client = _client(broker, kafka_client)
        producer = client.producer("test")
        producer.send(topic, b"k", b"v")
        producer.flush(30)
        producer.close()
        consumer = client.consumer()
        try:
            consumer.subscribe([topic], Recorder(start={tp: None}, commit={}))
            while not consumer.poll(200, 10):
                pass
            consumer.commit({tp: 1})
            broker.proc.send_signal(signal.SIGSTOP)
            try:
                with caplog.at_level(logging.WARNING, logger="streamlstm.kafka"):
                    stalled = threading.Thread(target=lambda: _ignore_errors(consumer.commit, {tp: 1}))
                    stalled.start()
                    stalled.join(3.5)
                    assert stalled.is_alive()  # still waiting for the brokers
                    waits = [r.getMessage() for r in caplog.records if "has waited" in r.getMessage()]
                    assert len(waits) >= 2 and waits[0] == (
                        "the offset commit has waited 1 s for the brokers, which do not answer; still waiting (the "
                        "state is checkpointed: nothing is lost)")
            finally:
                broker.proc.send_signal(signal.SIGCONT)
            stalled.join(60)
            assert not stalled.is_alive()
            n = len(caplog.records)
            time.sleep(1.5)
            assert len(caplog.records) == n  # the warnings stop with the commit
        finally:
            consumer.close()


def _ignore_errors(call, *args) -> None:
    try:
        call(*args)
    except Exception:  # noqa: BLE001 - after the pause the group may have moved on: the warning is the point
        pass


def _error_with_a_kafka_error_in_its_chain() -> RuntimeError:
    """RuntimeError <- SystemError <- (context) a KafkaError, which is not an exception, as
    confluent-kafka's C code leaves it (the SystemError of a flush after a fencing)."""
    from confluent_kafka import KafkaError

    exc = SystemError("<cimpl.Producer flush> returned a result with an exception set")
    err = KafkaError(KafkaError._FENCED)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(err))  # PyException_SetContext steals a reference
    ctypes.pythonapi.PyException_SetContext.argtypes = [ctypes.py_object, ctypes.py_object]
    ctypes.pythonapi.PyException_SetContext(exc, err)  # as the C code does; Python itself refuses
    outer = RuntimeError("fenced")
    outer.__cause__ = exc
    return outer


def test_a_kafka_error_in_an_exception_chain_is_cut_before_it_is_raised():
    """Formatting a chain that holds a KafkaError fails, so the fatal error's traceback
    could not be logged. The client cuts it."""
    outer = _error_with_a_kafka_error_in_its_chain()
    with pytest.raises(AttributeError, match="__traceback__"):
        traceback.format_exception(outer)
    cut_non_exceptions(outer)
    assert outer.__cause__.__context__ is None and isinstance(outer.__cause__, SystemError)
    assert "SystemError" in "".join(traceback.format_exception(outer))


def test_the_daemon_logs_such_an_error_and_exits_1(caplog):
    """However the client raises it (this one from connecting), the daemon's one line and its
    DEBUG traceback are logged and run() returns 1: under pytest's handler, which re-raises
    logging errors, the uncut chain escaped run() (a flaky fencing test, twice)."""
    config = load_config(None, env={}, overrides={"source": "kafka", "kafka.topics": ["t"], "metrics.enabled": False})
    daemon = KafkaDaemon(config, threading.Event())

    def connect():
        raise _error_with_a_kafka_error_in_its_chain()

    daemon._connect = connect
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert daemon.run() == 1
    assert "kafka daemon failed: RuntimeError: fenced" in caplog.text
    assert "SystemError" in caplog.text  # the traceback, logged


def _raise_a_bare_kafka_error(*_args, **_kwargs) -> None:
    """Raise a KafkaError itself, which is not an exception, as confluent-kafka's C code can
    (closing a fenced producer): ctypes raises whatever the error indicator holds."""
    from confluent_kafka import KafkaError

    err = KafkaError(KafkaError._FENCED, "This instance has been fenced by a newer instance", fatal=True)
    ctypes.pythonapi.PyErr_SetObject.argtypes = [ctypes.py_object, ctypes.py_object]
    ctypes.pythonapi.PyErr_SetObject(type(err), err)


def test_the_daemon_survives_a_client_that_raises_a_non_exception(caplog):
    """A bare KafkaError passes `except Exception` and `except BaseException`: raised while
    closing a fenced producer it escaped run(), whose thread then died (a flaky fencing test,
    a third time). The daemon catches it on every path (serving, closing) as NotAnException,
    logs it, and run() returns 1."""
    try:
        _raise_a_bare_kafka_error()
    except BaseException:  # noqa: BLE001
        pytest.fail("a bare KafkaError was caught as a BaseException; the test's premise is gone")
    except:  # noqa: E722
        pass
    config = load_config(None, env={}, overrides={"source": "kafka", "kafka.topics": ["t"], "metrics.enabled": False})
    daemon = KafkaDaemon(config, threading.Event())
    daemon._connect = _raise_a_bare_kafka_error

    class Closing:
        close = staticmethod(_raise_a_bare_kafka_error)

    daemon.producer = Closing()
    with caplog.at_level(logging.DEBUG, logger="streamlstm"):
        assert daemon.run() == 1
    assert "kafka daemon failed: NotAnException: the Kafka client raised KafkaError" in caplog.text
    assert "closing the producer failed: NotAnException" in caplog.text


@pytest.mark.parametrize("call", ["send", "flush", "begin", "commit_transaction"])
def test_a_producer_call_that_raises_a_bare_fencing_raises_fenced(call):
    """A fenced transactional producer's produce/commit has raised its _FENCED as a bare
    KafkaError: the daemon's fatal line then named a NotAnException where a fencing is `Fenced`
    (test_a_fenced_member_exits_1_with_one_line[confluent] failed in CI). Each producer call
    turns it into Fenced, as it does a KafkaException, and the result formats."""
    from streamlstm.kafka.confluent_client import ConfluentProducer

    class FencedLibrary:
        def __getattr__(self, name):
            return _raise_a_bare_kafka_error

    producer = ConfluentProducer({"bootstrap.servers": "127.0.0.1:9", "transactional.id": "t"}, on_error=None)
    producer.p = FencedLibrary()
    args = {"send": ("t", b"k", b"v"), "flush": (1.0,), "begin": (), "commit_transaction": ({}, None)}[call]
    with pytest.raises(Fenced, match="fenced by a newer instance") as raised:
        getattr(producer, call)(*args)
    assert producer.fatal
    cut_non_exceptions(raised.value)  # what the daemon does before logging
    assert "Fenced" in "".join(traceback.format_exception(raised.value))


def test_kafka_python_does_not_create_a_missing_input_topic(monkeypatch):
    """It waits for it, as confluent does (before: the broker created it with 4 partitions)."""
    kafka = pytest.importorskip("kafka")
    from streamlstm.kafka.kafka_python_client import KafkaPythonClient

    settings = {}
    monkeypatch.setattr(kafka, "KafkaConsumer", lambda **kw: settings.update(kw))
    config = load_config(None, env={}, overrides={"kafka.client": "kafka-python"})
    KafkaPythonClient(config.kafka).consumer()
    assert settings["allow_auto_create_topics"] is False and settings["enable_auto_commit"] is False


def test_kafka_python_repeats_a_line_once_a_minute_and_its_traceback_only_at_debug(caplog):
    """In a broker outage kafka-python logged 77 ERROR lines (40 in one second) and a traceback."""
    pytest.importorskip("kafka")
    import streamlstm.kafka.kafka_python_client  # noqa: F401 - installs the filters

    message = f"Connection failed: KafkaConnectionError: 111 ECONNREFUSED ({uuid.uuid4()})"
    with caplog.at_level(logging.INFO):
        for _ in range(40):
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except ConnectionRefusedError:
                logging.getLogger("kafka.net.manager").error(message, exc_info=True)
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [(message, None)]


def test_kafka_python_says_only_its_warnings_unless_at_debug(caplog):
    """A clean start and stop logged 60 lines with kafka-python (50 of them kafka.* INFO lines:
    each connection, bootstrap and group step), 9 with confluent."""
    pytest.importorskip("kafka")
    from streamlstm.kafka.kafka_python_client import KafkaPythonClient

    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        KafkaPythonClient(KafkaConfig(client="kafka-python"))
        with caplog.at_level(logging.INFO):
            logging.getLogger("kafka.conn").info("<BrokerConnection ...>: connecting to 127.0.0.1:9092")
            logging.getLogger("kafka.conn").warning("a warning still shows")
        assert [r.getMessage() for r in caplog.records] == ["a warning still shows"]
        root.setLevel(logging.DEBUG)
        KafkaPythonClient(KafkaConfig(client="kafka-python"))
        assert logging.getLogger("kafka.conn").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(level)
        logging.getLogger("kafka").setLevel(logging.NOTSET)
