"""The Unix filter: events in (JSON lines or CSV), one result per accepted event out.

    read what is available → parse → route → score+learn (one batched call per model) →
    write results and error records to the sinks → checkpoint when due

Reading takes whatever the input has ready (up to 64 KiB), so a fast file is processed in
large micro-batches while a slow pipe still gets each line answered at once. The kernel
runs in the pipeline's worker thread (io/pipeline.py): while it advances micro-batch k,
this thread writes the results of k−1 and reads and parses k+1. With a state directory the
detectors, the parser's per-stream memory, the number of input lines consumed and the
`baseline_rows` counts are checkpointed every `every_events` events or `every_seconds`
seconds and at shutdown, by the pipeline's checkpoint recipe, so a checkpoint covers exactly
the lines whose results the sinks have delivered. SIGTERM, SIGINT and SIGHUP (unless
ignored, as under nohup) finish the batch in the kernel (and the one already parsed),
write their results, checkpoint and exit 0; a line only partly read by then is left
unconsumed. An input of which not one non-empty line was
accepted ends with one ERROR line naming the likely cause (io/diagnosis.py), status 2; one
of which most non-empty lines were rejected, with a WARNING line naming it.

Baseline priming learns known-good history without scoring it: a baseline file, learnt in
full before the input (unless the state came from a checkpoint, which already holds it),
or the first `baseline_rows` events of each stream of the input, whose results are 0.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import select
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from .. import signals
from ..config import Config, InputConfig
from ..event import UNIVARIATE, Event, Rejected
from ..pool import DetectorPool, Routed, advance
from .checkpoint import CheckpointError, DirectoryStore
from .diagnosis import SAMPLE, most_lines_rejected, no_line_accepted
from .parsers import BOM, CsvParser, InputFormatError, JsonlParser, StreamMemory, npy_as_csv
from .pipeline import MicroBatch, Pipeline, checkpoint
from .sinks import Sink

log = logging.getLogger("streamlstm")

READ_SIZE = 1 << 16
FORMAT_NAMES = {"jsonl": "JSON lines", "csv": "CSV"}


class _Interrupted(Exception):
    """Raised by the signal handler while the loop is blocked waiting for input."""


class _FdReader:
    """`read(n)` on a file descriptor: whatever it has ready, at most n bytes, b"" at its end."""

    def __init__(self, stream):
        self.stream = stream  # keeps the stream (and its fd) open
        self.fd = stream.fileno()

    def __call__(self, n: int) -> bytes:
        return os.read(self.fd, n)

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether a read would return at once (data or end of input) instead of waiting,
        waiting up to `timeout` seconds for it."""
        try:
            return bool(select.select([self.fd], [], [], max(timeout, 0.0))[0])
        except (OSError, ValueError):
            return False


def reader(stream) -> Callable[[int], bytes]:
    """`read(n)` returning whatever `stream` has ready (at most n bytes, b"" at its end).

    Real files and pipes also get `read.ready(timeout=0)`, which says whether input is
    waiting; the filter writes all pending results before it blocks on an input that has
    nothing ready, and checkpoints when it waits `checkpoint.every_seconds`.
    """
    try:
        return _FdReader(stream)
    except (OSError, ValueError, io.UnsupportedOperation):  # in-memory streams (tests)
        return getattr(stream, "buffer", stream).read1


