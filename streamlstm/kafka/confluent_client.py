"""The confluent-kafka implementation of the client seam (kafka/client.py): ``kafka.client: confluent``.

librdkafka fetches, batches and checksums in its own threads, in C, and runs rebalance
callbacks inside `poll` on the polling thread, so an assignment is placed at the offsets
the daemon returns from within the callback. Settings are librdkafka's dotted names;
`kafka.security` is given in kafka-python's names and translated (SECURITY). librdkafka's
own log lines go to the Python logger "librdkafka", each distinct line at most once a minute.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..config import KafkaConfig
from .client import TP, Fenced, ProduceError, Rebalance, Records, Repeats, cut_non_exceptions, waiting_on_brokers

__all__ = ["CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "SECURITY", "ConfluentClient", "librdkafka_settings"]

# kafka.security keys (kafka-python's names) -> librdkafka's. ssl_check_hostname is a bool there
# and ssl.endpoint.identification.algorithm ("https" or "none") here.
SECURITY = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "sasl_kerberos_service_name": "sasl.kerberos.service.name",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
}

# Overridable through `kafka.client_options`; chosen to match kafka-python's client (kafka_python_client.py).
# The consumer lets the broker hold a fetch at most 10 ms (librdkafka's default is 500: brokers
# that hold a fetch for the whole wait, as Tansu does, added that much to the latency of every
# event) and fetches up to 4 MiB per partition; it reads uncommitted records, as kafka-python
# does by default. The producer lingers 1 ms (librdkafka's default is 5; results come a
# micro-batch at a time, already batched), places keyed messages as Kafka's Java client and
# kafka-python do (murmur2) and reports only failures. docs/operations.md#latency has the
# measurements (issue 18).
CONSUMER_DEFAULTS = {"fetch.wait.max.ms": 10, "max.partition.fetch.bytes": 4 * 1024 * 1024,
                     "isolation.level": "read_uncommitted"}
PRODUCER_DEFAULTS = {"acks": "all", "linger.ms": 1, "partitioner": "murmur2_random",
                     "delivery.report.only.error": True}
TIMEOUT_S = 30.0  # for a broker request the daemon waits on: metadata at start-up, committed offsets


_LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
_LIBRDKAFKA_LOG.addFilter(Repeats())


def librdkafka_settings(config: KafkaConfig) -> dict[str, Any]:
    """The settings every client of the daemon shares, in librdkafka's names."""
    out: dict[str, Any] = {"bootstrap.servers": ",".join(config.bootstrap_servers)}
    for key, value in config.security.items():
        if key == "ssl_check_hostname":
            out["ssl.endpoint.identification.algorithm"] = "https" if value else "none"
        else:
            out[SECURITY[key]] = value
    return out


class ConfluentClient:
    name = "confluent"

    def __init__(self, config: KafkaConfig):
        self.config, self.options = config, config.client_options
        self.common = {**librdkafka_settings(config), "logger": _LIBRDKAFKA_LOG}

    def consumer(self) -> "ConfluentConsumer":
        from confluent_kafka import Consumer

        k = self.config
        consumer = Consumer({
            **self.common, "group.id": k.group_id, "client.id": f"streamlstm-{os.getpid()}",
            "enable.auto.commit": False, "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": k.session_timeout_ms, "heartbeat.interval.ms": k.heartbeat_interval_ms,
            **CONSUMER_DEFAULTS,
            **({"isolation.level": "read_committed"} if k.processing_guarantee == "exactly_once" else {}),
            **self.options.get("consumer", {})})
        _check_reachable(consumer, self.config)
        return ConfluentConsumer(consumer)

    def producer(self, purpose: str, on_error=None, **transactional) -> "ConfluentProducer":
        return ConfluentProducer({**self.common, "client.id": f"streamlstm-{purpose}-{os.getpid()}",
                                  **PRODUCER_DEFAULTS, **self.options.get("producer", {}), **transactional}, on_error)

    def transactional_producer(self, transactional_id: str, timeout_s: float, on_error=None) -> "ConfluentProducer":
        producer = self.producer("results", on_error, **{"transactional.id": transactional_id,
                                                         "transaction.timeout.ms": int(timeout_s * 1000)})
        producer.p.init_transactions(TIMEOUT_S)
        return producer

    def ensure_topic(self, topic: str, config: Mapping[str, str]) -> bool:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self.common)
        md = admin.list_topics(timeout=TIMEOUT_S)
        if topic in md.topics and md.topics[topic].error is None:
            return False
        future = admin.create_topics([NewTopic(topic, 1, min(3, len(md.brokers) or 1), config=dict(config))],
                                     operation_timeout=10)[topic]
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise
        return True

    def read_topic(self, topic: str, timeout_s: float) -> Iterator[tuple[bytes | None, bytes | None]]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

        consumer = Consumer({**self.common, "group.id": "streamlstm-reader", "client.id": "streamlstm-reader",
                             "enable.auto.commit": False, "enable.partition.eof": True, **CONSUMER_DEFAULTS,
                             "isolation.level": "read_committed"})
        try:
            md = consumer.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
            pending = set(md.partitions) if md.error is None else set()
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
            deadline = time.monotonic() + timeout_s
            while pending:  # each partition says when it reached its end (enable.partition.eof)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} did not reach its end in {timeout_s:g} s")
                for m in consumer.consume(1000, 0.2):
                    err = m.error()
                    if err is None:
                        yield m.key(), m.value()
                    elif err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                    else:
                        raise KafkaException(err)
        finally:
            consumer.close()


