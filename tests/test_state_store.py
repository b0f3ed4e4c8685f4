"""The Kafka daemon's state stores fall back past a snapshot the daemon cannot restore (the
directory store to any of the `keep` newest, the changelog to the previous one); without one
it is a clear error."""

import hashlib
import json
import uuid

import pytest

from streamlstm.config import Config, KafkaConfig
from streamlstm.io.checkpoint import CheckpointError
from streamlstm.kafka.client import TP, open_client
from streamlstm.kafka.daemon import PartitionState
from streamlstm.kafka.state_store import DirectoryStateStore, KafkaChangelogStore


def restore(tp, payload, meta):
    """What the daemon does with a partition's snapshot on assignment."""
    state = PartitionState.fresh(tp, Config())
    state.restore(payload)
    return state


def snapshot(tp, next_offset):
    state = PartitionState.fresh(tp, Config())
    state.next_offset = next_offset
    return state.snapshot()


def test_directory_store_falls_back_past_a_snapshot_it_cannot_restore(tmp_path, caplog):
    store = DirectoryStateStore(tmp_path / "state")
    tp = TP("t", 0)
    store.save(tp, *snapshot(tp, 42))
    store.save(tp, b"valid checksums, not a snapshot", {})
    loaded = store.load([tp, TP("t", 1)], restore)
    assert list(loaded) == [tp] and loaded[tp].next_offset == 42
    assert "cannot restore it" in caplog.text


def test_a_partition_directory_has_one_writer_until_it_is_revoked(tmp_path):
    """Two instances on one state directory (a zombie that has not seen its revoke, or a
    second group on the same topic): the partition's second writer is refused until the
    first releases it."""
    first, second = DirectoryStateStore(tmp_path), DirectoryStateStore(tmp_path)
    tp, other = TP("t", 0), TP("t", 1)
    first.save(tp, *snapshot(tp, 10))
    second.save(other, *snapshot(other, 5))  # another partition's directory is free
    with pytest.raises(CheckpointError, match="state directory .*t-0 is in use"):
        second.load([tp], restore)
    first.release([tp])
    assert second.load([tp], restore)[tp].next_offset == 10
    with pytest.raises(CheckpointError, match="in use"):
        first.save(tp, *snapshot(tp, 11))
    second.close()
    first.save(tp, *snapshot(tp, 11))


def test_directory_store_checks_its_root_is_writable_at_start(tmp_path):
    (tmp_path / "file").write_text("a regular file")
    with pytest.raises(CheckpointError, match="cannot write checkpoints to .*Not a directory"):
        DirectoryStateStore(tmp_path / "file" / "state")


@pytest.fixture
def changelog(kafka_broker, kafka_client):
    """(client, a fresh changelog topic's name, a producer) on the test broker."""
    client = open_client(KafkaConfig(client=kafka_client, bootstrap_servers=(kafka_broker.bootstrap,)))
    producer = client.producer("test")
    try:
        yield client, f"changelog-{uuid.uuid4().hex[:8]}", producer
    finally:
        producer.close()


def test_changelog_falls_back_to_the_previous_snapshot_then_is_a_clear_error(changelog, caplog):
    client, topic, producer = changelog
    good, bad = TP("t", 0), TP("t", 1)
    writer = KafkaChangelogStore(client, topic, producer)
    for offset in (5, 7):
        writer.save(good, *snapshot(good, offset))
        writer.flush()
    writer.save(good, b"valid checksum, not a snapshot", {})
    writer.save(bad, b"valid checksum, not a snapshot", {})
    writer.flush()  # (tombstones the chunks of 5: two newer manifests are durable)
    reader = KafkaChangelogStore(client, topic, producer)
    assert reader.load([good], restore)[good].next_offset == 7
    assert "of t-0 cannot be restored" in caplog.text and "restored the older snapshot" in caplog.text
    with pytest.raises(CheckpointError, match=f"changelog {topic}: snapshot \\w+ of t-1 cannot be restored"):
        reader.load([good, bad], restore)
    # The restore refusing the latest (as the daemon does one ahead of the committed offsets) is the same.
    refuse_7 = lambda tp, payload, meta: restore(tp, payload, meta) if meta["next_offset"] != 7 else 1 / 0
    writer.save(good, *snapshot(good, 9))
    writer.flush()
    writer.save(good, *snapshot(good, 7))
    writer.flush()
    assert reader.load([good], refuse_7)[good].next_offset == 9


def test_changelog_reads_manifests_with_a_sha256_and_refuses_a_wrong_checksum(changelog):
    """Manifests written before snapshot format 14 carry the payload's SHA-256 instead of its
    CRC-32C; both are checked."""
    client, topic, producer = changelog
    old, damaged = TP("t", 0), TP("t", 1)
    writer = KafkaChangelogStore(client, topic, producer)
    for tp, offset in ((old, 5), (damaged, 6)):
        payload, meta = snapshot(tp, offset)
        writer._send(f"t-{tp.partition}/legacy/0".encode(), payload)
        digest = hashlib.sha256(payload if tp == old else payload + b"!").hexdigest()
        manifest = {"snapshot": "legacy", "chunks": 1, "length": len(payload), "sha256": digest, "meta": meta,
                    "created": 0.0}
        writer._send(f"t-{tp.partition}".encode(), json.dumps(manifest).encode())
    writer.flush()
    reader = KafkaChangelogStore(client, topic, producer)
    assert reader.load([old], restore)[old].next_offset == 5
    with pytest.raises(CheckpointError, match="snapshot legacy of t-1 is corrupt"):
        reader.load([damaged], restore)
    writer.save(damaged, *snapshot(damaged, 8))
    writer.flush()
    latest = [v for k, v in client.read_topic(topic, 10.0) if k == b"t-1"][-1]
    assert "crc32c" in json.loads(latest) and "sha256" not in json.loads(latest)
    assert reader.load([damaged], restore)[damaged].next_offset == 8
