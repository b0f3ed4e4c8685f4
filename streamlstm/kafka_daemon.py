"""The Kafka daemon: consume events, produce scores, keep per-partition state durable.

    poll (≤ poll_max_records) → parse (stream id = message key, or the JSON field)
    → score+learn with the DetectorPool of the record's partition
    → produce results (keyed by stream id) and dead letters
    → when due: flush producer → checkpoint partition states → commit offsets

State follows partitions: every assigned input partition has its own `DetectorPool` and
parser memory, snapshotted together with the next input offset the snapshot includes. Offsets
are committed only after the results they cover are flushed and the state including them is
durable, and the checkpoint is the source of truth on assignment: the daemon seeks each new
partition to its checkpoint's offset (whatever the committed one says). Scoring is
deterministic, so after a crash the replayed records give the same results again — results
are at-least-once, state is exactly-once in effect.

Checkpoints (and commits) happen every `checkpoint.every_events` events or
`checkpoint.every_seconds` seconds, when partitions are revoked, and at shutdown (`stop`
set: the current batch finishes, then flush, checkpoint, commit, close, return 0).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from .config import Config
from .events import JsonlParser, Rejected, error_record
from .metrics import DaemonMetrics, MetricsServer
from .pool import DetectorPool
from .records import dumps, result_record
from .state_store import DirectoryStateStore, KafkaChangelogStore, partition_key

__all__ = ["KafkaDaemon", "run_kafka"]

log = logging.getLogger("streamlstm.kafka")

_KEY_FIELD = "\x00streamlstm-message-key"  # a JSON field name no input uses


class _KeyInput:
    """An InputConfig look-alike whose stream id is the current message key."""

    def __init__(self, base):
        for name in base.__dataclass_fields__:
            setattr(self, name, getattr(base, name))
        self.stream_field = _KEY_FIELD


@dataclass
class PartitionState:
    tp: Any
    pool: DetectorPool
    by_field: JsonlParser  # stream id from the JSON field
    by_key: JsonlParser  # stream id from the message key; shares by_field's memory
    next_offset: int | None = None  # next input offset to process
    checkpointed: int | None = None  # next_offset of the newest durable checkpoint
    committed: int | None = None
    events: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def fresh(cls, tp, config: Config) -> "PartitionState":
        by_field = JsonlParser(config.input, max_streams=config.max_streams)
        by_key = JsonlParser(_KeyInput(config.input), max_streams=config.max_streams)  # type: ignore[arg-type]
        by_key.memory = by_field.memory
        return cls(tp, DetectorPool(config), by_field, by_key)

    def snapshot(self) -> tuple[bytes, dict[str, Any]]:
        meta = {"topic": self.tp.topic, "partition": self.tp.partition, "next_offset": self.next_offset,
                "events": self.events}
        extra = {**meta, "parser": self.by_field.memory.to_json()}
        return self.pool.to_bytes(extra), meta

    def restore(self, payload: bytes) -> None:
        extra = self.pool.restore(payload)
        self.by_field.memory.load_json(extra["parser"])
        self.next_offset = self.checkpointed = extra["next_offset"]
        self.events = extra.get("events", 0)


def _listener_class():
    from kafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        """Rebalance hooks. kafka-python 3 runs them on the consumer's IO thread while the main
        thread waits in `poll()`, so they may touch the daemon's state but must not call the
        consumer's blocking APIs: revoke awaits an async commit, assign defers to the loop."""

        def __init__(self, daemon: "KafkaDaemon"):
            self.daemon = daemon

        async def on_partitions_revoked(self, revoked):
            await self.daemon.on_revoked(revoked)

        def on_partitions_assigned(self, assigned):
            self.daemon.on_assigned(assigned)

    return Listener


