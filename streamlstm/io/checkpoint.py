"""Durable checkpoints: opaque payload bytes plus JSON metadata, one file per checkpoint.

File ``ckpt-<seq:012d>.slc`` layout (integers big-endian)::

    b"SLCKPT"        magic, 6 bytes
    version          uint16 (FORMAT_VERSION)
    header_length    uint32
    header_crc32     uint32, zlib.crc32 of the 12 bytes above followed by the header
    header           UTF-8 JSON: {"seq", "created", "payload_length", "crc32c", "meta"}
    payload          payload_length bytes, its CRC-32C as in the header

Every format version keeps these four leading fields and this CRC rule, so a file whose CRC
holds but whose version is higher was written by a newer streamlstm, while a file whose CRC
fails is damaged — a flipped version byte included. Versions 1 (whose CRC covered the header
alone) and 2 (a SHA-256 of the payload, "sha256", which took 1.8 ms per 2.5 MB where CRC-32C
takes 0.1) are still read.

Files are written to a temporary name in the same directory, fsynced, renamed into place and
the directory fsynced, so a crash leaves either the old set of checkpoints or the new one,
never a half-written file under a checkpoint name. The directory is checked to be writable
when the store is opened, not at its first checkpoint. Reading still verifies everything,
because disks and people corrupt files too: an unreadable newest checkpoint — damaged,
from a newer streamlstm, or with a payload the caller cannot restore — is skipped with a
warning and the previous one is used. One writer per directory: a store holds an exclusive
`flock` on the directory's ``lock`` file (which names its holder) until `close` or the
process's end, and a second store of the same directory fails at once, naming the first.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import crc32c

__all__ = ["CheckpointError", "DirectoryStore", "FORMAT_VERSION", "prepare_dir"]

log = logging.getLogger(__name__)

MAGIC = b"SLCKPT"
FORMAT_VERSION = 3  # 2: the CRC covers the magic, version and header length too; 3: CRC-32C of the payload
_FIELDS = struct.Struct(">6sHI")  # magic, version, header length: covered by the CRC
_PREFIX = struct.Struct(">6sHII")  # the same, then the CRC
_NAME = re.compile(r"ckpt-(\d{12})\.slc")
_TMP_SUFFIX = ".tmp"
_PROBE = f"ckpt-probe.slc{_TMP_SUFFIX}"  # named like a temporary file, so a leftover is removed
_LOCK = "lock"

_T = TypeVar("_T")


class CheckpointError(Exception):
    """Checkpoints cannot be written, or exist but none can be used; the message says what to do."""


class _Corrupt(Exception):
    """Internal: this file is unusable; the message says why."""


class _Newer(Exception):
    """Internal: this file is intact but was written by a newer streamlstm."""

    def __init__(self, version: int):
        super().__init__(f"written by a newer streamlstm (format version {version}; "
                         f"this one reads up to {FORMAT_VERSION})")
        self.version = version


def _as_is(payload: memoryview, meta: dict[str, Any]) -> tuple[memoryview, dict[str, Any]]:
    return payload, meta


def prepare_dir(path: Path) -> None:
    """Create `path` if needed and check that a file can be written and fsynced there."""
    probe = path / _PROBE
    try:
        path.mkdir(parents=True, exist_ok=True)
        try:
            _write_file(probe, b"probe")
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc


def _cannot_write(path: Path, exc: OSError, room: str | None = None) -> CheckpointError:
    """The error for a failed write, saying what to do: `room` says how much space is needed."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = f"free space: {room} must fit" if room else "free some space"
    else:
        todo = "make the directory writable or choose another state directory"
    return CheckpointError(f"cannot write checkpoints to {path}: {exc.strerror or exc} "
                           f"(errno {exc.errno}); {todo}")


