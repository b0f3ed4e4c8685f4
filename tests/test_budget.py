"""The process-wide state budget: stream cap, byte budget and model cap across all models."""

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from streamlstm.budget import PY_BYTES_PER_MODEL, PY_BYTES_PER_STREAM
from streamlstm.cli import main
from streamlstm.config import load_config
from streamlstm.event import Event
from streamlstm.pool import DetectorPool

SMALL = {"model.hidden_size": 4, "model.k2": 4, "model.warmup": 5}


def pool_with(**overrides) -> DetectorPool:
    return DetectorPool(load_config(None, env={}, overrides={**SMALL, **overrides}))


def event(seq: int, stream: str, feature: str = "value", ts: float | None = None) -> Event:
    return Event(seq, stream, (feature,), (float(seq % 7),), ts, ts, {feature: float(seq % 7)})


def allocated(pool: DetectorPool) -> int:
    """What the detectors really hold, counted from their tables, plus the bookkeeping."""
    dets = pool.detectors.values()
    return (sum(d.fixed_bytes() + PY_BYTES_PER_MODEL + d.capacity * d.bytes_per_stream() for d in dets)
            + PY_BYTES_PER_STREAM * sum(d.n_streams for d in dets))


def run(pool: DetectorPool, events: list[Event], batch: int = 100) -> None:
    for start in range(0, len(events), batch):
        pool.process(events[start:start + batch])
    pool.to_bytes()  # applies the evictions planned for the last micro-batch


def test_the_stream_cap_holds_across_models_with_distinct_feature_sets():
    """1,000 single-feature streams, each with its own feature name (so its own model), in
    batches of max_streams: at most max_streams streams and models are held, and the budget's
    count is exact."""
    pool = pool_with(max_streams=100)
    run(pool, [event(n, f"s{n}", f"f{n}") for n in range(1000)])
    assert pool.budget.n_streams == 100 == sum(d.n_streams for d in pool.detectors.values())
    assert len(pool.detectors) == 100 == len(pool.budget.models)
    assert pool.budget.evictions == {"max_streams": 900}
    assert pool.budget.bytes == allocated(pool)


@pytest.mark.parametrize("mode", ["per_stream", "shared"])
def test_the_byte_budget_bounds_what_is_allocated(mode):
    budget = 16 << 20
    pool = pool_with(max_state_bytes=budget, **{"model.weight_mode": mode})
    run(pool, [event(n, f"id{n}") for n in range(20_000 if mode == "shared" else 10_000)], batch=50)
    det = next(iter(pool.detectors.values()))
    row = det.bytes_per_stream() + PY_BYTES_PER_STREAM
    assert pool.budget.bytes == allocated(pool) <= budget
    assert det.n_streams >= (budget - det.fixed_bytes() - PY_BYTES_PER_MODEL) // row - 50  # all but a batch's worth
    assert pool.budget.evictions["max_state_bytes"] > 0


def test_eviction_is_least_recently_seen_across_models():
    pool = pool_with(max_streams=10)
    pool.process([event(n, f"a{n}", "a") for n in range(5)])  # model A: a0..a4
    pool.process([event(10, "a3", "a")])  # a3 seen again
    pool.process([event(20 + n, f"b{n}", "b") for n in range(9)])  # model B: 9 new streams
    pool.to_bytes()
    a, b = pool.detectors[("default", ("a",))], pool.detectors[("default", ("b",))]
    assert a.stream_ids == ["a3"] and b.n_streams == 9  # the four least recently seen went
    pool.process([event(40 + n, f"b{n + 9}", "b") for n in range(1)])
    pool.to_bytes()
    assert ("default", ("a",)) not in pool.detectors  # a3 went too, and with it model A
    assert pool.budget.n_streams == 10 and pool.budget.bytes == allocated(pool)


def test_an_evicted_stream_starts_over_and_other_streams_are_unaffected():
    """A stream that returns after eviction is new (warm-up again); the others score exactly
    as without the budget."""
    X = [event(n, f"s{n % 3}") for n in range(60)] + [event(60 + n, f"x{n}") for n in range(3)]
    X += [event(100 + n, f"s{n % 3}") for n in range(30)]
    capped, free = pool_with(max_streams=5), pool_with()
    got = [s for start in range(0, len(X), 3) for s in capped.process(X[start:start + 3])]
    want = [s for start in range(0, len(X), 3) for s in free.process(X[start:start + 3])]
    # x0..x2 evicted s0, the least recently seen; s0's return evicted x0.
    assert capped.budget.evictions == {"max_streams": 2} and "s0" in capped.detectors[("default", ("value",))].stream_ids
    for g, w in zip(got, want):
        if g.event.stream != "s0" or g.event.seq < 60:
            assert g.score == w.score and np.array_equal(g.prediction, w.prediction, equal_nan=True)
    back = [g for g in got if g.event.stream == "s0" and g.event.seq >= 100]
    assert np.isnan(back[0].prediction).all()  # new again: no forecast yet
    assert [g.score for g in back[:5]] == [0.0] * 5  # warm-up again


