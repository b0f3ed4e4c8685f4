"""Runs the CUDA simulator suite (tests/cuda_sim) in a subprocess with NUMBA_ENABLE_CUDASIM=1.

The simulator flag is read when numba.cuda is first imported, so it cannot share this
process with the PTX compilation tests (which need the real CUDA target).
"""

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent

pytest.importorskip("numba_cuda")


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", reason="already a simulator session")
def test_cuda_simulator_suite():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "cuda_sim")],
                       env=env, capture_output=True, text=True, timeout=600, cwd=HERE.parent)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout.splitlines()[-1], r.stdout[-2000:]
