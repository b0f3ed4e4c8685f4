"""CUDA kernels: a micro-batch of streams advanced one event each, one thread per event.

The host (cuda_engine.CudaEngine) splits a micro-batch into *waves*: wave w holds the
(w+1)-th event of every stream present, so a wave has at most one event per stream and
the events of one stream stay in order across waves. Each wave is launched with one
thread per event (in chunks of at most `max_wave` threads).

Per thread, exactly what `kernels_cpu.process_batch` does for one event:
  1. judge the event               -> kernels_cpu.judge_event (score, alert, regime)
  2. learn it                      -> kernels_cpu.take_judgement (alert bookkeeping, the
                                      regime's step), kernels_cpu.learn_begin (window push,
                                      backward over the window, regularise+clip), the
                                      optimiser update, kernels_cpu.learn_end (statistics,
                                      carried-state step, next forecast).

All the math is written once: these are the `@njit` functions of kernels_cpu / scoring /
gates, which numba-cuda compiles again as device functions when a kernel calls them (they
copy rows with loops, not slice assignment, for that reason). Only the per-event driver
(`event_step`, the body of process_batch's loop) is CUDA-side, because shared weight mode
needs it split at the optimiser update (see below). The helpers below are `@njit` too, so
they also run on the CPU and under the CUDA simulator, where a simulated kernel calls the
compiled CPU versions.

Per-thread workspace: a `Workspace` of global scratch arrays with one leading row per
thread (`thread_workspace(scratch, t)` takes row t of each); no cuda.local arrays, so
sizes (H, K, D) are runtime values and any model size compiles into the same kernel.

Weight modes
  per_stream  one kernel per wave: every thread updates its own stream's parameter row
              right after its backward pass, exactly as the CPU path does; results match
              the CPU path up to floating-point reassociation.
  shared      three kernels per wave:
                event_kernel          score + learn_begin; each thread leaves its (clipped,
                                      weight-decayed) gradient in its own scratch row
                                      `scratch.grad[t]` and whether it trained in io.trained
                shared_update_kernel  one thread per parameter: SUMS the gradient rows of
                                      the threads that trained and applies the optimiser
                                      ONCE per wave (step counter +1 per wave)
                shared_finish_kernel  learn_end (statistics, carried state, forecast) with
                                      the updated weights
              The CPU path applies one optimiser update per event, sequentially; the GPU
              applies one update per wave with the summed gradient (for SGD without
              momentum, n sequential steps equal one summed step to first order in the
              learning rate). A sum rather than a mean keeps the learning rate per event
              the same as on the CPU, and a wave of one event gives exactly the CPU result.

Kernels are compiled lazily (no signatures), so importing this module needs neither a
GPU nor numba-cuda; `get_kernels()` imports numba.cuda and builds the launchable kernels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from . import gates
from .jit import KERNEL_OPTIONS
from .kernels_cpu import (Workspace, copy_row, fill, judge_event, learn_begin, learn_end, optimiser_update,
                          take_judgement)
from .layout import C_RNG, CORR_COV, CORR_PREC

# The CPU options, NRT included (see kernels_cpu.kernel): under the simulator these helpers
# are called from Python, and thread_workspace returns views. numba-cuda recompiles them.
device_fn = njit(**KERNEL_OPTIONS)

cuda = None  # numba.cuda, bound by get_kernels() (kept lazy: importing must not need CUDA)


class WaveIO(NamedTuple):
    """Per-event inputs and outputs of one launch (row t = thread t); the outputs are
    kernels_cpu.Outputs' fields."""

    scores: np.ndarray  # (N,) float64 out
    flags: np.ndarray  # (N,) bool out
    preds: np.ndarray  # (N, D) float64 out, original units
    errors: np.ndarray  # (N,) float64 out
    alert_scores: np.ndarray  # (N,) float64 out
    regime: np.ndarray  # (N,) float64 out
    contributions: np.ndarray  # (N, D) float64 out
    blame: np.ndarray  # (N, D) float64 out
    slots: np.ndarray  # (N,) int64 in: stream slot of each event (distinct within a wave)
    X: np.ndarray  # (N, D) float64 in
    T: np.ndarray  # (N,) float64 in: timestamps, epoch seconds (NaN = unknown)
    trained: np.ndarray  # (N,) bool: the thread's gradient row holds a gradient (shared mode)


class ResetArgs(NamedTuple):
    rows: np.ndarray  # (n,) int64 slots to reset
    seeds: np.ndarray  # (n,) int64 xorshift state of each
    theta0: np.ndarray  # (P,) initial parameters (per_stream mode)


# --------------------------------------------------------------------------- helpers


