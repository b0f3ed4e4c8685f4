"""Output files written whole: which file a path names for that (`replaced_file`), and
putting the finished temporary file in its place (`replace`)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

__all__ = ["replace", "replaced_file"]

_MAX_LINKS = 40  # as Linux's own limit on symbolic links followed in one path


def replaced_file(path: str | Path) -> Path | None:
    """The file that writing `path` whole (a temporary file beside it, then renamed over it)
    replaces: `path`, or the file its symbolic links lead to, so that the links stay (each
    step's directory taken as the system takes it, its links and `..` followed in order).
    None where `path` is to be written in place: it is no regular file (a FIFO, a device,
    /dev/stdout on a pipe), it is or leads into /proc (/dev/stdout, /dev/fd/N: a file the
    shell opened, maybe to append), or its links loop or are more than the system follows
    (opening it then fails with ELOOP, one clear error). A path ending in '/' names a
    directory: NotADirectoryError, as the system says."""
    hop = os.fspath(path)
    if hop.endswith(os.sep):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), hop)
    for links in range(_MAX_LINKS + 1):
        folder, name = os.path.split(hop)
        hop = os.path.join(os.path.realpath(folder or "."), name)
        if hop.startswith("/proc/"):
            return None
        if not os.path.islink(hop):
            break
        if links == _MAX_LINKS:
            return None
        hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
    if os.path.exists(hop) and not os.path.isfile(hop):
        return None
    return Path(hop)


def replace(partial: Path, target: Path) -> None:
    """Put the finished `partial` in the place of `target`, with the permissions `target`
    had (results kept private stay so). A hard link to the old file keeps the old content."""
    if target.exists():
        shutil.copymode(target, partial)
    os.replace(partial, target)
