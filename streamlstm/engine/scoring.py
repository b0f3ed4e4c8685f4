"""From one event to a calibrated anomaly score: the scalar and per-channel math.

The design in brief; the results, the constants' provenance and every variant tried are in
docs/detection.md and docs/tuning-log.md.

Channels. Five *likelihood channels* (numbered in layout.py) each see one non-negative
"surprise input" per event:

    0  the LSTM's prediction error (RMS over observed features, normalised units)
    1  how far the value is from its running mean:     RMS_d |v_d - mean_d| / sd_d
    2  how far it moved since the stream's last value: RMS_d |v_d - prev_d| / step_d
    3  how far it is from the usual value at this time of day (seasonal residual):
                                                       RMS_d |v_d - mean_d - bin mean_d| / bin sd_d
    4  how far it is from what its own cycle expects:  sqrt(RMS_d |r_d| / sd(r_d))

mean_d, sd_d are the stream's input scaler (half-life `scaler_halflife`); step_d is its mean
absolute step, same half-life (both floored at the rounding of a value on the feature's
grid: ROUNDING_SD, ROUNDING_STEP), because a level shift inflates sd_d for thousands of events
and steps in sd units would hide what follows it. The seasonal profile is `seasonal_bins`
bins of the UTC day, each an EWMA mean and variance of the deviation v_d - mean_d, so a
drifting level carries the profile along; it answers once the stream is a day old. A bin
learns no value that the feature's own cycle (below) keeps out as an incident: learnt, an
incident's values widen its hour's variance for weeks and hide the next one.

The stream's own cycle needs no timestamps: a cycle of P events, P <= `cycle_max`, found
from each feature's mean squared difference D(tau) of values tau events apart, as YIN
finds a pitch (de Cheveigne & Kawahara 2002): in the first run of lags whose D(tau),
normalised by the mean of D(1..tau), is below CYCLE_FIT, the lag where it is least. The residual
compares a value with the one a period earlier, less the recent mean of those differences,
so a level shift is a step rather than a period of large residuals:

    r_t = (dev_t - dev_{t-P}) - mean_{short window}(dev - dev_{-P}),  dev = v - mean

After a value a period ago missing or kept out, that mean, unlearnt there, counts as 0 at
the next difference judged unless it is a shift that the difference shows again
(cycle_level).

Where a feature has both a warm day bin and a cycle shorter than a day, the one whose
residual's sd is smaller judges it (channel 3 or 4, not both); a cycle of a day or more is
left to the day's profile, which learns every day's hour alike where a lag of a day
compares a Monday with a Sunday. Channel 4's input is the square root of the RMS: the mean
of ten half-normal |z| passes its long-term Gaussian's 1e-5 tail about twelve times as
often as that says (a mean of half-normals is skewed), the mean of ten sqrt|z| about as
often (simulated, docs/tuning-log.md). The other channels, tuned on NAB as they are, keep
|z|.

A value whose residual, or whose difference from a period ago, exceeds CYCLE_OUTLIER of
the residual's sd, or that channel 4 finds surprising (L_4 at the alert level, L_HALF), or,
in a feature that misses values, that its cycle could not judge (the value a period ago
missing or kept out) on an event surprising to the alerts or in an incident's first
period, is kept as no value, so an incident is not judged again one period later (its
echo) and teaches D nothing then.

The cycle's clock counts events, with a value or not; with times it also counts the events
a jump in time missed (rows dropped: missed_events), so that it stays in phase, unless long
intervals are a habit of the stream (read irregularly).

Likelihood. Every channel keeps its inputs of the last `short_window` events and a
long-term exponentially weighted Gaussian (mu, var; half-life `long_halflife`) of their
mean m, and asks how improbable the current m is (the anomaly-likelihood idea of Numenta's
HTM detector):

    L_c = -log10 P(Z >= (m - mu) / sd),  Z ~ N(0, 1)      "how many nines" of surprise

Range novelty. A value more than `range_tolerance` x (hi - lo) outside the range [lo, hi]
of every value the stream has shown gets the surprise L_range = `range_novelty` * (1 + e),
e = its distance outside in units of hi - lo (Numenta's "spatial anomaly" rule: a new
record by a hair is not news; the grading lets a spike far outside the range outrank one
just past the tolerance). Where m features could set a record, the tolerance of a feature
with n earlier values grows by ln(m) / (2 ln n), so that m of them set false records no
more often than one: under exponential tails (scale beta) the range of n values is about
2 beta ln n, so a record by e ranges has probability about n^-(1 + 2e), and m n^-(1 + 2e')
= n^-(1 + 2e) gives e' = e + ln(m) / (2 ln n). (Eight features at n = 1,000: 2 % -> 17 %.)
One feature keeps `range_tolerance`. A judged feature's record must also lie more than
`range_steps` of its typical steps beyond the range: exchangeable values set a record at
their n-th with probability 1 / n, most just past the last by less than the noise moves
in one step, so without it white noise alerts at most of its records (3.6 in 6,000
events; 0.8 at the default half step, docs/detection.md). A record that the feature's
own cycle foretold (its residual less surprising alone than the alert level, L_HALF; also
where the day's profile judges the feature) is no novelty: a cycle that grows sets
records at its peaks, each what the value a period earlier said; a jump past the range
is still one. Nor is a record its own run of records foretold (trend_foretold), also
where the cycle's residual calls it news (a cycle that grows faster than its residual's
sd is learnt sets records past that sd, each one of a run): exchangeable values set a
new high at their i-th with probability 1/i, so where a feature's new highs (or lows)
over its last one to two blocks of values are more than a Poisson count of that mean
gives at the alert level, it trends (or walks), and a record by a step no more
surprising than that level is what the run said; a jump is still news, and so is a
stationary stream's first record.

One event. A window's mean dilutes a single extreme event tenfold: one spike among ten
ordinary values moved no channel, and alerted only where it set a record. The point test
asks how improbable the event alone is, by what each judged feature's history says of its
innovation (the regime's news below: |z - rho z_prev| / sqrt(1 - rho^2) under its
baseline): its own frequencies of exceeding 1 .. TAIL_LEVELS (calibrated_tail) up to the
highest level whose frequency rests on TAIL_TRUST exceedances or more, and beyond it a
Weibull tail through that level's frequency and the one below it (-ln P growing as u^s,
the tail falling on as the feature's own tail fell and bent: s = 1 an exponential tail,
2 a Gaussian's, the most it takes; a heavier tail bends less). Where even the top level
is so trusted, the feature goes beyond every level as a matter of course (bursty counts):
no claim beyond its frequency. Where not even the first is, the calibrated tail, floored
at the rule of succession. A feature with an own cycle is also asked how improbable its residual against the cycle is,
by that residual's own tail frequencies (learnt when the regime's are), once they rest on
a full period of residuals (every phase of the cycle seen): on a cycle of a few
dozen events the innovation is the cycle's own and hides a spike, while the residual, a
difference of two values, is less sensitive to a jump in white noise, so each asks what
it sees best. In a stream of 2 to layout.CORR_MAX_D features each judged feature is also asked
how improbable its innovation is given the other features' at the same event
(news_given_others, by its own tail frequencies): a feature that leaves its relation to
the others within its range is news to no other test. The smallest p over the m tests, times m (Bonferroni), gives
L_point = -log10(m p); a feature whose last observation is across a gap (kernels_cpu.mark_gaps)
has no innovation and no residual. A level resting on one exceedance
(one earlier spike) would flatten the tail and hide every later spike; two is the least
that shows a tail's slope (chosen on NAB's development half against one and five,
docs/tuning-log.md). The alerts ask it only while the stream is normal (after a level
shift every event is far from a baseline that has not learnt it: an alert every
cooldown); the score always.

A lone alert (an event surprising to the alerts, not the third or later of a run of
such events: in a persistent feature a spike surprises on the way out and on the step
back) teaches the tails at
lone_weight of their rate, where an incident's events teach them nothing: a point anomaly
never makes the stream abnormal, and learnt in full, two spikes beyond the top level
trusted it and every later spike, of any size, scored that level's frequency. At that
weight, point anomalies as frequent as the calibration's tail (1 - CALIB_P of the events)
come to rest on TAIL_TRUST exceedances in the scaler's memory and become the stream's
habit; rarer ones stay news. From its third event on, a run is the stream's own burst,
learnt in full.

Combination. The event's surprise is

    L = max( k * max( (L_0 + L_1 + L_2) / 3,  L_3,  L_4,  error_weight * L_0,  L_point ),  L_range )

(L_point there only while the stream is normal), and the score's surprise max(L, k L_point).

The LSTM error is averaged with the value channels and may also alert on its own at a
higher bar: with the cycles, it is what sees a change of rhythm.

Context. In a stream of several features, one that is constant or two-valued (a command
flag) is context: not in the channels, the regime or the model (RES_SPAN below).

Attribution. `feature_evidence`: what each feature says on its own, in -log10 units, from
which the records name the features that drove an event.

Calibration. k = min(1, CALIB_C / q) >= 0.75 calibrates each stream to itself: q is a
running CALIB_P quantile of the stream's own channel surprise (the inner max, before k), so
a stream that is surprised all the time (Twitter counts) needs up to a third more to alert,
while a stream whose surprises are rare (q below CALIB_C) is unchanged.

Suppression (`alert_step` and `alert_learn` below). After an alert the next
`alert_cooldown` events score 0, and a penalty P rises by `alert_penalty` per alert and
decays with half-life `penalty_halflife` events, so one incident raises one alert while a
second incident soon after the first can still be reported:

    Le = max(L - P, 0),   score = Le / (Le + L_HALF)      in [0, 1), 0.5 at Le = 5

so the score keeps resolution near 1 (Le = 10 gives 0.667, 50 gives 0.909) instead of
saturating. Statistics used for an event's score are those from before that event.

Judging an event changes nothing; what it changes once the event is learnt (the alert
bookkeeping, the regime's step) is a separate function, so that an event scored by
`score_one` is learnt by `learn_one` without being judged again.
"""

from __future__ import annotations

import math

from numba import njit

from .compact import (BF16, MAX_VISITS, UF16, bin_mean, bin_var, bin_visits, dithered_bits, narrow_bits, narrow_value,
                      store_bin)
from .gates import FASTMATH
from .jit import inlined_kernel, kernel
from .layout import (CYC_DEV, CYC_LAG, CYC_PAIRS, N_MODES, REC_CUR, REC_HIGH, REC_LOW, REC_PREV, TAIL_LEVELS,
                     TAILS_CYCLE, TAILS_LEVEL, TAILS_NEWS, C_QUIET, C_SEEN, C_TICKS, CH_CYCLE, CH_ERROR, CH_SEASONAL,
                     CH_STEP, CH_VALUE, CORR_COV, CORR_PREC, FIND_BLAME, FIND_CORR_E, FIND_CYCLE, FIND_GAP,
                     FIND_IMPUTED, FIND_INPUT, FIND_NEWS, FIND_NOVELTY, FIND_P, FIND_ROWS, FIND_SEASONAL, FIND_UNKNOWN)

