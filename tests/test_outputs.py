"""The three outputs (continuous score; alerts; regime) and baseline priming."""

import math
from pathlib import Path

import numpy as np
import pytest

from streamlstm import LSTMDetector, MultiStreamDetector
from streamlstm.config import ModelConfig
from streamlstm.engine import scoring, snapshot
from streamlstm.engine.compact import bin_mean, uf16_bits_of
from streamlstm.engine.layout import (BIN_VISITS, C_TICKS, C_WIN, CYC_LAG, CYC_PAIRS, TAIL_LEVELS, TAILS_CYCLE,
                                     TAILS_LEVEL, TAILS_NEWS, tail_rows)
from streamlstm.pool import _changed_settings

DATA = Path(__file__).with_name("data")
# A snapshot of an older format continues as the code that wrote it did, within what
# format 10's narrower scoring state changes (float32 spreads, bfloat16 channel inputs,
# narrow seasonal bins; tests/test_scoring.py bounds it against float64): the same alerts,
# scores within SCORE_ATOL, the regime within REGIME_ATOL, forecasts and errors within
# MODEL_ATOL (the scaler's variance is float32, and a shared model's window-start state
# float16, which trains slightly different weights; these snapshots' values are O(1)).
# The continuations of formats 6-8 (two features each) were recorded again when range
# novelty's tolerance widened for several features (v8 lost its alerts at 60 and 189, new
# records by 2.5 and 3.2 % of the range, and the forecasts moved with them); format 9's held.
# The regime of formats 8 and 9 was recorded again when the tail calibration between two
# levels became the slower of the Gaussian and the exponential shape (by up to 0.06).
# Format 8's (shared mode) forecasts, errors and scores were recorded again when a re-run
# window's state became the carried state (forecasts by up to 0.6; the same alerts).
# The regime of formats 8 and 9 was recorded again when its evidence began to count a
# persistent level once per autocorrelation time and a jump by its innovation (format 11).
# The regime of formats 8 and 9 was recorded again when format 12 rounded the tail
# frequencies to 11 significant bits (compact.UF16; by up to 1e-3) and weighed each
# feature's recent mean. Format 12 also keeps a float32 model's re-run window inputs as
# float16, as their start state: format 8's (shared mode) forecasts moved by up to 6e-4,
# hence MODEL_ATOL. The regime of formats 8 to 14 was recorded again when format 15 began
# to weigh each feature by its blame (by up to 0.99; scoring.regime_evidence).
# Format 11's errors, scores and alert scores were recorded again when a forecast or step
# across a missing value stopped being judged (kernels_cpu.mark_gaps; its continuation
# misses values: two errors by up to 0.62, scores by up to 0.024, the same alerts).
# Format 7's scores and alert scores were recorded again when a channel's window with
# fewer inputs than slots began to be judged as the mean of that many (format 16: its
# time-of-day windows while bins warm up; by up to 0.029, the same alerts).
# Every format's continuation was recorded again when the point test began to judge an
# event alone (scoring.point_surprise, 2026-12-05): scores wherever it spoke, the flags
# of formats 9, 10 and 17 (2 to 4 each), and forecasts after a point alert (the learning
# policy down-weights what alerts).
# Format 17's scores were recorded again when the point test began to ask each feature's
# residual against its own cycle too (format 19: 12 scores). Format 11's scores and alert
# scores were recorded again when a feature's sd and step unit were floored at the rounding
# of a value on its grid (scoring.ROUNDING_SD, ROUNDING_STEP): its second feature's history
# was 0s and 1s, a resolution of 1, before its continuation's noise (199 scores by up to
# 0.011, the same alerts).
# Every format's continuation was recorded again when the point test's tail beyond its top
# trusted level began to bend as the feature's own tail bends (scoring.point_tail,
# 2026-12-06): scores and alert scores by up to 0.54, format 18's flags (one alert four
# events later) and, through the learning policy, format 6's and 18's forecasts and errors
# (by up to 0.054). Restored streams keep `range_steps` 0 (hyperparams.LEARNT_WITHOUT).
# Formats 17 and 18's continuations were recorded again when the own cycle's residual
# variance began to be learnt as an exact mean from the period's finding and the point
# test to ask that residual once its tail rests on a period of residuals (2026-12-06):
# scores by up to 0.36 and alert scores 0.54, one alert of format 17 and two of format 18
# (five events sooner), forecasts and errors by up to 0.084 through the learning policy;
# formats 6 to 14 have no own cycle.
# Formats 7 to 14, 17 and 18's continuations were recorded again when a lone alert began
# to teach the tails at a fraction of their rate (scoring.lone_weight, 2026-12-06): scores
# by up to 0.49 and alert scores 0.50, the regime by up to 0.043, format 18's forecasts
# and errors by up to 0.014 through the learning policy; no flag moves, and format 6's
# outputs not at all.
# Formats 7, 8, 11 to 14, 17 and 18's continuations (two features each) were recorded
# again when the point test began to ask each feature's news given the others' (format
# 23, scoring.news_given_others, 2026-12-07; restored with nothing of it learnt): scores
# by up to 0.34 and alert scores 0.48, format 8's (shared) forecasts by up to 0.057,
# errors 0.027 and regime 2e-4 through the learning policy; no flag moves, and formats
# 6, 9 and 10's outputs not at all. The same formats' were recorded again when an event
# that misses a feature the second moments know began to ask and teach them (none of
# these continuations misses one): scores and alert scores by up to 5e-8, the float
# rounding of the recompiled learning (the kernels take fastmath's reassociation).
SCORE_ATOL = 5e-3
REGIME_ATOL = 1e-5
MODEL_ATOL = 1e-3


def assert_continues(res, old, names):
    for name in names:
        got, want = getattr(res, name), old["scores" if name == "alert_scores" and "alert_scores" not in old else name]
        if name == "flags":
            np.testing.assert_array_equal(got, want)
        elif name in ("scores", "alert_scores"):
            np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_ATOL)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=REGIME_ATOL if name == "regime" else MODEL_ATOL)


def assert_rhythm_fresh(stats32, hy):
    """Each feature's rhythm as format 24's upgrade gives it (multistream._upgrade_to_v24):
    none absent, an interval of one event (and format 26's levels: none unlearnt)."""
    col, D = hy.stats, hy.D
    assert col.interval == col.absent + D and col.cycle_unlearnt == col.interval + D
    assert not stats32[:, col.absent:col.interval].any()
    assert (stats32[:, col.interval:col.cycle_unlearnt] == 1.0).all()
    assert not stats32[:, col.cycle_unlearnt:].any()


def cycle_before_v25(arrays, rhythm=False):
    """The own cycle of a snapshot's `arrays` (this code's) as format 24 or before held it
    (its first two rows: no count of pairs), and as such a snapshot restores: each lag's
    pairs taken as every event since its first where its mean is learnt (not 0), as those
    formats' exact means took them, none where it is 0; none at all where the features are
    read at a `rhythm` of their own (they start their lags afresh)."""
    cycle, ticks = arrays["stream.cycle"], arrays["stream.counters"][:, C_TICKS]
    lags = np.arange(1, cycle.shape[3] + 1)
    learnt = (cycle[:, :, CYC_LAG] != 0.0) & (not rhythm)
    pairs = np.where(learnt, np.maximum(ticks[:, None, None] - lags, 0), 0).astype(np.float32)
    return cycle[:, :, :CYC_PAIRS], np.concatenate([cycle[:, :, :CYC_PAIRS], pairs[:, :, None]], axis=2)


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
    assert np.isfinite(base.errors[3:]).all()  # the model forecast and learnt all along (from its first scaled input)
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


