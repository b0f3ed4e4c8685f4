"""Fault injection shared by the tests."""

import errno
import re
from pathlib import Path

import streamlstm.checkpoint as checkpoint


class _FullDisk:
    """An open file on a full disk: creating it worked, writing fails with ENOSPC."""

    def __init__(self, path):
        open(path, "wb").close()  # noqa: SIM115 - the file exists, as after a real failed write

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def full_disk_for_checkpoints(monkeypatch) -> None:
    """Make writing checkpoint files fail with ENOSPC (the start-up probe still works)."""
    def opener(path, mode="r", *args, **kwargs):
        if re.fullmatch(r"ckpt-\d{12}\.slc\.tmp", Path(path).name):
            return _FullDisk(path)
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", opener, raising=False)  # shadows the builtin there only
