"""Fault injection shared by the tests."""

import errno
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import streamlstm.io.checkpoint as checkpoint


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


def _catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def sigterm_during_start_up(args: list[str], stdin: bytes = b"", module: bool = False) -> subprocess.CompletedProcess:
    """Run the `streamlstm` console script (`module`: `python -m streamlstm.cli`) and SIGTERM
    it while its imports still load.

    Each try waits until the process catches SIGTERM, then checks that numba is not loaded
    yet, so the signal lands long before the command installs its own handlers (numba loads
    ~0.5 s earlier). A try that finds numba loaded (this process was descheduled too long) is
    retried; asserts that one succeeded.
    """
    script = Path(sys.executable).with_name("streamlstm")
    if not script.exists() or not Path("/proc/self/maps").exists():
        pytest.skip("needs the installed console script and Linux /proc")
    for _ in range(3):
        command = [sys.executable, "-m", "streamlstm.cli"] if module else [str(script)]
        proc = subprocess.Popen([*command, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        while proc.poll() is None and not _catches_sigterm(proc.pid):
            time.sleep(0.001)
        early = proc.poll() is None and "numba" not in Path(f"/proc/{proc.pid}/maps").read_text()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(stdin, timeout=120)
        if early:
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    raise AssertionError("SIGTERM is only caught once numba has loaded")
