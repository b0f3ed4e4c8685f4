"""The three outputs (continuous score; alerts; regime) and baseline priming."""

import math
from pathlib import Path

import numpy as np
import pytest

from streamlstm import LSTMDetector, MultiStreamDetector
from streamlstm.engine.layout import TAIL_LEVELS

DATA = Path(__file__).with_name("data")


def noisy_cycle(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.sin(np.arange(n) / 8.0) + 0.1 * rng.normal(size=n)


def test_baseline_priming_learns_without_scoring():
    """score=False: the events are learnt as known-good history (no warm-up left after it,
    statistics and weights moved) but give 0/False and count toward nothing."""
    x = noisy_cycle(700)
    x[450] += 5.0
    primed = MultiStreamDetector(1, warmup=100)
    base = primed.process(["s"] * 400, x[:400, None], score=False)
    assert not any(a.any() for a in (base.scores, base.alert_scores, base.regime, base.flags, base.abnormal))
    assert np.isfinite(base.errors[2:]).all()  # the model forecast and learnt all along
    live = primed.process(["s"] * 300, x[400:, None])
    assert live.scores[0] > 0.0  # scored at once: the warm-up was spent in the baseline
    assert np.flatnonzero(live.flags).tolist() == [50]


def test_a_baseline_spike_starts_no_cooldown_and_no_incident():
    x = noisy_cycle(600)
    x[399] += 10.0  # the last baseline event
    det = MultiStreamDetector(1, warmup=100)
    det.process(["s"] * 400, x[:400, None], score=False)
    live = det.process(["s"] * 200, x[400:, None])
    assert live.alert_scores[0] == live.scores[0] > 0.0  # no cooldown, no penalty carried over
    assert not live.abnormal.any()


def test_the_regime_is_up_for_an_incident_and_comes_back_down():
    x = noisy_cycle(2000, seed=1)
    x[1000:1150] += 2.0  # a lasting incident: 150 events two amplitudes up
    res = MultiStreamDetector(1, warmup=200).process(["s"] * len(x), x[:, None])
    assert res.abnormal[1010:1150].mean() > 0.9  # up through the incident ...
    assert not res.abnormal[1250:].any()  # ... and down after it
    assert res.abnormal[300:1000].mean() < 0.02  # normal before it
    assert res.flags[1000:1010].any() and res.flags[1000:1150].sum() <= 3  # alerts: one per incident
    assert 0.0 <= res.regime.min() and res.regime.max() <= 1.0


def test_a_lone_spike_alerts_but_is_not_a_regime():
    x = noisy_cycle(1500, seed=2)
    x[1000] += 8.0
    res = MultiStreamDetector(1, warmup=200).process(["s"] * len(x), x[:, None])
    assert res.flags[1000]
    assert res.abnormal[995:1020].sum() <= 1  # one event is not an abnormal state
    assert set(np.argsort(-res.scores)[:2]) == {1000, 1001}  # the spike, and the step back from it


def test_scores_rank_anomalous_rows_above_normal_ones():
    """The continuous score is not zeroed by the alert cooldown: every row of an incident
    outranks the normal rows, where the alert score is 0 for most of the incident."""
    x = noisy_cycle(2000, seed=3)
    x[1500:1540] += 3.0
    res = MultiStreamDetector(1, warmup=200).process(["s"] * len(x), x[:, None])
    incident, normal = res.scores[1500:1540], res.scores[300:1500]
    assert np.median(incident) > np.quantile(normal, 0.99)
    assert (res.alert_scores[1500:1540] == 0).mean() > 0.5  # the cooldown: why alert_score cannot rank


def test_scoring_alone_changes_no_regime():
    det = MultiStreamDetector(1, warmup=20)
    x = noisy_cycle(300)
    det.process(["s"] * 300, x[:, None])
    before = det.to_bytes()
    for v in (5.0, 9.0, 9.0, 9.0):
        det.score_one("s", [v])
    assert det.to_bytes() == before


@pytest.mark.parametrize("mode", ["per_stream", "shared"])
def test_regime_and_priming_survive_a_snapshot(mode):
    x = noisy_cycle(900, seed=4)
    x[600:700] += 2.0
    one = MultiStreamDetector(1, warmup=100, weight_mode=mode)
    one.process(["s"] * 300, x[:300, None], score=False)
    whole = one.process(["s"] * 600, x[300:, None])
    two = MultiStreamDetector(1, warmup=100, weight_mode=mode)
    two.process(["s"] * 300, x[:300, None], score=False)
    first = two.process(["s"] * 350, x[300:650, None])  # stopped inside the incident
    rest = MultiStreamDetector.from_bytes(two.to_bytes()).process(["s"] * 250, x[650:, None])
    for name in ("scores", "alert_scores", "regime", "flags"):
        np.testing.assert_array_equal(np.r_[getattr(first, name), getattr(rest, name)], getattr(whole, name))


def test_a_format_6_snapshot_loads_and_continues_as_before():
    """A snapshot of the previous format (written by the code before the regime existed)
    loads with the regime's baseline set to the scaler and continues exactly as that code
    did: the same alerts, alert scores (its `scores`), forecasts and errors."""
    det = MultiStreamDetector.from_bytes((DATA / "detector_v6.snapshot").read_bytes())
    old = np.load(DATA / "detector_v6_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    np.testing.assert_array_equal(res.alert_scores, old["scores"])
    np.testing.assert_array_equal(res.flags, old["flags"])
    np.testing.assert_array_equal(res.predictions, old["predictions"])
    np.testing.assert_array_equal(res.errors, old["errors"])


def test_one_event_priming_matches_the_batch():
    """learn_one(score=False) and process_one(score=False) are process(score=False), event
    by event, in the single-stream API and the multi-stream one alike."""
    x = noisy_cycle(700)
    x[450] += 5.0
    batch = MultiStreamDetector(1, warmup=100)
    batch.process(["s"] * 400, x[:400, None], score=False)
    live = batch.process(["s"] * 300, x[400:, None])
    one = MultiStreamDetector(1, warmup=100)
    det = LSTMDetector(warmup=100)
    for v in x[:400]:
        assert one.process_one("s", [v], score=False) == (0.0, False)
        det.learn_one({"v": v}, score=False)
        assert (det.last_score, det.last_flag) == (0.0, False)
    scores = []
    for v in x[400:]:
        scores.append(one.process_one("s", [v])[0])
        det.learn_one({"v": v})
        assert det.last_score == scores[-1]
    assert scores == live.scores.tolist() and det.last_flag == live.flags[-1]
    assert np.flatnonzero(live.flags).tolist() == [50]


def test_a_format_7_snapshot_loads_with_gaussian_tails_and_continues_as_before():
    """A snapshot written before the regime's calibration (format 7) loads with each
    feature's tail frequencies at a Gaussian's, and continues with the same scores, alerts,
    forecasts and errors as the code that wrote it (only the regime is new)."""
    det = MultiStreamDetector.from_bytes((DATA / "detector_v7.snapshot").read_bytes())
    col = det.hyper.stats
    tails = det.engine.to_host()[0].stats[:det.n_streams, col.base_tail:col.base_tail + TAIL_LEVELS * 2]
    gaussian = [math.erfc(k / math.sqrt(2.0)) for k in range(1, TAIL_LEVELS + 1)] * 2
    np.testing.assert_array_equal(tails, np.tile(gaussian, (det.n_streams, 1)))
    old = np.load(DATA / "detector_v7_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    for name in ("scores", "alert_scores", "flags", "predictions", "errors"):
        np.testing.assert_array_equal(getattr(res, name), old[name])
    assert old["flags"].any()


def test_a_huge_departure_from_a_constant_feature_is_a_finite_regime():
    """1e18 off a feature that never varied (|z| ~ 1e27: its sd is floored at 1e-9) is a
    finite regime, up within a few events: the evidence is floored at the rule of
    succession's 1/(n + 2), not infinite."""
    X = np.zeros((400, 2))
    X[:, 1] = noisy_cycle(400)
    X[350:, 0] = 1e18
    res = MultiStreamDetector(2, warmup=100).process(["s"] * 400, X)
    assert np.isfinite(res.regime).all() and res.abnormal[355:].all() and not res.abnormal[:350].any()
