"""CUDA kernels under Numba's CUDA simulator, against the CPU path.

Runs only with NUMBA_ENABLE_CUDASIM=1 (the flag is read when numba.cuda is first imported):
``NUMBA_ENABLE_CUDASIM=1 pytest -m cuda tests/cuda_sim``, or tests/test_cuda_sim.py, which
runs it so in a subprocess. Tiny sizes, and 2 threads
per block so every launch spans several blocks. Simulated kernels call the compiled CPU
versions of the device functions, so this checks the kernels' logic (waves, per-thread
workspaces, the shared-mode reduction, slot resets, host<->device copies), not GPU
floating point.
"""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.cuda
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("CUDA simulator tests: NUMBA_ENABLE_CUDASIM=1 pytest -m cuda tests/cuda_sim (tests/test_cuda_sim.py "
                "runs them so in a subprocess)", allow_module_level=True)
pytest.importorskip("numba.cuda")

from streamlstm import MultiStreamDetector  # noqa: E402
from streamlstm.engine import hyperparams, snapshot  # noqa: E402
from streamlstm.engine.backend import resolve_backend  # noqa: E402
from streamlstm.engine.cuda_engine import CudaEngine, wave_ranks  # noqa: E402
from streamlstm.engine.kernels_cpu import ADAM_EPS, make_workspace, new_outputs, process_batch  # noqa: E402
from streamlstm.engine.layout import C_RNG  # noqa: E402
from streamlstm.engine.params import init_params  # noqa: E402
from streamlstm.engine.state import ParamArrays, StreamArrays, alloc_params, alloc_streams, stream_rng_seed  # noqa: E402

D, H, K, S, TPB = 2, 4, 3, 5, 2


def setup(cell="lstm", shared=False, n=50, seed=0, **kw):
    settings = {**hyperparams.DEFAULTS, "hidden_size": H, "k2": K, "k1": 2, "dtype": "float64", "cell": cell,
                "warmup": 6, "input_dropout": 0.1, "threshold": 0.3, "alert_cooldown": 2, **kw}
    hy = hyperparams.kernel_hyper(settings, D, shared)
    theta0 = init_params(hy.cell, D, H, 0, np.float64)
    streams = alloc_streams(S, hy, np.float64)
    params = alloc_params(1 if shared else S, theta0, settings["optimizer"] == "adam")
    for i in range(S):
        streams.counters[i, C_RNG] = stream_rng_seed(0, f"s{i}")
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, S, n)
    X = np.sin(np.arange(n)[:, None] * 0.3 + np.arange(D)) + rng.normal(0, 0.1, (n, D))
    X[rng.random((n, D)) < 0.05] = np.nan
    X[min(45, n - 1), :] = 8.0  # something to flag (after the warm-up)
    return hy, theta0, streams, params, slots, X


def copy_tables(streams, params):
    return StreamArrays(*(a.copy() for a in streams)), ParamArrays(*(a.copy() for a in params))


def cpu_batch(hy, streams, params, slots, X, learn=True, T=None):
    ws = make_workspace(hy.cell, hy.D, hy.H, hy.K, params.theta.shape[1], np.float64)
    N = len(slots)
    out = new_outputs(N, hy.D)
    T = np.full(N, np.nan) if T is None else T
    process_batch(out, np.arange(N), np.asarray(slots, dtype=np.int64), X, T, learn, True, streams, params, ws, hy)
    return out


def assert_tables_close(a, b, rtol=1e-5, atol=1e-8):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def assert_outputs_close(got, want, rtol=1e-5, atol=1e-8):
    for x, y in zip(got, want):
        np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=rtol, atol=atol)


def test_wave_ranks_keep_each_stream_in_order():
    slots = np.array([2, 2, 0, 2, 1, 0])
    assert wave_ranks(slots).tolist() == [0, 1, 0, 2, 0, 1]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_per_stream_matches_cpu(cell, optimizer):
    hy, theta0, streams, params, slots, X = setup(cell, optimizer=optimizer)
    eng = CudaEngine(hy, streams, params, theta0, threads_per_block=TPB)
    T = 1.7e9 + 3600.0 * np.arange(len(X))  # hourly: the seasonal channel travels through WaveIO
    T[::7] = np.nan
    got = eng.process(slots, X, True, T)
    want = cpu_batch(hy, streams, params, slots, X, T=T)
    assert want[1].any() and np.isfinite(want[0]).all()  # something was flagged
    assert_outputs_close(got, want)
    g_streams, g_params = eng.to_host()
    assert_tables_close(g_streams, streams)
    assert_tables_close(g_params, params)