@device_fn
def thread_workspace(scratch, t):
    """Row t of every scratch array, as the Workspace the CPU functions take."""
    return Workspace(scratch.hs[t], scratch.cs[t], scratch.acts[t], scratch.aux[t], scratch.xin[t], scratch.tgt[t],
                     scratch.dh[t], scratch.dc[t], scratch.dpre[t], scratch.grad[t], scratch.xn[t],
                     scratch.y[t], scratch.dy[t], scratch.findings[t])


@device_fn
def event_step(t, learn, score, io, streams, params, ws, hy):
    """Event t of a wave: the body of kernels_cpu.process_batch's loop.

    In shared mode the optimiser update and `learn_end` are left to the next two kernels.
    """
    s = io.slots[t]
    x = io.X[t]
    Lc, regime_state, L = judge_event(io, t, x, io.T[t], s, streams, ws, score, hy)
    io.trained[t] = False
    if learn:
        surprising = take_judgement(io, t, Lc, regime_state, L, ws.findings, score, s, streams, hy)
        q = 0 if hy.shared else s
        theta = params.theta[q]
        trained = learn_begin(s, surprising, streams, theta, ws, hy)
        if hy.shared:
            io.trained[t] = trained
        else:
            if trained:
                params.step[q] += 1
                optimiser_update(theta, params.m[q], params.v[q], ws.grad, params.step[q], hy)
            learn_end(s, x, io.T[t], io.errors[t], streams, theta, ws, hy)


@device_fn
def shared_update_param(p, n, trained, grad, params, hy):
    """Parameter p of the shared set: sum column p of the gradient rows of the n threads
    of the wave that trained, then one optimiser update of that parameter (the optimiser
    functions are elementwise, so they run on one-element slices)."""
    g = grad.dtype.type(0.0)  # zero of the model's precision
    count = 0
    for r in range(n):
        if trained[r]:
            g += grad[r, p]
            count += 1
    if count > 0:
        grad[0, p] = g  # only this thread touches column p
        step = params.step[0] + 1  # bumped once by shared_finish_kernel's thread 0
        # params.v is (1, 0) for SGD, whose update does not read it.
        optimiser_update(params.theta[0, p:p + 1], params.m[0, p:p + 1], params.v[0, p:p + 1],
                         grad[0, p:p + 1], step, hy)


@device_fn
def count_trained(trained, n):
    count = 0
    for r in range(n):
        if trained[r]:
            count += 1
    return count


@device_fn
def reset_slot(i, args, streams, params, reset_params):
    """Fresh state for slot args.rows[i] (and fresh weights when reset_params)."""
    s = args.rows[i]
    fill(streams.h[s], 0.0)
    fill(streams.c[s], 0.0)
    fill(streams.h0[s], 0.0)
    fill(streams.c0[s], 0.0)
    for table in (streams.hs, streams.cs, streams.acts, streams.aux):
        for t in range(table.shape[1]):
            fill(table[s, t], 0.0)
    for t in range(streams.win.shape[1]):
        fill(streams.win[s, t], 0)  # float16 bits or a float: 0 either way
    fill(streams.winflag[s], 0)
    fill(streams.pred[s], 0.0)
    fill(streams.stats[s], 0.0)
    fill(streams.stats32[s], 0.0)
    for c in range(streams.ring.shape[1]):
        fill(streams.ring[s, c], 0)
    for d in range(streams.tails.shape[1]):
        for k in range(streams.tails.shape[2]):
            fill(streams.tails[s, d, k], 0)
    for d in range(streams.records.shape[1]):
        for k in range(streams.records.shape[2]):
            fill(streams.records[s, d, k], 0)
    for d in range(streams.bins.shape[1]):
        for b in range(streams.bins.shape[2]):
            fill(streams.bins[s, d, b], 0)
        for k in range(streams.cycle.shape[2]):
            fill(streams.cycle[s, d, k], 0.0)
    for d in range(streams.corr.shape[2]):
        fill(streams.corr[s, CORR_COV, d], 0.0)
        fill(streams.corr[s, CORR_PREC, d], 0.0)
        fill(streams.corr_tails[s, d], 0)
    for k in range(streams.counters.shape[1]):
        streams.counters[s, k] = 0
    streams.counters[s, C_RNG] = args.seeds[i]
    if reset_params:
        copy_row(params.theta[s], args.theta0)
        fill(params.m[s], 0.0)
        fill(params.v[s], 0.0)
        params.step[s] = 0


# --------------------------------------------------------------------------- kernels
# Plain Python functions, turned into CUDA kernels by get_kernels(); `cuda` is the
# numba.cuda module bound there (the simulator swaps it for its fake module).


def event_kernel_py(n, learn, score, io, streams, params, scratch, hy):
    t = cuda.grid(1)
    if t < n:
        event_step(t, learn, score, io, streams, params, thread_workspace(scratch, t), hy)


