"""Durable checkpoints: opaque payload bytes plus JSON metadata, one file per checkpoint.

File ``ckpt-<seq:012d>.slc`` layout (integers big-endian)::

    b"SLCKPT"        magic, 6 bytes
    version          uint16 (FORMAT_VERSION)
    header_length    uint32
    header_crc32     uint32, zlib.crc32 of the header bytes
    header           UTF-8 JSON: {"seq", "created", "payload_length", "sha256", "meta"}
    payload          payload_length bytes, sha256 as in the header

Files are written to a temporary name in the same directory, fsynced, renamed into place and
the directory fsynced, so a crash leaves either the old set of checkpoints or the new one,
never a half-written file under a checkpoint name. Reading still verifies everything,
because disks and people corrupt files too: a bad newest checkpoint is skipped with a
warning and the previous one is used. One writer per directory is assumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import time
import zlib
from pathlib import Path
from typing import Any

__all__ = ["CheckpointError", "DirectoryStore", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

MAGIC = b"SLCKPT"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">6sHII")  # magic, version, header length, header crc32
_NAME = re.compile(r"ckpt-(\d{12})\.slc")
_TMP_SUFFIX = ".tmp"


class CheckpointError(Exception):
    """Checkpoints exist but none can be used (or one needs a newer streamlstm)."""


class _Corrupt(Exception):
    """Internal: this file is unusable; the message says why."""


class DirectoryStore:
    """Checkpoints in a directory; keeps the newest `keep` files."""

    def __init__(self, path: str | os.PathLike[str], keep: int = 3):
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.path = Path(path)
        self.keep = keep
        self.path.mkdir(parents=True, exist_ok=True)
        # Leftovers of a crash in the middle of `save`; they were never checkpoints.
        for stale in self.path.glob(f"ckpt-*.slc{_TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
        existing = self._checkpoints()
        self._next_seq = existing[-1][0] + 1 if existing else 1

    def save(self, payload: bytes, meta: dict[str, Any]) -> Path:
        """Write a checkpoint durably and prune old ones; returns the new file's path."""
        seq = self._next_seq
        header = json.dumps({
            "seq": seq,
            "created": time.time(),
            "payload_length": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "meta": meta,
        }, sort_keys=True).encode()
        prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), zlib.crc32(header))

        final = self.path / f"ckpt-{seq:012d}.slc"
        tmp = final.with_name(final.name + _TMP_SUFFIX)
        try:
            with open(tmp, "wb") as fh:
                fh.write(prefix)
                fh.write(header)
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._fsync_dir()  # make the rename itself durable
        self._next_seq = seq + 1
        for _, old in self._checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return final

    def load_latest(self) -> tuple[bytes, dict[str, Any]] | None:
        """(payload, meta) of the newest readable checkpoint; None when there is none.

        Unreadable files are skipped with a warning. Raises CheckpointError when files exist
        but none is readable (starting from scratch silently would lose state), or when a file
        was written by a newer format version.
        """
        checkpoints = self._checkpoints()
        for _, path in reversed(checkpoints):
            try:
                return _read(path)
            except _Corrupt as exc:
                log.warning("skipping checkpoint %s: %s", path, exc)
        if checkpoints:
            raise CheckpointError(f"none of the {len(checkpoints)} checkpoints in {self.path} "
                                  "is readable (see warnings); move them away to start fresh")
        return None

    def _checkpoints(self) -> list[tuple[int, Path]]:
        found = []
        for entry in self.path.iterdir():
            match = _NAME.fullmatch(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
        return sorted(found)

    def _fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read(path: Path) -> tuple[bytes, dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Corrupt(f"cannot read: {exc.strerror}") from None
    if len(data) < _PREFIX.size:
        raise _Corrupt(f"truncated: {len(data)} bytes, shorter than the file prefix")
    magic, version, header_len, header_crc = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise _Corrupt(f"not a streamlstm checkpoint (magic {magic!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version} is newer than this "
                              f"streamlstm understands ({FORMAT_VERSION}); upgrade streamlstm")
    if version != FORMAT_VERSION:
        raise _Corrupt(f"unknown format version {version}")
    header_end = _PREFIX.size + header_len
    if len(data) < header_end:
        raise _Corrupt(f"truncated: header needs {header_end} bytes, file has {len(data)}")
    header_bytes = data[_PREFIX.size:header_end]
    if zlib.crc32(header_bytes) != header_crc:
        raise _Corrupt("header checksum mismatch")
    try:
        header = json.loads(header_bytes)
        expected_len = int(header["payload_length"])
        digest = header["sha256"]
        meta = header["meta"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _Corrupt(f"malformed header: {exc}") from None
    payload = data[header_end:]
    if len(payload) != expected_len:
        raise _Corrupt(f"{'truncated' if len(payload) < expected_len else 'trailing data'}: "
                       f"payload is {len(payload)} bytes, header says {expected_len}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise _Corrupt("payload checksum mismatch")
    return payload, meta
