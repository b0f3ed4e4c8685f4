"""`KafkaSink`: results to the output topic, rejected input to the dead-letter topic.

Results are keyed by stream id and carry their source (topic, partition, offset; see
io/records.py). `kafka.output_mode` "batch" produces one message per stream per micro-batch
whose value is a JSON array of that stream's records in offset order (split before it grows
past BATCH_MESSAGE_BYTES); "event" produces one message per record. A dead letter is the
error record of the rejected message plus its topic, partition, offset and key; a key too long
to be a stream id (the reason it was rejected) is cut to its first RAW_LIMIT characters in the
record and the dead letter has no key, so that it can be produced. A result longer than
MAX_RESULT_BYTES (an event of tens of thousands of features: its record repeats their names
in `values`, `prediction` and `contributors`) would be refused by the producer, and stop the
daemon at every restart: it becomes a dead letter, `result_too_large`, instead.
"""

from __future__ import annotations

from typing import Any

from ..event import RAW_LIMIT, Rejected, error_record
from ..io.pipeline import MicroBatch
from ..io.records import Source, dumps, result_lines
from ..io.parsers import MAX_STREAM_ID
from .client import Producer

__all__ = ["BATCH_MESSAGE_BYTES", "OUTPUT_MODES", "KafkaSink", "PartitionBatch", "pack_results"]

OUTPUT_MODES = ("batch", "event")  # config.py validates kafka.output_mode against the same
BATCH_MESSAGE_BYTES = 512 * 1024  # a batch message is split before it grows past this
MAX_KEY_BYTES = 4 * MAX_STREAM_ID  # the longest stream id in UTF-8
# Below the 1,000,000 bytes a message may have by default (librdkafka's message.max.bytes;
# the brokers' is 1 MiB), with room for the key and the message's own overhead.
MAX_RESULT_BYTES = 900_000


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


class KafkaSink:
    """Produces with a `Producer` of the client seam (kafka/client.py); a stream's messages all
    go to the partition of its key."""

    def __init__(self, producer: Producer, output_topic: str, dead_letter_topic: str, output_mode: str,
                 only_anomalies: bool = False):
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode: expected one of {', '.join(OUTPUT_MODES)}, got {output_mode!r}")
        self.producer, self.topic, self.dlq = producer, output_topic, dead_letter_topic
        self.batch_mode = output_mode == "batch"
        self.only_anomalies = only_anomalies

    def write(self, batch: PartitionBatch) -> int:
        """Send the batch's results and dead letters; returns the number of result records.
        A result too long for a message joins the batch's rejected records (and keys)."""
        lines = []
        for ev, line in result_lines(batch.routed, batch.results, self.only_anomalies, batch.source):
            if len(line) > MAX_RESULT_BYTES:  # characters: ASCII, as dumps writes JSON
                batch.rejected.append(Rejected(
                    ev.seq, "result_too_large", f"its result record has {len(line)} bytes, more than the "
                    f"{MAX_RESULT_BYTES} a message may hold ({len(ev.features)} features)", line[:RAW_LIMIT]))
                batch.keys.append(ev.stream.encode())
            else:
                lines.append((ev, line))
        send = self.producer.send
        if self.batch_mode:
            per_stream: dict[str, list[str]] = {}
            for ev, line in lines:
                group = per_stream.get(ev.stream)
                if group is None:
                    group = per_stream[ev.stream] = []
                group.append(line)
            for stream, group in per_stream.items():
                key = stream.encode()
                for value in pack_results(group):
                    send(self.topic, key, value)
        else:
            for ev, line in lines:
                send(self.topic, ev.stream.encode(), line.encode())
        tp = batch.tp
        for rej, key in zip(batch.rejected, batch.keys):
            rec = error_record(rej)
            rec.update(topic=tp.topic, partition=tp.partition, offset=rej.seq,
                       key=key.decode("utf-8", "replace") if key is not None else None)
            if key is not None and len(key) > MAX_KEY_BYTES:
                rec["key"], key = rec["key"][:RAW_LIMIT], None
            send(self.dlq, key, dumps(rec).encode())
        return len(lines)

    def flush(self) -> None:
        """Every message sent so far is acknowledged; raises `ProduceError` if one failed."""
        self.producer.flush()
