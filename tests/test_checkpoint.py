import logging
import struct

import pytest

from streamlstm.checkpoint import MAGIC, CheckpointError, DirectoryStore


def names(path):
    return sorted(p.name for p in path.iterdir())


def test_round_trip(tmp_path):
    store = DirectoryStore(tmp_path / "state")
    assert store.load_latest() is None
    payload = bytes(range(256)) * 100
    path = store.save(payload, {"offsets": {"t-0": 41}, "events": 7})
    assert path.name == "ckpt-000000000001.slc"
    assert path.read_bytes().startswith(MAGIC)
    assert store.load_latest() == (payload, {"offsets": {"t-0": 41}, "events": 7})
    # A new store on the same directory (a restart) sees it and continues the numbering.
    again = DirectoryStore(tmp_path / "state")
    assert again.load_latest()[0] == payload
    assert again.save(b"next", {}).name == "ckpt-000000000002.slc"
    assert again.load_latest() == (b"next", {})


def test_empty_payload(tmp_path):
    store = DirectoryStore(tmp_path)
    store.save(b"", {})
    assert store.load_latest() == (b"", {})


def test_keeps_last_n(tmp_path):
    store = DirectoryStore(tmp_path, keep=2)
    for i in range(5):
        store.save(b"p%d" % i, {"i": i})
    assert names(tmp_path) == ["ckpt-000000000004.slc", "ckpt-000000000005.slc"]
    assert store.load_latest() == (b"p4", {"i": 4})


def test_truncated_latest_falls_back_with_warning(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    store.save(b"good" * 1000, {"n": 1})
    latest = store.save(b"newer" * 1000, {"n": 2})
    latest.write_bytes(latest.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING, logger="streamlstm.checkpoint"):
        assert store.load_latest() == (b"good" * 1000, {"n": 1})
    assert latest.name in caplog.text and "truncated" in caplog.text


@pytest.mark.parametrize("cut", [0, 3, 10, 20])
def test_truncated_inside_prefix_or_header(tmp_path, caplog, cut):
    store = DirectoryStore(tmp_path)
    store.save(b"good", {})
    latest = store.save(b"newer", {"pad": "x" * 100})
    latest.write_bytes(latest.read_bytes()[:cut])
    assert store.load_latest() == (b"good", {})
    assert latest.name in caplog.text


def test_bad_payload_checksum(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    store.save(b"good", {})
    latest = store.save(b"newer", {})
    data = bytearray(latest.read_bytes())
    data[-1] ^= 0xFF
    latest.write_bytes(bytes(data))
    assert store.load_latest() == (b"good", {})
    assert "payload checksum mismatch" in caplog.text


def test_bad_header_checksum(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    store.save(b"good", {"offset": 1})
    latest = store.save(b"newer", {"offset": 2})
    latest.write_bytes(latest.read_bytes().replace(b'"offset": 2', b'"offset": 3'))
    assert store.load_latest() == (b"good", {"offset": 1})
    assert "header checksum mismatch" in caplog.text


def test_wrong_magic(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    store.save(b"good", {})
    latest = store.save(b"newer", {})
    latest.write_bytes(b"PK\x03\x04" + latest.read_bytes()[4:])
    assert store.load_latest() == (b"good", {})
    assert "not a streamlstm checkpoint" in caplog.text


def test_newer_format_version_is_an_error(tmp_path):
    store = DirectoryStore(tmp_path)
    store.save(b"good", {})
    latest = store.save(b"newer", {})
    data = latest.read_bytes()
    latest.write_bytes(data[:6] + struct.pack(">H", 99) + data[8:])
    with pytest.raises(CheckpointError, match="format version 99"):
        store.load_latest()


def test_all_unreadable_is_an_error(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    store.save(b"a", {}).write_bytes(b"junk")
    store.save(b"b", {}).write_bytes(b"")
    with pytest.raises(CheckpointError, match="none of the 2 checkpoints"):
        store.load_latest()
    assert caplog.text.count("skipping checkpoint") == 2


def test_leftover_temp_files_are_removed_and_ignored(tmp_path):
    (tmp_path / "ckpt-000000000009.slc.tmp").write_bytes(b"half written")
    (tmp_path / "notes.txt").write_text("not ours")
    store = DirectoryStore(tmp_path)
    assert store.load_latest() is None
    assert names(tmp_path) == ["notes.txt"]
    assert store.save(b"x", {}).name == "ckpt-000000000001.slc"


def test_meta_must_be_json(tmp_path):
    store = DirectoryStore(tmp_path)
    with pytest.raises(TypeError):
        store.save(b"x", {"bad": object()})
    assert names(tmp_path) == []


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        DirectoryStore(tmp_path, keep=0)
