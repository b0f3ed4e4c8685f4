"""The `threads` setting: a micro-batch's streams advanced by several threads at once."""

import os
import select
import signal

import numpy as np
import pytest

from streamlstm import MultiStreamDetector
from streamlstm.config import Config, ModelConfig
from streamlstm.engine import cpu_engine
from streamlstm.engine.cpu_engine import MIN_SHARD_EVENTS, split_by_stream
from streamlstm.event import Event
from streamlstm.pool import DetectorPool


def many_streams(n_streams=60, n=2400, seed=0):
    """Events of n_streams streams in a random order: two features with gaps, timestamps."""
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in rng.integers(0, n_streams, n)]
    X = np.stack([np.sin(np.arange(n) / 7.0), rng.normal(size=n)], axis=1)
    X[rng.random((n, 2)) < 0.05] = np.nan
    X[n // 2, 0] = 50.0  # an anomaly, so alerts and the anomaly policy take part
    T = 1.7e9 + 60.0 * np.arange(n)
    return ids, X, T


def run(threads, mode="per_stream", batch=800, **kw):
    """(outputs of every batch, the detector) for the events of many_streams."""
    ids, X, T = many_streams()
    det = MultiStreamDetector(2, weight_mode=mode, threads=threads, warmup=30, hidden_size=8, k2=6, **kw)
    results = [det.process(ids[i:i + batch], X[i:i + batch], T[i:i + batch]) for i in range(0, len(ids), batch)]
    return results, det


def assert_same(a, b):
    (res_a, det_a), (res_b, det_b) = a, b
    for ra, rb in zip(res_a, res_b):
        for name, x, y in zip(ra._fields, ra, rb):
            np.testing.assert_array_equal(x, y, err_msg=name)
    for ta, tb in zip((*det_a.streams, *det_a.params), (*det_b.streams, *det_b.params)):
        np.testing.assert_array_equal(ta, tb)
    assert det_a.to_bytes() == det_b.to_bytes()  # snapshots do not depend on the thread count


@pytest.mark.parametrize("kw", [{}, {"cell": "gru", "optimizer": "adam", "input_dropout": 0.1, "k1": 2}],
                         ids=["lstm-cached-window", "gru-adam-rerun-window"])
def test_per_stream_results_and_state_equal_one_thread_in_input_order(kw, monkeypatch, batch_splits):
    with monkeypatch.context() as m:
        m.setattr(cpu_engine, "MIN_SHARD_EVENTS", 10**9)  # process_batch, events in input order
        reference = run(1, **kw)
        assert not batch_splits
    for threads in (1, 2, 3):  # one shard, events grouped by stream; two; three
        split = run(threads, **kw)
        assert batch_splits == [min(threads, 800 // MIN_SHARD_EVENTS)] * 3  # each of the 3 batches
        batch_splits.clear()
        assert_same(reference, split)


def test_shared_mode_runs_on_one_thread_whatever_the_setting(batch_splits):
    one, three = run(1, "shared"), run(3, "shared")
    assert three[1].engine.threads == 1 and not batch_splits
    assert_same(one, three)


def test_small_batches_and_single_events_stay_on_one_thread(batch_splits):
    ids, X, T = many_streams()
    det = MultiStreamDetector(2, threads=4, warmup=30, hidden_size=8, k2=6)
    small = 2 * MIN_SHARD_EVENTS - 1  # one shard of MIN_SHARD_EVENTS at most: one thread
    det.process(ids[:small], X[:small], T[:small])
    det.process_one(ids[0], X[0], T[0])
    det.score_one(ids[0], X[0], T[0])
    assert not batch_splits



def test_split_by_stream_keeps_streams_whole_ordered_and_balanced():
    rng = np.random.default_rng(3)
    slots = rng.integers(0, 50, 1000)
    slots[::3] = 7  # a hot stream: a third of the events
    shards = split_by_stream(slots, 4)
    rows = np.concatenate(shards)
    assert sorted(rows.tolist()) == list(range(1000))
    for s in shards:  # stream by stream, each stream's events in input order
        assert np.all(np.diff(slots[s]) >= 0)
        assert all(np.all(np.diff(s[slots[s] == slot]) > 0) for slot in np.unique(slots[s]))
    owner = {}
    for k, s in enumerate(shards):
        for slot in np.unique(slots[s]):
            assert owner.setdefault(slot, k) == k  # a stream's events are in one shard
    assert max(map(len, shards)) < 1000 // 2  # the hot stream's shard, about a third
    one_stream = split_by_stream(np.full(300, 5), 3)
    assert len(one_stream) == 1 and np.array_equal(one_stream[0], np.arange(300))


def test_zero_threads_is_every_core(monkeypatch):
    monkeypatch.setattr(cpu_engine.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert MultiStreamDetector(1).engine.threads == 3
    assert MultiStreamDetector(1, threads=5).engine.threads == 5
    with pytest.raises(ValueError, match="threads"):
        MultiStreamDetector(1, threads=-1)


def test_threads_come_from_the_config_not_the_snapshot():
    det = MultiStreamDetector(1, threads=3)
    assert MultiStreamDetector.from_bytes(det.to_bytes()).engine.threads == cpu_engine.resolve_threads(0)
    assert MultiStreamDetector.from_bytes(det.to_bytes(), threads=2).engine.threads == 2
    pool = DetectorPool(Config(model=ModelConfig(threads=3)))
    pool.process([Event(1, "a", ("value",), (1.0,), None, None, {"value": 1.0})])
    restored = DetectorPool(Config(model=ModelConfig(threads=2)))
    restored.restore(pool.to_bytes())
    assert [d.engine.threads for d in restored.detectors.values()] == [2]


def test_a_forked_child_splits_batches_with_workers_of_its_own(batch_splits):
    run(2)  # the parent's shard worker exists, idle, when it forks
    expected = run(1)[0][0].scores
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, where that worker thread does not exist
        try:
            res, det = run(2)
            ok = bool(batch_splits) and np.array_equal(res[0].scores, expected)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert select.select([read], [], [], 60)[0], "the child hangs"
        assert os.read(read, 1) == b"1"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
