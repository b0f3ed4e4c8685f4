"""From one event to a calibrated anomaly score: the scalar and per-channel math.

The design in brief; the results, the constants' provenance and every variant tried are in
docs/detection.md and docs/tuning-log.md.

Channels. Four *likelihood channels* each see one non-negative "surprise input" per event:

    0  the LSTM's prediction error (RMS over observed features, normalised units)
    1  how far the value is from its running mean:     RMS_d |v_d - mean_d| / sd_d
    2  how far it moved since the stream's last value: RMS_d |v_d - prev_d| / step_d
    3  how far it is from the usual value at this time of day (seasonal residual):
                                                       RMS_d |v_d - mean_d - bin mean_d| / bin sd_d

mean_d, sd_d are the stream's input scaler (half-life `scaler_halflife`); step_d is its mean
absolute step, same half-life, because a level shift inflates sd_d for thousands of events
and steps in sd units would hide what follows it. The seasonal profile is `seasonal_bins`
bins of the UTC day, each an EWMA mean and variance of the deviation v_d - mean_d, so a
drifting level carries the profile along.

Likelihood. Every channel keeps its inputs of the last `short_window` events and a
long-term exponentially weighted Gaussian (mu, var; half-life `long_halflife`) of their
mean m, and asks how improbable the current m is (the anomaly-likelihood idea of Numenta's
HTM detector):

    L_c = -log10 P(Z >= (m - mu) / sd),  Z ~ N(0, 1)      "how many nines" of surprise

Range novelty. A value more than `range_tolerance` x (hi - lo) outside the range [lo, hi]
of every value the stream has shown gets the surprise L_range = `range_novelty` * (1 + e),
e = its distance outside in units of hi - lo (Numenta's "spatial anomaly" rule: a new
record by a hair is not news; the grading lets a spike far outside the range outrank one
just past the tolerance).

Combination. The event's surprise is

    L = max( k * max( (L_0 + L_1 + L_2) / 3,  L_3,  error_weight * L_0 ),  L_range )

The LSTM error is averaged with the value channels and may also alert on its own at a
higher bar: it is the one channel that sees a change of rhythm.

Calibration. k = min(1, CALIB_C / q) >= 0.75 calibrates each stream to itself: q is a
running CALIB_P quantile of the stream's own channel surprise (the inner max, before k), so
a stream that is surprised all the time (Twitter counts) needs up to a third more to alert,
while a stream whose surprises are rare (q below CALIB_C) is unchanged.

Suppression (kernels_cpu.alert_step). After an alert the next `alert_cooldown` events score
0, and a penalty P rises by `alert_penalty` per alert and decays with half-life
`penalty_halflife` events, so one incident raises one alert while a second incident soon
after the first can still be reported:

    Le = max(L - P, 0),   score = Le / (Le + L_HALF)      in [0, 1), 0.5 at Le = 5

so the score keeps resolution near 1 (Le = 10 gives 0.667, 50 gives 0.909) instead of
saturating. Statistics used for an event's score are those from before that event.
"""

from __future__ import annotations

import math

from numba import njit

from .gates import FASTMATH

