"""A compiled CRC-32C for kafka-python, used when the `crc32c` C extension is not installed.

Every Kafka record batch (message format v2) carries a CRC-32C (Castagnoli) checksum: the
producer computes one for each batch it builds and the consumer verifies one for each batch
it reads (``check_crcs``). Without the optional ``crc32c`` package kafka-python computes it
in pure Python, one interpreter loop iteration per byte — on the daemon's workload that was
the largest single cost after the model itself (~13 µs per consumed event and more per
produced result, all holding the GIL).

`install()` replaces kafka-python's checksum function with a Numba-compiled table-driven
CRC-32C (the same table and algorithm, ~50× faster), after checking it against
kafka-python's own implementation. It does nothing when the C extension is present (that
one is faster still) or when kafka-python's internals are not the expected ones.
"""

from __future__ import annotations

import logging

import numpy as np
from numba import njit

__all__ = ["crc32c", "install"]

log = logging.getLogger("streamlstm.kafka")


def _table() -> np.ndarray:
    poly = 0x82F63B78  # CRC-32C, reflected
    t = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t[i] = c
    return t


_TABLE = _table()


@njit(cache=True, nogil=True)
def _crc(buf, table):
    crc = np.uint32(0xFFFFFFFF)
    for i in range(buf.shape[0]):
        crc = table[(crc ^ buf[i]) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


def crc32c(data) -> int:
    """CRC-32C of bytes, bytearray or a (byte) memoryview."""
    buf = np.frombuffer(data, dtype=np.uint8)
    return int(_crc(buf, _TABLE))


_installed: str | None = None


def install() -> str:
    """Make kafka-python use a fast CRC-32C; returns which one is in use."""
    global _installed
    if _installed is not None:
        return _installed
    try:
        from kafka.record import default_records, util
    except ImportError:  # pragma: no cover - kafka-python missing
        _installed = "none"
        return _installed
    if getattr(util, "crc32c_c", None) is not None:
        _installed = "crc32c (C extension)"
        return _installed
    if not callable(getattr(default_records, "calc_crc32c", None)):  # pragma: no cover - other versions
        _installed = "kafka-python (pure Python)"
        log.warning("kafka-python internals changed: CRC-32C stays pure Python (slow); pip install crc32c")
        return _installed
    reference = util.calc_crc32c
    for sample in (b"", b"123456789", bytes(range(256)) * 3, memoryview(bytearray(b"kafka" * 99))[7:]):
        if crc32c(sample) != reference(sample):  # pragma: no cover - would be a bug here
            log.warning("compiled CRC-32C disagrees with kafka-python's: not used")
            _installed = "kafka-python (pure Python)"
            return _installed

    def calc_crc32c(memview):
        return int(_crc(np.frombuffer(memview, dtype=np.uint8), _TABLE))

    default_records.calc_crc32c = calc_crc32c
    util.calc_crc32c = calc_crc32c
    _installed = "compiled (numba)"
    return _installed
