"""The per-stream state layout: names for the scoring channels, the columns of a stream's
statistics row and its counters. Kernels, scoring, state allocation, snapshots and tests
use these names; no offset is written by hand anywhere else.

A stream's state (state.StreamArrays) besides its recurrent state and BPTT window:
  stats     (W,) float64       the columns of `StatsLayout`, W = stats_layout(D).width
  ring      (N_CHANNELS, w) float32  each channel's inputs of the last w events (NaN: none)
  bins      (D, B, 3) float32  the seasonal profile: per feature and bin of the day, the
                               mean and variance of the deviation from the running mean, visits
  counters  (N_COUNTERS,) int64
"""

from __future__ import annotations

from typing import NamedTuple

# Scoring channels (scoring.py): each sees one non-negative input per event.
CH_ERROR = 0  # the model's prediction error
CH_VALUE = 1  # distance from the running mean, in sd
CH_STEP = 2  # step from the previous value, in typical steps
CH_SEASONAL = 3  # distance from the usual value at this time of day
N_CHANNELS = 4
CHANNEL_NAMES = ("error", "value", "step", "seasonal")

# The regime's calibration: each feature's frequency of |z| > 1, 2, ..., TAIL_LEVELS.
TAIL_LEVELS = 6

# Counters (int64).
C_SEEN = 0  # events seen
C_WIN = 1  # inputs in the BPTT window
C_SINCE = 2  # events since the last BPTT update (k1 phase)
C_RNG = 3  # xorshift64 state (input dropout)
C_QUIET = 4  # events left in the alert cooldown
N_COUNTERS = 5


class StatsLayout(NamedTuple):
    """Column offsets in the float64 statistics row of a stream of D features. A feature
    block holds D columns (feature d at offset + d); a channel block holds three per
    channel (channel c's long-term mean, variance and updates at channels + 3c + 0, 1, 2)."""

    mean: int  # feature block: running mean (the input scaler and the value channel)
    var: int  # feature block: running variance
    count: int  # feature block: observations
    last: int  # feature block: last observed value
    lo: int  # feature block: smallest value seen
    hi: int  # feature block: largest value seen
    channels: int  # channel block: each channel's long-term Gaussian
    penalty: int  # the alert penalty P (-log10 units)
    quantile: int  # the running quantile q of the channel surprise (self-calibration)
    step: int  # feature block: mean absolute step |v - last| (the step channel's unit)
    regime: int  # the regime's log-odds of "abnormal", relative to its prior (scoring.regime_step)
    base_mean: int  # feature block: the regime's baseline mean (learns slower while abnormal)
    base_var: int  # feature block: the regime's baseline variance
    base_tail: int  # TAIL_LEVELS columns per feature (feature d's at base_tail + TAIL_LEVELS * d + k):
    #                 how often |z| under the baseline has exceeded k + 1 while normal
    width: int  # columns in all


def stats_layout(D: int) -> StatsLayout:
    """The statistics row's layout for D features."""
    channels = 6 * D
    penalty = channels + 3 * N_CHANNELS
    regime = penalty + 2 + D
    return StatsLayout(mean=0, var=D, count=2 * D, last=3 * D, lo=4 * D, hi=5 * D, channels=channels,
                       penalty=penalty, quantile=penalty + 1, step=penalty + 2, regime=regime,
                       base_mean=regime + 1, base_var=regime + 1 + D, base_tail=regime + 1 + 2 * D,
                       width=regime + 1 + (2 + TAIL_LEVELS) * D)
