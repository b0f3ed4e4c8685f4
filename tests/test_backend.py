"""Backend selection, and that importing streamlstm never needs CUDA."""

import logging
import os
import subprocess
import sys

import pytest

from streamlstm.engine.backend import BackendUnavailable, _auto, cuda_device_name, resolve_backend

NO_GPU = cuda_device_name() is None


def test_import_does_not_need_cuda():
    code = ("import sys, builtins\n"
            "real = builtins.__import__\n"
            "def guard(name, *a, **k):\n"
            "    if name.startswith(('numba.cuda', 'numba_cuda', 'cuda')) or (name == 'numba' and a and a[2]\n"
            "            and 'cuda' in a[2]):\n"
            "        raise ImportError('blocked: ' + name)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\n"
            "import streamlstm, streamlstm.engine.backend, streamlstm.engine.kernels_cuda, streamlstm.engine.cuda_engine\n"
            "assert streamlstm.engine.backend.resolve_backend('auto') == 'cpu'\n"
            "assert not any(m.startswith('numba_cuda') or m == 'numba.cuda' for m in sys.modules), "
            "[m for m in sys.modules if 'cuda' in m]\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


def test_cpu_is_always_available():
    assert resolve_backend("cpu") == "cpu"


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("tpu")


@pytest.mark.skipif(not NO_GPU, reason="a CUDA device is present")
def test_auto_falls_back_to_cpu_and_says_so_once(caplog):
    _auto.cache_clear()
    with caplog.at_level(logging.INFO, logger="streamlstm"):
        assert resolve_backend("auto") == "cpu"
        assert resolve_backend("auto") == "cpu"  # a pool's probe detector, then the detector: one line
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "cpu" in caplog.records[0].getMessage()


@pytest.mark.skipif(not NO_GPU, reason="a CUDA device is present")
def test_cuda_without_a_device_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="backend 'cuda' was requested but .*(no CUDA device|numba-cuda)"):
        resolve_backend("cuda")


@pytest.mark.skipif(not NO_GPU, reason="a CUDA device is present")
def test_the_cli_says_it_in_one_line_and_exits_1():
    """It was a 48-line traceback."""
    proc = subprocess.run([sys.executable, "-m", "streamlstm.cli", "run"], input=b'{"stream":"a","value":1}\n',
                          capture_output=True, env={**os.environ, "STREAMLSTM_MODEL__BACKEND": "cuda"}, timeout=120)
    [line] = proc.stderr.decode().splitlines()
    assert proc.returncode == 1 and " ERROR " in line and "backend 'cuda' was requested but" in line


@pytest.mark.skipif(NO_GPU, reason="no CUDA device")
def test_auto_picks_the_gpu():
    assert resolve_backend("auto") == "cuda"
