"""Runs the CUDA simulator suite (tests/cuda_sim) in a subprocess with NUMBA_ENABLE_CUDASIM=1.

The simulator flag is read when numba.cuda is first imported, so it cannot share this
process with the PTX compilation tests (which need the real CUDA target). To run the suite
in-process instead: ``NUMBA_ENABLE_CUDASIM=1 pytest -m cuda tests/cuda_sim``. conftest.py
starts the subprocess in the background when collection ends (tests/subprocess_suite.py).
"""

import os

import pytest
from subprocess_suite import Suite, assert_passed

pytest.importorskip("numba_cuda")

pytestmark = pytest.mark.cuda

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
SUBPROCESS_SUITE = None if SIMULATOR else Suite("cuda_sim", {"NUMBA_ENABLE_CUDASIM": "1"})


@pytest.mark.skipif(SIMULATOR, reason="already a simulator session")
def test_cuda_simulator_suite():
    assert_passed(SUBPROCESS_SUITE.result())
