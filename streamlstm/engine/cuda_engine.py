"""`CudaEngine`: stream and parameter tables held on a CUDA device, advanced by waves.

The engine keeps the same `StreamArrays` / `ParamArrays` tables as the CPU path, as
device arrays; `to_host()` / `from_host()` convert both ways, so snapshots have one
format whatever the backend. Events go in and results come out through pinned host
buffers. Importing this module needs no CUDA; constructing an engine does.

A micro-batch is split into waves (see kernels_cuda): event n goes to wave r where r is
the number of earlier events of the same stream in the batch. Each wave runs with one
thread per event, in chunks of at most `max_wave` threads (the per-thread workspace rows
are allocated for `max_wave` threads). In shared weight mode a chunk is the unit of one
optimiser update.
"""

from __future__ import annotations

import numpy as np

from . import kernels_cuda
from .backend import simulator_enabled
from .kernels_cpu import Outputs, Workspace, make_workspace, new_outputs
from .kernels_cuda import ResetArgs, WaveIO
from .params import param_size
from .state import ParamArrays, StreamArrays, move_rows, row_bytes, slot_tables


def wave_ranks(slots: np.ndarray) -> np.ndarray:
    """For each event, how many earlier events of the batch have the same slot.

    >>> wave_ranks(np.array([3, 1, 3, 3, 1, 0]))
    array([0, 0, 1, 2, 1, 0])
    """
    N = len(slots)
    order = np.argsort(slots, kind="stable")
    ordered = slots[order]
    idx = np.arange(N)
    group_start = np.empty(N, dtype=bool)
    group_start[:1] = True
    group_start[1:] = ordered[1:] != ordered[:-1]
    first = np.maximum.accumulate(np.where(group_start, idx, 0))
    ranks = np.empty(N, dtype=np.int64)
    ranks[order] = idx - first
    return ranks


