"""Compiled CPU kernels: LSTM/GRU cells, truncated BPTT, optimisers, the per-event step.

Shape legend
  D  inputs (features per event)
  H  hidden units;  Hc = H for the LSTM cell state, 0 for the GRU (it has none)
  G  gate columns: 4H for the LSTM [f | i | g | o], 3H for the GRU [z | r | n]
  K  BPTT window (k2): training unrolls the cell over the last K inputs
  P  parameters in one flat buffer (see params.py for the views W, b, Wy, by)
  S  stream slots of a state table;  Q  parameter sets (S per_stream, 1 shared)

All functions are pure over arrays they are handed (nothing is allocated per event) and
use only `math`, so the same source also compiles for the CUDA target. Forward/backward
come in named pairs; backward functions accumulate parameter gradients with `+=`.
Missing inputs are NaN: a NaN input feeds the cell as 0, a NaN target is left out of the
loss.

Truncated BPTT(k1, k2): each stream keeps its last K+1 normalised inputs. Every k1 events
the loss of the last k1 predictions is backpropagated through the K steps of the window
and the weights are updated. The carried state (h, c) is advanced one step per event with
the current weights and never reset. The forward cache backward needs comes from either
  cached window  (per_stream mode; shared mode with record_window): each carried step
                 records its activations, so the gradient runs through the trajectory the
                 stream actually took (Williams & Peng's online BPTT): one cell step
                 forward per event, ~15 KB per stream at H=32, K=16;
  re-run window  (shared mode by default, or input dropout): only the state from before
                 the oldest input is kept and the window is re-run with the current
                 weights, K+1 forward steps per event, so a stream costs about 1 KiB;
                 without input dropout, the carried state then continues from the
                 re-run's last state (learn_begin).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .compact import F16, load_f16_row, narrow_value, store_f16_row
from .fpenv import FLUSH_SUBNORMALS, get_fp_control, set_fp_control
from .gates import ONE, ZERO, dsigmoid_cpu, dtanh_cpu, gru_hidden_cpu, lstm_cell_cpu, sigmoid_cpu, tanh_cpu
from .jit import inlined_kernel, kernel
from .layout import C_RNG, C_SEEN, C_SINCE, C_TICKS, C_WIN, FIND_BLAME, FIND_GAP, findings_rows
from .params import LSTM, views
from .scoring import (alert_learn, alert_step, bounded, feature_evidence, forecast_judged, holds, judged,
                      learn_statistics, missed_events, regime_learn, regime_step, rms, scaler_std, straddles_gap,
                      to_score, value_surprise)


class Outputs(NamedTuple):
    """What a micro-batch of N events gives, row n for event n (see judge_event)."""

    scores: np.ndarray  # (N,) float64: how unusual the event is, in [0, 1)
    flags: np.ndarray  # (N,) bool: an alert (one per incident)
    preds: np.ndarray  # (N, D) float64: the forecast of the event, original units
    errors: np.ndarray  # (N,) float64: RMS prediction error, normalised units (NaN: none)
    alert_scores: np.ndarray  # (N,) float64: the alert's strength (0 in a cooldown; flag at threshold)
    regime: np.ndarray  # (N,) float64: P(the stream is in an abnormal state)
    contributions: np.ndarray  # (N, D) float64: each feature's own evidence, -log10 units
    blame: np.ndarray  # (N, D) float64: the regime's P(feature d is the abnormal one | abnormal)


def new_outputs(N: int, D: int) -> Outputs:
    return Outputs(np.zeros(N), np.zeros(N, dtype=bool), np.empty((N, D)), np.empty(N), np.zeros(N), np.zeros(N),
                   np.zeros((N, D)), np.zeros((N, D)))


class Judgement(NamedTuple):
    """What `judge_one` keeps of the event it judged, so that `learn_one` can learn that
    event without judging it again (the river API scores each event, then learns it)."""

    event: np.ndarray  # (3 + D,) float64: the event's slot, score flag, time and values
    verdict: np.ndarray  # (3,) float64: (Lc, regime_state, L), as judge_event returned them
    xn: np.ndarray  # (D,) model dtype: the event normalised (ws.xn as judging left it)
    blame: np.ndarray  # (D,) float64: the regime's blame after the event (ws.findings[FIND_BLAME])


def new_judgement(D: int, dtype) -> Judgement:
    return Judgement(np.full(3 + D, np.nan), np.zeros(3), np.zeros(D, dtype=dtype), np.zeros(D))


class Workspace(NamedTuple):
    """Scratch buffers reused by every event (the forward cache is what backward needs)."""

    hs: np.ndarray  # (K+1, H)  hidden states of the window, hs[0] = state at its start
    cs: np.ndarray  # (K+1, Hc) cell states of the window
    acts: np.ndarray  # (K, G)  activated gates of each step
    aux: np.ndarray  # (K, H)  tanh(c) per step (LSTM only)
    xin: np.ndarray  # (K, D)  window inputs after dropout
    tgt: np.ndarray  # (K, D)  the window's targets that carry a loss, as floats (learn_begin)
    dh: np.ndarray  # (2, H)  gradient w.r.t. h, double-buffered across steps
    dc: np.ndarray  # (2, Hc)
    dpre: np.ndarray  # (K, G)  gradient w.r.t. gate pre-activations of each step
    grad: np.ndarray  # (P,)  flat gradient, same layout as theta
    xn: np.ndarray  # (D,)  the event, normalised
    y: np.ndarray  # (D,)  head output
    dy: np.ndarray  # (D,)  gradient w.r.t. head output
    findings: np.ndarray  # (findings_rows(D), D) float64: what judging found per feature (layout.FIND_*), and scratch


def make_workspace(cell: int, D: int, H: int, K: int, P: int, dtype) -> Workspace:
    G = 4 * H if cell == LSTM else 3 * H
    Hc = H if cell == LSTM else 0
    z = lambda *shape: np.zeros(shape, dtype=dtype)  # noqa: E731
    return Workspace(
        hs=z(K + 1, H), cs=z(K + 1, Hc), acts=z(K, G), aux=z(K, H), xin=z(K, D), tgt=z(K, D),
        dh=z(2, H), dc=z(2, Hc), dpre=z(K, G), grad=z(P), xn=z(D), y=z(D), dy=z(D),
        findings=np.zeros((findings_rows(D), D)),
    )


# ----------------------------------------------------------------------------- cells


@kernel
def lstm_step_forward(h, c, act, tc, x, h_prev, c_prev, W, b, H, D):
    """One LSTM step; caches activated gates `act` and tanh(c) `tc` for backward.

    h, c (H,) out;  act (4H,) out [f, i, C~, o];  tc (H,) out
    x (D,) in;  h_prev, c_prev (H,) in;  W (H+D, 4H);  b (4H,)
    """
    G = 4 * H
    for g in range(G):
        act[g] = b[g]
    # Four rows of W per pass, so act is loaded and stored once per four rows, not per row.
    j = 0
    while j + 4 <= H:
        a0, a1, a2, a3 = h_prev[j], h_prev[j + 1], h_prev[j + 2], h_prev[j + 3]
        for g in range(G):
            act[g] += a0 * W[j, g] + a1 * W[j + 1, g] + a2 * W[j + 2, g] + a3 * W[j + 3, g]
        j += 4
    while j < H:
        a = h_prev[j]
        for g in range(G):
            act[g] += a * W[j, g]
        j += 1
    for d in range(D):
        a = x[d]
        if not math.isnan(a):
            for g in range(G):
                act[g] += a * W[H + d, g]
    # Simple loops per gate block so each one vectorises.
    for k in range(2 * H):
        act[k] = sigmoid_cpu(act[k])
    for k in range(2 * H, 3 * H):
        act[k] = tanh_cpu(act[k])
    for k in range(3 * H, G):
        act[k] = sigmoid_cpu(act[k])
    for k in range(H):
        c[k] = lstm_cell_cpu(act[k], act[H + k], act[2 * H + k], c_prev[k])
        tc[k] = tanh_cpu(c[k])
        h[k] = act[3 * H + k] * tc[k]


@kernel
def lstm_step_backward(dh_prev, dc_prev, db, dpre, dh, dc, act, tc, c_prev, W, H):
    """Backward of `lstm_step_forward`, except for dW: see `lstm_weight_gradient`.

    dh_prev, dc_prev (H,) out (overwritten);  db (4H,) accumulated with +=
    dpre (4H,) out: gradient w.r.t. the gate pre-activations
    dh, dc (H,) in: gradients w.r.t. this step's h and c
    act (4H,), tc (H,) forward cache;  c_prev (H,), W (H+D, 4H) as forward
    """
    G = 4 * H
    # One loop per output: a loop over many arrays vectorises behind a runtime overlap check
    # of every (stored, loaded) pair, which took longer than its arithmetic.
    for k in range(H):  # dc_prev holds the gradient w.r.t. c until the last loop
        dc_prev[k] = dc[k] + dh[k] * act[3 * H + k] * dtanh_cpu(tc[k])
    for k in range(H):
        dpre[k] = dc_prev[k] * c_prev[k] * dsigmoid_cpu(act[k])
    for k in range(H):
        dpre[H + k] = dc_prev[k] * act[2 * H + k] * dsigmoid_cpu(act[H + k])
    for k in range(H):
        dpre[2 * H + k] = dc_prev[k] * act[H + k] * dtanh_cpu(act[2 * H + k])
    for k in range(H):
        dpre[3 * H + k] = dh[k] * tc[k] * dsigmoid_cpu(act[3 * H + k])
    for k in range(H):
        dc_prev[k] *= act[k]
    for g in range(G):
        db[g] += dpre[g]
    # Four rows of W per pass: each dpre value loaded feeds four FMAs (the loop is bound by
    # loads, not FMAs).
    j = 0
    while j + 4 <= H:
        s0 = s1 = s2 = s3 = ZERO
        for g in range(G):
            p = dpre[g]
            s0 += W[j, g] * p
            s1 += W[j + 1, g] * p
            s2 += W[j + 2, g] * p
            s3 += W[j + 3, g] * p
        dh_prev[j], dh_prev[j + 1], dh_prev[j + 2], dh_prev[j + 3] = s0, s1, s2, s3
        j += 4
    while j < H:
        s = ZERO
        for g in range(G):
            s += W[j, g] * dpre[g]
        dh_prev[j] = s
        j += 1


@kernel
def zero_nan(a):
    """a, or 0 where it is NaN (a missing input)."""
    return ZERO if math.isnan(a) else a


@kernel
def lstm_weight_gradient(dW, Z, dpre, L):
    """dW (R, G) += sum over steps t < L of outer(Z[t], dpre[t]); NaN in Z reads as 0.

    Z (>=L, R): what row r of W multiplied at step t (h_prev or the input);  dpre (>=L, G)
    One product over the window instead of a rank-1 update per step, which loads and stores
    all of dW every step and is bound by those loads and stores: here each pass takes four
    rows and four steps, so a dpre value loaded feeds four FMAs and a dW value is loaded and
    stored once per four steps (the 16 multipliers and 4 partial sums fit in registers).
    """
    R, G = dW.shape
    r = 0
    while r + 4 <= R:
        t = 0
        while t + 4 <= L:
            a0, a1, a2, a3 = zero_nan(Z[t, r]), zero_nan(Z[t + 1, r]), zero_nan(Z[t + 2, r]), zero_nan(Z[t + 3, r])
            b0, b1, b2, b3 = (zero_nan(Z[t, r + 1]), zero_nan(Z[t + 1, r + 1]), zero_nan(Z[t + 2, r + 1]),
                              zero_nan(Z[t + 3, r + 1]))
            c0, c1, c2, c3 = (zero_nan(Z[t, r + 2]), zero_nan(Z[t + 1, r + 2]), zero_nan(Z[t + 2, r + 2]),
                              zero_nan(Z[t + 3, r + 2]))
            d0, d1, d2, d3 = (zero_nan(Z[t, r + 3]), zero_nan(Z[t + 1, r + 3]), zero_nan(Z[t + 2, r + 3]),
                              zero_nan(Z[t + 3, r + 3]))
            for g in range(G):
                p0, p1, p2, p3 = dpre[t, g], dpre[t + 1, g], dpre[t + 2, g], dpre[t + 3, g]
                dW[r, g] += a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3
                dW[r + 1, g] += b0 * p0 + b1 * p1 + b2 * p2 + b3 * p3
                dW[r + 2, g] += c0 * p0 + c1 * p1 + c2 * p2 + c3 * p3
                dW[r + 3, g] += d0 * p0 + d1 * p1 + d2 * p2 + d3 * p3
            t += 4
        while t < L:
            a, b, c, d = zero_nan(Z[t, r]), zero_nan(Z[t, r + 1]), zero_nan(Z[t, r + 2]), zero_nan(Z[t, r + 3])
            for g in range(G):
                p = dpre[t, g]
                dW[r, g] += a * p
                dW[r + 1, g] += b * p
                dW[r + 2, g] += c * p
                dW[r + 3, g] += d * p
            t += 1
        r += 4
    while r < R:
        for t in range(L):
            a = zero_nan(Z[t, r])
            for g in range(G):
                dW[r, g] += a * dpre[t, g]
        r += 1


@kernel
def gru_step_forward(h, act, x, h_prev, W, b, H, D):
    """One GRU step (Cho et al. 2014): z, r gates; n = tanh(W_n x + U_n (r*h_prev) + b_n).

    h (H,) out;  act (3H,) out [z, r, n] activated;  x (D,);  h_prev (H,)
    W (H+D, 3H);  b (3H,)
    """
    G = 3 * H
    for g in range(G):
        act[g] = b[g]
    for d in range(D):
        a = x[d]
        if not math.isnan(a):
            for g in range(G):
                act[g] += a * W[H + d, g]
    for j in range(H):
        a = h_prev[j]
        for g in range(2 * H):
            act[g] += a * W[j, g]
    for k in range(2 * H):
        act[k] = sigmoid_cpu(act[k])
    for j in range(H):
        a = act[H + j] * h_prev[j]
        for k in range(H):
            act[2 * H + k] += a * W[j, 2 * H + k]
    for k in range(H):
        n = tanh_cpu(act[2 * H + k])
        act[2 * H + k] = n
        h[k] = gru_hidden_cpu(act[k], n, h_prev[k])


@kernel
def gru_step_backward(dh_prev, dW, db, dpre, dh, act, x, h_prev, W, H, D):
    """Backward of `gru_step_forward`.

    dh_prev (H,) out (overwritten);  dW (H+D, 3H), db (3H,) accumulated with +=
    dpre (3H,) scratch;  dh (H,) in;  act (3H,) forward cache;  x, h_prev, W as forward
    """
    G = 3 * H
    for k in range(H):
        z, n = act[k], act[2 * H + k]
        dpre[k] = dh[k] * (h_prev[k] - n) * dsigmoid_cpu(z)
        dpre[2 * H + k] = dh[k] * (ONE - z) * dtanh_cpu(n)
    # Candidate columns see r*h_prev; this pass also yields the reset-gate gradient.
    for j in range(H):
        r = act[H + j]
        a = r * h_prev[j]
        s = ZERO
        for k in range(H):
            dW[j, 2 * H + k] += a * dpre[2 * H + k]
            s += W[j, 2 * H + k] * dpre[2 * H + k]
        dpre[H + j] = s * h_prev[j] * dsigmoid_cpu(r)
        dh_prev[j] = dh[j] * act[j] + s * r
    for j in range(H):
        a = h_prev[j]
        s = ZERO
        for g in range(2 * H):
            dW[j, g] += a * dpre[g]
            s += W[j, g] * dpre[g]
        dh_prev[j] += s
    for g in range(G):
        db[g] += dpre[g]
    for d in range(D):
        a = x[d]
        if not math.isnan(a):
            for g in range(G):
                dW[H + d, g] += a * dpre[g]


@kernel
def cell_forward(h, c, act, aux, x, h_prev, c_prev, W, b, cell, H, D):
    """One step of either cell; `c`, `c_prev` are (0,) for the GRU and `aux` unused."""
    if cell == LSTM:
        lstm_step_forward(h, c, act, aux, x, h_prev, c_prev, W, b, H, D)
    else:
        gru_step_forward(h, act, x, h_prev, W, b, H, D)


@kernel
def cell_backward(dh_prev, dc_prev, dW, db, dpre, dh, dc, act, aux, x, h_prev, c_prev, W, cell, H, D):
    """One step of either cell's backward; the LSTM leaves dW to `lstm_weight_gradient`."""
    if cell == LSTM:
        lstm_step_backward(dh_prev, dc_prev, db, dpre, dh, dc, act, aux, c_prev, W, H)
    else:
        gru_step_backward(dh_prev, dW, db, dpre, dh, act, x, h_prev, W, H, D)


