import hashlib
import json
import logging
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from faults import full_disk_for_checkpoints

from streamlstm.io.checkpoint import MAGIC, CheckpointError, DirectoryStore


def names(path):
    """The directory's files but the store's lock."""
    return sorted(p.name for p in path.iterdir() if p.name != "lock")


def test_round_trip(tmp_path):
    store = DirectoryStore(tmp_path / "state")
    assert store.load_latest() is None
    payload = bytes(range(256)) * 100
    path = store.save(payload, {"offsets": {"t-0": 41}, "events": 7})
    assert path.name == "ckpt-000000000001.slc"
    assert path.read_bytes().startswith(MAGIC)
    assert store.load_latest() == (payload, {"offsets": {"t-0": 41}, "events": 7})
    # A new store on the same directory (a restart) sees it and continues the numbering.
    store.close()
    again = DirectoryStore(tmp_path / "state")
    assert again.load_latest()[0] == payload
    assert again.save(b"next", {}).name == "ckpt-000000000002.slc"
    assert again.load_latest() == (b"next", {})


def test_one_writer_at_a_time(tmp_path):
    """A second writer of a directory — another process, or another store in this one — is
    refused at once, naming the first; `close` (or the holder's end) lets the next one in."""
    store = DirectoryStore(tmp_path)
    store.save(b"one", {})
    with pytest.raises(CheckpointError, match=rf"state directory {tmp_path} is in use \(locked by "
                                              rf"pid {os.getpid()} on .*\): one process at a time"):
        DirectoryStore(tmp_path)
    other = subprocess.run([sys.executable, "-c", "import sys; from streamlstm.io.checkpoint import DirectoryStore; "
                            "DirectoryStore(sys.argv[1])", str(tmp_path)], capture_output=True, text=True)
    assert other.returncode == 1 and f"locked by pid {os.getpid()}" in other.stderr
    store.close()
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from streamlstm.io.checkpoint import DirectoryStore; "
                               "s = DirectoryStore(sys.argv[1]); print(flush=True); sys.stdin.read()", str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        with pytest.raises(CheckpointError, match=f"locked by pid {holder.pid} on "):
            DirectoryStore(tmp_path)
    finally:
        holder.communicate("")  # it ends, and the lock with it
    assert DirectoryStore(tmp_path).load_latest()[0] == b"one"
    assert (tmp_path / "lock").read_text().startswith("pid ")


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
    with caplog.at_level(logging.WARNING, logger="streamlstm.io.checkpoint"):
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


def with_version(path, version, crc_rule="whole"):
    """Rewrite a checkpoint with another format version, its CRC computed as that version
    would: over the 12 bytes before the CRC plus the header ("whole", every version from 2
    on, as the module docstring promises), or over the header alone (version 1)."""
    data = path.read_bytes()
    header_len = struct.unpack_from(">I", data, 8)[0]
    header, payload = data[16:16 + header_len], data[16 + header_len:]
    if version < 3:  # versions 1 and 2 checksum the payload with SHA-256
        head = json.loads(header)
        del head["crc32c"]
        header = json.dumps({**head, "sha256": hashlib.sha256(payload).hexdigest()}).encode()
        header_len = len(header)
    fields = MAGIC + struct.pack(">HI", version, header_len)
    crc = zlib.crc32(fields + header) if crc_rule == "whole" else zlib.crc32(header)
    path.write_bytes(fields + struct.pack(">I", crc) + header + payload)


@pytest.mark.parametrize("offset", range(16))  # magic, version, header length, header CRC
def test_any_damaged_byte_before_the_header_is_corruption(tmp_path, caplog, offset):
    """A flipped version byte used to read as "format version 254 is newer" and stop the restart."""
    store = DirectoryStore(tmp_path)
    store.save(b"good", {"n": 1})
    latest = store.save(b"newer", {"n": 2})
    data = bytearray(latest.read_bytes())
    data[offset] ^= 0xFF
    latest.write_bytes(bytes(data))
    assert store.load_latest() == (b"good", {"n": 1})
    assert latest.name in caplog.text


def test_version_1_files_are_still_read(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    old = store.save(b"written by 0.1", {"n": 1})
    with_version(old, 1, crc_rule="header")
    assert store.load_latest() == (b"written by 0.1", {"n": 1})
    data = bytearray(old.read_bytes())
    data[7] ^= 0xFF  # a damaged version field of a version-1 file is corruption too
    old.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="none of the 1 checkpoints"):
        store.load_latest()


def test_version_2_files_with_a_sha256_are_still_read(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    old = store.save(b"written with a SHA-256", {"n": 1})
    with_version(old, 2)
    assert b'"sha256"' in old.read_bytes() and b'"crc32c"' not in old.read_bytes()
    assert store.load_latest() == (b"written with a SHA-256", {"n": 1})
    data = bytearray(old.read_bytes())
    data[-1] ^= 0x01
    old.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="none of the 1 checkpoints"):
        store.load_latest()
    assert "payload checksum mismatch" in caplog.text


