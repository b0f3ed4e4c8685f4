"""The snapshot container (engine/snapshot.py): round trips, the older `.npz` format, and
damaged blobs, which fail with SnapshotError naming what is wrong."""
import io
import json

import numpy as np
import pytest

from streamlstm.engine import snapshot
from streamlstm.engine.snapshot import SnapshotError
from streamlstm.multistream import MultiStreamDetector

ARRAYS = {
    "floats": np.arange(12, dtype=np.float64).reshape(3, 4) / 7,
    "halves": np.float16([0.5, -1.25, np.inf]),
    "bits": np.uint16([1, 65535]),
    "flags": np.array([True, False, True]),
    "big_endian": np.arange(5, dtype=">i4"),
    "scalar": np.array(3.5),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "strided": np.arange(20, dtype=np.int64)[::3],
    "last_empty": np.zeros(0),
}


def test_arrays_and_metadata_round_trip_bit_for_bit():
    arrays, meta = snapshot.unpack(snapshot.pack(ARRAYS, {"kind": "test", "ids": ["a", "b"]}))
    assert meta == {"kind": "test", "ids": ["a", "b"], "format_version": snapshot.FORMAT_VERSION}
    assert list(arrays) == list(ARRAYS)
    for name, want in ARRAYS.items():
        got = arrays[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert got.tobytes() == np.ascontiguousarray(want).tobytes(), name


def test_the_same_state_packs_to_the_same_bytes_with_aligned_arrays():
    blob = snapshot.pack(ARRAYS, {"kind": "test"})
    assert blob == snapshot.pack(ARRAYS, {"kind": "test"})
    arrays, _ = snapshot.unpack(blob)
    base = np.frombuffer(blob, dtype=np.uint8).ctypes.data
    assert all((a.ctypes.data - base) % 64 == 0 for a in arrays.values() if a.size)


def test_format_13_npz_snapshots_still_read():
    buf = io.BytesIO()
    meta = np.frombuffer(json.dumps({"kind": "test", "format_version": 13}).encode(), dtype=np.uint8)
    np.savez(buf, floats=ARRAYS["floats"], __meta__=meta)
    arrays, got = snapshot.unpack(buf.getvalue())
    assert got == {"kind": "test", "format_version": 13}
    np.testing.assert_array_equal(arrays["floats"], ARRAYS["floats"])


def test_a_detector_snapshot_holds_each_array_once():
    """Its size is the arrays' bytes, their alignment and one header."""
    det = MultiStreamDetector(2, seed=0)
    det.process(["a", "b"] * 50, np.random.default_rng(0).normal(size=(100, 2)))
    blob = det.to_bytes()
    arrays, _ = snapshot.unpack(blob)
    assert len(blob) < sum(a.nbytes for a in arrays.values()) + 64 * len(arrays) + 4096


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="dtype object"):
        snapshot.pack({"o": np.array([{}], dtype=object)}, {})


def _damaged(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x40]) + blob[at + 1:]


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"garbage", "not a snapshot"),
    (lambda b: b[:12], "truncated snapshot"),
    (lambda b: _damaged(b, 20), "header truncated or checksum mismatch"),
    (lambda b: b[:-1], "data bytes where"),
    (lambda b: _damaged(b, len(b) - 40), "checksum mismatch"),
    (lambda b: b"PK\x03\x04" + b[4:], "unreadable snapshot"),
])
def test_a_damaged_snapshot_raises_snapshot_error(damage, message):
    blob = snapshot.pack(ARRAYS, {"kind": "test"})
    with pytest.raises(SnapshotError, match=message):
        snapshot.unpack(damage(blob))


def _forged(blob: bytes, old: bytes, new: bytes) -> bytes:
    """`blob` with `old` replaced by `new` in its header, whose checksum is made to hold."""
    header_len = int.from_bytes(blob[8:12], "little")
    header = blob[16:16 + header_len].replace(old, new).rstrip(b" ").ljust(header_len)  # in its padding
    return blob[:12] + snapshot.crc32c.crc32c(header).to_bytes(4, "little") + header + blob[16 + header_len:]


def test_a_newer_format_is_refused_by_version():
    now = f'"format_version": {snapshot.FORMAT_VERSION}'.encode()
    with pytest.raises(SnapshotError, match="format_version 99"):
        snapshot.unpack(_forged(snapshot.pack({}, {"kind": "test"}), now, b'"format_version": 99'))


@pytest.mark.parametrize("shape, message", [(b"[-1]", "are not counts"), (b"[9999]", "extends past the data"),
                                            (b"[1.5]", "are not counts")])
def test_a_header_that_does_not_describe_its_data_is_refused(shape, message):
    """Checksums hold (a forged header, not a damaged one), yet no array may reach past the data."""
    blob = snapshot.pack({"a": np.zeros(3)}, {"kind": "test"})
    with pytest.raises(SnapshotError, match=message):
        snapshot.unpack(_forged(blob, b'["a", "<f8", [3], 0]', b'["a", "<f8", ' + shape + b', 0]'))


@pytest.mark.parametrize("name, change", [("stream.h", lambda a: a[:, :-1]), ("stream.stats", lambda a: a[:-1]),
                                          ("stream.ring", None)])
def test_a_detector_snapshot_with_a_table_of_another_shape_is_refused(name, change):
    """Rows and columns are checked against the detector's layout, not broadcast."""
    det = MultiStreamDetector(1, seed=0)
    det.process(["a", "b", "c"] * 10, np.zeros((30, 1)))
    arrays, meta = snapshot.unpack(det.to_bytes())
    arrays = dict(arrays)
    if change is None:
        del arrays[name]
    else:
        arrays[name] = change(arrays[name])
    with pytest.raises(SnapshotError, match=f"incompatible version: {name} "):
        MultiStreamDetector.from_bytes(snapshot.pack(arrays, {k: v for k, v in meta.items() if k != "format_version"}))