# ------------------------------------------------------------------------------ head


@kernel
def head_forward(y, h, Wy, by, H, D):
    """y (D,) out = Wy^T h + by;  h (H,);  Wy (H, D);  by (D,)"""
    for d in range(D):
        y[d] = by[d]
    for j in range(H):
        a = h[j]
        for d in range(D):
            y[d] += a * Wy[j, d]


@kernel
def head_backward(dWy, dby, dh, dy, h, Wy, H, D):
    """dWy (H, D), dby (D,), dh (H,) accumulated with +=;  dy (D,) in;  h (H,), Wy as forward"""
    for d in range(D):
        dby[d] += dy[d]
    for j in range(H):
        a = h[j]
        s = ZERO
        for d in range(D):
            dWy[j, d] += a * dy[d]
            s += Wy[j, d] * dy[d]
        dh[j] += s


@kernel
def loss_gradient(dy, y, target, weight, loss, huber_delta, D):
    """dy (D,) out: weighted gradient of the mean over observed features of
    0.5*r^2 (MSE) or Huber(r) with r = y - target; NaN targets are left out."""
    n = 0
    for d in range(D):
        if not math.isnan(target[d]):
            n += 1
    scale = dy.dtype.type(weight / max(n, 1))
    for d in range(D):
        t = target[d]
        if math.isnan(t):
            dy[d] = 0.0
        else:
            r = y[d] - t
            if loss == 1:
                r = min(max(r, -huber_delta), huber_delta)
            dy[d] = scale * r


