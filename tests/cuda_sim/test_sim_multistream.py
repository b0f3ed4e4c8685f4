"""MultiStreamDetector(backend="cuda") under the CUDA simulator against backend="cpu"."""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.cuda
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("CUDA simulator tests: NUMBA_ENABLE_CUDASIM=1 pytest -m cuda tests/cuda_sim (tests/test_cuda_sim.py "
                "runs them so in a subprocess)", allow_module_level=True)

from streamlstm import MultiStreamDetector  # noqa: E402

KW = dict(hidden_size=4, k2=3, k1=2, warmup=5, dtype="float64", input_dropout=0.1)


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in rng.integers(0, 5, n)]
    X = np.stack([np.sin(np.arange(n) / 3.0), rng.normal(size=n)], axis=1)
    return ids, X


def close(a, b):
    for name in ("scores", "flags", "predictions", "errors", "regime", "contributions", "blame"):
        np.testing.assert_allclose(np.asarray(getattr(a, name), float), np.asarray(getattr(b, name), float),
                                   rtol=1e-5, atol=1e-8)


def test_cuda_backend_matches_cpu_with_eviction_and_snapshots(tmp_path):
    ids, X = data()
    cpu = MultiStreamDetector(2, max_streams=4, **KW)
    gpu = MultiStreamDetector(2, max_streams=4, backend="cuda", **KW)
    close(gpu.process(ids[:30], X[:30]), cpu.process(ids[:30], X[:30]))
    assert gpu.stream_ids == cpu.stream_ids and gpu.table.evicted == cpu.table.evicted > 0
    assert gpu.score_one(ids[0], X[0]) == pytest.approx(cpu.score_one(ids[0], X[0]), rel=1e-6)
    gpu.save(tmp_path / "g.npz")
    back = MultiStreamDetector.load(tmp_path / "g.npz", backend="cuda")
    close(back.process(ids[30:], X[30:]), cpu.process(ids[30:], X[30:]))
    cpu2 = MultiStreamDetector.load(tmp_path / "g.npz")  # a cuda snapshot continues on the cpu
    close(cpu2.process(ids[30:], X[30:]), MultiStreamDetector.load(tmp_path / "g.npz", backend="cuda").process(
        ids[30:], X[30:]))
    assert gpu.bytes_per_stream() == cpu.bytes_per_stream()


def test_the_regime_and_its_blame_match_the_cpu():
    """The regime's step and its blame of each feature (scoring.regime_evidence), which the
    CUDA path calls as the CPU does, through an incident in one of three features."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3))
    X[90:, 2] += 6.0
    ids = ["s"] * len(X)
    cpu = MultiStreamDetector(3, **KW).process(ids, X)
    gpu = MultiStreamDetector(3, backend="cuda", **KW).process(ids, X)
    close(gpu, cpu)
    assert cpu.abnormal[100:].all() and (cpu.blame[100:].argmax(axis=1) == 2).all()
