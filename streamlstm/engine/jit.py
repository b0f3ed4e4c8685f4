"""The Numba options every engine kernel compiles with."""

from __future__ import annotations

from numba import njit

from .gates import FASTMATH

# error_model="numpy": no zero-division checks, whose branches would stop vectorisation.
KERNEL_OPTIONS = {"fastmath": FASTMATH, "error_model": "numpy", "cache": True, "nogil": True}
# _nrt=False: no reference counting. With it, every array view a kernel takes (a row, a
# Workspace field, the parameter views) and every array passed to a call that is not inlined
# costs an atomic incref/decref pair: about 27 % of an event's time, for nothing, since the
# kernels allocate nothing and only borrow arrays their caller keeps alive. Numba boxes an
# array returned to Python as its parent without NRT, so a helper that returns a view to
# Python (params.views, kernels_cuda.thread_workspace under the simulator) must keep it.
kernel = njit(**KERNEL_OPTIONS, _nrt=False)
# For every function of the per-event path that takes the state tables or the workspace
# (kernels_cpu: judge_event and learn_judged with all they call that takes them): a call
# that is not inlined passes every field of those tuples by value, about 300 words copied
# on every call, and LLVM's own inlining of such calls is fragile: one array more in the
# workspace once took judging from 2.5 to 4.4 us an event. Inlined at Numba's IR level,
# there is no call and nothing to copy (one stream, H 32: 15-17 -> 12 us an event).
inlined_kernel = njit(**KERNEL_OPTIONS, _nrt=False, inline="always")
