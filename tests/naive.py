"""Slow, obviously-correct NumPy references for the kernels (float64, no caching tricks)."""

from __future__ import annotations

import numpy as np

from streamlstm.params import LSTM, views


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cell_step(cell, theta, x, h, c, D, H):
    """One step on [h, x] with the classical equations; NaN inputs read as 0."""
    W, b, _, _ = (np.asarray(v, dtype=np.float64) for v in views(theta, cell, D, H))
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    if cell == LSTM:
        pre = np.concatenate([h, x]) @ W + b
        f, i, g, o = sigmoid(pre[:H]), sigmoid(pre[H:2 * H]), np.tanh(pre[2 * H:3 * H]), sigmoid(pre[3 * H:])
        c_new = f * c + i * g
        return o * np.tanh(c_new), c_new
    Wh, Wx = W[:H], W[H:]
    z = sigmoid(h @ Wh[:, :H] + x @ Wx[:, :H] + b[:H])
    r = sigmoid(h @ Wh[:, H:2 * H] + x @ Wx[:, H:2 * H] + b[H:2 * H])
    n = np.tanh((r * h) @ Wh[:, 2 * H:] + x @ Wx[:, 2 * H:] + b[2 * H:])
    return (1 - z) * n + z * h, c


def head(theta, h, cell, D, H):
    _, _, Wy, by = views(theta, cell, D, H)
    return h @ np.asarray(Wy, np.float64) + by


def window_loss(theta, cell, D, H, h0, c0, xs, targets, weights, n_loss, loss="mse", delta=1.0):
    """Loss the kernels backpropagate: over the last n_loss targets, weighted mean over
    observed features of 0.5*r^2 (MSE) or Huber(r), r = head(h_{t+1}) - target_t."""
    h, c = np.array(h0, np.float64), np.array(c0, np.float64)
    L = len(xs)
    total = 0.0
    for t in range(L):
        h, c = cell_step(cell, theta, xs[t], h, c, D, H)
        if t >= L - n_loss:
            r = head(theta, h, cell, D, H) - targets[t]
            r = r[~np.isnan(targets[t])]
            if loss == "mse":
                per = 0.5 * r**2
            else:
                a = np.abs(r)
                per = np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))
            if len(r):
                total += weights[t] * per.mean()
    return total


def numerical_gradient(f, theta, eps=1e-6):
    g = np.zeros_like(theta, dtype=np.float64)
    for p in range(theta.size):
        old = theta[p]
        theta[p] = old + eps
        up = f(theta)
        theta[p] = old - eps
        down = f(theta)
        theta[p] = old
        g[p] = (up - down) / (2 * eps)
    return g
