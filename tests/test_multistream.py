"""MultiStreamDetector: batching, weight modes, eviction, snapshots, memory per stream."""

import datetime

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import sine_with_anomalies

from streamlstm import MultiStreamDetector
from streamlstm.engine.compact import BF16, bin_mean, bin_var, narrow_value
from streamlstm.engine.layout import BIN_BYTES, CYC_LAG
from streamlstm.engine.state import StreamTable


def interleaved(n_streams=5, n=300, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in rng.integers(0, n_streams, n)]
    X = np.stack([sine_with_anomalies(seed=seed)[:n], rng.normal(size=n)], axis=1)
    X[rng.random((n, 2)) < 0.05] = np.nan  # missing values
    return ids, X


def test_per_stream_results_do_not_depend_on_other_streams():
    ids, X = interleaved()
    together = MultiStreamDetector(2, warmup=10).process(ids, X)
    for sid in set(ids):
        rows = [n for n, s in enumerate(ids) if s == sid]
        alone = MultiStreamDetector(2, warmup=10).process([sid] * len(rows), X[rows])
        np.testing.assert_array_equal(together.scores[rows], alone.scores)
        np.testing.assert_array_equal(together.predictions[rows], alone.predictions)


@pytest.mark.parametrize("mode", ["per_stream", "shared"])
def test_one_batch_equals_event_by_event(mode):
    ids, X = interleaved()
    batch = MultiStreamDetector(2, warmup=10, weight_mode=mode).process(ids, X)
    single = MultiStreamDetector(2, warmup=10, weight_mode=mode)
    for n, sid in enumerate(ids):
        assert single.score_one(sid, X[n]) == batch.scores[n]  # pure scoring agrees
        if n % 2:  # process_one takes a shortcut for known streams
            assert single.process_one(sid, X[n]) == (batch.scores[n], batch.flags[n])
            continue
        r = single.process([sid], X[n:n + 1])
        assert r.scores[0] == batch.scores[n]
        assert r.errors[0] == batch.errors[n] or np.isnan(batch.errors[n])


def test_shared_mode_shares_weights_and_is_small():
    ids, X = interleaved()
    shared = MultiStreamDetector(1, weight_mode="shared", hidden_size=32, k2=16)
    shared.process(ids, X[:, :1])
    assert shared.params.theta.shape[0] == 1 and shared.params.step[0] > 0
    # 1,019 bytes at H=32, K=16, D=1 (issue 17's goal: <= 1,024; where they go:
    # docs/architecture.md; no own cycle in shared mode by default), 851 without the
    # 24-bin daily profile.
    assert shared.bytes_per_stream() <= 1019
    no_profile = MultiStreamDetector(1, weight_mode="shared", hidden_size=32, k2=16, seasonal_bins=0)
    no_profile.process(ids, X[:, :1])
    assert no_profile.bytes_per_stream() <= 851
    per_stream = MultiStreamDetector(1, hidden_size=32, k2=16)
    per_stream.process(ids, X[:, :1])
    assert per_stream.bytes_per_stream() > 20 * shared.bytes_per_stream()


def test_shared_mode_can_record_the_window():
    """record_window: shared weights, per_stream's recorded window. One stream's results
    are then per_stream's bit for bit; several streams share one set of weights, and each
    holds its window (~15 KB at H=32, K=16)."""
    ids, X = interleaved(n_streams=1, n=400)
    per_stream = MultiStreamDetector(2, warmup=20, cycle_max=64).process(ids, X)
    recorded = MultiStreamDetector(2, warmup=20, weight_mode="shared", record_window=True, cycle_max=64)
    assert recorded.hyper.cached_window and recorded.hyper.shared
    res = recorded.process(ids, X)
    for name in ("scores", "errors", "predictions", "flags", "regime"):
        np.testing.assert_array_equal(getattr(res, name), getattr(per_stream, name))
    ids, X = interleaved()
    many = MultiStreamDetector(1, weight_mode="shared", record_window=True)
    many.process(ids, X[:, :1])
    assert many.params.theta.shape[0] == 1 and many.params.step[0] > 0
    assert 14_000 < many.bytes_per_stream() < 16_000
    assert not MultiStreamDetector(2, weight_mode="shared", record_window=True, input_dropout=0.1).hyper.cached_window


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_rerun_window_carries_its_state(cell):
    """In a re-run window (shared mode) the forecasts come from the trajectory the gradient
    trains: each update re-derives the carried state from the window, so a carried state
    knocked off that trajectory (here: zeroed) is back on it after the next event. Without
    this, other streams' updates let the two drift apart (docs/tuning-log.md)."""
    ids, X = interleaved(n_streams=1, n=120)
    det = MultiStreamDetector(2, weight_mode="shared", cell=cell, warmup=10)
    det.process(ids[:100], X[:100])
    knocked = MultiStreamDetector.from_bytes(det.to_bytes())
    streams = knocked.engine.to_host()[0]
    streams.h[:] = 0.0
    streams.c[:] = 0.0
    np.testing.assert_array_equal(det.process(ids[100:], X[100:]).predictions,
                                  knocked.process(ids[100:], X[100:]).predictions)
    # With input dropout the re-run is noisy and the carried state stays apart: knocked, it
    # stays knocked (which shows that the knock matters).
    dropout = MultiStreamDetector(2, weight_mode="shared", cell=cell, warmup=10, input_dropout=0.1)
    dropout.process(ids[:100], X[:100])
    knocked = MultiStreamDetector.from_bytes(dropout.to_bytes())
    knocked.engine.to_host()[0].h[:] = 0.0
    assert not np.allclose(dropout.process(ids[100:], X[100:]).predictions[1:],
                           knocked.process(ids[100:], X[100:]).predictions[1:])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("n", [5, 7, 40])  # window filling, just rolled, rolled many times
