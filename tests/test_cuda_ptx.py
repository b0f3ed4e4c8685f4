"""Runs the PTX compilation suite (tests/cuda_ptx) in a fresh process.

Known limitation: once a process has compiled the float32 CPU kernels, numba-cuda reuses
the CPU-inlined gate IR and the float32 CUDA build fails to type; a process that compiles
the CUDA kernels first (or only) is fine. The suite therefore runs in its own process
(``STREAMLSTM_CUDA_PTX=1 pytest tests/cuda_ptx`` runs it directly), which conftest.py starts
in the background when collection ends (tests/subprocess_suite.py).
"""

import os

import pytest
from subprocess_suite import Suite, assert_passed

pytest.importorskip("numba_cuda")

pytestmark = pytest.mark.cuda

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
SUBPROCESS_SUITE = None if SIMULATOR else Suite("cuda_ptx", {"STREAMLSTM_CUDA_PTX": "1"})


@pytest.mark.skipif(SIMULATOR, reason="compile_ptx needs the real CUDA target")
def test_cuda_kernels_compile_to_ptx():
    assert_passed(SUBPROCESS_SUITE.result())
