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
