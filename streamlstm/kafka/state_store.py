"""Per-partition state stores for the Kafka daemon.

The daemon keeps one `DetectorPool` per assigned input partition and snapshots it here,
together with the next input offset the snapshot includes. Two stores share one interface:

* `DirectoryStateStore(root)` — a `checkpoint.DirectoryStore` per partition under
  ``root/<topic>-<partition>/`` (fsynced files; the newest ``keep`` are kept). Good for one
  instance, or several sharing a volume.
* `KafkaChangelogStore(client, changelog_topic, producer)` — the latest snapshot of each partition in
  a compacted changelog topic, so any instance of the consumer group can take a partition
  over with its state. See the class docstring for the record layout.

Interface (``StateStore``)::

    load(tps, restore) -> {tp: restore(tp, payload, meta)}
                                         the latest usable snapshot of each partition that has
                                         one; `restore` raises if it cannot use a snapshot
    save(tp, payload, meta)              write a snapshot (may be buffered)
    flush()                              every saved snapshot is durable when this returns
    release(tps)                         the partitions are no longer this instance's
    close()

The daemon calls ``save`` for the partitions it checkpoints, then ``flush``, and only then
commits the input offsets. A snapshot that cannot be restored (or that `restore` refuses) is
skipped in favour of the partition's previous one: the directory store keeps ``keep``, the
changelog the two newest (and any older one whose chunks are still there); without a usable
one it is an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, TypeVar

import crc32c

from ..io.checkpoint import CheckpointError, DirectoryStore, prepare_dir
from .client import Client, Producer

__all__ = ["DirectoryStateStore", "KafkaChangelogStore", "StateStore", "partition_key"]

log = logging.getLogger("streamlstm.state")

CHUNK_BYTES = 512 * 1024  # below Kafka's default 1 MB message / request / fetch limits

_T = TypeVar("_T")
Restore = Callable[[Any, bytes, dict[str, Any]], _T]  # (tp, payload, meta) -> the restored state


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def partition_key(tp) -> str:
    """``"<topic>-<partition>"``: the state key of an input partition."""
    return f"{tp.topic}-{tp.partition}"


class StateStore(Protocol):
    def load(self, tps: Iterable, restore: Restore[_T]) -> dict[Any, _T]: ...
    def save(self, tp, payload: bytes, meta: dict[str, Any]) -> None: ...
    def flush(self) -> None: ...
    def release(self, tps: Iterable) -> None: ...
    def close(self) -> None: ...


class DirectoryStateStore:
    """One checkpoint directory per partition: ``root/<topic>-<partition>/ckpt-*.slc``.

    `save` is durable when it returns (fsync + rename), so `flush` has nothing to do. A
    partition's directory is locked from its first use until `release` (a revoke) or `close`,
    so an instance that still writes a partition the group gave to another (a zombie, or a
    second group reading the same topic into the same directory) is refused.
    """

    def __init__(self, root: str | os.PathLike[str], keep: int = 3):
        self.root = Path(root)
        self.keep = keep
        prepare_dir(self.root)  # fail at start-up, not at the first assignment or checkpoint
        self._stores: dict[str, DirectoryStore] = {}

    def _store(self, tp) -> DirectoryStore:
        key = partition_key(tp)
        store = self._stores.get(key)
        if store is None:
            store = self._stores[key] = DirectoryStore(self.root / key, keep=self.keep)
        return store

    def load(self, tps: Iterable, restore: Restore[_T]) -> dict[Any, _T]:
        out = {}
        for tp in tps:
            if not (self.root / partition_key(tp)).is_dir():
                continue
            loaded = self._store(tp).load_latest(partial(restore, tp))
            if loaded is not None:
                out[tp] = loaded
        return out

    def save(self, tp, payload: bytes, meta: dict[str, Any]) -> None:
        self._store(tp).save(payload, meta)

    def flush(self) -> None:
        pass

    def release(self, tps: Iterable) -> None:
        for tp in tps:
            store = self._stores.pop(partition_key(tp), None)
            if store is not None:
                store.close()

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()


class KafkaChangelogStore:
    """The latest snapshot per partition in a compacted Kafka topic.

    Snapshots can be megabytes, larger than Kafka's default 1 MB message limit, so each one
    is split into chunks of at most `chunk_bytes` (512 KiB) written under their own keys,
    followed by a small JSON manifest under the partition's key::

        key "<topic>-<partition>/<snapshot id>/<i>"  value: chunk i of the snapshot bytes
        key "<topic>-<partition>"                    value: {"snapshot", "chunks", "length",
                                                             "crc32c", "meta", "created"}

    (The payload's CRC-32C; manifests written before snapshot format 14 carry a "sha256"
    instead, and are still read.)

    A manifest is only written after its chunks, and a snapshot's chunks are deleted
    (tombstoned) only once two newer manifests are durable, so compaction never leaves a
    manifest without its chunks and the previous snapshot stays restorable. `load` falls back
    to it (or an older one whose chunks are still there) when the latest cannot be restored,
    and in exactly_once when the latest is ahead of the committed offsets: on a broker that
    shows aborted transactions to read_committed readers (Tansu), the snapshots of
    transactions that never committed. No broker or topic size settings need changing.

    The topic is created with ``cleanup.policy=compact`` (one partition; replication up to 3)
    if it does not exist; create it yourself for other settings. Restoring reads the whole
    topic up to its end and keeps the last value per key, so it also works on brokers that
    never compact (it is then slower as the topic grows).

    Snapshots go through the caller's `producer` (the daemon's own, so that in exactly_once
    they are in the transaction that commits their offsets); the store does not close it.
    """

    def __init__(self, client: Client, changelog_topic: str, producer: Producer, *, chunk_bytes: int = CHUNK_BYTES,
                 create: bool = True, flush_timeout_s: float = 60.0):
        self.client = client
        self.topic = changelog_topic
        self.chunk_bytes = chunk_bytes
        self.flush_timeout_s = flush_timeout_s
        if create and client.ensure_topic(changelog_topic, {"cleanup.policy": "compact"}):
            log.info("created changelog topic %s (cleanup.policy=compact)", changelog_topic)
        self.producer = producer
        self._current: dict[str, list[tuple[str, int]]] = {}  # key -> its live (snapshot id, chunks), oldest first
        self._obsolete: list[bytes] = []  # chunk keys to tombstone once the next flush succeeded

    # ------------------------------------------------------------------ store interface

    def save(self, tp, payload: bytes, meta: dict[str, Any]) -> None:
        key = partition_key(tp)
        snap = uuid.uuid4().hex[:16]
        n = max(1, -(-len(payload) // self.chunk_bytes))
        for i in range(n):
            chunk = payload[i * self.chunk_bytes:(i + 1) * self.chunk_bytes]
            self._send(f"{key}/{snap}/{i}".encode(), chunk)
        manifest = {"snapshot": snap, "chunks": n, "length": len(payload),
                    "crc32c": crc32c.crc32c(payload), "meta": meta, "created": time.time()}
        self._send(key.encode(), json.dumps(manifest, sort_keys=True).encode())
        live = self._current.setdefault(key, [])
        live.append((snap, n))
        while len(live) > 2:
            old, n_old = live.pop(0)
            self._obsolete.extend(f"{key}/{old}/{i}".encode() for i in range(n_old))

    def flush(self) -> None:
        """Block until every snapshot saved so far is acknowledged; raise if one failed."""
        self.producer.flush(self.flush_timeout_s)
        # The new manifests are durable: the chunks of the snapshots they replace can go.
        obsolete, self._obsolete = self._obsolete, []
        for chunk_key in obsolete:
            self._send(chunk_key, None)

    def load(self, tps: Iterable, restore: Restore[_T]) -> dict[Any, _T]:
        wanted = {partition_key(tp): tp for tp in tps}
        if not wanted:
            return {}
        manifests, chunks = self._read(set(wanted))
        out = {}
        for key, candidates in manifests.items():
            failures = []
            for raw in reversed(candidates):  # the latest first
                try:
                    snap, n, restored = self._restore(key, raw, chunks, partial(restore, wanted[key]))
                except CheckpointError as exc:
                    failures.append(str(exc))
                    continue
                if failures:
                    log.warning("%s; restored the older snapshot %s instead%s", failures[0], snap,
                                f" ({len(failures)} skipped)" if len(failures) > 1 else "")
                out[wanted[key]] = restored
                break
            else:
                older = f" (nor could the {len(failures) - 1} older ones)" if len(failures) > 1 else ""
                raise CheckpointError(f"{failures[0]}{older}: produce a tombstone (null value) for key {key} "
                                      "to start that partition afresh")
            # The restored snapshot is the one in force; the chunks of every other (older ones,
            # refused ones, those left by a crash between chunks and manifest) go.
            self._current[key] = [(snap, n)]
            self._obsolete.extend(f"{k}/{s}/{i}".encode() for (k, s, i) in chunks if k == key and s != snap)
        return out

    def _restore(self, key: str, raw: bytes, chunks, restore) -> tuple[str, int, Any]:
        """(snapshot id, chunks, restore(payload, meta)) of the manifest `raw`; CheckpointError
        if it is unusable."""
        try:
            manifest = json.loads(raw)
            snap, n, meta = manifest["snapshot"], int(manifest["chunks"]), manifest["meta"]
            length = manifest["length"]
            check = (crc32c.crc32c, manifest["crc32c"]) if "crc32c" in manifest else (_sha256, manifest["sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"changelog {self.topic}: the manifest of {key} is malformed ({exc})") from exc
        parts = [chunks.get((key, snap, i)) for i in range(n)]
        if any(p is None for p in parts):
            raise CheckpointError(f"changelog {self.topic}: snapshot {snap} of {key} misses chunks")
        payload = b"".join(parts)
        if len(payload) != length or check[0](payload) != check[1]:
            raise CheckpointError(f"changelog {self.topic}: snapshot {snap} of {key} is corrupt")
        try:
            return snap, n, restore(payload, meta)
        except Exception as exc:  # noqa: BLE001 - whatever the reason, an older snapshot may do
            raise CheckpointError(f"changelog {self.topic}: snapshot {snap} of {key} cannot be restored "
                                  f"({exc})") from exc

    def release(self, tps: Iterable) -> None:
        pass  # any instance may take a partition over; exactly_once fences out a zombie

    def close(self) -> None:
        pass  # the producer is the caller's to flush and close

    # ------------------------------------------------------------------ internals

    def _send(self, key: bytes, value: bytes | None) -> None:
        self.producer.send(self.topic, key, value)

    def _read(self, wanted: set[str]) -> tuple[dict[str, list[bytes]], dict[tuple[str, str, int], bytes]]:
        """The manifests since the last tombstone (oldest first; a compacted topic keeps the
        last) and the live chunks of each wanted key, reading up to the end."""
        manifests: dict[str, list[bytes]] = {}
        chunks: dict[tuple[str, str, int], bytes] = {}
        try:
            for raw_key, value in self.client.read_topic(self.topic, timeout_s=300):
                key = raw_key.decode("utf-8", "replace") if raw_key is not None else ""
                base, _, rest = key.partition("/")
                if base not in wanted:
                    continue
                if not rest:
                    if value is None:
                        manifests.pop(base, None)
                    else:
                        manifests.setdefault(base, []).append(value)
                    continue
                snap, _, idx = rest.partition("/")
                ck = (base, snap, int(idx))
                if value is None:
                    chunks.pop(ck, None)
                else:
                    chunks[ck] = value
        except TimeoutError as exc:
            raise CheckpointError(f"changelog {self.topic}: restore failed: {exc}") from exc
        return manifests, chunks

