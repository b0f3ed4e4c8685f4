"""Snapshot format: named numpy arrays plus JSON metadata in one `.npz` blob, no pickle.

The metadata carries `format_version`; readers refuse versions they do not know instead of
guessing, and upgrade the older ones they do (`READS`: MultiStreamDetector.from_bytes says
how). Arrays round-trip bit for bit, which is what makes restore-then-continue give the
same outputs as never stopping.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

FORMAT_VERSION = 13  # what each version changed: docs/architecture.md, "Snapshot format versions"
READS = (6, 7, 8, 9, 10, 11, 12, 13)  # the versions `unpack` accepts
_META_KEY = "__meta__"


class SnapshotError(ValueError):
    """A snapshot that cannot be read: corrupt, or of an unknown format version."""


def pack(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    meta = {**meta, "format_version": FORMAT_VERSION}
    buf = io.BytesIO()
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(buf, **arrays, **{_META_KEY: blob})
    return buf.getvalue()


def unpack(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not data.startswith(b"PK"):  # numpy would guess a pickle and blame allow_pickle
        raise SnapshotError(f"not a snapshot: no .npz archive (starts with {data[:16]!r})")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop(_META_KEY).tobytes())
    except Exception as exc:  # zipfile, json and numpy raise a variety of errors
        raise SnapshotError(f"unreadable snapshot: {exc}") from exc
    if meta.get("format_version") not in READS:
        raise SnapshotError(f"unsupported snapshot format_version {meta.get('format_version')!r}"
                            f" (this version reads {', '.join(map(str, READS))})")
    return arrays, meta