L_HALF = 5.0  # -log10 tail probability that maps to score 0.5
L_MAX = 1e12  # surprise beyond this scores as this (see to_score)
DAY = 86400.0  # seconds; the seasonal profile is a profile of the day (in UTC)
# Seasonal bins: each bin's mean/variance is an EWMA over the visits (events) of that bin
# with this half-life; a bin answers only after SEASONAL_WARM visits, once the stream is a
# day old (seasonal_bin), and its sd is floored at SEASONAL_FLOOR x the stream's sd so a
# bin that happened to see nearly constant values does not call every later wiggle
# impossible. Global constants, not settings: they matter only in a stream's first days
# (provenance: docs/detection.md).
SEASONAL_HALFLIFE = 50.0
SEASONAL_WARM = 3.0
SEASONAL_FLOOR = 0.1
# A bin's half-life is also at least SEASONAL_DAYS days of its events at the stream's mean
# spacing (bin_rate): at five-minute readings an hour's bin sees 12 events a day and 50 of
# them span four days, but at 10 s it sees 360, and 50 were the last eight minutes of its
# latest visit, a mean and a spread of one moment that every next hour's start was far
# from (an alert an hour; docs/detection.md).
SEASONAL_DAYS = 4.0
# The stream's own cycle (cycle_residual): a period is found where the normalised mean
# squared difference falls below CYCLE_FIT (YIN's own threshold; 0.1 against 0.15 and
# 0.25 on NAB's development half, the synthetic suite and bench/beats_quality.py alike); a
# value more than CYCLE_OUTLIER sd from its cycle is no reference, and a squared
# difference is learnt at most CYCLE_OUTLIER^2 times its mean, so an incident moves no
# estimate by much (docs/tuning-log.md).
CYCLE_MAX_AUTO = 256
CYCLE_FIT = 0.1
CYCLE_OUTLIER = 3.0
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
# under the 3.4e38 maximum of the float32 and bfloat16 variances, and channel inputs below
# 1e29, whose squares float64 holds. The range distance is capped at OUTSIDE_LIMIT ranges:
# a range of 1e-300 would otherwise make it infinite.
VALUE_LIMIT = 1e18
OUTSIDE_LIMIT = 1e12
# A feature's sd and typical step are floored at LEVEL_PRECISION times its level (plus
# 1e-9), so that a constant series does not divide by zero: about eight float32 ulps of the
# level, below which a variation is the precision of single-precision data rather than a
# signal. A larger floor shrinks every z of a feature that varies little against its level
# (a pressure in Pa, a temperature in K), which then hides it from the regime.
LEVEL_PRECISION = 1e-6
# A feature known only on a grid (its resolution, the smallest change it has shown) cannot
# show a spread below that of a value rounded to the grid, res / sqrt(12) (Sheppard's
# correction), nor a typical step below the mean |difference| of two such values, res / 3:
# the floors of its sd, its day bins' sd and its step unit. A metric that sits on one value
# for long stretches (an error count at 0) had a variance its runs shrank towards
# nothing, and each blip of one step was tens of sd (docs/detection.md).
ROUNDING_SD = 1.0 / math.sqrt(12.0)
ROUNDING_STEP = 1.0 / 3.0
# Context features. In a stream of several features, one that has never varied, or has
# shown only two values (a 0/1 command flag, a valve's state, a setpoint moved once), is
# context, not a measurement: it is neither judged by its distances (z, step, seasonal
# residual, forecast error, the regime's evidence) nor an input or a target of the model,
# because a constant has no scale (its first change would be 1e9 sd away by the variance
# floor) and a state's change is an operation, not an incident by itself; only range
# novelty still judges it. As an input, a flag's toggles moved the model's forecasts of the
# other features and hid their frequency changes. A feature is a measurement once its
# values span more than RES_SPAN steps of its resolution, the smallest change it has shown
# (three values or more on its grid). A stream with no measurement (a univariate stream of
# 0/1 spikes) is judged and modelled on all its features, as before. A rule with a reason,
# not a fitted constant (docs/detection.md).
RES_SPAN = 1.5
# An interval between events (missed_events) or between a feature's observations (holds) of
# LONG_INTERVAL of its mean or more is long: halfway between one mean interval and two, so
# that one event missing from a regular rhythm is a gap. A rule with a reason, not fitted.
LONG_INTERVAL = 1.5
# A feature misses values as a habit where its mean interval between observations is
# MISSING_INTERVAL or more, one value in 20: a stray missing value leaves the interval a
# hair over 1 for good (1.0001 after one in the scaler's memory). Reasoned, not fitted.
MISSING_INTERVAL = 1.05
# The regime (an online two-state hidden Markov model over normal/abnormal, filtered
# forwards; see regime_step). Under the normal state an event's evidence, a p-value, is
# uniform; under the abnormal state it follows Beta(REGIME_ALTERNATIVE, 1), whose median
# is 0.25: an abnormal stream typically shows 1-in-4 events, not only rare ones, which is
# what a lasting incident looks like. The regime's baseline learns at the scaler's rate, or
# over a day where the stream brings more than the scaler's half-life of events a day
# (baseline_rate). While abnormal, it learns at the
# `regime_learn_weight` setting's fraction of its rate (0.1: its half-life 10x), and so does its calibration once the stream has been abnormal for the
# scaler's half-life more than normal (its tail frequencies and persistence, learnt only
# while normal before), so an incident does not become the normal within its own
# duration, while a lasting change does, eventually, whether of the level or of the
# noise. Both chosen on the SKAB development half (docs/tuning-log.md).
# An event's evidence is what it adds to what the stream's recent past already said: a
# level counts once per integrated autocorrelation time of its feature, and a jump counts
# by its innovation under an AR(1) whose coefficient is capped at RHO_MAX, so that an
# innovation is never amplified more than sevenfold (1 / sqrt(1 - RHO_MAX^2)) by a
# coefficient estimated near 1; see regime_evidence and docs/detection.md.
# PERSISTENCE_HORIZON (events) is the span of the running mean that measures persistence:
# cycles much shorter than it average out (count as independent), slower ones do not.
# A lasting shift too small for any one event to stand out (a valve's flow 2 sd down for
# 300 events) shows in the recent mean of z, over the channels' short window (the same
# time scale), against that mean's own spread while normal (regime_p_values).
# The p-values are calibrated to each feature's own history: a daily cycle or a ramp sits
# more than 1 sd from its mean far more often than a Gaussian does, and its long runs of
# such values would otherwise read as an incident. While the stream is normal (and, at a
# tenth of the rate, while a lasting change holds it abnormal: update_baseline), each
# feature learns how often its |z| exceeds 1, 2, ..., TAIL_LEVELS (layout.py), as the
# scaler learns (exact frequencies, then its half-life), after TAIL_MIN_COUNT observations
# learnt while normal (before them the baseline's own variance is too uncertain: |z| is
# Student-t), and the regime judges a feature only from then on.
REGIME_ALTERNATIVE = 0.5
RHO_MAX = 0.99
PERSISTENCE_HORIZON = 400.0
TAIL_MIN_COUNT = 20.0
_REGIME_CLAMP = 50.0  # log-odds bound: a long incident can still end within ~20 events
# A feature's second mode (a pump's flow while it rests) is one of its normal modes once the
# feature has dwelt in it and left it this many times: an incident happens once, a duty
# cycle recurs (nearest_mode).
MODE_VISITS = 2.0
TAIL_TRUST = 2.0  # exceedances a tail level's frequency must rest on to shape the point test's tail
# The point test's tail beyond its top trusted level falls as -ln P ~ u^s, with the shape s
# read off the two top levels, at most a Gaussian's: no tail is taken to fall faster.
TAIL_SHAPE_MAX = 2.0
_LN10 = math.log(10.0)
UINT16_MAX = 65535  # a record count saturates here (layout `records`)
_SQRT2 = math.sqrt(2.0)
_ASYMPTOTIC_Z = 30.0  # erfc underflows beyond this; use the asymptotic tail instead
_LOG10_2 = math.log10(2.0)
_TAIL_Z_MAX = 1e150  # an attribution's |z| limit: its tail's square stays finite


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
    """(mean, count) of the newest input x and the ring's earlier inputs (bfloat16 bit
    patterns): ring[k] for k < filled, k != p (slot p is the one x will overwrite), NaN
    entries skipped. (NaN, 0) if x is NaN: a channel without an input this event has no say."""
    if math.isnan(x):
        return math.nan, 0
    total = x
    n = 1
    for k in range(filled):
        v = narrow_value(ring[k], BF16)
        if k != p and not math.isnan(v):
            total += v
            n += 1
    return total / n, n


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


# ------------------------------------------------ one event of one stream (kernel functions)
# `col` is the statistics rows' layout (layout.StatsLayout, hy.stats in the kernels);
# `stats` and `stats32` are a stream's float64 and float32 rows, `bins` its seasonal
# profile (state.StreamArrays).


@kernel
def scaler_std(var, mean, res):
    """Standard deviation from variance `var`, floored at the rounding error of a value on a
    grid of resolution `res` (ROUNDING_SD; 0: none seen) and at LEVEL_PRECISION of the
    level `mean`, so that constant series do not divide by zero."""
    return max(math.sqrt(max(var, 0.0)), ROUNDING_SD * res, LEVEL_PRECISION * abs(mean) + 1e-9)


@kernel
def measured(d, stats, col):
    """Whether feature d is a measurement: its values span more than RES_SPAN times its
    resolution (the smallest non-zero change it has shown), so more than two values."""
    return stats[col.hi + d] - stats[col.lo + d] > RES_SPAN * stats[col.res + d]


@kernel
def _first_measurement(d, stats, hy):
    """Whether feature d, a measurement, is the stream's only one."""
    for e in range(hy.D):
        if e != d and measured(e, stats, hy.stats):
            return False
    return True


@kernel
def judged(d, stats, hy):
    """Whether feature d's distances are judged: it is a measurement, or the stream has
    none (then every feature is; see "Context features" above)."""
    if measured(d, stats, hy.stats):
        return True
    for e in range(hy.D):
        if measured(e, stats, hy.stats):
            return False
    return True


@kernel
def feature_inputs(v, d, b, stats, stats32, bins, cycle, tick, spacing, hy):
    """The value channels' inputs of feature d's value v (not NaN, within +-VALUE_LIMIT),
    under the statistics from before it, at day bin b (-1: none), as the stream's event
    `tick` (layout.C_TICKS; its `cycle` (D, N_CYC, Lc)) that comes `spacing` seconds after
    the previous one on average (NaN: unknown): (z, step, seasonal residual, own cycle's residual,
    distance outside the range [lo, hi] of all its earlier values in units of hi - lo
    (<= 0 inside, and 0 for a judged feature's value within `range_steps` typical steps of
    the range), the own cycle's residual whichever judges (for range novelty)); z, step
    and the residuals NaN when the feature is not `judged`. The residual against the day's
    profile is NaN until its bin is warm, the own cycle's without one or its reference;
    where both could judge, one does (see the module docstring) and the other is NaN."""
    col = hy.stats
    outside = 0.0
    lo, hi = stats[col.lo + d], stats[col.hi + d]
    if hi > lo:
        outside = max((v - hi) / (hi - lo), (lo - v) / (hi - lo))
    if not judged(d, stats, hy):
        return math.nan, math.nan, math.nan, math.nan, outside, math.nan
    sd = scaler_std(stats32[col.var + d], stats[col.mean + d], stats[col.res + d])
    z = (v - stats[col.mean + d]) / sd
    # Steps in units of the typical step, not of the value's sd: a level shift inflates
    # the sd for thousands of events, and hid the steps that follow it in sd units.
    # (Floored like the sd: at the rounding, and so that a constant series does not divide by zero.)
    step_unit = max(stats32[col.step + d], ROUNDING_STEP * stats[col.res + d],
                    LEVEL_PRECISION * abs(stats[col.mean + d]) + 1e-9)
    step = (v - stats[col.last + d]) / step_unit
    if outside * (hi - lo) <= hy.range_steps * step_unit:
        outside = min(outside, 0.0)  # within the feature's own reach of its range (`range_steps`)
    seas = math.nan
    unit = math.inf
    if b >= 0 and bin_visits(bins[d, b]) >= SEASONAL_WARM:
        # The profile holds deviations from the running mean (see update_value_stats).
        unit = max(math.sqrt(max(bin_var(bins[d, b]), 0.0)), SEASONAL_FLOOR * sd, ROUNDING_SD * stats[col.res + d])
        seas = (v - stats[col.mean + d] - bin_mean(bins[d, b])) / unit
    own = math.nan
    cycle_r = math.nan
    period = stats32[col.cycle_period + d] if hy.cycle_max > 0 else 0.0
    if period > 0.0:
        cycle_r = cycle_residual(v - stats[col.mean + d], d, cycle, tick, stats32, sd, hy)
    if period > 0.0 and cycle_unit(d, stats32, sd, hy) < unit and not period * spacing >= DAY:
        # The own cycle judges it (see the module docstring), also where it cannot this event.
        seas = math.nan
        own = cycle_r
    return z, step, seas, own, outside, cycle_r


@kernel
def cycle_unit(d, stats32, sd, hy):
    """The sd of feature d's residual against its own cycle, floored at SEASONAL_FLOOR x
    the feature's sd `sd`, as the day's bins are."""
    return max(math.sqrt(max(stats32[hy.stats.cycle_var + d], 0.0)), SEASONAL_FLOOR * sd)


@kernel
def cycle_residual(dev, d, cycle, tick, stats32, sd, hy):
    """Feature d's residual against its own cycle at the stream's event `tick`, in its sd
    (cycle_unit), for its deviation `dev` from the running mean (see the module
    docstring); NaN without a period or when the value a period ago is missing or was an
    outlier from its cycle."""
    col = hy.stats
    P = int(stats32[col.cycle_period + d])
    if P == 0:
        return math.nan
    step = dev - cycle[d, CYC_DEV, (tick - P) % hy.cycle_max]
    unit = cycle_unit(d, stats32, sd, hy)
    return (step - cycle_level(step, d, stats32, unit, hy)) / unit  # NaN as step is


@kernel
def cycle_level(step, d, stats32, unit, hy):
    """The level that feature d's residual against its own cycle (of sd `unit`) takes out
    of its `step` from the value a period ago: its running mean of such steps
    (learn_cycle). Where the feature's last observation had no value a period before it
    (missing or kept out; stats32's `cycle_unlearnt`), the level went unlearnt there and
    may be stale: 0, unless it is itself beyond the residual's reach (CYCLE_OUTLIER units:
    a shift) and this step is an outlier from 0 within reach of it (the shift seen again).
    So a stray value kept out within a period after a level shift, once the level has
    caught up with it, leaves the level as it was (reset, it brought the shift back as a
    residual of its size, a false alert), and a period after the shift, where the
    references are its kept-out first values and past them the steps hold no shift, the
    level goes (held, it would be a residual of minus the shift). Held wherever it fitted
    the step better, it moved the beats of varying length, whose level is a misaligned
    pulse's steps, more (docs/tuning-log.md)."""
    col = hy.stats
    level = stats32[col.cycle_level + d]
    reach = CYCLE_OUTLIER * unit
    if stats32[col.cycle_unlearnt + d] > 0.0 and not (abs(level) > reach and abs(step) > reach
                                                    and abs(step - level) <= reach):
        return 0.0
    return level


@kernel
def cycle_outlier(z, step, unit):
    """Whether a value is an outlier from its own cycle: CYCLE_OUTLIER units (its residual's
    sd) from the cycle's forecast (its residual z) or from the value a period ago (its step)."""
    return max(abs(z), abs(step) / unit) > CYCLE_OUTLIER


@kernel
def shift_seen_again(step, z, level, unit, d, cycle, tick, hy):
    """Whether feature d's `step` from the value a period ago at the stream's event `tick`,
    of residual z (not NaN, in units of `unit`) against its own cycle, which took out
    `level` (cycle_level), is a level shift seen again: an outlier after an event kept out
    of the ring (an outlier, surprising to the cycle's channel, or missing), its step the
    way the level leans. For up to a period after a shift every residual is taken against
    a value from before it, until the level has caught up: not the residual's spread."""
    return (cycle_outlier(z, step, unit) and step * level > 0.0
            and math.isnan(cycle[d, CYC_DEV, (tick - 1) % hy.cycle_max]))


@kernel
def learn_cycle(dev, d, cycle, tails, tick, surprising, flagged, abnormal, tail_weight, stats32, sd, hy):
    """Fold feature d's deviation `dev` from the running mean (NaN: not observed) at the
    stream's event `tick` into its own cycle (cycle (D, N_CYC, Lc)): the residual's variance
    (exact from the period's finding while the stream is not `abnormal`, else and then at
    the scaler's rate) and level against the period, its count and tail frequencies (tails
    (D, T, TAIL_LEVELS); _learn_cycle_tail, with whether the stream is `abnormal` and the
    `tail_weight` of the event, none for a shift seen again: shift_seen_again), the mean
    squared difference at every lag, the ring (`dev`, or NaN for an outlier from its cycle,
    an event `surprising` to the cycle's channel, or, in a feature that misses values (its
    mean interval MISSING_INTERVAL or more), a value its cycle could not judge on an event
    `flagged` as surprising to the alerts or while the stream is `abnormal` with its
    abnormal events less its normal ones, stats32's `abnormal_run`, under a period), then
    the period (find_period).
    Returns whether the feature has a period and the value was kept out of the ring."""
    Lc = hy.cycle_max
    if Lc == 0:
        return False
    col = hy.stats
    p = tick % Lc
    has_period = stats32[col.cycle_period + d] > 0.0
    z = cycle_residual(dev, d, cycle, tick, stats32, sd, hy)
    outlier = False
    if not math.isnan(z):
        unit = cycle_unit(d, stats32, sd, hy)
        r = z * unit
        # An exact mean from the period's finding, as the other statistics learn, where at the
        # scaler's rate the first guess (the lag's mean squared difference, which still holds
        # what the level takes out) lasted; it counts as a period of residuals. Not through an
        # incident, whose residuals would set the unit that judges them (the count stands).
        prior = max(TAIL_MIN_COUNT, stats32[col.cycle_period + d])
        exact = 1.0 / (stats32[col.cycle_count + d] + prior + 1.0)
        rate = hy.scaler_alpha if abnormal else max(exact, hy.scaler_alpha)
        stats32[col.cycle_var + d] += rate * (min(r * r, (CYCLE_OUTLIER * unit) ** 2) - stats32[col.cycle_var + d])
        step = dev - cycle[d, CYC_DEV, (tick - int(stats32[col.cycle_period + d])) % Lc]
        level = cycle_level(step, d, stats32, unit, hy)
        again = shift_seen_again(step, z, level, unit, d, cycle, tick, hy)
        stats32[col.cycle_level + d] = level + (step - level) / hy.short_window
        stats32[col.cycle_unlearnt + d] = 0.0
        # Far from its cycle, or from the value a period ago (the level follows a stall
        # or a shift within the short window, and the echo would come a period later).
        outlier = cycle_outlier(z, step, unit)
        _learn_cycle_tail(tails, d, abs(z), tick, abnormal, 0.0 if again else tail_weight, stats32, hy)
    elif has_period and not math.isnan(dev):
        stats32[col.cycle_unlearnt + d] = 1.0  # no value a period ago: the level is held, and may be stale
    if not math.isnan(dev):
        # Lags 1..p reach back to ring slots p - 1..0, the longer ones to slots Lc - 1 down.
        m = min(tick, Lc)
        _learn_lags(cycle[d], dev, p, 1, min(p, m) + 1, sd, hy.scaler_alpha)
        _learn_lags(cycle[d], dev, p + Lc, p + 1, m + 1, sd, hy.scaler_alpha)
    # A spike where the value a period earlier was not read (or kept out) is no outlier to
    # its cycle, and came back a period later as an alert; so did a noise burst's values
    # after its first alert, while the stream was abnormal. Only in a feature that misses
    # values (applied to every feature, it cost the beats two of 60: docs/tuning-log.md);
    # while abnormal, only until the abnormal events less the normal ones reach a period
    # (each value kept out leaves the next period's unjudged: through a long incident the
    # cycle was left no reference), a count capped at new_normal.
    unjudged = math.isnan(z) and stats32[col.interval + d] >= MISSING_INTERVAL
    early = abnormal and stats32[col.abnormal_run] < min(stats32[col.cycle_period + d], hy.new_normal)
    kept_out = outlier or surprising or ((flagged or early) and has_period and unjudged)
    cycle[d, CYC_DEV, p] = math.nan if kept_out else dev
    find_period(d, cycle, tick + 1, stats32, hy)
    return has_period and kept_out


