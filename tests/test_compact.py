"""The narrow floats of the per-stream state (engine/compact.py) against float32's own bits
and numpy's float16, and their EWMA steps, which must not stall short of a new level; the
regime's tail frequencies (UF16, dithered) against a float64 reference."""

import math

import numpy as np
import pytest

from streamlstm.engine.compact import (
    BF16,
    F16,
    F24,
    UF16,
    bin_mean,
    bin_var,
    bin_visits,
    dithered_bits,
    f16_bits_of,
    load_f16_row,
    narrow_bits,
    narrow_bits_of,
    narrow_step,
    narrow_value,
    pack_bins,
    store_bin,
    store_f16_row,
    uf16_bits_of,
)
from streamlstm.engine.hyperparams import halflife_to_alpha
from streamlstm.engine.layout import BIN_BYTES, TAIL_LEVELS
from streamlstm.engine.scoring import SEASONAL_HALFLIFE, _learn_tail


def float32_values(n=20_000, seed=0):
    """float32 values across the whole exponent range, and the edge cases."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(1.0, 2.0, n) * 2.0 ** rng.integers(-130, 129, n) * rng.choice([-1.0, 1.0], n)
    x = x[np.abs(x) < 3.4e38].astype(np.float32)
    edges = [0.0, 1.0, -1.0, 2.0 ** -126, -(2.0 ** -126), 1e-39, np.inf, -np.inf, 3.389e38, 3.4e38, 1.0 + 2.0 ** -8,
             1.0 + 3.0 * 2.0 ** -8, 1.0 + 2.0 ** -16, 1.0 + 3.0 * 2.0 ** -16]
    return np.concatenate([x, np.array(edges, dtype=np.float32)])


@pytest.mark.parametrize("fmt", [BF16, F24])
def test_narrow_bits_are_float32_bits_rounded_to_nearest_even(fmt):
    p = fmt[0]
    x = float32_values()
    drop = 24 - p
    u = x.view(np.uint32).astype(np.uint64)
    top, rest, half = u >> drop, u & ((1 << drop) - 1), 1 << (drop - 1)
    want = top + ((rest > half) | ((rest == half) & (top % 2 == 1)))  # to nearest, ties to even
    tiny = np.abs(x) < 2.0 ** -126
    want[tiny] = np.where(x[tiny] < 0, 1 << (p + 7), 0)
    got = np.array([narrow_bits(float(v), fmt) for v in x])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(narrow_bits_of(x, fmt), want)
    # Decoding gives the float32 whose top bits these are.
    values = np.array([narrow_value(b, fmt) for b in got])
    np.testing.assert_array_equal(values, (want << drop).astype(np.uint32).view(np.float32))


@pytest.mark.parametrize("fmt", [BF16, F24])
def test_narrow_bits_round_a_float64_once(fmt):
    """From float64, one rounding to p bits (not through float32), and NaN stays NaN."""
    p = fmt[0]
    for v in [1.0 + 2.0 ** -p + 2.0 ** -40, -(1.0 + 2.0 ** -p - 2.0 ** -40), 1e-200, 1e300]:
        m, e = math.frexp(abs(v))
        exact = math.copysign(math.ldexp(round(m * 2 ** p), e - p), v) if abs(v) >= 2.0 ** -126 else 0.0
        want = exact if abs(exact) < 2.0 ** 128 else math.copysign(math.inf, v)
        assert narrow_value(narrow_bits(v, fmt), fmt) == want
    assert math.isnan(narrow_value(narrow_bits(math.nan, fmt), fmt))


def test_float16_is_numpys_but_below_its_smallest_normal():
    """F16 (the window-start state): IEEE float16 rounding (numpy's, from float64), but
    subnormals stored as 0; store_f16_row clamps to +-65504, and f16_bits_of agrees."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=5000) * 10.0 ** rng.integers(-7, 6, 5000), [0.0, 1.0, -2.0, 65504.0, 1e9]])
    want = np.clip(x, -65504.0, 65504.0).astype(np.float16)
    want[np.abs(want) < 2.0 ** -14] = 0.0
    bits = np.zeros(len(x), dtype=np.uint16)
    store_f16_row(bits, x, True)
    np.testing.assert_array_equal(np.array([narrow_value(b, F16) for b in bits]), want.astype(np.float64))
    np.testing.assert_array_equal(np.array([narrow_value(b, F16) for b in f16_bits_of(x)]), want.astype(np.float64))
    back = np.zeros(len(x))
    load_f16_row(back, bits, True)
    np.testing.assert_array_equal(back, want.astype(np.float64))


@pytest.mark.parametrize("fmt", [BF16, F24])
def test_an_ewma_below_half_a_unit_does_not_stall(fmt):
    """An EWMA at the bins' rate, stored with p bits, from 1.0 towards 1 + 20 units: each
    step (0.28 units) rounds back to where it was, so rounding to nearest stalls at 1.0
    for good; narrow_step reaches the target within one unit and stays there."""
    alpha = halflife_to_alpha(SEASONAL_HALFLIFE)
    unit = 2.0 ** (1 - fmt[0])
    target = 1.0 + 20 * unit
    nearest = stepped = narrow_bits(1.0, fmt)
    for _ in range(500):
        v = narrow_value(nearest, fmt)
        nearest = narrow_bits(v + alpha * (target - v), fmt)
        v = narrow_value(stepped, fmt)
        stepped = narrow_step(stepped, v + alpha * (target - v), fmt)
    assert narrow_value(nearest, fmt) == 1.0
    assert abs(narrow_value(stepped, fmt) - target) <= unit
    # Downwards, and negative values, alike.
    stepped = narrow_bits(-1.0, fmt)
    for _ in range(500):
        v = narrow_value(stepped, fmt)
        stepped = narrow_step(stepped, v + alpha * (-target - v), fmt)
    assert abs(narrow_value(stepped, fmt) + target) <= unit


def test_a_bin_follows_a_small_shift_of_a_large_mean():
    """A bin of a strong daily cycle: mean 5,000 (float24 units of 2^-3) with sd 0.01,
    then a shift of 0.3, whose EWMA steps are a thirtieth of a unit: the bin's mean
    follows it as a float64 EWMA does, to within one unit (alternating between the two
    values around the level), and its variance is float64's plus at most a unit squared
    (what the mean's alternation adds; far below the floor of a bin's sd, a tenth of the
    stream's). The visits saturate at 255."""
    rng = np.random.default_rng(0)
    alpha = halflife_to_alpha(SEASONAL_HALFLIFE)
    b = np.zeros(BIN_BYTES, dtype=np.uint8)
    mean = var = 0.0
    for k in range(1, 1500):
        level = 5000.0 if k < 500 else 5000.3
        dev = level + 0.01 * rng.normal()
        a = max(1.0 / min(k, 256), alpha)
        d = dev - mean
        mean, var = mean + a * d, (1 - a) * (var + a * d * d)
        m, v = bin_mean(b), bin_var(b)
        d = dev - m
        store_bin(b, m + a * d, (1 - a) * (v + a * d * d), bin_visits(b) + 1)
    assert abs(bin_mean(b) - mean) <= 2.0 ** -3 and abs(mean - 5000.3) < 0.01
    assert var < bin_var(b) <= var + 2.0 ** -6
    assert bin_visits(b) == 255


def test_pack_bins_stores_what_the_kernels_read():
    mean = np.array([[1.5, -2e9], [3e-5, 0.0]], dtype=np.float32)
    var = np.array([[0.25, 4e18], [1e-12, 0.0]], dtype=np.float32)
    visits = np.array([[3, 1000], [70, 0]], dtype=np.float32)
    bins = pack_bins(mean, var, visits)
    assert bins.shape == (2, 2, BIN_BYTES) and bins.dtype == np.uint8
    flat = bins.reshape(-1, BIN_BYTES)
    np.testing.assert_allclose([bin_mean(b) for b in flat], mean.ravel(), rtol=2.0 ** -16)
    np.testing.assert_allclose([bin_var(b) for b in flat], var.ravel(), rtol=2.0 ** -16)
    assert [bin_visits(b) for b in flat] == [3, 255, 70, 0]


def test_uf16_is_11_significant_bits_to_nearest_even_from_1e_9_to_1():
    """UF16 (the tail frequencies): unsigned, 11 significant bits, rounded to nearest with
    ties to even, below 2^-30 stored as 0; uf16_bits_of (snapshot upgrades) agrees."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(1.0, 2.0, 5000) * 2.0 ** rng.integers(-32, 0, 5000),
                        [0.0, 1.0, 2.0 ** -30, 2.0 ** -31, 1.0 + 2.0 ** -11, 1.0 + 3.0 * 2.0 ** -11, 1.0 - 2.0 ** -13]])
    m, e = np.frexp(x)
    want = np.where(x < 2.0 ** -30, 0.0, np.ldexp(np.rint(m * 2.0 ** 11), e - 11))  # rint: ties to even
    bits = np.array([narrow_bits(v, UF16) for v in x])
    assert bits.max() < 2 ** 16
    np.testing.assert_array_equal(np.array([narrow_value(b, UF16) for b in bits]), want)
    np.testing.assert_array_equal(uf16_bits_of(x), bits)


def test_dithered_rounding_is_unbiased_and_picks_a_neighbour():
    """dithered_bits rounds to one of the two neighbours, up with probability equal to the
    dropped fraction of a unit, so its mean over u is x."""
    rng = np.random.default_rng(3)
    for x in rng.uniform(1e-4, 1.0, 20):
        lo = narrow_value(narrow_bits(x, UF16), UF16)
        unit = 2.0 ** (math.frexp(x)[1] - 11)
        below = lo if lo <= x else lo - unit
        values = np.array([narrow_value(dithered_bits(x, UF16, u), UF16) for u in (np.arange(1000) + 0.5) / 1000])
        assert set(values) <= {below, below + unit}
        assert abs(values.mean() - x) < 1e-3 * unit


def test_tail_frequencies_follow_a_float64_reference():
    """A Gaussian feature's tail frequencies learnt in UF16 (dithered) over 100,000 events at
    the default scaler rate follow the same EWMA in float64: within 2 % where the frequency
    is above 1e-3, within 5e-5 absolute below (the regime floors frequencies at ~7e-4).
    Rounding to nearest instead would stall the decay of the smaller ones (a step of 7e-4 of
    the value is under half a unit in the last place): 19 % off here."""
    rng = np.random.default_rng(4)
    z = np.abs(rng.normal(size=100_000))
    rate = halflife_to_alpha(1000.0)
    exact = np.zeros(TAIL_LEVELS)
    freqs = np.zeros(TAIL_LEVELS, dtype=np.uint16)
    nearest = np.zeros(TAIL_LEVELS, dtype=np.uint16)
    worst = 0.0
    for n, v in enumerate(z):
        hit = (v > np.arange(1, TAIL_LEVELS + 1)).astype(float)
        exact += rate * (hit - exact)
        _learn_tail(freqs, v, rate, float(n))
        for k in range(TAIL_LEVELS):
            f = narrow_value(nearest[k], UF16)
            nearest[k] = narrow_bits(f + rate * (hit[k] - f), UF16)
        if n > 10_000:
            got = np.array([narrow_value(b, UF16) for b in freqs])
            big = exact > 1e-3
            worst = max(worst, np.max(np.abs(got - exact)[big] / exact[big]))
            assert np.all(np.abs(got - exact)[~big] < 5e-5)
    assert worst < 0.02
    stalled = np.array([narrow_value(b, UF16) for b in nearest])
    assert np.max(np.abs(stalled - exact)[:3] / exact[:3]) > 0.1
