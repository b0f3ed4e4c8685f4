"""Narrow floats for per-stream state, kept as unsigned integers: float32 rounded to its top
16 bits (bfloat16) or its top 24 bits (float24) for scoring statistics, float16 for a
re-run window (its start state and its inputs), and an unsigned 16-bit float for the
regime's tail frequencies.

bfloat16 and float24 keep float32's sign and 8-bit exponent, so every value the statistics
can hold fits (values stay within +-VALUE_LIMIT, their squares within 4e36), with p
significant bits: bfloat16's 8 (~2.4 decimal digits) for a channel's recent inputs,
float24's 16 (~4.8 digits) for a seasonal bin's mean, which a strong daily cycle makes
large against the bin's own spread (at 100 of the bin's sd, bfloat16 would round it by up
to 0.2 sd), and its variance (in bfloat16 it moved NAB's 10-seed mean by -0.16, float24
by +0.02: the bins follow the data alone, so every seed sees the same change). float16 has
more digits than bfloat16 but overflows at 65504: no place for a bin, which holds
deviations in the stream's own units, but the right one for an LSTM state, whose h is
within +-1 (see store_f16_row for c), and for normalised inputs (clipped to
+-input_clip). Neither Numba's CPU target nor numba-cuda has these formats or a bit cast
both share, so values are converted with frexp and a power-of-two table, written once
for both targets. Values below a
format's smallest normal are stored as zero (float32's as the kernels' flush-to-zero would
make them, fpenv.py; float16's, below 6e-5, are noise in a state).
"""

from __future__ import annotations

import math

import numpy as np

from .jit import kernel
from .layout import BIN_BYTES, BIN_MEAN, BIN_VAR, BIN_VISITS

# Formats: (significant bits p, exponent bits); p + exponent bits in all, with the sign.
BF16 = (8, 8)  # bfloat16
F24 = (16, 8)  # float24
F16 = (11, 5)  # IEEE float16, but that values below its smallest normal (2^-14) are stored as 0
F16_MAX = 65504.0
# Unsigned: float16's 11 significant bits and, in place of the sign, a 6-bit exponent, for
# the regime's tail frequencies in [0, 1] (frequencies below its smallest normal, 2^-30 or
# 9.3e-10, count as 0: they are below the rule-of-succession floor of a billion events).
UF16 = (11, 6)
# A bin's visits saturate in a byte: past the ~72 visits where 1 / visits falls below the
# bins' EWMA rate (scoring.SEASONAL_HALFLIFE), and SEASONAL_WARM, the count does not matter.
MAX_VISITS = 255
# 2^(e - 127) for e in 0..255: a lookup, because ldexp is a library call and a channel's
# window mean decodes its ring on every event.
POW2 = np.array([2.0 ** (e - 127) for e in range(256)])


@kernel
def narrow_bits(x, fmt):
    """The bit pattern of x (float32 or float64) in format `fmt`, rounded to nearest, ties
    to even: NaN -> a quiet NaN, beyond the largest finite -> +-infinity, below the
    smallest normal -> 0."""
    return _narrow(x, fmt, -1.0)


@kernel
def dithered_bits(x, fmt, u):
    """narrow_bits of x, but rounded up when the dropped fraction of a unit in the last
    place is at least 1 - u: for u uniform in [0, 1), up with probability equal to that
    fraction, so that an EWMA's steps smaller than a unit are kept on average, without
    bias (round to nearest would stall them; narrow_step's unit steps would set the
    rate by the unit's size). Deterministic for a given u."""
    return _narrow(x, fmt, u)


@kernel
def _narrow(x, fmt, u):
    """narrow_bits (u < 0: to nearest) and dithered_bits (u in [0, 1))."""
    p, ebits = fmt
    f = p - 1  # fraction bits
    top = (1 << ebits) - 1  # the exponent of infinity and NaN
    bias = (1 << (ebits - 1)) - 1
    if math.isnan(x):
        return (top << f) | (1 << (f - 1))
    sign = 1 << (p + ebits - 1) if x < 0.0 else 0
    a = abs(x)
    if a < POW2[128 - bias]:  # the smallest normal, 2^(1 - bias); also 0
        return sign
    if math.isinf(a):
        return sign | (top << f)
    m, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1)
    y = m * float(1 << p)  # the p significant bits and the rest, exactly (not ldexp: a library call)
    q = math.floor(y)
    rest = y - q
    if u < 0.0:
        up = rest > 0.5 or (rest == 0.5 and int(q) % 2 == 1)
    else:
        up = rest + u >= 1.0
    if up:
        q += 1.0
    k = int(q)  # 2^f .. 2^p
    if k == 1 << p:
        k = 1 << f
        e += 1
    biased = e - 1 + bias  # the biased exponent of a = (k / 2^f) * 2^(e - 1)
    if biased >= top:
        return sign | (top << f)
    return sign | (biased << f) | (k - (1 << f))


@kernel
def narrow_value(bits, fmt):
    """The value (float64) of a bit pattern in format `fmt`."""
    p, ebits = fmt
    f = p - 1
    top = (1 << ebits) - 1
    b = int(bits)
    e = (b >> f) & top
    frac = b & ((1 << f) - 1)
    if e == top:
        v = math.nan if frac else math.inf
    elif e == 0:
        v = 0.0
    else:
        v = POW2[e - ((1 << (ebits - 1)) - 1) + 127] * (1.0 + frac / float(1 << f))  # both exact
    return -v if (b >> (p + ebits - 1)) & 1 else v