def test_cached_window_gradient_equals_rerun_window(cell, n):
    """per_stream mode backpropagates through the recorded trajectory, shared mode re-runs
    the window from its start state: with weights that do not move (a learning rate far
    below float64 resolution) both see the same trajectory, so the gradients agree."""
    ids, X = interleaved(n_streams=1, n=n)
    grads = []
    for mode in ("per_stream", "shared"):
        m = MultiStreamDetector(2, weight_mode=mode, cell=cell, hidden_size=6, k2=5, k1=2, dtype="float64",
                                learning_rate=1e-300, momentum=0.0, on_anomaly="learn")
        assert m.hyper.cached_window == (mode == "per_stream")
        m.process(ids, X)
        grads.append(m.engine.work.grad.copy())
    assert np.abs(grads[0]).max() > 1e-3  # not vacuous
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-15)


def test_first_event_has_no_prediction_and_missing_values_are_tolerated():
    m = MultiStreamDetector(2, warmup=0)
    r = m.process(["a", "a", "a"], np.array([[1.0, np.nan], [np.nan, np.nan], [2.0, 3.0]]))
    assert np.isnan(r.predictions[0]).all()
    assert np.isnan(r.errors[1])  # nothing observed
    assert np.isfinite(m.params.theta).all()


def test_max_streams_evicts_least_recently_seen():
    m = MultiStreamDetector(1, max_streams=3, warmup=0)
    for sid in ["a", "b", "c", "a", "d"]:  # "b" is the least recently seen when "d" comes
        m.learn_one(sid, [1.0])
    assert m.stream_ids == ["c", "a", "d"]
    assert m.table.evicted == 1
    # A batch with more distinct streams than the cap is processed in order, in parts.
    r = m.process([f"x{i}" for i in range(10)], np.ones((10, 1)))
    assert len(r.scores) == 10 and m.n_streams == 3
    assert m.stream_ids == ["x7", "x8", "x9"]


def test_cardinality_flood_keeps_memory_bounded():
    m = MultiStreamDetector(1, max_streams=1000, weight_mode="shared")
    for start in range(0, 20_000, 2000):
        m.process([f"id{i}" for i in range(start, start + 2000)], np.ones((2000, 1)))
    assert m.n_streams == 1000 and m.streams.h.shape[0] == 1000


@pytest.mark.parametrize("mode,kw", [("per_stream", {"input_dropout": 0.1}), ("shared", {"input_dropout": 0.1}),
                                     ("shared", {"record_window": True})])
def test_snapshot_continuity_is_bit_identical(tmp_path, mode, kw):
    ids, X = interleaved(n=400)
    straight = MultiStreamDetector(2, warmup=20, weight_mode=mode, **kw)
    a = straight.process(ids, X)
    first = MultiStreamDetector(2, warmup=20, weight_mode=mode, **kw)
    b1 = first.process(ids[:150], X[:150])
    first.save(tmp_path / "m.npz")
    b2 = MultiStreamDetector.load(tmp_path / "m.npz").process(ids[150:], X[150:])
    for name in ("scores", "errors", "predictions", "flags"):
        np.testing.assert_array_equal(getattr(a, name), np.concatenate([getattr(b1, name), getattr(b2, name)]))


def test_rejects_bad_arguments():
    with pytest.raises(TypeError, match="unknown"):
        MultiStreamDetector(1, hiden_size=3)
    with pytest.raises(ValueError, match="weight_mode"):
        MultiStreamDetector(1, weight_mode="both")
    with pytest.raises(ValueError, match="shape"):
        MultiStreamDetector(2).process(["a"], np.ones((1, 3)))


