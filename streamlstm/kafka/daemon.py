"""The Kafka daemon: consume events, produce scores, keep per-partition state durable.

    poll (≤ poll_max_records) → parse (stream id = message key, or the JSON field)
    → score+learn with the DetectorPool of the record's partition (in a worker thread,
      overlapping the next poll and parse: the compiled kernel releases the GIL)
    → produce results and dead letters (kafka/sink.py; keyed by stream id, `kafka.output_mode`
      batch: one JSON array per stream per micro-batch, event: one message per result)
    → when due, the checkpoint recipe (io/pipeline.py): finish the batch in flight → flush
      the producer → snapshot the partition states → commit their offsets

It talks to Kafka through the client seam (kafka/client.py), whichever library
`kafka.client` picks.

State follows partitions: every assigned input partition has its own `DetectorPool` and
parser memory, snapshotted together with the next input offset the snapshot includes. Offsets
are committed only after the results they cover are flushed and the state including them is
durable, and the checkpoint is the source of truth on assignment: the daemon seeks each new
partition to its checkpoint's offset (whatever the committed one says). Scoring is
deterministic, so after a crash the replayed records give the same results again — results
are at-least-once, state is exactly-once in effect.

With `kafka.processing_guarantee: exactly_once` each checkpoint interval is one transaction
of the daemon's producer: its results, dead letters and changelog snapshots, and the input
offsets they cover (sent with the group's metadata, so a member fenced by a rebalance cannot
commit). Committing the transaction is step 4 of the recipe; a `read_committed` consumer sees
every input offset's result once. A failed transaction is fatal (exit 1): nothing of it is
visible, and whoever takes the partitions over restores the snapshots and offsets of the last
committed one (`_assign` checks that they agree).

Checkpoints (and commits) happen every `checkpoint.every_events` events or
`checkpoint.every_seconds` seconds, when partitions are revoked, and at shutdown (`stop`
set: the current batch finishes, then flush, checkpoint, commit, close, return 0).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..budget import StateBudget
from ..config import TRANSACTION_MARGIN_S, Config
from ..event import Rejected
from ..io.checkpoint import CheckpointError
from ..io.parsers import JsonlParser
from ..io.pipeline import Pipeline, checkpoint
from ..pool import DetectorPool, warm_up
from .client import TP, Records, caught, cut_non_exceptions, open_client
from .metrics import DaemonMetrics, MetricsServer
from .sink import OUTPUT_MODES, KafkaSink, PartitionBatch
from .state_store import DirectoryStateStore, KafkaChangelogStore, partition_key

__all__ = ["KafkaDaemon", "run_kafka", "stopper"]

log = logging.getLogger("streamlstm.kafka")

# The clients give up on unreachable brokers after 30 s (confluent_client.TIMEOUT_S, kafka-python's
# bootstrap), but kafka-python's SSL handshake with a plaintext listener never ends: connecting
# (clients, changelog, transactions) is fatal past this.
CONNECT_S = 60.0
# From SIGTERM to exit at most: the final checkpoint waits on the brokers (each flush and commit
# up to 30 s or more), and deploy/ gives the process 60 s before SIGKILL, which says nothing.
STOP_S = 45.0
RESTORE_ATTEMPTS = 8  # reads of the changelog, ~7 s in all, before a lagging snapshot is fatal (_load)

# main thread: poll, parse, wait (for the kernel thread), produce, checkpoint; kernel: score
_STAGES = ("poll", "parse", "score", "wait", "produce", "checkpoint")


def _debug_traceback(msg: str, exc: BaseException) -> None:
    """exc's traceback at DEBUG, its chain cleaned first (`cut_non_exceptions`): a client
    library's non-exception in it would fail the logging."""
    cut_non_exceptions(exc)
    log.debug(msg, exc_info=exc)