class CudaEngine:
    """Device-resident state plus the launch logic of the CUDA backend.

    hyper: hyperparams.KernelHyper;  streams / params: host tables (copied to the device);
    theta0: (P,) initial parameters (used by `reset_slots` in per_stream mode).
    """

    def __init__(self, hyper, streams: StreamArrays, params: ParamArrays, theta0: np.ndarray, *,
                 max_wave: int = 65536, threads_per_block: int = 128):
        self.cuda = kernels_cuda.bind_cuda()
        self.kernels = kernels_cuda.get_kernels()
        self.hy = hyper
        self.dtype = np.dtype(streams.h.dtype)
        self.max_wave = int(max_wave)
        self.tpb = int(threads_per_block)
        self._sim = simulator_enabled() or bool(self.cuda.config.ENABLE_CUDASIM)
        self.theta0 = self.cuda.to_device(np.ascontiguousarray(theta0, dtype=self.dtype))
        self.P = param_size(hyper.cell, hyper.D, hyper.H)
        self._scratch: Workspace | None = None
        self._scratch_rows = 0
        self._io: WaveIO | None = None
        self._host: WaveIO | None = None
        self._io_rows = 0
        self.from_host(streams, params)

    # ------------------------------------------------------------ host <-> device

    def from_host(self, streams: StreamArrays, params: ParamArrays) -> None:
        """Replace the device tables with copies of host tables (any number of slots)."""
        dev = lambda a: self.cuda.to_device(np.ascontiguousarray(a))  # noqa: E731
        self.streams = StreamArrays(*(dev(a) for a in streams))
        self.params = ParamArrays(*(dev(a) for a in params))

    def to_host(self) -> tuple[StreamArrays, ParamArrays]:
        """Host copies of the device tables, in the CPU path's format."""
        return (StreamArrays(*(a.copy_to_host() for a in self.streams)),
                ParamArrays(*(a.copy_to_host() for a in self.params)))

    @property
    def capacity(self) -> int:
        return self.streams.h.shape[0]

    def resize(self, capacity: int, moves=()) -> None:
        """As CpuEngine.resize: copy row src to dst for each (src, dst) of `moves`, then
        allocate exactly `capacity` rows, keeping those below it; new rows are zero. Moving
        and shrinking (the state budget's evictions, rare) go through host copies."""
        old = self.capacity
        if moves or capacity < old:
            streams, params = self.to_host()
            move_rows(slot_tables(streams, params, self.hy.shared), moves)
            old = min(capacity, old)
            self.streams = StreamArrays(*(self.cuda.to_device(np.ascontiguousarray(a[:old])) for a in streams))
            if not self.hy.shared:
                self.params = ParamArrays(*(self.cuda.to_device(np.ascontiguousarray(a[:old])) for a in params))
        if capacity <= old:
            return
        cuda = self.cuda

        def grown(a, rows):
            new = cuda.to_device(np.zeros((rows,) + a.shape[1:], dtype=a.dtype))
            if old and a.size:
                new[:old].copy_to_device(a[:old])
            return new

        self.streams = StreamArrays(*(grown(a, capacity) for a in self.streams))
        if not self.hy.shared:
            self.params = ParamArrays(*(grown(a, capacity) for a in self.params))

    def reset_slots(self, slots, seeds) -> None:
        """Fresh state for each slot (fresh weights too in per_stream mode); `seeds` are
        the xorshift states (state.stream_rng_seed of each stream id)."""
        rows = np.ascontiguousarray(slots, dtype=np.int64)
        n = len(rows)
        if n == 0:
            return
        if rows.max() >= self.capacity:
            raise IndexError("slot out of range of the device tables")
        args = ResetArgs(self.cuda.to_device(rows), self.cuda.to_device(np.ascontiguousarray(seeds, dtype=np.int64)),
                         self.theta0)
        self._launch(self.kernels.reset, n, np.int64(n), self._k(args), self._k(self.streams),
                     self._k(self.params), not self.hy.shared)

    # ------------------------------------------------------------ processing

    def process(self, slots, X, learn: bool = True, timestamps=None, out=None, score: bool = True):
        """Judge then (if `learn`) learn each event; same results as kernels_cpu.process_batch
        in per_stream mode. slots (N,) int; X (N, D) float64 with NaN for missing values;
        timestamps (N,) epoch seconds, NaN (or None for all) = unknown; score: False for
        baseline priming.

        Returns kernels_cpu.Outputs of host arrays in event order, written into `out` when
        given.
        """
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        X = np.ascontiguousarray(X, dtype=np.float64)
        N, D = len(slots), self.hy.D
        if X.shape != (N, D):
            raise ValueError(f"X must have shape ({N}, {D}), got {X.shape}")
        T = np.full(N, np.nan) if timestamps is None else np.ascontiguousarray(timestamps, dtype=np.float64)
        if T.shape != (N,):
            raise ValueError(f"timestamps must have shape ({N},), got {T.shape}")
        if out is None:
            out = new_outputs(N, D)
        if N == 0:
            return out
        if N and (slots.min() < 0 or slots.max() >= self.capacity):
            raise IndexError("slot out of range of the device tables")
        ranks = wave_ranks(slots) if learn else np.zeros(N, dtype=np.int64)
        order = np.argsort(ranks, kind="stable")  # by wave, then by arrival
        bounds = np.concatenate([[0], np.cumsum(np.bincount(ranks))])

        self._ensure_io(N)
        host, io = self._host, self._io
        host.slots[:N] = slots[order]
        host.X[:N] = X[order]
        host.T[:N] = T[order]
        io.slots[:N].copy_to_device(host.slots[:N])
        io.X[:N].copy_to_device(host.X[:N])
        io.T[:N].copy_to_device(host.T[:N])
        self._ensure_scratch(min(N, self.max_wave))

        hy = self.hy
        streams, params, scratch = self._k(self.streams), self._k(self.params), self._k(self._scratch)
        for w in range(len(bounds) - 1):
            for start in range(int(bounds[w]), int(bounds[w + 1]), self.max_wave):
                end = min(start + self.max_wave, int(bounds[w + 1]))
                n = end - start
                chunk = self._k(WaveIO(*(a[start:end] for a in io)))
                self._launch(self.kernels.event, n, np.int64(n), bool(learn), bool(score), chunk, streams, params,
                             scratch, hy)
                if learn and hy.shared:
                    self._launch(self.kernels.shared_update, self.P, np.int64(n), chunk, params, scratch, hy)
                    self._launch(self.kernels.shared_finish, n, np.int64(n), chunk, streams, params, scratch, hy)

        for name in Outputs._fields:
            getattr(io, name)[:N].copy_to_host(getattr(host, name)[:N])
        for dst, name in zip(out, Outputs._fields):
            dst[order] = getattr(host, name)[:N]
        return out

    # One event (CpuEngine.process_one) has no parallelism to offer the device, and skipping
    # its second judgement would save nothing next to a kernel launch: it is `process`.
    process_one = process

    def synchronize(self) -> None:
        if not self._sim:
            self.cuda.synchronize()

    # ------------------------------------------------------------ memory

    def bytes_per_stream(self) -> int:
        """Device bytes of one stream slot (its parameter rows too in per_stream mode)."""
        return row_bytes(slot_tables(self.streams, self.params, self.hy.shared))

    def fixed_bytes(self) -> int:
        """Device bytes that do not grow with the streams: shared weights, initial weights,
        the per-thread scratch and the event buffers allocated so far."""
        params = sum(a.nbytes for a in self.params) if self.hy.shared else 0
        buffers = [*(self._scratch or ()), *(self._io or ())]
        return self.theta0.nbytes + params + sum(a.nbytes for a in buffers)

    # ------------------------------------------------------------ internals

    def _k(self, tup):
        """Kernel view of a tuple of device arrays. Under the simulator the raw NumPy
        arrays are passed, since simulated kernels call the compiled CPU helpers."""
        if not self._sim:
            return tup
        return type(tup)(*(getattr(a, "_ary", a) for a in tup))

    def _launch(self, kern, n: int, *args) -> None:
        if n <= 0:
            return
        blocks = (n + self.tpb - 1) // self.tpb
        kern[blocks, self.tpb](*args)

    def _ensure_scratch(self, rows: int) -> None:
        if rows <= self._scratch_rows:
            return
        rows = max(rows, min(2 * self._scratch_rows, self.max_wave))
        hy = self.hy
        ws = make_workspace(hy.cell, hy.D, hy.H, hy.K, self.P, self.dtype)
        self._scratch = Workspace(*(self.cuda.device_array((rows,) + a.shape, dtype=a.dtype) for a in ws))
        self._scratch_rows = rows

    def _ensure_io(self, rows: int) -> None:
        if rows <= self._io_rows:
            return
        rows = max(rows, 2 * self._io_rows)
        cuda, D = self.cuda, self.hy.D
        specs = WaveIO(((rows,), np.float64), ((rows,), np.bool_), ((rows, D), np.float64), ((rows,), np.float64),
                       ((rows,), np.float64), ((rows,), np.float64), ((rows, D), np.float64), ((rows, D), np.float64),
                       ((rows,), np.int64), ((rows, D), np.float64), ((rows,), np.float64), ((rows,), np.bool_))
        self._io = WaveIO(*(cuda.device_array(shape, dtype=dt) for shape, dt in specs))
        self._host = WaveIO(*(cuda.pinned_array(shape, dtype=dt) for shape, dt in specs))
        self._io_rows = rows