def test_newer_format_with_older_good_checkpoints_falls_back(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    store.save(b"good", {"n": 1})
    with_version(store.save(b"from the future", {"n": 2}), 99)
    with caplog.at_level(logging.WARNING, logger="streamlstm.io.checkpoint"):
        assert store.load_latest() == (b"good", {"n": 1})
    assert "newer streamlstm" in caplog.text and "format version 99" in caplog.text


@pytest.mark.parametrize("older", ["none", "corrupt"])
def test_newer_format_and_nothing_usable_says_to_upgrade(tmp_path, older):
    store = DirectoryStore(tmp_path)
    first = store.save(b"a", {})
    if older == "corrupt":
        first.write_bytes(b"junk")
    else:
        with_version(first, 98)
    with_version(store.save(b"b", {}), 99)
    with pytest.raises(CheckpointError, match=r"format version 99\b.*upgrade streamlstm"):
        store.load_latest()


def test_a_checkpoint_the_caller_cannot_use_is_skipped(tmp_path, caplog):
    store = DirectoryStore(tmp_path)
    store.save(b"usable", {"n": 1})
    latest = store.save(b"valid checksums, wrong contents", {"n": 2})

    def restore(payload, meta):
        if payload != b"usable":
            raise ValueError("not a snapshot")
        return meta["n"]

    assert store.load_latest(restore) == 1
    assert latest.name in caplog.text and "not a snapshot" in caplog.text
    store.save(b"also wrong", {"n": 3})
    (tmp_path / "ckpt-000000000001.slc").unlink()
    with pytest.raises(CheckpointError, match="none of the 2 checkpoints .* is usable"):
        store.load_latest(restore)


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


def test_unwritable_directory_fails_at_start_with_what_to_do(tmp_path):
    (tmp_path / "file").write_text("a regular file")
    with pytest.raises(CheckpointError, match=r"cannot write checkpoints to .*file/state: Not a directory "
                                              r"\(errno 20\); make the directory writable or choose another"):
        DirectoryStore(tmp_path / "file" / "state")


def test_directory_even_root_cannot_write_fails_at_start():
    """sysfs refuses new files to everyone, root included (the tests run as root)."""
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no /sys")
    with pytest.raises(CheckpointError, match=r"cannot write checkpoints to /sys/kernel: .*\(errno \d+\)"):
        DirectoryStore("/sys/kernel")


def test_disk_full_says_how_much_room_keep_plus_one_checkpoints_need(tmp_path, monkeypatch):
    payload = b"x" * 1000
    size = DirectoryStore(tmp_path / "elsewhere").save(payload, {}).stat().st_size
    store = DirectoryStore(tmp_path / "state", keep=3)
    store.save(b"old", {})

    full_disk_for_checkpoints(monkeypatch)
    with pytest.raises(CheckpointError) as err:
        store.save(payload, {})
    message = str(err.value)
    assert "No space left on device (errno 28)" in message
    # The header's `created` time is a float whose repr may differ in length by a few digits.
    found = re.search(r"keep \+ 1 = 4 checkpoints of (\d+) bytes", message)
    assert found and abs(int(found.group(1)) - size) < 5, message
    assert names(tmp_path / "state") == ["ckpt-000000000001.slc"]  # no temporary file left, the old one kept


def test_a_restore_that_refuses_with_checkpoint_error_ends_the_load(tmp_path):
    """A sound checkpoint of another kind of state: no fallback to an older one (which would
    be of that kind too), the restore's own message instead."""
    store = DirectoryStore(tmp_path)
    store.save(b"old", {})
    store.save(b"new", {})
    tried = []

    def refuse(payload, meta):
        tried.append(bytes(payload))
        raise CheckpointError("written for JSON lines input")

    with pytest.raises(CheckpointError, match="written for JSON lines input"):
        store.load_latest(refuse)
    assert tried == [b"new"]


def test_a_directory_named_like_a_checkpoint_is_not_one(tmp_path, caplog):
    """It made every save fail ('cannot write checkpoints ...: Is a directory') after the new
    checkpoint was written, and nothing was pruned."""
    (tmp_path / "ckpt-000000000099.slc").mkdir()
    store = DirectoryStore(tmp_path, keep=2)
    for i in range(3):
        store.save(bytes([i]), {})
    assert names(tmp_path) == ["ckpt-000000000002.slc", "ckpt-000000000003.slc", "ckpt-000000000099.slc"]
    assert store.load_latest()[0] == b"\x02"
    assert not caplog.records


def test_an_old_checkpoint_that_cannot_be_removed_is_a_warning(tmp_path, caplog, monkeypatch):
    store = DirectoryStore(tmp_path, keep=1)
    store.save(b"one", {})
    real_unlink = Path.unlink

    def refuse(path, missing_ok=False):
        if path.name == "ckpt-000000000001.slc":
            raise PermissionError(13, "Permission denied")
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    store.save(b"two", {})  # written: the old one stays, said
    assert store.load_latest()[0] == b"two"
    assert "cannot remove the old checkpoint" in caplog.text and "Permission denied" in caplog.text
