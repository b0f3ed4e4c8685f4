"""Small generated streams with known anomalies, shared by several tests."""

import numpy as np

SPIKES = (1500, 2100, 2600)
SHIFT = 3000


def sine_with_anomalies(n=4000, seed=0):
    """A noisy sine (period 50) with +4 spikes at SPIKES and a +3 level shift from SHIFT."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 50) + 0.1 * rng.normal(size=n)
    x[list(SPIKES)] += 4.0
    x[SHIFT:] += 3.0
    return x
