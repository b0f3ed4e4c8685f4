"""Scalar gate math, written once.

These are plain scalar functions on floats using only `math`, so the same source compiles
with `numba.njit` for the CPU kernels and as CUDA device functions for the GPU kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# No 'nnan'/'ninf': missing features are NaN and the kernels test for them.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

# Constants are float32 so float32 kernels stay in single precision (a float64 literal
# would promote every gate to double); with float64 operands they promote exactly.
ZERO = np.float32(0.0)
ONE = np.float32(1.0)


def sigmoid(x):
    return ONE / (ONE + math.exp(-x))


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


SCALAR_FUNCTIONS = (sigmoid, dsigmoid, dtanh, lstm_cell, gru_hidden)

sigmoid_cpu, dsigmoid_cpu, dtanh_cpu, lstm_cell_cpu, gru_hidden_cpu = (
    njit(fastmath=FASTMATH, error_model="numpy", cache=True)(f) for f in SCALAR_FUNCTIONS
)
