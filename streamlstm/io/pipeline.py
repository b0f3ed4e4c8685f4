"""The kernel pipeline shared by the Unix filter and the Kafka daemon, and the checkpoint.

    parse → route (calling thread) → score + learn (kernel thread) → write to the sinks

The compiled kernel releases the GIL, so while it advances micro-batch k in a worker
thread, the calling thread writes the results of k−1 and reads and parses k+1. Only one
micro-batch is ever in the kernel, so memory stays bounded, and results reach the sinks in
input order. Everything that snapshots state drains the pipeline first, so a snapshot holds
exactly the events whose results were written.

A checkpoint is a numbered recipe (as quixstreams' `Checkpoint.commit`):

    1. drain: the micro-batch in the kernel finishes and its results reach the sinks
    2. flush every sink: every result of the input consumed so far is delivered
    3. snapshot the state: durable, covering exactly the delivered results
    4. commit the input position (Kafka offsets), which the snapshot now covers
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..event import Rejected
from ..multistream import BatchResult
from ..pool import Routed, advance
from .sinks import Sink

__all__ = ["MicroBatch", "Pipeline", "checkpoint"]

# How long a thread may keep the GIL while another waits for it (sys.setswitchinterval, set
# while a pipeline runs). CPython's default, 5 ms, cost ~1.5 ms of kernel idle time per
# micro-batch in the filter, as the kernel thread waited to start or to return from the
# compiled code; 0.1 ms, ~0.3 ms.
SWITCH_INTERVAL = 0.0001


@dataclass(eq=False)
class MicroBatch:
    """Input on its way through the pipeline: parsed, routed, scored, written."""

    routed: Routed  # its accepted events, split per detector
    rejected: list[Rejected]  # its rejected lines, in input order
    results: list[BatchResult] = field(default_factory=list)  # advance(routed), once scored
    kernel_s: float = 0.0  # seconds the kernel took for it


class Pipeline:
    """Micro-batches through the kernel one at a time; `write` takes each scored group of
    micro-batches, in order, in the calling thread."""

    def __init__(self, write: Callable[[Sequence[MicroBatch]], None]):
        self.write = write
        self._worker: ThreadPoolExecutor | None = None
        self._inflight: tuple[Sequence[MicroBatch], Future] | None = None
        self._lock = threading.Lock()  # push and drain may come from different threads (Kafka rebalance)
        self.wait_s = 0.0  # seconds spent waiting for the kernel

    @property
    def busy(self) -> bool:
        """Whether a micro-batch is in the kernel (its results not written yet)."""
        return self._inflight is not None

    def push(self, batches: Sequence[MicroBatch]) -> None:
        """Start scoring `batches` (after the ones in the kernel finish), then write the
        finished ones while the kernel runs."""
        with self._lock:
            done = self._take()
            if batches:
                if self._worker is None:
                    self._worker = ThreadPoolExecutor(1, thread_name_prefix="streamlstm-kernel")
                self._inflight = (batches, self._worker.submit(_score, batches))
            if done is not None:
                self.write(done)

    def drain(self) -> None:
        """Wait for the micro-batches in the kernel and write them."""
        with self._lock:
            done = self._take()
            if done is not None:
                self.write(done)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)

    def _take(self) -> Sequence[MicroBatch] | None:
        if self._inflight is None:
            return None
        batches, future = self._inflight
        self._inflight = None
        t0 = time.perf_counter()
        future.result()
        self.wait_s += time.perf_counter() - t0
        return batches

    @staticmethod
    @contextmanager
    def running() -> Iterator[None]:
        """The GIL switch interval pipelines run with (see SWITCH_INTERVAL), restored after."""
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            yield
        finally:
            sys.setswitchinterval(previous)


def _score(batches: Sequence[MicroBatch]) -> None:
    """Score and learn (the kernel thread)."""
    for b in batches:
        t0 = time.perf_counter()
        b.results = advance(b.routed)
        b.kernel_s = time.perf_counter() - t0


def checkpoint(pipeline: Pipeline, sinks: Sequence[Sink], snapshot: Callable[[], object],
               commit: Callable[[], object] | None = None) -> None:
    """The checkpoint recipe of the module docstring: drain, flush the sinks, snapshot the
    state, commit the input position."""
    pipeline.drain()  # 1
    for sink in sinks:  # 2
        sink.flush()
    snapshot()  # 3
    if commit is not None:  # 4
        commit()
