"""Choosing the compute backend: the Numba CPU kernels or the CUDA kernels.

Importing streamlstm never needs numba-cuda or a CUDA driver: `numba.cuda` is imported
only inside these functions, and only when the CUDA backend is asked for or probed.

>>> resolve_backend("cpu")
'cpu'
"""

from __future__ import annotations

import functools
import logging
import os

from .hyperparams import BACKEND

log = logging.getLogger("streamlstm")

BACKENDS = BACKEND.spec.options  # ("cpu", "cuda", "auto")


def simulator_enabled() -> bool:
    """Whether Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1, read at import)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_device_name() -> str | None:
    """Name of the current CUDA device, or None when there is no usable device.

    The CUDA simulator counts as a device (named "CUDA simulator") so that the CUDA
    path can be tested without a GPU; `resolve_backend("auto")` never picks it.
    """
    try:
        from numba import cuda
    except Exception:  # numba-cuda not installed (or numba without a CUDA target)
        return None
    if simulator_enabled():
        return "CUDA simulator"
    try:
        if not cuda.is_available():
            return None
        name = cuda.get_current_device().name
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # no driver, driver/toolkit mismatch, device busy...
        return None


def _why_no_cuda() -> str:
    try:
        from numba import cuda  # noqa: F401
    except Exception as exc:
        return (f"numba-cuda is not importable ({type(exc).__name__}: {exc}); "
                "install it with: pip install 'streamlstm[cuda]'")
    return "no CUDA device was found (numba.cuda.is_available() is False: no GPU or no driver)"


class BackendUnavailable(RuntimeError):
    """The configured backend cannot run here (no CUDA device for 'cuda'); the message says why."""


def resolve_backend(name: str) -> str:
    """'cpu' or 'cuda' for a requested backend name ('cpu', 'cuda' or 'auto').

    'auto' picks 'cuda' when a real CUDA device is present (never the simulator) and logs
    one INFO line (once) saying which it chose. 'cuda' without a device raises
    BackendUnavailable.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "cpu":
        return "cpu"
    if name == "auto":
        return _auto()
    if cuda_device_name() is None:
        raise BackendUnavailable(f"backend 'cuda' was requested but {_why_no_cuda()}; "
                                 "use backend='cpu' or backend='auto'")
    return "cuda"


@functools.cache
def _auto() -> str:
    """The backend 'auto' resolves to, said once per process (a pool sizes a model with a
    probe detector before it builds the detector itself)."""
    device = None if simulator_enabled() else cuda_device_name()
    if device is None:
        log.info("backend auto: no CUDA device, using the cpu backend")
        return "cpu"
    log.info("backend auto: using the cuda backend on %s", device)
    return "cuda"


def make_engine(backend: str, hyper, streams, params, theta0, threads: int):
    """The engine of a resolved backend ('cpu' or 'cuda') over these host tables (taken over
    by the CPU engine, copied to the device by the CUDA one); see engine/cpu_engine.py for
    the interface both have. `threads` (the setting) is the CPU engine's; the CUDA engine
    has its own parallelism."""
    if backend == "cuda":
        from .cuda_engine import CudaEngine

        return CudaEngine(hyper, streams, params, theta0)
    from .cpu_engine import CpuEngine

    return CpuEngine(hyper, streams, params, theta0, threads)
