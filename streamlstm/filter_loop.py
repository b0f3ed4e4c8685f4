"""The Unix filter: events in (JSON lines or CSV), one JSON result per accepted event out.

    read what is available → parse → score+learn (one batched call per model) → write
    results and error records → checkpoint when due

Reading takes whatever the input has ready (up to 64 KiB), so a fast file is processed in
large micro-batches while a slow pipe still gets each line answered at once. With a state
directory the detectors, the parser's per-stream memory and the number of input lines
consumed are checkpointed every `every_events` events or `every_seconds` seconds and at
shutdown; SIGTERM/SIGINT finish the current batch, checkpoint and exit 0.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TextIO

from .checkpoint import DirectoryStore
from .config import Config
from .events import CsvParser, JsonlParser, Rejected, error_record
from .pool import DetectorPool, Scored
from .records import dumps, result_line

log = logging.getLogger("streamlstm")

READ_SIZE = 1 << 16


class _Interrupted(Exception):
    """Raised by the signal handler while the loop is blocked waiting for input."""


def reader(stream) -> Callable[[int], bytes]:
    """`read(n)` returning whatever `stream` has ready (at most n bytes, b"" at its end)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):  # in-memory streams (tests)
        return getattr(stream, "buffer", stream).read1
    return lambda n, _open=stream: os.read(fd, n)  # _open keeps the stream (and fd) alive


def line_batches(read: Callable[[int], bytes], max_line_bytes: int, batch_size: int) -> Iterator[list[bytes]]:
    """Complete lines (newline stripped) in batches of at most `batch_size`, as they arrive.

    A line longer than `max_line_bytes` is passed on cut to max_line_bytes+1 bytes (so the
    parser rejects it as oversized) and the rest of it is dropped without being buffered.
    """
    pending = b""
    skipping = False  # inside the unbuffered tail of an oversized line
    while True:
        chunk = read(READ_SIZE)
        if not chunk:
            break
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        if skipping and lines:
            lines.pop(0)  # the end of the oversized line
            skipping = False
        if not skipping and len(pending) > max_line_bytes:
            lines.append(pending[: max_line_bytes + 1])
            pending, skipping = b"", True
        elif skipping:
            pending = b""
        for start in range(0, len(lines), batch_size):
            yield lines[start:start + batch_size]
    if pending and not skipping:
        yield [pending]


class FilterRunner:
    """Runs the filter over one input; `run` returns the exit status."""

    def __init__(self, config: Config, out: TextIO, errors: TextIO, skip_consumed: bool = False,
                 progress: Callable[[int], None] | None = None):
        self.config = config
        self.out = out
        self.errors = errors
        self.skip_consumed = skip_consumed
        self.progress = progress
        self.pool = DetectorPool(config)
        self.parser: JsonlParser | CsvParser | None = None
        self.csv_header: bytes | None = None
        self.seq = 0  # input lines consumed so far
        self.resume_after = 0  # lines of a replayed input already covered by the checkpoint
        self.counts: Counter[str] = Counter()
        state_dir = config.checkpoint.state_dir
        self.store = DirectoryStore(state_dir, keep=config.checkpoint.keep) if state_dir else None
        self.stopping = False
        self.waiting = False

    # ------------------------------------------------------------------ state

    def restore(self) -> None:
        loaded = self.store.load_latest() if self.store else None
        if loaded is None:
            return
        payload, _ = loaded
        extra = self.pool.restore(payload)
        self.seq = extra["lines_consumed"]
        self.counts.update(extra["counts"])
        if extra["csv_header"] is not None:
            self.csv_header = extra["csv_header"].encode()
        self.parser = self._make_parser()
        self.parser.memory.load_json(extra["parser"])
        if self.skip_consumed:
            self.resume_after, self.seq = self.seq, 0
        log.info("restored checkpoint: %d streams, %d input lines consumed%s", self.pool.n_streams,
                 extra["lines_consumed"], " (skipping them in this input)" if self.skip_consumed else "")

    def checkpoint(self) -> None:
        if self.store is None:
            return
        extra = {
            "lines_consumed": self.seq,
            "counts": dict(self.counts),
            "csv_header": self.csv_header.decode() if self.csv_header is not None else None,
            "parser": self.parser.memory.to_json() if self.parser else [],
        }
        path = self.store.save(self.pool.to_bytes(extra), {"lines_consumed": extra["lines_consumed"]})
        log.debug("checkpoint %s at line %d", path, extra["lines_consumed"])

    def _make_parser(self) -> JsonlParser | CsvParser:
        cfg = self.config
        if cfg.input.format == "csv":
            return CsvParser(cfg.input, self.csv_header, max_streams=cfg.max_streams)
        return JsonlParser(cfg.input, max_streams=cfg.max_streams)

    # ------------------------------------------------------------------ loop

    def _on_signal(self, signum, frame) -> None:
        log.info("received %s: finishing the current batch", signal.Signals(signum).name)
        self.stopping = True
        if self.waiting:
            raise _Interrupted

    def _interruptible(self, raw_read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        def read(n: int) -> bytes:
            if self.stopping:
                return b""
            self.waiting = True
            try:
                return raw_read(n)
            except _Interrupted:
                return b""
            finally:
                self.waiting = False
        return read

    def run(self, read: Callable[[int], bytes]) -> int:
        """Process everything `read(n)` returns until it returns b"" or a signal stops us."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.restore()
            self._loop(read)
        except BrokenPipeError:
            log.error("output closed; stopping")
            self.checkpoint()
            return 1
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        self.checkpoint()
        accepted = self.counts.pop("accepted", 0)
        log.info("processed %d events, rejected %d%s", accepted, sum(self.counts.values()),
                 "".join(f", {k}={v}" for k, v in sorted(self.counts.items())))
        return 0

    def _loop(self, read: Callable[[int], bytes]) -> None:
        cfg = self.config
        last_ckpt, since_ckpt = time.monotonic(), 0
        for lines in line_batches(self._interruptible(read), cfg.input.max_line_bytes, cfg.batch_size):
            start = self.seq
            self.seq += len(lines)
            if self.progress:
                self.progress(sum(len(line) + 1 for line in lines))
            first = max(0, self.resume_after - start)  # lines already covered by the checkpoint
            if cfg.input.format == "csv" and self.parser is None and first < len(lines):
                self.csv_header = lines[first]
                self.parser = self._make_parser()
                first += 1
            elif self.parser is None:
                self.parser = self._make_parser()
            parsed = [self.parser.parse(start + k + 1, line) for k, line in enumerate(lines) if k >= first]
            events = [p for p in parsed if not isinstance(p, Rejected)]
            self._emit(self.pool.process(events), [p for p in parsed if isinstance(p, Rejected)])
            since_ckpt += len(events)
            now = time.monotonic()
            if self.store and (since_ckpt >= cfg.checkpoint.every_events
                               or now - last_ckpt >= cfg.checkpoint.every_seconds):
                self.checkpoint()
                last_ckpt, since_ckpt = now, 0
            if self.stopping:
                break

    def _emit(self, scored: list[Scored], rejected: list[Rejected]) -> None:
        only_anomalies = self.config.output.only_anomalies
        lines = [result_line(s) for s in scored if s.is_anomaly or not only_anomalies]
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        for rej in rejected:
            self.counts[rej.reason] += 1
            if rej.reason != "empty_line":  # blank lines are counted, not reported one by one
                self.errors.write(dumps(error_record(rej)) + "\n")
        if rejected:
            self.errors.flush()
        self.counts["accepted"] += len(scored)
