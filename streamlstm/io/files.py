"""Output files written whole: which file a path names for that (`replaced_file`)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["replaced_file"]

_MAX_LINKS = 40  # as Linux's own limit on symbolic links followed in one path


def replaced_file(path: str | Path) -> Path | None:
    """The file that writing `path` whole (a temporary file beside it, then renamed over it)
    replaces: `path`, or the file its symbolic links lead to, so that the links stay. None
    where `path` is to be written in place: it is no regular file (a FIFO, a device,
    /dev/stdout on a pipe), its links pass through /proc (/dev/stdout redirected to a file,
    which `>>` appends to), or they loop (opening it then fails with ELOOP, one clear
    error)."""
    hop = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        if not os.path.islink(hop):
            break
        hop = os.path.abspath(os.path.join(os.path.dirname(hop), os.readlink(hop)))
        if hop.startswith("/proc/"):
            return None
    else:
        return None
    if os.path.exists(hop) and not os.path.isfile(hop):
        return None
    return Path(hop)
