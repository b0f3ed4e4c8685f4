"""`CpuEngine`: stream and parameter tables in host memory, advanced by the compiled CPU
kernels. It has the interface of `cuda_engine.CudaEngine`, so `MultiStreamDetector` holds
one engine and does not care which:

    capacity                         stream slots allocated
    resize(capacity, moves)          move rows (from, to), then allocate exactly `capacity`
    reset_slots(slots, seeds)        fresh state (and weights, per_stream) for these slots
    process(slots, X, learn, T, out, score)  judge then learn; kernels_cpu.Outputs
    process_one(slots, X, learn, T, out, score)  the same for one event of a held slot
    to_host() / from_host(s, p)      the tables as state.StreamArrays / ParamArrays
    bytes_per_stream() / fixed_bytes()

Threads (per_stream mode): a micro-batch's events are split by stream into shards, one
per thread, each a contiguous range of slots holding about as many events as the others;
each shard runs kernels_cpu.process_batch on its rows with its own workspace, a stream's
events one after the other (its rows stay in cache). Streams are independent in this mode,
so the results are bit-identical to one thread and to input order. Shared mode runs on one
thread, in input order: every event updates the one set of weights the next event reads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba
import numpy as np

from .hyperparams import THREADS
from .kernels_cpu import (Outputs, Workspace, judge_one, learn_one, make_workspace, new_judgement, new_outputs,
                          process_batch)
from .layout import C_RNG
from .params import param_size
from .state import ParamArrays, StreamArrays, move_rows, row_bytes, slot_tables

# Fewer events than this per shard run on fewer threads (below twice this, one, in input
# order, unsplit). Splitting the batch and handing a shard to a worker cost ~0.1 ms
# (bench/bench_threads.py --overhead: two threads lost at 16 events a call, broke even at
# 32, and saved 0.11 ms of 0.50 at 64 and 0.35 of 1.01 at 128), so a shard of 64 events
# (~0.5 ms) keeps most of its gain; one-event calls (process_one, score_one) never pay it.
MIN_SHARD_EVENTS = 64
# Workspaces a worker thread keeps, one per model shape (cell, D, H, K, dtype) it has run:
# the oldest is dropped beyond this, so memory stays bounded however many models there are.
MAX_WORKSPACES_PER_THREAD = 16
# Getting the kernels takes longer than this only when Numba compiles them (about half a
# minute on two cores); loading them from its cache takes well under a second.
COMPILE_NOTICE_S = 5.0

log = logging.getLogger("streamlstm")

_local = threading.local()


def _new_workers() -> None:
    """The process's shard workers, shared by all engines; threads start on first use, up
    to as many as shards run at once (the kernels release the GIL). A forked child (the
    evaluations' process pools) gets its own: its parent's threads do not exist there, and
    the parent's pool would queue shards for them forever."""
    global _workers
    _workers = ThreadPoolExecutor(int(THREADS.spec.hi), thread_name_prefix="streamlstm-shard")


_new_workers()
os.register_at_fork(after_in_child=_new_workers)


def resolve_threads(threads: int) -> int:
    """The `threads` setting as a count: 0 is every CPU this process may run on."""
    if threads:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_by_stream(slots: np.ndarray, n: int) -> list[np.ndarray]:
    """The rows (indices) of events slots (N,) in at most n shards, each (M,) int64:
    every stream's events in one shard, streams cut in slot order where the running event
    count passes a multiple of N/n, so shards hold about N/n events (fewer shards when
    some stream holds many); empty shards are left out. Within a shard the rows go stream
    by stream (in slot order), each stream's in input order: a stream's ~50 KB of rows
    are then read from memory once per batch, not once per event (+30-40 % events/s at
    1,000 and 10,000 streams in batches of 4,096, one thread or two)."""
    _, inverse, counts = np.unique(slots, return_inverse=True, return_counts=True)
    first_row = np.cumsum(counts) - counts  # rows before each stream's, streams in slot order
    shard = (first_row * n // len(slots))[inverse]
    order = np.argsort(slots, kind="stable")  # shards are slot ranges: grouped by shard too
    parts = np.split(order, np.cumsum(np.bincount(shard, minlength=n))[:-1])
    return [p for p in parts if len(p)]


def _entry_point(kernel, args):
    """The compiled overload of `kernel` for these arguments' types (compiled or loaded
    from the cache if needed). Calling it directly skips Numba's dispatcher, which derives
    the types of all arguments on every call: ~6 us for these tuples of arrays, more than
    scoring one event costs."""
    sig = tuple(numba.typeof(a) for a in args)
    if sig not in kernel.overloads:
        kernel.compile(sig)
    return kernel.overloads[sig].entry_point


@contextmanager
def _compile_notice():
    """Say at INFO that the kernels are being compiled, and then how long it took, when
    getting them takes longer than COMPILE_NOTICE_S: a first run should not look hung."""
    notice = threading.Timer(COMPILE_NOTICE_S, log.info,
                             ("compiling the kernels: about half a minute on the first run, then cached",))
    notice.daemon = True
    started = time.monotonic()
    notice.start()
    try:
        yield
    finally:
        notice.cancel()
    took = time.monotonic() - started
    if took >= COMPILE_NOTICE_S:  # (the notice was logged)
        log.info("kernels ready in %.1f s", took)


def _run_shard(entry, shape, args) -> None:
    """In a worker thread: process_batch's entry point on a shard's `args` with this thread's own
    workspace for a model of this shape (make_workspace's arguments) in place of the
    engine's (the last argument but one)."""
    cache = _local.__dict__.setdefault("workspaces", {})
    ws = cache.pop(shape, None) or make_workspace(*shape)
    cache[shape] = ws  # most recently used last
    if len(cache) > MAX_WORKSPACES_PER_THREAD:
        del cache[next(iter(cache))]
    entry(*args[:-2], ws, args[-1])


class CpuEngine:
    """hyper: hyperparams.KernelHyper;  streams / params: the host tables it takes over;
    theta0: (P,) initial parameters (a reset slot's weights in per_stream mode);
    threads: the `threads` setting (0 = every CPU), used in per_stream mode only."""

    def __init__(self, hyper, streams: StreamArrays, params: ParamArrays, theta0: np.ndarray,
                 threads: int = THREADS.default):
        self.hy = hyper
        self.streams, self.params = streams, params
        self.theta0 = theta0
        self.shape = (hyper.cell, hyper.D, hyper.H, hyper.K, param_size(hyper.cell, hyper.D, hyper.H), theta0.dtype)
        self.work: Workspace = make_workspace(*self.shape)
        self.threads = 1 if hyper.shared else resolve_threads(threads)
        self._compiled = {}  # kernel -> its compiled overload for this engine's argument types
        # The last event process_one judged without learning it (the river API scores an
        # event, then learns it): its judgement, and the `out` it lies in while no change of
        # state has made it stale (None then).
        self._memo = new_judgement(hyper.D, theta0.dtype)
        self._judged = None

    @property
    def capacity(self) -> int:
        return self.streams.h.shape[0]

    def resize(self, capacity: int, moves=()) -> None:
        """Copy row `src` to `dst` for each (src, dst) of `moves`, then allocate exactly
        `capacity` slots, keeping the rows below it; new rows are zero."""
        self._judged = None
        tables = slot_tables(self.streams, self.params, self.hy.shared)
        move_rows(tables, moves)
        # In place: the C allocator's realloc moves a large block by remapping its pages, so
        # growing costs no second copy of the tables (which would double the peak memory the
        # state budget has to allow for), and shrinking gives pages back.
        for a in tables:
            a.resize((capacity, *a.shape[1:]), refcheck=False)

    def reset_slots(self, slots, seeds) -> None:
        self._judged = None
        for slot, seed in zip(slots, seeds):
            for a in self.streams:
                a[slot] = 0
            self.streams.counters[slot, C_RNG] = seed
            if not self.hy.shared:
                self.params.theta[slot] = self.theta0
                for a in self.params[1:]:
                    a[slot] = 0

    def process(self, slots, X, learn: bool = True, timestamps=None, out=None, score: bool = True):
        """Judge then (if `learn`) learn each event: kernels_cpu.process_batch over the
        tables, on every row at once or by shards. slots (N,) int64; X (N, D) float64, NaN =
        missing; timestamps (N,) epoch seconds, NaN (or None for all) = unknown; score:
        False for baseline priming.
        Returns kernels_cpu.Outputs, written into `out` when given.

        In per_stream mode, a batch of at least 2 * MIN_SHARD_EVENTS events is split by
        stream (split_by_stream: one shard per thread, at most one per MIN_SHARD_EVENTS
        events, each stream's events together) and the shards run at once: the first in
        this thread, the others in the shared workers.
        """
        N = len(slots)
        if timestamps is None:
            timestamps = np.full(N, np.nan)
        out = new_outputs(N, self.hy.D) if out is None else Outputs(*out)
        self._judged = None  # a batch may change the state a kept judgement was made on
        tables = (self.streams, self.params, self.work, self.hy)
        if self.hy.shared or N < 2 * MIN_SHARD_EVENTS:
            shards = [np.arange(N, dtype=np.int64)]
        else:
            shards = split_by_stream(slots, min(self.threads, N // MIN_SHARD_EVENTS))
        args = [(out, rows, slots, X, timestamps, bool(learn), bool(score), *tables) for rows in shards]
        kernel = self._batch_entry(args[0])
        pending = [_workers.submit(_run_shard, kernel, self.shape, a) for a in args[1:]]
        kernel(*args[0])  # the first shard in this thread, with the engine's own workspace
        for p in pending:
            p.result()
        return out

    def process_one(self, slots, X, learn: bool, timestamps, out: Outputs, score: bool = True) -> Outputs:
        """`process` of one event of a held slot: slots (1,), X (1, D), timestamps (1,),
        out: Outputs of one row. An event judged without learning (learn=False), then learnt
        into the same `out` with nothing changed in between, is not judged twice: the
        learning call takes the judgement if its event is the same bit for bit
        (kernels_cpu.learn_one), so the results are those of `process`. Every other call
        that could change the state (process, reset_slots, resize, from_host) forgets it."""
        if learn:
            kept, self._judged = out is self._judged, None
            args = (out, self._memo, kept, slots, X, timestamps, bool(score), self.streams, self.params, self.work,
                    self.hy)
            self._entry(learn_one, args)(*args)
        else:
            args = (out, self._memo, slots, X, timestamps, bool(score), self.streams, self.work, self.hy)
            self._entry(judge_one, args)(*args)
            self._judged = out
        return out

    def _batch_entry(self, args):
        """process_batch's entry point for `process`'s arguments `args`, compiled (or loaded
        from Numba's cache) at the first batch, with a notice if that takes a while. A batch
        and its shards share it (a shard is some of its rows), so no later batch compiles
        anything: a second kernel for shards, compiled at the first large batch, stalled a
        Kafka daemon's first small one for seconds after a backlog."""
        if process_batch not in self._compiled:
            with _compile_notice():
                self._entry(process_batch, args)
        return self._compiled[process_batch]

    def _entry(self, kernel, args):
        """`kernel`'s compiled overload for `args`, looked up once per engine: the argument
        types never change for an engine (fixed-dtype contiguous arrays)."""
        entry = self._compiled.get(kernel)
        if entry is None:
            entry = self._compiled[kernel] = _entry_point(kernel, args)
        return entry

    def to_host(self) -> tuple[StreamArrays, ParamArrays]:
        return self.streams, self.params

    def from_host(self, streams: StreamArrays, params: ParamArrays) -> None:
        """Replace the tables by copies of these (any number of slots)."""
        self._judged = None
        self.streams = StreamArrays(*(np.array(a) for a in streams))
        self.params = ParamArrays(*(np.array(a) for a in params))

    def bytes_per_stream(self) -> int:
        """Bytes of one stream slot (its parameter rows too in per_stream mode)."""
        return row_bytes(slot_tables(self.streams, self.params, self.hy.shared))

    def fixed_bytes(self) -> int:
        """Bytes that do not grow with the streams: shared weights, scratch, initial weights."""
        params = sum(a.nbytes for a in self.params) if self.hy.shared else 0
        return self.theta0.nbytes + sum(a.nbytes for a in self.work) + params

    def __getstate__(self) -> dict:
        # Compiled entry points cannot be pickled (copy/pickle of a detector, as river's
        # checks do); they are looked up again on first use. A copy's `out` buffers are
        # new objects, so a judgement never carries over.
        return {**self.__dict__, "_compiled": {}, "_judged": None}