@dataclass
class PartitionState:
    tp: TP
    pool: DetectorPool
    parser: JsonlParser  # stream id from the message key (passed to parse) or the JSON field
    next_offset: int | None = None  # next input offset to process (everything before it is produced)
    parsed_to: int | None = None  # next input offset to parse (ahead of next_offset while a batch is scored)
    checkpointed: int | None = None  # next_offset of the newest durable checkpoint
    committed: int | None = None
    events: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def fresh(cls, tp: TP, config: Config, budget: StateBudget | None = None) -> "PartitionState":
        return cls(tp, DetectorPool(config, budget), JsonlParser(config.input, max_streams=config.max_streams))

    def snapshot(self) -> tuple[bytes, dict[str, Any]]:
        meta = {"topic": self.tp.topic, "partition": self.tp.partition, "next_offset": self.next_offset,
                "events": self.events}
        extra = {**meta, "parser": self.parser.memory.to_json()}
        return self.pool.to_bytes(extra), meta

    def restore(self, payload: bytes) -> None:
        extra = self.pool.restore(payload)
        self.parser.memory.load_json(extra["parser"])
        self.next_offset = self.checkpointed = extra["next_offset"]
        self.events = extra.get("events", 0)


class KafkaDaemon:
    """One consumer-group member, and the `Rebalance` of its consumer (kafka/client.py).
    `run()` returns the exit status."""

    def __init__(self, config: Config, stop: threading.Event, *, metrics: DaemonMetrics | None = None,
                 output_mode: str | None = None, delivered: threading.Event | None = None):
        self.config = config
        self.output_mode = output_mode or config.kafka.output_mode
        if self.output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode: expected one of {', '.join(OUTPUT_MODES)}, got {self.output_mode!r}")
        self.stop = stop
        # Set once the final checkpoint has flushed the results and saved the states in a
        # store, with only at_least_once's offset commit left (`stopper`: a stop that
        # overruns there loses nothing); cleared by a fatal error.
        self.delivered = delivered or threading.Event()
        self.exactly_once = config.kafka.processing_guarantee == "exactly_once"
        self.metrics = metrics or DaemonMetrics()
        self.states: dict[TP, PartitionState] = {}
        # The state limits of the whole process, across all partitions' pools (budget.py).
        self.budget = StateBudget(config.max_streams, config.max_state_bytes, config.max_models)
        self._evictions_counted: Counter[str] = Counter()  # budget.evictions already in the metric
        self.parked: dict[TP, PartitionState] = {}  # revoked states, reused if reassigned unchanged
        self.fatal: BaseException | None = None
        self.client = self.consumer = self.producer = self.store = None
        self.sink: KafkaSink | None = None
        self.server: MetricsServer | None = None
        self._starting: threading.Thread | None = None  # warm-up and connection (_start_up)
        self.since_commit = 0
        self.last_commit = time.monotonic()
        self.stage_s = dict.fromkeys(_STAGES, 0.0)  # seconds spent per stage (logged at shutdown)
        self.pipeline = Pipeline(self._write)
        self.processed = 0
        self._stages_logged: tuple[int, dict] = (0, dict(self.stage_s))

    # ------------------------------------------------------------------ setup

    def _connect(self) -> None:
        k = self.config.kafka
        self.client = open_client(k)
        log.info("Kafka client: %s", self.client.name)
        self.consumer = self.client.consumer()
        if self.exactly_once:
            self.producer = self._transactional_producer()
            self.producer.begin()
        else:
            self.producer = self.client.producer("results", on_error=self._produce_failed)
        self.sink = KafkaSink(self.producer, k.output_topic, k.dead_letter_topic, self.output_mode,
                              self.config.output.only_anomalies)
        if k.changelog_topic:
            self.store = KafkaChangelogStore(self.client, k.changelog_topic, self.producer)
            log.info("partition state: the changelog topic %s%s", k.changelog_topic,
                     f" (checkpoint.state_dir {self.config.checkpoint.state_dir} is not used)"
                     if self.config.checkpoint.state_dir else "")
        elif self.config.checkpoint.state_dir:
            self.store = DirectoryStateStore(self.config.checkpoint.state_dir, keep=self.config.checkpoint.keep)
            log.info("partition state: the directory %s", self.config.checkpoint.state_dir)
        else:
            log.warning("no kafka.changelog_topic and no checkpoint.state_dir: partition state is not "
                        "kept; a restart or rebalance starts models from scratch at the committed offset")
            self.store = None

    def _produce_failed(self, exc: BaseException) -> None:
        self.metrics.errors.labels(kind="produce").inc()

    def _transactional_producer(self):
        k = self.config.kafka
        transactional_id = k.transactional_id or f"streamlstm-{k.group_id}-{socket.gethostname()}"
        # The brokers abort a transaction open longer than this: one checkpoint interval, and a minute
        # for the checkpoint itself.
        timeout_s = self.config.checkpoint.every_seconds + TRANSACTION_MARGIN_S
        try:
            producer = self.client.transactional_producer(transactional_id, timeout_s, self._produce_failed)
        except Exception as exc:
            raise RuntimeError(f"kafka.processing_guarantee: exactly_once needs transactions, and registering "
                               f"transactional id {transactional_id} with {','.join(k.bootstrap_servers)} failed "
                               f"({type(exc).__name__}: {exc})") from exc
        log.info("exactly_once: transactional id %s", transactional_id)
        return producer

    # ------------------------------------------------------------------ rebalance

    def revoked(self, revoked: list[TP]) -> dict[TP, int]:
        """Finish, flush and checkpoint the revoked partitions and release their state; returns
        the offsets the consumer commits before they go."""
        revoked = [tp for tp in revoked if tp in self.states]
        offsets: dict[TP, int] = {}
        try:
            if self.fatal is None and revoked:
                if self.exactly_once:  # the transaction holds every partition's results: commit them all now
                    self.checkpoint_and_commit()
                else:
                    offsets = self.checkpoint(revoked)
        except:  # noqa: E722 - the loop raises it (kafka-python swallows listener errors); any object (caught)
            exc = caught()
            if not isinstance(exc, Exception):
                raise
            _debug_traceback("checkpoint on revoke failed", exc)
            self.fatal = exc
        finally:
            for tp in revoked:
                st = self.states.pop(tp)
                if st.next_offset is not None and st.next_offset == st.checkpointed:
                    self.parked[tp] = st  # its state stays held (and within the budget) meanwhile
                else:
                    self.budget.release(st.pool)
                try:
                    self.metrics.lag.remove(tp.topic, str(tp.partition))
                except KeyError:
                    pass
            if self.store is not None:
                self.store.release(revoked)
            self.metrics.partitions.set(len(self.states))
            if revoked:
                # Not ready until the group assigns partitions again (confluent revokes them all
                # when the coordinator stops answering for a session timeout).
                self.metrics.assigned = False
                log.info("revoked %s", sorted(partition_key(tp) for tp in revoked))
        return offsets

    def commit_failed(self, exc: Exception) -> None:
        # Harmless for correctness: the checkpoint says where to resume.
        self.metrics.errors.labels(kind="commit").inc()
        log.warning("commit failed (state is checkpointed, so this is safe): %r", exc)

    def assigned(self, assigned: list[TP]) -> dict[TP, int | None]:
        """Restore the new partitions' states (or keep parked ones); returns the offset each
        resumes from: its checkpoint's, whatever the committed one says. A failure is fatal."""
        self._assign(assigned)
        self.metrics.assigned = True
        self.metrics.partitions.set(len(self.states))
        return {tp: self.states[tp].next_offset for tp in assigned}

    def _assign(self, assigned: list[TP]) -> None:
        parked, self.parked = self.parked, {}
        new = [tp for tp in assigned if tp not in self.states]
        committed = self.consumer.committed(new)
        to_load = []
        for tp in new:
            st = parked.get(tp)
            if st is not None and st.next_offset == committed[tp]:
                self.states[tp] = parked.pop(tp)  # nobody moved it on since we checkpointed it
            elif not (self.exactly_once and committed[tp] is None):
                to_load.append(tp)  # (in exactly_once, with no offset committed, no snapshot is either)
        for st in parked.values():  # moved on elsewhere, or not ours any more
            self.budget.release(st.pool)

        def restore(tp, payload: bytes, meta: dict[str, Any]) -> PartitionState:
            if self.exactly_once and (meta.get("next_offset") or 0) > (committed[tp] or 0):
                # Its transaction did not commit (a broker showing aborted records): the store
                # falls back to an older snapshot.
                raise CheckpointError(f"it resumes at offset {meta['next_offset']}, after the committed "
                                      f"{committed[tp]}")
            st = PartitionState.fresh(tp, self.config, self.budget)
            try:
                st.restore(payload)
            except BaseException:
                self.budget.release(st.pool)  # the store tries an older snapshot, or gives up
                raise
            return st

        loaded = self._load(to_load, restore, committed) if (self.store is not None and to_load) else {}
        for tp in new:
            if tp in self.states:
                st = self.states[tp]
                how = "kept"
            else:
                st = self.states[tp] = loaded[tp] if tp in loaded else PartitionState.fresh(tp, self.config,
                                                                                           self.budget)
                if tp in loaded:
                    how = "restored"
                    if committed[tp] is None and st.next_offset:
                        log.warning("%s: the restored state resumes at offset %d, but the group has committed "
                                    "none (a new group id, the topic recreated, or a stop before the first commit?): "
                                    "records before it are not read; remove the partition's state to start from "
                                    "the beginning",
                                    partition_key(tp), st.next_offset)
                else:
                    st.next_offset = committed[tp]
                    how = "fresh"
                    if committed[tp] is not None and self.store is not None:
                        log.warning("%s: committed offset %d but no state snapshot; starting models fresh",
                                    partition_key(tp), committed[tp])
            st.committed = committed[tp]
            st.parsed_to = st.next_offset
            log.info("assigned %s: %s state, %d streams, from %s (committed %s)", partition_key(tp), how,
                     st.pool.n_streams, "the beginning" if st.next_offset is None else f"offset {st.next_offset}",
                     "none" if committed[tp] is None else committed[tp])

    def _load(self, tps: list[TP], restore, committed: dict[TP, int | None]) -> dict[TP, PartitionState]:
        """The stored states of `tps`. In exactly_once a snapshot and its offsets commit together,
        but the transaction's markers reach the changelog and the group's offsets one at a time:
        while a snapshot is older than its committed offset, the changelog is read again."""
        for attempt in range(RESTORE_ATTEMPTS):
            loaded = self.store.load(tps, restore)
            behind = [tp for tp, st in loaded.items() if self.exactly_once and st.next_offset < (committed[tp] or 0)]
            if not behind:
                return loaded
            for st in loaded.values():
                self.budget.release(st.pool)
            log.info("the changelog's snapshots of %s are older than their committed offsets; reading it again",
                     sorted(partition_key(tp) for tp in behind))
            time.sleep(0.2 * (attempt + 1))
        raise CheckpointError(
            f"exactly_once: the snapshots of {sorted(partition_key(tp) for tp in behind)} in "
            f"{self.config.kafka.changelog_topic} stay older than the offsets committed in the same transaction")

    # ------------------------------------------------------------------ checkpoint + commit

    def checkpoint(self, tps: list[TP]) -> dict[TP, int]:
        """Steps 1-3 of the checkpoint recipe (io/pipeline.py) for the partitions `tps`:
        finish the batch in flight, flush the producer, make their states durable. Returns
        the offsets to commit (step 4, the caller's: in a rebalance, the consumer's)."""
        checkpoint(self.pipeline, [self.sink], lambda: self._snapshot(tps))
        return {tp: st.next_offset for tp in tps
                if (st := self.states[tp]).next_offset is not None and st.next_offset != st.committed}

    def _snapshot(self, tps) -> None:
        saved = []
        try:  # a store fails in save (a directory) or in flush (a changelog): counted either way
            for tp in tps:
                st = self.states[tp]
                if self.store is not None and st.next_offset is not None and st.next_offset != st.checkpointed:
                    payload, meta = st.snapshot()
                    self.store.save(tp, payload, meta)
                    saved.append(st)
            if saved:
                self.store.flush()
        except Exception:
            self.metrics.errors.labels(kind="checkpoint").inc()
            raise
        for st in saved:
            st.checkpointed = st.next_offset
        self.since_commit = 0
        self.last_commit = time.monotonic()

    def checkpoint_and_commit(self, final: bool = False) -> None:
        """The checkpoint recipe over every partition (main thread; `final`: the stop's):

            1-3. finish the batch in flight, flush the producer, snapshot the states (`checkpoint`)
            4.   at_least_once: commit their offsets with the group (a failure is harmless);
                 exactly_once: send_offsets_to_transaction (with the group's metadata) →
                 commit_transaction, which makes the interval's results, dead letters and
                 snapshots visible with the offsets (a failure is fatal); then begin the next
        """
        offsets = self.checkpoint(list(self.states))
        if self.exactly_once:
            self.producer.commit_transaction(offsets, self.consumer.group_metadata())
            self.producer.begin()
        else:
            if final and self.store is not None and self.fatal is None:
                self.delivered.set()  # only the commit is left, whose failure is harmless
            if offsets:
                try:
                    self.consumer.commit(offsets)
                except Exception as exc:  # noqa: BLE001 - e.g. the group rebalanced meanwhile
                    self.commit_failed(exc)
                    return
        for tp, offset in offsets.items():
            self.states[tp].committed = offset
        if offsets:  # the checkpoint age grows while there is nothing to commit, or commits fail
            self.metrics.last_checkpoint = time.monotonic()

    # ------------------------------------------------------------------ processing

    # Processing runs through the shared kernel pipeline (io/pipeline.py): while the kernel
    # scores poll i in its thread, the main thread polls and parses poll i+1, then starts
    # scoring it and produces poll i's results meanwhile. Everything that snapshots or hands
    # over state (checkpoints, so also revocation and shutdown) drains it first, so a
    # snapshot always holds exactly the events before its `next_offset`, parser memory included.

    def parse(self, records: Mapping[TP, Records]) -> list[PartitionBatch]:
        """Parse and route one poll's records, per partition (main thread)."""
        by_key = self.config.kafka.key_source == "key"
        t0 = time.perf_counter()
        out = []
        for tp, (offsets, keys_in, values) in records.items():
            st = self.states.get(tp)
            if st is None:  # not ours any more (cannot normally happen)
                continue
            if st.parsed_to is not None and offsets[0] < st.parsed_to:  # already parsed (a seek back)
                start = bisect_left(offsets, st.parsed_to)
                offsets, keys_in, values = offsets[start:], keys_in[start:], values[start:]
            if not offsets:
                continue
            events, rejected, keys = [], [], []
            parse = st.parser.parse
            for offset, key, value in zip(offsets, keys_in, values):
                parsed = parse(offset, value or b"", key if by_key else None)
                if parsed.__class__ is Rejected:
                    rejected.append(parsed)
                    keys.append(key)
                else:
                    events.append(parsed)
            st.parsed_to = offsets[-1] + 1
            routed = st.pool.route(events)
            if routed.rejected:  # no model could take them (max_models)
                key_of = dict(zip(offsets, keys_in))
                pairs = sorted([*zip(rejected, keys), *((r, key_of[r.seq]) for r in routed.rejected)],
                               key=lambda pair: pair[0].seq)
                rejected, keys = [r for r, _ in pairs], [k for _, k in pairs]
            out.append(PartitionBatch(routed, rejected, keys, tp, st.parsed_to, 0.0))
        dt = time.perf_counter() - t0
        self.stage_s["parse"] += dt
        for b in out:
            b.parse_s = dt / len(out)
        return out

    def _write(self, batches: Sequence[PartitionBatch]) -> None:
        """Produce the results and dead letters of scored batches; advance their offsets."""
        t0 = time.perf_counter()
        m = self.metrics
        for b in batches:
            m.results.inc(self.sink.write(b))
            st = self.states.get(b.tp) or self.parked[b.tp]
            n_events = len(b.routed.events)
            for part, res in zip(b.routed.parts, b.results):  # one detector, so one group, per part
                n_flagged = int(res.flags.sum())
                if n_flagged:
                    m.anomalies.labels(group=part.group).inc(n_flagged)
            for rej in b.rejected:
                m.errors.labels(kind=rej.reason).inc()
            st.next_offset = b.next_offset
            st.events += n_events
            self.since_commit += n_events
            self.processed += n_events
            m.events.inc(n_events)
            self.stage_s["score"] += b.kernel_s
        dt = time.perf_counter() - t0
        self.stage_s["produce"] += dt
        m.batch_latency.observe(sum(b.parse_s + b.kernel_s for b in batches) + dt)

    def _update_gauges(self) -> None:
        m, budget = self.metrics, self.budget
        m.streams.set(budget.n_streams)
        m.state_bytes.set(budget.bytes)
        for reason, n in budget.evictions.items():
            seen = self._evictions_counted[reason]
            if n > seen:
                m.evictions.labels(reason=reason).inc(n - seen)
                self._evictions_counted[reason] = n
        for tp, st in self.states.items():
            hw = self.consumer.highwater(tp)
            if hw is not None and st.next_offset is not None:
                done = st.next_offset
                if done == st.parsed_to:  # all it polled is processed: up to the position, markers too
                    done = max(done, self.consumer.position(tp) or 0)
                m.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - done))

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        cfg = self.config
        if cfg.metrics.enabled:
            try:
                self.server = MetricsServer(self.metrics, cfg.metrics.address, cfg.metrics.port).start()
            except OSError as exc:  # the port taken, or an address that is not this host's
                log.error("cannot serve metrics on %s:%d (metrics.address, metrics.port): %s", cfg.metrics.address,
                          cfg.metrics.port, exc.strerror or exc)
                _debug_traceback("traceback of the error above", exc)
                return 1
            log.info("metrics on http://%s:%d/metrics", cfg.metrics.address, self.server.port)
        status, consuming = 0, False
        try:
            if not self._start_up():
                log.info("stopping: during start-up, before consuming anything")
                return status
            consuming = True
            with Pipeline.running():
                self._serve()
        except:  # noqa: E722 - also what a client library raises that is not an exception (caught)
            exc = caught()
            if not isinstance(exc, Exception):
                raise
            name, text = type(exc).__name__, " ".join(str(exc).split())  # one line: librdkafka's end in "\n"
            # kafka-python's errors start with their own name ("KafkaTimeoutError: ..."); nothing
            # is consumed, so nothing is left uncommitted, before the start-up is over.
            log.error("kafka daemon failed: %s%s", text if text.startswith(name) else f"{name}: {text}",
                      "; offsets after the last checkpoint are not committed" if consuming else "")
            _debug_traceback("traceback of the error above", exc)
            self.fatal = self.fatal or RuntimeError("failed")
            self.delivered.clear()
            status = 1
        finally:
            self.metrics.alive = status == 0
            self._close()
        return status

    def _start_up(self) -> bool:
        """Compile the kernels and connect, in a thread of their own: a stop (SIGTERM) while the
        brokers do not answer returns False at once, where the clients would wait 30 s (the
        thread, a daemon, is left to the process's exit), and connecting longer than `CONNECT_S`
        is fatal. True once connected."""
        done, failed, connecting = threading.Event(), [], []

        def start() -> None:
            try:
                warm_up(self.config)
                connecting.append(time.monotonic())
                self._connect()
            except:  # noqa: E722 - any object (caught): raised again on the main thread
                failed.append(caught())
            finally:
                done.set()

        self._starting = threading.Thread(target=start, name="streamlstm-start-up", daemon=True)
        self._starting.start()
        while not done.wait(0.05):
            if self.stop.is_set():
                return False
            if connecting and time.monotonic() - connecting[0] > CONNECT_S:
                k = self.config.kafka
                tls = "SSL" in str(k.security.get("security_protocol", ""))
                raise ConnectionError(f"no connection to the Kafka brokers {','.join(k.bootstrap_servers)} within "
                                      f"{CONNECT_S:g} s" + (" (kafka.security's TLS against a plaintext listener?)"
                                                            if tls else ""))
        if failed:
            raise failed[0]
        return True

    def _serve(self) -> None:
        """poll (restoring newly assigned partitions within) → parse → push into the pipeline →
        checkpoint and commit when due; until `stop`, then a final checkpoint and commit."""
        cfg = self.config
        self.consumer.subscribe(list(cfg.kafka.topics), self)
        log.info("consuming %s as group %s", ",".join(cfg.kafka.topics), cfg.kafka.group_id)
        every_events, every_s = cfg.checkpoint.every_events, cfg.checkpoint.every_seconds
        clock, stage = time.perf_counter, self.stage_s
        while not self.stop.is_set():
            t_poll = clock()
            # With a batch in the kernel only take what is already fetched: its results wait.
            records = self.consumer.poll(0 if self.pipeline.busy else cfg.kafka.poll_timeout_ms,
                                         cfg.kafka.poll_max_records)
            self.metrics.last_poll = time.monotonic()
            if self.fatal is not None:
                raise self.fatal
            batches = []
            if records:
                stage["poll"] += clock() - t_poll  # (only polls that returned records)
                batches = self.parse(records)
            self.pipeline.push(batches)
            self._update_gauges()
            if self.since_commit >= every_events or time.monotonic() - self.last_commit >= every_s:
                t0 = clock()
                self.checkpoint_and_commit()
                stage["checkpoint"] += clock() - t0
                self._log_stages(since_last=True)
        log.info("stopping: final checkpoint and commit")
        self.checkpoint_and_commit(final=True)
        self._log_stages()

    def _log_stages(self, since_last: bool = False) -> None:
        """Log the time per event spent in each stage: at DEBUG since the previous periodic
        checkpoint, at INFO (shutdown) in all."""
        self.stage_s["wait"] = self.pipeline.wait_s
        if since_last:
            if not log.isEnabledFor(logging.DEBUG):
                return
            last_n, last = self._stages_logged
            n, stages = self.processed - last_n, {k: v - last[k] for k, v in self.stage_s.items()}
            self._stages_logged = (self.processed, dict(self.stage_s))
        else:
            n, stages = self.processed, self.stage_s
        if n:
            per = ", ".join(f"{k} {1e6 * v / n:.1f}" for k, v in stages.items())
            log.log(logging.DEBUG if since_last else logging.INFO, "%s %d events (%s output); µs per event: %s",
                    "since the last checkpoint:" if since_last else "processed", n, self.output_mode, per)

    def _close(self) -> None:
        self.pipeline.close()
        if self._starting is None or not self._starting.is_alive():  # else they are the start-up's, connecting
            self._close_clients()
        if self.server is not None:
            self.server.stop()

    def _close_clients(self) -> None:
        for name, closer in (("consumer", lambda: self.consumer.close()),
                             ("producer", lambda: self.producer.close()),
                             ("store", lambda: self.store.close())):
            if getattr(self, name) is None:
                continue
            try:
                closer()
            except:  # noqa: E722 - any object (caught): closing a fenced confluent producer has raised a KafkaError
                exc = caught()
                if not isinstance(exc, Exception):
                    raise
                # After a fatal error (a fenced producer) the clients may fail to close too
                # (confluent-kafka 2.16 has raised AttributeError there): the fatal line says it all.
                log.log(logging.DEBUG if self.fatal is not None else logging.WARNING, "closing the %s failed: %s: %s",
                        name, type(exc).__name__, exc)
                _debug_traceback("traceback of the line above", exc)