def test_models_beyond_max_models_are_rejected_until_one_is_freed():
    pool = pool_with(max_models=2, max_streams=2)
    routed = pool.route([event(1, "a", "fa"), event(2, "b", "fb"), event(3, "c", "fc"), event(4, "a", "fa")])
    assert [r.seq for r in routed.rejected] == [3] and routed.rejected[0].reason == "too_many_models"
    assert "max_models (2)" in routed.rejected[0].detail and [e.seq for e in routed.events] == [1, 2, 4]
    # A third model's stream can come once the budget has evicted a model's last stream.
    pool.route([event(5, "d", "fa")])  # a, d in model fa; b evicted (max_streams), model fb dropped
    assert [r.seq for r in pool.route([event(6, "c", "fc")]).rejected] == []


def test_restored_streams_count_against_the_budget():
    pool = pool_with(max_streams=50)
    run(pool, [event(n, f"s{n}") for n in range(40)])
    other = pool_with(max_streams=50)
    run(other, [event(n, f"t{n}") for n in range(30)])
    shared = pool_with(max_streams=50)
    second = DetectorPool(shared.config, shared.budget)  # e.g. two partitions of one daemon
    shared.restore(pool.to_bytes())
    second.restore(other.to_bytes())
    # The restored streams count as the most recent: the other pool's oldest are evicted,
    # when the next micro-batch is advanced (or a snapshot taken).
    assert shared.budget.n_streams == 50 and shared.n_streams == 40
    shared.process([event(100, "s0")])  # s0..s19 are gone: s0 comes back new, s20 goes
    assert shared.budget.n_streams == 50 == shared.n_streams + second.n_streams
    assert shared.n_streams == 20 and second.n_streams == 30
    shared.budget.release(second)
    assert shared.budget.n_streams == 20


def test_filter_reports_rejections_and_evictions(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_models: 2\nmax_streams: 3\nbatch_size: 2\nmodel:\n  hidden_size: 4\n  k2: 4\n")
    lines = [json.dumps({"stream": f"s{n}", "values": {f"f{n % 3}": 1.0}}) for n in range(9)]
    res = CliRunner().invoke(main, ["--config", str(cfg), "run"], input="\n".join(lines) + "\n")
    assert res.exit_code == 0, res.output
    errors = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    assert {e["error"] for e in errors} == {"too_many_models"}
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(out) + len(errors) == 9  # every line answered once
    assert "evicting the least recently seen streams" in res.stderr
    assert res.stderr.count("evicting the least recently seen streams") == 1  # warned once
    assert "evicted" in res.stderr.splitlines()[-1]  # the summary counts them


def test_state_limits_are_validated():
    from streamlstm.config import ConfigError

    with pytest.raises(ConfigError, match="max_state_bytes"):
        load_config(None, env={}, overrides={"max_state_bytes": 1000})
    with pytest.raises(ConfigError, match="max_models"):
        load_config(None, env={}, overrides={"max_models": 0})
    assert load_config(None, env={}).max_state_bytes == 1 << 30


def test_restored_streams_a_new_group_would_take_stay_in_theirs_with_a_warning(caplog):
    """A `groups:` entry added before a restart applied to new streams only, without a word."""
    pool = pool_with()
    run(pool, [event(n, s) for n in range(10) for s in ("cpu-1", "cpu-2", "disk-1")])
    grouped = pool_with(groups=[{"name": "cpu", "match": ["cpu-*"], "model": {"threshold": 0.9}}])
    with caplog.at_level(logging.WARNING, logger="streamlstm"):
        grouped.restore(pool.to_bytes())
    assert [r.getMessage() for r in caplog.records] == [
        "2 restored streams stay in the model group they were learnt in, where the configured groups now match "
        "another (e.g. 'cpu-1': group 'default', now 'cpu'); to move them, start from an empty state directory"]
    assert {g for g, _ in grouped.detectors} == {"default"}
    caplog.clear()
    again = pool_with(groups=[{"name": "cpu", "match": ["cpu-*"], "model": {"threshold": 0.9}}])
    run(again, [event(n, s) for n in range(10) for s in ("cpu-1", "disk-1")])
    with caplog.at_level(logging.WARNING, logger="streamlstm"):
        pool_with(groups=[{"name": "cpu", "match": ["cpu-*"], "model": {"threshold": 0.9}}]).restore(again.to_bytes())
    assert not caplog.records  # each stream still where the configuration puts it
