"""Runs the PTX compilation suite (tests/cuda_ptx) in a fresh process.

Known limitation: once a process has compiled the float32 CPU kernels, numba-cuda reuses
the CPU-inlined gate IR and the float32 CUDA build fails to type; a process that compiles
the CUDA kernels first (or only) is fine. The suite therefore runs in its own process.
"""

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent

pytest.importorskip("numba_cuda")


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", reason="compile_ptx needs the real CUDA target")
def test_cuda_kernels_compile_to_ptx():
    env = dict(os.environ, STREAMLSTM_CUDA_PTX="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "cuda_ptx")],
                       env=env, capture_output=True, text=True, timeout=600, cwd=HERE.parent)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout.splitlines()[-1], r.stdout[-2000:]