# ------------------------------------------------------------------- window (BPTT)


@kernel
def loss_weight(flagged, hy):
    """The loss weight of a target: anomaly_weight if it was flagged (the anomaly policy)."""
    return hy.anomaly_weight if flagged else 1.0


@inlined_kernel
def window_forward(ws, theta, L, cell, H, D):
    """Run the cell over ws.xin[:L] from (ws.hs[0], ws.cs[0]); fills the forward cache."""
    W, b, _, _ = views(theta, cell, D, H)
    for t in range(L):
        cell_forward(ws.hs[t + 1], ws.cs[t + 1], ws.acts[t], ws.aux[t], ws.xin[t],
                     ws.hs[t], ws.cs[t], W, b, cell, H, D)


@inlined_kernel
def window_backward(ws, theta, targets, flags, L, n_loss, hy):
    """Accumulate into ws.grad the gradient of the loss of the last `n_loss` predictions.

    targets (L, D): targets[t] is predicted from ws.hs[t+1];  flags (L,): whether each
    target was flagged (its loss weight `loss_weight`)
    The forward cache in `ws` must come from `window_forward` over the same L steps.
    ws.dpre[t] keeps step t's gate gradient until the LSTM's dW is formed after the loop.
    """
    H, D, cell = hy.H, hy.D, hy.cell
    W, _, Wy, by = views(theta, cell, D, H)
    dW, db, dWy, dby = views(ws.grad, cell, D, H)
    cur = 0
    ws.dh[cur, :] = 0.0
    ws.dc[cur, :] = 0.0
    for t in range(L - 1, -1, -1):
        weight = loss_weight(flags[t], hy)
        if t >= L - n_loss and weight > 0.0:
            head_forward(ws.y, ws.hs[t + 1], Wy, by, H, D)
            loss_gradient(ws.dy, ws.y, targets[t], weight, hy.loss, hy.huber_delta, D)
            head_backward(dWy, dby, ws.dh[cur], ws.dy, ws.hs[t + 1], Wy, H, D)
        nxt = 1 - cur
        cell_backward(ws.dh[nxt], ws.dc[nxt], dW, db, ws.dpre[t], ws.dh[cur], ws.dc[cur],
                      ws.acts[t], ws.aux[t], ws.xin[t], ws.hs[t], ws.cs[t], W, cell, H, D)
        cur = nxt
    if cell == LSTM:
        lstm_weight_gradient(dW[:H], ws.hs, ws.dpre, L)
        lstm_weight_gradient(dW[H:], ws.xin, ws.dpre, L)