def test_small_max_wave_and_score_only():
    hy, theta0, streams, params, slots, X = setup()
    eng = CudaEngine(hy, streams, params, theta0, threads_per_block=TPB, max_wave=2)
    assert_outputs_close(eng.process(slots[:30], X[:30]), cpu_batch(hy, streams, params, slots[:30], X[:30]))
    before = eng.to_host()
    got = eng.process(slots[30:], X[30:], learn=False)  # repeated streams: one wave
    assert_outputs_close(got, cpu_batch(hy, streams, params, slots[30:], X[30:], learn=False))
    for a, b in zip(before[0] + before[1], eng.to_host()[0] + eng.to_host()[1]):
        np.testing.assert_array_equal(a, b)


def emulate_shared(hy, streams, params, slots, X, chunk):
    """NumPy emulation of the GPU's shared mode, built from the CPU kernel: per wave (and
    chunk), each event learns from the weights before the wave; the per-event gradients
    are summed and applied in one optimiser step; the carried state then steps with the
    updated weights."""
    streams, params = copy_tables(streams, params)
    N = len(slots)
    outs = (np.zeros(N), np.zeros(N, dtype=bool), np.zeros((N, hy.D)), np.zeros(N))
    seen: dict[int, int] = {}
    rank = []
    for s in slots:
        rank.append(seen.get(s, 0))
        seen[s] = rank[-1] + 1
    grad_hy = hy._replace(optimizer=1, lr=1.0, momentum=0.0)  # theta_after = theta - grad
    step_hy = hy._replace(optimizer=1, lr=0.0, momentum=0.0)  # weights unchanged
    for w in range(max(rank) + 1):
        wave = [n for n in range(N) if rank[n] == w]
        for c in range(0, len(wave), chunk):
            events = wave[c:c + chunk]
            pre_s, pre_p = copy_tables(streams, params)
            total = np.zeros_like(pre_p.theta[0])
            trained = False
            for n in events:
                st, pa = copy_tables(pre_s, pre_p)
                pa.m[:] = 0.0
                out = cpu_batch(grad_hy, st, pa, [slots[n]], X[n:n + 1])
                for dst, src in zip(outs, out):
                    dst[n] = src[0]
                total += pre_p.theta[0] - pa.theta[0]
                trained |= bool(pa.step[0] > pre_p.step[0])
                s = slots[n]
                for name in ("h0", "c0", "win", "winflag", "stats", "stats32", "ring", "records", "bins", "corr",
                             "corr_tails", "counters"):
                    getattr(streams, name)[s] = getattr(st, name)[s]
            if trained:
                params.step[0] += 1
                t = params.step[0]
                if hy.optimizer == 0:
                    params.m[0] = hy.beta1 * params.m[0] + (1 - hy.beta1) * total
                    params.v[0] = hy.beta2 * params.v[0] + (1 - hy.beta2) * total * total
                    params.theta[0] -= (hy.lr / (1 - hy.beta1 ** t) * params.m[0]
                                        / np.sqrt(params.v[0] / (1 - hy.beta2 ** t) + ADAM_EPS**2))
                else:
                    params.m[0] = hy.momentum * params.m[0] + total
                    params.theta[0] -= hy.lr * params.m[0]
            for n in events:
                st, pa = copy_tables(pre_s, params)
                cpu_batch(step_hy, st, pa, [slots[n]], X[n:n + 1])
                s = slots[n]
                for name in ("h", "c", "pred", "hs", "cs", "acts", "aux"):  # (the last four: a recorded window)
                    getattr(streams, name)[s] = getattr(st, name)[s]
    return outs, streams, params


@pytest.mark.parametrize("optimizer,max_wave,window", [("sgd", 64, {}), ("adam", 64, {}), ("sgd", 2, {}),
                                                       ("sgd", 64, {"input_dropout": 0.0, "record_window": True})])
