"""The flat parameter buffer: layout, named views and initialisation.

Shape legend
  D  inputs (features per event)
  H  hidden units
  G  gate columns: 4H for the LSTM [f | i | g | o], 3H for the GRU [z | r | n]
  P  parameters in the flat buffer

All parameters of one model live in one flat vector `theta` (P,), so that the same buffer
is checkpointed, updated by the optimiser, and shipped to a device. Views:

  W   (H+D, G)  input-and-recurrent weights, stored transposed: rows 0..H-1 multiply the
                previous hidden state, rows H..H+D-1 the input, so the inner loop of the
                cell runs over contiguous gate columns.
  b   (G,)      gate biases (LSTM forget gate initialised to 1)
  Wy  (H, D)    linear head: prediction of the next event = Wy^T h + by
  by  (D,)
"""

from __future__ import annotations

import numpy as np
from numba import njit

LSTM, GRU = 0, 1


@njit(cache=True)
def gate_width(cell: int, H: int) -> int:
    return 4 * H if cell == LSTM else 3 * H


@njit(cache=True)
def param_offsets(cell: int, D: int, H: int) -> tuple[int, int, int, int, int]:
    """Start of W, b, Wy, by and the total P in the flat buffer."""
    G = gate_width(cell, H)
    o_w = 0
    o_b = o_w + (H + D) * G
    o_wy = o_b + G
    o_by = o_wy + H * D
    return o_w, o_b, o_wy, o_by, o_by + D


@njit(cache=True)
def param_size(cell: int, D: int, H: int) -> int:
    return param_offsets(cell, D, H)[4]


@njit(cache=True)
def views(theta: np.ndarray, cell: int, D: int, H: int):
    """Named views (W, b, Wy, by) into a flat buffer `theta` (P,); they share its memory.

    Compiled, so kernels take the same views of parameter and gradient buffers.
    """
    G = gate_width(cell, H)
    o_w, o_b, o_wy, o_by, P = param_offsets(cell, D, H)
    return (
        theta[o_w:o_b].reshape((H + D, G)),
        theta[o_b:o_wy],
        theta[o_wy:o_by].reshape((H, D)),
        theta[o_by:P],
    )


def init_params(cell: int, D: int, H: int, seed: int, dtype) -> np.ndarray:
    """Uniform(-1/sqrt(H), 1/sqrt(H)) weights as in the classical recipe, LSTM forget bias 1.

    Every stream of a model starts from these same values, so a stream's results do not
    depend on which other streams exist.
    """
    rng = np.random.default_rng(seed)
    theta = np.zeros(param_size(cell, D, H), dtype=dtype)
    W, b, Wy, by = views(theta, cell, D, H)
    bound = 1.0 / np.sqrt(H)
    W[:] = rng.uniform(-bound, bound, W.shape)
    Wy[:] = rng.uniform(-bound, bound, Wy.shape)
    if cell == LSTM:
        b[0:H] = 1.0
    return theta
