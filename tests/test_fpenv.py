"""Flush-to-zero in the CPU kernels, and the caller's floating-point mode left alone."""

import numpy as np
import pytest
from numba import njit

from streamlstm import MultiStreamDetector
from streamlstm.engine import cpu_engine
from streamlstm.engine.fpenv import FLUSH_SUBNORMALS, X86, get_fp_control, set_fp_control

pytestmark = pytest.mark.skipif(not X86, reason="MXCSR is x86's; elsewhere the mode is left as it is")

SMALLEST_NORMAL = np.finfo(np.float32).tiny


@njit
def halve(x, flush):
    """x * 0.5 with subnormals flushed (or not), restoring the mode afterwards."""
    caller = get_fp_control()
    if flush:
        set_fp_control(caller | FLUSH_SUBNORMALS)
    y = x[0] * np.float32(0.5)
    set_fp_control(caller)
    return y


def test_flushing_makes_subnormal_results_zero_and_is_undone():
    x = np.array([SMALLEST_NORMAL], np.float32)
    assert halve(x, False) == SMALLEST_NORMAL / 2  # gradual underflow by default
    assert halve(x, True) == 0.0
    assert x[0] * np.float32(0.5) > 0.0  # NumPy, after the kernel: its mode restored


@njit
def fp_control():
    return get_fp_control()


def test_process_batch_restores_the_callers_mode():
    before = fp_control()
    assert not before & FLUSH_SUBNORMALS
    det = MultiStreamDetector(1, hidden_size=4, k2=3, optimizer="adam", seed=0)
    det.process(["a"] * 50, np.sin(np.arange(50.0))[:, None])
    assert fp_control() == before


def test_threaded_shards_restore_every_threads_mode(batch_splits):
    before = fp_control()
    det = MultiStreamDetector(1, hidden_size=4, k2=3, optimizer="adam", seed=0, threads=2)
    det.process([f"s{i % 20}" for i in range(400)], np.sin(np.arange(400.0))[:, None])
    assert batch_splits == [2]  # the batch was split
    assert fp_control() == before
    assert cpu_engine._workers.submit(fp_control).result() == before  # the worker's own word
