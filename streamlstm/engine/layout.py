"""The per-stream state layout: names for the scoring channels, the columns of a stream's
statistics rows, the bytes of its seasonal bins and its counters. Kernels, scoring, state
allocation, snapshots and tests use these names; no offset is written by hand anywhere else.

A stream's state (state.StreamArrays) besides its recurrent state and BPTT window:
  stats     (W,) float64       the float64 columns of `StatsLayout`, W = stats_layout(D, cycle).width
  stats32   (W32,) float32     its float32 columns, W32 = stats_layout(D, cycle).width32
  ring      (C, w) uint16      each channel's inputs of the last w events, bfloat16
                               (C = channels(cycle_max > 0): without an own cycle, no row
                               for its channel)
                               (compact.py; NaN: none)
  tails     (D, T, TAIL_LEVELS) uint16  the calibration, unsigned 16-bit floats
                               (compact.UF16): per feature, how often its |z| under the
                               baseline (TAILS_LEVEL), its innovation (TAILS_NEWS) and, with
                               an own cycle, its residual against it (TAILS_CYCLE) have
                               exceeded 1, 2, ..., TAIL_LEVELS while normal, and at
                               `regime_learn_weight` through a lasting change (T = tail_rows)
  records   (D, 2, 2) uint16  per feature, the new highs (REC_HIGH) and new lows (REC_LOW)
                               it set in the previous (REC_PREV) and the current (REC_CUR)
                               block of its values (scoring.record_block), saturating:
                               whether records come too often to be news (scoring.trend_foretold)
  bins      (D, B, BIN_BYTES) uint8  the seasonal profile: per feature and bin of the day,
                               the mean and variance (float24) of the deviation
                               from the running mean and the visits (saturating), at the
                               byte offsets BIN_*
  cycle     (D, 3, Lc) float32  the stream's own cycle (scoring.cycle_residual), Lc =
                               `cycle_max`: per feature, row CYC_DEV its deviations from
                               the running mean over the last Lc events (a ring; NaN: none,
                               or an outlier from its cycle), row CYC_LAG the mean
                               squared difference of values tau = 1..Lc events apart and
                               row CYC_PAIRS how many such pairs it has learnt (exact to
                               2^24, then it stands: only compared with 1 / the scaler's
                               rate and TAIL_MIN_COUNT)
  corr      (2, Dc, Dc) float32  each feature's news given the others' (scoring.news_given_others),
                               Dc = corr_features(D): plane CORR_COV the running second
                               moments of the features' innovations less the identity (a
                               reset row is the prior of unrelated features), plane CORR_PREC
                               the inverse of (I + CORR_COV + scoring.CORR_RIDGE I)
  corr_tails (Dc, TAIL_LEVELS) uint16  how often each feature's residual given the others has
                               exceeded 1, 2, ..., TAIL_LEVELS, learnt as `tails` are
  counters  (N_COUNTERS,) int64
"""

from __future__ import annotations

from typing import NamedTuple

# Scoring channels (scoring.py): each sees one non-negative input per event.
CH_ERROR = 0  # the model's prediction error
CH_VALUE = 1  # distance from the running mean, in sd
CH_STEP = 2  # step from the previous value, in typical steps
CH_SEASONAL = 3  # distance from the usual value at this time of day
CH_CYCLE = 4  # distance from the value the stream's own cycle expects (the last: none without a cycle)
N_CHANNELS = 5
CHANNEL_NAMES = ("error", "value", "step", "seasonal", "cycle")


def channels(cycle: bool) -> int:
    """The channels a model has: all, or without an own cycle (`cycle_max` 0: snapshot
    formats 6 to 15 too) all but the last, so that such a stream carries none of its state."""
    return N_CHANNELS if cycle else CH_CYCLE

