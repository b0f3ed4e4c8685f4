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
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels_cpu import Outputs, judge_one, learn_one, make_workspace, new_judgement, new_outputs, process_batch
from .layout import C_RNG
from .params import param_size
from .state import ParamArrays, StreamArrays, move_rows, row_bytes, slot_tables


class CpuEngine:
    """hyper: hyperparams.KernelHyper;  streams / params: the host tables it takes over;
    theta0: (P,) initial parameters (a reset slot's weights in per_stream mode)."""

    def __init__(self, hyper, streams: StreamArrays, params: ParamArrays, theta0: np.ndarray):
        self.hy = hyper
        self.streams, self.params = streams, params
        self.theta0 = theta0
        self.work = make_workspace(hyper.cell, hyper.D, hyper.H, hyper.K, param_size(hyper.cell, hyper.D, hyper.H),
                                   theta0.dtype)
        self._entries = {}  # kernel -> its compiled overload (see `_run`)
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
        tables. slots (N,) int64; X (N, D) float64, NaN = missing; timestamps (N,) epoch
        seconds, NaN (or None for all) = unknown; score: False for baseline priming.
        Returns kernels_cpu.Outputs, written into `out` when given.
        """
        N = len(slots)
        if timestamps is None:
            timestamps = np.full(N, np.nan)
        out = new_outputs(N, self.hy.D) if out is None else Outputs(*out)
        self._judged = None  # a batch may change the state a kept judgement was made on
        self._run(process_batch, out, slots, X, timestamps, bool(learn), bool(score), self.streams, self.params,
                  self.work, self.hy)
        return out

    def process_one(self, slots, X, learn: bool, timestamps, out: Outputs, score: bool = True) -> Outputs:
        """`process` of one event of a held slot: slots (1,), X (1, D), timestamps (1,),
        out: Outputs of one row. An event judged without learning (learn=False), then learnt
        into the same `out` with nothing changed in between, is not judged twice: the
        learning call takes the judgement if its event is the same bit for bit
        (kernels_cpu.learn_one), so the results are those of `process`. Every other call
        that could change the state (process, reset_slots, resize, from_host) forgets it."""
        if learn:
            judged, self._judged = out is self._judged, None
            self._run(learn_one, out, self._memo, judged, slots, X, timestamps, bool(score), self.streams, self.params,
                      self.work, self.hy)
        else:
            self._run(judge_one, out, self._memo, slots, X, timestamps, bool(score), self.streams, self.work, self.hy)
            self._judged = out
        return out

    def _run(self, kernel, *args) -> None:
        """Call `kernel` (a compiled kernels_cpu function) with args.

        Numba's dispatcher derives the types of all arguments on every call, about 6 us for
        these tuples of arrays: more than scoring one event costs. They never change for an
        engine (fixed-dtype contiguous arrays), so each kernel's compiled overload is looked
        up once and called directly.
        """
        entry = self._entries.get(kernel)
        if entry is not None:
            entry(*args)
            return
        kernel(*args)  # compiles or loads the overload for these types
        self._entries[kernel] = kernel.overloads[tuple(numba.typeof(a) for a in args)].entry_point

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
        return {**self.__dict__, "_entries": {}, "_judged": None}
