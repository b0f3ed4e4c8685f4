"""Tests for streamlstm.evaluate.skab_scoring on hand-computed cases.

Notation: the in-window reward of a first detection at relative position u is
r(u) = A_fp + (A_tp - A_fp)/2 * (1 - tanh(x_k)/tanh(pi/2)), x_k = -pi/2 + k*pi/999,
k = min(floor(1000 u), 999); tanh(pi/2) = 0.9171523.
Profiles (A_tp, A_fp, A_fn): standard (1, -0.11, -1), low FP (1, -0.22, -1),
low FN (1, -0.11, -2). Normalised = 100 (S - S_null) / (S_perfect - S_null) with
S_null = A_fn * n_cp and S_perfect = n_cp, each summed over files first.

Unless said otherwise a file has rows at t = 0, 1, ..., 199 s and one changepoint at
t = 100, so its window is [100, 160] (61 rows). n_cp = 1: S_null = -1 (low FN -2),
S_perfect = 1; normalised = 100 (S + 1) / 2 (low FN: 100 (S + 2) / 3).
"""
import math

import numpy as np
import pytest

from streamlstm.evaluate.nab_scoring import PROFILES
from streamlstm.evaluate.skab_scoring import (
    FileChangepoints,
    changepoint_score,
    changepoint_windows,
    evenly_spaced,
    match_changepoints,
    outlier_metrics,
    window_reward,
)

T = np.arange(200.0)
CP = T == 100
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def at(*times, t=T):
    return np.isin(t, times)


def scores(*files):
    """Normalised (standard, low FP, low FN) of files given as (timestamps, changepoints, predicted)."""
    res = changepoint_score([match_changepoints(*f) for f in files])
    return tuple(res.scores[p] for p in PROFILE_NAMES), res


def approx(*values):
    return pytest.approx(values, abs=1e-6)


# --- changepoint score ------------------------------------------------------

def test_perfect_detector_is_100():
    # one detection at t = 100, the window's first instant: u = 0, k = 0, x = -pi/2,
    # r = A_fp + (A_tp - A_fp) = A_tp = 1 -> S = 1 = S_perfect -> 100 in every profile
    s, res = scores((T, CP, at(100)))
    assert s == approx(100.0, 100.0, 100.0)
    assert (res.missed, res.false_positives, res.n_changepoints) == (0, 0, 1)


def test_null_detector_is_0():
    # no detection: S = A_fn = S_null -> 0; the changepoint is missed
    s, res = scores((T, CP, np.zeros(200, bool)))
    assert s == approx(0.0, 0.0, 0.0)
    assert (res.missed, res.false_positives) == (1, 0)


def test_detection_at_window_start_later_ones_in_the_window_ignored():
    # t = 100 is the first detection in [100, 160]: r(0) = 1. The ones at 120 and 160
    # are in the window but not first: neither TP nor FP. S = 1 -> 100.
    s, res = scores((T, CP, at(100, 120, 160)))
    assert s == approx(100.0, 100.0, 100.0)
    assert res.false_positives == 0


def test_detection_at_window_end():
    # t = 160: u = 60/60 = 1, k = min(1000, 999) = 999, x = pi/2, r = A_fp.
    # standard: S = -0.11 -> 100 (0.89) / 2 = 44.5
    # low FP:   S = -0.22 -> 100 (0.78) / 2 = 39
    # low FN:   S = -0.11 -> 100 (1.89) / 3 = 63
    s, res = scores((T, CP, at(160)))
    assert s == approx(44.5, 39.0, 63.0)
    assert (res.missed, res.false_positives) == (0, 0)


def test_detection_just_after_the_window_is_an_fp_and_a_miss():
    # t = 161 > 160: FP (A_fp) and the window is missed (A_fn).
    # standard: S = -1 - 0.11 = -1.11 -> 100 (-0.11) / 2 = -5.5
    # low FP:   S = -1 - 0.22 -> -11;  low FN: S = -2 - 0.11 -> 100 (-0.11) / 3 = -3.6667
    s, res = scores((T, CP, at(161)))
    assert s == approx(-5.5, -11.0, -11.0 / 3)
    assert (res.missed, res.false_positives) == (1, 1)


