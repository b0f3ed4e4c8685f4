"""Model hyperparameters: names, defaults, validation, and the compact form the kernels take.

The same names are used by `LSTMDetector`, `MultiStreamDetector` and the YAML `model:`
section, so a setting means the same thing everywhere.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from .layout import StatsLayout, stats_layout
from .scoring import SEASONAL_HALFLIFE

# name -> (default, validator description, check)
CHOICES = {
    "cell": ("lstm", "gru"),
    "optimizer": ("adam", "sgd"),
    "loss": ("mse", "huber"),
    "on_anomaly": ("learn", "downweight", "skip"),
    "dtype": ("float32", "float64"),
    "weight_mode": ("per_stream", "shared"),
    "backend": ("cpu", "cuda", "auto"),
}

DEFAULTS: dict[str, Any] = {
    "cell": "lstm",
    "hidden_size": 32,
    "k1": 1,
    "k2": 16,
    "optimizer": "sgd",
    "learning_rate": 1e-2,
    "momentum": 0.5,
    "beta1": 0.9,
    "beta2": 0.999,
    "clip_norm": 1.0,
    "weight_decay": 0.0,
    "input_dropout": 0.0,
    "loss": "mse",
    "huber_delta": 1.0,
    "scaler_halflife": 1000.0,
    "input_clip": 10.0,
    "warmup": 300,
    "short_window": 10,
    "long_halflife": 8000.0,
    "seasonal_bins": 24,
    "range_novelty": 30.0,
    "range_tolerance": 0.02,
    "error_weight": 0.65,
    "threshold": 0.5,
    "alert_cooldown": 30,
    "alert_penalty": 5.0,
    "penalty_halflife": 100.0,
    "on_anomaly": "downweight",
    "anomaly_weight": 0.1,
    "dtype": "float32",
    "seed": 0,
}

# Settings of the multi-stream object only (they make no sense for a single stream).
MULTI_DEFAULTS: dict[str, Any] = {"weight_mode": "per_stream", "max_streams": 100_000}

# (lower, lower inclusive, upper, upper inclusive) for numeric settings.
RANGES: dict[str, tuple[float, bool, float, bool]] = {
    "hidden_size": (1, True, 4096, True),
    "k1": (1, True, 1024, True),
    "k2": (1, True, 1024, True),
    "learning_rate": (0.0, False, 10.0, True),
    "momentum": (0.0, True, 1.0, False),
    "beta1": (0.0, True, 1.0, False),
    "beta2": (0.0, True, 1.0, False),
    "clip_norm": (0.0, False, math.inf, True),
    "weight_decay": (0.0, True, 1.0, True),
    "input_dropout": (0.0, True, 1.0, False),
    "huber_delta": (0.0, False, math.inf, False),
    "scaler_halflife": (1.0, True, math.inf, False),
    "input_clip": (0.0, False, math.inf, False),
    "warmup": (0, True, 10**12, True),
    "short_window": (1, True, 10_000, True),
    "long_halflife": (1.0, True, math.inf, False),
    "seasonal_bins": (0, True, 1440, True),
    "range_novelty": (0.0, True, math.inf, False),
    "range_tolerance": (0.0, True, math.inf, False),
    "error_weight": (0.0, True, math.inf, False),
    "threshold": (0.0, False, 1.0, False),
    "alert_cooldown": (0, True, 10**9, True),
    "alert_penalty": (0.0, True, math.inf, False),
    "penalty_halflife": (1.0, True, math.inf, False),
    "anomaly_weight": (0.0, True, 1.0, True),
    "seed": (0, True, 2**63 - 1, True),
    "max_streams": (1, True, 10**9, True),
}


def check_value(name: str, value: Any) -> str | None:
    """Return why `value` is not acceptable for setting `name`, or None when it is."""
    default = DEFAULTS.get(name, MULTI_DEFAULTS.get(name))
    if name in CHOICES:
        if value not in CHOICES[name]:
            return f"expected one of {', '.join(CHOICES[name])}, got {value!r}"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {value!r}"
    if isinstance(default, int) and not isinstance(value, int):
        return f"expected an integer, got {value!r}"
    lo, lo_inc, hi, hi_inc = RANGES[name]
    if not ((value >= lo if lo_inc else value > lo) and (value <= hi if hi_inc else value < hi)):
        lo_s = f"{'[' if lo_inc else '('}{lo}"
        hi_s = f"{hi}{']' if hi_inc else ')'}"
        return f"expected a value in {lo_s}, {hi_s}, got {value!r}"
    return None


def validate(settings: dict[str, Any]) -> None:
    """Raise ValueError naming the first bad setting."""
    for name, value in settings.items():
        problem = check_value(name, value)
        if problem:
            raise ValueError(f"{name}: {problem}")
    if settings["k1"] > settings["k2"]:
        raise ValueError(f"k1: must not exceed k2 ({settings['k1']} > {settings['k2']})")


CELL_CODES = {"lstm": 0, "gru": 1}
OPT_CODES = {"adam": 0, "sgd": 1}
LOSS_CODES = {"mse": 0, "huber": 1}
POLICY_WEIGHTS = {"learn": lambda w: 1.0, "downweight": lambda w: w, "skip": lambda w: 0.0}


class KernelHyper(NamedTuple):
    """Scalar settings as the compiled kernels read them (ints are codes, halflives are rates)."""

    cell: int
    H: int
    D: int
    K: int
    k1: int
    optimizer: int
    lr: float
    momentum: float
    beta1: float
    beta2: float
    clip_norm: float
    weight_decay: float
    input_dropout: float
    loss: int
    huber_delta: float
    scaler_alpha: float
    input_clip: float
    warmup: int
    short_window: int
    long_alpha: float
    seasonal_bins: int
    seasonal_alpha: float
    range_novelty: float
    range_tolerance: float
    error_weight: float
    threshold: float
    alert_cooldown: int
    alert_penalty: float
    penalty_decay: float  # factor applied to the alert penalty every event
    anomaly_weight: float
    shared: bool
    # Backpropagate through the window's recorded forward pass instead of re-running it
    # (per_stream mode without input dropout; see kernels_cpu "Truncated BPTT").
    cached_window: bool
    stats: StatsLayout  # the columns of a stream's statistics row


def halflife_to_alpha(halflife: float) -> float:
    """EWMA weight of the newest sample such that an old sample's weight halves every `halflife`."""
    return 1.0 - 0.5 ** (1.0 / halflife)