@kernel
def _learn_cycle_tail(tails, d, u, tick, abnormal, tail_weight, stats32, hy):
    """Count feature d's residual u (in its sd) against its own cycle at the stream's event
    `tick` while the stream is not `abnormal`, and past TAIL_MIN_COUNT of them learn its
    tail frequencies (tails' row TAILS_CYCLE) at the scaler's rate, as the cycle's other
    statistics, exact before it, times `tail_weight` (learn_statistics), dithered along the
    stream's events (the count stands while abnormal)."""
    col = hy.stats
    if not abnormal:
        stats32[col.cycle_count + d] += 1.0
    m = stats32[col.cycle_count + d]
    if m > TAIL_MIN_COUNT and tail_weight > 0.0:
        _learn_tail(tails[d, TAILS_CYCLE], u, max(1.0 / (m - TAIL_MIN_COUNT), hy.scaler_alpha) * tail_weight, tick)


@kernel
def _learn_lags(cyc, dev, base, lo, hi, sd, alpha):
    """Fold a feature's deviation `dev` into its mean squared differences at lags lo..hi - 1
    (cyc (N_CYC, Lc): one feature's `cycle`), whose values sit in ring slots base - lag,
    and their counts of pairs (a value missing there makes none): an exact mean over the
    pairs until its rate falls to `alpha`, each squared difference at most CYCLE_OUTLIER^2
    times the mean (floored at SEASONAL_FLOOR x the feature's sd `sd`) once TAIL_MIN_COUNT
    pairs are learnt."""
    floor = (SEASONAL_FLOOR * sd) ** 2
    for tau in range(lo, hi):
        ref = cyc[CYC_DEV, base - tau]
        if math.isnan(ref):
            continue
        lag = cyc[CYC_LAG, tau - 1]
        n = cyc[CYC_PAIRS, tau - 1] + 1.0  # this one included
        cap = CYCLE_OUTLIER * CYCLE_OUTLIER * max(lag, floor) if n > TAIL_MIN_COUNT else math.inf
        cyc[CYC_LAG, tau - 1] = lag + (alpha if n * alpha >= 1.0 else 1.0 / n) * (min((dev - ref) ** 2, cap) - lag)
        cyc[CYC_PAIRS, tau - 1] = n


