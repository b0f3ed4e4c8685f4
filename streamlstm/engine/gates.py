"""Scalar gate math, written once.

These are plain scalar functions on floats using only `math`, so the same source compiles
with `numba.njit` for the CPU kernels and as CUDA device functions for the GPU kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

# No 'nnan'/'ninf': missing features are NaN and the kernels test for them.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

# Constants are float32 so float32 kernels stay in single precision (a float64 literal
# would promote every gate to double); with float64 operands they promote exactly.
ZERO = np.float32(0.0)
ONE = np.float32(1.0)


HALF = np.float32(0.5)

# float32 tanh as a rational function (Eigen's minimax fit; |error| < 3e-7 on the clamped
# range, beyond which tanh is +-1 in float32). Unlike libm's tanhf it vectorises, which
# makes the gate activations ~15x cheaper. float64 keeps libm's exact tanh.
_CLAMP = np.float32(7.90531110763549805)
_P13, _P11, _P9, _P7, _P5, _P3, _P1 = (np.float32(c) for c in (
    -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
    1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03))
_Q6, _Q4, _Q2, _Q0 = (np.float32(c) for c in (
    1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))


def _tanh_float32(x):
    x = max(min(x, _CLAMP), -_CLAMP)
    x2 = x * x
    p = x2 * (x2 * (x2 * (x2 * (x2 * (x2 * _P13 + _P11) + _P9) + _P7) + _P5) + _P3) + _P1
    q = x2 * (x2 * (x2 * _Q6 + _Q4) + _Q2) + _Q0
    return x * p / q


def _tanh_dispatch(x):
    """Stand-in resolved at compile time by the overload below (by precision)."""
    return math.tanh(x)


@overload(_tanh_dispatch, target="cpu", inline="always", fastmath=FASTMATH)  # CUDA: kernels_cuda registers its own
def _tanh_by_precision(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return _tanh_float32
    return lambda x: math.tanh(x)


def tanh(x):
    return _tanh_dispatch(x)


def sigmoid(x):
    return HALF * _tanh_dispatch(HALF * x) + HALF


def dsigmoid(y):
    """Derivative of the sigmoid at its output y."""
    return y * (ONE - y)


def dtanh(y):
    """Derivative of tanh at its output y."""
    return ONE - y * y


def lstm_cell(f, i, g, c_prev):
    """New cell state C = f*C_prev + i*C~."""
    return f * c_prev + i * g


def gru_hidden(z, n, h_prev):
    """New hidden state h = (1-z)*n + z*h_prev."""
    return (ONE - z) * n + z * h_prev


SCALAR_FUNCTIONS = (sigmoid, tanh, dsigmoid, dtanh, lstm_cell, gru_hidden)

sigmoid_cpu, tanh_cpu, dsigmoid_cpu, dtanh_cpu, lstm_cell_cpu, gru_hidden_cpu = (
    # Inlined into the kernels' loops (a call per element would stop vectorisation).
    njit(fastmath=FASTMATH, error_model="numpy", inline="always")(f) for f in SCALAR_FUNCTIONS
)