def _lock(path: Path) -> IO[str]:
    """An exclusive lock on the directory `path`, held while the returned file stays open."""
    lock = open(path / _LOCK, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "a process that has not written its name yet"
        lock.close()
        raise CheckpointError(f"the state directory {path} is in use (locked by {holder}): one process at a time "
                              "writes it; stop the other or choose another state directory") from None
    lock.truncate(0)
    lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    lock.flush()
    return lock


def _write_file(path: Path, *parts: bytes) -> None:
    with open(path, "wb") as fh:
        for part in parts:
            fh.write(part)
        fh.flush()
        os.fsync(fh.fileno())


class DirectoryStore:
    """Checkpoints in a directory; keeps the newest `keep` files."""

    def __init__(self, path: str | os.PathLike[str], keep: int = 3):
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.path = Path(path)
        self.keep = keep
        prepare_dir(self.path)
        self._lock: IO[str] | None = _lock(self.path)
        # Leftovers of a crash in the middle of `save`; they were never checkpoints.
        for stale in self.path.glob(f"ckpt-*.slc{_TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
        existing = self._checkpoints()
        self._next_seq = existing[-1][0] + 1 if existing else 1

    def close(self) -> None:
        """Release the directory to another writer; the store is not used afterwards."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def save(self, payload: bytes, meta: dict[str, Any]) -> Path:
        """Write a checkpoint durably and prune old ones; returns the new file's path.

        Raises CheckpointError when the file cannot be written.
        """
        seq = self._next_seq
        header = json.dumps({
            "seq": seq,
            "created": time.time(),
            "payload_length": len(payload),
            "crc32c": crc32c.crc32c(payload),
            "meta": meta,
        }, sort_keys=True).encode()
        fields = _FIELDS.pack(MAGIC, FORMAT_VERSION, len(header))
        crc = struct.pack(">I", zlib.crc32(header, zlib.crc32(fields)))

        final = self.path / f"ckpt-{seq:012d}.slc"
        tmp = final.with_name(final.name + _TMP_SUFFIX)
        try:
            try:
                _write_file(tmp, fields, crc, header, payload)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)  # gone after the rename; half-written otherwise
            self._fsync_dir()  # make the rename itself durable
            self._next_seq = seq + 1
        except OSError as exc:
            # The temporary file is written while the `keep` old checkpoints still exist.
            size = _PREFIX.size + len(header) + len(payload)
            raise _cannot_write(self.path, exc, f"keep + 1 = {self.keep + 1} checkpoints of {size} bytes "
                                                f"({(self.keep + 1) * size} bytes)") from exc
        for _, old in self._checkpoints()[: -self.keep]:
            try:
                old.unlink(missing_ok=True)
            except OSError as exc:  # the new checkpoint is written: an old one left over costs only space
                log.warning("cannot remove the old checkpoint %s: %s", old, exc.strerror or exc)
        return final

    def load_latest(self, restore: Callable[[memoryview, dict[str, Any]], _T] = _as_is) -> _T | None:
        """`restore(payload, meta)` of the newest usable checkpoint; None when there is none.
        The payload is a memoryview of the file's bytes (a snapshot restores from it in place).

        `restore` (by default returning ``(payload, meta)``) raises if it cannot use a
        checkpoint's payload. Unreadable files — damaged, written by a newer streamlstm, or
        refused by `restore` — are skipped with a warning. Raises CheckpointError when files
        exist but none is usable (starting from scratch silently would lose state), and passes
        on the CheckpointError of a `restore` that finds a sound checkpoint this run must not
        use, nor an older one (state of another kind of input).
        """
        checkpoints = self._checkpoints()
        newer = []
        for _, path in reversed(checkpoints):
            try:
                payload, meta = _read(path)
            except (_Corrupt, _Newer) as exc:
                if isinstance(exc, _Newer):
                    newer.append(exc.version)
                log.warning("skipping checkpoint %s: %s", path, exc)
                continue
            try:
                return restore(payload, meta)
            except CheckpointError:
                raise
            except Exception as exc:  # noqa: BLE001 - any reason not to use it is a reason to try the next
                log.warning("skipping checkpoint %s: cannot restore it: %s", path, exc)
                log.debug("restoring %s failed", path, exc_info=True)
        if newer:
            raise CheckpointError(f"no usable checkpoint in {self.path} (see warnings); some were written by a "
                                  f"newer streamlstm (format version {max(newer)}; this one reads up to "
                                  f"{FORMAT_VERSION}): upgrade streamlstm, or move them away to start fresh")
        if checkpoints:
            raise CheckpointError(f"none of the {len(checkpoints)} checkpoints in {self.path} "
                                  "is usable (see warnings); move them away to start fresh")
        return None

    def _checkpoints(self) -> list[tuple[int, Path]]:
        found = []
        for entry in self.path.iterdir():
            match = _NAME.fullmatch(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry))
        return sorted(found)

    def _fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read(path: Path) -> tuple[memoryview, dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Corrupt(f"cannot read: {exc.strerror}") from None
    if len(data) < _PREFIX.size:
        raise _Corrupt(f"truncated: {len(data)} bytes, shorter than the file prefix")
    magic, version, header_len, header_crc = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise _Corrupt(f"not a streamlstm checkpoint (magic {magic!r})")
    header_end = _PREFIX.size + header_len
    if len(data) < header_end:
        raise _Corrupt(f"truncated: header needs {header_end} bytes, file has {len(data)}")
    header_bytes = data[_PREFIX.size:header_end]
    covered = 0 if version == 1 else zlib.crc32(data[:_FIELDS.size])  # version 1: the header alone
    if zlib.crc32(header_bytes, covered) != header_crc:
        raise _Corrupt("header checksum mismatch")
    if version > FORMAT_VERSION:
        raise _Newer(version)
    if version < 1:
        raise _Corrupt(f"unknown format version {version}")
    try:
        header = json.loads(header_bytes)
        expected_len = int(header["payload_length"])
        digest = header["crc32c"] if version >= 3 else header["sha256"]
        meta = header["meta"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _Corrupt(f"malformed header: {exc}") from None
    payload = memoryview(data)[header_end:]  # no copy: a restore reads its arrays in place
    if len(payload) != expected_len:
        raise _Corrupt(f"{'truncated' if len(payload) < expected_len else 'trailing data'}: "
                       f"payload is {len(payload)} bytes, header says {expected_len}")
    if (crc32c.crc32c(payload) if version >= 3 else hashlib.sha256(payload).hexdigest()) != digest:
        raise _Corrupt("payload checksum mismatch")
    return payload, meta
