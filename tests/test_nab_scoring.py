"""Tests for streamlstm.evaluate.nab_scoring on hand-made cases.

Notation: sigma(y) = 2/(1+exp(5y)) - 1 (NAB scaledSigmoid, -1 for y > 3).
Unless said otherwise the series has N = 20 rows, probation P = 3 and one
window covering rows 10..13 (width w = 4, right edge r = 13), standard profile
A_TP = 1, A_FN = 1, A_FP = 0.11.
"""
import math
import os
from pathlib import Path

import numpy as np
import pytest

from streamlstm.evaluate.nab_scoring import (
    PROFILES,
    CostProfile,
    SeriesScores,
    evaluate_series,
    load_windows,
    probation_rows,
    read_nab_csv,
    row_weights,
    scaled_sigmoid,
    score_corpus,
    score_series,
    sweep_thresholds,
    window_rows,
)

TOL = 1e-9
STD = PROFILES["standard"]
N, P, WIN = 20, 3, [(10, 13)]


def sig(y):
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def one_hot(*rows, n=N, value=1.0):
    s = np.zeros(n)
    for r in rows:
        s[r] = value
    return s


def test_profiles_and_sigmoid():
    assert PROFILES["standard"] == CostProfile(1.0, 1.0, 0.11)
    assert PROFILES["reward_low_FP_rate"] == CostProfile(1.0, 1.0, 0.22)
    assert PROFILES["reward_low_FN_rate"] == CostProfile(1.0, 2.0, 0.11)
    assert abs(scaled_sigmoid(0.0)) < TOL
    assert abs(scaled_sigmoid(-1.0) - 0.9866142981514305) < TOL  # 2/(1+e^-5)-1
    assert scaled_sigmoid(3.0 + 1e-12) == -1.0
    assert abs(scaled_sigmoid(3.0) - sig(3.0)) < TOL  # clamp only for y > 3


def test_probation_rows():
    # min(floor(0.15 n), 750)
    assert probation_rows(20) == 3
    assert probation_rows(100) == 15
    assert probation_rows(4999) == 749  # floor(749.85)
    assert probation_rows(5000) == 750
    assert probation_rows(22695) == 750
    assert probation_rows(6) == 0  # floor(0.9)


def test_detection_at_window_start_scores_a_tp():
    # position = -(r - i + 1)/w = -(13-10+1)/4 = -1 -> A_TP * sigma(-1)/sigma(-1) = 1
    assert abs(score_series(one_hot(10), WIN, 0.5, STD, P) - 1.0) < TOL
    # reward_low_FN_rate has A_TP = 1 too
    assert abs(score_series(one_hot(10), WIN, 0.5, PROFILES["reward_low_FN_rate"], P)
               - 1.0) < TOL


def test_detection_at_window_end():
    # position = -(13-13+1)/4 = -0.25 -> sigma(-0.25)/sigma(-1) = 0.5621...
    expected = sig(-0.25) / sig(-1.0)
    assert abs(score_series(one_hot(13), WIN, 0.5, STD, P) - expected) < TOL
    assert abs(expected - 0.5621) < 1e-4


def test_only_best_detection_in_window_counts():
    # rows 12 and 11 flagged: best is row 11, position -(13-11+1)/4 = -0.75
    expected = sig(-0.75) / sig(-1.0)
    assert abs(score_series(one_hot(11, 12), WIN, 0.5, STD, P) - expected) < TOL


def test_detection_before_any_window():
    # FP before first window: -A_FP; window missed: -A_FN  => -0.11 - 1
    assert abs(score_series(one_hot(5), WIN, 0.5, STD, P) - (-1.11)) < TOL
    lowfp = PROFILES["reward_low_FP_rate"]
    assert abs(score_series(one_hot(5), WIN, 0.5, lowfp, P) - (-1.22)) < TOL


