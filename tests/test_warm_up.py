"""The kernels are compiled before live events wait for them: a Kafka daemon reads its
backlog in large batches, then live events in small ones, and with a cold Numba cache (a
fresh container) a kernel compiled at first use holds them for seconds."""

import dataclasses
import time

import numpy as np

from streamlstm import MultiStreamDetector, pool
from streamlstm.config import Config, GroupConfig, ModelConfig
from streamlstm.engine import cpu_engine
from streamlstm.engine.kernels_cpu import process_batch


def test_one_kernel_serves_batches_of_every_size(batch_splits):
    """The first batch readies process_batch, which serves small batches whole and large
    ones split by stream alike, so later batches compile nothing (a kernel for shards and
    another for whole batches, each compiled at its first use, held bench_kafka.py's live
    events for a p99 of 9 s at the first small batch after a backlog)."""
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in rng.integers(0, 60, 2400)]
    X = rng.normal(size=(2400, 2))
    det = MultiStreamDetector(2, threads=2, warmup=30, hidden_size=8, k2=6)
    det.process(ids[:10], X[:10])
    assert not batch_splits and set(det.engine._compiled) == {process_batch}
    overloads = len(process_batch.overloads)
    det.process(ids[10:], X[10:])
    assert batch_splits and len(process_batch.overloads) == overloads
    assert set(det.engine._compiled) == {process_batch}


def test_warm_up_runs_each_model_of_the_configuration_once(monkeypatch):
    """pool.warm_up (the daemon's, before it joins its group) puts one known-good event of one
    feature through a detector of each distinct model the configuration names: the default
    and every group's, a model two groups share once."""
    seen = []
    build = pool.detector_for

    def spy(model, n_features, max_streams):
        det = build(model, n_features, max_streams)
        process = det.process

        def recorded(ids, X, timestamps=None, learn=True, score=True):
            seen.append((model, X.shape, score))
            return process(ids, X, timestamps, learn=learn, score=score)

        det.process = recorded
        return det

    monkeypatch.setattr(pool, "detector_for", spy)
    gru = dataclasses.replace(ModelConfig(), cell="gru", hidden_size=8)
    config = Config(groups=(GroupConfig("a", ("a*",), gru), GroupConfig("b", ("b*",), gru)))
    pool.warm_up(config)
    assert seen == [(ModelConfig(), (1, 1), False), (gru, (1, 1), False)]


def test_a_slow_first_batch_says_it_is_compiling(monkeypatch, caplog):
    """Getting the kernels longer than COMPILE_NOTICE_S (only compiling takes that long) is
    logged as it happens and when it ends, so a first run does not look hung; a quick one
    says nothing."""
    caplog.set_level("INFO", logger="streamlstm")
    MultiStreamDetector(1).process(["a"], np.zeros((1, 1)))
    assert not [r for r in caplog.records if "kernels" in r.getMessage()]
    entry_point = cpu_engine._entry_point

    def compiling(kernel, args):  # as slow as compiling, at this scale
        time.sleep(0.5)
        return entry_point(kernel, args)

    monkeypatch.setattr(cpu_engine, "_entry_point", compiling)
    monkeypatch.setattr(cpu_engine, "COMPILE_NOTICE_S", 0.05)
    MultiStreamDetector(1).process(["a"], np.zeros((1, 1)))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("compiling the kernels") for m in messages)
    assert any(m.startswith("kernels ready in") for m in messages)