@pytest.mark.parametrize("seed", [0, 1])
def test_a_wandering_level_is_no_incident(seed):
    """A random walk (one feature and eight) and an AR(1) of coefficient 0.98 have no
    anomaly; their levels stay far from any baseline for hundreds of events, which counted
    once per event held the regime abnormal on about half their rows. Counted once per
    autocorrelation time, they are never abnormal."""
    rng = np.random.default_rng(seed)
    walks = np.cumsum(rng.normal(size=(4000, 9)), axis=0)
    ar = rng.normal(size=(4000, 4))
    for t in range(1, len(ar)):
        ar[t] += 0.98 * ar[t - 1]
    for X in (walks[:, :1], walks[:, 1:], ar):
        res = MultiStreamDetector(X.shape[1], seed=seed).process(["s"] * len(X), X)
        assert not res.abnormal.any()


def test_a_jump_in_a_persistent_feature_is_an_incident():
    """A smooth, persistent feature (an AR(1) of 0.9) beside a noisy one jumps by ~70 of its
    sd and stays there for 300 events (SKAB's other/5, where two accelerometers do): the
    innovation carries the jump in full, and the baseline, which learns values limited to
    6 sd, does not widen to hide it, so the regime is up through the incident and not
    before it."""
    rng = np.random.default_rng(5)
    smooth = np.zeros(1500)
    for t in range(1, len(smooth)):
        smooth[t] = 0.9 * smooth[t - 1] + 0.1 * rng.normal()
    smooth[1000:1300] += 16.0
    X = np.column_stack([smooth, rng.normal(size=len(smooth))])
    res = MultiStreamDetector(2, seed=0).process(["s"] * len(X), X)
    assert res.abnormal[1010:1300].mean() > 0.9
    assert res.abnormal[300:1000].mean() < 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_a_lasting_small_shift_of_one_feature_is_an_incident(seed):
    """One of eight noisy features moves by 2.5 sd for 300 events (SKAB's valves, whose
    flow drops by 2-3 sd while the valve is shut): no single event is rare among eight
    features, but the feature's recent mean is (scoring.recent_p_value), so the regime is
    up through the shift and not before it, the feature named first on its abnormal rows.
    (Without the recent mean the regime rose on 2-29 % of these rows.)"""
    X = np.random.default_rng(seed).normal(size=(1500, 8))
    X[1000:1300, 3] += 2.5
    res = MultiStreamDetector(8, seed=seed).process(["s"] * len(X), X)
    assert res.abnormal[1020:1300].mean() > 0.9
    assert not res.abnormal[:1000].any()
    assert (res.contributions[res.abnormal].argmax(axis=1) == 3).mean() > 0.9


def test_one_broken_feature_among_many_is_an_incident():
    """One of 120 features (40 noisy cycles, 40 0/1 flags, 40 slow random walks) shifted by
    three times its amplitude for 50 events: the regime weighs the features by their blame
    (scoring.regime_evidence), so the price of not knowing which feature broke is paid
    once, as the incident begins, not by every event of it: abnormal through the shift,
    not before it, and back down soon after; the blame is a distribution, the broken
    feature's by the shift's end. (Each feature's p-value counted 120 times on every event
    found 11 of the 50 rows.)"""
    n, D, at = 4000, 120, 3000
    rng = np.random.default_rng(0)
    t = np.arange(n)
    X = np.empty((n, D))
    for d in range(D):
        if d % 3 == 0:
            X[:, d] = np.sin(2 * np.pi * (t / 50 + rng.uniform())) + 0.1 * rng.normal(size=n)
        elif d % 3 == 1:
            X[:, d] = np.searchsorted(np.sort(rng.choice(n, 10, replace=False)), t, side="right") % 2
        else:
            X[:, d] = np.cumsum(rng.normal(0.0, 0.05, n))
    X[at:at + 50, 0] += 3.0
    det = MultiStreamDetector(D, seed=0)
    res = det.process(["s"] * (at + 50), X[:at + 50])
    assert res.abnormal[at:].sum() >= 45 and not res.abnormal[:at].any()
    col = det.hyper.stats
    blame = det.engine.to_host()[0].stats32[det.table.slots["s"], col.base_blame:col.base_blame + D]
    assert blame.sum() == pytest.approx(1.0, rel=1e-5) and blame[0] > 0.99
    after = det.process(["s"] * (n - at - 50), X[at + 50:])
    assert not after.abnormal[50:].any()


def test_a_feature_first_seen_while_abnormal_starts_its_baseline_at_its_first_value():
    """A second feature starts reporting (50 + noise) in the middle of an incident of the
    first: its baseline's mean follows its values until the stream is normal again and
    then takes exact moments of its normal values, not its values at the abnormal state's
    tenth of the rate (which left its mean at 24 and its variance at 619 after 350 values,
    and, with the first value taken in full, its variance at 0.45)."""
    rng = np.random.default_rng(0)
    n = 1400
    X = np.column_stack([rng.normal(size=n), 50.0 + rng.normal(size=n)])
    X[1000:1150, 0] += rng.normal(0.0, 6.0, 150)
    X[:1050, 1] = np.nan
    det = MultiStreamDetector(2, seed=0)
    res = det.process(["s"] * n, X)
    assert res.abnormal[1050]
    streams, col = det.engine.to_host()[0], det.hyper.stats
    assert abs(streams.stats[0, col.base_mean + 1] - 50.0) < 0.2
    assert 0.8 < streams.stats32[0, col.base_var + 1] < 1.25


def test_a_feature_first_seen_while_abnormal_cannot_hold_the_regime():
    """The regime judges a feature only once its baseline has learnt more than
    TAIL_MIN_COUNT observations while the stream is normal, what its calibration rests on.
    A feature first seen in the middle of an incident (as above) is not judged until the
    stream is normal again: judged uncalibrated, with its tails never learnt and its floor
    counting all its observations, it held the regime abnormal on 546 of the 800 rows after
    the incident. Once calibrated it is judged: a lasting shift of its own is found."""
    rng = np.random.default_rng(0)
    n = 2000
    X = np.column_stack([rng.normal(size=n), 50.0 + rng.normal(size=n)])
    X[1000:1150, 0] *= 6.0
    X[:1050, 1] = np.nan
    X[1600:1700, 1] += 3.0
    det = MultiStreamDetector(2, seed=0)
    res = det.process(["s"] * n, X)
    assert res.abnormal[1000:1150].mean() > 0.9
    assert not res.abnormal[1200:1600].any() and not res.abnormal[1750:].any()
    assert res.abnormal[1600:1700].mean() > 0.5
    stats, col = det.engine.to_host()[0].stats[0], det.hyper.stats
    assert stats[col.count + 1] - stats[col.base_count + 1] == res.abnormal[1050:].sum()