def shared_update_kernel_py(n, io, params, scratch, hy):
    p = cuda.grid(1)
    if p < params.theta.shape[1]:
        shared_update_param(p, n, io.trained, scratch.grad, params, hy)


def shared_finish_kernel_py(n, io, streams, params, scratch, hy):
    t = cuda.grid(1)
    if t < n:
        learn_end(io.slots[t], io.X[t], io.T[t], io.errors[t], streams, params.theta[0], thread_workspace(scratch, t), hy)
        if t == 0 and count_trained(io.trained, n) > 0:
            params.step[0] += 1


def reset_kernel_py(n, args, streams, params, reset_params):
    i = cuda.grid(1)
    if i < n:
        reset_slot(i, args, streams, params, reset_params)


KERNEL_FUNCTIONS = {
    "event": event_kernel_py,
    "shared_update": shared_update_kernel_py,
    "shared_finish": shared_finish_kernel_py,
    "reset": reset_kernel_py,
}


class Kernels(NamedTuple):
    event: object
    shared_update: object
    shared_finish: object
    reset: object


_kernels: Kernels | None = None
_overloads_registered = False


def _cuda_tanh(x):
    """CUDA typing of gates' tanh stub: the same choice as its CPU overload (the float32
    rational function, libm tanh otherwise)."""
    from numba.core import types

    f32 = getattr(gates, "_tanh_float32", None)
    if f32 is not None and isinstance(x, types.Float) and x.bitwidth == 32:
        return f32
    return lambda x: math.tanh(x)


def _register_gate_overloads():
    """gates resolves tanh by precision with a `numba.extending.overload(inline="always")`
    of a Python stub. numba-cuda sees that overload but cannot lower its IR-inlined float32
    body (every arithmetic op on the argument fails to type: "mul(omitted, omitted)"), so
    the stub gets a CUDA overload of its own, which takes precedence for the CUDA target.
    The body is the same function; NVVM inlines it anyway."""
    from numba.cuda.extending import overload as cuda_overload

    for name in ("_tanh_dispatch", "tanh"):
        stub = getattr(gates, name, None)
        if stub is not None and callable(stub) and not hasattr(stub, "py_func"):
            cuda_overload(stub)(_cuda_tanh)


def bind_cuda():
    """Import numba.cuda, bind it for the kernels, and register the CUDA typing of the
    gate functions that the CPU side gives through `numba.extending.overload` (numba-cuda
    keeps its own overload registry). Returns the numba.cuda module."""
    global cuda, _overloads_registered
    from numba import cuda as numba_cuda

    cuda = numba_cuda
    if not _overloads_registered and not numba_cuda.config.ENABLE_CUDASIM:
        _register_gate_overloads()
        _overloads_registered = True
    return numba_cuda


def get_kernels() -> Kernels:
    """The launchable kernels (compiled on first launch for the argument types)."""
    global _kernels
    if _kernels is None:
        numba_cuda = bind_cuda()
        _kernels = Kernels(**{name: numba_cuda.jit(fn) for name, fn in KERNEL_FUNCTIONS.items()})
    return _kernels


# ------------------------------------------------------------- signatures (for tests)


def example_arguments(hy, dtype, n_events: int = 4, n_slots: int = 8) -> dict[str, tuple]:
    """Host arrays shaped and typed as the engine passes them, per kernel name; numba's
    `typeof` of these gives the kernel signatures (used to compile PTX ahead of time)."""
    from .kernels_cpu import make_workspace
    from .params import init_params
    from .state import alloc_params, alloc_streams

    theta0 = init_params(hy.cell, hy.D, hy.H, 0, dtype)
    streams = alloc_streams(n_slots, hy, dtype)
    params = alloc_params(1 if hy.shared else n_slots, theta0, hy.optimizer == 0)
    ws = make_workspace(hy.cell, hy.D, hy.H, hy.K, theta0.size, dtype)
    scratch = Workspace(*(np.zeros((n_events,) + a.shape, a.dtype) for a in ws))
    N, D = n_events, hy.D
    io = WaveIO(np.zeros(N), np.zeros(N, dtype=bool), np.zeros((N, D)), np.zeros(N), np.zeros(N), np.zeros(N),
                np.zeros((N, D)), np.zeros((N, D)), np.zeros(N, dtype=np.int64), np.zeros((N, D)), np.zeros(N),
                np.zeros(N, dtype=bool))
    reset = ResetArgs(np.zeros(N, dtype=np.int64), np.zeros(N, dtype=np.int64), theta0)
    n = np.int64(N)
    return {
        "event": (n, True, True, io, streams, params, scratch, hy),
        "shared_update": (n, io, params, scratch, hy),
        "shared_finish": (n, io, streams, params, scratch, hy),
        "reset": (n, reset, streams, params, True),
    }
