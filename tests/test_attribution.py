"""Attribution: each feature's own evidence (BatchResult.contributions), the regime's blame
of each feature (BatchResult.blame) and the records' `contributors`, which name the
features that drove an alert (by their evidence) or an abnormal stretch (by the blame)."""

import csv
import io
import json

import numpy as np
import pytest

from streamlstm import MultiStreamDetector
from streamlstm.event import Event
from streamlstm.io.records import (CONTRIBUTORS, contributors, csv_header, csv_row, record_features, result_line,
                                   result_record)
from streamlstm.pool import Scored

N = 3000
AMPLITUDES, PHASES = (1.0, 0.5, 2.0, 4.0), (0.0, 0.25, 0.5, 0.75)


def four_cycles(seed):
    """Four noisy cycles of period 100 at different amplitudes and phases, (N, 4)."""
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    return np.column_stack([a * (np.sin(2 * np.pi * (t / 100 + p)) + 0.1 * rng.normal(size=N))
                            for a, p in zip(AMPLITUDES, PHASES)])


@pytest.mark.parametrize("broken", range(4))
def test_the_broken_feature_is_named_first(broken):
    """One feature of four breaks (a spike, then a level shift, in units of its own
    amplitude): every alert of the incidents names it first by the features' own
    evidence, and their abnormal events by the regime's blame. (The shift is 2.5
    amplitudes: the regime counts a cycle's level once per autocorrelation time, and one
    of 1.5 amplitudes in one of four features is not reliably a regime.)"""
    X = four_cycles(broken)
    X[1500, broken] += 3.0 * AMPLITUDES[broken]
    X[2200:, broken] += 2.5 * AMPLITUDES[broken]
    res = MultiStreamDetector(4, seed=broken).process(["s"] * N, X)
    incident = np.zeros(N, dtype=bool)
    incident[1500:1521] = incident[2200:2300] = True
    alerts, abnormal = res.flags & incident, res.abnormal & incident
    assert alerts[1500:1521].any() and alerts[2200:2300].any()
    assert (res.contributions[alerts].argmax(axis=1) == broken).all()
    assert abnormal.sum() >= 10 and (res.blame[abnormal].argmax(axis=1) == broken).mean() >= 0.9


@pytest.mark.parametrize("seed", [0, 1])
def test_the_blame_names_a_noisy_feature_through_its_burst(seed):
    """A noise burst in one of 32 noisy cycles: in an event of the burst where the broken
    feature happens to look normal, its own evidence is smaller than some healthy
    feature's, but the regime's blame, which rests on the whole incident, still names it
    (its own evidence named it first on 55 % of these rows, the blame on all). The blame
    is a distribution over the features, 0 before the regime could judge."""
    rng = np.random.default_rng(seed)
    n, D, t = 4000, 32, np.arange(4000)
    X = np.column_stack([rng.uniform(0.5, 4.0) * (np.sin(2 * np.pi * (t / 100 + rng.uniform())) + 0.1 * rng.normal(size=n))
                         for _ in range(D)])
    broken = 7
    X[3000:3050, broken] += rng.normal(0.0, 0.8 * np.abs(X[:3000, broken]).max(), 50)
    res = MultiStreamDetector(D, seed=seed).process(["s"] * n, X)
    abnormal = res.abnormal.copy()
    abnormal[:3000] = abnormal[3070:] = False
    assert abnormal.sum() >= 40
    assert (res.blame[abnormal].argmax(axis=1) == broken).all()
    assert (res.contributions[abnormal].argmax(axis=1) != broken).any()
    np.testing.assert_allclose(res.blame[300:].sum(axis=1), 1.0, rtol=1e-5)
    assert not res.blame[:300].any() and (res.blame >= 0.0).all()