def test_detection_mid_window():
    # t = 130: u = 0.5, k = 500, x = -pi/2 + 500 pi/999 = pi/1998 = 0.0015724,
    # tanh(x)/tanh(pi/2) = 0.0015724/0.9171523 = 0.0017144
    # standard: r = -0.11 + 0.555 (1 - 0.0017144) = 0.4440485 -> 100 (1.4440485)/2 = 72.202425
    # low FP:   r = -0.22 + 0.61 (0.9982856) = 0.3889542 -> 69.44771
    # low FN:   r = 0.4440485 -> 100 (2.4440485)/3 = 81.46828
    s, _ = scores((T, CP, at(130)))
    assert s == pytest.approx((72.202425, 69.44771, 81.46828), abs=1e-4)


def test_one_false_positive():
    # t = 10 (before the window): FP; t = 100: r = 1.
    # standard: S = 1 - 0.11 = 0.89 -> 94.5; low FP: 0.78 -> 89; low FN: 0.89 -> 100 (2.89)/3 = 96.3333
    s, res = scores((T, CP, at(10, 100)))
    assert s == approx(94.5, 89.0, 289.0 / 3)
    assert (res.missed, res.false_positives) == (0, 1)


def test_two_files_are_summed_before_normalising():
    # file A: the usual changepoint at 100, detected at 100: S_A = 1 (null -1, perfect 1)
    # file B: changepoints at 50 and 150, windows [50, 110] and [150, 210], one detection
    #         at 20 (FP), both missed: S_B = -2 - 0.11 = -2.11 (null -2, perfect 2)
    # standard: S = -1.11, null -3, perfect 3 -> 100 (1.89)/6 = 31.5
    # low FP:   S = 1 - 2 - 0.22 = -1.22 -> 100 (1.78)/6 = 29.6667
    # low FN:   S = 1 - 4 - 0.11 = -3.11, null -6, perfect 3 -> 100 (2.89)/9 = 32.1111
    # (the mean of per-file scores would be (100 + 100 (-0.11)/4)/2 = 48.625 instead)
    s, res = scores((T, CP, at(100)), (T, at(50, 150), at(20)))
    assert s == approx(31.5, 178.0 / 6, 289.0 / 9)
    assert (res.missed, res.false_positives, res.n_changepoints) == (2, 1, 3)


def test_windows_are_times_not_rows():
    # rows at t = 0..100, then a 29 s gap, then t = 130..228; changepoint at t = 100
    # (row 100), detection at row 101 (t = 130): u = 30/60 = 0.5 as in the mid-window
    # case (by rows it would be 1/60).
    t = np.r_[np.arange(101.0), np.arange(130.0, 229.0)]
    s, _ = scores((t, t == 100, t == 130))
    assert s == pytest.approx((72.202425, 69.44771, 81.46828), abs=1e-4)


def test_overlapping_windows_are_cut():
    # changepoints at 100 and 130: windows [100, 160] and [160, 190] (the second starts
    # where the first ends, rule "cut right window").
    assert changepoint_windows([100.0, 130.0]) == [(100.0, 160.0), (160.0, 190.0)]
    cps = at(100, 130)
    # detections at 100 and 130: both in the first window (r = 1); the second has none
    # (A_fn): S = 1 - 1 = 0, null -2, perfect 2 -> 100 (0 + 2)/4 = 50;
    # low FN: S = 1 - 2 = -1, null -4 -> 100 (-1 + 4)/6 = 50
    s, res = scores((T, cps, at(100, 130)))
    assert s == approx(50.0, 50.0, 50.0)
    assert (res.missed, res.false_positives) == (1, 0)
    # a detection at 160 is in both windows: last instant of the first (r = A_fp = -0.11),
    # first of the second (r = 1): S = 0.89 -> 100 (2.89)/4 = 72.25;
    # low FP: 0.78 -> 69.5; low FN: 0.89 -> 100 (4.89)/6 = 81.5
    s, res = scores((T, cps, at(160)))
    assert s == approx(72.25, 69.5, 81.5)
    assert (res.missed, res.false_positives) == (0, 0)


