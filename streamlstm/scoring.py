"""From prediction errors to calibrated anomaly scores.

Each stream keeps a long-term picture of its own prediction errors (an exponentially
weighted mean and variance) and a short-term one (the mean of its last `short_window`
errors). The score asks how improbable the recent short-term mean is under the long-term
distribution (the anomaly-likelihood idea of Numenta's HTM detector):

    z = (m_short - mu) / (sigma / sqrt(w))          w = errors in the short window
    q = P(Z >= z), Z ~ N(0, 1)                       tail probability, in log space
    L = -log10(q)                                    "how many nines" of surprise
    score = L / (L + L_HALF)                         in [0, 1), 0.5 when q = 1e-5

so the score keeps resolution near 1 (q = 1e-10 gives 0.667, 1e-50 gives 0.909) instead
of saturating. Statistics used for an event's score are those from before that event.
"""

from __future__ import annotations

import math

from numba import njit

from .gates import FASTMATH

L_HALF = 5.0  # -log10 tail probability that maps to score 0.5
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
def likelihood_score(m_short, n_short, mu, var):
    """Score in [0, 1) of a short-term mean error `m_short` over `n_short` errors."""
    sigma = max(math.sqrt(max(var, 0.0)), 1e-3 * abs(mu) + 1e-12)
    z = (m_short - mu) / (sigma / math.sqrt(n_short))
    L = neg_log10_tail(z)
    return L / (L + L_HALF)


@njit(fastmath=FASTMATH, cache=True)
def ewma_update(mean, var, x, alpha):
    """One step of an exponentially weighted mean and variance; returns (mean, var)."""
    d = x - mean
    mean = mean + alpha * d
    var = (1.0 - alpha) * (var + alpha * d * d)
    return mean, var