# What judging an event found per feature: the rows of a workspace's `findings` (D columns),
# which attribution (scoring.feature_evidence) reads instead of judging each feature again.
FIND_INPUT = 0  # the larger of |z| and |step|, the value channels' inputs (NaN: not judged)
FIND_SEASONAL = 1  # |residual against the feature's cycle|, of the day or its own (NaN: none)
FIND_NOVELTY = 2  # the range novelty's evidence, graded (0: none)
FIND_P = 3  # the smallest of the regime's p-values (level, news, recent level)
FIND_BLAME = 4  # the regime's blame of the feature after this event (scoring.regime_evidence)
FIND_GAP = 5  # 1 where the feature's last observation is across a gap (kernels_cpu.mark_gaps), else 0
FIND_CYCLE = 6  # the signed residual against the feature's own cycle, in its sd (NaN: none)
FIND_NEWS = 7  # the signed innovation the point test judges (scoring.judged_innovations; NaN: not judged)
FIND_CORR_E = 8  # its residual given the other features' innovations, in its sd (NaN: not tested)
FIND_UNKNOWN = 9  # news_given_others' scratch: the features it knows and cannot judge now, by index,
FIND_IMPUTED = 10  # and their innovations as the judged features' say they are, in that order
FIND_ROWS = 11
# ... followed by corr_features(D) rows of scratch for news_given_others' inversion (findings_rows).

# The calibration: each feature's frequencies of |z| > 1, 2, ..., TAIL_LEVELS and of
# |innovation| > 1, 2, ..., TAIL_LEVELS (scoring.regime_p_values), and with an own cycle of
# its |residual| against it (scoring.point_surprise).
TAIL_LEVELS = 6
TAILS_LEVEL = 0
TAILS_NEWS = 1
TAILS_CYCLE = 2  # with an own cycle: its residual's (scoring._learn_cycle_tail), which the point test reads


def tail_rows(cycle: bool) -> int:
    """The rows of tail frequencies a feature has: the level's and the news's, and with an
    own cycle its residual's."""
    return TAILS_CYCLE + 1 if cycle else TAILS_CYCLE

# Each feature's news given the others' (scoring.news_given_others): the two planes of a
# stream's `corr` table, for streams of 2 to CORR_MAX_D features. The bound keeps the table
# (8 D^2 bytes: 32 KiB at 64) and the inversion's D^3 work per refresh within reason.
CORR_COV = 0
CORR_PREC = 1
CORR_MAX_D = 64


def corr_features(D: int) -> int:
    """The features the news-given-the-others test covers in a stream of D: all of them
    for 2 to CORR_MAX_D, else none (one feature has no others)."""
    return D if 2 <= D <= CORR_MAX_D else 0


def findings_rows(D: int) -> int:
    """The rows of a workspace's `findings` (D columns): FIND_ROWS, then a square of
    scratch for the news given the others' where the stream's features have it."""
    return FIND_ROWS + corr_features(D)


# The second normal modes a feature can have (scoring.nearest_mode): places it dwells in
# away from its baseline, such as a pump's rest, or a fan's low speed and its stop.
N_MODES = 2

# A feature's record counts (`records`): by direction, then by block.
REC_HIGH = 0
REC_LOW = 1
REC_PREV = 0
REC_CUR = 1

# A seasonal bin's bytes (compact.py reads and writes them).
BIN_MEAN = 0  # 3 bytes: float24
BIN_VAR = 3  # 3 bytes: float24
BIN_VISITS = 6  # 1 byte
BIN_BYTES = 7

# The rows of a feature's `cycle` table.
CYC_DEV = 0
CYC_LAG = 1
CYC_PAIRS = 2
N_CYC = 3

# Counters (int64).
C_SEEN = 0  # events seen with a value (the warm-up's and the windows' count)
C_WIN = 1  # inputs in the BPTT window
C_SINCE = 2  # events since the last BPTT update (k1 phase)
C_RNG = 3  # xorshift64 state (input dropout)
C_QUIET = 4  # events left in the alert cooldown
C_TICKS = 5  # events learnt, with a value or not: the own cycle's clock (events without one still take time)
N_COUNTERS = 6