def _check_reachable(consumer, config: KafkaConfig) -> None:
    """librdkafka retries unreachable brokers forever in the background; fail at start-up instead."""
    from confluent_kafka import KafkaException

    try:
        consumer.list_topics(timeout=TIMEOUT_S)
    except KafkaException as exc:
        consumer.close()
        raise ConnectionError(f"no answer from the Kafka brokers {','.join(config.bootstrap_servers)} "
                              f"within {TIMEOUT_S:g} s: {exc.args[0].str()}") from exc


class ConfluentConsumer:
    def __init__(self, consumer):
        self.c = consumer

    def subscribe(self, topics: list[str], rebalance: Rebalance) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        def on_assign(consumer, partitions):
            positions = rebalance.assigned([TP(p.topic, p.partition) for p in partitions])
            consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING if o is None else o)
                             for tp, o in positions.items()])

        def on_revoke(consumer, partitions):
            offsets = rebalance.revoked([TP(p.topic, p.partition) for p in partitions])
            if offsets:
                try:
                    self.commit(offsets)
                except Exception as exc:  # noqa: BLE001 - the daemon decides what it means
                    rebalance.commit_failed(exc)

        self.c.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, Records]:
        # consume(n, timeout) waits out its timeout unless n records come, so wait for the
        # first record only, then take what else is ready.
        first = self.c.poll(timeout_ms / 1000)
        if first is None:
            return {}
        out: dict[TP, Records] = {}
        last = recs = None
        for m in [first, *self.c.consume(max_records - 1, 0)] if max_records > 1 else [first]:
            err = m.error()
            if err is not None:
                _consumer_error(err)
                continue
            # A plain tuple finds its TP key; a partition's records come in runs, and making a
            # TP per record cost ~0.2 µs of the ~1.3 a record takes here.
            tp = (m.topic(), m.partition())
            if tp != last:
                recs = out.get(tp)  # type: ignore[call-overload]
                if recs is None:
                    recs = out[TP(*tp)] = Records([], [], [])
                last = tp
            recs.offsets.append(m.offset())
            recs.keys.append(m.key())
            recs.values.append(m.value())
        return out

    def committed(self, tps: list[TP]) -> dict[TP, int | None]:
        from confluent_kafka import TopicPartition

        if not tps:
            return {}
        got = self.c.committed([TopicPartition(tp.topic, tp.partition) for tp in tps], timeout=TIMEOUT_S)
        return {TP(p.topic, p.partition): p.offset if p.offset >= 0 else None for p in got}

    def commit(self, offsets: Mapping[TP, int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        with waiting_on_brokers("the offset commit"):
            done = self.c.commit(offsets=[TopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()],
                                 asynchronous=False)
        for p in done:
            if p.error is not None:
                raise KafkaException(p.error)

    def highwater(self, tp: TP) -> int | None:
        from confluent_kafka import TopicPartition

        high = self.c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)[1]
        return high if high >= 0 else None

    def position(self, tp: TP) -> int | None:
        from confluent_kafka import TopicPartition

        offset = self.c.position([TopicPartition(tp.topic, tp.partition)])[0].offset
        return offset if offset >= 0 else None

    def group_metadata(self) -> object:
        return self.c.consumer_group_metadata()

    def close(self) -> None:
        self.c.close()


def _consumer_error(err) -> None:
    """A fatal consumer error raises; others (a topic not there yet, a broker away) are
    retried by librdkafka and only logged."""
    from confluent_kafka import KafkaException

    if err.fatal():
        raise KafkaException(err)
    logging.getLogger("streamlstm.kafka").warning("consumer: %s", err.str())


class ConfluentProducer:
    def __init__(self, settings: dict[str, Any], on_error):
        from confluent_kafka import Producer

        self.p = Producer({**settings, "on_delivery": self._delivered, "error_cb": self._client_error})
        self.transactional = "transactional.id" in settings
        self.on_error = on_error
        self.error: Exception | None = None  # the first failure, raised by every flush from then on
        self.fatal = False  # librdkafka gave up on the producer: nothing more can be delivered
        self.fatal_error = None  # the KafkaError that made it fatal, as librdkafka reported it

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        from confluent_kafka import KafkaError, KafkaException

        while True:
            try:
                return self.p.produce(topic, value, key)
            except BufferError:  # the local queue is full: wait for deliveries, then queue it
                self.p.poll(1.0)
            except (KafkaException, KafkaError) as exc:
                raise self._failure(exc)

    def _client_error(self, err) -> None:
        """librdkafka's error callback: keep the first fatal error (what a fenced producer's
        calls then fail with as a bare _FATAL); the others it retries, and logs itself."""
        if err.fatal() and self.fatal_error is None:
            self.fatal_error = err

    def _delivered(self, err, msg) -> None:
        if err is not None and self.error is None:
            self.error = (Fenced if _fenced(err) else ProduceError)(f"producing to {msg.topic()} failed: {err.str()}")
        if err is not None and self.on_error is not None:
            self.on_error(err)

    def flush(self, timeout_s: float | None = None) -> None:
        from confluent_kafka import KafkaError, KafkaException

        try:
            left = self.p.flush() if timeout_s is None else self.p.flush(timeout_s)
        except (KafkaException, KafkaError, SystemError) as exc:
            # confluent-kafka 2.16 raises a fatal error (a fencing) before running the delivery
            # callbacks of the messages it purges, which then fail as a SystemError.
            raise self._failure(exc)
        if self.error is not None:
            raise self.error
        if left:
            raise ProduceError(f"{left} messages not acknowledged within {timeout_s:g} s")

    def close(self) -> None:
        if not self.fatal:
            self.p.flush(10)

    def begin(self) -> None:
        from confluent_kafka import KafkaError, KafkaException

        try:
            self.p.begin_transaction()
        except (KafkaException, KafkaError) as exc:
            raise self._failure(exc)

    def commit_transaction(self, offsets: Mapping[TP, int], group: object) -> None:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        try:
            if offsets:
                self.p.send_offsets_to_transaction(
                    [TopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()], group, TIMEOUT_S)
            self.p.commit_transaction(TIMEOUT_S)
        except (KafkaException, KafkaError) as exc:
            raise self._failure(exc)

    def _failure(self, exc) -> Exception:
        """What to raise for `exc` (an exception, or a bare KafkaError, which confluent-kafka's
        C code can raise: confluent-kafka-python#1897; seen from a fenced producer), with `exc`
        as its cause when that is an exception: `Fenced` for a fencing. librdkafka reports a
        fatal error as a bare _FATAL on produce (and confluent-kafka as a SystemError on flush);
        a transactional call then raises the error itself."""
        from confluent_kafka import KafkaError, KafkaException

        err = _kafka_error(exc)
        if self.transactional and (err is None or err.code() == KafkaError._FATAL):
            # Serving the callbacks raises the fatal error or hands it to the error callback; a
            # transactional call raises it too, but abort_transaction(0) alone timed out on a
            # loaded machine, before librdkafka had moved the transaction to its fatal state.
            try:
                self.p.poll(0)
                if self.fatal_error is None:
                    self.p.abort_transaction(0)
            except (KafkaException, KafkaError) as underlying:
                err = _kafka_error(underlying)
            else:
                err = self.fatal_error or err
        if isinstance(exc, BaseException):
            cut_non_exceptions(exc)
        if err is None:
            return exc
        self.fatal = self.fatal or err.fatal()
        failure = Fenced(f"the transaction failed: {err.str()}") if _fenced(err) else KafkaException(err)
        failure.__cause__ = exc if isinstance(exc, BaseException) else None
        return failure


def _kafka_error(exc):
    """The KafkaError that `exc` is (raised bare) or carries (a KafkaException); None for others."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(exc, KafkaError):
        return exc
    return exc.args[0] if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError) else None


def _fenced(err) -> bool:
    """Whether a KafkaError says another producer or a newer generation of the group took over."""
    from confluent_kafka import KafkaError

    return err.code() in (KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                          KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.FENCED_INSTANCE_ID)