def test_shared_mode_sums_the_gradients_of_a_wave(optimizer, max_wave, window):
    hy, theta0, streams, params, slots, X = setup(shared=True, optimizer=optimizer, weight_decay=1e-3, **window)
    assert hy.cached_window == bool(window)
    eng = CudaEngine(hy, streams, params, theta0, threads_per_block=TPB, max_wave=max_wave)
    got = eng.process(slots, X)
    want, w_streams, w_params = emulate_shared(hy, streams, params, slots, X, max_wave)
    assert_outputs_close(got, want, rtol=1e-7, atol=1e-9)
    g_streams, g_params = eng.to_host()
    assert_tables_close(g_streams, w_streams, rtol=1e-7, atol=1e-9)
    assert_tables_close(g_params, w_params, rtol=1e-7, atol=1e-9)
    assert g_params.step[0] > 0
    seq_streams, seq_params = copy_tables(streams, params)
    cpu_batch(hy, seq_streams, seq_params, slots, X)  # one update per event, in order
    assert not np.allclose(g_params.theta, seq_params.theta, rtol=1e-7, atol=1e-9)


def test_shared_mode_with_one_stream_is_the_cpu_path():
    """Waves of one event: one update per event, exactly as on the CPU."""
    hy, theta0, streams, params, slots, X = setup(shared=True)
    slots[:] = 3
    eng = CudaEngine(hy, streams, params, theta0, threads_per_block=TPB)
    got = eng.process(slots[:20], X[:20])
    assert_outputs_close(got, cpu_batch(hy, streams, params, slots[:20], X[:20]))
    assert_tables_close(eng.to_host()[1], params)


def test_reset_and_grow_slots():
    hy, theta0, streams, params, slots, X = setup()
    eng = CudaEngine(hy, streams, params, theta0, threads_per_block=TPB)
    eng.process(slots, X, True, 1.7e9 + 3600.0 * np.arange(len(X)))  # timestamps: the profile fills too
    before, _ = eng.to_host()
    eng.resize(9)
    assert eng.capacity == 9
    eng.reset_slots([1, 7], [11, 12])
    g_streams, g_params = eng.to_host()
    for name, a, b in zip(g_streams._fields, g_streams, before):  # untouched rows kept
        np.testing.assert_array_equal(a[[0, 2, 3, 4]], b[[0, 2, 3, 4]])
        # (empty: tables this mode does not use; winflag: no flagged event in the window;
        # tails and the news given the others' tables: learnt once a feature is judged, after
        # scoring.TAIL_MIN_COUNT observations, more than a stream gets here)
        assert b[1].any() or b[1].size == 0 or name in ("winflag", "tails", "corr", "corr_tails")
    g_streams.counters[[1, 7], C_RNG] -= [11, 12]
    for a in g_streams:
        assert not a[[1, 7]].any()
    np.testing.assert_array_equal(g_params.theta[7], theta0)
    assert not g_params.m[1].any() and g_params.step[1] == 0


def test_cpu_gpu_snapshot_round_trip():
    """CPU snapshot -> device -> continue (with new streams) -> snapshot: the same as the
    CPU path continuing, in the same snapshot format."""
    assert resolve_backend("cuda") == "cuda"  # the simulator counts as a device
    rng = np.random.default_rng(1)
    ids = [f"s{i}" for i in rng.integers(0, 4, 60)] + [f"n{i}" for i in rng.integers(0, 3, 20)]
    X = np.stack([np.sin(np.arange(80) / 3.0), rng.normal(size=80)], axis=1)
    kw = dict(hidden_size=H, k2=K, k1=2, warmup=5, dtype="float64", input_dropout=0.1)
    cpu = MultiStreamDetector(2, **kw)
    cpu.process(ids[:40], X[:40])
    data = cpu.to_bytes()

    dev = MultiStreamDetector.from_bytes(data)
    eng = CudaEngine(dev.hyper, dev.streams, dev.params, dev.theta0, threads_per_block=TPB)
    slots, new = dev.table.assign(ids[40:])
    assert len(slots) == 40 and new
    eng.resize(int(slots.max()) + 1)
    eng.reset_slots([s for s, _ in new], [stream_rng_seed(dev.settings["seed"], sid) for _, sid in new])
    got = eng.process(slots, X[40:])
    streams, params = eng.to_host()
    dev._grow(dev.n_streams)
    n = dev.n_streams
    for dst, src in zip(dev.streams + dev.params, streams + params):
        dst[:n] = src[:n]

    want = cpu.process(ids[40:], X[40:])
    assert_outputs_close(got, want[:-1])  # (abnormal is computed from regime by the detector)
    a_cpu, m_cpu = snapshot.unpack(cpu.to_bytes())
    a_dev, m_dev = snapshot.unpack(dev.to_bytes())
    assert m_cpu == m_dev and a_cpu.keys() == a_dev.keys()
    for k in a_cpu:
        np.testing.assert_allclose(a_dev[k], a_cpu[k], rtol=1e-5, atol=1e-8, err_msg=k)