def test_contributions_are_zero_without_a_judgement_and_finite_on_extremes():
    """Zero for baseline events, in warm-up, for missing features and for a constant
    feature's first change (context: not judged); finite and >= 0 for extreme finite
    values."""
    X = four_cycles(0)
    X[:, 3] = 0.0  # a constant feature ...
    X[700, 3] = 1.0  # ... changes once
    X[800, 0], X[801, 1], X[802, 2] = 1e18, -1e18, 1e-300
    X[900, 2] = np.nan
    det = MultiStreamDetector(4, warmup=100)
    base = det.process(["s"] * 300, X[:300], score=False)
    assert not base.contributions.any() and not base.blame.any()
    res = det.process(["s"] * (N - 300), X[300:])
    c = res.contributions
    assert np.isfinite(c).all() and (c >= 0.0).all()
    assert c[900 - 300, 2] == 0.0
    assert c[700 - 300, 3] == 0.0 and c[800 - 300].argmax() == 0 and c[801 - 300].argmax() == 1
    warm = MultiStreamDetector(4, warmup=100).process(["s"] * 100, X[:100])
    assert not warm.contributions.any() and not warm.blame.any()


def test_contributors_are_the_largest_shares():
    names = [f"f{i}" for i in range(5)]
    got = contributors(names, [1.0, 0.0, 6.0, 2.0, 1.0])
    assert got == [{"feature": "f2", "share": 0.6}, {"feature": "f3", "share": 0.2},
                   {"feature": "f0", "share": 0.1}]
    assert len(got) == CONTRIBUTORS
    assert contributors(names[:2], [0.0, 3.0]) == [{"feature": "f1", "share": 1.0}]
    assert contributors(names[:2], [0.0, 0.0]) == []


def scored(values, is_anomaly, abnormal, attribution, features=("a", "b")):
    ev = Event(7, "s", features, values, None, None, {})
    return Scored(ev, values, 0.1, 0.2, is_anomaly, 0.2, 0.9 if abnormal else 0.1, abnormal, attribution)


def test_records_name_contributors_of_alerts_and_abnormal_events_only():
    alert = result_record(scored((1.0, 2.0), True, False, (0.5, 4.5)))
    assert alert["contributors"] == [{"feature": "b", "share": 0.9}, {"feature": "a", "share": 0.1}]
    assert json.loads(result_line(scored((1.0, 2.0), False, True, (3.0, 1.0))))["contributors"][0] == {
        "feature": "a", "share": 0.75}
    assert "contributors" not in result_record(scored((1.0, 2.0), False, False, (3.0, 1.0)))
    univariate = result_record(scored((1.0,), True, True, (3.0,), features=("value",)))
    assert "contributors" not in univariate  # one feature: nothing to attribute


def test_csv_rows_carry_contributors_as_json():
    records = [result_record(scored((1.0, 2.0), True, False, (0.5, 4.5))),
               result_record(scored((1.0, 2.0), False, False, (0.5, 4.5)))]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(csv_header(record_features(records[0])))
    w.writerows(csv_row(r) for r in records)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert json.loads(rows[0]["contributors"]) == {"b": 0.9, "a": 0.1}
    assert rows[1]["contributors"] == ""


def test_a_constant_column_that_starts_to_toggle_is_not_an_incident():
    """Beside a noisy cycle, a 0/1 command flag that is constant and then toggles is
    context: its changes raise no alert and no abnormal regime, carry no evidence, and it
    is not modelled (no forecast)."""
    rng = np.random.default_rng(3)
    x = np.sin(np.arange(N) / 8.0) + 0.1 * rng.normal(size=N)
    toggles = 1500 + np.cumsum(rng.integers(50, 150, size=20))
    flag = (np.searchsorted(toggles, np.arange(N), side="right") % 2).astype(float)
    res = MultiStreamDetector(2, seed=3).process(["s"] * N, np.column_stack([x, flag]))
    assert not res.abnormal.any()
    near_a_toggle = np.zeros(N, dtype=bool)
    for t in toggles[toggles < N]:
        near_a_toggle[t:t + 40] = True
    assert not (res.flags & near_a_toggle).any()
    assert not res.contributions[:, 1].any()
    assert np.isnan(res.predictions[10:, 1]).all() and np.isfinite(res.predictions[10:, 0]).all()


def test_a_univariate_two_valued_stream_is_still_judged():
    """With no other feature, a 0/20 stream is judged on its own values: spikes that turn
    from rare to dense alert (NAB's art_increase_spike_density)."""
    rng = np.random.default_rng(4)
    spikes = np.where(rng.random(N) < np.where(np.arange(N) < 2000, 0.01, 0.3), 20.0, 0.0)
    res = MultiStreamDetector(1, seed=4).process(["s"] * N, spikes[:, None])
    assert res.flags[2000:2100].any()