@kernel
def narrow_step(old, x, fmt):
    """The bit pattern (format `fmt`) to store for x, the new value of an EWMA stored as
    `old`: x rounded to nearest, except that a change too small to show (under half a
    unit in the last place) moves the stored value one unit towards x instead of vanishing.
    Rounding alone would stall a mean short of its target for good: an EWMA step is a small
    fraction of the distance to its target (1.4 % for a seasonal bin)."""
    new = narrow_bits(x, fmt)
    if new != old or math.isnan(x):
        return new
    v = narrow_value(old, fmt)
    if v == 0.0 or x == v:
        return new
    return int(old) + 1 if abs(x) > abs(v) else int(old) - 1


@kernel
def load_f16_row(dst, src, narrow):
    """dst (n,) = a row src (n,) of a re-run window (a recurrent state, or an input), stored
    as float16 bit patterns when `narrow` (else in the model's float type)."""
    for i in range(dst.shape[0]):
        dst[i] = narrow_value(src[i], F16) if narrow else src[i]


@kernel
def store_f16_row(dst, src, narrow):
    """dst (n,) = src (n,), as float16 bit patterns when `narrow`, clamped to +-65504 (NaN,
    a missing input, stays NaN): a cell state that large has tanh(c) = +-1 either way, and
    an infinity would turn the next step's f * c into NaN."""
    for i in range(dst.shape[0]):
        v = src[i]
        if narrow:
            dst[i] = narrow_bits(v if math.isnan(v) else min(max(v, -F16_MAX), F16_MAX), F16)
        else:
            dst[i] = v


# A seasonal bin is layout.BIN_BYTES bytes: its mean and variance (float24) and visits
# (saturating), each a little-endian unsigned integer.


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
    return narrow_value(_uint(a, BIN_VAR, 3), F24)


@kernel
def bin_visits(a):
    return int(a[BIN_VISITS])


@kernel
def store_bin(a, mean, var, visits):
    """Store a seasonal bin's new EWMA mean and variance (narrow_step: no step is lost)
    and its visits (saturating)."""
    _put_uint(a, BIN_MEAN, 3, narrow_step(_uint(a, BIN_MEAN, 3), mean, F24))
    _put_uint(a, BIN_VAR, 3, narrow_step(_uint(a, BIN_VAR, 3), var, F24))
    a[BIN_VISITS] = min(visits, MAX_VISITS)


# ------------------------------------------------------------------ host side (snapshots)


def narrow_bits_of(a, fmt: tuple[int, int]) -> np.ndarray:
    """narrow_bits of every element of a float32 array (uint32), for BF16 and F24:
    float32's bits rounded to their top p + 8, ties to even."""
    p, ebits = fmt
    assert ebits == 8, "float32's exponent"
    a = np.asarray(a, dtype=np.float32)
    drop = 24 - p
    u = a.view(np.uint32).astype(np.uint64)
    bits = ((u + (1 << (drop - 1)) - 1 + ((u >> drop) & 1)) >> drop).astype(np.uint32)
    tiny = np.abs(a) < POW2[1]  # float32's smallest normal
    bits[tiny] = np.where(a[tiny] < 0.0, 1 << (p + 7), 0)
    bits[np.isnan(a)] = (0xFF << (p - 1)) | (1 << (p - 2))
    return bits


def f16_bits_of(a) -> np.ndarray:
    """narrow_bits(x, F16) of every element of an array (uint16), beyond +-65504 clamped
    to it, as store_f16_row stores a row."""
    a = np.clip(np.asarray(a, dtype=np.float64), -F16_MAX, F16_MAX).astype(np.float16)
    tiny = np.abs(a) < POW2[113]  # below 2^-14
    a[tiny] = np.where(a[tiny] < 0.0, -0.0, 0.0)
    return a.view(np.uint16)


def uf16_bits_of(a) -> np.ndarray:
    """narrow_bits(x, UF16) of every element of an array of values in [0, 1] (uint16)."""
    p, ebits = UF16
    a = np.asarray(a, dtype=np.float64)
    m, e = np.frexp(a)
    q = np.rint(m * (1 << p)).astype(np.int64)  # exact products; ties to even
    carry = q == 1 << p
    q, e = np.where(carry, 1 << (p - 1), q), e + carry
    bits = ((e - 1 + (1 << (ebits - 1)) - 1) << (p - 1)) | (q - (1 << (p - 1)))
    return np.where(a < POW2[128 - (1 << (ebits - 1)) + 1], 0, bits).astype(np.uint16)


def pack_bins(mean, var, visits) -> np.ndarray:
    """Seasonal bins (..., BIN_BYTES) uint8 from float32 means and variances and visit
    counts of the same shape."""
    m, v = narrow_bits_of(mean, F24), narrow_bits_of(var, F24)
    bins = np.zeros((*m.shape, BIN_BYTES), dtype=np.uint8)
    for i in range(3):
        bins[..., BIN_MEAN + i] = (m >> (8 * i)) & 0xFF
    for i in range(3):
        bins[..., BIN_VAR + i] = (v >> (8 * i)) & 0xFF
    bins[..., BIN_VISITS] = np.minimum(visits, MAX_VISITS)
    return bins