class KafkaDaemon:
    """One consumer-group member. `run()` returns the exit status."""

    def __init__(self, config: Config, stop: threading.Event, *,
                 client_options: Mapping[str, Any] | None = None, metrics: DaemonMetrics | None = None):
        self.config = config
        self.stop = stop
        self.client_options = dict(client_options or {})
        self.metrics = metrics or DaemonMetrics()
        self.states: dict[Any, PartitionState] = {}
        self.parked: dict[Any, PartitionState] = {}  # revoked states, reused if reassigned unchanged
        self.pending_assign: list = []  # assigned partitions whose state the loop must restore
        self.joined = False  # an assignment (possibly empty) has been received
        self.fatal: BaseException | None = None
        self.send_error: BaseException | None = None
        self.consumer = self.producer = self.store = None
        self.server: MetricsServer | None = None
        self.since_commit = 0
        self.last_commit = time.monotonic()

    # ------------------------------------------------------------------ setup

    def _kafka_clients(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        k = self.config.kafka
        security = dict(k.security)
        consumer_opts = {
            "session_timeout_ms": k.session_timeout_ms,
            "heartbeat_interval_ms": k.heartbeat_interval_ms,
            "fetch_max_wait_ms": 100,  # bounds latency on brokers that hold fetches for the full wait
            **self.client_options.get("consumer", {}),
        }
        self.consumer = KafkaConsumer(
            bootstrap_servers=list(k.bootstrap_servers), group_id=k.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=k.poll_max_records,
            client_id=f"streamlstm-{os.getpid()}", **security, **consumer_opts)
        self.producer = KafkaProducer(
            bootstrap_servers=list(k.bootstrap_servers), acks="all", linger_ms=5, retries=5,
            client_id=f"streamlstm-{os.getpid()}", **security, **self.client_options.get("producer", {}))
        if k.changelog_topic:
            self.store = KafkaChangelogStore(k.bootstrap_servers, k.changelog_topic, security)
        elif self.config.checkpoint.state_dir:
            self.store = DirectoryStateStore(self.config.checkpoint.state_dir, keep=self.config.checkpoint.keep)
        else:
            log.warning("no kafka.changelog_topic and no checkpoint.state_dir: partition state is not "
                        "kept; a restart or rebalance starts models from scratch at the committed offset")
            self.store = None

    # ------------------------------------------------------------------ rebalance

    async def on_revoked(self, revoked) -> None:
        """Flush, checkpoint and commit the revoked partitions, then release their state."""
        self.pending_assign = [tp for tp in self.pending_assign if tp not in revoked]
        revoked = [tp for tp in revoked if tp in self.states]
        if not revoked:
            return
        try:
            if self.fatal is None:
                offsets = self.checkpoint(revoked)
                if offsets:
                    try:
                        await self.consumer.commit_async(offsets)
                    except Exception as exc:  # noqa: BLE001 - the checkpoint says where to resume
                        self.metrics.errors.labels(kind="commit").inc()
                        log.warning("commit on revoke failed (state is checkpointed, so this is safe): %r", exc)
        except Exception as exc:  # noqa: BLE001 - kafka-python swallows listener errors
            log.exception("checkpoint on revoke failed")
            self.fatal = exc
        finally:
            for tp in revoked:
                st = self.states.pop(tp)
                if st.next_offset is not None and st.next_offset == st.checkpointed:
                    self.parked[tp] = st
                try:
                    self.metrics.lag.remove(tp.topic, str(tp.partition))
                except KeyError:
                    pass
            self.metrics.partitions.set(len(self.states))
            self.metrics.streams.set(sum(s.pool.n_streams for s in self.states.values()))
            log.info("revoked %s", sorted(partition_key(tp) for tp in revoked))

    def on_assigned(self, assigned) -> None:
        """Pause the new partitions; the loop restores their state and seeks before resuming."""
        new = [tp for tp in assigned if tp not in self.states]
        if new:
            self.consumer.pause(*new)
        self.pending_assign = new
        self.joined = True

    def _restore_pending(self) -> None:
        pending, self.pending_assign = self.pending_assign, []
        if pending:
            try:
                self._assign(pending)
            except Exception:
                log.exception("restoring assigned partitions failed")
                raise
            self.consumer.resume(*pending)
        self.metrics.assigned = self.joined
        self.metrics.partitions.set(len(self.states))

    def _assign(self, assigned) -> None:
        parked, self.parked = self.parked, {}
        new = [tp for tp in assigned if tp not in self.states]
        committed = {tp: self.consumer.committed(tp) for tp in new}
        to_load = []
        for tp in new:
            st = parked.get(tp)
            if st is not None and st.next_offset == committed[tp]:
                self.states[tp] = st  # nobody moved it on since we checkpointed it
            else:
                to_load.append(tp)
        loaded = self.store.load(to_load) if (self.store is not None and to_load) else {}
        for tp in new:
            if tp in self.states:
                st = self.states[tp]
                how = "kept"
            else:
                st = self.states[tp] = PartitionState.fresh(tp, self.config)
                if tp in loaded:
                    st.restore(loaded[tp][0])
                    how = "restored"
                else:
                    st.next_offset = committed[tp]
                    how = "fresh"
                    if committed[tp] is not None and self.store is not None:
                        log.warning("%s: committed offset %d but no state snapshot; starting models fresh",
                                    partition_key(tp), committed[tp])
            st.committed = committed[tp]
            if st.next_offset is not None:
                self.consumer.seek(tp, st.next_offset)
            else:
                self.consumer.seek_to_beginning(tp)  # auto_offset_reset=earliest, made explicit
            log.info("assigned %s: %s state, %d streams, from offset %s (committed %s)", partition_key(tp),
                     how, st.pool.n_streams, st.next_offset, committed[tp])
        self.metrics.streams.set(sum(s.pool.n_streams for s in self.states.values()))

    # ------------------------------------------------------------------ checkpoint + commit

    def checkpoint(self, tps) -> dict:
        """Flush results and make the states of `tps` durable; returns the offsets to commit."""
        from kafka import OffsetAndMetadata

        self.producer.flush()
        if self.send_error is not None:
            raise RuntimeError(f"producing results failed: {self.send_error!r}")
        offsets = {}
        saved = []
        for tp in tps:
            st = self.states[tp]
            if st.next_offset is None:
                continue
            if self.store is not None and st.next_offset != st.checkpointed:
                payload, meta = st.snapshot()
                self.store.save(tp, payload, meta)
                saved.append(st)
            if st.next_offset != st.committed:
                offsets[tp] = OffsetAndMetadata(st.next_offset, "", -1)
        if saved:
            try:
                self.store.flush()
            except Exception:
                self.metrics.errors.labels(kind="checkpoint").inc()
                raise
            for st in saved:
                st.checkpointed = st.next_offset
        self.since_commit = 0
        self.last_commit = self.metrics.last_checkpoint = time.monotonic()
        return offsets

    def checkpoint_and_commit(self) -> None:
        """Flush results, make every state durable, then commit their offsets (main thread)."""
        offsets = self.checkpoint(list(self.states))
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - e.g. the group rebalanced meanwhile
            # Harmless for correctness: the checkpoint says where to resume.
            self.metrics.errors.labels(kind="commit").inc()
            log.warning("commit failed (state is checkpointed, so this is safe): %r", exc)
        else:
            for tp, om in offsets.items():
                self.states[tp].committed = om.offset

    # ------------------------------------------------------------------ processing

    def _on_send_error(self, exc: BaseException) -> None:
        self.send_error = exc
        self.metrics.errors.labels(kind="produce").inc()

    def process(self, records) -> None:
        cfg = self.config
        by_key = cfg.kafka.key_source == "key"
        only_anomalies = cfg.output.only_anomalies
        out_topic, dlq = cfg.kafka.output_topic, cfg.kafka.dead_letter_topic
        send, errback = self.producer.send, self._on_send_error
        m = self.metrics
        for tp, recs in records.items():
            st = self.states.get(tp)
            if st is None:  # not ours any more (cannot normally happen)
                continue
            if st.next_offset is not None:
                recs = [r for r in recs if r.offset >= st.next_offset]
            if not recs:
                continue
            events, rejected = [], []
            for rec in recs:
                key = rec.key
                if by_key and key is not None:
                    st.by_key.cfg.default_stream = key.decode("utf-8", "replace")
                    parsed = st.by_key.parse(rec.offset, rec.value or b"")
                else:
                    parsed = st.by_field.parse(rec.offset, rec.value or b"")
                if isinstance(parsed, Rejected):
                    rejected.append((parsed, key))
                else:
                    events.append(parsed)
            scored = st.pool.process(events) if events else []
            anomalies = 0
            for s in scored:
                anomalies += s.is_anomaly
                if only_anomalies and not s.is_anomaly:
                    continue
                rec = result_record(s)
                rec["topic"], rec["partition"], rec["offset"] = tp.topic, tp.partition, s.event.seq
                send(out_topic, key=s.event.stream.encode(), value=dumps(rec).encode()).add_errback(errback)
                m.results.inc()
            for rej, key in rejected:
                rec = error_record(rej)
                rec.update(topic=tp.topic, partition=tp.partition, offset=rej.seq,
                           key=key.decode("utf-8", "replace") if key is not None else None)
                send(dlq, key=key, value=dumps(rec).encode()).add_errback(errback)
                m.errors.labels(kind=rej.reason).inc()
            st.next_offset = recs[-1].offset + 1
            st.events += len(events)
            self.since_commit += len(events)
            m.events.inc(len(events))
            m.anomalies.inc(anomalies)

    def _update_gauges(self) -> None:
        m = self.metrics
        m.streams.set(sum(s.pool.n_streams for s in self.states.values()))
        for tp, st in self.states.items():
            hw = self.consumer.highwater(tp)
            if hw is not None and st.next_offset is not None:
                m.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - st.next_offset))

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        cfg = self.config
        if cfg.metrics.enabled:
            self.server = MetricsServer(self.metrics, cfg.metrics.address, cfg.metrics.port).start()
            log.info("metrics on http://%s:%d/metrics", cfg.metrics.address, self.server.port)
        status = 0
        try:
            self._kafka_clients()
            self.consumer.subscribe(list(cfg.kafka.topics), listener=_listener_class()(self))
            log.info("consuming %s as group %s", ",".join(cfg.kafka.topics), cfg.kafka.group_id)
            every_events, every_s = cfg.checkpoint.every_events, cfg.checkpoint.every_seconds
            while not self.stop.is_set():
                records = self.consumer.poll(timeout_ms=cfg.kafka.poll_timeout_ms,
                                             max_records=cfg.kafka.poll_max_records)
                self.metrics.last_poll = time.monotonic()
                if self.fatal is not None:
                    raise self.fatal
                if records:  # (records of partitions still pending restore are dropped: we seek)
                    t0 = time.perf_counter()
                    self.process(records)
                    self.metrics.batch_latency.observe(time.perf_counter() - t0)
                self._restore_pending()
                self._update_gauges()
                if (self.since_commit >= every_events
                        or (time.monotonic() - self.last_commit >= every_s)):
                    self.checkpoint_and_commit()
            log.info("stopping: final checkpoint and commit")
            self.checkpoint_and_commit()
        except Exception:
            log.exception("kafka daemon failed; offsets after the last checkpoint are not committed")
            self.fatal = self.fatal or RuntimeError("failed")
            status = 1
        finally:
            self.metrics.alive = status == 0
            self._close(commit=False)
        return status

    def _close(self, commit: bool) -> None:
        for name, closer in (("consumer", lambda: self.consumer.close(autocommit=commit)),
                             ("producer", lambda: self.producer.close(timeout=10)),
                             ("store", lambda: self.store.close())):
            if getattr(self, name) is None:
                continue
            try:
                closer()
            except Exception:  # noqa: BLE001
                log.exception("closing the %s failed", name)
        if self.server is not None:
            self.server.stop()


def run_kafka(config: Config, stop: threading.Event, *, client_options: Mapping[str, Any] | None = None,
              metrics: DaemonMetrics | None = None) -> int:
    """Run the daemon until `stop` is set (exit status 0) or a fatal error (1).

    `client_options` adds kafka-python settings: ``{"consumer": {...}, "producer": {...}}``.
    """
    return KafkaDaemon(config, stop, client_options=client_options, metrics=metrics).run()