class StatsLayout(NamedTuple):
    """Column offsets in the two statistics rows of a stream of D features. A feature
    block holds D columns (feature d at offset + d); a mode block holds N_MODES of them
    (second mode k of feature d at offset + k D + d); a channel block holds three per
    channel (channel c's long-term mean, variance and updates at channels + 3c + 0, 1, 2).

    `stats` (float64) holds the levels, values in the stream's own units, which float32
    would round too coarsely (1.6e9 by 128, where its sd may be 1), the resolution (a step
    may be below float32's 1e-38) and the observation counts (exact past float32's 2^24).
    `stats32` (float32) holds the rest: spreads, rates and surprises, which need a few
    digits (a spread below float32's range is under the scaler's sd floor, 1e-9). Its EWMA
    steps stall only below ~7e-4 of the value at the slowest rate, long_alpha (float32
    keeps 6e-8)."""

    # stats (float64)
    mean: int  # feature block: running mean (the input scaler and the value channel)
    count: int  # feature block: observations
    last: int  # feature block: last observed value
    lo: int  # feature block: smallest value seen
    hi: int  # feature block: largest value seen
    res: int  # feature block: the resolution, the smallest non-zero |v - last| seen (0: none yet)
    base_mean: int  # feature block: the regime's baseline mean (learns slower while abnormal)
    base_count: int  # feature block: observations the baseline (or the second mode) learnt while the
    #                  stream was normal (its calibration rests on those past scoring.TAIL_MIN_COUNT)
    last_time: int  # with an own cycle: the time of the stream's last event that had one (NaN: unknown)
    mode_mean: int  # mode block: each second mode's mean (scoring.nearest_mode), a place where the
    #                 feature dwells when away from the baseline
    corr_count: int  # feature block, for streams the news-given-the-others test covers: the
    #                  innovations each feature taught its second moments (0: unknown to them)
    # The baseline's first observations while normal, judged in hindsight (scoring.keep_first_value):
    first_high: int  # feature block: the largest (NaN: unknown)
    first_low: int  # feature block: the smallest
    first_mean: int  # feature block: the mean of the others
    first_sq: int  # feature block: the others' sum of squared deviations from their mean
    width: int  # columns of `stats`
    # stats32 (float32)
    var: int  # feature block: running variance
    step: int  # feature block: mean absolute step |v - last| (the step channel's unit)
    base_var: int  # feature block: the regime's baseline variance
    channels: int  # channel block: each channel's long-term Gaussian
    penalty: int  # the alert penalty P (-log10 units)
    quantile: int  # the running quantile q of the channel surprise (self-calibration)
    regime: int  # the regime's log-odds of "abnormal", relative to its prior (scoring.regime_step)
    day_old: int  # when the stream is a day old: its first timestamp + 1 day (0: none yet;
    #               the time-of-day profile answers from then on, scoring.seasonal_bin)
    # The regime's persistence estimates (scoring.persistence):
    base_prev: int  # feature block: the previous observation's signed z under the baseline
    base_lag: int  # feature block: running mean of z times the previous z, while normal
    base_sq: int  # feature block: running mean of z squared, while normal
    base_run: int  # feature block: running mean of z over scoring.PERSISTENCE_HORIZON events
    base_run_sq: int  # feature block: running mean of base_run's square over its square for
    #                   independent z, while normal (the integrated autocorrelation time)
    base_recent: int  # feature block: running mean of z (clamped) over the short window (scoring.recent_p_value)
    base_recent_sq: int  # feature block: running mean of base_recent's square, while normal
    base_blame: int  # feature block: P(this feature is the one that is abnormal | the stream is
    #                  abnormal), after the last event (scoring.regime_evidence; all 0: none yet)
    # The stream's own cycle (scoring.cycle_residual):
    cycle_period: int  # feature block: the period found, in events (0: none)
    cycle_var: int  # feature block: variance of the residual against it (exact, then running: by cycle_count)
    cycle_level: int  # feature block: running mean, over the short window, of the difference from a period ago
    cycle_count: int  # feature block: residuals against the period learnt while the stream was normal
    #                   (its tail frequencies rest on those past scoring.TAIL_MIN_COUNT)
    spacing: int  # with an own cycle: the stream's running mean time between events (scoring.learn_spacing)
    long_rate: int  # with an own cycle: how often an interval lasted 1.5 spacings or more
    abnormal_run: int  # the regime's abnormal events less its normal ones, not below 0 (scoring.regime_learn)
    mode_count: int  # mode block: the values each second mode learnt (0: none yet, a free mode; in
    #                  float32 it stands at 2^24, where the mean's rate is at most 6e-8 above the baseline's)
    mode_switches: int  # mode block: the feature's settled moves into and out of each second mode
    #                     (odd: it dwells there; scoring.learn_modes)
    mode_run: int  # feature block: its observations in a row away from the place it dwells in
    after_gap: int  # with an own cycle: forecasts still to come from a model window that holds events
    #                 from before rows dropped (scoring.straddles_gap)
    absent: int  # feature block: events learnt since the feature's last observation (scoring.holds)
    interval: int  # feature block: mean events between its observations, its rhythm (scoring.learn_rhythm)
    cycle_unlearnt: int  # with an own cycle, feature block: 1 where the feature's last observation had no
    #                      value a period before it, so that its cycle's level went unlearnt (scoring.cycle_level)
    width32: int  # columns of `stats32`