@kernel
def find_period(d, cycle, n, stats32, hy):
    """Feature d's period from its mean squared differences by lag after n events (lags
    up to n / 2, so a period has been seen twice): in the first run of lags whose
    difference normalised by the mean over the lags up to it is below CYCLE_FIT, the lag
    where it is least; 0 (none) before the warm-up ends or without one. Only lags of at
    least TAIL_MIN_COUNT pairs count, there and in the mean: a feature given one event in
    D (interleaved sensors) has no pair at most lags, and the mean of none, or of a pair
    or two, is no fit. (The first lag counted has a fit of 1, so a run starts at the
    second.) A new period starts its residual's variance at that lag's mean squared
    difference and its level at 0."""
    col = hy.stats
    period = 0
    if n >= hy.warmup:
        total = 0.0
        lags = 0
        best = math.inf
        for tau in range(1, min(n // 2, hy.cycle_max) + 1):
            if cycle[d, CYC_PAIRS, tau - 1] < TAIL_MIN_COUNT:
                continue
            lag = cycle[d, CYC_LAG, tau - 1]
            total += lag
            lags += 1
            if lag * lags < CYCLE_FIT * total:  # fit below CYCLE_FIT, with no division outside the run
                fit = lag * lags / total
                if fit < best:
                    period = tau
                    best = fit
            elif period > 0:
                break
    if period != int(stats32[col.cycle_period + d]):
        stats32[col.cycle_period + d] = period
        stats32[col.cycle_var + d] = cycle[d, CYC_LAG, period - 1] if period > 0 else 0.0
        stats32[col.cycle_level + d] = 0.0
        stats32[col.cycle_count + d] = 0.0  # its residual's tail frequencies start again


@kernel
def missed_events(t, stats, stats32, hy):
    """How many events the stream's event at time t follows unseen (rows dropped): with an
    own cycle and times, the time since its last timed event in its mean spacings, less one,
    rounded (none below LONG_INTERVAL spacings), at most the cycle's ring; none where intervals that
    long are a habit of the stream, as frequent as TAIL_TRUST in the scaler's memory (the
    point test trusts a tail level on as many): a stream read irregularly has long
    intervals all the time, and they are how it is read, not losses; none without an own
    cycle."""
    col = hy.stats
    if hy.cycle_max == 0 or stats32[col.day_old] == 0.0 or stats32[col.spacing] <= 0.0:
        return 0
    gap = (t - stats[col.last_time]) / stats32[col.spacing]  # NaN without a time, or the last one unknown
    if not gap >= LONG_INTERVAL or stats32[col.long_rate] >= TAIL_TRUST * hy.scaler_alpha:
        return 0
    return int(min(gap - 0.5, hy.cycle_max))


@kernel
def learn_spacing(t, missed, stats, stats32, tick, hy):
    """Fold the time t of the stream's event `tick`, which follows `missed` events unseen,
    into its mean spacing (exact, then at the scaler's rate), how often an interval lasts
    LONG_INTERVAL spacings or more (likewise) and its last time; an event without a time is taken to
    come one spacing after the last (it is no gap). Runs before update_value_stats, which
    marks the stream's first time (day_old)."""
    col = hy.stats
    if hy.cycle_max == 0:
        return
    last = stats[col.last_time]
    if math.isnan(t):
        stats[col.last_time] = last + stats32[col.spacing]
        return
    if stats32[col.day_old] != 0.0 and not math.isnan(last):  # a time before this one
        dt = max(t - last, 0.0)
        spacing = stats32[col.spacing]
        rate = max(1.0 / tick, hy.scaler_alpha)
        long = 1.0 if spacing > 0.0 and dt >= LONG_INTERVAL * spacing else 0.0
        stats32[col.spacing] += (1.0 if spacing <= 0.0 else rate) * (dt / (missed + 1) - spacing)
        stats32[col.long_rate] += rate * (long - stats32[col.long_rate])
    stats[col.last_time] = t


@kernel
def straddles_gap(s, streams, hy):
    """Whether the model's forecast of stream slot s's next event comes from a window that
    holds an event from before rows dropped (missed_events): the K events after the first
    one past a gap, while the window of K + 1 inputs still reaches back across it. The model
    takes the gap's two sides for adjacent and needs about that long to find the stream's
    phase again (hourly data with a daily cycle: errors ten times the usual for ~10 events,
    a false alert after each gap), so its error then is no news; the value channels and
    the point test still judge those events. Not during the warm-up, whose errors, as large
    for every event, the error channel's long-term statistics learn as they come (left out
    after a gap then, they started it on fewer: NAB's development half lost a window)."""
    return (hy.cycle_max > 0 and streams.counters[s, C_SEEN] >= hy.warmup
            and streams.stats32[s, hy.stats.after_gap] > 0.0)


@kernel
def learn_rhythm(d, n, stats32, col, alpha):
    """Fold feature d's n-th observation into its rhythm: from its second on, the events
    since the last one (`absent` + 1) into its mean interval (exact, then at the scaler's
    rate `alpha`, as its mean step), and none absent since. A silence counts as at most
    four times the interval learnt so far (at least 1), well past the rhythm's reach
    (`holds`): one long outage is a gap, not the rhythm, and left whole it made a feature
    read at every event take its later dropouts for its rhythm; a slower rhythm is still
    learnt, and silences at random (geometric) lose 0.4-2 % of their mean."""
    if n >= 2.0:
        interval = stats32[col.interval + d]
        k = min(stats32[col.absent + d] + 1.0, 4.0 * max(interval, 1.0))
        stats32[col.interval + d] = interval + max(1.0 / (n - 1.0), alpha) * (k - interval)
    stats32[col.absent + d] = 0.0


@kernel
def holds(d, stats32, hy):
    """Whether feature d is within a rhythm of its own at the event being judged: it comes
    one event in LONG_INTERVAL or less often (its mean interval, learn_rhythm), and the
    events since its last observation, this one included, are fewer than LONG_INTERVAL of
    that interval. Sensors read at their own times and sent one reading a message, merged
    into one stream, give each feature every D-th event or so: that is its rhythm, and its
    last observation is its previous value (kernels_cpu.mark_gaps; before 2026-12-07 each
    was a gap, and such a feature had no step and no innovation at all). A feature of a
    stream that gives it at nearly every event has none: a value missing there is a gap,
    as before."""
    interval = stats32[hy.stats.interval + d]
    return interval >= LONG_INTERVAL and stats32[hy.stats.absent + d] + 1.0 < LONG_INTERVAL * interval


@kernel
def forecast_judged(d, stats32, findings, hy):
    """Whether the model's forecast of feature d can be judged, rows dropped aside
    (straddles_gap): it was made from an input that held the feature, the previous event
    gave it (findings' row FIND_GAP 0, `absent` 0). A forecast made without it, across a
    gap or within the feature's rhythm alike, only says how far the cell drifted on an
    input of 0: judged within the rhythm, interleaved sensors raised several times the
    false alerts of the same data in rows (docs/tuning-log.md)."""
    return findings[FIND_GAP, d] == 0.0 and stats32[hy.stats.absent + d] == 0.0


@kernel
def events_a_day(t, stats32, tick, hy):
    """How many events a day the stream brings, at its mean spacing from its first time to
    t, the time of its event `tick`; 0 where unknown (no time, or none elapsed)."""
    elapsed = t - stats32[hy.stats.day_old] + DAY
    return DAY * tick / elapsed if tick > 0 and elapsed > 0.0 else 0.0  # a NaN t fails the test


@kernel
def bin_rate(t, stats32, tick, hy):
    """The EWMA rate of a day bin's mean and variance for an event at time t, the stream's
    event `tick`: a half-life of SEASONAL_HALFLIFE events, or of SEASONAL_DAYS days of a
    bin's events where that is longer."""
    halflife = max(SEASONAL_HALFLIFE, SEASONAL_DAYS * events_a_day(t, stats32, tick, hy) / hy.seasonal_bins)
    return hy.seasonal_alpha if halflife == SEASONAL_HALFLIFE else 1.0 - 0.5 ** (1.0 / halflife)


@kernel
def baseline_rate(t, stats32, tick, hy):
    """The rate at which the regime's baseline learns for an event at time t, the stream's
    event `tick`: the scaler's, or a half-life of a day of events where that is longer. A
    baseline that spans less than a day sees the day's own rhythm as wandering levels: a
    daily cycle read every 10 s held the regime abnormal on 1.4 % of its rows."""
    per_day = events_a_day(t, stats32, tick, hy)
    return min(hy.scaler_alpha, 1.0 - 0.5 ** (1.0 / per_day)) if per_day > 0.0 else hy.scaler_alpha


@kernel
def seasonal_bin(t, stats32, hy):
    """The day bin whose profile judges an event at time t: -1 (none) until the stream is a
    day old, because before that a bin has only seen this day's values at its hour, not
    the usual value at that time of day."""
    day_old = stats32[hy.stats.day_old]
    if day_old == 0.0 or t < day_old:
        return -1
    return day_bin(t, hy.seasonal_bins)


@kernel
def record_setters(x, stats, stats32, hy):
    """How many features of event x (D,) could set a new record: observed, or absent within
    their rhythm (`holds`: interleaved sensors' readings give one feature an event, and
    each of the D is as likely to set a record at its turn as in a row of all D), with an
    earlier value, and `judged` (a context feature that has shown its two values cannot; a
    constant one's first change is judged by its range too, but is no likelier for the
    measurements beside it)."""
    m = 0
    for d in range(hy.D):
        if ((not math.isnan(x[d]) or holds(d, stats32, hy)) and stats[hy.stats.count + d] >= 1.0
                and judged(d, stats, hy)):
            m += 1
    return m


@kernel
def record_tolerance(n, m, hy):
    """How far outside its range (in units of hi - lo) the value of a feature with n
    earlier values must lie to be range novelty, when m features could set a record
    (`record_setters`): `range_tolerance`, plus ln(m) / (2 ln n) when m > 1 (see "Range
    novelty" above)."""
    if m <= 1:
        return hy.range_tolerance
    return hy.range_tolerance + math.log(m) / (2.0 * math.log(max(n, 2.0)))


@kernel
def record_block(n, hy):
    """The first count of the block of a feature's values that holds its n-th (n >= 1), for
    its record counts: blocks double (1, 2, 4, ...) up to hy.record_block values, then
    keep that length, so the two last blocks hold a half to three quarters of a young
    feature's history (from 8 values) and one to two scaler half-lives of an old one's."""
    B = hy.record_block
    if n >= B:
        return (n // B) * B
    return 2.0 ** math.floor(math.log2(n))


@kernel
def starts_block(n, hy):
    """Whether a feature's n-th value (n >= 1) is the first of a block (record_block ==
    n), in integer operations: it runs for every value of every feature."""
    k = int(n)
    B = hy.record_block  # a power of two
    return (k & (B - 1)) == 0 if k >= B else (k & (k - 1)) == 0


@kernel
def poisson_tail_nines(k, lam):
    """-log10 P(N >= k) for N ~ Poisson(lam), 0 < lam < k: the terms from the k-th on,
    each relative to the first, summed until they no longer add."""
    rest = 1.0
    term = 1.0
    j = k
    while term > 1e-16 * rest:
        j += 1.0
        term *= lam / j
        rest += term
    return (lam - k * math.log(lam) + math.lgamma(k + 1.0) - math.log(rest)) / _LN10


@kernel
def trend_foretold(v, d, step, stats, counts, hy):
    """Whether feature d's value v, past the range of its earlier values, is a record its
    own run of records foretold (counts (2, 2): its `records`): the new highs (or lows, as
    v) it set in its last two blocks (record_block) are more than exchangeable values
    would set at the alert level (each value a new high with probability 1 / i, so
    Poisson(sum 1 / i) of them, P < 10^-L_HALF), and v came by a step from the last value
    (`step`, in typical steps, across missing values too; NaN: the feature is not judged,
    and its record is news) no more surprising than that level (4.26 typical steps). A
    trend, or a walk, sets records all the time, each by a typical step; a jump past the
    range is still news, and so is the first record of a stationary stream."""
    n = stats[hy.stats.count + d]
    block = record_block(n, hy)
    start = block / 2.0 if block <= hy.record_block else block - hy.record_block
    if start < 2.0:
        return False
    way = REC_HIGH if v > stats[hy.stats.hi + d] else REC_LOW
    k = float(counts[way, REC_PREV]) + float(counts[way, REC_CUR])
    lam = math.log((n + 0.5) / (start - 0.5))  # the records expected in values start..n
    if k <= lam or poisson_tail_nines(k, lam) < L_HALF:
        return False
    return not math.isnan(step) and neg_log10_tail(abs(step)) < L_HALF


@kernel
def value_inputs(x, t, stats, stats32, records, bins, cycle, tick, findings, hy):
    """Inputs of the value channels for event x (D,) at time t, the stream's event `tick`
    (layout.C_TICKS; its `cycle` (D, N_CYC, Lc)), under the statistics from before it:
    (value, step, seasonal) RMS and the square root of the own cycle's RMS (see the module
    docstring) over the observed features that are `judged`
    (NaN when none; the step only over those whose last observation is not across a gap,
    findings' row FIND_GAP: a move across a gap is not a step) and how far outside the range
    [lo, hi] of all its earlier values the farthest feature is, in units of hi - lo, among
    the features (context included) further outside than their `record_tolerance` and
    not foretold by their own cycle or by their run of records (trend_foretold) (0 when
    none is). Values are limited to
    +-VALUE_LIMIT, as everywhere. Each observed feature's own inputs and range novelty go
    into rows FIND_INPUT, FIND_SEASONAL and FIND_NOVELTY of findings (findings_rows(D), D), for
    attribution."""
    D, col = hy.D, hy.stats
    b = seasonal_bin(t, stats32, hy)
    # The mean time between events since the first timestamp (a day before day_old).
    spacing = (t - stats32[col.day_old] + DAY) / tick if b >= 0 else math.nan  # tick > 0 a day in
    m = record_setters(x, stats, stats32, hy)
    sum_z = 0.0
    sum_step = 0.0
    sum_seas = 0.0
    sum_own = 0.0
    n = 0
    n_step = 0
    n_seas = 0
    n_own = 0
    outside = 0.0
    for d in range(D):
        v = x[d]
        findings[FIND_CYCLE, d] = math.nan
        if math.isnan(v) or stats[col.count + d] < 1.0:
            continue
        z, step, seas, own, out_d, cycle_r = feature_inputs(bounded(v), d, b, stats, stats32, bins, cycle, tick,
                                                            spacing, hy)
        findings[FIND_NOVELTY, d] = 0.0
        # A record its own cycle (cycle_r NaN: none) or its run of records foretold is none
        # (see "Range novelty").
        if out_d > record_tolerance(stats[col.count + d], m, hy) and not (
                (not math.isnan(cycle_r) and neg_log10_tail(abs(cycle_r)) < L_HALF)
                or trend_foretold(bounded(v), d, step, stats, records[d], hy)):
            outside = max(outside, out_d)
            findings[FIND_NOVELTY, d] = hy.range_novelty * (1.0 + min(out_d, OUTSIDE_LIMIT))
        if findings[FIND_GAP, d] != 0.0:
            step = math.nan
        findings[FIND_INPUT, d] = abs(z) if math.isnan(step) else max(abs(z), abs(step))
        findings[FIND_SEASONAL, d] = abs(own) if math.isnan(seas) else abs(seas)
        findings[FIND_CYCLE, d] = cycle_r
        if math.isnan(z):
            continue
        sum_z += z * z
        n += 1
        if not math.isnan(step):
            sum_step += step * step
            n_step += 1
        if not math.isnan(seas):
            sum_seas += seas * seas
            n_seas += 1
        if not math.isnan(own):
            sum_own += own * own
            n_own += 1
    return (rms(sum_z, n), rms(sum_step, n_step), rms(sum_seas, n_seas), math.sqrt(rms(sum_own, n_own)),
            min(outside, OUTSIDE_LIMIT))


@kernel
def learnt_value(v, d, stats, col):
    """Value v of feature d as its statistics learn it: within one width of its range
    beyond the range [lo, hi] of its earlier values, once it has a range (two values
    learnt that differ). A glitch (a sentinel -9999, a 1e6 from a bad read) would
    otherwise set the scaler's sd, the mean step, the seasonal bin and the range for
    thousands of events, and every later anomaly would be small beside it, also where it
    comes among a stream's first values; a lasting change still gets through, the range
    at most doubling towards it at each event (a jump of 100 widths takes seven events)."""
    w = stats[col.hi + d] - stats[col.lo + d]
    if stats[col.count + d] < 2.0 or w <= 0.0:
        return v
    return min(max(v, stats[col.lo + d] - w), stats[col.hi + d] + w)


@kernel
def count_record(counts, v, lo, hi):
    """Count v in a feature's current block (counts (2, 2): its `records`) if it is a new
    high or low beyond [lo, hi], saturating."""
    way = REC_HIGH if v > hi else REC_LOW if v < lo else -1
    if way >= 0 and counts[way, REC_CUR] < UINT16_MAX:
        counts[way, REC_CUR] += 1


@kernel
def update_value_stats(stats, stats32, records, bins, cycle, tails, x, t, tick, surprising, flagged, abnormal,
                       tail_weight, hy):
    """Per observed feature: its own cycle at the stream's event `tick` (learn_cycle, with
    whether the event is `surprising` to it or `flagged` as surprising to the alerts,
    whether the stream is `abnormal` and the
    event's `tail_weight` for its residual's tail; a feature not observed leaves no value
    in it), scaler (EWMA mean/variance, exact running moments until 1/n < alpha), mean
    absolute step (likewise), last value, range, and the seasonal bin of time t. The bin
    and the cycle learn the value's deviation from the running mean before this event
    (none for the feature's first value, which starts the mean), so a drifting
    level moves the whole profile with it instead of leaving every bin behind until its
    next visits; it is stored with compact.narrow_step, so that it
    never stalls short of a new level. Where the feature has a period, the bin learns no
    value that its cycle kept out of its ring. Values are limited to +-VALUE_LIMIT and,
    once the feature has a range, to one width beyond it (learnt_value). A feature that leaves a
    constant's history restarts its regime baseline (update_baseline). Returns whether any
    feature was observed."""
    D, col, alpha = hy.D, hy.stats, hy.scaler_alpha
    observed = False
    b = day_bin(t, hy.seasonal_bins)
    if stats32[col.day_old] == 0.0 and not math.isnan(t):
        stats32[col.day_old] = t + DAY  # float32: to within 64 s at today's epoch times
    seasonal_alpha = bin_rate(t, stats32, tick, hy) if b >= 0 else 0.0
    for d in range(D):
        v = x[d]
        if math.isnan(v):
            if hy.cycle_max > 0:
                cycle[d, CYC_DEV, tick % hy.cycle_max] = math.nan
            stats32[col.absent + d] += 1.0
            continue
        observed = True
        v = learnt_value(bounded(v), d, stats, col)
        n = stats[col.count + d] + 1.0
        # The first value has no running mean to deviate from (the mean starts at it).
        dev = v - stats[col.mean + d] if n > 1.0 else math.nan
        kept_out = learn_cycle(dev, d, cycle, tails, tick, surprising, flagged, abnormal, tail_weight, stats32,
                               scaler_std(stats32[col.var + d], stats[col.mean + d], stats[col.res + d]), hy)
        was_measured = measured(d, stats, col)
        restart = False
        stats[col.count + d] = n
        stats[col.mean + d], stats32[col.var + d] = ewma_update(stats[col.mean + d], stats32[col.var + d], v,
                                                                max(1.0 / n, alpha))
        if n >= 2.0:  # an exact mean of the n - 1 steps until 1/(n - 1) < alpha
            step = abs(v - stats[col.last + d])
            stats32[col.step + d] += max(1.0 / (n - 1.0), alpha) * (step - stats32[col.step + d])
            if step > 0.0 and stats[col.res + d] == 0.0:
                restart = not judged(d, stats, hy)  # a context feature's first change
            if step > 0.0 and (step < stats[col.res + d] or stats[col.res + d] == 0.0):
                stats[col.res + d] = step
        stats[col.last + d] = v
        if starts_block(n, hy):
            for way in range(2):
                records[d, way, REC_PREV] = records[d, way, REC_CUR]
                records[d, way, REC_CUR] = 0
        if n == 1.0:
            stats[col.lo + d] = v
            stats[col.hi + d] = v
        else:
            count_record(records[d], v, stats[col.lo + d], stats[col.hi + d])
            stats[col.lo + d] = min(stats[col.lo + d], v)
            stats[col.hi + d] = max(stats[col.hi + d], v)
        if not was_measured and measured(d, stats, col):
            restart = restart or _first_measurement(d, stats, hy)
        if restart and stats[col.base_count + d] > TAIL_MIN_COUNT:
            # The regime's baseline restarts when a feature leaves a constant's history from
            # which it learnt a calibration, one a measurement cannot be judged by (a stuck
            # sensor back would hold the regime abnormal): a context feature at its first
            # change, a judged one (in a stream of no measurements) when it becomes the
            # first. A judged constant's excursion to another constant and back stays an
            # incident. Its second modes, learnt of a constant too, are forgotten.
            stats[col.base_count + d] = 0.0
            for k in range(N_MODES):
                stats32[col.mode_count + k * hy.D + d] = 0.0
                stats32[col.mode_switches + k * hy.D + d] = 0.0
            stats32[col.mode_run + d] = 0.0
        if b >= 0 and n > 1.0 and not kept_out:  # an incident its cycle saw is no new normal for its hour
            profile = bins[d, b]
            visits = bin_visits(profile) + 1
            rate = seasonal_alpha if visits > MAX_VISITS else max(1.0 / visits, seasonal_alpha)
            mean, var = ewma_update(bin_mean(profile), bin_var(profile), dev, rate)
            store_bin(profile, mean, var, visits)
    return observed


@kernel
def channel_surprise(stats32, ring, c, x, p, filled, hy):
    """Surprise of channel c given its input x this event; 0 until the channel's long-term
    Gaussian rests on as many window means as the first channels' do when the warm-up
    ends (warmup - warmup // 2), so a channel that starts late (the seasonal one, a day
    into a stream) does not judge by a handful of them. A window with fewer inputs than
    slots (some NaN: the own cycle without a reference, a step across a gap) is judged as
    the mean of that many: its variance is the long-term one times slots / inputs."""
    o = hy.stats.channels + 3 * c
    if stats32[o + 2] < max(hy.warmup - hy.warmup // 2, 2):
        return 0.0
    m, n = window_mean(ring[c], x, p, filled)
    return surprise(m, stats32[o], stats32[o + 1] * min(filled + 1, hy.short_window) / max(n, 1), stats32[o + 2])


@kernel
def channel_learn(stats32, ring, c, x, p, filled, update, long_alpha, col):
    """Fold channel c's window mean (with input x) into its long-term Gaussian when
    `update`, then store x (NaN: none) in the ring slot p."""
    m, _ = window_mean(ring[c], x, p, filled)
    if update and not math.isnan(m):
        o = col.channels + 3 * c
        n = stats32[o + 2] + 1.0
        stats32[o + 2] = n
        stats32[o], stats32[o + 1] = ewma_update(stats32[o], stats32[o + 1], m, max(1.0 / n, long_alpha))
    ring[c, p] = narrow_bits(x, BF16)


@inlined_kernel
def value_surprise(error, x, t, s, streams, findings, hy):
    """The surprise of event x (D,) of stream slot s at time t, given its prediction error,
    after warm-up, without changing any state but the scratch `findings` (value_inputs):
    (L, Lc, Ls), L before alert suppression, Lc the channel surprise before the stream's
    self-calibration (see the module docstring), and Ls the score's: L, or the point test's
    calibrated surprise where larger, which the alerts ask only while the stream is normal
    (during an incident its events are far from the normal it knows, and the score says
    so; an alert would come every cooldown until the baseline learnt the new level)."""
    stats32, ring, col = streams.stats32[s], streams.ring[s], hy.stats
    n_seen = streams.counters[s, C_SEEN]
    tick = streams.counters[s, C_TICKS] + missed_events(t, streams.stats[s], stats32, hy)
    z, step, seas, own, outside = value_inputs(x, t, streams.stats[s], stats32, streams.records[s], streams.bins[s],
                                               streams.cycle[s], tick, findings, hy)
    w = hy.short_window
    p = n_seen % w
    filled = min(n_seen, w)
    L_error = channel_surprise(stats32, ring, CH_ERROR, error, p, filled, hy)
    L = (L_error
         + channel_surprise(stats32, ring, CH_VALUE, z, p, filled, hy)
         + channel_surprise(stats32, ring, CH_STEP, step, p, filled, hy)) / 3.0
    Lc = max(L, channel_surprise(stats32, ring, CH_SEASONAL, seas, p, filled, hy), hy.error_weight * L_error)
    if hy.cycle_max > 0:
        Lc = max(Lc, channel_surprise(stats32, ring, CH_CYCLE, own, p, filled, hy))
    L_point = point_surprise(x, streams.stats[s], stats32, streams.tails[s], streams.corr[s], streams.corr_tails[s],
                             findings, hy)
    if stats32[col.regime] + _logit(hy.regime_enter) < 0.0:  # the alerts' point test: while normal
        Lc = max(Lc, L_point)
    q = stats32[col.quantile]
    L = Lc * CALIB_C / q if q > CALIB_C else Lc
    if outside > 0.0:
        # Graded, so a value far outside the range outranks one just past the tolerance.
        L = max(L, hy.range_novelty * (1.0 + outside))
    return L, Lc, max(L, L_point * CALIB_C / q if q > CALIB_C else L_point)


@kernel
def point_surprise(x, stats, stats32, tails, corr, corr_tails, findings, hy):
    """L_point of event x (D,): how improbable its most surprising judged feature's
    innovation (judged_innovations), its residual against its own cycle (findings' row
    FIND_CYCLE, once its tail is ready: cycle_tail_ready), or its innovation given the
    other features' (news_given_others, by its own tail frequencies corr_tails (Dc,
    TAIL_LEVELS)) is on its own (point_tail), Bonferroni over the m tests of the features
    the regime judges (see "One event" in the module docstring); 0 when none is judged yet.
    A feature whose last observation is across a gap (findings' row FIND_GAP) has none: a
    move across a gap is no news, as it is no step."""
    col = hy.stats
    p_min = 1.0
    m = 0
    judged_innovations(x, stats, stats32, findings, hy)
    news_given_others(corr, stats, findings, hy)
    for d in range(hy.D):
        u = findings[FIND_NEWS, d]
        if math.isnan(u):
            continue
        m += 1
        p = point_tail(abs(u), stats[col.base_count + d], tails[d, TAILS_NEWS], hy)
        r = findings[FIND_CYCLE, d]
        if hy.cycle_max > 0 and not math.isnan(r) and cycle_tail_ready(d, stats32, hy):
            m += 1
            p = min(p, point_tail(abs(r), stats32[col.cycle_count + d], tails[d, TAILS_CYCLE], hy))
        if not math.isnan(findings[FIND_CORR_E, d]):
            m += 1
            p = min(p, others_p_value(d, stats, corr_tails, findings, hy))
        p_min = min(p_min, p)
    if m == 0:
        return 0.0
    return -math.log10(max(min(p_min * m, 1.0), 1e-300))


@kernel
def cycle_tail_ready(d, stats32, hy):
    """Whether feature d's residual against its own cycle has a tail the point test may
    ask: its frequencies, learnt past TAIL_MIN_COUNT residuals, rest on a full period of
    them, so that every phase of the cycle is in it (where beats' lengths vary, the largest
    residuals come at a pulse's peak, once a period)."""
    return stats32[hy.stats.cycle_count + d] >= TAIL_MIN_COUNT + max(stats32[hy.stats.cycle_period + d], 1.0)


@kernel
def point_tail(u, m, freqs, hy):
    """P(U >= u) for a feature's innovation u, whose baseline learnt m > TAIL_MIN_COUNT
    observations while normal, from its tail frequencies freqs (TAIL_LEVELS,) UF16 (the
    `tails` row TAILS_NEWS; alike for its residual against its own cycle, TAILS_CYCLE, m
    its count): calibrated_tail up to the highest level k whose frequency f_k
    rests on TAIL_TRUST exceedances or more (f_k at least TAIL_TRUST times calibrated_tail's
    floor 1 / (n + 2), n the observations it rests on); beyond it a Weibull tail through
    f_(k-1) and f_k, -ln P = -ln f_k (u / k)^s with s = ln(ln f_k / ln f_(k-1)) / ln(k /
    (k - 1)), at most TAIL_SHAPE_MAX; where f_(k-1) is 1 (level 1, f_0 = 1, or one that
    every observation exceeded) the exponential through both, f_k^(u - k + 1); f_k beyond
    the top level where even that is trusted, or where f_k no longer falls; where no level
    is trusted, calibrated_tail floored at 1 / (n + 2)."""
    floor = 1.0 / (min(m - TAIL_MIN_COUNT, 1.0 / hy.scaler_alpha) + 2.0)
    top = 0
    f_top = 1.0
    f_below = 1.0
    for k in range(TAIL_LEVELS):
        f = narrow_value(freqs[k], UF16)
        if f < TAIL_TRUST * floor:
            break
        f_below = f_top
        f_top = f
        top = k + 1
    if top == 0:
        return max(calibrated_tail(u, m, freqs, hy), floor)
    if u <= top:
        return calibrated_tail(u, m, freqs, hy)
    if top == TAIL_LEVELS or f_top >= f_below:
        return f_top
    if f_below >= 1.0:  # level 1 (f_0 = 1), or one every observation exceeded: no bend to read
        return f_top ** (u - top + 1.0)
    s = min(math.log(math.log(f_top) / math.log(f_below)) / math.log(top / (top - 1.0)), TAIL_SHAPE_MAX)
    return math.exp(math.log(f_top) * (u / top) ** s)


# ------------------------------------------------------------- the news given the others'
# A feature that leaves its relation to the others while it stays within its own range
# (a valve that no longer follows its command, a sensor read off the wrong channel) is no
# news to any test of the feature alone. Its innovation given the other features'
# innovations at the same event is: the residual of a Gaussian regression on them, read
# off the precision matrix of their running second moments.

CORR_RIDGE = 0.01  # added to the innovations' second moments before the inversion: no
#                    feature's news is taken as more than 99 % explained by the others'
#                    (its own noise), which also bounds the matrix's condition


@kernel
def judged_innovations(x, stats, stats32, findings, hy):
    """findings[FIND_NEWS] (D,) out: each feature of event x's signed innovation under its
    nearest normal mode (signed_innovation, previous_z), the news the point test asks; NaN
    where the regime does not judge the feature (_regime_judges) or its last observation is
    across a gap (findings' row FIND_GAP: a move across a gap is no news)."""
    for d in range(hy.D):
        findings[FIND_NEWS, d] = math.nan
        if not _regime_judges(x, d, stats, hy) or findings[FIND_GAP, d] != 0.0:
            continue
        z, mode, _ = nearest_mode(bounded(x[d]), d, stats, stats32, hy)
        rho = rho_over_silence(persistence(d, stats32, hy)[0], d, stats32, hy)
        findings[FIND_NEWS, d] = signed_innovation(z, previous_z(z, mode, rho, d, stats, stats32, hy), rho)


@kernel
def news_given_others(corr, stats, findings, hy):
    """findings[FIND_CORR_E] (D,) out: each judged feature's innovation u_d less what the
    other judged features' innovations say of it, in its conditional sd: (Q u)_d /
    sqrt(Q_dd), Q the precision of the judged features' innovations alone, u =
    findings[FIND_NEWS] clamped to +-TAIL_LEVELS (a jump of 50 sd would otherwise be all
    the others' residual too). Q is P = corr[CORR_PREC] (Dc, Dc) where every feature the
    second moments have learnt is judged; else the Schur complement P_JJ - P_JK P_KK^-1
    P_KJ of the features K they know and cannot judge now (missing, just after a gap),
    whose innovations are then taken as the judged ones say they are (findings' rows
    FIND_UNKNOWN, FIND_IMPUTED; P_KK inverted in the scratch rows after FIND_ROWS). NaN
    where the feature is not judged or its second moments rest on TAIL_MIN_COUNT
    innovations or fewer (corr_count), for every feature in a stream the test does not
    cover (Dc = 0), and where no other feature is judged (one alone has no others: its
    residual would be its innovation again, asked twice). Returns how many features it
    imputed, -1 where it tested none (and imputed none)."""
    Dc = corr.shape[1]
    P = corr[CORR_PREC]
    judged = tested = 0
    for d in range(hy.D):
        findings[FIND_CORR_E, d] = math.nan
        if not math.isnan(findings[FIND_NEWS, d]):
            judged += 1
            if d < Dc and stats[hy.stats.corr_count + d] > TAIL_MIN_COUNT:
                tested += 1
    if judged < 2 or tested == 0:
        return -1
    nk = _impute_unknown(P, stats, findings, hy)
    S = findings[FIND_ROWS:FIND_ROWS + nk, :nk]
    for d in range(Dc):
        if math.isnan(findings[FIND_NEWS, d]) or stats[hy.stats.corr_count + d] <= TAIL_MIN_COUNT:
            continue
        acc = 0.0
        for j in range(Dc):
            u = findings[FIND_NEWS, j]
            if not math.isnan(u):
                acc += P[d, j] * min(max(u, -TAIL_LEVELS), TAIL_LEVELS)
        q = P[d, d]
        for a in range(nk):
            ka = int(findings[FIND_UNKNOWN, a])
            acc += P[d, ka] * findings[FIND_IMPUTED, a]
            for b in range(nk):
                q -= P[d, ka] * S[a, b] * P[int(findings[FIND_UNKNOWN, b]), d]
        findings[FIND_CORR_E, d] = acc / math.sqrt(q)
    return nk


@kernel
def _impute_unknown(P, stats, findings, hy):
    """The features the second moments know and this event's judging left without an
    innovation (K): their number nk, their indices in findings[FIND_UNKNOWN, :nk], P_KK^-1
    (nk, nk) in the scratch rows after FIND_ROWS, and findings[FIND_IMPUTED, :nk] their
    innovations' conditional mean given the judged features' clamped ones u_J, -P_KK^-1
    P_KJ u_J (Gaussian, under the precision P (Dc, Dc)). The caller judges a feature at
    least, so nk <= Dc - 1 and the scratch's column nk holds P_KJ u_J meanwhile."""
    nk = 0
    for d in range(P.shape[0]):
        if math.isnan(findings[FIND_NEWS, d]) and stats[hy.stats.corr_count + d] > 0.0:
            findings[FIND_UNKNOWN, nk] = d
            nk += 1
    S = findings[FIND_ROWS:FIND_ROWS + nk]
    for a in range(nk):
        ka = int(findings[FIND_UNKNOWN, a])
        for b in range(nk):
            S[a, b] = P[ka, int(findings[FIND_UNKNOWN, b])]
        v = 0.0
        for j in range(P.shape[0]):
            u = findings[FIND_NEWS, j]
            if not math.isnan(u):
                v += P[ka, j] * min(max(u, -TAIL_LEVELS), TAIL_LEVELS)
        S[a, nk] = v
    invert_in_place(S, nk)
    for a in range(nk):
        v = 0.0
        for b in range(nk):
            v -= S[a, b] * S[b, nk]
        findings[FIND_IMPUTED, a] = v
    return nk


@kernel
def others_p_value(d, stats, corr_tails, findings, hy):
    """P(|residual| >= the one feature d has given the others, findings[FIND_CORR_E, d]),
    by its own tail frequencies corr_tails (Dc, TAIL_LEVELS) (point_tail)."""
    return point_tail(abs(findings[FIND_CORR_E, d]), stats[hy.stats.corr_count + d], corr_tails[d], hy)


@kernel
def learn_news_given_others(x, stats, stats32, corr, corr_tails, findings, abnormal, weight, tail_factor, a, hy):
    """Fold event x (D,) into the news given the others' at `weight` (update_baseline's: 1
    while normal, regime_learn_weight through a lasting change, 0 during an incident, which
    teaches it nothing), judged as the point test judged it (judged_innovations,
    news_given_others, into `findings`): each tested feature's residual into its tail
    frequencies corr_tails (Dc, TAIL_LEVELS) (at tail_factor for a lone alert, as the
    tails), then the judged features' clamped innovations into their second moments
    corr[CORR_COV] (Dc, Dc), held less the identity so that a reset row is the prior of
    unrelated features (exactly, from that prior, then at rate a; a feature that joins
    later learns its own at rate a), each counted in corr_count; then the precision
    (refresh_precision), every ceil(Dc / 8) of these events (and whenever it has none
    yet): about 8 Dc^2 operations an event for the inversion's Dc^3, the update's order.
    A feature the moments know and this event does not judge (missing, just after a gap)
    is learnt as what the judged features say of it (online expectation-maximisation of a
    Gaussian with missing values): its innovation the conditional mean y_K
    (_impute_unknown), its square and its products with another such feature's the
    conditional covariance S less the ridge too, so the moments learn (1 - rate) M + rate
    ([u_J; y_K] [u_J; y_K]^T + blockdiag(0, S - CORR_RIDGE I)), positive definite as M is
    (S - CORR_RIDGE I is the unridged moments' Schur complement or more), unbiased up to
    the ridge where values are missing at random; a feature that stays away keeps its
    own moment and its relations fade at about CORR_RIDGE of the moments' rate (the
    ridged regression's shrinkage). The rate is the one of the feature that taught the
    moments the most, judged or known; the refreshes count the judged ones' events."""
    Dc = corr.shape[1]
    col = hy.stats
    if Dc == 0 or weight == 0.0:
        return
    judged_innovations(x, stats, stats32, findings, hy)
    imputed = news_given_others(corr, stats, findings, hy)
    n = -1.0  # the most any judged feature has taught the moments (-1: none judged)
    n_all = 0.0  # ... any judged or known one
    for d in range(Dc):
        m = stats[col.corr_count + d]
        e = findings[FIND_CORR_E, d]
        if not math.isnan(e):
            _learn_tail(corr_tails[d], abs(e), max(1.0 / (m - TAIL_MIN_COUNT), a) * weight * tail_factor, m)
        if not math.isnan(findings[FIND_NEWS, d]):
            n = max(n, m)
        n_all = max(n_all, m)
    if n < 0.0:
        return
    if imputed < 0:
        _impute_unknown(corr[CORR_PREC], stats, findings, hy)
    rate = max(1.0 / (n_all + 2.0), a) * weight
    S = findings[FIND_ROWS:]
    ki = -1
    for i in range(Dc):
        yi, ki, known = _completed(i, ki, stats, findings, hy)
        if not known:
            continue
        kj = -1
        for j in range(Dc):
            yj, kj, known = _completed(j, kj, stats, findings, hy)
            if not known:
                continue
            v = yi * yj
            if math.isnan(findings[FIND_NEWS, i]) and math.isnan(findings[FIND_NEWS, j]):
                # What the judged features leave unknown of the two, less the ridge that
                # the precision's inverse adds (else a feature that stays away grows).
                v += S[ki, kj] - (CORR_RIDGE if i == j else 0.0)
            corr[CORR_COV, i, j] += rate * (v - (1.0 if i == j else 0.0) - corr[CORR_COV, i, j])
        if not math.isnan(findings[FIND_NEWS, i]):
            stats[col.corr_count + i] += 1.0
    # n + 1 counts these events for the judged feature that has learnt the most.
    if (int(n) + 1) % ((Dc + 7) // 8) == 0 or corr[CORR_PREC, 0, 0] == 0.0:
        refresh_precision(corr)


@kernel
def _completed(d, k, stats, findings, hy):
    """Feature d's innovation as the second moments learn it, after the features before
    it (k: the last of them that _impute_unknown imputed, -1 for none): (its clamped
    innovation, or its imputed one; the position in the imputed ones it takes or leaves
    for the next feature; False where it is neither judged nor known)."""
    u = findings[FIND_NEWS, d]
    if not math.isnan(u):
        return min(max(u, -TAIL_LEVELS), TAIL_LEVELS), k, True
    if not stats[hy.stats.corr_count + d] > 0.0:  # _impute_unknown's test
        return 0.0, k, False
    return findings[FIND_IMPUTED, k + 1], k + 1, True


@kernel
def refresh_precision(corr):
    """corr[CORR_PREC] (Dc, Dc) = (I + corr[CORR_COV] + CORR_RIDGE I)^-1 (invert_in_place)."""
    Dc = corr.shape[1]
    a = corr[CORR_PREC]
    for i in range(Dc):
        for j in range(Dc):
            a[i, j] = corr[CORR_COV, i, j] + (1.0 + CORR_RIDGE if i == j else 0.0)
    invert_in_place(a, Dc)


@kernel
def invert_in_place(a, n):
    """a[:n, :n] = its inverse, by Gauss-Jordan elimination in place. No pivoting: it is
    symmetric positive definite (second moments plus the ridge, or a block of the
    precision, their inverse), so every pivot is positive."""
    for k in range(n):
        pivot = a[k, k]
        a[k, k] = 1.0
        for j in range(n):
            a[k, j] /= pivot
        for i in range(n):
            if i != k:
                f = a[i, k]
                a[i, k] = 0.0
                for j in range(n):
                    a[i, j] -= f * a[k, j]


@inlined_kernel
def learn_statistics(error, x, t, s, streams, findings, flagged, lone, hy):
    """Fold event x (D,) of stream slot s at time t and its prediction error into the
    stream's channel statistics, then its value statistics (findings (findings_rows(D), D):
    value_inputs' scratch); an event `flagged` as surprising to the alerts (or in an
    incident's first period) is no reference where its cycle could not judge it, in a
    feature that misses values, and a `lone` alert (kernels_cpu.lone_alert) teaches
    the tails at lone_weight. The rhythm learns last, so that the news learnt is taken over
    the silence before this observation, as it was judged (rho_over_silence). The channels'
    long-term statistics start after half the warm-up: the model's large early errors
    would otherwise inflate them for a long time. Returns whether any feature was
    observed."""
    stats, stats32, bins, ring, col = streams.stats[s], streams.stats32[s], streams.bins[s], streams.ring[s], hy.stats
    n_seen = streams.counters[s, C_SEEN]
    # Rows dropped before this event: the own cycle's clock skips them as events without a
    # value, so that it stays in phase (learn_end counts this event).
    missed = missed_events(t, stats, stats32, hy)
    ticks = streams.counters[s, C_TICKS]
    for k in range(missed):
        for d in range(hy.D):
            streams.cycle[s, d, CYC_DEV, (ticks + k) % hy.cycle_max] = math.nan
    ticks += missed
    streams.counters[s, C_TICKS] = ticks
    learn_spacing(t, missed, stats, stats32, ticks, hy)
    if hy.cycle_max > 0:  # the forecasts left that straddle a gap (straddles_gap)
        stats32[col.after_gap] = hy.K if missed > 0 else max(stats32[col.after_gap] - 1.0, 0.0)
    z, step, seas, own, _ = value_inputs(x, t, stats, stats32, streams.records[s], bins, streams.cycle[s], ticks,
                                         findings, hy)
    w = hy.short_window
    p = n_seen % w
    filled = min(n_seen, w)
    update = n_seen >= hy.warmup // 2
    # An event in a stretch the own cycle finds surprising is no reference for the next
    # period, even where its residual alone is not an outlier.
    surprising = hy.cycle_max > 0 and channel_surprise(stats32, ring, CH_CYCLE, own, p, filled, hy) >= L_HALF
    channel_learn(stats32, ring, CH_ERROR, error, p, filled, update, hy.long_alpha, col)
    channel_learn(stats32, ring, CH_VALUE, z, p, filled, update, hy.long_alpha, col)
    channel_learn(stats32, ring, CH_STEP, step, p, filled, update, hy.long_alpha, col)
    channel_learn(stats32, ring, CH_SEASONAL, seas, p, filled, update, hy.long_alpha, col)
    if hy.cycle_max > 0:
        channel_learn(stats32, ring, CH_CYCLE, own, p, filled, update, hy.long_alpha, col)
    abnormal = stats32[col.regime] + _logit(hy.regime_enter) >= 0.0
    lasting = stats32[col.abnormal_run] >= hy.new_normal
    # The own cycle's residual tail learns when the regime's tails do (update_baseline), so
    # that both tests of the point test judge by the same history.
    tail_weight = (0.0 if abnormal and not lasting else hy.regime_learn_weight if abnormal
                   else lone_weight(hy) if lone else 1.0)
    observed = update_value_stats(stats, stats32, streams.records[s], bins, streams.cycle[s], streams.tails[s], x, t,
                                  ticks, surprising, flagged, abnormal, tail_weight, hy)
    a = baseline_rate(t, stats32, ticks, hy)
    update_baseline(stats, stats32, streams.tails[s], streams.corr[s], streams.corr_tails[s], findings, x, abnormal,
                    lasting, lone, a, hy)
    for d in range(hy.D):  # last: the news above is taken over the silence before this observation
        if not math.isnan(x[d]):
            learn_rhythm(d, stats[col.count + d], stats32, col, hy.scaler_alpha)
    return observed


@inlined_kernel
def alert_step(L, s, streams, hy):
    """Score and flag of an event of surprise L, after alert suppression: 0 during a
    cooldown, otherwise score = to_score(max(L - P, 0)) with the stream's penalty P.
    Changes nothing (`alert_learn` does, once the event is learnt). Returns (score, flag)."""
    stats32, counters, col = streams.stats32[s], streams.counters[s], hy.stats
    score = 0.0 if counters[C_QUIET] > 0 else to_score(max(L - stats32[col.penalty], 0.0))
    return score, score >= hy.threshold


@inlined_kernel
def alert_learn(flag, Lc, s, streams, hy):
    """The alert bookkeeping of a learnt event whose `alert_step` gave `flag`: an alert
    starts a cooldown and raises the penalty P by alert_penalty; P decays every event; and
    the stream's quantile q of the channel surprise takes one step towards Lc's CALIB_P
    quantile, capped at CALIB_Q_MAX (not when Lc < 0: warm-up)."""
    stats32, counters, col = streams.stats32[s], streams.counters[s], hy.stats
    penalty = stats32[col.penalty]
    quiet = counters[C_QUIET]
    if quiet > 0:
        counters[C_QUIET] = quiet - 1
    elif flag:
        counters[C_QUIET] = hy.alert_cooldown
        penalty += hy.alert_penalty
    stats32[col.penalty] = penalty * hy.penalty_decay
    if Lc >= 0.0:
        q = stats32[col.quantile]
        stats32[col.quantile] = min(q + CALIB_ETA * ((1.0 if Lc > q else 0.0) - (1.0 - CALIB_P)), CALIB_Q_MAX)


# ------------------------------------------------------------------------------- regime


@kernel
def _logit(p):
    return math.log(p) - math.log1p(-p)


@kernel
def nearest_mode(v, d, stats, stats32, hy):
    """(signed z of value v of feature d under the normal mode nearest it, that mode (-1:
    the baseline, k: its second mode k), its z under the baseline): the baseline, or the
    nearest second mode where the feature has dwelt there and left it MODE_VISITS times
    (learn_modes) and v is nearer it. Every mode shares the baseline's sd, so that the
    feature's tail frequencies judge each: a pump's flow at rest has its own level, not
    its own noise."""
    col = hy.stats
    mean = stats[col.base_mean + d]
    sd = scaler_std(stats32[col.base_var + d], mean, stats[col.res + d])
    z = (v - mean) / sd
    mode = -1
    nearest = abs(v - mean)
    for k in range(N_MODES):
        j = k * hy.D + d
        if stats32[col.mode_switches + j] >= 2.0 * MODE_VISITS and abs(v - stats[col.mode_mean + j]) < nearest:
            mode = k
            nearest = abs(v - stats[col.mode_mean + j])
    if mode < 0:
        return z, mode, z
    return (v - stats[col.mode_mean + mode * hy.D + d]) / sd, mode, z


@kernel
def previous_z(z, mode, rho, d, stats, stats32, hy):
    """The previous value of feature d as the z its innovation is taken from (z the value's
    now, under its nearest mode `mode`, -1 the baseline; rho the persistence): its z under
    the baseline (base_prev), or, where the feature has second normal modes, the smaller
    innovation of two readings: the previous value under the current value's mode (it
    went on there), and under its own nearest mode (it switched modes). A switch between
    modes is no news, nor is a crossing from nearer one mode to nearer another; a jump away
    from all is."""
    col = hy.stats
    prev = stats32[col.base_prev + d]
    mean = stats[col.base_mean + d]
    sd = scaler_std(stats32[col.base_var + d], mean, stats[col.res + d])
    same = prev
    own = prev
    for k in range(N_MODES):
        j = k * hy.D + d
        if stats32[col.mode_switches + j] >= 2.0 * MODE_VISITS:
            reading = prev + (mean - stats[col.mode_mean + j]) / sd
            if k == mode:
                same = reading
            if abs(reading) < abs(own):
                own = reading
    return same if abs(z - rho * same) <= abs(z - rho * own) else own


@kernel
def beyond_place(z, d, stats, stats32, col):
    """Whether a value of feature d, z of the baseline's sd from a place where the feature
    dwells (its baseline's mean, or a second mode's), lies beyond it: past TAIL_LEVELS of
    that sd, the calibration's top level (a cycle's excursions stay within it, a pump's
    rest does not), or, where that sd is its grid's rounding (the baseline has held one
    value of the grid: a pump's 0/1 state while it runs), past half a step of the grid,
    nearer another value of it: there a step is 3.5 sd, which says the floor, not the
    baseline's spread."""
    res = stats[col.res + d]
    on_grid = scaler_std(stats32[col.base_var + d], stats[col.base_mean + d], res) <= ROUNDING_SD * res
    return abs(z) > (0.5 / ROUNDING_SD if on_grid else TAIL_LEVELS)


@kernel
def _place(v, away, d, stats, stats32, hy):
    """Where value v of feature d lies: -1 at its baseline (not `away` from it), k in its
    second mode k (the nearest that has a value, where v is not beyond it: beyond_place),
    or N_MODES, a new place."""
    if not away:
        return -1
    col = hy.stats
    sd = scaler_std(stats32[col.base_var + d], stats[col.base_mean + d], stats[col.res + d])
    place = N_MODES
    nearest = math.inf
    for k in range(N_MODES):
        j = k * hy.D + d
        gap = abs(v - stats[col.mode_mean + j])
        if stats32[col.mode_count + j] > 0.0 and gap < nearest and not beyond_place(gap / sd, d, stats, stats32, col):
            place = k
            nearest = gap
    return place


@kernel
def _switch(stats32, i):
    """Count a move into or out of a second mode in its column i of mode_switches: past 2
    MODE_VISITS + 1 a step back by two instead, so that float32 keeps its parity."""
    stats32[i] = stats32[i] + 1.0 if stats32[i] <= 2.0 * MODE_VISITS else stats32[i] - 1.0


@kernel
def _mode_for_new_place(d, stats32, hy):
    """The second mode of feature d that a new place takes: a free one, or else the one of
    the fewest moves that is not yet a normal mode; -1 (none: the feature dwells in no
    mode there) where every mode is a normal one, so that an incident at a new place does
    not evict a place the feature has come back to."""
    col = hy.stats
    best = -1
    for k in range(N_MODES):
        j = k * hy.D + d
        if stats32[col.mode_count + j] == 0.0:
            return k
        switches = stats32[col.mode_switches + j]
        if switches < 2.0 * MODE_VISITS and (best < 0 or switches < stats32[col.mode_switches + best * hy.D + d]):
            best = k
    return best


@kernel
def learn_modes(v, d, z_base, mode, stats, stats32, a, weight, hy):
    """Follow where feature d dwells, and let its second modes learn value v (z_base its z
    under the baseline, `mode` the normal mode it was judged under: nearest_mode). A value
    is away from the baseline where it lies beyond it (beyond_place), once the baseline has
    learnt more than TAIL_MIN_COUNT observations; away, it lies in the nearest second mode
    it is not beyond, or at a new place (_place). The feature dwells in a place until
    short_window values in a row lie elsewhere, and then moves to the place of the value
    that settles the move; each move into or out of a second mode counts in its
    mode_switches (odd: the feature dwells there; _switch). A move to a new place takes a
    mode (_mode_for_new_place), which starts afresh: a mode is a place the feature returns
    to, and N_MODES of them are kept (a fan's stop and its low speed beside its high
    one). The mode the feature dwells in learns each value that lies in
    it, whatever the regime says (it records where the feature goes, not whether that is
    normal), and a normal mode each value that lies in it, or that it judges within the
    baseline's reach, as the baseline learns its own, at `weight` of the rate (the
    regime's learning weight while the stream is abnormal: an incident beside the mode is
    no faster the normal than one beside the baseline); exact mean, then the baseline's
    rate `a`; limited to TAIL_LEVELS of the baseline's sd once past TAIL_MIN_COUNT."""
    col = hy.stats
    D = hy.D
    away = stats[col.base_count + d] > TAIL_MIN_COUNT and beyond_place(z_base, d, stats, stats32, col)
    here = -1
    for k in range(N_MODES):
        if stats32[col.mode_switches + k * D + d] % 2.0 == 1.0:
            here = k
    place = _place(v, away, d, stats, stats32, hy)
    if place == here:
        stats32[col.mode_run + d] = 0.0
    else:
        stats32[col.mode_run + d] += 1.0
        if stats32[col.mode_run + d] >= hy.short_window:
            if here >= 0:
                _switch(stats32, col.mode_switches + here * D + d)
            if place == N_MODES:
                k = _mode_for_new_place(d, stats32, hy)
                if k >= 0:  # else the feature dwells in no mode there
                    place = k
                    stats32[col.mode_count + k * D + d] = 0.0
                    stats32[col.mode_switches + k * D + d] = 0.0
            if 0 <= place < N_MODES:
                _switch(stats32, col.mode_switches + place * D + d)
            here = place
            stats32[col.mode_run + d] = 0.0
    # The mode v lies in, or, within the baseline's reach, the normal mode it was judged under.
    learn = place if 0 <= place < N_MODES else (mode if place < 0 else -1)
    if learn < 0:
        return
    j = learn * D + d
    normal = stats32[col.mode_switches + j] >= 2.0 * MODE_VISITS
    if normal or learn == here:
        n = stats32[col.mode_count + j] + 1.0
        stats32[col.mode_count + j] = n
        mean = stats[col.mode_mean + j]
        if n > TAIL_MIN_COUNT:
            sd = scaler_std(stats32[col.base_var + d], stats[col.base_mean + d], stats[col.res + d])
            v = min(max(v, mean - TAIL_LEVELS * sd), mean + TAIL_LEVELS * sd)
        stats[col.mode_mean + j] = mean + max(1.0 / n, a) * (weight if normal else 1.0) * (v - mean)


@kernel
def calibrated_tail(z, m, freqs, hy):
    """P(|Z| >= z) for a feature whose baseline learnt m > TAIL_MIN_COUNT observations while
    normal, by its own history, from its tail frequencies freqs (TAIL_LEVELS,) UF16 (the
    `tails` row of |z| or of the innovation), learnt from the last m - TAIL_MIN_COUNT: at
    the largest level k <= z (k = 1 .. TAIL_LEVELS), the feature's own frequency of |Z| > k
    (floored at the rule of succession's 1/(n + 2) for the n = m - TAIL_MIN_COUNT
    observations it rests on, at most the half-life's),
    falling towards the next level's frequency as the Gaussian tail falls from k, or, where
    slower, log-linearly (an exponential tail through both levels' frequencies): within a
    level the slower of the two, so that a heavy-tailed feature's p-values stay valid (with
    the Gaussian shape alone, Laplace noise in 32 features held the regime abnormal on 41 %
    of its rows). Beyond the top level, the Gaussian shape. The plain Gaussian tail below
    level 1."""
    tail_p = math.erfc(z / _SQRT2)
    k = int(min(z, TAIL_LEVELS))  # z may be ~1e27 (a value far off a constant feature): no int overflow
    if k == 0:
        return tail_p
    floor = 1.0 / (min(m - TAIL_MIN_COUNT, 1.0 / hy.scaler_alpha) + 2.0)
    freq = max(narrow_value(freqs[k - 1], UF16), floor)
    p = freq * tail_p / math.erfc(k / _SQRT2)
    if k < TAIL_LEVELS:
        p = max(p, freq * (max(narrow_value(freqs[k], UF16), floor) / freq) ** (z - k))
    return p


@kernel
def persistence(d, stats32, hy):
    """(rho, tau) of feature d's baseline z, as learnt while normal: its lag-1
    autocorrelation rho in [0, RHO_MAX] (between successive observations, where values are
    missing: rho_over_silence), and its integrated autocorrelation time tau, how
    many events one independent observation spans, in [1, 2 PERSISTENCE_HORIZON - 1]: the
    variance of z's running mean over PERSISTENCE_HORIZON events against what independent
    z would give it (1 for white noise; ~(1 + rho) / (1 - rho) for an AR(1); a cycle much
    shorter than the horizon averages out, so it counts as nearly independent; a random
    walk reaches the bound). (0, 1) until learnt; the running mean starts at 0, so tau is
    low, and the level's evidence counts nearly in full, in a feature's first hundreds of
    observations."""
    col = hy.stats
    sq = stats32[col.base_sq + d]
    if sq <= 0.0:
        return 0.0, 1.0
    rho = min(max(stats32[col.base_lag + d] / sq, 0.0), RHO_MAX)
    return rho, min(max(stats32[col.base_run_sq + d] / sq, 1.0), 2.0 * PERSISTENCE_HORIZON - 1.0)


@kernel
def rho_over_silence(rho, d, stats32, hy):
    """Feature d's persistence rho (learnt between its successive observations:
    persistence) over the events since its last observation, this one included (`absent`
    + 1), in units of its mean interval between observations (learn_rhythm): an AR(1)'s
    coefficient over k events is its one-event coefficient to the k-th power (rho is a mean
    over the silences seen, so where they vary this is near it, not exact). Where values
    are missing at random, observations come 1 to 20 events apart; under one rho a long
    silence's move was news of several sd, the innovations' tail learnt heavy, and a spike
    after a short silence fell within it. rho itself where the silence is the interval
    (every event gives the feature, or a steady rhythm learnt exactly)."""
    e = (stats32[hy.stats.absent + d] + 1.0) / max(stats32[hy.stats.interval + d], 1.0)
    return rho if e == 1.0 else rho ** e  # a power costs ~18 ns; four a feature an event


@kernel
def innovation(z, prev, rho):
    """|z|'s surprise given the previous z under an AR(1) of coefficient rho, in sd of the
    AR(1)'s noise: what is new in this event."""
    return abs(signed_innovation(z, prev, rho))


@kernel
def signed_innovation(z, prev, rho):
    """innovation with its sign: z less what the previous z says, in sd of the AR(1)'s noise."""
    return (z - rho * prev) / math.sqrt(1.0 - rho * rho)


@kernel
def regime_p_values(v, d, stats, stats32, tails, hy):
    """(level's p-value, innovation's p-value, tau, recent mean's p-value) of value v of
    feature d, whose baseline learnt m > TAIL_MIN_COUNT observations while normal
    (`_regime_judges`), under the regime's baseline, or its second mode where that is a
    normal one and nearer (nearest_mode; regime_evidence): the first two
    calibrated to the feature's own tail frequencies (tails (D, T, TAIL_LEVELS)) and
    floored at 1/(m + 2); the last recent_p_value's."""
    col = hy.stats
    z, mode, _ = nearest_mode(v, d, stats, stats32, hy)
    rho, tau = persistence(d, stats32, hy)
    rho = rho_over_silence(rho, d, stats32, hy)
    m = stats[col.base_count + d]
    floor = 1.0 / (m + 2.0)
    level = max(calibrated_tail(abs(z), m, tails[d, TAILS_LEVEL], hy), floor)
    u = innovation(z, previous_z(z, mode, rho, d, stats, stats32, hy), rho)
    news = max(calibrated_tail(u, m, tails[d, TAILS_NEWS], hy), floor)
    return level, news, tau, recent_p_value(z, d, m, stats32, hy)


@kernel
def recent_p_value(z, d, m, stats32, hy):
    """The two-sided p-value of the recent mean of feature d's z (an EWMA over
    hy.short_window events, this one's z included) against its own spread while normal,
    learnt from the recent means of the last m - TAIL_MIN_COUNT of the m observations its
    baseline learnt while normal (1 until any), and never below a
    mean of independent z's, h / (2 - h) for the EWMA's rate h (a spread that started
    late, in an upgraded snapshot, is not taken for a steady feature): Student's t with
    as many degrees of freedom as the spread rests on independent recent means, through
    Wallace's normal approximation (its p-values err high, by up to 1.6x at t = 30).
    Not floored at the rule of succession, as the level and the news are: a mean of many
    events, unlike one event, is near Gaussian, and the t distribution already says how
    little a short history of recent means can claim."""
    col, h = hy.stats, 1.0 / hy.short_window
    sq = stats32[col.base_recent_sq + d]
    if sq <= 0.0:
        return 1.0
    sq = max(sq, h / (2.0 - h))
    r = stats32[col.base_recent + d]
    r += h * (min(max(z, -TAIL_LEVELS), TAIL_LEVELS) - r)
    t = abs(r) / math.sqrt(sq)
    nu = max(min(m - TAIL_MIN_COUNT, (2.0 - hy.scaler_alpha) / hy.scaler_alpha) * h / (2.0 - h), 1.0)
    return math.erfc(math.sqrt(nu * math.log1p(t * t / nu)) * (8.0 * nu + 1.0) / (8.0 * nu + 3.0) / _SQRT2)


@kernel
def recent_span(tau, hy):
    """Events over which consecutive recent means (recent_p_value) of a feature of
    integrated autocorrelation time tau overlap: the EWMA's own span, 2 w - 1 for w =
    short_window, plus what tau adds to it."""
    return 2.0 * hy.short_window - 1.0 + tau - 1.0


@kernel
def _log_lr(p):
    """The log likelihood ratio of abnormal to normal for an event of p-value p: under
    the normal state p is uniform, under the abnormal state Beta(REGIME_ALTERNATIVE, 1)."""
    return math.log(REGIME_ALTERNATIVE) - (1.0 - REGIME_ALTERNATIVE) * math.log(p)


@kernel
def _weighted(p, w):
    """A p-value p divided by its weight w in [0, 1] (weighted Bonferroni), at most 1; 1 for
    a weight of 0 (a feature not blamed at all once an incident is certain)."""
    return p / w if w > p else 1.0


@kernel
def _regime_judges(x, d, stats, hy):
    """Whether the regime judges feature d of event x: observed, judged (not context beside
    measurements), and calibrated: its baseline learnt more than TAIL_MIN_COUNT earlier
    observations while the stream was normal. A feature first seen during an incident is
    not judged until the stream is normal again: its tails, persistence and recent spread
    learn only then, and judged uncalibrated it held the regime abnormal for good."""
    return not math.isnan(x[d]) and stats[hy.stats.base_count + d] > TAIL_MIN_COUNT and judged(d, stats, hy)


@kernel
def regime_evidence(x, keep, stats, stats32, tails, findings, hy):
    """The log likelihood ratio (abnormal to normal) of event x (D,) under the regime's
    baseline and tail frequencies (tails (D, T, TAIL_LEVELS)), NaN when no feature
    can be judged yet. Fills two rows of findings (findings_rows(D), D): FIND_P, each judged
    feature's smallest p-value; FIND_BLAME, every feature's blame after this event (what
    `regime_learn` stores). Three p-values per observed feature (regime_p_values), the
    first two calibrated to its own history (calibrated_tail) and floored at 1/(m + 2)
    after the m observations its baseline learnt while normal (no tail can claim more than
    the count supports: the rule of succession; a feature that never varied is not 1e9 sd
    away on its first change):
    - the level: |z|, how far the value is from the baseline mean;
    - the news: the innovation, how far it is from where the feature's persistence
      (rho) says it would be after the previous value;
    - the recent level: the mean of z over the short window against its own spread
      (recent_p_value), which a lasting shift too small for one event to show moves.

    Which feature: each feature's evidence is weighed by w_d (the news's p-value divided
    by it, weighted Bonferroni; the level's and the recent level's likelihood ratios
    multiplied by it, a weighted mean: both valid for any weights fixed before the event
    that sum to at most 1), so one broken feature is not diluted by the others once it is
    blamed. The weights are the regime's blame,
    P(feature d is the abnormal one | the stream is abnormal), predicted for this event
    as an HMM whose abnormal state has a sub-state per feature predicts it: the share
    `keep` of P(abnormal) that continues the last event's incident keeps its blame
    (stats32's base_blame, the posterior after the last event), the rest enters afresh,
    uniform over the m features judged now; all blame 0 (the first event judged): 1/m
    each, Bonferroni's. While the stream is normal its P(abnormal) sits well above the
    entry probability, so the blame carries over then too, onto the features whose
    evidence has been largest lately. So the price of not knowing which feature broke is paid once, when an
    incident begins, instead of by every event of it (ln(m) / 2 to ln(m) nats an event
    under the Beta alternative, which lost one broken feature among many). The blame after the event
    is w_d times the feature's own likelihood ratio (its three kinds mixed as below, its
    p-values taken once), normalised: the sub-state model's posterior given that the
    stream is abnormal (P(abnormal) itself takes the weighted evidence below, not that
    model's likelihood); a feature not judged now has a likelihood ratio of 1, in the
    blame and in each kind of evidence alike: the event says nothing of it. In the level's
    and the recent level's means it adds its weight; the news is then the mixture of its
    weight, at 1, and the weighted Bonferroni over the judged features with their weights
    renormalised (an e-value still: each part's expectation is at most 1). Before
    2026-12-07 such a weight counted nothing, so that each event of interleaved sensors'
    readings that missed the blamed feature spoke for the normal state.

    Overlapping evidence counts once: a feature's level's likelihood ratio LR(p) is taken
    to the power 1/tau, tau its integrated autocorrelation time (a wandering level, a random
    walk, says little per event, while a jump says all it has through the innovation), its
    recent mean's to 1/span, the span of its window and that tau (2 w - 1 + tau - 1 events,
    w = short_window). The level and the recent level are the weighted means of the
    features' ratios so counted, the news the likelihood ratio of the weighted Bonferroni
    p-value (the smallest p / w), and the three are mixed as likelihood ratios, the level and
    the news 3/8 each (their half each before the recent level, scaled by 3/4) and the
    recent level 1/4. Each kind, and so the mix, has an expectation of at most 1 under the
    normal state (an e-value: LR^(1/span) is at most 1 in expectation by Jensen's
    inequality, and the weights sum to at most 1), so the regime does not drift towards
    abnormal on a normal stream. The largest of the features' LR(p / w)^(1/span) would not
    be: it exceeds 1 in expectation where the spans differ (1.12 for two features of spans
    1 and 50, 1.22 for 1 and 400)."""
    D, col = hy.D, hy.stats
    m = 0
    held = 0.0
    spare = 0.0  # the blame of the features not judged now
    for d in range(D):
        now = _regime_judges(x, d, stats, hy)
        m += now
        held += stats32[col.base_blame + d]
        if not now:
            spare += stats32[col.base_blame + d]
    if held <= 0.0:
        keep = 0.0
    unjudged = keep * spare  # their weight: a likelihood ratio of 1 in each kind
    judged_share = 1.0 - unjudged
    total = 0.0
    level = 0.0
    recent = 0.0
    news = -math.inf
    for d in range(D):
        w = keep * stats32[col.base_blame + d]
        if not _regime_judges(x, d, stats, hy):
            findings[FIND_BLAME, d] = w
            total += w
            level += w
            recent += w
            continue
        w += (1.0 - keep) / m
        p, pn, tau, rec = regime_p_values(bounded(x[d]), d, stats, stats32, tails, hy)
        findings[FIND_P, d] = min(p, pn, rec)
        span = recent_span(tau, hy)
        own_level = math.exp(_log_lr(p) / tau)
        own_recent = math.exp(_log_lr(rec) / span)
        level += w * own_level
        recent += w * own_recent
        news = max(news, _log_lr(_weighted(pn, w / judged_share if judged_share > 0.0 else 0.0)))
        own = 0.375 * (own_level + math.exp(_log_lr(pn))) + 0.25 * own_recent
        findings[FIND_BLAME, d] = w * own
        total += w * own
    for d in range(D):
        findings[FIND_BLAME, d] = findings[FIND_BLAME, d] / total if total > 0.0 else 0.0
    if m == 0:
        return math.nan
    return math.log(0.375 * (level + unjudged + judged_share * math.exp(news)) + 0.25 * recent)


@inlined_kernel
def regime_step(x, s, streams, findings, hy):
    """One forward step of stream slot s's regime model with event x (D,): the predicted
    P(abnormal) after the transition (regime_enter, regime_exit), times the likelihood
    ratio of the event's evidence (regime_evidence, which fills the scratch `findings`'s
    rows FIND_P and FIND_BLAME, weighing the features by the share of the predicted
    P(abnormal) that continues the last event's incident). Returns (P(abnormal), the
    state to store), (0, 0) and no blame during warm-up. Changes no state (`regime_learn` stores it,
    once the event is learnt): the state is the new log-odds relative to the prior, so
    that a reset row is at it."""
    stats, stats32, col = streams.stats[s], streams.stats32[s], hy.stats
    if streams.counters[s, C_SEEN] < hy.warmup:
        for d in range(hy.D):
            findings[FIND_BLAME, d] = 0.0
        return 0.0, 0.0
    prior = _logit(hy.regime_enter)
    abnormal = 1.0 / (1.0 + math.exp(-(prior + stats32[col.regime])))
    kept = abnormal * (1.0 - hy.regime_exit)
    abnormal = kept + (1.0 - abnormal) * hy.regime_enter
    log_odds = _logit(abnormal)
    e = regime_evidence(x, kept / abnormal, stats, stats32, streams.tails[s], findings, hy)
    if not math.isnan(e):
        log_odds += e
    log_odds = min(max(log_odds, -_REGIME_CLAMP), _REGIME_CLAMP)
    return 1.0 / (1.0 + math.exp(-log_odds)), log_odds - prior


@inlined_kernel
def regime_learn(state, findings, s, streams, hy):
    """Store the state `regime_step` gave a learnt event, and the blame it left in
    findings (findings_rows(D), D), and count the event in the stream's abnormal events less its
    normal ones (between 0 and the scaler's half-life, `new_normal`, which update_baseline
    asks whether it has reached, and learn_cycle whether it is under a period; an event
    without a value counts by the state the transitions leave) (not during warm-up, where
    it made no step)."""
    if streams.counters[s, C_SEEN] >= hy.warmup:
        col = hy.stats
        streams.stats32[s, col.regime] = state
        for d in range(hy.D):
            streams.stats32[s, col.base_blame + d] = findings[FIND_BLAME, d]
        run = streams.stats32[s, col.abnormal_run]
        streams.stats32[s, col.abnormal_run] = min(run + 1.0, hy.new_normal) if state + _logit(
            hy.regime_enter) >= 0.0 else max(run - 1.0, 0.0)


# Weyl sequences (the golden ratio's and the plastic number's) for the tail frequencies'
# dither: frac(n G + k P) is spread evenly over [0, 1) along the observations n of each level k.
_DITHER_G = 0.6180339887498949
_DITHER_P = 0.7548776662466927


@kernel
def _learn_tail(freqs, z, rate, n):
    """One step of the frequencies freqs (TAIL_LEVELS,) UF16 of |z| > 1 .. TAIL_LEVELS, at
    the dither's index n (a count of the feature's observations). Stored dithered
    (compact.dithered_bits): a frequency of 1e-3 decays by 7e-7 per event at the default
    rate, a third of its unit in the last place."""
    for k in range(TAIL_LEVELS):
        f = narrow_value(freqs[k], UF16)
        u = (n * _DITHER_G + (k + 1) * _DITHER_P) % 1.0
        freqs[k] = dithered_bits(f + rate * ((1.0 if z > k + 1.0 else 0.0) - f), UF16, u)


@kernel
def lone_weight(hy):
    """The weight at which the tail frequencies learn a lone alert (kernels_cpu.lone_alert): point
    anomalies as frequent as the calibration's tail, 1 - CALIB_P of the events, come to
    rest on TAIL_TRUST exceedances in the scaler's memory (the point test's floor), and so
    become the stream's habit; rarer ones stay news."""
    return min(TAIL_TRUST * hy.scaler_alpha / (1.0 - CALIB_P), 1.0)


@kernel
def update_baseline(stats, stats32, tails, corr, corr_tails, findings, x, abnormal, lasting, lone, a, hy):
    """The regime's baseline (mean, variance per feature) learns event x (D,) as the scaler
    does but at rate `a` (baseline_rate), over the observations it learnt while the stream
    was normal (base_count, m): exact moments, judged in hindsight at the TAIL_MIN_COUNT-th
    (keep_first_value), then that rate; at hy.regime_learn_weight of that rate while the
    stream is abnormal, but for a feature with no normal observation yet, whose mean
    follows its values (at a tenth of the rate a first value would leave the mean 90 %
    short of it). The value is limited to TAIL_LEVELS baseline sd from the mean (a 70 sd
    jump would otherwise widen the baseline's sd threefold in one event and hide itself).
    While the stream is normal, each feature counts the observation. Past TAIL_MIN_COUNT
    of them, it learns its tail frequencies (of |z| and of the innovation, in tails (D,
    T, TAIL_LEVELS)) and its persistence (`persistence`: z clamped to +-TAIL_LEVELS,
    so that one huge value cannot swamp the running means) and the spread of its recent
    mean (recent_p_value), at rates and floors by that count; while the stream is
    abnormal, once its abnormal events outnumber its normal ones by the scaler's half-life
    (`lasting`, regime_learn's count), the tail frequencies and the recent mean's spread
    learn at hy.regime_learn_weight of that rate, so that a lasting change of the noise
    or the rhythm becomes the normal too, and an incident shorter than that does not
    teach the calibration (the persistence learns only while normal: its moments are not
    centred, so a shift the baseline has not learnt yet would read as a random walk); the
    running and recent means of z and the previous z follow every observation. While
    normal, the tail frequencies learn a `lone` alert (kernels_cpu.lone_alert) at
    lone_weight of their rate, so that point anomalies rarer than the calibration's tail
    stay news. Each value is judged under the feature's normal mode nearest it
    (nearest_mode: the baseline, or a second mode the feature has dwelt in and left), and a
    value judged under a second mode teaches it (learn_modes) instead of the baseline.
    First, the news given the others' learns the event as the tails do
    (learn_news_given_others; corr (2, Dc, Dc), corr_tails (Dc, TAIL_LEVELS), `findings`
    its scratch). Runs after update_value_stats has counted the
    observation, and before learn_rhythm (`absent` is still the silence before it)."""
    col = hy.stats
    h = 1.0 / PERSISTENCE_HORIZON
    weight = hy.regime_learn_weight if abnormal else 1.0
    lone_factor = lone_weight(hy) if lone and not abnormal else 1.0
    learn_news_given_others(x, stats, stats32, corr, corr_tails, findings, abnormal,
                            0.0 if abnormal and not lasting else weight, lone_factor, a, hy)
    for d in range(hy.D):
        v = x[d]
        if math.isnan(v):
            continue
        v = bounded(v)
        z, mode, z_base = nearest_mode(v, d, stats, stats32, hy)
        zc = min(max(z, -TAIL_LEVELS), TAIL_LEVELS)
        if not abnormal:
            stats[col.base_count + d] += 1.0
        m = stats[col.base_count + d]
        if m > TAIL_MIN_COUNT and (lasting or not abnormal):  # a z under a baseline of TAIL_MIN_COUNT or more
            rate = max(1.0 / (m - TAIL_MIN_COUNT), a) * weight
            rho = rho_over_silence(persistence(d, stats32, hy)[0], d, stats32, hy)
            prev = previous_z(z, mode, rho, d, stats, stats32, hy)
            n = stats[col.count + d] if abnormal else m  # the dither's index advances: m stands while abnormal
            tail_rate = rate * lone_factor
            _learn_tail(tails[d, TAILS_LEVEL], abs(z), tail_rate, n)
            _learn_tail(tails[d, TAILS_NEWS], innovation(z, prev, rho), tail_rate, n)
            if not abnormal:  # the moments are not centred: a shift not yet learnt would read as persistence
                stats32[col.base_lag + d] += rate * (zc * min(max(prev, -TAIL_LEVELS), TAIL_LEVELS)
                                                     - stats32[col.base_lag + d])
                stats32[col.base_sq + d] += rate * (zc * zc - stats32[col.base_sq + d])
                run = stats32[col.base_run + d]
                stats32[col.base_run_sq + d] += rate * (run * run * (2.0 - h) / h - stats32[col.base_run_sq + d])
            recent = stats32[col.base_recent + d] + (zc - stats32[col.base_recent + d]) / hy.short_window
            stats32[col.base_recent_sq + d] += rate * (recent * recent - stats32[col.base_recent_sq + d])
        stats32[col.base_prev + d] = z_base
        stats32[col.base_run + d] += h * (zc - stats32[col.base_run + d])
        stats32[col.base_recent + d] += (zc - stats32[col.base_recent + d]) / hy.short_window
        learn_modes(v, d, z_base, mode, stats, stats32, a, weight, hy)
        if mode >= 0:
            continue
        mean = stats[col.base_mean + d]
        sd = scaler_std(stats32[col.base_var + d], mean, stats[col.res + d])
        if m > TAIL_MIN_COUNT:
            v = min(max(v, mean - TAIL_LEVELS * sd), mean + TAIL_LEVELS * sd)
        alpha = 1.0 if m <= 1.0 else max(1.0 / m, a) * weight
        stats[col.base_mean + d], stats32[col.base_var + d] = ewma_update(mean, stats32[col.base_var + d], v, alpha)
        if not abnormal and m <= TAIL_MIN_COUNT:
            keep_first_value(v, d, int(m), stats, stats32, hy)


@kernel
def keep_first_value(v, d, m, stats, stats32, hy):
    """Keep value v of feature d, its baseline's m-th observation while normal (1 ..
    TAIL_MIN_COUNT), for the hindsight at the last (first_values_in_hindsight): the largest
    and the smallest so far apart, the others as their mean and sum of squared deviations
    (Welford's, exact whatever the values' size: a reading of 1e18 among values near 10
    goes into no sum). Only the largest or the smallest of n values can lie more than
    sqrt(n - 2) sd of the others from their mean (Samuelson's inequality), so they are
    all the hindsight needs apart. Nothing is kept where they are unknown (NaN: a snapshot
    from before format 27) until the baseline starts again."""
    col = hy.stats
    high, low = col.first_high + d, col.first_low + d
    if m == 1:
        stats[high] = v
        stats[low] = v
        stats[col.first_mean + d] = 0.0
        stats[col.first_sq + d] = 0.0
    elif math.isnan(stats[high]):
        return
    elif m == 2:
        stats[high], stats[low] = max(stats[high], v), min(stats[low], v)
    else:
        other = v
        if v > stats[high]:
            other, stats[high] = stats[high], v
        elif v < stats[low]:
            other, stats[low] = stats[low], v
        stats[col.first_mean + d], stats[col.first_sq + d] = _welford(stats[col.first_mean + d],
                                                                      stats[col.first_sq + d], m - 3, other)
    if m == TAIL_MIN_COUNT:
        first_values_in_hindsight(d, stats, stats32, hy)


@kernel
def first_values_in_hindsight(d, stats, stats32, hy):
    """Feature d's baseline once it has learnt its first TAIL_MIN_COUNT observations while
    normal (kept by keep_first_value), its largest and its smallest each judged by the
    others as the baseline judges every later value (update_baseline): one more than
    TAIL_LEVELS of their sd from their mean counts as limited to that, and the baseline's
    mean and variance become the exact moments of the values so limited. Learnt as they
    came, a wild reading among them (a sensor's boot value, a 1,000 among readings near
    10) set the sd by which the regime and the point test judge the feature for thousands
    of events. Nothing changes where neither is that far, or where they are unknown. Two
    wild readings, on either side, hide each other (each is among the other's others).
    Values learnt while the stream was abnormal among them are left out of the moments
    rebuilt (they come only where a feature starts within an incident of others)."""
    col = hy.stats
    high, low = stats[col.first_high + d], stats[col.first_low + d]
    if math.isnan(high):
        return
    n = TAIL_MIN_COUNT - 2.0  # the others of both
    mean, sq, res = stats[col.first_mean + d], stats[col.first_sq + d], stats[col.res + d]
    up = _within_the_others(high, _welford(mean, sq, n, low), n + 1.0, res)
    down = _within_the_others(low, _welford(mean, sq, n, high), n + 1.0, res)
    if up == high and down == low:
        return
    mean, sq = _welford(mean, sq, n, up)
    mean, sq = _welford(mean, sq, n + 1.0, down)
    stats[col.base_mean + d] = mean
    stats32[col.base_var + d] = sq / (n + 2.0)


@kernel
def _welford(mean, sq, k, x):
    """(mean, sum of squared deviations) of k values with x added (Welford's update)."""
    delta = x - mean
    mean += delta / (k + 1.0)
    return mean, sq + delta * (x - mean)


@kernel
def _within_the_others(v, others, k, res):
    """Value v limited to TAIL_LEVELS sd of k others (`others`: their mean and sum of
    squared deviations; scaler_std's floors, the resolution `res`) from their mean."""
    mean, sq = others
    reach = TAIL_LEVELS * scaler_std(sq / k, mean, res)
    return min(max(v, mean - reach), mean + reach)


# -------------------------------------------------------------------------- attribution


@inlined_kernel
def feature_evidence(evidence, x, s, streams, xn, findings, hy):
    """Attribution: the evidence each feature of event x (D,) of stream slot s carries on
    its own, in -log10 units, into evidence (D,), from what judging the event found
    (findings (findings_rows(D), D), written by `value_surprise` and `regime_step`, which must
    judge it first). Per feature the largest of: the two-sided Gaussian tail of its largest
    channel input (|z|, |step|, |seasonal residual|, and |forecast error| from the stream's
    forecast and xn (D,), the event normalised by score_event, where the forecast is
    judged: not across a gap); its range novelty, graded
    as in value_surprise; the smallest of its level's, its innovation's and its recent
    mean's p-values under the regime's baseline (regime_p_values); and for the feature
    whose innovation the others explain least (_least_explained), the p-value of its
    residual given them (others_p_value). Range novelty alone
    for a feature that is not `judged`; 0 for a missing feature, one with no history, and
    during warm-up (where the score is 0). A record's `contributors` are the largest
    shares of these (records.py)."""
    stats, col = streams.stats[s], hy.stats
    warm = streams.counters[s, C_SEEN] >= hy.warmup
    disagrees = _least_explained(findings, hy)
    for d in range(hy.D):
        n = stats[col.count + d]
        evidence[d] = 0.0
        if not warm or math.isnan(x[d]) or n < 1.0:
            continue
        e = findings[FIND_NOVELTY, d]
        a = findings[FIND_INPUT, d]
        if not math.isnan(a):
            if forecast_judged(d, streams.stats32[s], findings, hy) and not straddles_gap(s, streams, hy):
                a = max(a, abs(streams.pred[s, d] - xn[d]))
            if not math.isnan(findings[FIND_SEASONAL, d]):
                a = max(a, findings[FIND_SEASONAL, d])
            e = max(e, neg_log10_tail(min(a, _TAIL_Z_MAX)) - _LOG10_2)
            if _regime_judges(x, d, stats, hy):
                e = max(e, -math.log10(findings[FIND_P, d]))
            if d == disagrees:
                e = max(e, -math.log10(others_p_value(d, stats, streams.corr_tails[s], findings, hy)))
        evidence[d] = e


@kernel
def _least_explained(findings, hy):
    """The feature of the strictly largest residual given the others (findings' row
    FIND_CORR_E; -1: none tested, or a tie): e_d^2 is what leaving feature d out takes
    from u_J' Q u_J (news_given_others), so that feature accounts for the event's disagreement best. A spike in
    one feature moves the residuals of the features related to it too (of two, both by
    the same amount: a tie, which names neither)."""
    best = -1
    top = 0.0
    tied = False
    for d in range(hy.D):
        e = abs(findings[FIND_CORR_E, d])
        if math.isnan(e) or e < top:
            continue
        tied = e == top and best >= 0
        if not tied:
            best, top = d, e
    return -1 if tied else best