# ------------------------------------------------------------------------ optimisers


@kernel
def regularise_and_clip(grad, theta, weight_decay, clip_norm):
    """grad (P,) += weight_decay*theta, then rescaled to global norm <= clip_norm."""
    ss = ZERO
    if weight_decay == 0.0:  # the default: a pass that only reads, twice as fast
        for p in range(grad.shape[0]):
            ss += grad[p] * grad[p]
    else:
        for p in range(grad.shape[0]):
            grad[p] += weight_decay * theta[p]
            ss += grad[p] * grad[p]
    norm = math.sqrt(ss)
    if norm > clip_norm:
        scale = clip_norm / norm
        for p in range(grad.shape[0]):
            grad[p] *= scale


ADAM_EPS = 1e-8


@kernel
def adam_update(theta, m, v, grad, step, lr, beta1, beta2):
    """Adam (Kingma & Ba) with bias correction; `step` counts updates from 1.

    theta -= lr * m_hat / sqrt(v_hat + eps^2): eps inside the square root (as in Optax's
    `eps_root`) makes the step a product with 1/sqrt, which compiles to the vector
    reciprocal-square-root estimate plus a Newton step instead of a square root and a
    division (-0.5 us of a 10 us event); the two forms differ only when sqrt(v_hat) ~ eps."""
    real = theta.dtype.type  # keep float32 models in single precision
    step_size = real(lr / (1.0 - beta1**step))
    c2 = real(1.0 / (1.0 - beta2**step))
    eps2 = real(ADAM_EPS * ADAM_EPS)
    for p in range(theta.shape[0]):
        g = grad[p]
        m[p] = beta1 * m[p] + (ONE - beta1) * g
        v[p] = beta2 * v[p] + (ONE - beta2) * g * g
        theta[p] -= step_size * m[p] / math.sqrt(v[p] * c2 + eps2)


