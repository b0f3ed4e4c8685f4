"""SIGTERM/SIGINT reaching `streamlstm run` at awkward moments: while it is blocked writing
to a slow reader, and while part of a line is buffered; and a reader that goes away. Nothing
written is lost or cut, and the checkpoint covers exactly what was written.

The writes are tested under PYTHONUNBUFFERED=1 (which containers often set): sys.stdout
then writes straight to its file, and a write(2) cut short used to lose the rest."""

import fcntl
import io
import json
import math
import os
import signal
import subprocess
import sys
import termios
import time

import pytest
from test_filter_loop import mixed_input, run_filter, small_config, text_sink

from streamlstm.io.checkpoint import DirectoryStore
from streamlstm.io.filter_loop import FilterRunner

UNBUFFERED = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _cli(*args):
    return [sys.executable, "-m", "streamlstm.cli", *args]


def _blocked_writing(args, data):
    """`streamlstm run` started on `data` (its stdin left open), once it is blocked writing
    to a full pipe, and the pipe's read end: the results of one read (all 2,000 lines)
    are one write of a few hundred KB."""
    r, w = os.pipe()
    proc = subprocess.Popen(_cli("run", *args), stdin=subprocess.PIPE, stdout=w, stderr=subprocess.PIPE,
                            env=UNBUFFERED)
    os.close(w)
    proc.stdin.write(data)
    proc.stdin.flush()
    size = fcntl.fcntl(r, fcntl.F_GETPIPE_SZ)
    deadline = time.time() + 60
    while _queued(r) < size and time.time() < deadline:
        time.sleep(0.05)
    assert _queued(r) == size
    return proc, r


def _lines(n):
    return "".join(json.dumps({"stream": f"s{i % 3}", "value": i % 17}) + "\n" for i in range(n)).encode()


def _queued(fd):
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little")


@pytest.mark.slow  # the CLI in subprocesses
def test_sigterm_while_blocked_writing_loses_and_cuts_nothing(tmp_path):
    """SIGTERM used to cut the blocked write short: 64 KiB written, the rest dropped, one
    line spliced into the next, and the checkpoint covering them all the same."""
    data = _lines(2000)
    whole = subprocess.run(_cli("run"), input=data, capture_output=True, timeout=60).stdout.splitlines()
    state = tmp_path / "state"
    proc, r = _blocked_writing(["--state-dir", str(state)], data)
    proc.send_signal(signal.SIGTERM)
    with os.fdopen(r, "rb") as out:
        time.sleep(0.5)  # the signal lands while the write is still blocked
        first = out.read().splitlines()
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    proc.stdin.close()
    assert first and first == whole[: len(first)]  # every line whole, none missing
    consumed = DirectoryStore(state).load_latest()[1]["lines_consumed"]
    assert consumed == len(first)  # the checkpoint covers exactly what was written
    rest = subprocess.run(_cli("run", "--state-dir", str(state), "--skip-consumed"), input=data,
                          capture_output=True, timeout=60)
    assert rest.returncode == 0 and first + rest.stdout.splitlines() == whole


@pytest.mark.slow  # the CLI in subprocesses
def test_a_reader_that_goes_away_mid_write_is_output_closed(tmp_path):
    """`score big | head -1` and the like: the write cut short used to end in silence, the
    rest of the results dropped, exit 0."""
    proc, r = _blocked_writing([], _lines(2000))
    os.close(r)
    proc.stdin.close()
    assert proc.wait(timeout=60) == 1
    assert "output closed; stopping" in proc.stderr.read().decode()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_signal_while_part_of_a_line_is_buffered_leaves_that_line_unconsumed(tmp_path, fmt):
    """The part used to be scored as a whole line (CSV: a value cut short; JSON lines: a
    false malformed_json) and counted as consumed, so a --skip-consumed replay skipped the
    real line: its result was never written."""
    config = small_config(tmp_path, **{"input.format": fmt})
    if fmt == "csv":
        data = ("ts,value\n" + "".join(f"{1000 + t},{math.sin(t / 3):.6f}\n" for t in range(150))).encode()
    else:
        data = mixed_input(60)
    _, full, full_errors = run_filter(config, data)
    cut = data.index(b"\n", len(data) // 2) + 12  # 12 bytes into a line
    config = small_config(tmp_path, **{"input.format": fmt, "checkpoint.state_dir": str(tmp_path / "state")})
    out, errors = io.StringIO(), io.StringIO()
    runner = FilterRunner(config, [text_sink(config, out, errors)])
    chunks = [data[:cut]]

    def read(n):  # the first part of the input, then a signal while waiting for the rest
        if chunks:
            return chunks.pop()
        runner._on_signal(signal.SIGTERM, None)  # raises as it does in a blocked read
        raise AssertionError("not reached")

    assert runner.run(read) == 0
    assert runner.seq == data[:cut].count(b"\n")
    rest, rest_errors = io.StringIO(), io.StringIO()
    replay = FilterRunner(config, [text_sink(config, rest, rest_errors)], skip_consumed=True)
    assert replay.run(io.BytesIO(data).read1) == 0
    assert out.getvalue().splitlines() + rest.getvalue().splitlines() == full
    assert errors.getvalue().splitlines() + rest_errors.getvalue().splitlines() == full_errors