def test_detection_after_window():
    # row 16: y = (16 - 13)/(w - 1) = 3/3 = 1 -> A_FP * sigma(1) = 0.11 * (-0.98661..)
    # window missed: -1
    expected = 0.11 * sig(1.0) - 1.0
    assert abs(score_series(one_hot(16), WIN, 0.5, STD, P) - expected) < TOL
    # row 14, right after the window: y = 1/3
    expected = 0.11 * sig(1.0 / 3.0) - 1.0
    assert abs(score_series(one_hot(14), WIN, 0.5, STD, P) - expected) < TOL
    # far past the window: y = (24 - 13)/3 > 3 -> -A_FP exactly
    s = one_hot(24, n=30)
    assert abs(score_series(s, WIN, 0.5, STD, P) - (-0.11 - 1.0)) < TOL


def test_missed_window():
    assert abs(score_series(np.zeros(N), WIN, 0.5, STD, P) - (-1.0)) < TOL
    assert abs(score_series(np.zeros(N), WIN, 0.5, PROFILES["reward_low_FN_rate"], P)
               - (-2.0)) < TOL


def test_probation_detections_ignored():
    # row 1 < P = 3 is not scored: only the missed window counts
    assert abs(score_series(one_hot(1), WIN, 0.5, STD, P) - (-1.0)) < TOL
    # default probation for N=20 is 3 as well
    assert abs(score_series(one_hot(1, 2), WIN, 0.5, STD) - (-1.0)) < TOL
    # row 3 is the first scored row: FP before any window
    assert abs(score_series(one_hot(3), WIN, 0.5, STD) - (-1.11)) < TOL


def test_window_inside_probation_is_not_scored():
    # window rows 0..1 lie wholly inside probation (P = 3): missing it costs nothing;
    # a detection at row 5 is after that window: y = (5-1)/(2-1) = 4 > 3 -> -A_FP
    out = evaluate_series(one_hot(5), [(0, 1)], 0.5, STD, P)
    assert out.n_windows == 0 and out.fn == 0 and out.fp == 1
    assert abs(out.score - (-0.11)) < TOL


def test_two_windows_fp_uses_previous_window():
    # windows rows 4..5 (w=2) and 10..13; detections at 6 and 10.
    # row 6: y = (6 - 5)/(2 - 1) = 1 -> 0.11 sigma(1); window 1 missed -1;
    # window 2 detected at its start +1.
    expected = 0.11 * sig(1.0) - 1.0 + 1.0
    out = evaluate_series(one_hot(6, 10), [(4, 5), (10, 13)], 0.5, STD, P)
    assert abs(out.score - expected) < TOL
    assert (out.tp, out.fn, out.fp, out.n_windows) == (1, 1, 1, 2)


def test_sweep_picks_best_threshold():
    # scores: FP row 5 -> 0.9, window start row 10 -> 0.5, FP row 16 -> 0.3
    #   thr = inf : -1                      (window missed)
    #   thr = 0.9 : -1 - 0.11 = -1.11
    #   thr = 0.5 : +1 - 0.11 = 0.89        <- best
    #   thr = 0.3 : 0.89 + 0.11 sigma(1) = 0.7815..
    #   thr = 0.0 : every scored row detected (probation rows excluded)
    s = np.zeros(N)
    s[5], s[10], s[16] = 0.9, 0.5, 0.3
    series = [SeriesScores("cat/a.csv", s, WIN, probation=P)]
    thr, val = sweep_thresholds(series, STD)
    assert list(thr[:4]) == [np.inf, 0.9, 0.5, 0.3]
    assert abs(val[0] - (-1.0)) < TOL
    assert abs(val[1] - (-1.11)) < TOL
    assert abs(val[2] - 0.89) < TOL
    assert abs(val[3] - (0.89 + 0.11 * sig(1.0))) < TOL
    # sweep value equals the direct rule at every candidate threshold
    for t, v in zip(thr, val):
        assert abs(v - score_series(s, WIN, t, STD, P)) < TOL
    res = score_corpus(series, STD)
    assert res.threshold == 0.5
    assert abs(res.raw_score - 0.89) < TOL
    assert (res.tp, res.fn, res.fp, res.n_windows) == (1, 0, 1, 1)
    # null = -1, perfect = +1 -> 100 * (0.89 + 1)/2 = 94.5
    assert abs(res.normalized_score - 94.5) < TOL
    assert abs(res.per_series["cat/a.csv"] - 0.89) < TOL
    assert abs(res.per_category["cat"].normalized_score - 94.5) < TOL


