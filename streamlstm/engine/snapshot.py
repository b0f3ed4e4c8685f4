"""Snapshot format: named numpy arrays plus JSON metadata in one blob, no pickle.

Since format 14 the blob is this container (formats 6 to 13 were `.npz` archives, which
`unpack` still reads):

    magic        8 bytes, b"SLSNAP1\\n"
    header_len   uint32, little-endian
    header_crc   uint32, CRC-32C of the header
    header       UTF-8 JSON, space-padded so that the data starts at a multiple of 64:
                 {"meta": {...}, "arrays": [[name, dtype, shape, offset], ...],
                  "data_length": n, "data_crc32c": c}
    data         each array's bytes in C order at its offset (a multiple of 64), zero padding

`np.savez` wrote each array through `zipfile` with a zlib CRC and several copies: 13 ms
for a pool of 50 per_stream streams (2.5 MB), once per partition at every checkpoint of
the daemon; this copies each array once and checksums it once (docs/benchmarks.md,
"Snapshots").

The metadata carries `format_version`; readers refuse versions they do not know instead of
guessing, and upgrade the older ones they do (`READS`: MultiStreamDetector.from_bytes says
how). Arrays round-trip bit for bit, which is what makes restore-then-continue give the
same outputs as never stopping.
"""

from __future__ import annotations

import io
import json
import math
import struct
from typing import Any

import crc32c
import numpy as np

FORMAT_VERSION = 27  # what each version changed: docs/architecture.md, "Snapshot format versions"
READS = tuple(range(6, FORMAT_VERSION + 1))  # the versions `unpack` accepts
_MAGIC = b"SLSNAP1\n"
_PREFIX = struct.Struct("<8sII")  # magic, header_len, header_crc
_ALIGN = 64
_KINDS = "biuf"  # bool, integers, floats: nothing that needs pickle
_NPZ_META_KEY = "__meta__"  # formats 6 to 13


class SnapshotError(ValueError):
    """A snapshot that cannot be read: corrupt, or of an unknown format version."""


def _padded(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def pack(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    """`arrays` (numeric or bool, any shape) and JSON-able `meta` as one snapshot blob.
    Each array is copied once, into the blob."""
    table, parts, size, crc = [], [], 0, 0
    for name, a in arrays.items():
        if a.dtype.kind not in _KINDS:
            raise TypeError(f"snapshot array {name!r} has dtype {a.dtype}: only bool, integers and floats")
        table.append([name, a.dtype.str, list(a.shape), size])
        raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        pad = bytes(_padded(raw.size) - raw.size)
        parts += (raw, pad)
        crc = crc32c.crc32c(pad, crc32c.crc32c(raw, crc))
        size += raw.size + len(pad)
    header = json.dumps({"meta": {**meta, "format_version": FORMAT_VERSION}, "arrays": table,
                         "data_length": size, "data_crc32c": crc}, sort_keys=True).encode()
    header += b" " * (_padded(_PREFIX.size + len(header)) - _PREFIX.size - len(header))
    return b"".join((_PREFIX.pack(_MAGIC, len(header), crc32c.crc32c(header)), header, *parts))


def unpack(data: bytes | memoryview | np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata of a snapshot blob (any bytes-like object, such as a nested
    snapshot's uint8 array). The arrays of format 14 on are views of `data`, without a copy;
    copy one to change it."""
    data = memoryview(data).cast("B")
    if data[:2] == b"PK":
        arrays, meta = _unpack_npz(data)
    elif data[:8] == _MAGIC:
        arrays, meta = _unpack(data)
    else:
        raise SnapshotError(f"not a snapshot (starts with {bytes(data[:16])!r})")
    if meta.get("format_version") not in READS:
        raise SnapshotError(f"unsupported snapshot format_version {meta.get('format_version')!r}"
                            f" (this version reads {', '.join(map(str, READS))})")
    return arrays, meta


def _unpack(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if len(data) < _PREFIX.size:
        raise SnapshotError(f"truncated snapshot: {len(data)} bytes")
    _, header_len, header_crc = _PREFIX.unpack_from(data)
    start = _PREFIX.size + header_len
    header = data[_PREFIX.size:start].tobytes()
    if len(header) != header_len or crc32c.crc32c(header) != header_crc:
        raise SnapshotError("corrupt snapshot: header truncated or checksum mismatch")
    try:
        head = json.loads(header)
        body = np.frombuffer(data, dtype=np.uint8, offset=start)
        if body.size != head["data_length"] or crc32c.crc32c(body) != head["data_crc32c"]:
            raise SnapshotError(f"corrupt snapshot: {body.size} data bytes where {head['data_length']} "
                                "were written, or checksum mismatch")
        arrays = {}
        for name, dtype, shape, at in head["arrays"]:
            dt = np.dtype(dtype)
            if dt.kind not in _KINDS:
                raise SnapshotError(f"snapshot array {name!r} has dtype {dt}: only bool, integers and floats")
            if not all(type(n) is int and n >= 0 for n in (*shape, at)):
                raise SnapshotError(f"snapshot array {name!r}: shape {shape} and offset {at} are not counts")
            count = math.prod(shape)
            if at + count * dt.itemsize > body.size:
                raise SnapshotError(f"snapshot array {name!r} extends past the data")
            arrays[name] = np.frombuffer(data, dtype=dt, count=count, offset=start + at).reshape(shape)
        return arrays, head["meta"]
    except SnapshotError:
        raise
    except Exception as exc:  # a header that checks out but does not describe its data
        raise SnapshotError(f"unreadable snapshot: {exc}") from exc


def _unpack_npz(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return arrays, json.loads(arrays.pop(_NPZ_META_KEY).tobytes())
    except Exception as exc:  # zipfile, json and numpy raise a variety of errors
        raise SnapshotError(f"unreadable snapshot: {exc}") from exc