@kernel
def sgd_update(theta, m, grad, lr, momentum):
    """SGD with (heavy-ball) momentum."""
    for p in range(theta.shape[0]):
        m[p] = momentum * m[p] + grad[p]
        theta[p] -= lr * m[p]


# ---------------------------------------------------------------- one stream, one event


@kernel
def normalise(xn, x, stats, stats32, hy):
    """xn (D,) out: x (D,) scaled by the stream's running mean and sd, clipped to
    +-input_clip.

    NaN where the feature is missing, has been seen fewer than twice (no scale yet) or is
    context (not `judged`: neither an input nor a target of the model).
    """
    col, clip = hy.stats, hy.input_clip
    for d in range(hy.D):
        if math.isnan(x[d]) or stats[col.count + d] < 2.0 or not judged(d, stats, hy):
            xn[d] = math.nan
        else:
            z = (bounded(x[d]) - stats[col.mean + d]) / scaler_std(stats32[col.var + d], stats[col.mean + d], stats[col.res + d])
            xn[d] = min(max(z, -clip), clip)


@kernel
def xorshift_uniform(counters):
    """Next uniform [0, 1) draw of the stream's xorshift64 generator (state in counters)."""
    s = np.uint64(counters[C_RNG])
    s ^= s << np.uint64(13)
    s ^= s >> np.uint64(7)
    s ^= s << np.uint64(17)
    counters[C_RNG] = np.int64(s)
    return (s >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@inlined_kernel
def score_event(pred_out, x, t, s, streams, ws, hy):
    """Surprise of one event of stream slot `s` at time `t` (NaN: unknown), without
    changing any state.

    pred_out (D,) out: the forecast of this event in original units (NaN before any, and
    for context features). Returns (L, error, Lc, Ls): the event's surprise in -log10 units
    before alert suppression (0 during warm-up; see scoring.value_surprise and
    .alert_step), its RMS prediction error over the modelled features (NaN if none, or
    where the forecast is not judged: after a gap, scoring.straddles_gap), its
    channel surprise before the stream's calibration (-1 during warm-up: nothing for the
    quantile tracker) and the score's surprise (value_surprise's Ls). Fills ws.xn with the
    normalised, clipped event."""
    D, col = hy.D, hy.stats
    stats, stats32, counters = streams.stats[s], streams.stats32[s], streams.counters[s]
    normalise(ws.xn, x, stats, stats32, hy)
    mark_gaps(ws.findings, s, t, streams, hy)
    n_seen = counters[C_SEEN]
    straddle = straddles_gap(s, streams, hy)
    ss = 0.0
    n_obs = 0
    for d in range(D):
        if n_seen == 0 or not judged(d, stats, hy):  # context features have no forecast
            pred_out[d] = math.nan
        else:
            sd = scaler_std(stats32[col.var + d], stats[col.mean + d], stats[col.res + d])
            pred_out[d] = stats[col.mean + d] + sd * streams.pred[s, d]
        # A forecast made without the feature's previous value is not judged (it only says
        # how far the cell drifted on missing inputs), nor one from a window that straddles
        # rows dropped.
        if not math.isnan(ws.xn[d]) and n_seen > 0 and forecast_judged(d, stats32, ws.findings, hy) and not straddle:
            r = streams.pred[s, d] - ws.xn[d]
            ss += r * r
            n_obs += 1
    error = rms(ss, n_obs)
    if n_seen < hy.warmup:
        return 0.0, error, -1.0, 0.0
    L, Lc, Ls = value_surprise(error, x, t, s, streams, ws.findings, hy)
    return L, error, Lc, Ls


@inlined_kernel
def mark_gaps(findings, s, t, streams, hy):
    """findings[FIND_GAP] (D,) out: 1 for each feature whose last observation is across a
    gap from stream slot s's event at time t: one the previous event did not give the
    model (its input, the window's newest row, is NaN: missing, or not yet scaled) unless
    it was missing within its own rhythm (scoring.holds), every feature before the stream's
    first event and after rows dropped (the event follows events unseen:
    scoring.missed_events); else 0."""
    n = streams.counters[s, C_WIN]
    dropped = missed_events(t, streams.stats[s], streams.stats32[s], hy) > 0
    for d in range(hy.D):
        if n == 0 or dropped:
            findings[FIND_GAP, d] = 1.0
        else:
            v = narrow_value(streams.win[s, n - 1, d], F16) if hy.f16_window else streams.win[s, n - 1, d]
            # An input missing within the feature's rhythm is no gap; one NaN because the
            # value was not yet scaled, or is context, is (the previous event had it).
            missing = streams.stats32[s, hy.stats.absent + d] > 0.0
            findings[FIND_GAP, d] = 1.0 if math.isnan(v) and not (missing and holds(d, streams.stats32[s], hy)) else 0.0


@kernel
def copy_row(dst, src):
    """dst[:] = src for 1-D arrays, as a loop: Numba lowers slice assignment with an
    overlap check that may allocate, which CUDA kernels cannot (these run on both)."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@kernel
def fill(dst, value):
    for i in range(dst.shape[0]):
        dst[i] = value


@kernel
def shift_rows(a, n):
    """a[0:n-1] = a[1:n] for a 2-D array, row by row (drops the oldest row)."""
    for t in range(n - 1):
        copy_row(a[t], a[t + 1])


@inlined_kernel
def optimiser_update(theta, m, v, grad, step, hy):
    if hy.optimizer == 0:
        adam_update(theta, m, v, grad, step, hy.lr, hy.beta1, hy.beta2)
    else:
        sgd_update(theta, m, grad, hy.lr, hy.momentum)


@inlined_kernel
def learn_begin(s, flagged, streams, theta, ws, hy):
    """Push ws.xn (the event normalised by `score_event`) into stream s's window and, every
    k1 events, backpropagate through the window into ws.grad (regularised and clipped);
    a re-run window without input dropout also sets the carried state (h, c) to the
    re-run's state before this event. Returns whether a gradient was computed; the
    optimiser update is the caller's, so that the GPU's shared mode can sum the gradients
    of many streams first."""
    H, D, K, cell = hy.H, hy.D, hy.K, hy.cell
    counters = streams.counters[s]
    W, b, _, _ = views(theta, cell, D, H)
    win, winflag = streams.win[s], streams.winflag[s]

    # Push; when the window is full, drop its oldest input (a re-run window first moves
    # its start state past that input, with the current weights).
    n_win = counters[C_WIN]
    if n_win == K + 1:
        if not hy.cached_window:
            load_f16_row(ws.hs[0], streams.h0[s], hy.f16_window)
            load_f16_row(ws.cs[0], streams.c0[s], hy.f16_window)
            load_f16_row(ws.xin[0], win[0], hy.f16_window)
            cell_forward(ws.hs[1], ws.cs[1], ws.acts[0], ws.aux[0], ws.xin[0], ws.hs[0], ws.cs[0], W, b, cell, H, D)
            store_f16_row(streams.h0[s], ws.hs[1], hy.f16_window)
            store_f16_row(streams.c0[s], ws.cs[1], hy.f16_window)
        shift_rows(win, K + 1)
        for t in range(K):
            winflag[t] = winflag[t + 1]
        n_win = K
    store_f16_row(win[n_win], ws.xn, hy.f16_window)
    winflag[n_win] = flagged
    counters[C_WIN] = n_win + 1

    counters[C_SINCE] += 1
    L = n_win  # inputs win[:L] predict targets win[1:L+1]
    if counters[C_SINCE] < hy.k1 or L < 1:
        return False
    counters[C_SINCE] = 0
    n_loss = min(hy.k1, L)
    if not weighted_loss_present(winflag, L, n_loss, hy):
        return False
    # The window's inputs and the targets that carry a loss (the last n_loss), as floats.
    for t in range(L):
        load_f16_row(ws.xin[t], win[t], hy.f16_window)
    for t in range(L - n_loss, L):
        load_f16_row(ws.tgt[t], win[t + 1], hy.f16_window)
    if hy.cached_window:
        # The recorded steps consumed exactly win[:L] (see learn_end).
        cache = Workspace(streams.hs[s], streams.cs[s], streams.acts[s], streams.aux[s], ws.xin, ws.tgt,
                          ws.dh, ws.dc, ws.dpre, ws.grad, ws.xn, ws.y, ws.dy, ws.findings)
    else:
        load_f16_row(ws.hs[0], streams.h0[s], hy.f16_window)
        load_f16_row(ws.cs[0], streams.c0[s], hy.f16_window)
        if hy.input_dropout > 0.0:
            for t in range(L):
                for d in range(D):
                    if xorshift_uniform(counters) >= hy.input_dropout:
                        ws.xin[t, d] /= 1.0 - hy.input_dropout
                    else:
                        ws.xin[t, d] = math.nan
        window_forward(ws, theta, L, cell, H, D)
        cache = ws
    fill(ws.grad, 0.0)
    window_backward(cache, theta, ws.tgt, winflag[1:], L, n_loss, hy)
    regularise_and_clip(ws.grad, theta, hy.weight_decay, hy.clip_norm)
    if not hy.cached_window and hy.input_dropout == 0.0:
        # The carried state continues from the re-run's, so that the forecasts come from
        # the trajectory the gradient trains: kept apart, the two drifted apart in shared
        # mode, where other streams move the weights between a stream's events.
        copy_row(streams.h[s], ws.hs[L])
        copy_row(streams.c[s], ws.cs[L])
    return True


@inlined_kernel
def learn_end(s, x, t, error, streams, theta, ws, hy):
    """Update stream s's statistics (scaler, value range, seasonal profile, likelihood
    channels; scoring.learn_statistics) with event `x` (D,) at time `t` and its `error`
    (whether it was surprising to the alerts, and a lone alert, is read off the verdicts
    learn_begin pushed into the window), then advance the carried state one step with
    `theta` (the weights after this event's update) and forecast the next event."""
    H, D, K, cell = hy.H, hy.D, hy.K, hy.cell
    counters = streams.counters[s]
    W, b, Wy, by = views(theta, cell, D, H)

    # Statistics, updated only now: this event was normalised and scored without them.
    n_win = counters[C_WIN]
    flagged = n_win > 0 and streams.winflag[s, n_win - 1] != 0
    if learn_statistics(error, x, t, s, streams, ws.findings, flagged, lone_alert(streams.winflag[s], n_win), hy):
        counters[C_SEEN] += 1  # an event with no value is no progress of the warm-up or the windows
    counters[C_TICKS] += 1

    if hy.cached_window:
        # Record the step in the window's forward cache: step t consumes win[t], so the
        # cache holds as many steps as the window holds inputs before this event.
        hs, cs, acts, aux = streams.hs[s], streams.cs[s], streams.acts[s], streams.aux[s]
        t = counters[C_WIN] - 1
        if t == K:
            shift_rows(hs, K + 1)
            shift_rows(cs, K + 1)
            shift_rows(acts, K)
            shift_rows(aux, K)
            t = K - 1
        elif t == 0:
            copy_row(hs[0], streams.h[s])
            copy_row(cs[0], streams.c[s])
        cell_forward(hs[t + 1], cs[t + 1], acts[t], aux[t], ws.xn, hs[t], cs[t], W, b, cell, H, D)
        copy_row(streams.h[s], hs[t + 1])
        copy_row(streams.c[s], cs[t + 1])
    else:
        copy_row(ws.hs[0], streams.h[s])
        copy_row(ws.cs[0], streams.c[s])
        cell_forward(streams.h[s], streams.c[s], ws.acts[0], ws.aux[0], ws.xn,
                     ws.hs[0], ws.cs[0], W, b, cell, H, D)
    head_forward(ws.y, streams.h[s], Wy, by, H, D)
    copy_row(streams.pred[s], ws.y)


@inlined_kernel
def learn_event(s, q, x, t, error, flagged, streams, params, ws, hy):
    """Learn event `x` (D,) at time `t` of stream slot `s`, whose normalised form is in ws.xn (from
    `score_event`), with parameter set `q`: window push and (every k1 events) a BPTT
    update, then statistics and the carried-state step."""
    theta = params.theta[q]
    if learn_begin(s, flagged, streams, theta, ws, hy):
        params.step[q] += 1
        optimiser_update(theta, params.m[q], params.v[q], ws.grad, params.step[q], hy)
    learn_end(s, x, t, error, streams, theta, ws, hy)


@kernel
def lone_alert(winflag, n):
    """Whether the last event pushed into a window of n inputs (winflag (K+1,)) was
    surprising to the alerts (learn_begin's `flagged`) and not the third or later of a run
    of such events: a point anomaly, which the regime, needing a longer run, does not keep
    from the tails. In a persistent feature a spike surprises twice, on the way out and on
    the step back (its innovation is large at both); from its third event on, a run is the
    stream's own burst."""
    return winflag[n - 1] != 0 and (n < 3 or winflag[n - 2] == 0 or winflag[n - 3] == 0)


@kernel
def weighted_loss_present(winflag, L, n_loss, hy):
    """Whether any of the last n_loss targets (winflag[L-n_loss+1 .. L]) has a positive weight."""
    for t in range(L - n_loss + 1, L + 1):
        if loss_weight(winflag[t], hy) > 0.0:
            return True
    return False


@inlined_kernel
def judge_event(out, n, x, t, s, streams, ws, score, hy):
    """Score event x (D,) of stream slot s at time t into row n of `out` (Outputs, or any
    tuple with its fields), changing no state. Returns (Lc, regime_state, L), what
    `take_judgement` needs besides that row and ws.xn (the event normalised) when the event
    is learnt.

    score: the continuous surprise, never suppressed; alert_score and flag: after alert
    suppression (`alert_step`: cooldown and penalty); regime and blame: `regime_step`;
    contributions: `feature_evidence`. The score may exceed what the alert path's L gives it: the
    point test, which alerts only while the stream is normal, scores every event
    (scoring.value_surprise). Without `score` (baseline priming) the event is known-good
    history: its outputs are 0/False, and nothing counts toward an alert or a regime
    (there is no judgement to take).
    """
    L, error, Lc, Ls = score_event(out.preds[n], x, t, s, streams, ws, hy)
    out.errors[n] = error
    if not score:
        out.scores[n] = 0.0
        out.alert_scores[n] = 0.0
        out.flags[n] = False
        out.regime[n] = 0.0
        fill(out.contributions[n], 0.0)
        fill(out.blame[n], 0.0)
        return Lc, 0.0, L
    alert, flag = alert_step(L, s, streams, hy)
    out.scores[n] = to_score(Ls)
    out.alert_scores[n] = alert
    out.flags[n] = flag
    out.regime[n], regime_state = regime_step(x, s, streams, ws.findings, hy)
    copy_row(out.blame[n], ws.findings[FIND_BLAME])
    feature_evidence(out.contributions[n], x, s, streams, ws.xn, ws.findings, hy)
    return Lc, regime_state, L


@inlined_kernel
def take_judgement(out, n, Lc, regime_state, L, findings, score, s, streams, hy):
    """What judging an event (row n of `out` and (Lc, regime_state, L) from judge_event
    with `score`) changes once the event is learnt: the alert bookkeeping and the regime's
    step, nothing for a baseline event. Returns whether the event is surprising for the
    anomaly policy: learning sees the alerts' verdict before suppression (L's score at or
    above the threshold), so the policy keeps protecting the model during a cooldown."""
    if not score:
        return False
    alert_learn(out.flags[n], Lc, s, streams, hy)
    regime_learn(regime_state, findings, s, streams, hy)
    return to_score(L) >= hy.threshold


@inlined_kernel
def learn_judged(out, n, x, t, Lc, regime_state, L, score, s, streams, params, ws, hy):
    """Learn event x (D,) of stream slot s at time t, which judge_event judged into row n
    of `out` with (Lc, regime_state, L), and ws.xn as it left it: take the judgement (if it
    was scored), then learn_event."""
    surprising = take_judgement(out, n, Lc, regime_state, L, ws.findings, score, s, streams, hy)
    learn_event(s, 0 if hy.shared else s, x, t, out.errors[n], surprising, streams, params, ws, hy)


@inlined_kernel
def process_event(out, n, slots, X, T, learn, score, streams, params, ws, hy):
    """Judge, then (if `learn`) learn, event n of a batch: the loop body of process_batch
    (arguments as there)."""
    s = slots[n]
    x = X[n]
    Lc, regime_state, L = judge_event(out, n, x, T[n], s, streams, ws, score, hy)
    if learn:
        learn_judged(out, n, x, T[n], Lc, regime_state, L, score, s, streams, params, ws, hy)


@kernel
def process_batch(out, rows, slots, X, T, learn, score, streams, params, ws, hy):
    """Judge, then (if `learn`) learn, the events rows[0], rows[1], ... of a batch, in that
    order: the whole batch (rows 0 .. N-1), or one thread's share of it (cpu_engine), which
    writes only those rows of `out`. One kernel for both, so that a first run compiles the
    per-event path once.

    out: Outputs of N rows, written;  rows (M,) int64 the events to process
    slots (N,) stream slot of each event;  X (N, D) events (NaN = missing)
    T (N,) float64 timestamps in epoch seconds (NaN = unknown: no seasonal channel)
    score: False for baseline priming (see judge_event)
    streams: state.StreamArrays of S slots;  params: state.ParamArrays of Q sets

    In per_stream mode a share that holds every event of its streams gives them exactly
    what the whole batch would, so shares of disjoint streams may run at once, each with
    its own `ws`. Runs with subnormals flushed to zero (fpenv: they would cost ~100 cycles
    per operation) and restores the caller's mode; the control word is per thread, so each
    share sets its own.
    """
    caller_fp_control = get_fp_control()
    set_fp_control(caller_fp_control | FLUSH_SUBNORMALS)
    for i in range(rows.shape[0]):
        process_event(out, rows[i], slots, X, T, learn, score, streams, params, ws, hy)
    set_fp_control(caller_fp_control)


# ------------------------------------------------------------------ one event, river's API


@kernel
def judge_one(out, memo, slots, X, T, score, streams, ws, hy):
    """process_batch without learning for one event (slots (1,), X (1, D), T (1,)), whose
    judgement (row 0 of `out`) is also kept in `memo` (Judgement) for learn_one."""
    caller_fp_control = get_fp_control()
    set_fp_control(caller_fp_control | FLUSH_SUBNORMALS)
    memo.verdict[0], memo.verdict[1], memo.verdict[2] = judge_event(out, 0, X[0], T[0], slots[0], streams, ws, score,
                                                                    hy)
    memo.event[0] = slots[0]
    memo.event[1] = 1.0 if score else 0.0
    memo.event[2] = T[0]
    for d in range(X.shape[1]):
        memo.event[3 + d] = X[0, d]
    copy_row(memo.xn, ws.xn)
    copy_row(memo.blame, ws.findings[FIND_BLAME])
    set_fp_control(caller_fp_control)


@kernel
def is_judged(memo, slots, X, T, score):
    """Whether memo.event is the event (slots (1,), X (1, D), T (1,), score), values and
    time bit for bit: a NaN matches only a NaN of the same bits, -0.0 only -0.0."""
    event = memo.event.view(np.int64)
    if memo.event[0] != slots[0] or memo.event[1] != (1.0 if score else 0.0) or event[2] != T.view(np.int64)[0]:
        return False
    x = X[0].view(np.int64)
    for d in range(x.shape[0]):
        if event[3 + d] != x[d]:
            return False
    return True


@kernel
def learn_one(out, memo, kept, slots, X, T, score, streams, params, ws, hy):
    """process_batch for one event (slots (1,), X (1, D), T (1,)). If `kept` (the state
    and `out` are as judge_one left them) and judge_one judged this very event, its
    judgement is taken from row 0 of `out` and `memo` instead of judging the event again:
    judging is pure, so the results are the same bit for bit."""
    caller_fp_control = get_fp_control()
    set_fp_control(caller_fp_control | FLUSH_SUBNORMALS)
    s, x, t = slots[0], X[0], T[0]
    if kept and is_judged(memo, slots, X, T, score):
        Lc, regime_state, L = memo.verdict[0], memo.verdict[1], memo.verdict[2]
        copy_row(ws.xn, memo.xn)
        copy_row(ws.findings[FIND_BLAME], memo.blame)
        mark_gaps(ws.findings, s, t, streams, hy)  # as judging found them: the window is as it was
    else:
        Lc, regime_state, L = judge_event(out, 0, x, t, s, streams, ws, score, hy)
    learn_judged(out, 0, x, t, Lc, regime_state, L, score, s, streams, params, ws, hy)
    set_fp_control(caller_fp_control)