def test_sweep_tie_goes_to_highest_threshold():
    # profile A_FP = 2: detecting both (FP row 5 = -2, window start +1) gives
    # -1, the same as detecting nothing (-1): NAB keeps the first (highest) threshold.
    prof = CostProfile(1.0, 1.0, 2.0)
    s = one_hot(5, 10, value=0.5)
    res = score_corpus([SeriesScores("c/x.csv", s, WIN, probation=P)], prof)
    assert res.threshold == np.inf
    assert abs(res.raw_score - (-1.0)) < TOL
    assert abs(res.normalized_score - 0.0) < TOL


def test_perfect_and_null_normalise_to_100_and_0():
    series_p = [SeriesScores("a/x.csv", one_hot(10), WIN, probation=P),
                SeriesScores("b/y.csv", one_hot(4, 12, n=30), [(4, 6), (12, 20)], probation=P),
                # a long window-free series: with a constant-score "null" detector
                # the sweep could otherwise prefer detecting *everything*
                # (here that would cost >= 0.11 * 1700 FPs, so it never does)
                SeriesScores("b/z.csv", np.zeros(2000), [], probation=P)]
    for name, prof in PROFILES.items():
        res = score_corpus(series_p, prof)
        # 3 windows: perfect = 3 A_TP, null = -3 A_FN
        assert abs(res.raw_score - 3.0) < TOL, name
        assert abs(res.normalized_score - 100.0) < TOL, name
        assert res.threshold == 1.0
        nul = [SeriesScores(s.name, np.zeros(len(s.scores)), s.windows, P) for s in series_p]
        res0 = score_corpus(nul, prof)
        assert abs(res0.raw_score + 3.0 * prof.fn) < TOL
        assert abs(res0.normalized_score) < TOL
        assert res0.threshold == np.inf
        assert abs(res0.per_category["b"].normalized_score) < TOL
        assert abs(res0.per_category["a"].normalized_score) < TOL


def test_constant_detector_may_prefer_detecting_everything():
    # NAB's null detector emits a constant score and still goes through the sweep.
    # One series, N=20, P=3, window 10..13, all rows score 0:
    #   thr = inf: -1 (missed window)
    #   thr = 0  : window start +1; FPs before window rows 3..9: 7 * -0.11;
    #              after window rows 14..19: y = (i-13)/3 for i-13 = 1..6
    expected = 1.0 - 7 * 0.11 + sum(0.11 * sig(k / 3.0) for k in range(1, 7))
    res = score_corpus([SeriesScores("c/x.csv", np.zeros(N), WIN, probation=P)], STD)
    assert expected > -1.0
    assert res.threshold == 0.0
    assert abs(res.raw_score - expected) < TOL


def test_window_rows_parses_both_formats():
    ts = ["2014-04-01 00:00:00", "2014-04-01 00:05:00", "2014-04-01 00:10:00",
          "2014-04-01 00:15:00", "2014-04-01 00:20:00"]
    wins = [("2014-04-01 00:05:00.000000", "2014-04-01 00:15:00.000000")]
    assert window_rows(ts, wins) == [(1, 3)]
    # boundaries not on the grid: rows with start <= t <= end
    wins = [("2014-04-01 00:06:00", "2014-04-01 00:21:00.5")]
    assert window_rows(ts, wins) == [(2, 4)]
    # window with no row is dropped
    assert window_rows(ts, [("2015-01-01 00:00:00", "2015-01-02 00:00:00")]) == []


