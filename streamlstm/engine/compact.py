"""Narrow floats for scoring state: float32 rounded to its top 16 bits (bfloat16) or to
its top 24 bits (float24), kept as unsigned integers.

Both keep float32's sign and 8-bit exponent, so every value the statistics can hold fits
(values stay within +-VALUE_LIMIT, their squares within 4e36), with p significant bits:
bfloat16's 8 (~2.4 decimal digits) for a channel's recent inputs and a seasonal bin's
variance, float24's 16 (~4.8 digits) for a bin's mean, which a strong daily cycle makes
large against the bin's own spread (at 100 of the bin's sd, bfloat16 would round it by up
to 0.2 sd). float16 has more digits than bfloat16 but overflows at 65504, and a bin holds
deviations in the stream's own units. Neither Numba's CPU target nor numba-cuda has these
formats or a bit cast both share, so values are converted with frexp/ldexp, written once
for both targets. Values below float32's smallest normal (2^-126) are stored as zero, as
the kernels' flush-to-zero would make them (fpenv.py).
"""

from __future__ import annotations

import math

import numpy as np

from .jit import kernel
from .layout import BIN_BYTES, BIN_MEAN, BIN_VAR, BIN_VISITS

BF16 = 8  # significant bits of bfloat16 (16 bits in all: sign, exponent, 7 fraction bits)
F24 = 16  # significant bits of float24 (24 bits in all)
SMALLEST = 2.0 ** -126  # float32's smallest normal
# A bin's visits saturate in a byte: past the ~72 visits where 1 / visits falls below the
# bins' EWMA rate (scoring.SEASONAL_HALFLIFE), and SEASONAL_WARM, the count does not matter.
MAX_VISITS = 255
# 2^(e - 127) for each biased exponent e: a lookup, because ldexp is a library call and a
# channel's window mean decodes its ring on every event.
POW2 = np.array([2.0 ** (e - 127) for e in range(256)])


@kernel
def narrow_bits(x, p):
    """The bit pattern of x (float32 or float64) with p significant bits (p + 8 bits in all),
    rounded to nearest, ties to even: NaN -> a quiet NaN, beyond the largest finite ->
    +-infinity, below 2^-126 -> 0."""
    f = p - 1  # fraction bits
    if math.isnan(x):
        return (0xFF << f) | (1 << (f - 1))
    sign = 1 << (p + 7) if x < 0.0 else 0
    a = abs(x)
    if a < SMALLEST:  # also 0
        return sign
    if math.isinf(a):
        return sign | (0xFF << f)
    m, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1)
    y = math.ldexp(m, p)  # the p significant bits and the rest, exactly
    q = math.floor(y)
    rest = y - q
    if rest > 0.5 or (rest == 0.5 and int(q) % 2 == 1):
        q += 1.0
    k = int(q)  # 2^f .. 2^p
    if k == 1 << p:
        k = 1 << f
        e += 1
    biased = e + 126  # float32's biased exponent of a = (k / 2^f) * 2^(e - 1)
    if biased >= 255:
        return sign | (0xFF << f)
    return sign | (biased << f) | (k - (1 << f))


@kernel
def narrow_value(bits, p):
    """The value (float64) of a bit pattern of p significant bits."""
    f = p - 1
    b = int(bits)
    e = (b >> f) & 0xFF
    frac = b & ((1 << f) - 1)
    if e == 255:
        v = math.nan if frac else math.inf
    elif e == 0:
        v = 0.0
    else:
        v = POW2[e] * (1.0 + frac / float(1 << f))  # both exact
    return -v if b >> (p + 7) else v


@kernel
def narrow_step(old, x, p):
    """The bit pattern (p significant bits) to store for x, the new value of an EWMA stored
    as `old`: x rounded to nearest, except that a change too small to show (under half a
    unit in the last place) moves the stored value one unit towards x instead of vanishing.
    Rounding alone would stall a mean short of its target for good: an EWMA step is a small
    fraction of the distance to its target (1.4 % for a seasonal bin)."""
    new = narrow_bits(x, p)
    if new != old or math.isnan(x):
        return new
    v = narrow_value(old, p)
    if v == 0.0 or x == v:
        return new
    return int(old) + 1 if abs(x) > abs(v) else int(old) - 1


# A seasonal bin is layout.BIN_BYTES bytes: its mean (float24), variance (bfloat16) and
# visits (saturating), each a little-endian unsigned integer.


@kernel
def _uint(a, at, n):
    v = 0
    for i in range(n):
        v |= int(a[at + i]) << (8 * i)
    return v


@kernel
def _put_uint(a, at, n, v):
    for i in range(n):
        a[at + i] = (v >> (8 * i)) & 0xFF


@kernel
def bin_mean(a):
    """The mean of a seasonal bin a (BIN_BYTES,) uint8."""
    return narrow_value(_uint(a, BIN_MEAN, 3), F24)


@kernel
def bin_var(a):
    return narrow_value(_uint(a, BIN_VAR, 2), BF16)


@kernel
def bin_visits(a):
    return int(a[BIN_VISITS])


@kernel
def store_bin(a, mean, var, visits):
    """Store a seasonal bin's new EWMA mean and variance (narrow_step: no step is lost)
    and its visits (saturating)."""
    _put_uint(a, BIN_MEAN, 3, narrow_step(_uint(a, BIN_MEAN, 3), mean, F24))
    _put_uint(a, BIN_VAR, 2, narrow_step(_uint(a, BIN_VAR, 2), var, BF16))
    a[BIN_VISITS] = min(visits, MAX_VISITS)


# ------------------------------------------------------------------ host side (snapshots)


def narrow_bits_of(a, p: int) -> np.ndarray:
    """narrow_bits of every element of a float32 array (uint32): float32's bits rounded to
    their top p + 8, ties to even."""
    a = np.asarray(a, dtype=np.float32)
    drop = 24 - p
    u = a.view(np.uint32).astype(np.uint64)
    bits = ((u + (1 << (drop - 1)) - 1 + ((u >> drop) & 1)) >> drop).astype(np.uint32)
    tiny = np.abs(a) < SMALLEST
    bits[tiny] = np.where(a[tiny] < 0.0, 1 << (p + 7), 0)
    bits[np.isnan(a)] = (0xFF << (p - 1)) | (1 << (p - 2))
    return bits


def pack_bins(mean, var, visits) -> np.ndarray:
    """Seasonal bins (..., BIN_BYTES) uint8 from float32 means and variances and visit
    counts of the same shape."""
    m, v = narrow_bits_of(mean, F24), narrow_bits_of(var, BF16)
    bins = np.zeros((*m.shape, BIN_BYTES), dtype=np.uint8)
    for i in range(3):
        bins[..., BIN_MEAN + i] = (m >> (8 * i)) & 0xFF
    for i in range(2):
        bins[..., BIN_VAR + i] = (v >> (8 * i)) & 0xFF
    bins[..., BIN_VISITS] = np.minimum(visits, MAX_VISITS)
    return bins
