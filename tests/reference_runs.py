"""Runs whose every output and final state are stored in tests/data/reference_outputs.npz,
so that a change meant to keep results bit for bit (test_reference_outputs.py) is checked
against the code before it, not against itself.

    PYTHONPATH=<checkout of the code before> python tests/reference_runs.py tests/data/reference_outputs.npz

(in a process that loads the kernels from Numba's cache; see test_reference_outputs.py)

The runs cover the batched path (process, with baseline priming, timestamps, NaNs, several
streams), the one-event path (process_one, score_one) and LSTMDetector's river path
(score_one then learn_one, with the orders a caller may use), in per_stream and shared
mode, LSTM and GRU, SGD and Adam, each through incidents that alert, cool down and raise
the regime.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from streamlstm import LSTMDetector, MultiStreamDetector
from streamlstm.engine import snapshot


def events(n: int, D: int, seed: int) -> np.ndarray:
    """(n, D): noisy cycles with spikes, a noise burst, a level shift and missing values."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    # math.sin, not np.sin: NumPy's SIMD sine on AVX-512 rounds differently from libm's.
    x = np.vectorize(math.sin)(t / (8.0 + np.arange(D))) + 0.1 * rng.normal(size=(n, D))
    x[n // 3] += 6.0
    x[n // 2:n // 2 + 20] += rng.normal(size=(20, D))
    x[2 * n // 3:] += 3.0
    x[rng.random((n, D)) < 0.03] = np.nan
    return x


def state_arrays(data: bytes, prefix: str) -> dict[str, np.ndarray]:
    """The arrays of a MultiStreamDetector snapshot, under `prefix`."""
    arrays, _ = snapshot.unpack(data)
    return {f"{prefix}{k}": v for k, v in arrays.items()}


def batch_run() -> dict[str, np.ndarray]:
    """process(): three interleaved streams of two features with timestamps, the first 150
    events as baseline."""
    X = events(1200, 2, 1)
    ids = [f"s{i % 3}" for i in range(len(X))]
    T = 1.7e9 + 600.0 * np.arange(len(X))
    m = MultiStreamDetector(2, hidden_size=8, k2=6, warmup=60, seasonal_bins=12, seed=5)
    m.process(ids[:150], X[:150], T[:150], score=False)
    res = m.process(ids[150:], X[150:], T[150:])
    out = {f"batch.{k}": v for k, v in res._asdict().items()}
    return {**out, **state_arrays(m.to_bytes(), "batch.state.")}


def one_event_run() -> dict[str, np.ndarray]:
    """process_one and score_one in shared mode (GRU, Adam, float64, dropout, k1=2), mixed
    with process() chunks."""
    X = events(900, 1, 2)
    m = MultiStreamDetector(1, weight_mode="shared", cell="gru", optimizer="adam", dtype="float64",
                            input_dropout=0.1, k1=2, hidden_size=6, k2=5, warmup=50, seed=7)
    scores, flags, probes = [], [], []
    for i, x in enumerate(X):
        sid = f"s{i % 2}"
        if i % 50 < 10:
            res = m.process([sid], x[None])
            scores.append(res.scores[0])
            flags.append(res.flags[0])
            continue
        probes.append(m.score_one(sid, x))
        if i % 5 == 0:
            probes.append(m.score_one(sid, x + 1.0))
        s, f = m.process_one(sid, x, score=i > 100)
        scores.append(s)
        flags.append(f)
    return {"one.scores": np.array(scores), "one.flags": np.array(flags), "one.probes": np.array(probes),
            **state_arrays(m.to_bytes(), "one.state.")}


def river_run(name: str, data_seed: int, **settings) -> dict[str, np.ndarray]:
    """LSTMDetector on two features (one sometimes absent), 100 baseline events, then each
    event scored and learnt in one of the orders a caller may use."""
    X = events(900, 2, data_seed)
    det = LSTMDetector(**settings)
    probes, scores, flags, forecasts = [], [], [], []
    for i, (a, b) in enumerate(X):
        x = {"a": a} if i % 9 == 4 else {"a": a, "b": b}
        other = {"a": a + 0.5, "b": b}
        if i < 100:
            det.learn_one(x, score=False)
        elif i % 7 == 3:  # learnt without being scored first
            det.learn_one(x)
        elif i % 11 == 5:  # another event scored first
            probes += [det.score_one(other), det.score_one(x)]
            det.learn_one(x)
        elif i % 13 == 6:  # a forecast between scoring and learning
            probes.append(det.score_one(x))
            forecasts.append(det.predict_one()["a"])
            det.learn_one(x)
        elif i % 17 == 8:  # scored, then another event learnt
            probes.append(det.score_one(x))
            det.learn_one(other)
        elif i % 19 == 9:  # the same event scored twice
            probes += [det.score_one(x), det.score_one(dict(x))]
            det.learn_one(x)
        else:
            probes.append(det.score_one(x))
            det.learn_one(x)
        scores.append(det.last_score)
        flags.append(det.last_flag)
    out = {"probes": np.array(probes), "scores": np.array(scores), "flags": np.array(flags),
           "forecasts": np.array(forecasts)}
    out = {f"{name}.{k}": v for k, v in out.items()}
    return {**out, **state_arrays(det._engine.to_bytes(), f"{name}.state.")}


def all_runs() -> dict[str, np.ndarray]:
    return {
        **batch_run(),
        **one_event_run(),
        **river_run("river_lstm", 3, hidden_size=8, k2=6, warmup=60, seed=11),
        **river_run("river_gru", 4, cell="gru", optimizer="adam", dtype="float64", input_dropout=0.1, k1=2,
                    hidden_size=6, k2=5, warmup=60, seed=13, on_anomaly="skip"),
    }


if __name__ == "__main__":
    runs = all_runs()
    assert math.isfinite(sum(float(np.nansum(v)) for v in runs.values() if v.dtype.kind == "f"))
    np.savez_compressed(sys.argv[1], **runs)
    print(f"{sys.argv[1]}: {len(runs)} arrays")
