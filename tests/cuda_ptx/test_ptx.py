"""Every CUDA kernel compiles to PTX (no GPU needed).

numba-cuda compiles a device function for the current device's compute capability,
asking the driver for it even inside `compile_ptx(cc=...)`; `fake_device` answers for it.
Kernels are not specialised by cell (the cell is a runtime code), so float32 and float64
builds cover LSTM and GRU; the GRU case still compiles with its own (empty) cell-state
shapes.
"""

import contextlib
import os
import types as pytypes

import numpy as np
import pytest

pytest.importorskip("numba_cuda")
pytestmark = pytest.mark.cuda
if os.environ.get("STREAMLSTM_CUDA_PTX") != "1":
    pytest.skip("needs a process of its own: STREAMLSTM_CUDA_PTX=1 pytest tests/cuda_ptx (tests/test_cuda_ptx.py "
                "runs it so)", allow_module_level=True)
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("compile_ptx does not exist under the CUDA simulator", allow_module_level=True)

import numba  # noqa: E402
from numba import cuda  # noqa: E402

from streamlstm.engine import hyperparams, kernels_cuda  # noqa: E402


def target_cc():
    """(9, 0) without a GPU; the device's own capability with one, so device functions
    cached in this process stay usable for real launches."""
    try:
        if cuda.is_available():
            return tuple(cuda.get_current_device().compute_capability)
    except Exception:
        pass
    return (9, 0)


@contextlib.contextmanager
def fake_device(cc):
    import numba.cuda.dispatcher as cdisp

    orig = cdisp.get_current_device
    cdisp.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        cdisp.get_current_device = orig


def hyper(cell, dtype, shared, optimizer):
    settings = {**hyperparams.DEFAULTS, "cell": cell, "dtype": dtype, "hidden_size": 8, "k2": 4,
                "optimizer": optimizer}
    return hyperparams.kernel_hyper(settings, 2, shared)


CASES = [("lstm", "float32", True, "sgd", None), ("gru", "float32", False, "adam", ["event"]),
         ("lstm", "float64", False, "adam", ["event", "shared_update"])]


@pytest.mark.parametrize("cell,dtype,shared,optimizer,names", CASES, ids=["lstm-f32", "gru-f32", "lstm-f64"])
def test_kernels_compile_to_ptx(cell, dtype, shared, optimizer, names):
    kernels_cuda.bind_cuda()
    hy = hyper(cell, dtype, shared, optimizer)
    examples = kernels_cuda.example_arguments(hy, np.dtype(dtype))
    names = names or list(kernels_cuda.KERNEL_FUNCTIONS)
    cc = target_cc()
    for name in names:
        sig = tuple(numba.typeof(a) for a in examples[name])
        with fake_device(cc):
            ptx, _ = cuda.compile_ptx(kernels_cuda.KERNEL_FUNCTIONS[name], sig, cc=cc)
        assert f".target sm_{cc[0]}{cc[1]}" in ptx, name
        assert ".visible .entry" in ptx, name


def test_float32_gates_stay_single_precision():
    """The gate math called from the kernels keeps float32 in float32 (the CUDA overload
    of gates' tanh stub is registered): no double-precision arithmetic in a cell step."""
    from streamlstm.engine.kernels_cpu import cell_forward

    kernels_cuda.bind_cuda()

    def step(h, c, act, aux, x, W, b, cell):
        cell_forward(h[1], c[1], act, aux, x, h[0], c[0], W, b, cell, 4, 2)

    f32 = numba.float32
    sig = (f32[:, ::1], f32[:, ::1], f32[::1], f32[::1], f32[::1], f32[:, ::1], f32[::1], numba.int64)
    with fake_device((9, 0)):
        ptx, _ = cuda.compile_ptx(step, sig, cc=(9, 0))
    body = ptx.split(".visible .entry")[1]
    assert ".f64" not in body