def stats_layout(D: int, cycle: bool) -> StatsLayout:
    """The statistics rows' layout for D features, with or without an own cycle (without,
    its channel and feature blocks take no column: a shared-mode stream keeps its bytes)."""
    channel_block = 3 * D
    penalty = channel_block + 3 * channels(cycle)
    base_prev = penalty + 4
    own = base_prev + 8 * D
    c = D if cycle else 0
    one = 1 if cycle else 0
    modes = own + 4 * c + 2 * one + 1
    M = N_MODES * D
    corr_end = 8 * D + M + one + corr_features(D)
    return StatsLayout(mean=0, count=D, last=2 * D, lo=3 * D, hi=4 * D, res=5 * D, base_mean=6 * D,
                       base_count=7 * D, last_time=8 * D, mode_mean=8 * D + one, corr_count=8 * D + M + one,
                       first_high=corr_end, first_low=corr_end + D, first_mean=corr_end + 2 * D,
                       first_sq=corr_end + 3 * D, width=corr_end + 4 * D,
                       var=0, step=D, base_var=2 * D, channels=channel_block,
                       penalty=penalty, quantile=penalty + 1, regime=penalty + 2, day_old=penalty + 3,
                       base_prev=base_prev, base_lag=base_prev + D, base_sq=base_prev + 2 * D,
                       base_run=base_prev + 3 * D, base_run_sq=base_prev + 4 * D, base_recent=base_prev + 5 * D,
                       base_recent_sq=base_prev + 6 * D, base_blame=base_prev + 7 * D, cycle_period=own,
                       cycle_var=own + c, cycle_level=own + 2 * c, cycle_count=own + 3 * c, spacing=own + 4 * c,
                       long_rate=own + 4 * c + one, abnormal_run=own + 4 * c + 2 * one,
                       mode_count=modes, mode_switches=modes + M, mode_run=modes + 2 * M,
                       after_gap=modes + 2 * M + D, absent=modes + 2 * M + D + one,
                       interval=modes + 2 * M + 2 * D + one, cycle_unlearnt=modes + 2 * M + 3 * D + one,
                       width32=modes + 2 * M + 3 * D + one + c)


def stats_columns(D: int) -> dict[str, int]:
    """Columns of each statistic, by name, for D features without an own cycle (formats 6
    to 15): StatsLayout's, and the tail frequencies' of the formats that held them in
    `stats32` (9 to 11)."""
    one = {"penalty", "quantile", "regime", "day_old", "abnormal_run", "last_time", "spacing", "long_rate",
           "after_gap"}
    sizes = {"channels": 3 * channels(False), "base_tail": TAIL_LEVELS * D, "innov_tail": TAIL_LEVELS * D,
             **dict.fromkeys(("mode_mean", "mode_count", "mode_switches"), N_MODES * D),
             "corr_count": corr_features(D)}
    return {name: sizes.get(name, 1 if name in one else D)
            for name in (*StatsLayout._fields, "base_tail", "innov_tail") if name not in ("width", "width32")}


# The order of the statistics in the single float64 row of snapshot formats 6 to 9 (as
# their upgrades complete it), which format 10 split into `stats` and `stats32`.
STATS_ORDER_V9 = ("mean", "var", "count", "last", "lo", "hi", "channels", "penalty", "quantile", "step", "regime",
                  "base_mean", "base_var", "base_tail", "res")
# The order of the statistics in the float32 row of snapshot format 11 (format 10's is its
# prefix, up to day_old), before format 12 moved the tail frequencies into `tails`.
STATS32_ORDER_V11 = ("var", "step", "base_var", "base_tail", "channels", "penalty", "quantile", "regime", "day_old",
                     "base_prev", "base_lag", "base_sq", "base_run", "base_run_sq", "innov_tail")