L_HALF = 5.0  # -log10 tail probability that maps to score 0.5
L_MAX = 1e12  # surprise beyond this scores as this (see to_score)
N_CHANNELS = 4  # likelihood channels: 0 LSTM error, 1 value, 2 step, 3 seasonal residual
DAY = 86400.0  # seconds; the seasonal profile is a profile of the day (in UTC)
# Seasonal bins: each bin's mean/variance is an EWMA over the visits of that bin with this
# half-life (in visits, i.e. days); a bin answers only after SEASONAL_WARM visits, and its
# sd is floored at SEASONAL_FLOOR x the stream's sd so a bin that happened to see nearly
# constant values does not call every later wiggle impossible. Global constants, not
# settings: they matter only in a stream's first days (provenance: docs/detection.md).
SEASONAL_HALFLIFE = 50.0
SEASONAL_WARM = 3.0
SEASONAL_FLOOR = 0.1
SEASONAL_MAX_VISITS = 1e6  # visit counts saturate (float32 bins count exactly up to 2^24)
# Self-calibration: each stream tracks the CALIB_P quantile q of its own channel surprise
# (the channel terms, not range novelty) with a stochastic-approximation step of CALIB_ETA
# (-log10 units; q += CALIB_ETA * (1[L > q] - (1 - CALIB_P)) every scored event, capped at
# CALIB_Q_MAX), and where q exceeds CALIB_C, the alert level, the channel terms are damped
# by CALIB_C / q. The cap bounds the damping to 25 %, because an incident raises q too and
# unbounded damping would hide the next incident (docs/tuning-log.md).
CALIB_P = 0.995
CALIB_C = L_HALF
CALIB_Q_MAX = CALIB_C / 0.75
CALIB_ETA = 0.2
# Every statistic sees a value limited to +-VALUE_LIMIT (the parsers reject larger ones:
# input.max_abs_value). Within it nothing can overflow: squared deviations stay below 4e36,
# under the 3.4e38 maximum of the float32 seasonal variances, and channel inputs below
# 1e29, whose squares float64 holds. The range distance is capped at OUTSIDE_LIMIT ranges:
# a range of 1e-300 would otherwise make it infinite.
VALUE_LIMIT = 1e18
OUTSIDE_LIMIT = 1e12
_LN10 = math.log(10.0)
_SQRT2 = math.sqrt(2.0)
_ASYMPTOTIC_Z = 30.0  # erfc underflows beyond this; use the asymptotic tail instead


@njit(fastmath=FASTMATH, cache=True)
def neg_log10_tail(z):
    """-log10 P(Z >= z) for a standard normal Z, accurate for large z."""
    if z < _ASYMPTOTIC_Z:
        return -math.log10(max(0.5 * math.erfc(z / _SQRT2), 1e-300))
    # Mills ratio: P(Z >= z) ~ phi(z)/z for large z.
    return (0.5 * z * z + math.log(z * math.sqrt(2.0 * math.pi))) / _LN10


@njit(fastmath=FASTMATH, cache=True)
def surprise(m, mu, var, n):
    """-log10 P(Z >= (m - mu)/sd) of a short-window mean m under the long-term Gaussian
    (mu, var) built from n earlier short-window means; 0 when m is NaN or n < 2."""
    if math.isnan(m) or n < 2.0:
        return 0.0
    sd = max(math.sqrt(max(var, 0.0)), 1e-3 * abs(mu) + 1e-12)
    return neg_log10_tail((m - mu) / sd)


@njit(fastmath=FASTMATH, cache=True)
def bounded(v):
    """A (non-NaN) value limited to +-VALUE_LIMIT."""
    return min(max(v, -VALUE_LIMIT), VALUE_LIMIT)


@njit(fastmath=FASTMATH, cache=True)
def to_score(L):
    """Surprise L (>= 0, in -log10 units) -> score in [0, 1). L is capped at L_MAX, where
    the score is 1 - 5e-12: beyond ~1e17 L / (L + L_HALF) would round to 1."""
    L = min(L, L_MAX)
    return L / (L + L_HALF)


@njit(fastmath=FASTMATH, cache=True)
def ewma_update(mean, var, x, alpha):
    """One step of an exponentially weighted mean and variance; returns (mean, var)."""
    d = x - mean
    mean = mean + alpha * d
    var = (1.0 - alpha) * (var + alpha * d * d)
    return mean, var


@njit(fastmath=FASTMATH, cache=True)
def window_mean(ring, x, p, filled):
    """Mean of the newest input x and the ring's earlier inputs: ring[k] for k < filled,
    k != p (slot p is the one x will overwrite), NaN entries skipped. NaN if x is NaN:
    a channel without an input this event has no say."""
    if math.isnan(x):
        return math.nan
    total = x
    n = 1
    for k in range(filled):
        if k != p and not math.isnan(ring[k]):
            total += ring[k]
            n += 1
    return total / n


@njit(fastmath=FASTMATH, cache=True)
def rms(sum_sq, n):
    """sqrt(sum_sq / n); NaN when n == 0 (no observed feature)."""
    if n == 0:
        return math.nan
    return math.sqrt(sum_sq / n)


@njit(fastmath=FASTMATH, cache=True)
def day_bin(t, n_bins):
    """Bin of the day (UTC) of epoch-seconds timestamp t; -1 when t is NaN or n_bins == 0."""
    if n_bins == 0 or math.isnan(t):
        return -1
    r = t - math.floor(t / DAY) * DAY
    return min(int(r / DAY * n_bins), n_bins - 1)
