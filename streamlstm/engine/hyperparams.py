"""Model hyperparameters: the one table of settings (names, defaults, ranges, docs), their
validation, and the compact form the kernels take.

The same names are used by `LSTMDetector`, `MultiStreamDetector` and the YAML `model:`
section, so a setting means the same thing everywhere. Adding one: an entry in `MODEL`,
and a field in `KernelHyper` (with its conversion in `kernel_hyper`) if the kernels read it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from .layout import StatsLayout, stats_layout
from .scoring import CYCLE_MAX_AUTO, SEASONAL_HALFLIFE


class SettingError(ValueError):
    """A value does not fit its setting; `expect` says what was wanted."""

    def __init__(self, expect: str):
        super().__init__(expect)
        self.expect = expect


class Number(NamedTuple):
    """An int or float in a range (each end inclusive or not); an int is accepted for a
    float and converted, a bool never (`hidden_size: true` is a mistake, not 1)."""

    kind: type
    lo: float
    lo_inc: bool = True
    hi: float = math.inf
    hi_inc: bool = False

    @property
    def expect(self) -> str:
        name = self.kind.__name__
        if self.hi == math.inf:
            return f"{name} {'≥' if self.lo_inc else '>'} {self.lo}"
        return f"{name} in {'[' if self.lo_inc else '('}{self.lo}, {self.hi}{']' if self.hi_inc else ')'}"

    def check(self, value: Any) -> Any:
        """`value` as `kind`, or SettingError. NumPy's integers and floats count as Python's
        (settings often come from a grid or a random draw)."""
        ok_types = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, ok_types):
            raise SettingError(self.expect)
        value = self.kind(value)
        above = value >= self.lo if self.lo_inc else value > self.lo
        below = value <= self.hi if self.hi_inc else value < self.hi
        if not (above and below):  # NaN fails both comparisons
            raise SettingError(self.expect)
        return value


class Choice(NamedTuple):
    """One of a few names."""

    options: tuple[str, ...]

    @property
    def expect(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def check(self, value: Any) -> Any:
        if value not in self.options:
            raise SettingError(self.expect)
        return value


class Flag(NamedTuple):
    """true or false; 0 and 1 are not booleans here."""

    @property
    def expect(self) -> str:
        return "true or false"

    def check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise SettingError(self.expect)
        return value


class OrAuto(NamedTuple):
    """"auto" (the engine chooses by the weight mode) or a Number."""

    number: Number

    @property
    def expect(self) -> str:
        return f"'auto' or {self.number.expect}"

    def check(self, value: Any) -> Any:
        return value if isinstance(value, str) and value == "auto" else self.number.check(value)


class Setting(NamedTuple):
    default: Any
    spec: Number | Choice | Flag | OrAuto
    doc: str


_INF = math.inf
# The model's settings: the YAML `model:` section, `LSTMDetector`'s parameters and
# `MultiStreamDetector`'s keyword arguments. This table is the only place a setting is
# declared: config.ModelConfig and LSTMDetector's signature and docstring derive from it.
MODEL: dict[str, Setting] = {
    "cell": Setting("lstm", Choice(("lstm", "gru")), "The recurrent cell: lstm or gru."),
    "hidden_size": Setting(32, Number(int, 1, True, 4096, True), "Hidden units H."),
    "k1": Setting(1, Number(int, 1, True, 1024, True),
                  "Truncated BPTT: every k1 events, backpropagate through the last k2 steps."),
    "k2": Setting(16, Number(int, 1, True, 1024, True), "The BPTT window, in steps (at least k1)."),
    "record_window": Setting(False, Flag(),
                             "Shared weight mode: record each stream's window of activations (~15 KB per "
                             "stream at H=32, k2=16) and backpropagate through it, instead of re-running the "
                             "window with the current weights every event (k2 + 1 forward steps; ~1 KB per "
                             "stream). per_stream mode always records; input dropout always re-runs."),
    "optimizer": Setting("sgd", Choice(("adam", "sgd")), "adam, or sgd with `momentum`."),
    "learning_rate": Setting(1e-2, Number(float, 0.0, False, 10.0, True), "The optimiser's step size."),
    "momentum": Setting(0.5, Number(float, 0.0, True, 1.0, False), "SGD's heavy-ball momentum."),
    "beta1": Setting(0.9, Number(float, 0.0, True, 1.0, False), "Adam's first-moment decay."),
    "beta2": Setting(0.999, Number(float, 0.0, True, 1.0, False), "Adam's second-moment decay."),
    "clip_norm": Setting(1.0, Number(float, 0.0, False, _INF, True), "Gradients are rescaled to this global norm at most."),
    "weight_decay": Setting(0.0, Number(float, 0.0, True, 1.0, True), "L2 penalty on all parameters."),
    "input_dropout": Setting(0.0, Number(float, 0.0, True, 1.0, False),
                             "Probability of dropping an input feature during training."),
    "loss": Setting("mse", Choice(("mse", "huber")), "mse, or huber (quadratic within `huber_delta`)."),
    "huber_delta": Setting(1.0, Number(float, 0.0, False, _INF, False), "Where the Huber loss turns linear."),
    "scaler_halflife": Setting(1000.0, Number(float, 1.0, True, _INF, False),
                               "Half-life, in events, of the running mean and variance that normalise inputs "
                               "(and, rounded to a power of two, the memory of each feature's record counts)."),
    "input_clip": Setting(10.0, Number(float, 0.0, False, _INF, False), "Normalised inputs are clipped to +-this."),
    "warmup": Setting(300, Number(int, 0, True, 10**12, True), "Events during which the score is 0 and nothing is flagged."),
    "short_window": Setting(10, Number(int, 1, True, 10_000, True),
                            "Each scoring channel judges the mean of its inputs over this many events."),
    "long_halflife": Setting(8000.0, Number(float, 1.0, True, _INF, False),
                             "Half-life, in events, of each channel's long-term distribution of those means."),
    "seasonal_bins": Setting(24, Number(int, 0, True, 1440, True),
                             "Bins of the time-of-day profile (used where events carry timestamps; 0 = off)."),
    "cycle_max": Setting("auto", OrAuto(Number(int, 0, True, 4096, True)),
                         "The longest cycle, in events, the channel of a stream's own cycle looks for "
                         "(it keeps that many values and lags per feature, 2 KB at 256); 0 = off; auto = "
                         f"{CYCLE_MAX_AUTO} in per_stream mode, 0 in shared mode."),
    "range_novelty": Setting(30.0, Number(float, 0.0, True, _INF, False),
                             "Surprise (-log10 probability) of a value outside the range seen so far; 0 = off."),
    "range_tolerance": Setting(0.02, Number(float, 0.0, True, _INF, False),
                               "How far outside the range, in units of its width, counts as outside."),
    "range_steps": Setting(0.5, Number(float, 0.0, True, _INF, False),
                           "A new record must also exceed the range by more than this many of the feature's "
                           "typical steps to be range novelty, so that a noisy metric's records within its "
                           "own reach are no news; 0 = off."),
    "error_weight": Setting(0.65, Number(float, 0.0, True, _INF, False),
                            "The prediction error channel's surprise, times this, may alert on its own; "
                            "0 = only averaged with the value channels."),
    "threshold": Setting(0.5, Number(float, 0.0, False, 1.0, False), "An event is flagged when its score is at least this."),
    "alert_cooldown": Setting(30, Number(int, 0, True, 10**9, True), "Events after a flag that score 0."),
    "alert_penalty": Setting(5.0, Number(float, 0.0, True, _INF, False),
                             "How much a flag raises the bar for the next (-log10 units)."),
    "penalty_halflife": Setting(100.0, Number(float, 1.0, True, _INF, False),
                                "Half-life, in events, of that penalty: one incident raises one alert."),
    "on_anomaly": Setting("downweight", Choice(("learn", "downweight", "skip")),
                          "What learning does with a flagged event: learn it, downweight its loss by "
                          "`anomaly_weight`, or skip it (the recurrent state still advances)."),
    "anomaly_weight": Setting(0.1, Number(float, 0.0, True, 1.0, True), "The loss weight of a flagged event."),
    "regime_enter": Setting(1e-3, Number(float, 0.0, False, 0.5, False),
                            "The regime model's probability, per event, that a normal stream turns abnormal."),
    "regime_exit": Setting(1e-2, Number(float, 0.0, False, 0.5, False),
                           "The regime model's probability, per event, that an abnormal stream turns normal."),
    "regime_learn_weight": Setting(0.1, Number(float, 0.0, False, 1.0, True),
                                   "While a stream is abnormal, the regime's baseline learns at this fraction of "
                                   "its rate: lower keeps a long incident abnormal, higher accepts a lasting "
                                   "change as the new normal sooner."),
    "dtype": Setting("float32", Choice(("float32", "float64")), "Precision of the weights and recurrent state."),
    "seed": Setting(0, Number(int, 0, True, 2**63 - 1, True), "Seeds the weight initialisation and input dropout."),
}
BACKEND = Setting("cpu", Choice(("cpu", "cuda", "auto")),
                  "cpu, cuda, or auto (CUDA when a device is present).")
WEIGHT_MODE = Setting("per_stream", Choice(("per_stream", "shared")),
                      "Each stream its own weights, or one set learnt from all streams.")
MAX_STREAMS = Setting(100_000, Number(int, 1, True, 10**9, True), "Streams held at most.")
# How the CPU engine runs, not what it computes (per_stream results are bit-identical for
# any value), so, like `backend`, it is not stored in snapshots.
THREADS = Setting(0, Number(int, 0, True, 1024, True),
                  "Threads that advance a micro-batch's streams at once on the CPU (per_stream mode; "
                  "shared mode uses one); 0 = every core the process may run on.")

DEFAULTS: dict[str, Any] = {name: s.default for name, s in MODEL.items()}
# Settings whose default changed after snapshots without them were written, with the value
# those snapshots learnt with: a restored stream goes on as it was learnt (as_learnt).
LEARNT_WITHOUT = {"range_steps": 0.0}


def as_learnt(settings: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's stored settings, with LEARNT_WITHOUT's value for each it lacks."""
    return {**LEARNT_WITHOUT, **settings}