def test_a_stream_id_that_is_not_a_str_changes_nothing():
    """A stream id that is not a str is a TypeError before anything changes (it used to
    evict the oldest stream, then fail, leaving the new id on the evicted stream's state;
    a tuple id wrote a snapshot that could not be read), and so is one str where a
    sequence of ids is expected ("ab" was streams "a" and "b")."""
    m = MultiStreamDetector(1, max_streams=1, warmup=20)
    m.process(["a"] * 100, np.sin(np.arange(100) / 5)[:, None])
    before = m.to_bytes()
    for ids in ([7], [("x", 1)], ["b", 7], "ab"):
        with pytest.raises(TypeError, match="stream ids"):
            m.process(ids, np.zeros((len(ids), 1)))
    with pytest.raises(TypeError, match="stream ids"):
        m.process_one(7, [0.5])
    with pytest.raises(TypeError, match="stream ids"):
        m.evict("ab")
    assert m.to_bytes() == before and m.stream_ids == ["a"]


class _Labelled:
    """A sequence as a pandas Series with a shuffled index gives it: iterated in order,
    indexed by label (s[n] is the value labelled n, not the n-th)."""

    def __init__(self, values, labels):
        self.values, self.by_label = list(values), dict(zip(labels, values))

    def __iter__(self):
        return iter(self.values)

    def __len__(self):
        return len(self.values)

    def __getitem__(self, key):
        return self.values[key] if isinstance(key, slice) else self.by_label[key]


def test_stream_ids_are_read_by_position_in_any_iterable():
    """Ids indexed by label (a filtered or sorted pandas Series) are read by position:
    learn=False judged each event against the stream its label's id named (rows 1 and 2
    against each other's state, silently); a tuple, an array or a generator is read as
    the list; no event reads as no event."""
    rng = np.random.default_rng(0)
    ref = MultiStreamDetector(1, warmup=10, hidden_size=4)
    ref.process(list(rng.choice(["a", "b", "c"], 200)), rng.normal(size=(200, 1)))
    ids, X = ["a", "b", "c", "a"], np.array([[0.1], [50.0], [0.2], [-0.3]])
    want = ref.process(ids, X, learn=False).scores
    assert want[1] > 0.5 > want[[0, 2, 3]].max()
    for as_given in (_Labelled(ids, [3, 2, 1, 0]), tuple(ids), np.array(ids), (i for i in ids)):
        np.testing.assert_array_equal(ref.process(as_given, X, learn=False).scores, want)
    learnt = MultiStreamDetector.from_bytes(ref.to_bytes()).process(ids, X).scores
    for as_given in (_Labelled(ids, [3, 2, 1, 0]), (i for i in ids)):
        m = MultiStreamDetector.from_bytes(ref.to_bytes())
        np.testing.assert_array_equal(m.process(as_given, X).scores, learnt)
    assert len(ref.process([], []).scores) == 0


def test_one_event_calls_check_their_arguments_as_process_does():
    """score_one and forecast_one refuse an id that is not a str (an int id scored 0 for
    ever, as an unknown stream), and score_one an event of the wrong width for an unknown
    stream too; resize refuses a capacity above max_streams (it allocated without bound)
    or not an integer; values that are not numbers name their argument."""
    m = MultiStreamDetector(2, max_streams=10)
    m.process_one("1", [1.0, 2.0])
    with pytest.raises(TypeError, match="stream ids"):
        m.score_one(1, [1.0, 2.0])
    with pytest.raises(TypeError, match="stream ids"):
        m.forecast_one(1)
    with pytest.raises(ValueError, match="2 values"):
        m.score_one("unknown", [1.0])
    with pytest.raises(ValueError, match="max_streams"):
        m.resize(50)
    with pytest.raises(TypeError, match="capacity"):
        m.resize(2.5)
    with pytest.raises(TypeError, match="X must hold numbers"):
        m.process(["1"], [["x", 1.0]])
    with pytest.raises(TypeError, match="x must hold numbers"):
        m.process_one("1", ["x", 1.0])


def test_judging_without_learning_holds_no_new_stream():
    """process(learn=False) changes nothing: an unknown stream's events read as a new
    stream's first (0, no forecast) and the stream is not held, so it evicts nobody (it
    used to take the only slot, and the learnt stream began its warm-up again); a held
    stream's events are judged against its state, the same each time."""
    m = MultiStreamDetector(1, max_streams=1, warmup=20)
    m.process(["a"] * 100, np.sin(np.arange(100) / 5)[:, None])
    before = m.to_bytes()
    first = m.process(["probe", "a", "probe"], [[5.0], [0.1], [0.2]], learn=False)
    again = m.process(["a"], [[0.1]], learn=False)
    assert m.to_bytes() == before and m.stream_ids == ["a"] and m.table.evicted == 0
    assert first.scores[1] > 0 and first.scores[1] == again.scores[0] and np.isfinite(first.predictions[1]).all()
    fresh = MultiStreamDetector(1, warmup=20).process(["probe"], [[5.0]])
    for name in ("scores", "flags", "predictions", "errors", "regime", "abnormal"):
        for n in (0, 2):
            np.testing.assert_array_equal(getattr(first, name)[n], getattr(fresh, name)[0], err_msg=name)