def _nab_reference(scores, windows, threshold, prof, probation):
    """Independent row-by-row port of NAB's calcSweepScore + thresholding."""
    n = len(scores)
    starts = {s: e for s, e in windows}
    parts = {}
    fp_sum = 0.0
    cur = None
    prev = None
    max_tp = sig(-1.0)
    for i in range(n):
        if cur is None and i in starts:
            cur = (i, starts[i])
        if cur is not None:
            w = cur[1] - cur[0] + 1
            weight = scaled_sigmoid(-(cur[1] - i + 1) / w) * prof.tp / max_tp
        elif prev is None:
            weight = -prof.fp
        else:
            weight = scaled_sigmoid(abs(prev[1] - i) / (prev[1] - prev[0])) * prof.fp
        if i >= probation:
            if cur is not None:
                parts.setdefault(cur, -prof.fn)
                if scores[i] >= threshold:
                    parts[cur] = max(parts[cur], weight)
            elif scores[i] >= threshold:
                fp_sum += weight
        if cur is not None and i == cur[1]:
            prev, cur = cur, None
    return fp_sum + sum(parts.values())


def test_matches_nab_reference_on_random_series():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(40, 300))
        # random non-overlapping windows of width >= 2
        cuts = np.sort(rng.choice(np.arange(1, n - 1), size=2 * int(rng.integers(0, 4)),
                                  replace=False))
        windows = [(int(a), int(b)) for a, b in zip(cuts[::2], cuts[1::2])]
        scores = np.round(rng.random(n), 2)  # ties on purpose
        prob = probation_rows(n)
        prof = list(PROFILES.values())[trial % 3]
        thr, val = sweep_thresholds([SeriesScores("c/s.csv", scores, windows)], prof)
        for t, v in zip(thr, val):
            ref = _nab_reference(scores, windows, t, prof, prob)
            assert abs(v - ref) < 1e-9
            assert abs(score_series(scores, windows, t, prof) - ref) < 1e-9
        assert abs(val.max() - max(_nab_reference(scores, windows, t, prof, prob)
                                   for t in np.r_[np.inf, np.unique(scores)])) < 1e-9


def test_row_weights_marks_rows():
    w, wid = row_weights(N, WIN, STD, probation=P)
    assert list(wid[:3]) == [-2, -2, -2]
    assert list(wid[10:14]) == [0, 0, 0, 0]
    assert wid[14] == -1 and wid[9] == -1
    assert abs(w[10] - 1.0) < TOL and abs(w[9] + 0.11) < TOL


NAB_DIR = Path(os.environ.get("NAB_DIR", "/work/shared/nab"))


@pytest.mark.skipif(not (NAB_DIR / "labels" / "combined_windows.json").exists(),
                    reason="NAB corpus not available")
def test_real_corpus_perfect_is_100_and_null_is_0():
    labels = load_windows(NAB_DIR / "labels" / "combined_windows.json")
    perfect, null = [], []
    n_labelled = 0
    for name, wins in sorted(labels.items()):
        ts, _ = read_nab_csv(NAB_DIR / "data" / name)
        rows = window_rows(ts, wins)
        assert len(rows) == len(wins)
        n_labelled += len(wins)
        s = np.zeros(len(ts))
        for a, _b in rows:
            s[a] = 1.0
        perfect.append(SeriesScores(name, s, rows))
        null.append(SeriesScores(name, np.zeros(len(ts)), rows))
    for prof in PROFILES.values():
        rp = score_corpus(perfect, prof)
        assert rp.n_windows == n_labelled  # no window falls inside probation
        assert abs(rp.normalized_score - 100.0) < 1e-9
        assert rp.tp == n_labelled and rp.fp == 0 and rp.fn == 0
        rn = score_corpus(null, prof)
        assert abs(rn.normalized_score) < 1e-9
        assert abs(rn.raw_score + prof.fn * n_labelled) < 1e-9