def test_file_without_changepoints_only_costs_fps():
    # file B has no changepoint and 2 detections: 2 FPs, no window.
    # standard: S = 1 - 0.22 = 0.78, null -1, perfect 1 -> 89
    s, res = scores((T, CP, at(100)), (T, np.zeros(200, bool), at(5, 6)))
    assert s[0] == pytest.approx(89.0)
    assert (res.false_positives, res.n_changepoints) == (2, 1)
    only, _ = scores((T, np.zeros(200, bool), at(5)))
    assert all(math.isnan(x) for x in only)


def test_window_reward_bounds():
    for p in PROFILES.values():
        assert window_reward(0.0, p) == pytest.approx(p.tp)
        assert window_reward(1.0, p) == pytest.approx(-p.fp)
        rewards = [window_reward(u, p) for u in np.linspace(0, 1, 101)]
        assert all(a >= b for a, b in zip(rewards, rewards[1:]))  # earlier is never worse


def test_match_changepoints_rejects_bad_input():
    with pytest.raises(ValueError):
        match_changepoints(T[::-1], CP, CP)  # decreasing times
    with pytest.raises(ValueError):
        match_changepoints(T, CP, CP[:-1])
    with pytest.raises(ValueError):
        changepoint_windows([5.0, 5.0])  # two changepoints at one instant


def test_raw_score_of_a_matched_file():
    f = FileChangepoints(positions=(0.0, 1.0), missed=1, false_positives=3, n_windows=3)
    # 1 + (-0.11) - 1 - 3 (0.11) = -0.44
    assert f.raw_score(PROFILES["standard"]) == pytest.approx(-0.44)


# --- data-free references -----------------------------------------------------

def test_flag_every_row():
    # every row of the file is a detection: t = 100 is the window's first (r = 1), the
    # others in [100, 160] are ignored, the 100 rows before and 39 after are FPs.
    # standard: S = 1 - 139 (0.11) = -14.29 -> 100 (-13.29)/2 = -664.5
    # low FP:   S = 1 - 139 (0.22) = -29.58 -> -1429
    # low FN:   S = -14.29 -> 100 (-12.29)/3 = -409.6667
    s, res = scores((T, CP, np.ones(200, bool)))
    assert s == approx(-664.5, -1429.0, -1229.0 / 3)
    assert (res.missed, res.false_positives) == (0, 139)
    # outliers: anomaly rows 100..159 (60): TP 60, FP 140, FN 0, TN 0
    # F1 = 60 / (60 + 140/2) = 0.461538, FAR 100 %, MAR 0 %
    m = outlier_metrics((T >= 100) & (T < 160), np.ones(200, bool))
    assert (m["f1"], m["far"], m["mar"]) == approx(60 / 130, 100.0, 0.0)


def test_evenly_spaced_alerts():
    # 4 alerts on 200 rows: rows floor((2k+1) 200/8) = 25, 75, 125, 175
    alerts = evenly_spaced(4, 200)
    assert np.flatnonzero(alerts).tolist() == [25, 75, 125, 175]
    # 125 is the window's first detection: u = 25/60, k = 416, x = -pi/2 + 416 pi/999
    # = -167 pi/1998 = -0.2625856, tanh(x)/tanh(pi/2) = -0.2567123/0.9171523 = -0.2799015
    # standard: r = -0.11 + 0.555 (1.2799015) = 0.6003453; 25, 75, 175 are FPs:
    #   S = 0.6003453 - 0.33 = 0.2703453 -> 100 (1.2703453)/2 = 63.517265
    # low FP: r = -0.22 + 0.61 (1.2799015) = 0.5607399; S = 0.5607399 - 0.66 -> 45.036995
    # low FN: S = 0.2703453 -> 100 (2.2703453)/3 = 75.67818
    s, res = scores((T, CP, alerts))
    assert s == pytest.approx((63.517265, 45.036995, 75.67818), abs=1e-4)
    assert (res.missed, res.false_positives) == (0, 3)
    assert np.flatnonzero(evenly_spaced(3, 10)).tolist() == [1, 5, 8]  # floor(10/6), floor(30/6), floor(50/6)
    assert not evenly_spaced(0, 10).any() and evenly_spaced(10, 10).all()
    with pytest.raises(ValueError):
        evenly_spaced(11, 10)

