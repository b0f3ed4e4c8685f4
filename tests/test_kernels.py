"""Numba kernels against the NumPy reference in tests/naive.py, and gradient checks."""

import numpy as np
import pytest
from naive import cell_step, head, numerical_gradient, window_loss

from streamlstm.engine import hyperparams
from streamlstm.engine.compact import F16, f16_bits_of, narrow_value
from streamlstm.engine.kernels_cpu import (
    ADAM_EPS,
    adam_update,
    cell_forward,
    head_forward,
    learn_begin,
    make_workspace,
    regularise_and_clip,
    sgd_update,
    window_backward,
    window_forward,
)
from streamlstm.engine.layout import C_SINCE, C_WIN
from streamlstm.engine.params import GRU, LSTM, init_params, param_size, views
from streamlstm.engine.state import alloc_streams

CELLS = [pytest.param(LSTM, id="lstm"), pytest.param(GRU, id="gru")]
D, H, K = 3, 5, 6


def setup(cell, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    theta = init_params(cell, D, H, seed, dtype)
    theta += rng.normal(0, 0.3, theta.shape).astype(dtype)  # move off the symmetric init
    ws = make_workspace(cell, D, H, K, theta.size, dtype)
    h0 = rng.normal(0, 0.5, H)
    c0 = rng.normal(0, 0.5, H) if cell == LSTM else np.zeros(0)
    xs = rng.normal(size=(K, D))
    xs[2, 1] = np.nan  # a missing input feeds the cell as 0
    targets = rng.normal(size=(K, D))
    targets[4, 0] = np.nan  # a missing target is left out of the loss
    flags = np.array([0, 1, 0, 0, 1, 1], dtype=np.uint8)  # flagged targets weigh anomaly_weight
    return theta, ws, h0, c0, xs, targets, flags


def hyper(cell, **kw):
    settings = {**hyperparams.DEFAULTS, "cell": ("lstm", "gru")[cell], "hidden_size": H, "k2": K,
                "anomaly_weight": 0.3, **kw}
    return hyperparams.kernel_hyper(settings, D, shared=False)


def test_param_views_share_the_flat_buffer():
    theta = init_params(LSTM, D, H, 0, np.float32)
    W, b, Wy, by = views(theta, LSTM, D, H)
    assert theta.size == param_size(LSTM, D, H) == W.size + b.size + Wy.size + by.size
    W[0, 0] = 42.0
    assert theta[0] == 42.0
    assert np.all(b[:H] == 1.0) and np.all(b[H:] == 0.0)  # forget-gate bias 1


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_forward_matches_reference(cell, dtype, tol):
    theta, ws, h0, c0, xs, *_ = setup(cell, dtype)
    ws.hs[0], ws.cs[0], ws.xin[:] = h0, c0, xs
    window_forward(ws, theta, K, cell, H, D)
    h, c = h0, (c0 if cell == LSTM else np.zeros(H))
    for t in range(K):
        h, c = cell_step(cell, theta.astype(np.float64), xs[t], h, c, D, H)
        np.testing.assert_allclose(ws.hs[t + 1], h, rtol=0, atol=tol)
        if cell == LSTM:
            np.testing.assert_allclose(ws.cs[t + 1], c, rtol=0, atol=tol)
    W, b, Wy, by = views(theta, cell, D, H)
    y = np.zeros(D, dtype)
    head_forward(y, ws.hs[K], Wy, by, H, D)
    np.testing.assert_allclose(y, head(theta.astype(np.float64), h, cell, D, H), atol=tol)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize("n_loss", [1, 3, K])
def test_bptt_gradient_matches_finite_differences(cell, loss, n_loss):
    theta, ws, h0, c0, xs, targets, flags = setup(cell)
    hy = hyper(cell, loss=loss, huber_delta=0.5)
    weights = np.where(flags, hy.anomaly_weight, 1.0)
    ws.hs[0], ws.cs[0], ws.xin[:] = h0, c0, xs
    window_forward(ws, theta, K, cell, H, D)
    ws.grad[:] = 0.0
    window_backward(ws, theta, targets, flags, K, n_loss, hy)
    numeric = numerical_gradient(
        lambda th: window_loss(th, cell, D, H, h0, c0 if cell == LSTM else np.zeros(H), xs, targets, weights,
                               n_loss, loss, 0.5),
        theta.copy())
    assert np.abs(numeric).max() > 1e-3  # the check is not vacuous
    np.testing.assert_allclose(ws.grad, numeric, rtol=1e-6, atol=1e-8)


def test_backward_accumulates():
    theta, ws, h0, c0, xs, targets, flags = setup(LSTM)
    hy = hyper(LSTM)
    ws.hs[0], ws.cs[0], ws.xin[:] = h0, c0, xs
    window_forward(ws, theta, K, LSTM, H, D)
    ws.grad[:] = 0.0
    window_backward(ws, theta, targets, flags, K, 2, hy)
    once = ws.grad.copy()
    window_backward(ws, theta, targets, flags, K, 2, hy)
    np.testing.assert_allclose(ws.grad, 2 * once, rtol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_nan_input_reads_as_zero(cell):
    theta, ws, h0, c0, *_ = setup(cell)
    W, b, *_ = views(theta, cell, D, H)
    out = [np.zeros(H), np.zeros(H if cell == LSTM else 0)]
    ref = [np.zeros(H), np.zeros(H if cell == LSTM else 0)]
    act, aux = np.zeros_like(ws.acts[0]), np.zeros(H)
    cell_forward(out[0], out[1], act, aux, np.array([np.nan, 1.0, np.nan]), h0, c0, W, b, cell, H, D)
    cell_forward(ref[0], ref[1], act, aux, np.array([0.0, 1.0, 0.0]), h0, c0, W, b, cell, H, D)
    np.testing.assert_array_equal(out[0], ref[0])


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])  # a few ulps of |theta| ~ 2
def test_optimisers_match_their_textbook_updates(dtype, tol):
    rng = np.random.default_rng(3)
    lr, beta1, beta2, momentum = 0.01, 0.9, 0.999, 0.5
    grads = rng.normal(0, 1e-2, (5, 40))
    grads[:, 0] = 0.0  # a parameter that never gets a gradient does not move
    start = rng.normal(size=40)
    theta, m, v = start.astype(dtype), np.zeros(40, dtype), np.zeros(40, dtype)
    s_theta, s_m = start.astype(dtype), np.zeros(40, dtype)
    ref_m, ref_v, ref_theta, ref_vel, ref_sgd = np.zeros(40), np.zeros(40), start.copy(), np.zeros(40), start.copy()
    for step, g in enumerate(grads, start=1):
        adam_update(theta, m, v, g.astype(dtype), step, lr, dtype(beta1), dtype(beta2))
        sgd_update(s_theta, s_m, g.astype(dtype), dtype(lr), dtype(momentum))
        ref_m = beta1 * ref_m + (1 - beta1) * g
        ref_v = beta2 * ref_v + (1 - beta2) * g * g
        m_hat, v_hat = ref_m / (1 - beta1**step), ref_v / (1 - beta2**step)
        ref_theta -= lr * m_hat / np.sqrt(v_hat + ADAM_EPS**2)
        ref_vel = momentum * ref_vel + g
        ref_sgd -= lr * ref_vel
    assert np.abs(ref_theta - start).max() > 2 * lr  # five Adam steps of ~lr each: not vacuous
    np.testing.assert_allclose(theta, ref_theta, rtol=0, atol=tol)
    np.testing.assert_allclose(s_theta, ref_sgd, rtol=0, atol=tol)
    assert theta[0] == start.astype(dtype)[0]


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("clip_norm", [0.5, 100.0])
def test_regularise_and_clip(weight_decay, clip_norm):
    rng = np.random.default_rng(4)
    grad, theta = rng.normal(size=30), rng.normal(size=30)
    ref = grad + weight_decay * theta
    ref *= min(1.0, clip_norm / np.linalg.norm(ref))
    regularise_and_clip(grad, theta, weight_decay, clip_norm)
    np.testing.assert_allclose(grad, ref, rtol=1e-13)
    assert np.linalg.norm(grad) <= clip_norm * (1 + 1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_a_float16_window_learns_from_what_it_stored(cell):
    """A float32 model's re-run window (shared mode) stores its start state and inputs as
    float16 (compact.F16; NaN, a missing input, stays NaN): learn_begin pushes the event,
    re-runs the window from the decoded start state over the decoded inputs and gives the
    gradient of the NumPy reference's loss of those decoded values (finite differences in
    float64); the carried state becomes the re-run's. When the window is full, the start
    state moves one step past the oldest input, stored as float16 again."""
    k1 = 3
    theta64, _, h0, c0, xs, _, _ = setup(cell)
    theta = theta64.astype(np.float32)
    settings = {**hyperparams.DEFAULTS, "cell": ("lstm", "gru")[cell], "hidden_size": H, "k2": K, "k1": k1,
                "weight_mode": "shared", "clip_norm": 1e9}
    hy = hyperparams.kernel_hyper(settings, D, shared=True)
    assert hy.f16_window and not hy.cached_window
    streams = alloc_streams(1, hy, np.float32)
    ws = make_workspace(cell, D, H, K, theta.size, np.float32)
    streams.h0[0], streams.c0[0] = f16_bits_of(h0), f16_bits_of(c0)
    streams.win[0, :K] = f16_bits_of(xs)
    streams.counters[0, C_WIN], streams.counters[0, C_SINCE] = K, k1 - 1
    ws.xn[:] = [0.3, np.nan, -1.7]
    assert learn_begin(0, False, streams, theta, ws, hy)

    decode = np.vectorize(lambda bits: narrow_value(bits, F16))
    win = decode(streams.win[0])
    assert np.isnan(win[K, 1]) and np.array_equal(win[K, [0, 2]], np.float16([0.3, -1.7]).astype(np.float64))
    h, c = decode(streams.h0[0]), decode(streams.c0[0]) if cell == LSTM else np.zeros(H)
    loss = lambda th: window_loss(th, cell, D, H, h, c, win[:K], win[1:], np.ones(K), k1)  # noqa: E731
    numeric = numerical_gradient(loss, theta.astype(np.float64))
    assert np.abs(numeric).max() > 1e-3
    np.testing.assert_allclose(ws.grad, numeric, rtol=2e-3, atol=2e-5)
    for t in range(K):
        h, c = cell_step(cell, theta.astype(np.float64), win[t], h, c, D, H)
    np.testing.assert_allclose(streams.h[0], h, rtol=0, atol=1e-5)

    # Full: the start state steps past win[0] (float16 again) and the window shifts.
    start = cell_step(cell, theta.astype(np.float64), win[0], decode(streams.h0[0]),
                      decode(streams.c0[0]) if cell == LSTM else np.zeros(H), D, H)
    ws.xn[:] = [1.0, 2.0, 3.0]
    learn_begin(0, False, streams, theta, ws, hy)
    np.testing.assert_allclose(decode(streams.h0[0]), start[0], rtol=2.0 ** -10, atol=1e-4)
    np.testing.assert_array_equal(streams.win[0, :K][~np.isnan(win[1:])], f16_bits_of(win[1:])[~np.isnan(win[1:])])
    assert np.array_equal(decode(streams.win[0, K]), [1.0, 2.0, 3.0])