def test_infinite_values_are_missing_and_numpy_times_are_read_by_their_unit():
    """+-inf is a missing value, as LSTMDetector and the filter read it (it counted as
    +-1e18 and flagged the event); datetime64 timestamps of any unit are epoch seconds
    (nanoseconds were taken for seconds, 1e9 times too far), NaT and inf unknown; numpy
    integers are valid settings."""
    x = np.sin(np.arange(300) / 5)[:, None]
    with_inf, with_nan = x.copy(), x.copy()
    with_inf[200], with_nan[200] = np.inf, np.nan
    kw = dict(warmup=20, seed=np.int64(3), hidden_size=np.int64(8))
    a = MultiStreamDetector(1, **kw).process(["s"] * 300, with_inf)
    b = MultiStreamDetector(1, **kw).process(["s"] * 300, with_nan)
    np.testing.assert_array_equal(a.scores, b.scores)
    t = np.datetime64("2024-01-01T00:00:00") + np.arange(300).astype("timedelta64[h]")
    seconds = (t - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "s")
    want = MultiStreamDetector(1, **kw).process(["s"] * 300, x, timestamps=seconds)
    for times in (t.astype("datetime64[ns]"), t.astype("datetime64[ms]")):
        got = MultiStreamDetector(1, **kw).process(["s"] * 300, x, timestamps=times)
        np.testing.assert_array_equal(got.scores, want.scores)
    unknown = MultiStreamDetector(1, **kw).process(["s"] * 300, x, timestamps=np.full(300, np.inf))
    with pytest.raises(ValueError, match="milliseconds"):
        MultiStreamDetector(1, **kw).process(["s"] * 300, x, timestamps=seconds * 1000)
    np.testing.assert_array_equal(unknown.scores, MultiStreamDetector(1, **kw).process(["s"] * 300, x).scores)
    m = MultiStreamDetector(np.int64(1), **kw)
    assert type(m.settings["seed"]) is int and MultiStreamDetector.from_bytes(m.to_bytes()).settings == m.settings


