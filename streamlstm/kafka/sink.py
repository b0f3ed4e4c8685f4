"""`KafkaSink`: results to the output topic, rejected input to the dead-letter topic.

Results are keyed by stream id and carry their source (topic, partition, offset; see
io/records.py). `kafka.output_mode` "batch" produces one message per stream per micro-batch
whose value is a JSON array of that stream's records in offset order (split before it grows
past BATCH_MESSAGE_BYTES); "event" produces one message per record. A dead letter is the
error record of the rejected message plus its topic, partition, offset and key.
"""

from __future__ import annotations

from typing import Any

from ..event import error_record
from ..io.pipeline import MicroBatch
from ..io.records import Source, dumps, result_lines

__all__ = ["BATCH_MESSAGE_BYTES", "OUTPUT_MODES", "KafkaSink", "PartitionBatch", "pack_results"]

OUTPUT_MODES = ("batch", "event")  # config.py validates kafka.output_mode against the same
BATCH_MESSAGE_BYTES = 512 * 1024  # a batch message is split before it grows past this


class PartitionBatch(MicroBatch):
    """One input partition's part of a polled micro-batch."""

    def __init__(self, routed, rejected, keys: list[bytes | None], tp: Any, next_offset: int, parse_s: float):
        super().__init__(routed, rejected)
        self.keys = keys  # the message key of each rejected record
        self.tp = tp
        self.source = Source(tp.topic, int(tp.partition))
        self.next_offset = next_offset  # the partition's next offset once this batch is produced
        self.parse_s = parse_s  # its share of the time parsing its poll took


def pack_results(lines: list[str], limit: int = BATCH_MESSAGE_BYTES) -> list[bytes]:
    """JSON arrays of the JSON objects in `lines`, each array at most ~`limit` bytes (an
    array always holds at least one record)."""
    out, start, size = [], 0, 2
    for i, line in enumerate(lines):
        n = len(line) + 1
        if size + n > limit and i > start:
            out.append(("[" + ",".join(lines[start:i]) + "]").encode())
            start, size = i, 2
        size += n
    out.append(("[" + ",".join(lines[start:]) + "]").encode())
    return out


class _KeyPartitions:
    """The output partition kafka-python's default partitioner picks for a key (murmur2 of
    the key over the topic's sorted partitions), cached per key: computing it per message in
    pure Python costs several µs. `refresh()` (once per micro-batch) follows partition changes."""

    MAX_KEYS = 100_000

    def __init__(self, producer, topic: str):
        self.producer, self.topic = producer, topic
        self.partitions: list[int] | None = None
        self.cache: dict[bytes, int] = {}

    def refresh(self) -> None:
        parts = sorted(self.producer.partitions_for(self.topic))
        if parts != self.partitions:
            self.partitions, self.cache = parts, {}

    def __call__(self, key: bytes) -> int:
        p = self.cache.get(key)
        if p is None:
            from kafka.partitioner.default import murmur2

            if len(self.cache) >= self.MAX_KEYS:
                self.cache.clear()
            p = self.cache[key] = self.partitions[(murmur2(key) & 0x7FFFFFFF) % len(self.partitions)]
        return p


class KafkaSink:
    """Produces with `producer` (kafka-python's, or any object with its `send`/`flush`);
    `partition_default` says whether the producer uses the default partitioner, whose
    choice is then computed here once per key."""

    def __init__(self, producer, output_topic: str, dead_letter_topic: str, output_mode: str,
                 only_anomalies: bool = False, partition_default: bool = True, on_error=None):
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode: expected one of {', '.join(OUTPUT_MODES)}, got {output_mode!r}")
        self.producer, self.topic, self.dlq = producer, output_topic, dead_letter_topic
        self.batch_mode = output_mode == "batch"
        self.only_anomalies = only_anomalies
        self.partition_of = _KeyPartitions(producer, output_topic) if partition_default else None
        self.on_error = on_error  # called with a failed send's exception (metrics)
        self.send_error: BaseException | None = None

    def write(self, batch: PartitionBatch) -> None:
        lines = result_lines(batch.routed, batch.results, self.only_anomalies, batch.source)
        partition_of = self.partition_of
        if lines and partition_of is not None:
            partition_of.refresh()
        if self.batch_mode:
            per_stream: dict[str, list[str]] = {}
            for ev, line in lines:
                group = per_stream.get(ev.stream)
                if group is None:
                    group = per_stream[ev.stream] = []
                group.append(line)
            for stream, group in per_stream.items():
                key = stream.encode()
                part = partition_of(key) if partition_of is not None else None
                for value in pack_results(group):
                    self._send(self.topic, key, value, part)
        else:
            for ev, line in lines:
                key = ev.stream.encode()
                self._send(self.topic, key, line.encode(), partition_of(key) if partition_of is not None else None)
        tp = batch.tp
        for rej, key in zip(batch.rejected, batch.keys):
            rec = error_record(rej)
            rec.update(topic=tp.topic, partition=tp.partition, offset=rej.seq,
                       key=key.decode("utf-8", "replace") if key is not None else None)
            self._send(self.dlq, key, dumps(rec).encode())

    def flush(self) -> None:
        """Every message sent so far is acknowledged; raises if one failed."""
        self.producer.flush()
        if self.send_error is not None:
            raise RuntimeError(f"producing results failed: {self.send_error!r}")

    def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        self.producer.send(topic, key=key, value=value, partition=partition).add_errback(self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.send_error = exc
        if self.on_error is not None:
            self.on_error(exc)