@pytest.mark.parametrize("beside", [True, False])
def test_a_stuck_sensor_that_comes_back_does_not_hold_the_regime(beside):
    """A feature constant for 2,000 events (a stuck sensor; context beside a white-noise
    measurement, or alone) that then varies as N(0, 1): its regime baseline, a constant's,
    restarts (at its first change beside a measurement, alone when it becomes one), so the
    regime judges it once it has learnt 20 of its new values. Before, its calibration said
    it never varied (|z| never above 1, its sd at the floor) and could not learn while
    abnormal: the regime was abnormal from its first change to the end (9,997 and 9,998 of
    10,000 rows)."""
    rng = np.random.default_rng(0)
    n = 12000
    X = np.column_stack([rng.normal(size=n), np.full(n, 5.0)])
    X[2000:, 1] += rng.normal(size=n - 2000)
    X = X if beside else X[:, 1:]
    res = MultiStreamDetector(X.shape[1], seed=0).process(["s"] * n, X)
    assert res.abnormal.sum() < 10


def test_a_constant_streams_excursion_is_an_incident_and_its_return_is_not():
    """A univariate constant stream (0) that steps to 5 for 50 events and back: a judged
    constant keeps its baseline through a change of level (only a measurement's variation
    restarts it), so the excursion is abnormal and the return to 0 is normal again.
    Restarting it at its first change read the return as abnormal for 468 events."""
    x = np.zeros((6000, 1))
    x[2000:2050] = 5.0
    res = MultiStreamDetector(1, seed=0).process(["s"] * 6000, x)
    assert res.abnormal[2005:2050].all() and not res.abnormal[2100:].any() and not res.abnormal[:2000].any()


@pytest.mark.parametrize("change", ["shift", "noise"])
def test_regime_learn_weight_sets_how_soon_a_lasting_change_becomes_the_new_normal(change):
    """White noise shifted by 3 sd, or its sd tripled, for good. While the stream is
    abnormal the regime's baseline learns at `regime_learn_weight` of its rate, and so does
    its calibration once the abnormal events outnumber the normal ones by the scaler's
    half-life (before, never: the wider noise held the regime up for good). At the default
    (0.1) the regime stays up through the next 1,000 events and comes down within 6,000
    (4,080 and 4,876 abnormal rows), at 0.5 within 2,500. The alerts do not depend on it
    here (the score does: the point test judges an event by the regime's baseline)."""
    x = np.random.default_rng(0).normal(size=(9000, 1))
    if change == "shift":
        x[2000:] += 3.0
    else:
        x[2000:] *= 3.0
    slow = MultiStreamDetector(1, seed=0).process(["s"] * 9000, x)
    fast = MultiStreamDetector(1, seed=0, regime_learn_weight=0.5).process(["s"] * 9000, x)
    assert not slow.abnormal[:2000].any() and slow.abnormal[2010:3000].all() and not slow.abnormal[8000:].any()
    assert not fast.abnormal[4500:].any()
    assert fast.abnormal.sum() < slow.abnormal.sum()
    np.testing.assert_array_equal(fast.flags, slow.flags)


def test_the_end_of_a_long_incident_is_no_new_incident():
    """A shift of 3 sd for 3,000 events, then back: the regime is up through the incident's
    first 2,000 events and, back at the old level, down within 20 events (the baseline
    was not started over by the long incident, so the old level is still its normal)."""
    x = np.random.default_rng(0).normal(size=(9000, 1))
    x[2000:5000] += 3.0
    res = MultiStreamDetector(1, seed=0).process(["s"] * 9000, x)
    assert res.abnormal[2010:4000].all() and not res.abnormal[5020:].any()


def test_persistence_is_measured_per_feature():
    """The regime's persistence (scoring.persistence) after 3,000 normal events: white
    noise is independent (rho ~ 0, tau ~ 1); an AR(1) of 0.9 has rho ~ 0.9 and tau ~ 10 (an
    AR(1)'s (1 + rho) / (1 - rho) is 19: the baseline's moving mean absorbs part of its slow
    swings, and the running mean starts at 0); a random walk is far more persistent; a cycle
    of period 50, far shorter than the horizon, averages out (tau ~ 1)."""
    rng = np.random.default_rng(0)
    n = 3000
    ar = np.zeros(n)
    for t in range(1, n):
        ar[t] = 0.9 * ar[t - 1] + rng.normal()
    X = np.column_stack([rng.normal(size=n), ar, np.cumsum(rng.normal(size=n)),
                         np.sin(2 * np.pi * np.arange(n) / 50) + 0.1 * rng.normal(size=n)])
    det = MultiStreamDetector(4, seed=0)
    res = det.process(["s"] * n, X)
    assert not res.abnormal.any()  # persistence is learnt while normal
    stats32, col = det.engine.to_host()[0].stats32[0], det.hyper.stats
    sq = stats32[col.base_sq:col.base_sq + 4]
    rho = stats32[col.base_lag:col.base_lag + 4] / sq
    tau = np.maximum(stats32[col.base_run_sq:col.base_run_sq + 4] / sq, 1.0)
    np.testing.assert_allclose(rho[:2], [0.0, 0.9], atol=0.06)
    assert rho[2] > 0.95 and rho[3] > 0.95
    assert tau[0] < 1.5 and 5.0 < tau[1] < 30.0 and tau[2] > 100.0 and tau[3] < 1.5


@pytest.mark.parametrize("seed", [0, 1])
def test_a_daily_cycle_read_every_10_s_does_not_flicker_the_regime(seed):
    """The regime's baseline spans a day where the stream brings more events a day than the
    scaler's half-life: a daily cycle read every 10 s, five days, no anomaly, was abnormal on
    560-608 of its 43,200 rows in about sixty short stretches (its baseline saw under three
    hours of the day, and the innovation's scale swung with the cycle's phase); now under
    100, as read every 60 s."""
    n, day = 43_200, 86_400.0
    T = 1_700_006_400.0 + 10.0 * np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * T / day) + np.random.default_rng(seed).normal(0, 0.5, n)
    abnormal = MultiStreamDetector(1, seed=seed).process(["s"] * n, x[:, None], T).abnormal
    assert abnormal.sum() < 100


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


def cycles(n, D, seed=0):
    """(n, D): noisy cycles of periods 16 pi, 22 pi, 28 pi, ... (the first is noisy_cycle's)."""
    t = np.arange(n)[:, None]
    return np.sin(t / (8.0 + 3.0 * np.arange(D))) + 0.1 * np.random.default_rng(seed).normal(size=(n, D))


@pytest.mark.parametrize("D", [1, 3])
def test_scoring_alone_changes_no_regime(D):
    """score_one judges (the regime's step, its blame) without storing anything, in an
    incident too."""
    det = MultiStreamDetector(D, warmup=20)
    x = cycles(400, D)
    x[300:, 0] += 3.0
    det.process(["s"] * 400, x)
    before = det.to_bytes()
    for v in (5.0, 9.0, 9.0, 9.0):
        det.score_one("s", [v] * D)
    assert det.to_bytes() == before


@pytest.mark.parametrize("D", [1, 3])
@pytest.mark.parametrize("mode", ["per_stream", "shared"])
def test_regime_and_priming_survive_a_snapshot(mode, D):
    """A snapshot inside an incident (the regime up, its blame on the broken feature)
    continues exactly as the detector would have."""
    x = cycles(900, D, seed=4)
    x[600:700, D - 1] += 2.0
    one = MultiStreamDetector(D, warmup=100, weight_mode=mode)
    one.process(["s"] * 300, x[:300], score=False)
    whole = one.process(["s"] * 600, x[300:])
    two = MultiStreamDetector(D, warmup=100, weight_mode=mode)
    two.process(["s"] * 300, x[:300], score=False)
    first = two.process(["s"] * 350, x[300:650])  # stopped inside the incident
    assert first.abnormal[-1] and first.blame[-1].argmax() == D - 1
    rest = MultiStreamDetector.from_bytes(two.to_bytes()).process(["s"] * 250, x[650:])
    for name in ("scores", "alert_scores", "regime", "flags", "blame"):
        np.testing.assert_array_equal(np.r_[getattr(first, name), getattr(rest, name)], getattr(whole, name))