def test_datetimes_with_or_without_a_time_zone_are_event_times():
    """Datetimes (a pandas Timestamp is one) are read as the moment they name, naive ones
    as UTC as a naive datetime64 is, by process and by the one-event calls (a time zone
    raised a float() TypeError, and process_one took no datetime64, datetime or None);
    durations are refused; a datetime64 past year 9999 is not called milliseconds."""
    utc, berlin = datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=1))
    seconds = 1.7e9 + 3600.0 * np.arange(60)
    X = np.sin(np.arange(60) / 3)[:, None]
    want = MultiStreamDetector(1, warmup=5).process(["s"] * 60, X, seconds)
    moments = [datetime.datetime.fromtimestamp(t, utc) for t in seconds]
    for times in (moments, [t.astimezone(berlin) for t in moments], [t.replace(tzinfo=None) for t in moments],
                  np.array(moments, dtype=object), [*moments[:59], None]):
        got = MultiStreamDetector(1, warmup=5).process(["s"] * 60, X, times)
        np.testing.assert_array_equal(got.scores[:59], want.scores[:59])
    one = MultiStreamDetector(1, warmup=5)
    for n, t in enumerate(moments):
        when = (t, np.datetime64(int(seconds[n]), "s"), t.astimezone(berlin))[n % 3]
        assert one.process_one("s", X[n], when)[0] == want.scores[n]
    assert one.score_one("s", [0.5], None) == one.score_one("s", [0.5])
    with pytest.raises(TypeError, match="timedelta64"):
        one.process(["s"], [[0.5]], np.array([5], dtype="timedelta64[s]"))
    with pytest.raises(ValueError, match=r"9999, got [0-9.e+]+$"):
        one.process(["s"], [[0.5]], np.array(["10000-01-01"], dtype="datetime64[s]"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_normal_value_after_missing_ones_is_not_an_anomaly(seed):
    """A forecast made without the feature's previous value, and a move across a gap, are
    not judged (kernels_cpu.mark_gaps): the first value after 20 missing events of a clean
    sine scored 0.98 and was an alert, the cell having drifted on missing inputs and the
    step measured from before the gap. Events with no value do not count toward the
    warm-up: a stream whose first 400 events were missing alerted on its third value. A
    feature missing for 20 events beside an observed one returns without an alert."""
    rng = np.random.default_rng(seed)
    n = 3000
    base = np.sin(np.arange(n) / 5) + 0.05 * rng.normal(size=n)
    gap, late = base.copy(), base.copy()
    gap[1500:1520] = np.nan
    late[:400] = np.nan
    two = np.stack([base, np.cos(np.arange(n) / 7) + 0.05 * rng.normal(size=n)], axis=1)
    two[1500:1520, 1] = np.nan
    for x in (gap[:, None], late[:, None], two):
        res = MultiStreamDetector(x.shape[1], seed=seed).process(["a"] * n, x)
        assert not res.flags.any() and not res.abnormal.any(), np.flatnonzero(res.flags)
    scores = MultiStreamDetector(1, seed=seed).process(["a"] * n, gap[:, None]).scores
    assert scores[1520] <= scores[1490:1500].max()  # no more surprising than just before the gap (0.98 when judged)


def interleaved_cycles(seed, kind, n=6000):
    """Four sensors' noisy cycles (period 100) with an anomaly of `kind` in feature seed % 4
    (spikes of 3 amplitudes at rows 2,500, 3,800 and 5,000, or a noise burst of 0.8
    amplitudes over rows 3,000-3,049), as they send them one reading a message: each row's
    four values as four events in column order, each with the other three missing. The
    events (4 n, 4) and the broken feature."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    amplitude, phase = np.array([1.0, 0.5, 2.0, 4.0]), np.array([0.0, 0.25, 0.5, 0.75])
    X = np.sin(2 * np.pi * (t[:, None] / 100 + phase)) + 0.1 * rng.normal(size=(n, 4))
    broken = seed % 4
    if kind == "spike":
        X[[2500, 3800, 5000], broken] += rng.choice([-3.0, 3.0], size=3)
    else:
        X[3000:3050, broken] += rng.normal(0, 0.8, 50)
    Y = np.full((4 * n, 4), np.nan)
    Y[np.arange(4 * n), np.tile(np.arange(4), n)] = (amplitude * X).ravel()
    return Y, broken


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sensors_sent_one_reading_a_message_are_judged_at_their_own_rhythm(seed):
    """Sensors read at their own times and sent one reading a message, merged into one
    stream, give each feature one event in four: that is its rhythm (scoring.holds), not a
    gap each time, so its step and its innovation are judged from its last reading; the
    four count as record setters at each event (record_setters), and the regime takes a
    feature the event lacks as no evidence either way (regime_evidence). Before, each such value came after a gap: of spikes of 3 amplitudes
    one in three went unseen, new records by a few hundredths of the range raised 6-9 false
    alerts a stream, and a noise burst was never abnormal."""
    Y, broken = interleaved_cycles(seed, "spike")
    res = MultiStreamDetector(4, seed=seed).process(["s"] * len(Y), Y)
    rows = np.flatnonzero(res.flags) // 4
    spikes = np.array([2500, 3800, 5000])
    assert set(spikes) <= set(rows.tolist()), rows
    assert (res.contributions[np.flatnonzero(res.flags)[np.isin(rows, spikes)]].argmax(axis=1) == broken).all()
    assert np.isin(rows, spikes).sum() >= len(rows) - 1, rows  # at most one false alert
    Y, broken = interleaved_cycles(seed, "noise")
    abnormal = MultiStreamDetector(4, seed=seed).process(["s"] * len(Y), Y).abnormal.reshape(-1, 4).any(axis=1)
    assert abnormal[3000:3070].mean() > 0.6 and abnormal[:2900].sum() < 10 and abnormal[3500:].sum() < 10


def test_each_feature_learns_its_rhythm():
    """Each feature's rhythm (scoring.learn_rhythm) against a plain reference: the events
    since its last observation and the mean interval between its observations (exact,
    then at the scaler's rate; a silence counted as at most four times the interval so far),
    for features missing at random from none, 30 % and 75 % of the events, one missing
    from every other event, and one read at every event but for an outage of 1,000
    events and dropouts of three every 37 after it: the outage does not make its rhythm,
    so the dropouts stay gaps (scoring.holds: a silence of 1.5 intervals or more)."""
    rng = np.random.default_rng(0)
    n = 3000
    X = rng.normal(size=(n, 5))
    X[rng.random(n) < 0.3, 1] = np.nan
    X[rng.random(n) < 0.75, 2] = np.nan
    X[1::2, 3] = np.nan
    X[300:1300, 4] = np.nan
    for start in range(1400, n - 3, 37):
        X[start:start + 3, 4] = np.nan
    det = MultiStreamDetector(5, seed=0)
    det.process(["s"] * n, X)
    stats32, col, alpha = det.engine.to_host()[0].stats32[0], det.hyper.stats, det.hyper.scaler_alpha
    for d in range(5):
        absent, interval, count = 0, 0.0, 0
        for v in X[:, d]:
            if np.isnan(v):
                absent += 1
                continue
            count += 1
            if count >= 2:
                interval += max(1.0 / (count - 1), alpha) * (min(absent + 1, 4 * max(interval, 1.0)) - interval)
            absent = 0
        assert stats32[col.absent + d] == absent, d
        np.testing.assert_allclose(stats32[col.interval + d], interval, rtol=1e-4, err_msg=str(d))
    assert stats32[col.interval + 0] == 1.0 and stats32[col.interval + 3] == 2.0 and stats32[col.absent + 3] == 1.0
    assert 3.5 < stats32[col.interval + 2] < 4.5
    assert 1.0 < stats32[col.interval + 4] < 4.0 / 1.5  # a dropout's silence of 4 is a gap


@pytest.mark.parametrize("seed", [10, 13, 14])
def test_a_spike_after_a_silence_is_news_over_that_silence(seed):
    """A cycle of 40 events with 80 % of its values missing at random (a mean interval of
    about 5) and two spikes of 3 amplitudes the same way, ~1,500 events apart, the second
    read 1-7 events after the value before it (within the feature's rhythm) and within the
    range the first set, so no record. Its innovation is taken under the persistence over
    the events since the value before it (scoring.rho_over_silence: rho to the power of
    those events over the feature's mean interval): under one rho for every pair of
    observations, whatever the silence between them, the long silences' moves were news
    of several sd, the innovations' tail learnt heavy, and in these seeds the second spike
    scored 0.34-0.47 and went unflagged (over seeds 0-19 it was found in 10, now 14; one
    seed lost it, with a false alert more)."""
    rng = np.random.default_rng(seed)
    clean = np.sin(2 * np.pi * np.arange(4000) / 40) + 0.1 * rng.normal(size=4000)
    x = np.where(rng.random(4000) < 0.8, np.nan, clean)
    sign = rng.choice([-1.0, 1.0])
    spikes = np.array([2000, 3500]) + rng.integers(0, 200, size=2)
    x[spikes] = clean[spikes] + 3.0 * sign
    silence = spikes[1] - np.flatnonzero(~np.isnan(x[:spikes[1]]))[-1]
    assert silence <= 7 and sign * x[spikes[1]] < sign * x[spikes[0]]  # the case described
    alerts = np.flatnonzero(MultiStreamDetector(1, seed=seed).process(["s"] * 4000, x[:, None]).flags)
    assert set(alerts[alerts >= 1000].tolist()) == set(spikes.tolist()), alerts


@pytest.mark.parametrize("glitch", [1e6, -9999.0, 1e18])
def test_one_wild_value_does_not_blind_its_stream(glitch):
    """One wild value (a bad read, a sentinel) is flagged, and the anomalies after it are
    found as in the clean stream: the statistics learn it as at most one width of the
    range beyond the range (scoring.learnt_value). It used to set the scaler's sd, the mean
    step and the range for thousands of events; the spike, the level shift and the second
    spike below then scored 0.05 and went unflagged."""
    rng = np.random.default_rng(0)
    n = 6000
    x = (np.sin(np.arange(n) / 5) + 0.05 * rng.normal(size=n))[:, None]
    x[2000], x[4000:4100], x[5500] = 6.0, x[4000:4100] + 3.0, -6.0
    clean = MultiStreamDetector(1).process(["a"] * n, x)
    x[500] = glitch
    glitched = MultiStreamDetector(1).process(["a"] * n, x)
    assert glitched.flags[500]
    for at in (2000, 4000, 5500):
        assert clean.flags[at:at + 2].any() and glitched.flags[at:at + 2].any(), at
    assert np.abs(glitched.predictions[600:]).max() < 5.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wild_values_among_a_streams_first_events_do_not_blind_it(seed):
    """Four wild values among a stream's first 20 events (a bad start-up, a sentinel), then
    subtle anomalies (spikes of 1.5, a level shift of 1 on a sine of amplitude 1): each is
    found, as in the clean stream. The statistics learn a value within one width of the
    range from the feature's third value on; they learnt the first 20 in full, and the range and
    the scaler's sd kept the wild ones (each seed missed one or more of the three)."""
    rng = np.random.default_rng(seed)
    n = 6000
    x = (np.sin(np.arange(n) / 5) + 0.05 * rng.normal(size=n))[:, None]
    x[2000], x[4000:4100], x[5500] = x[2000] + 1.5, x[4000:4100] + 1.0, x[5500] - 1.5
    x[[3, 7, 12, 17], 0] = 1000.0, -9999.0, 1e6, 500.0
    res = MultiStreamDetector(1, seed=seed).process(["a"] * n, x)
    for at in (2000, 4000, 5500):
        assert res.flags[at:at + 10].any(), at


@pytest.mark.parametrize("at", [0, 2, 11])
def test_a_wild_reading_among_a_features_first_does_not_set_its_baselines_spread(at):
    """A wild reading among a feature's first 20 (1,000 among readings near 10 of sd 1, at
    its first, third or twelfth event), then spikes of 8 sd every 500 events: each spike
    is flagged, as in the clean stream. The regime's baseline, by whose sd the point test
    judges, learnt its first 20 observations as they came; now it judges each by the others
    in hindsight (scoring.first_values_in_hindsight), and the wild one counts as 6 of their
    sd. Before, its sd was 31 at the 1,000th event, and one to five of the five spikes went
    unflagged (seeds 0-4 of the three positions; here, seed 0: three, one and one)."""
    rng = np.random.default_rng(0)
    x = 10.0 + rng.normal(size=(3000, 1))
    spikes = np.arange(500, 3000, 500)
    x[spikes, 0] += 8.0 * np.array([1, -1, 1, -1, 1])
    x[at, 0] = 1000.0
    m = MultiStreamDetector(1)
    res = m.process(["a"] * 1000, x[:1000])
    col = m.hyper.stats
    base_sd = np.sqrt(m.engine.to_host()[0].stats32[m.table.slots["a"], col.base_var])
    assert 0.8 < base_sd < 1.25
    flags = np.r_[res.flags, m.process(["a"] * 2000, x[1000:]).flags]
    assert [bool(flags[s:s + 3].any()) for s in spikes] == [True] * 5


def test_a_lasting_jump_far_beyond_the_range_becomes_the_new_normal():
    """A lasting jump of 100 widths of the range still gets through learnt_value's limit:
    the range reaches the new level within seven events (doubling towards it), and the
    new level stops alerting as it does without the limit's effect, one alert."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 1))
    x[1500:] += 100.0 * (x[:1500].max() - x[:1500].min())
    m = MultiStreamDetector(1, warmup=50)
    m.process(["a"] * 1508, x[:1508])
    col = m.hyper.stats
    stats = m.engine.to_host()[0].stats[m.table.slots["a"]]
    assert stats[col.hi] >= x[1500:1508].min()
    res = m.process(["a"] * 1492, x[1508:])
    assert not res.flags[100:].any()


EXTREMES = [1e300, -1e300, 1e-300, -1e-300, 3.4e38, -3.4e38, 1e18, -1e18, 1e160, 0.0]


@settings(max_examples=40, deadline=None)
@given(burst=st.lists(st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=False, allow_infinity=False)),
                      min_size=1, max_size=12),
       mode=st.sampled_from([("per_stream", "lstm"), ("shared", "gru")]))
def test_no_finite_input_makes_a_later_score_or_forecast_non_finite(burst, mode):
    """Any finite values, however extreme (each feature limited to +-1e18 by the engine),
    leave every statistic finite: every later score, forecast and error is a number."""
    weight_mode, cell = mode
    normal = 5.0 + np.sin(np.arange(60) / 3.0)
    x = np.concatenate([normal, burst, normal, -np.asarray(burst), normal])
    m = MultiStreamDetector(2, weight_mode=weight_mode, cell=cell, hidden_size=4, k2=4, warmup=20)
    X = np.stack([x, x[::-1]], axis=1)
    res = m.process(["s"] * len(x), X)
    assert np.isfinite(res.scores).all() and ((res.scores >= 0) & (res.scores < 1)).all()
    assert np.isfinite(res.predictions[1:]).all() and np.isfinite(res.errors[3:]).all()  # (none before a scaled input)
    tables = m.streams._asdict()
    cycle = tables.pop("cycle")
    assert all(np.isfinite(a).all() for a in tables.values() if a.dtype.kind == "f")
    assert not np.isinf(cycle).any() and np.isfinite(cycle[:, :, CYC_LAG]).all()  # NaN values: none, or outliers
    ring = np.vectorize(lambda bits: narrow_value(bits, BF16))(m.streams.ring)  # bfloat16
    assert not np.isinf(ring).any()  # NaN there means "no input"
    assert all(np.isfinite([bin_mean(b), bin_var(b)]).all() for b in m.streams.bins.reshape(-1, BIN_BYTES))


def _learnt_after(steps, tamper):
    """The snapshot after stream "a" learnt 300 events, then `steps`, then one more event
    through process_one; with `tamper`, the judgement score_one keeps for process_one is
    corrupted first, so that the result shows whether process_one took it."""
    x = sine_with_anomalies()[:301]
    m = MultiStreamDetector(1, warmup=50, seed=3)
    for v in x[:300]:
        m.process_one("a", [v])
    for step in steps:
        step(m, x[300])
    if tamper:
        m.engine._memo.xn[:] = 3.0
    m.process_one("a", [x[300]])
    return m.to_bytes()


@pytest.mark.parametrize("steps, taken", [
    ([lambda m, v: m.score_one("a", [v])], True),
    ([lambda m, v: m.score_one("a", [v + 1.0]), lambda m, v: m.score_one("a", [v])], True),  # the last one
    ([lambda m, v: m.score_one("a", [v + 1.0])], False),  # another value
    ([lambda m, v: m.score_one("a", [-0.0 if v == 0.0 else v * (1 + 2**-52)])], False),  # one bit apart
    ([lambda m, v: m.score_one("a", [v], timestamp=1.7e9)], False),  # another time
    ([lambda m, v: m.score_one("a", [v]), lambda m, v: m.process(["a"], [[v]])], False),  # learnt meanwhile
    ([lambda m, v: m.score_one("a", [v]), lambda m, v: m.process_one("b", [v])], False),  # a new stream
    ([lambda m, v: m.score_one("a", [v]), lambda m, v: m.resize(8)], False),
], ids=["same", "last-scored", "other-value", "one-bit", "other-time", "learnt", "new-stream", "resized"])
def test_process_one_takes_score_ones_judgement_only_for_that_event_on_that_state(steps, taken):
    """score_one then process_one of the same event (the river path) judges it once:
    process_one takes the kept judgement (a corrupted one shows) only for the event
    judged last, bit for bit, with no change of state since; taken or not, the result is
    that of judging the event again."""
    again = _learnt_after(steps, tamper=False)
    assert again == _learnt_after([], tamper=False) or not taken
    assert (_learnt_after(steps, tamper=True) != again) == taken


def test_stream_table_keeps_the_order_of_an_ordered_dict():
    """StreamTable (a dict and a linked list of slots) against the OrderedDict it replaced
    (naive.StreamTable), through random batches with repeats and evictions, removals,
    touches and packing into fewer slots: the same slots, new slots, moves and order."""
    rng = np.random.default_rng(0)
    table, ref = StreamTable(12), naive.StreamTable(12)
    for step in range(600):
        op = rng.integers(0, 10)
        held = [sid for sid, _ in ref.items()]
        if op < 6:
            ids = [f"s{i}" for i in rng.integers(0, 30, rng.integers(1, 20))]
            slots, new = table.assign(ids)
            assert (slots.tolist(), new) == ref.assign(ids)
        elif op < 8 and held:
            sid = held[rng.integers(len(held))]
            table.remove(sid), ref.remove(sid)
        elif op < 9 and held:
            sid = held[rng.integers(len(held))]
            table.touch(sid), ref.touch(sid)
        else:
            capacity = int(rng.integers(len(held), 16)) if held else 0
            assert table.pack(capacity) == ref.pack(capacity)
        assert table.items() == ref.items() and table.evicted == ref.evicted and len(table) == len(ref.slots)
        assert sorted(table.free) == sorted(ref.free)
    assert ref.evicted > 50  # not vacuous


@pytest.mark.parametrize("renumber", [True, False])
def test_stream_table_load_links_the_order_as_holding_one_by_one_did(renumber):
    """`load` (a snapshot's streams, least recently seen first, linked in bulk) leaves the
    table as holding each stream in turn did, and it goes on alike: slots 0..n-1 as
    `to_bytes` writes them, or the slots as held, with gaps."""
    rng = np.random.default_rng(1)
    table = StreamTable(50)
    for _ in range(40):
        table.assign([f"s{i}" for i in rng.integers(0, 80, rng.integers(1, 20))])
    pairs = [(sid, i if renumber else slot) for i, (sid, slot) in enumerate(table.items())]
    loaded, one_by_one = StreamTable(50), StreamTable(50)
    loaded.load(pairs)
    for sid, slot in pairs:
        one_by_one._hold(sid, slot)
    for _ in range(20):
        state = lambda t: (t.slots, t.ids, t.older.tolist(), t.newer.tolist(), t.oldest, t.newest, t.free)  # noqa: E731
        assert state(loaded) == state(one_by_one)
        ids = [f"s{i}" for i in rng.integers(0, 80, rng.integers(1, 20))]
        got, want = loaded.assign(ids), one_by_one.assign(ids)
        assert got[0].tolist() == want[0].tolist() and got[1] == want[1]
    with pytest.raises(ValueError, match="empty table"):
        loaded.load(pairs)