def line_batches(read: Callable[[int], bytes], max_line_bytes: int, batch_size: int) -> Iterator[list[bytes]]:
    """Complete lines (newline stripped) in batches of at most `batch_size`, as they arrive.

    A line ends with LF, CR LF or a lone CR (as classic Mac OS and some exports write them).
    A line longer than `max_line_bytes` is passed on cut to max_line_bytes+1 bytes (so the
    parser rejects it as oversized) and the rest of it is dropped without being buffered.
    """
    pending = b""
    skipping = False  # inside the unbuffered tail of an oversized line
    while True:
        chunk = read(READ_SIZE)
        if not chunk:
            break
        data = pending + chunk
        if b"\r" in data:  # a CR at the end stays: it may be the first half of a CR LF
            cr = data.endswith(b"\r")
            data = data[: len(data) - cr].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\r" * cr
        lines = data.split(b"\n")
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
    """Runs the filter over one input, writing to `sinks`; `run` returns the exit status.
    `name`: the input's, which an ERROR line about the input as a whole starts with."""

    def __init__(self, config: Config, sinks: Sequence[Sink], skip_consumed: bool = False,
                 progress: Callable[[int], None] | None = None, baseline: str | None = None,
                 baseline_rows: int = 0, name: str = "stdin"):
        self.config = config
        self.name = name
        self.baseline = baseline  # path of a file of known-good history
        self.unmet: set[str] = set()  # the baseline's streams the input has not had yet
        self.baseline_streams = 0
        self.baseline_rows = baseline_rows  # known-good events at the start of each stream
        self.rows_seen: Counter[str] = Counter()  # per stream, while baseline_rows counts them
        self.memory: StreamMemory | None = None  # the baseline's or checkpoint's, for the input's parser
        self.sinks = sinks
        self.pipeline = Pipeline(self._write)
        self.skip_consumed = skip_consumed
        self.progress = progress
        self.pool = DetectorPool(config)
        self.parser: JsonlParser | CsvParser | None = None
        self.seq = 0  # lines of this input consumed so far
        self.resume_after = 0  # lines of a replayed input already covered by the checkpoint
        self.counts: Counter[str] = Counter()
        self.counted_before = 0  # accepted events the counts took over from a checkpoint (--skip-consumed)
        self.first_rejected: list[Rejected] = []  # for the diagnosis when no line, or few, are accepted
        state_dir = config.checkpoint.state_dir
        self.store = DirectoryStore(state_dir, keep=config.checkpoint.keep) if state_dir else None
        self.stopping = False
        self.finished = False  # the input has ended: the next checkpoint is the last
        self.stopped_by: signal.Signals | None = None  # the signal that stopped the input's reading
        self.waiting = False
        self.last_checkpoint, self.since_checkpoint = time.monotonic(), 0  # events since, not yet durable

    # ------------------------------------------------------------------ state

    def restore(self) -> bool:
        """Take the state of the newest checkpoint this runner can use (older ones are
        fallbacks); whether there was one."""
        consumed = self.store.load_latest(self._restore_from) if self.store else None
        if consumed is None:
            if self.store is not None:
                log.info("no checkpoint in %s: starting with no state%s", self.config.checkpoint.state_dir,
                         " (--skip-consumed has nothing to skip)" if self.skip_consumed else "")
            return False
        if self.skip_consumed:
            self.resume_after = consumed
        log.info("restored checkpoint: %d streams, %d input lines consumed%s", self.pool.n_streams,
                 consumed, " (skipping them in this input)" if self.skip_consumed else "")
        return True

    def prime(self, path: str) -> None:
        """Learn every event of the file at `path` as known-good history: nothing is
        scored or written but error records, which name the file. The input's parser
        goes on from the file's per-stream memory (time order, feature sets). A NumPy
        array file (.npy) is read as `score` reads one: rows of its columns col_0, ... (or a
        value), no header, the input's column settings applied to them."""
        cfg = self.config
        parser = None
        learnt = seq = 0
        counts, samples = Counter(), []  # the baseline's rejections, and the first for the diagnosis
        with open(path, "rb") as f:
            read = reader(f)
            if path.lower().endswith(".npy"):
                rows = npy_as_csv(path)
                read = reader(io.BytesIO(rows))
                if rows:
                    parser = self._make_parser(rows[:rows.index(b"\n")], path, dataclasses.replace(
                        cfg.input, format="csv", header=False, delimiter=","))
            for lines in line_batches(read, cfg.input.max_line_bytes, cfg.batch_size):
                parser, parsed = self._parse(parser, path, seq, lines)
                seq += len(lines)
                events = [p for p in parsed if type(p) is not Rejected]
                self.unmet.update(ev.stream for ev in events)
                routed = self.pool.route(events, [True] * len(events))
                advance(routed)
                learnt += len(routed.events)
                rejected = [r._replace(source=path) for r in parsed if type(r) is Rejected] + [
                    r._replace(source=path) for r in routed.rejected]
                if rejected:
                    batch = MicroBatch(Routed([], [], [], []), sorted(rejected, key=lambda r: r.seq))
                    for sink in self.sinks:
                        sink.write(batch)
                    counts.update(r.reason for r in rejected)
                    samples += batch.rejected[:SAMPLE - len(samples)]
        if not learnt and any(reason != "empty_line" for reason in counts):
            # A baseline of which nothing could be read is a mistake, as such an input is.
            raise InputFormatError(f"--baseline {path}: {no_line_accepted(parser, samples, counts)}")
        self.memory = parser.memory if parser else None
        self.baseline_streams = len(self.unmet)
        # Its rejections are the baseline's, apart from the input's counts (the summary, and
        # whether the input was mostly rejected).
        rejected = sum(n for reason, n in counts.items() if reason != "empty_line")
        log.info("learnt %d baseline events from %s%s", learnt, path,
                 f", rejected {rejected}" + "".join(f", {k}={v}" for k, v in sorted(counts.items())
                                                    if k != "empty_line") if rejected else "")
        if rejected > learnt:
            log.warning("--baseline %s: %s", path, most_lines_rejected(parser, samples, counts, learnt))

    def _restore_from(self, payload: bytes, meta: dict) -> int:
        """Take the state in one checkpoint's payload and return the input lines it covers;
        raises if the payload is not the filter's state, CheckpointError if it is for
        another input format. The input's parser is made from the input (a CSV's header is
        this input's own), going on from the checkpoint's per-stream memory."""
        extra = self.pool.restore(payload)
        # Before "input_format", a CSV run's checkpoint named its header.
        written_for = extra.get("input_format", "csv" if extra.get("csv_header") is not None else None)
        if written_for not in (None, self.config.input.format):
            raise CheckpointError(
                f"the checkpoints in {self.store.path} were written for {FORMAT_NAMES[written_for]} input; this "
                f"run reads {FORMAT_NAMES[self.config.input.format]} (--format {written_for}, or another --state-dir)")
        self.memory = StreamMemory(self.config.max_streams)
        self.memory.load_json(extra["parser"])
        if self.skip_consumed:  # the same input again: its exit summary goes on too
            self.counts = Counter(extra["counts"])
            self.counted_before = self.counts["accepted"]
            self.first_rejected = [Rejected(*r) for r in extra.get("rejected_samples", ())]
        self.rows_seen = Counter(extra.get("rows_seen", {}))  # a stream's baseline rows stay its first ones
        return extra["lines_consumed"]

    def _nothing_accepted(self) -> bool:
        """Whether every non-empty line so far was rejected: a format mistake (exit 2)."""
        return not self.counts.get("accepted") and any(r not in ("empty_line", "accepted") for r in self.counts)

    @property
    def input_features(self) -> tuple[str, ...]:
        """The features a CSV input's columns name; UNIVARIATE for JSON lines (they name theirs
        event by event) and for an input with no line."""
        return self.parser.features if isinstance(self.parser, CsvParser) else UNIVARIATE

    def checkpoint(self) -> None:
        """The pipeline's checkpoint recipe: drain, flush the sinks, snapshot (no input
        position to commit: the snapshot counts the lines consumed)."""
        if self.store is not None:
            checkpoint(self.pipeline, self.sinks, self._snapshot)
            self.last_checkpoint, self.since_checkpoint = time.monotonic(), 0

    def _snapshot(self) -> None:
        memory = self.parser.memory if self.parser else self.memory
        extra = {
            "lines_consumed": max(self.seq, self.resume_after),  # a short replay has not moved it
            "counts": dict(self.counts),
            "rejected_samples": [list(r) for r in self.first_rejected],  # the diagnosis' examples
            "input_format": self.config.input.format,
            "rows_seen": dict(self.rows_seen),
            "parser": memory.to_json() if memory else [],
        }
        path = self.store.save(self.pool.to_bytes(extra), {"lines_consumed": extra["lines_consumed"]})
        # The last one (the input's end, a signal) at INFO: what a restart resumes from.
        log.log(logging.INFO if self.stopping or self.finished else logging.DEBUG, "checkpoint %s at line %d",
                path, extra["lines_consumed"])

    def _make_parser(self, csv_header: bytes | None, name: str, input_config: InputConfig | None = None
                     ) -> JsonlParser | CsvParser:
        try:
            parser = make_parser(self.config, csv_header, input_config)
        except InputFormatError as exc:
            raise exc.of(name) from None
        if self.memory is not None:
            parser.memory = self.memory
        return parser

    # ------------------------------------------------------------------ loop

    def _on_signal(self, signum, frame) -> None:
        self.stopped_by = signal.Signals(signum)
        log.info("received %s: finishing the current batch", self.stopped_by.name)
        self.stopping = True
        if self.waiting:
            raise _Interrupted

    def _interruptible(self, raw_read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        """`raw_read` that raises _Interrupted once a signal has come, rather than return
        b"", which would end the input and pass a buffered part of a line on as a line.
        Events not yet checkpointed are checkpointed once the input has been quiet until
        `checkpoint.every_seconds` after the last checkpoint (the loop only looks at the
        clock when a batch arrives)."""
        ready = getattr(raw_read, "ready", None)
        every = self.config.checkpoint.every_seconds

        def read(n: int) -> bytes:
            if self.stopping:
                raise _Interrupted
            self.waiting = True
            try:
                if (self.store is not None and ready is not None and self.since_checkpoint
                        and not ready(self.last_checkpoint + every - time.monotonic())):
                    self.waiting = False  # a signal now stops the loop after the checkpoint
                    self.checkpoint()
                    if self.stopping:
                        raise _Interrupted
                    self.waiting = True
                return raw_read(n)
            finally:
                self.waiting = False
        return read

    def run(self, read: Callable[[int], bytes]) -> int:
        """Process everything `read(n)` returns until it returns b"" or a signal stops us.

        When `read` has a `ready()` method (see `reader`), results are all written before a
        read that would block; otherwise `read` is assumed never to block. Returns the exit
        status: 0, 1 when the output was closed, 2 when no non-empty line was accepted.
        """
        previous = signals.take_over(self._on_signal)  # also gets a signal from before we started
        try:
            with Pipeline.running():
                if self.restore() and self.baseline:
                    log.info("state restored: the baseline %s is in it already", self.baseline)
                elif self.baseline:
                    self.prime(self.baseline)
                self._loop(read)
                if isinstance(self.parser, CsvParser) and not self.stopping:
                    self.parser.end()
                if self.seq < self.resume_after and not self.stopping:
                    log.warning("the input ended after %d lines, before the %d the checkpoint covers: none of it "
                                "was scored (--skip-consumed is for the input the checkpoint was taken on, "
                                "replayed from its start)", self.seq, self.resume_after)
                self.finished = True
                if not self._nothing_accepted():  # a wrong input (exit 2) leaves the last checkpoint as it was
                    self.checkpoint()
        except BrokenPipeError:
            log.error("output closed; stopping%s", " (the last checkpoint covers what was written)" if self.store else "")
            return 1
        finally:
            self.pipeline.close()
            if self.store is not None:
                self.store.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        failed = self._nothing_accepted()
        accepted = self.counts.pop("accepted", 0)
        evicted = sum(self.pool.budget.evictions.values())
        empty = self.counts.get("empty_line", 0)  # skipped, not rejected: blank lines get no error record
        log.info("processed %d events%s, rejected %d%s%s%s", accepted,
                 f" ({self.counted_before} of them before the checkpoint this run resumed from)"
                 if self.counted_before else "", sum(self.counts.values()) - empty,
                 "".join(f", {k}={v}" for k, v in sorted(self.counts.items()) if k != "empty_line"),
                 f"; skipped {empty} empty lines" if empty else "",
                 f"; evicted {evicted} streams to stay within the state limits" if evicted else "")
        if failed:
            log.error("%s: %s", self.name, no_line_accepted(self.parser, self.first_rejected, self.counts))
            return 2
        if self.baseline_streams and len(self.unmet) == self.baseline_streams and accepted:
            # Learnt for nothing: stream ids differ (case, a prefix; `score` names the stream after its file).
            names = ", ".join(repr(s) for s in sorted(self.unmet)[:3])
            log.warning("--baseline %s: the input had none of its streams (%s), so what it taught was not used; a "
                        "stream is known by its exact id", self.baseline,
                        names + (f", ... {self.baseline_streams} in all" if self.baseline_streams > 3 else ""))
        if sum(self.counts.values()) - empty > accepted:  # likely a column or the time mistaken (io/diagnosis.py)
            log.warning("%s: %s", self.name, most_lines_rejected(self.parser, self.first_rejected, self.counts,
                                                                accepted))
        short = [(stream, n) for stream, n in self.rows_seen.items() if n <= self.baseline_rows]
        if short:
            # No stream scored is a mistake in the setting; a few short streams beside scored
            # ones (a host that came late) are the input's, and exit 2 would stop a pipeline.
            stream, n = short[0]
            others = f" (and {len(short) - 1} more streams)" if len(short) > 1 else ""
            none_scored = len(short) == len(self.rows_seen)
            (log.error if none_scored else log.warning)(
                "--baseline-rows %d, but stream %r has only %d rows%s: none of them was scored",
                self.baseline_rows, stream, n, others)
            return 2 if none_scored else 0
        return 0

    def _loop(self, read: Callable[[int], bytes]) -> None:
        """Read and parse micro-batches while the pipeline scores the one before; drain when
        the input has nothing ready (so a slow pipe is answered at once) or on a signal."""
        cfg = self.config
        input_ready = getattr(read, "ready", lambda: True)
        self.last_checkpoint = time.monotonic()
        try:
            for batch in self._batches(read):
                self.pipeline.push([batch])
                self.since_checkpoint += len(batch.routed.events)
                if self.store is not None and (self.since_checkpoint >= cfg.checkpoint.every_events or
                                               time.monotonic() - self.last_checkpoint >= cfg.checkpoint.every_seconds):
                    self.checkpoint()
                elif self.stopping or not input_ready():
                    self.pipeline.drain()
                if self.stopping:
                    break
        except _Interrupted:  # stopped waiting for input: a part of a line read stays unconsumed
            pass
        self.pipeline.drain()

    def _batches(self, read: Callable[[int], bytes]) -> Iterator[MicroBatch]:
        """Micro-batches of the input as they arrive, parsed and routed to their detectors."""
        cfg = self.config
        for lines in line_batches(self._interruptible(read), cfg.input.max_line_bytes, cfg.batch_size):
            start = self.seq
            self.seq += len(lines)
            if self.progress:
                self.progress(sum(len(line) + 1 for line in lines))
            first = max(0, self.resume_after - start)  # lines already covered by the checkpoint
            self.parser, parsed = self._parse(self.parser, self.name, start, lines, first)
            events = [p for p in parsed if type(p) is not Rejected]
            if self.unmet:  # until each of the baseline's streams has come
                self.unmet.difference_update(ev.stream for ev in events)
            rejected = [p for p in parsed if type(p) is Rejected] if len(events) < len(parsed) else []
            routed = self.pool.route(events, self._baseline_flags(events) if self.baseline_rows else None)
            if routed.rejected:  # no model could take them (max_models)
                rejected = sorted(rejected + routed.rejected, key=lambda r: r.seq)
            yield MicroBatch(routed, rejected)

    def _parse(self, parser: JsonlParser | CsvParser | None, name: str, start: int, lines: list[bytes],
               first: int = 0) -> tuple[JsonlParser | CsvParser | None, list[Event | Rejected]]:
        """The parser of the file `name` (the input or the baseline) and `lines` of it (numbered
        from `start` + 1) parsed from the `first`th on. While `parser` is None it is made: a CSV's
        from its first non-blank line, the header (or the first row), the blank lines before
        it skipped as empty; it stays None while a CSV has had blank lines only. The header is
        read even where the checkpoint covers it: a replay's header is its own."""
        parsed = []
        if parser is None:
            csv = self.config.input.format == "csv"
            # A UTF-8 byte order mark before blank lines leaves them blank.
            blank = [not (line.removeprefix(BOM) if start + k == 0 else line).strip() for k, line in enumerate(lines)]
            head = (blank + [False]).index(False) if csv else 0
            parsed = [Rejected(start + k + 1, "empty_line", "empty line", "") for k in range(first, head)]
            if head == len(lines):
                return None, parsed
            parser = self._make_parser(lines[head] if csv else None, name)
            first = max(first, head + parser.header_lines)
        return parser, parsed + [parser.parse(start + k + 1, lines[k]) for k in range(first, len(lines))]

    def _baseline_flags(self, events) -> list[bool]:
        """Whether each event is among the first `baseline_rows` of its stream."""
        seen, flags = self.rows_seen, []
        for ev in events:
            seen[ev.stream] += 1
            flags.append(seen[ev.stream] <= self.baseline_rows)
        return flags

    def _write(self, batches: Sequence[MicroBatch]) -> None:
        """Hand scored micro-batches to the sinks, counting what they hold."""
        for batch in batches:
            for sink in self.sinks:
                sink.write(batch)
            for rej in batch.rejected:
                self.counts[rej.reason] += 1
            if batch.rejected and len(self.first_rejected) < SAMPLE:
                kept = [r for r in batch.rejected if r.reason != "empty_line"]
                self.first_rejected += kept[:SAMPLE - len(self.first_rejected)]
            self.counts["accepted"] += len(batch.routed.events)


def make_parser(config: Config, csv_header: bytes | None, input_config: InputConfig | None = None
                ) -> JsonlParser | CsvParser:
    """The parser of the configured input format, or of `input_config` (a CSV's from its
    first line: its header, or its first row of data)."""
    cfg = input_config or config.input
    if cfg.format == "csv":
        return CsvParser(cfg, csv_header, max_streams=config.max_streams)
    return JsonlParser(cfg, max_streams=config.max_streams)
