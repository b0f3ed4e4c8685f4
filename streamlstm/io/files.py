"""Output files written whole: which file a path names for that (`replaced_file`)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["replaced_file"]

_MAX_LINKS = 40  # as Linux's own limit on symbolic links followed in one path


def replaced_file(path: str | Path) -> Path | None:
    """The file that writing `path` whole (a temporary file beside it, then renamed over it)
    replaces: `path`, or the file its symbolic links lead to, so that the links stay (each
    step's directory taken as the system takes it, its links and `..` followed in order).
    None where `path` is to be written in place: it is no regular file (a FIFO, a device,
    /dev/stdout on a pipe), it is or leads into /proc (/dev/stdout, /dev/fd/N: a file the
    shell opened, maybe to append), or its links loop (opening it then fails with ELOOP,
    one clear error)."""
    hop = os.fspath(path)
    for _ in range(_MAX_LINKS):
        folder, name = os.path.split(hop)
        hop = os.path.join(os.path.realpath(folder or "."), name)
        if hop.startswith("/proc/"):
            return None
        if not os.path.islink(hop):
            break
        hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
    else:
        return None
    if os.path.exists(hop) and not os.path.isfile(hop):
        return None
    return Path(hop)