def _exit_now(status: int) -> None:
    logging.shutdown()  # (os._exit flushes nothing)
    os._exit(status)


def stopper(stop: threading.Event, exit=_exit_now, delivered: threading.Event | None = None):
    """The daemon's handler of the stop signals (SIGTERM, SIGINT, SIGHUP; main thread): it
    sets `stop`, and if the daemon has not returned `STOP_S` seconds later (brokers that do
    not answer its final checkpoint), logs one line and exits as SIGKILL would, leaving the
    offsets where the last checkpoint put them: 1, or 0 where only at_least_once's offset
    commit (and closing) was left (`delivered`, the daemon's: the results flushed and the
    states saved in a store, as a failed commit leaves them, which kafka-python's client
    may report within the limit and confluent's waits on). The main thread may then be inside a client's C call
    (confluent's flush) that runs no Python signal handler until it returns, so a thread
    woken by the signal's wakeup fd starts the deadline too."""
    once = threading.Lock()  # taken by the first signal, never released

    def overdue() -> None:
        done = delivered is not None and delivered.is_set()
        if done:
            log.warning("stopped %g s after the signal, the brokers not answering the final offset commit or the "
                        "group's leave; the results were delivered and the state saved before it, so a restart "
                        "resumes from that checkpoint, as after any failed commit", STOP_S)
        else:
            log.error("kafka daemon failed: not stopped within %g s of the signal (the brokers do not answer?); "
                      "offsets after the last checkpoint are not committed", STOP_S)
        exit(0 if done else 1)

    def handler(*_) -> None:
        if once.acquire(blocking=False):
            stop.set()
            timer = threading.Timer(STOP_S, overdue)
            timer.daemon = True
            timer.start()

    def watch(fd: int) -> None:
        while byte := os.read(fd, 1):  # (empty once the write end is closed)
            if byte[0] in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                return handler()

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    threading.Thread(target=watch, args=(wake_r,), name="streamlstm-signals", daemon=True).start()
    return handler


def run_kafka(config: Config, stop: threading.Event, *, metrics: DaemonMetrics | None = None,
              output_mode: str | None = None, delivered: threading.Event | None = None) -> int:
    """Run the daemon until `stop` is set (exit status 0) or a fatal error (1); `output_mode`
    ("batch" or "event") overrides `kafka.output_mode`; `delivered` is set as the final
    checkpoint leaves only at_least_once's offset commit (`stopper`)."""
    return KafkaDaemon(config, stop, metrics=metrics, output_mode=output_mode, delivered=delivered).run()
