"""The kafka-python implementation of the client seam (kafka/client.py): ``kafka.client: kafka-python``.

kafka-python 3 runs rebalance callbacks on its IO thread while the polling thread waits in
`poll()`, where the consumer's blocking methods cannot be called: a revoke's checkpoint runs
on a thread of its own, awaited there, then its offsets' commit is awaited there, and
assigned partitions are paused there and handed to `Rebalance.assigned` by `poll` on the
polling thread, then placed and resumed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping

from ..config import KafkaConfig
from .client import TP, Fenced, ProduceError, Rebalance, Records, Repeats, waiting_on_brokers

__all__ = ["CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "KafkaPythonClient"]

log = logging.getLogger("streamlstm.kafka")
# The loggers that repeat themselves in a broker outage or under load (a filter sees only its own
# logger's records).
for _name in ("kafka.cluster", "kafka.consumer.fetcher", "kafka.coordinator", "kafka.net.connection",
              "kafka.net.manager", "kafka.net.selector", "kafka.net.transport"):
    logging.getLogger(_name).addFilter(Repeats())

# Overridable through `kafka.client_options`. The consumer fetches up to 4 MiB per partition per request
# instead of 1 MiB, and lets the broker hold a fetch at most 10 ms (kafka-python's default is 500:
# brokers that hold a fetch for the whole wait, as Tansu does, added that much to the latency of
# every event); the producer lingers 1 ms (results come a micro-batch at a time, already
# batched), batches generously (results are flushed before every commit anyway) and does not
# compress. The consumer's retry backoff is 10 ms instead of 100: kafka-python 3's poll sleeps
# min(timeout, retry_backoff_ms) whenever it finds nothing fetchable and no fetch in flight
# (KafkaConsumer._poll_once), and that sleep, which records arriving do not cut short, kept
# results ~120 ms late for half a second at a time at 2,000 events/s (p99 117 -> 33 ms).
# docs/operations.md#latency has the measurements (issue 18).
CONSUMER_DEFAULTS = {"fetch_max_wait_ms": 10, "retry_backoff_ms": 10, "max_partition_fetch_bytes": 4 * 1024 * 1024}
PRODUCER_DEFAULTS = {"acks": "all", "linger_ms": 1, "retries": 5, "batch_size": 512 * 1024,
                     "compression_type": None}


class KafkaPythonClient:
    name = "kafka-python"

    def __init__(self, config: KafkaConfig):
        from kafka.record import util as record_util

        self.config, self.options = config, config.client_options
        self.common = {"bootstrap_servers": list(config.bootstrap_servers), **config.security}
        # kafka-python says at INFO what librdkafka keeps to itself (each connection, bootstrap and
        # group step: 50 lines a start): its warnings and errors only, all at DEBUG.
        logging.getLogger("kafka").setLevel(logging.NOTSET if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
        if getattr(record_util, "crc32c_c", None) is None:  # each record batch is checksummed in pure Python
            log.warning("CRC-32C: kafka-python's pure Python (~10 µs per record); the crc32c package is not installed")

    def consumer(self) -> "KafkaPythonConsumer":
        from kafka import KafkaConsumer

        k = self.config
        return KafkaPythonConsumer(KafkaConsumer(**{
            **self.common, "group_id": k.group_id, "client_id": f"streamlstm-{os.getpid()}",
            "enable_auto_commit": False, "auto_offset_reset": "earliest", "max_poll_records": k.poll_max_records,
            "session_timeout_ms": k.session_timeout_ms, "heartbeat_interval_ms": k.heartbeat_interval_ms,
            # A mistyped or not yet created input topic is waited for (as librdkafka does), not
            # created by the broker with its default partition count.
            "allow_auto_create_topics": False,
            **CONSUMER_DEFAULTS,
            **({"isolation_level": "read_committed"} if k.processing_guarantee == "exactly_once" else {}),
            **self.options.get("consumer", {})}))

    def producer(self, purpose: str, on_error=None, **transactional) -> "KafkaPythonProducer":
        from kafka import KafkaProducer

        settings = {**self.common, "client_id": f"streamlstm-{purpose}-{os.getpid()}",
                    **PRODUCER_DEFAULTS, **self.options.get("producer", {}), **transactional}
        return KafkaPythonProducer(KafkaProducer(**settings), on_error,
                                   default_partitioner="partitioner" not in settings)

    def transactional_producer(self, transactional_id: str, timeout_s: float, on_error=None) -> "KafkaPythonProducer":
        import kafka
        from kafka import KafkaProducer

        if not hasattr(KafkaProducer, "send_offsets_to_transaction"):  # (added in kafka-python 2.1)
            raise RuntimeError(f"kafka-python {kafka.__version__} has no transactions: set kafka.client: confluent, "
                               "or install kafka-python 2.1 or later")
        producer = self.producer("results", on_error, transactional_id=transactional_id,
                                 transaction_timeout_ms=int(timeout_s * 1000))
        producer.p.init_transactions()
        return producer

    def ensure_topic(self, topic: str, config: Mapping[str, str]) -> bool:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(client_id="streamlstm-admin", **self.common)
        try:
            if topic in set(admin.list_topics()):
                return False
            try:
                brokers = len(admin.describe_cluster().get("brokers", [])) or 1
            except Exception:  # noqa: BLE001 - not every broker answers DescribeCluster
                brokers = 1
            try:
                admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=min(3, brokers),
                                              topic_configs=dict(config))])
            except TopicAlreadyExistsError:
                return False
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until its metadata is there for the clients to use
                md = admin.describe_topics([topic])
                if md and md[0].get("partitions"):
                    break
                time.sleep(0.05)
            return True
        finally:
            admin.close()

    def read_topic(self, topic: str, timeout_s: float) -> Iterator[tuple[bytes | None, bytes | None]]:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(**{**self.common, "group_id": None, "enable_auto_commit": False,
                                    "client_id": "streamlstm-reader", **CONSUMER_DEFAULTS,
                                    "isolation_level": "read_committed"})
        try:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                return
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            pending = set(tps)
            deadline = time.monotonic() + timeout_s
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} did not reach its end in {timeout_s:g} s")
                for recs in consumer.poll(timeout_ms=200).values():
                    for rec in recs:
                        yield rec.key, rec.value
                for tp in list(pending):
                    hw = consumer.highwater(tp)  # (end_offsets() is not reliable on every broker)
                    if hw is not None and consumer.position(tp) >= hw:
                        pending.discard(tp)
        finally:
            consumer.close()


class KafkaPythonConsumer:
    def __init__(self, consumer):
        self.c = consumer
        self.rebalance: Rebalance | None = None
        self.assignments: list[list[TP]] = []  # assigned on the IO thread, not yet handed over

    def subscribe(self, topics: list[str], rebalance: Rebalance) -> None:
        from kafka import ConsumerRebalanceListener

        outer, self.rebalance = self, rebalance

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                if not revoked:  # (at the first join)
                    return
                tps = [TP(*tp) for tp in revoked]
                outer.assignments = [[tp for tp in a if tp not in tps] for a in outer.assignments]
                offsets = await outer.off_the_io_thread(rebalance.revoked, tps)
                if offsets:
                    try:
                        await outer.c.commit_async(_offsets(offsets))
                    except Exception as exc:  # noqa: BLE001 - the daemon decides what it means
                        rebalance.commit_failed(exc)

            async def on_partitions_lost(self, lost):
                # Revoked alike, as Kafka's Java client does by default (the inherited method
                # would call the coroutine above without awaiting it: the revoke never ran).
                await self.on_partitions_revoked(lost)

            def on_partitions_assigned(self, assigned):
                if assigned:
                    outer.c.pause(*assigned)
                outer.assignments.append([TP(*tp) for tp in assigned])

        self.c.subscribe(topics, listener=Listener())

    def off_the_io_thread(self, work, *args):
        """A kafka-python Future of work(*args), run on a thread of its own and resolved on the IO
        thread, for a rebalance callback to await: a revoke's checkpoint (drain, flush, snapshot:
        seconds under load) run on the IO thread itself held up its event loop, heartbeats
        included. (The loop is kafka-python's own, not asyncio's.)"""
        from kafka.future import Future

        net = self.c._client._net
        done = Future()

        def run() -> None:
            result = error = None
            try:
                result = work(*args)
            except BaseException as exc:  # noqa: BLE001 - raised where the revoke is awaited
                error = exc  # (`exc` itself is deleted when the block ends, before the loop reads it)
            try:
                net.call_soon_threadsafe(lambda: done.success(result) if error is None else done.failure(error))
            except RuntimeError as exc:  # the loop stopped meanwhile; its waiters were failed then
                log.debug("the revoke ended after kafka-python's event loop: %s", exc)

        # Not a daemon thread: where the loop stops first, the process still waits for the checkpoint.
        threading.Thread(target=run, name="streamlstm-revoke").start()
        return done

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, Records]:
        polled = self.c.poll(timeout_ms=timeout_ms, max_records=max_records)
        while self.assignments:
            self._start(self.rebalance.assigned(self.assignments.pop(0)))
        return {TP(*tp): Records([r.offset for r in recs], [r.key for r in recs], [r.value for r in recs])
                for tp, recs in polled.items()}

    def _start(self, positions: Mapping[TP, int | None]) -> None:
        for tp, offset in positions.items():
            if offset is None:
                self.c.seek_to_beginning(_tp(tp))
            else:
                self.c.seek(_tp(tp), offset)
        if positions:
            self.c.resume(*map(_tp, positions))

    def committed(self, tps: list[TP]) -> dict[TP, int | None]:
        return {tp: self.c.committed(_tp(tp)) for tp in tps}

    def commit(self, offsets: Mapping[TP, int]) -> None:
        with waiting_on_brokers("the offset commit"):
            self.c.commit(_offsets(offsets))

    def highwater(self, tp: TP) -> int | None:
        return self.c.highwater(_tp(tp))

    def position(self, tp: TP) -> int | None:
        state = self.c._subscription.assignment.get(_tp(tp))  # position() would look it up from the brokers
        return None if state is None or state.position is None else state.position.offset

    def group_metadata(self) -> object:
        return self.c.group_metadata()

    def close(self) -> None:
        self.c.close(autocommit=False)


class KafkaPythonProducer:
    """kafka-python's producer. With its default partitioner, the partition of each key
    (murmur2 over the topic's sorted partitions, kafka-python's and Java's choice) is computed
    here once and cached: in pure Python it costs several µs per message."""

    MAX_KEYS = 100_000  # per topic

    def __init__(self, producer, on_error, default_partitioner: bool):
        self.p, self.on_error = producer, on_error
        self.error: ProduceError | None = None
        self.default_partitioner = default_partitioner
        self.partitions: dict[str, list[int]] = {}  # topic -> its sorted partitions
        self.cache: dict[str, dict[bytes, int]] = {}  # topic -> key -> partition

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        partition = None
        if key is not None and self.default_partitioner:
            keys = self.cache.get(topic)
            partition = keys.get(key) if keys is not None else None
            if partition is None:
                partition = self._partition_of(topic, key)
        try:
            future = self.p.send(topic, key=key, value=value, partition=partition)
        except Exception as exc:
            raise _fencing(exc) or exc
        future.add_errback(self._failed, topic)

    def _partition_of(self, topic: str, key: bytes) -> int:
        from kafka.partitioner.default import murmur2

        parts = self.partitions.get(topic)
        if parts is None:
            parts = self.partitions[topic] = sorted(self.p.partitions_for(topic))
        keys = self.cache.setdefault(topic, {})
        if len(keys) >= self.MAX_KEYS:
            keys.clear()
        p = keys[key] = parts[(murmur2(key) & 0x7FFFFFFF) % len(parts)]
        return p

    def _failed(self, topic: str, exc: BaseException) -> None:
        self.error = _fencing(exc) or ProduceError(f"producing to {topic} failed: {exc!r}")
        if self.on_error is not None:
            self.on_error(exc)

    def flush(self, timeout_s: float | None = None) -> None:
        from kafka.errors import KafkaTimeoutError

        try:
            self.p.flush(timeout=timeout_s)
        except KafkaTimeoutError as exc:
            raise ProduceError(f"messages not acknowledged within {timeout_s:g} s") from exc
        for topic, parts in list(self.partitions.items()):  # follow partitions added since (a checkpoint late)
            if sorted(self.p.partitions_for(topic)) != parts:
                del self.partitions[topic], self.cache[topic]
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.p.close(timeout=10)

    def begin(self) -> None:
        self.p.begin_transaction()

    def commit_transaction(self, offsets: Mapping[TP, int], group: object) -> None:
        try:
            if offsets:
                self.p.send_offsets_to_transaction(_offsets(offsets), group)
            self.p.commit_transaction()
        except Exception as exc:
            raise _fencing(exc) or exc


def _tp(tp: TP):
    from kafka import TopicPartition

    return TopicPartition(tp.topic, tp.partition)


def _fencing(exc: BaseException) -> Fenced | None:
    """A `Fenced` if `exc` says another producer or a newer generation of the group took over
    (itself, or as the cause kafka-python's later calls wrap it in), else None."""
    from kafka import errors

    fenced = (errors.ProducerFencedError, errors.InvalidProducerEpochError, errors.IllegalGenerationError,
              errors.UnknownMemberIdError, errors.FencedInstanceIdError)
    cause = next((e for e in (exc, *exc.args) if isinstance(e, fenced)), None)
    if cause is None:
        return None
    fencing = Fenced(f"the transaction failed: {type(cause).__name__}: {cause}")
    fencing.__cause__ = exc
    return fencing


def _offsets(offsets: Mapping[TP, int]) -> dict:
    from kafka import OffsetAndMetadata

    return {_tp(tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