def kernel_hyper(settings: dict[str, Any], n_features: int, shared: bool) -> KernelHyper:
    # Training scalars take the model's precision so float32 updates stay float32; the
    # statistics (scaler, error, threshold) are float64 whatever the model precision.
    real = np.dtype(settings["dtype"]).type
    return KernelHyper(
        cell=CELL_CODES[settings["cell"]],
        H=settings["hidden_size"],
        D=n_features,
        K=settings["k2"],
        k1=settings["k1"],
        optimizer=OPT_CODES[settings["optimizer"]],
        lr=real(settings["learning_rate"]),
        momentum=real(settings["momentum"]),
        beta1=real(settings["beta1"]),
        beta2=real(settings["beta2"]),
        clip_norm=real(settings["clip_norm"]),
        weight_decay=real(settings["weight_decay"]),
        input_dropout=real(settings["input_dropout"]),
        loss=LOSS_CODES[settings["loss"]],
        huber_delta=real(settings["huber_delta"]),
        scaler_alpha=halflife_to_alpha(settings["scaler_halflife"]),
        input_clip=float(settings["input_clip"]),
        warmup=int(settings["warmup"]),
        short_window=int(settings["short_window"]),
        long_alpha=halflife_to_alpha(settings["long_halflife"]),
        seasonal_bins=int(settings["seasonal_bins"]),
        seasonal_alpha=halflife_to_alpha(SEASONAL_HALFLIFE),
        range_novelty=float(settings["range_novelty"]),
        range_tolerance=float(settings["range_tolerance"]),
        error_weight=float(settings["error_weight"]),
        threshold=float(settings["threshold"]),
        alert_cooldown=int(settings["alert_cooldown"]),
        alert_penalty=float(settings["alert_penalty"]),
        penalty_decay=0.5 ** (1.0 / settings["penalty_halflife"]),
        anomaly_weight=real(POLICY_WEIGHTS[settings["on_anomaly"]](float(settings["anomaly_weight"]))),
        shared=shared,
        cached_window=not shared and settings["input_dropout"] == 0.0,
        stats=stats_layout(n_features),
    )