def test_a_format_6_snapshot_loads_and_continues_as_before():
    """A snapshot of format 6 (written by the code before the regime existed) loads with
    the regime's baseline set to the scaler and continues as that code did (see
    assert_continues): the same alerts, alert scores (its `scores`), forecasts and errors."""
    det = MultiStreamDetector.from_bytes((DATA / "detector_v6.snapshot").read_bytes())
    old = np.load(DATA / "detector_v6_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    assert_continues(res, old, ("alert_scores", "flags", "predictions", "errors"))


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
    tails = det.engine.to_host()[0].tails[:det.n_streams]
    gaussian = uf16_bits_of(np.float32([math.erfc(k / math.sqrt(2.0)) for k in range(1, TAIL_LEVELS + 1)]))
    assert tails.shape == (det.n_streams, 2, tail_rows(False), TAIL_LEVELS) and (tails == gaussian).all()
    old = np.load(DATA / "detector_v7_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    assert_continues(res, old, ("scores", "alert_scores", "flags", "predictions", "errors"))
    assert old["flags"].any()


@pytest.mark.parametrize("seed", [0, 1])
def test_heavy_tailed_features_are_no_incident(seed):
    """32 features of Laplace noise: each feature's tail is calibrated to its own
    frequencies, and between two levels it falls no faster than an exponential through
    them, so the smallest p-value of 32 is no more surprising than it should be; with the
    Gaussian shape between levels the regime was abnormal on 40 % of these rows."""
    X = np.random.default_rng(seed).laplace(size=(4000, 32))
    res = MultiStreamDetector(32, seed=seed).process(["s"] * len(X), X)
    assert res.abnormal.mean() < 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_white_noise_beside_random_walks_is_no_incident(seed):
    """Two white-noise features beside two random walks, whose levels count once per
    hundreds of events (their autocorrelation time): the regime's level is the weighted
    mean of the features' likelihood ratios, each at most 1 in expectation, so the mix is
    too. The largest of them, the level before 2026-12-04, exceeds 1 in expectation where
    the spans differ, and held these streams abnormal on 408, 481 and 811 of their 10,000
    rows."""
    rng = np.random.default_rng(seed)
    n = 10000
    walk = lambda: np.cumsum(rng.normal(0.0, 0.05, n))  # noqa: E731
    X = np.column_stack([rng.normal(size=n), walk(), rng.normal(size=n), walk()])
    res = MultiStreamDetector(4, seed=seed).process(["s"] * n, X)
    assert res.abnormal.sum() <= 30


def test_a_huge_departure_from_a_constant_stream_is_a_finite_regime():
    """1e18 off a univariate stream that never varied (|z| ~ 1e27: its sd is floored at
    1e-9) is a finite regime, up within a few events: the evidence is floored at the rule
    of succession's 1/(n + 2), not infinite. (Beside a measurement, such a feature would
    be context, not judged: test_scoring.)"""
    x = np.zeros((400, 1))
    x[350:] = 1e18
    res = MultiStreamDetector(1, warmup=100).process(["s"] * 400, x)
    assert np.isfinite(res.regime).all() and res.abnormal[355:].all() and not res.abnormal[:350].any()


def test_a_format_8_snapshot_loads_without_resolutions_and_continues_as_before():
    """A snapshot written before context features existed (format 8) loads with no
    resolution yet (0: every feature that has varied is a measurement) and, for streams of
    measurements, continues with the outputs, the regime included, of the code that wrote
    it (assert_continues). Shared mode, so without an own cycle by its "auto", as a
    configuration's "auto" says: restoring it names no changed cycle_max."""
    det = MultiStreamDetector.from_bytes((DATA / "detector_v8.snapshot").read_bytes())
    assert det.weight_mode == "shared" and det.hyper.cycle_max == 0
    assert not [s for s in _changed_settings(det, ModelConfig(weight_mode="shared")) if "cycle_max" in s]
    col = det.hyper.stats
    assert not det.engine.to_host()[0].stats[:det.n_streams, col.res:col.res + 2].any()
    old = np.load(DATA / "detector_v8_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    assert_continues(res, old, ("scores", "alert_scores", "flags", "predictions", "errors", "regime"))
    assert old["flags"].any() and (old["regime"] >= 0.5).any()


def test_a_format_9_snapshot_loads_in_the_narrow_layout_and_continues_as_before():
    """A snapshot of format 9 (one float64 statistics row, float32 channel inputs and
    bins, float loss weights; per_stream weights, a context feature, timestamps) loads
    converted to format 10 and continues as the code that wrote it did (assert_continues),
    and saves as format 10."""
    data = (DATA / "detector_v9.snapshot").read_bytes()
    det = MultiStreamDetector.from_bytes(data)
    arrays, _ = snapshot.unpack(data)
    streams = det.engine.to_host()[0]
    col, n = det.hyper.stats, det.n_streams
    old_stats = arrays["stream.stats"]  # format 9's columns: mean, var, ... (layout.STATS_ORDER_V9)
    np.testing.assert_array_equal(streams.stats[:n, col.mean:col.mean + 2], old_stats[:, 0:2])
    np.testing.assert_array_equal(streams.stats32[:n, col.var:col.var + 2], np.float32(old_stats[:, 2:4]))
    means = np.array([[[bin_mean(b) for b in f] for f in s] for s in streams.bins[:n]])
    np.testing.assert_allclose(means, arrays["stream.bins"][..., 0], rtol=2.0 ** -16, atol=0)
    visits = streams.bins[:n, ..., BIN_VISITS]
    np.testing.assert_array_equal(visits, np.minimum(arrays["stream.bins"][..., 2], 255))
    weights = np.where(streams.winflag[:n], det.hyper.anomaly_weight, 1.0)
    used = np.arange(weights.shape[1]) < streams.counters[:n, C_WIN, None]
    np.testing.assert_array_equal(weights[used], arrays["stream.winw"][used])
    old = np.load(DATA / "detector_v9_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    assert_continues(res, old, ("scores", "alert_scores", "flags", "predictions", "errors", "regime"))
    assert old["flags"].any() and (old["regime"] >= 0.5).any()
    assert snapshot.unpack(det.to_bytes())[1]["format_version"] == snapshot.FORMAT_VERSION == 27


def test_a_format_10_snapshot_loads_with_no_persistence_learnt_and_continues_as_before():
    """A snapshot written before the regime measured persistence (format 10) loads with
    nothing learnt of it (each feature independent, so the regime judges as format 10's
    did until it has learnt otherwise) and the innovation's tail frequencies equal to the
    level's; its scores, alerts, forecasts and errors continue as the code that wrote it
    did (the regime, by design, not)."""
    det = MultiStreamDetector.from_bytes((DATA / "detector_v10.snapshot").read_bytes())
    streams, col, n = det.engine.to_host()[0], det.hyper.stats, det.n_streams
    assert not streams.stats32[:n, col.base_prev:col.absent].any()
    assert_rhythm_fresh(streams.stats32[:n], det.hyper)
    np.testing.assert_array_equal(streams.tails[:n, :, TAILS_NEWS], streams.tails[:n, :, TAILS_LEVEL])
    old = np.load(DATA / "detector_v10_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    assert_continues(res, old, ("scores", "alert_scores", "flags", "predictions", "errors"))
    assert old["flags"].any() and (res.regime >= 0.5).any()


def test_a_format_11_snapshot_loads_with_narrow_tails_and_continues_as_before():
    """A snapshot of format 11 (the tail frequencies in float32 `stats32` columns) loads
    with them in the `tails` table, rounded to compact.UF16, and its other statistics
    unchanged, with no recent mean yet; it continues with the scores, alerts, forecasts
    and errors of the code that wrote it (the regime, by design, not: format 12 also
    weighs each feature's recent mean)."""
    data = (DATA / "detector_v11.snapshot").read_bytes()
    det = MultiStreamDetector.from_bytes(data)
    arrays, _ = snapshot.unpack(data)
    streams, col, n, D = det.engine.to_host()[0], det.hyper.stats, det.n_streams, 2
    old32 = arrays["stream.stats32"]  # format 11: var, step, base_var, base_tail, ... (layout.STATS32_ORDER_V11)
    level, news = old32[:, 3 * D:9 * D], old32[:, -6 * D:]
    np.testing.assert_array_equal(streams.tails[:n, :, TAILS_LEVEL], uf16_bits_of(level).reshape(n, D, -1))
    np.testing.assert_array_equal(streams.tails[:n, :, TAILS_NEWS], uf16_bits_of(news).reshape(n, D, -1))
    np.testing.assert_array_equal(streams.stats32[:n, :col.channels], old32[:, :3 * D])
    np.testing.assert_array_equal(streams.stats32[:n, col.channels:col.base_recent], old32[:, 9 * D:-6 * D])
    # The recent means are new: none yet, their spread from format 11's persistence, at
    # least a mean of independent z's (h / (2 - h) of z's variance) and at most z's own.
    assert not streams.stats32[:n, col.base_recent:col.base_recent + D].any()
    h, sq = 1.0 / det.hyper.short_window, streams.stats32[:n, col.base_sq:col.base_sq + D]
    spread = streams.stats32[:n, col.base_recent_sq:col.base_recent_sq + D]
    assert (sq > 0).all() and (spread >= sq * h / (2 - h) * (1 - 1e-6)).all() and (spread <= sq).all()
    old = np.load(DATA / "detector_v11_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    assert_continues(res, old, ("scores", "alert_scores", "flags", "predictions", "errors"))
    assert old["flags"].any() and res.abnormal.any()


def test_a_format_12_snapshot_loads_with_every_observation_counted_as_normal():
    """A snapshot of format 12 loads with each feature's count of the observations its
    baseline learnt while normal (format 13) set to all its observations, which is what
    format 12's calibration counted, and every other statistic unchanged; it continues
    with the scores, alerts, forecasts and errors of the code that wrote it. The regime
    was recorded again: once a stream has been abnormal, format 13's calibration rests on
    fewer observations than format 12's (here the same abnormal rows, within 0.007)."""
    data = (DATA / "detector_v12.snapshot").read_bytes()
    det = MultiStreamDetector.from_bytes(data)
    arrays, _ = snapshot.unpack(data)
    streams, col, n, D = det.engine.to_host()[0], det.hyper.stats, det.n_streams, 2
    np.testing.assert_array_equal(streams.stats[:n, :col.base_count], arrays["stream.stats"])
    np.testing.assert_array_equal(streams.stats[:n, col.base_count:col.base_count + D],
                                  streams.stats[:n, col.count:col.count + D])
    np.testing.assert_array_equal(streams.stats32[:n, :col.base_blame], arrays["stream.stats32"])
    assert not streams.stats32[:n, col.base_blame:col.absent].any()
    assert_rhythm_fresh(streams.stats32[:n], det.hyper)
    old = np.load(DATA / "detector_v12_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    assert_continues(res, old, ("scores", "alert_scores", "flags", "predictions", "errors", "regime"))
    assert old["flags"].any() and res.abnormal.any()


@pytest.mark.parametrize("version", [13, 14])
def test_a_format_13_or_14_snapshot_loads_with_no_blame_and_continues_bit_for_bit(version):
    """Format 14 changed the container (an `.npz` before), format 15 added each feature's
    blame (none yet: the features weighed alike, as before), format 16 the own cycle (off:
    `cycle_max` 0 for a snapshot from before it). A format 13 or 14 snapshot loads with its
    statistics unchanged and continues with the scores, alerts, forecasts and errors of
    the code that wrote it bit for bit, and with the regime this code gives it (recorded
    again), and saves as format 16. (Recorded again for the generic target
    tests/conftest.py sets, by the code of format 15's first version, which gave the
    writer's outputs bit for bit on the writer's machine; its scores and alert scores
    again with the point test, above.)"""
    data = (DATA / f"detector_v{version}.snapshot").read_bytes()
    det = MultiStreamDetector.from_bytes(data)
    arrays, meta = snapshot.unpack(data)
    assert meta["format_version"] == version
    streams, col, n = det.engine.to_host()[0], det.hyper.stats, det.n_streams
    np.testing.assert_array_equal(streams.stats32[:n, :col.base_blame], arrays["stream.stats32"])
    assert not streams.stats32[:n, col.base_blame:col.absent].any()
    assert_rhythm_fresh(streams.stats32[:n], det.hyper)
    assert not streams.records[:n].any()  # format 17's record counts: none counted yet
    old = np.load(DATA / f"detector_v{version}_continued.npz")
    again = MultiStreamDetector.from_bytes(det.to_bytes())
    assert snapshot.unpack(det.to_bytes())[1]["format_version"] == snapshot.FORMAT_VERSION
    assert det.hyper.cycle_max == 0 and again.hyper.cycle_max == 0
    for d in (det, again):
        res = d.process(list(old["ids"]), old["X"], old["T"])
        for name in ("scores", "alert_scores", "flags", "predictions", "errors", "regime", "abnormal"):
            np.testing.assert_array_equal(getattr(res, name), old[name], err_msg=name)
    assert old["flags"].any() and old["abnormal"].any()


def test_a_format_17_snapshot_loads_with_no_abnormal_events_counted_and_continues_bit_for_bit():
    """Format 18 counts each stream's abnormal events less its normal ones (the regime
    starts over where they outnumber them by the scaler's half-life). A format 17 snapshot
    (written by the code of format 17, for the generic target, with an incident in
    progress: tests/data/detector_v17*) loads with none counted and continues with every
    output recorded, bit for bit (the writer's own, recorded again with the point test,
    above, and with its cycle's residuals, below), and saves as format 21; but the regime,
    whose baseline has spanned a day since 2026-12-05, which for these 60-second readings
    moves six of its 500 values by 1e-7 (from event 489 on)."""
    data = (DATA / "detector_v17.snapshot").read_bytes()
    det = MultiStreamDetector.from_bytes(data)
    arrays, meta = snapshot.unpack(data)
    assert meta["format_version"] == 17
    stats32, col = det.engine.to_host()[0].stats32[:det.n_streams], det.hyper.stats
    assert col.abnormal_run == col.mode_count - 1 == arrays["stream.stats32"].shape[1] + det.n_features + 2
    np.testing.assert_array_equal(stats32[:, :col.cycle_count], arrays["stream.stats32"][:, :col.cycle_count])
    assert not stats32[:, col.cycle_count:col.absent].any()
    assert_rhythm_fresh(stats32, det.hyper)
    old = np.load(DATA / "detector_v17_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    for name in ("scores", "alert_scores", "flags", "predictions", "errors", "abnormal"):
        np.testing.assert_array_equal(getattr(res, name), old[name], err_msg=name)
    np.testing.assert_allclose(res.regime, old["regime"], rtol=0, atol=1e-6)
    assert old["flags"].any() and old["abnormal"].any()
    assert snapshot.unpack(det.to_bytes())[1]["format_version"] == snapshot.FORMAT_VERSION


def test_a_format_18_snapshot_loads_with_no_cycle_residuals_counted_and_continues_as_before():
    """Format 19 counts each feature's residuals against its own cycle and learns their
    tail frequencies, which the point test asks once they rest on a period of residuals.
    A format 18 snapshot with an own cycle (written by the code of format 18 for the
    generic target, with an incident in progress in one stream: tests/data/detector_v18*)
    loads with none counted and no frequencies, its other statistics as written; it
    continues with every output recorded (this code's), its abnormal rows the writer's
    throughout and its regime within 1e-3 of it (since a lone alert teaches the tails at a
    fraction, 2026-12-06; bit for bit before), its scores not (with none counted, the
    residual's variance is learnt again as from the period's finding, 2026-12-06), and its
    alerts the writer's but the incident's two, five events sooner; and saves as format
    21, with no second mode of any feature yet (format 20's) and no forecast straddling a
    gap (format 21's)."""
    data = (DATA / "detector_v18.snapshot").read_bytes()
    det = MultiStreamDetector.from_bytes(data)
    arrays, meta = snapshot.unpack(data)
    assert meta["format_version"] == 18
    streams, col, D = det.engine.to_host()[0], det.hyper.stats, det.n_features
    stats32, old32 = streams.stats32[:det.n_streams], arrays["stream.stats32"]
    np.testing.assert_array_equal(stats32[:, :col.cycle_count], old32[:, :col.cycle_count])
    np.testing.assert_array_equal(stats32[:, col.abnormal_run], old32[:, -1])
    assert not stats32[:, col.cycle_count:col.abnormal_run].any()  # residual counts, spacing, long intervals
    stats = streams.stats[:det.n_streams]
    np.testing.assert_array_equal(stats[:, :col.last_time], arrays["stream.stats"])
    assert np.isnan(stats[:, col.last_time]).all()
    assert (stats32[:, col.cycle_period:col.cycle_period + D] == 40).all()  # not vacuous: every feature has a period
    np.testing.assert_array_equal(streams.tails[:det.n_streams, :, :TAILS_CYCLE], arrays["stream.tails"])
    assert not streams.tails[:det.n_streams, :, TAILS_CYCLE].any()
    assert not stats[:, col.mode_mean:col.first_high].any() and not stats32[:, col.mode_count:col.absent].any()
    assert np.isnan(stats[:, col.first_high:col.first_high + D]).all()  # format 27's, unknown
    assert_rhythm_fresh(stats32, det.hyper)
    old = np.load(DATA / "detector_v18_continued.npz")
    res = det.process(list(old["ids"]), old["X"], old["T"])
    for name in ("scores", "alert_scores", "flags", "predictions", "errors", "regime", "abnormal"):
        np.testing.assert_array_equal(getattr(res, name), old[name], err_msg=name)
    assert not np.array_equal(res.scores, old["writer_scores"])
    np.testing.assert_array_equal(res.abnormal, old["writer_abnormal"])
    np.testing.assert_allclose(res.regime, old["writer_regime"], rtol=0, atol=1e-3)
    moved = np.flatnonzero(res.flags != old["writer_flags"]).tolist()
    assert moved == [159, 160, 164, 165] and old["writer_flags"][164:166].all() and res.flags[[159, 160]].all()
    assert old["flags"].any() and old["abnormal"].any()
    assert snapshot.unpack(det.to_bytes())[1]["format_version"] == snapshot.FORMAT_VERSION


def _pack_as(monkeypatch, version, arrays, meta):
    """A snapshot of `arrays` and `meta` written as format `version`."""
    monkeypatch.setattr(snapshot, "FORMAT_VERSION", version)
    data = snapshot.pack(arrays, {k: v for k, v in meta.items() if k != "format_version"})
    monkeypatch.undo()
    assert snapshot.unpack(data)[1]["format_version"] == version
    return data


@pytest.mark.parametrize("version", [19, 20, 21, 22])
def test_a_format_19_to_22_snapshot_loads_with_its_mode_and_continues_bit_for_bit(monkeypatch, version):
    """Format 20 gives each feature a second mode (scoring.nearest_mode: its mean in
    `stats`, its count, moves and run in `stats32`), format 21 a stream with an own cycle
    its forecasts left that straddle a gap (the last column of `stats32`), format 22 each
    feature N_MODES second modes, the first of which is format 20's, format 23 the news
    given the others' (the `corr` and `corr_tails` tables, the last block of `stats`). A
    format 19 to 22 snapshot (this code's state in that layout, without what the news given
    the others' learnt: a stream with an own cycle and one without, a sine and a pump's
    flow that has rested after its warm-up, so that its first mode is a normal one; formats
    19 and 20 with no gap in the last K events, formats 21 and 22 two events past a day
    dropped, with the flow's run away from its place under way) loads with its mode in the
    first place (none from format 19), the others free, nothing learnt of the news given
    the others', and continues with the outputs of the state it came from, bit for bit,
    rows dropped after the restore included."""
    rng = np.random.default_rng(19)
    t = np.arange(600)
    flow = np.where((t >= 300) & (t % 40 >= 20), 0.0, 2.5)
    X = np.repeat(np.c_[np.sin(t / 5.0), flow], 2, axis=0) + 0.03 * rng.normal(size=(1200, 2))
    ids = ["a", "b"] * 600
    T = 1.7e9 + 60.0 * (np.arange(1200) // 2) + np.where(np.arange(1200) >= 1000, 86400.0, 0.0)
    cut = 1004 if version >= 21 else 800
    for mode in ("per_stream", "shared"):
        det = MultiStreamDetector(2, seed=0, weight_mode=mode)
        det.process(ids[:cut], X[:cut], T[:cut])
        arrays, meta = snapshot.unpack(det.to_bytes())
        col, D = det.hyper.stats, det.n_features
        stats, stats32 = arrays["stream.stats"].copy(), arrays["stream.stats32"].copy()
        stats32[:, col.cycle_unlearnt:] = 0.0  # format 26's, none before it
        # Not vacuous: the flow's first mode is a normal one, the others are free; the news
        # given the others' has learnt.
        assert (stats32[:, col.mode_switches + 1] >= 2 * scoring.MODE_VISITS).all()
        assert not stats32[:, col.mode_count + D:col.mode_switches].any()
        assert (stats[:, col.corr_count:col.first_high] > 20).all() and arrays["stream.corr_tails"].any()
        if version >= 21:  # a run and the forecasts left after the gap, each in its place
            assert (stats32[:, col.mode_run + 1] > 0).all()
            assert (stats32[:, col.after_gap] > 0).all() if mode == "per_stream" else col.after_gap == col.absent
        # The state it came from is this one without the news given the others' (and
        # without its modes from format 19).
        stats[:, col.corr_count:] = 0.0
        if version == 19:
            stats[:, col.mode_mean:], stats32[:, col.mode_count:col.absent] = 0.0, 0.0
        stats[:, col.first_high:col.first_high + D] = np.nan  # format 27's, unknown before it
        corr, corr_tails = arrays.pop("stream.corr"), arrays.pop("stream.corr_tails")
        arrays["stream.cycle"], cycle = cycle_before_v25(arrays)
        det = MultiStreamDetector.from_bytes(snapshot.pack(
            {**arrays, "stream.stats": stats, "stream.stats32": stats32, "stream.corr": np.zeros_like(corr),
             "stream.corr_tails": np.zeros_like(corr_tails), "stream.cycle": cycle}, meta))
        if version == 19:
            arrays["stream.stats"], arrays["stream.stats32"] = stats[:, :col.mode_mean], stats32[:, :col.mode_count]
        elif version == 22:
            arrays["stream.stats"], arrays["stream.stats32"] = stats[:, :col.corr_count], stats32[:, :col.absent]
        else:
            arrays["stream.stats"] = stats[:, :col.mode_mean + D]
            one = [col.mode_count, col.mode_switches, col.mode_run]
            arrays["stream.stats32"] = np.concatenate(
                [stats32[:, :col.mode_count], *(stats32[:, at:at + D] for at in one),
                 stats32[:, col.after_gap:col.absent if version == 21 else col.after_gap]], axis=1)
        old = MultiStreamDetector.from_bytes(_pack_as(monkeypatch, version, arrays, meta))
        restored = old.engine.to_host()[0]
        np.testing.assert_array_equal(restored.stats[:old.n_streams], stats)
        np.testing.assert_array_equal(restored.stats32[:old.n_streams], stats32)  # 19, 20: after_gap 0 (no gap)
        np.testing.assert_array_equal(restored.cycle[:old.n_streams], cycle)
        assert not restored.corr.any() and not restored.corr_tails.any()
        want, got = det.process(ids[cut:], X[cut:], T[cut:]), old.process(ids[cut:], X[cut:], T[cut:])
        for name in ("scores", "alert_scores", "flags", "predictions", "errors", "regime", "abnormal"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=f"{mode} {name}")
        # Not vacuous: with an own cycle the forecasts after the day dropped are not judged.
        after = got.errors[max(1000 - cut, 0):1000 - cut + 2 * (det.hyper.K + 1)]
        assert len(after) >= 30
        assert np.isnan(after).all() if mode == "per_stream" else np.isfinite(after).all()
        assert snapshot.unpack(old.to_bytes())[1]["format_version"] == snapshot.FORMAT_VERSION


def test_a_format_23_snapshot_loads_with_every_feature_read_at_each_event(monkeypatch):
    """Format 24 learns each feature's rhythm (scoring.learn_rhythm: the events since its
    last observation and its mean interval). A format 23 snapshot (this code's state
    without those columns: two sensors sent one reading a message, each feature's interval
    2) loads with none absent and an interval of 1, every feature read at each event as
    format 23 took it, and continues as this code's state with those values does, bit for
    bit; its features learn their rhythm again, at the scaler's rate."""
    rng = np.random.default_rng(23)
    t = np.arange(3000)
    X = np.c_[np.sin(t / 10.0), np.cos(t / 7.0)] + 0.05 * rng.normal(size=(3000, 2))
    X[np.arange(3000) % 2 == 0, 1] = np.nan
    X[np.arange(3000) % 2 == 1, 0] = np.nan
    ids, cut = ["s"] * 3000, 1001
    det = MultiStreamDetector(2, seed=0)
    det.process(ids[:cut], X[:cut])
    arrays, meta = snapshot.unpack(det.to_bytes())
    col = det.hyper.stats
    stats32 = arrays["stream.stats32"].copy()
    np.testing.assert_array_equal(stats32[0, col.absent:col.cycle_unlearnt], [0.0, 1.0, 2.0, 2.0])  # not vacuous
    stats32[:, col.absent:col.interval], stats32[:, col.interval:col.cycle_unlearnt] = 0.0, 1.0
    stats32[:, col.cycle_unlearnt:] = 0.0  # format 26's, none before it
    arrays["stream.cycle"], cycle = cycle_before_v25(arrays, rhythm=True)  # one event in two: fewer than 2 in 3
    want = MultiStreamDetector.from_bytes(snapshot.pack({**arrays, "stream.stats32": stats32, "stream.cycle": cycle},
                                                        meta))
    v23 = {**arrays, "stream.stats32": stats32[:, :col.absent],
           "stream.stats": arrays["stream.stats"][:, :col.first_high]}
    old = MultiStreamDetector.from_bytes(_pack_as(monkeypatch, 23, v23, meta))
    restored = old.engine.to_host()[0].stats32[:1]
    np.testing.assert_array_equal(restored, stats32)
    assert_rhythm_fresh(restored, old.hyper)
    a, b = want.process(ids[cut:], X[cut:]), old.process(ids[cut:], X[cut:])
    for name in ("scores", "alert_scores", "flags", "predictions", "errors", "regime", "abnormal"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    assert (old.engine.to_host()[0].stats32[0, col.interval:col.cycle_unlearnt] > 1.5).all()


def test_a_format_24_snapshot_loads_with_its_rhythmic_features_lags_afresh(monkeypatch):
    """Format 25 counts the pairs each lag's mean squared difference has learnt (the own
    cycle's row CYC_PAIRS), so that a lag a feature's values never paired at, or paired at
    only across a shift of its phase, is no fit (scoring.find_period). A format 24 snapshot
    (this code's state without the row, its lag means as format 24 learnt them, every event
    since a lag's first counted: two sensors sent one reading a message, each feature one
    event in two, a row dropped at event 500 shifting their phase) loads with its features,
    read at a rhythm of their own (a mean interval of 2), counting no pair at any lag, so
    that they learn their lags afresh, and continues as this code's state with those counts
    does, bit for bit, with no period at an odd lag. Counted as format 24 took them, the
    one or two pairs across the shift gave a period of an odd lag, never seen at."""
    rng = np.random.default_rng(24)
    t = np.arange(4000)
    X = np.c_[np.sin(t / 10.0), np.cos(t / 7.0)] + 0.05 * rng.normal(size=(4000, 2))
    parity = (t + (t >= 500)) % 2
    X[parity == 1, 0] = np.nan
    X[parity == 0, 1] = np.nan
    ids, cut = ["s"] * 4000, 1001
    det = MultiStreamDetector(2, seed=0)
    det.process(ids[:cut], X[:cut])
    arrays, meta = snapshot.unpack(det.to_bytes())
    col = det.hyper.stats
    arrays["stream.stats32"] = arrays["stream.stats32"].copy()
    arrays["stream.stats32"][:, col.cycle_unlearnt:] = 0.0  # format 26's, none before it
    assert (arrays["stream.stats32"][0, col.interval:col.cycle_unlearnt] >= scoring.LONG_INTERVAL).all()  # rhythmic
    pairs = arrays["stream.cycle"][:, :, CYC_PAIRS]
    lags = np.arange(1, det.hyper.cycle_max + 1)
    short_odd = (lags % 2 == 1) & (lags < 39)  # paired across the shift only, at most (lag + 1) / 2 times
    assert pairs[0][:, 2].max() == 2 and (pairs[0][:, short_odd] < scoring.TAIL_MIN_COUNT).all()
    # Format 24's exact means counted every event since a lag's first: a pair or two weighed little.
    ticks = arrays["stream.counters"][:, C_TICKS, None, None]
    old_means = arrays["stream.cycle"][:, :, CYC_LAG] * np.minimum(pairs / np.maximum(ticks - lags, 1), 1.0)
    v25 = arrays["stream.cycle"].copy()
    v25[:, :, CYC_LAG] = old_means
    v24, cycle = cycle_before_v25({**arrays, "stream.cycle": v25}, rhythm=True)
    want = MultiStreamDetector.from_bytes(snapshot.pack({**arrays, "stream.cycle": cycle}, meta))
    v24_stats32 = arrays["stream.stats32"][:, :col.cycle_unlearnt]
    v24_stats = arrays["stream.stats"][:, :col.first_high]
    v24_arrays = {**arrays, "stream.cycle": v24, "stream.stats": v24_stats, "stream.stats32": v24_stats32}
    old = MultiStreamDetector.from_bytes(_pack_as(monkeypatch, 24, v24_arrays, meta))
    np.testing.assert_array_equal(old.engine.to_host()[0].cycle[:1], cycle)
    assert not cycle[:, :, CYC_PAIRS].any()
    a, b = want.process(ids[cut:], X[cut:]), old.process(ids[cut:], X[cut:])
    for name in ("scores", "alert_scores", "flags", "predictions", "errors", "regime", "abnormal"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    assert not (old.engine.to_host()[0].stats32[0, col.cycle_period:col.cycle_period + 2] % 2 == 1).any()
    # Not vacuous: counted as format 24 took them, a lag of a pair or two was a period.
    _, as_taken = cycle_before_v25({**arrays, "stream.cycle": v25})
    taken = MultiStreamDetector.from_bytes(snapshot.pack({**arrays, "stream.cycle": as_taken}, meta))
    taken.process(ids[cut:cut + 10], X[cut:cut + 10])
    assert (taken.engine.to_host()[0].stats32[0, col.cycle_period:col.cycle_period + 2] % 2 == 1).any()


def test_a_format_25_snapshot_loads_with_its_cycles_levels_held(monkeypatch):
    """Format 26 records, per feature, whether its own cycle's level went unlearnt at its
    last observation, the value a period before it missing (scoring.cycle_level). A format
    25 snapshot (this code's state without those columns, taken where the last value's
    reference was missing) loads with none unlearnt, the level held as format 25 took it,
    and continues as this code's state with that value does, bit for bit."""
    rng = np.random.default_rng(25)
    X = (np.sin(2 * np.pi * np.arange(3000) / 40) + 0.1 * rng.normal(size=3000))[:, None]
    ids, cut = ["s"] * 3000, 1001
    X[cut - 1 - 40] = np.nan  # the last value before the cut has no reference
    det = MultiStreamDetector(1, seed=0)
    det.process(ids[:cut], X[:cut])
    arrays, meta = snapshot.unpack(det.to_bytes())
    col = det.hyper.stats
    stats32 = arrays["stream.stats32"].copy()
    assert stats32[0, col.cycle_period] == 40 and stats32[0, col.cycle_unlearnt] == 1.0  # not vacuous
    stats32[:, col.cycle_unlearnt:] = 0.0
    want = MultiStreamDetector.from_bytes(snapshot.pack({**arrays, "stream.stats32": stats32}, meta))
    old = MultiStreamDetector.from_bytes(
        _pack_as(monkeypatch, 25, {**arrays, "stream.stats32": stats32[:, :col.cycle_unlearnt],
                                   "stream.stats": arrays["stream.stats"][:, :col.first_high]}, meta))
    np.testing.assert_array_equal(old.engine.to_host()[0].stats32[:1], stats32)
    a, b = want.process(ids[cut:], X[cut:]), old.process(ids[cut:], X[cut:])
    for name in ("scores", "alert_scores", "flags", "predictions", "errors", "regime", "abnormal"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)


def test_a_format_26_snapshot_loads_with_its_baselines_first_values_unknown(monkeypatch):
    """Format 27 keeps what the hindsight on each feature's first 20 baseline observations
    needs (scoring.keep_first_value: the largest, the smallest, the others' moments). A format 26 snapshot
    (this code's state without them, cut within a feature's first 20, after a wild
    reading) loads with them unknown, so that its baseline goes on as learnt, the wild
    reading in full, as format 26 took it, and continues as this code's state with them
    unknown does, bit for bit. Not vacuous: with them known, the hindsight limits the wild
    reading."""
    rng = np.random.default_rng(26)
    X = 10.0 + rng.normal(size=(600, 1))
    X[3] = 1000.0
    ids, cut = ["s"] * 600, 12
    det = MultiStreamDetector(1, seed=0)
    det.process(ids[:cut], X[:cut])
    arrays, meta = snapshot.unpack(det.to_bytes())
    col = det.hyper.stats
    stats = arrays["stream.stats"].copy()
    assert stats[0, col.base_count] == cut and stats[0, col.first_high] == 1000.0  # within the first 20
    stats[:, col.first_high:] = 0.0  # format 27's, unknown before it
    stats[:, col.first_high] = np.nan
    want = MultiStreamDetector.from_bytes(snapshot.pack({**arrays, "stream.stats": stats}, meta))
    v26 = {**arrays, "stream.stats": stats[:, :col.first_high]}
    old = MultiStreamDetector.from_bytes(_pack_as(monkeypatch, 26, v26, meta))
    np.testing.assert_array_equal(old.engine.to_host()[0].stats[:1], stats)
    a, b = want.process(ids[cut:], X[cut:]), old.process(ids[cut:], X[cut:])
    for name in ("scores", "alert_scores", "flags", "predictions", "errors", "regime", "abnormal"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    known = MultiStreamDetector.from_bytes(snapshot.pack(arrays, meta))
    known.process(ids[cut:], X[cut:])
    base_sd = [np.sqrt(d.engine.to_host()[0].stats32[0, col.base_var]) for d in (old, known)]
    assert base_sd[0] > 10.0 > 2.0 > base_sd[1], base_sd


def test_a_snapshot_from_before_range_steps_goes_on_with_it_off():
    """`range_steps` became 0.5 by default after snapshots without it were written (with it
    off, as the setting began). Such a snapshot (format 18, tests/data/detector_v18*, and an
    LSTMDetector's with the setting taken out of its settings and its engine's) restores
    with 0, as it was learnt, and says so; a new snapshot keeps its value."""
    det = MultiStreamDetector.from_bytes((DATA / "detector_v18.snapshot").read_bytes())
    assert "range_steps" not in snapshot.unpack((DATA / "detector_v18.snapshot").read_bytes())[1]["settings"]
    assert det.settings["range_steps"] == 0.0 and det.hyper.range_steps == 0.0
    river = LSTMDetector(warmup=20)
    for v in np.sin(np.arange(40) / 3.0):
        river.learn_one({"v": float(v)})
    arrays, meta = snapshot.unpack(river.to_bytes())
    assert meta["params"]["range_steps"] == 0.5
    engine_arrays, engine_meta = snapshot.unpack(arrays["engine"].tobytes())
    del meta["params"]["range_steps"], engine_meta["settings"]["range_steps"]
    arrays["engine"] = np.frombuffer(snapshot.pack(engine_arrays, engine_meta), dtype=np.uint8)
    old = LSTMDetector.from_bytes(snapshot.pack(arrays, meta))
    assert old.range_steps == 0.0 and old._engine.settings["range_steps"] == 0.0
    assert LSTMDetector.from_bytes(river.to_bytes())._engine.settings["range_steps"] == 0.5