_ALL = {**MODEL, "backend": BACKEND, "weight_mode": WEIGHT_MODE, "max_streams": MAX_STREAMS, "threads": THREADS}


def check(name: str, value: Any) -> Any:
    """`value` normalised for setting `name` (an int for a float becomes a float), or
    SettingError saying what was expected."""
    return _ALL[name].spec.check(value)


def check_window(k1: int, k2: int) -> str | None:
    """Why k1 and k2 do not go together, or None: the one rule across settings."""
    return f"k2 must be ≥ k1, got k1={k1}, k2={k2}" if k2 < k1 else None


def validate(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings normalised (`check`), or ValueError naming the first bad one."""
    normal = {}
    for name, value in settings.items():
        try:
            normal[name] = check(name, value)
        except SettingError as err:
            raise ValueError(f"{name}: expected {err.expect}, got {value!r}") from None
    problem = check_window(normal["k1"], normal["k2"])
    if problem:
        raise ValueError(f"k1: {problem}")
    return normal


def parameters_doc(names: list[str]) -> str:
    """A numpydoc "Parameters" section for these settings, from the table."""
    lines = ["Parameters", "----------"]
    for name in names:
        s = _ALL[name]
        lines += [name, f"    {s.doc} Default {s.default!r}."]
    return "\n".join(lines)


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
    record_block: int  # a feature's record counts' longest block: 2^round(log2(the scaler's half-life)), <= 2^30
    input_clip: float
    warmup: int
    short_window: int
    long_alpha: float
    seasonal_bins: int
    seasonal_alpha: float
    cycle_max: int
    range_novelty: float
    range_tolerance: float
    range_steps: float
    error_weight: float
    threshold: float
    alert_cooldown: int
    alert_penalty: float
    penalty_decay: float  # factor applied to the alert penalty every event
    anomaly_weight: float
    regime_enter: float
    regime_exit: float
    regime_learn_weight: float
    new_normal: int  # scoring.regime_learn: the scaler's half-life in events, at most 2^24 (float32 counts it)
    shared: bool
    # Backpropagate through the window's recorded forward pass instead of re-running it
    # (per_stream mode, or shared with record_window, without input dropout; see
    # kernels_cpu "Truncated BPTT").
    cached_window: bool
    # A re-run window's start state (h0, c0) and inputs are kept as float16 in float32
    # models: they only feed the window's re-run, whose gradient their rounding (2^-12)
    # barely moves, and in shared mode they were a third of a stream's state. float64
    # models, and recorded windows (whose inputs are the recorded pass's), keep them exact.
    f16_window: bool
    stats: StatsLayout  # the columns of a stream's statistics rows


def halflife_to_alpha(halflife: float) -> float:
    """EWMA weight of the newest sample such that an old sample's weight halves every `halflife`."""
    return 1.0 - 0.5 ** (1.0 / halflife)


def kernel_hyper(settings: dict[str, Any], n_features: int, shared: bool) -> KernelHyper:
    # Training scalars take the model's precision so float32 updates stay float32; the
    # statistics (scaler, error, threshold) are float64 whatever the model precision.
    real = np.dtype(settings["dtype"]).type
    cached_window = (not shared or settings["record_window"]) and settings["input_dropout"] == 0.0
    cycle_max = (0 if shared else CYCLE_MAX_AUTO) if settings["cycle_max"] == "auto" else int(settings["cycle_max"])
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
        # At most 2^30 values: a longer half-life is no forgetting at all, and stays an int64.
        record_block=2 ** min(round(math.log2(settings["scaler_halflife"])), 30),
        input_clip=float(settings["input_clip"]),
        warmup=int(settings["warmup"]),
        short_window=int(settings["short_window"]),
        long_alpha=halflife_to_alpha(settings["long_halflife"]),
        seasonal_bins=int(settings["seasonal_bins"]),
        seasonal_alpha=halflife_to_alpha(SEASONAL_HALFLIFE),
        cycle_max=cycle_max,
        range_novelty=float(settings["range_novelty"]),
        range_tolerance=float(settings["range_tolerance"]),
        range_steps=float(settings["range_steps"]),
        error_weight=float(settings["error_weight"]),
        threshold=float(settings["threshold"]),
        alert_cooldown=int(settings["alert_cooldown"]),
        alert_penalty=float(settings["alert_penalty"]),
        penalty_decay=0.5 ** (1.0 / settings["penalty_halflife"]),
        anomaly_weight=real(POLICY_WEIGHTS[settings["on_anomaly"]](float(settings["anomaly_weight"]))),
        regime_enter=float(settings["regime_enter"]),
        regime_exit=float(settings["regime_exit"]),
        regime_learn_weight=float(settings["regime_learn_weight"]),
        new_normal=min(max(round(settings["scaler_halflife"]), 1), 2**24),
        shared=shared,
        cached_window=cached_window,
        f16_window=settings["dtype"] == "float32" and not cached_window,
        stats=stats_layout(n_features, cycle_max > 0),
    )
