"""`LSTMDetector`: one stream, river's `AnomalyDetector` interface."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from river import base

from .engine import hyperparams, snapshot
from .multistream import MultiStreamDetector

_STREAM = ""  # the detector's single stream in its engine


def _as_float(value) -> float:
    """A feature value as float; anything non-numeric or non-finite counts as missing."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


class LSTMDetector(base.AnomalyDetector):
    """Online LSTM (or GRU) forecaster whose surprising errors are anomalies.

    Each event is forecast from the recurrent state before it is seen; the prediction
    error, how far the value is from its usual level and from its previous value, and a
    value outside the range seen so far become a calibrated score in [0, 1) (see
    streamlstm.engine.scoring). One stream has no timestamps here, so the time-of-day channel of
    the multi-stream detector is off.
    The feature set is fixed by the first `learn_one`: later missing features are treated
    as missing values (NaN), unknown ones are ignored.

    Parameters
    ----------
    cell
        "lstm" or "gru".
    hidden_size
        Hidden units H.
    k1, k2
        Truncated BPTT: every `k1` events, backpropagate through the last `k2` steps.
    optimizer
        "adam" or "sgd" (with `momentum`).
    learning_rate, momentum, beta1, beta2
        Optimiser settings.
    clip_norm
        Gradients are rescaled to this global norm at most.
    weight_decay
        L2 penalty on all parameters.
    input_dropout
        Probability of dropping an input feature during training.
    loss, huber_delta
        "mse" or "huber" (quadratic within `huber_delta`).
    scaler_halflife
        Half-life, in events, of the running mean/variance that normalises inputs.
    input_clip
        Normalised inputs are clipped to +-`input_clip`.
    warmup
        Events during which the score is 0 and nothing is flagged.
    short_window, long_halflife
        Anomaly likelihood: the mean of each channel's last `short_window` inputs against
        their distribution with half-life `long_halflife` events.
    seasonal_bins
        Bins of the time-of-day profile (used only where events carry timestamps, i.e.
        by MultiStreamDetector; 0 = off).
    range_novelty, range_tolerance
        Surprise (-log10 probability) of a value more than `range_tolerance` x (the range's
        width) outside the range seen so far; 0 = off.
    error_weight
        The LSTM error channel's surprise, times this, may raise an alert on its own (it
        is also averaged with the value channels); 0 = only in the average.
    threshold
        An event is flagged when its score is at least this.
    alert_cooldown, alert_penalty, penalty_halflife
        After a flag, the next `alert_cooldown` events score 0 and are not flagged, and
        the bar for the next alert rises by `alert_penalty` (-log10 units), decaying with
        half-life `penalty_halflife` events: one incident raises one alert.
    on_anomaly, anomaly_weight
        What learning does with a flagged event: "learn" it fully, "downweight" its loss by
        `anomaly_weight`, or "skip" it (the recurrent state still advances).
    dtype
        "float32" or "float64" weights and state.
    seed
        Seeds the weight initialisation and input dropout.
    backend
        "cpu", "cuda" or "auto" (CUDA when a device is present). One stream has no
        parallelism to offer a GPU; the setting exists so configurations carry over.

    Examples
    --------
    >>> import math
    >>> from streamlstm import LSTMDetector
    >>> det = LSTMDetector(warmup=50, seed=42)
    >>> for t in range(400):
    ...     det.learn_one({"value": math.sin(t / 8)})
    >>> normal = det.score_one({"value": math.sin(400 / 8)})
    >>> spike = det.score_one({"value": 5.0})
    >>> spike > 0.5 > normal
    True
    >>> sorted(det.predict_one())
    ['value']

    It fits after a river transformer in a pipeline:

    >>> from river import preprocessing
    >>> model = preprocessing.StandardScaler() | LSTMDetector(warmup=10)
    >>> for t in range(30):
    ...     model.learn_one({"value": math.sin(t / 8)})
    >>> 0.0 <= model.score_one({"value": 0.0}) < 1.0
    True
    """

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 32,
        k1: int = 1,
        k2: int = 16,
        optimizer: str = "sgd",
        learning_rate: float = 1e-2,
        momentum: float = 0.5,
        beta1: float = 0.9,
        beta2: float = 0.999,
        clip_norm: float = 1.0,
        weight_decay: float = 0.0,
        input_dropout: float = 0.0,
        loss: str = "mse",
        huber_delta: float = 1.0,
        scaler_halflife: float = 1000.0,
        input_clip: float = 10.0,
        warmup: int = 300,
        short_window: int = 10,
        long_halflife: float = 8000.0,
        seasonal_bins: int = 24,
        range_novelty: float = 30.0,
        range_tolerance: float = 0.02,
        error_weight: float = 0.65,
        threshold: float = 0.5,
        alert_cooldown: int = 30,
        alert_penalty: float = 5.0,
        penalty_halflife: float = 100.0,
        on_anomaly: str = "downweight",
        anomaly_weight: float = 0.1,
        dtype: str = "float32",
        seed: int = 0,
        backend: str = "cpu",
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.clip_norm = clip_norm
        self.weight_decay = weight_decay
        self.input_dropout = input_dropout
        self.loss = loss
        self.huber_delta = huber_delta
        self.scaler_halflife = scaler_halflife
        self.input_clip = input_clip
        self.warmup = warmup
        self.short_window = short_window
        self.long_halflife = long_halflife
        self.seasonal_bins = seasonal_bins
        self.range_novelty = range_novelty
        self.range_tolerance = range_tolerance
        self.error_weight = error_weight
        self.threshold = threshold
        self.alert_cooldown = alert_cooldown
        self.alert_penalty = alert_penalty
        self.penalty_halflife = penalty_halflife
        self.on_anomaly = on_anomaly
        self.anomaly_weight = anomaly_weight
        self.dtype = dtype
        self.seed = seed
        self.backend = backend
        # Fail at construction, not at the first event, on a bad setting.
        hyperparams.validate(self._get_params())
        self._engine: MultiStreamDetector | None = None
        self._features: list[str] | None = None
        self.last_flag = False
        self.last_score = 0.0

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 8, "k2": 4, "warmup": 20}
        yield {"cell": "gru", "hidden_size": 4, "k1": 2, "k2": 3, "optimizer": "adam", "loss": "huber",
               "input_dropout": 0.1, "warmup": 5, "dtype": "float64", "on_anomaly": "skip"}

    def _vector(self, x: dict) -> np.ndarray:
        return np.array([[_as_float(x.get(f, math.nan)) for f in self._features]])

    def learn_one(self, x: dict) -> None:
        if self._engine is None:
            self._features = sorted(x)
            self._engine = MultiStreamDetector(len(self._features), max_streams=1, **self._get_params())
        self.last_score, self.last_flag = self._engine.process_one(_STREAM, self._vector(x))

    def score_one(self, x: dict) -> float:
        if self._engine is None:
            return 0.0
        return self._engine.score_one(_STREAM, self._vector(x))

    def predict_one(self, x: dict | None = None) -> dict:
        """Forecast of the next event, feature by feature ({} before anything is learnt).

        `x` is accepted for pipeline compatibility and not used: the forecast depends only
        on what has been learnt so far.
        """
        if self._engine is None or self._engine.n_streams == 0:
            return {}
        nothing = np.full((1, len(self._features)), math.nan)
        forecast = self._engine.process([_STREAM], nothing, learn=False).predictions[0]
        return dict(zip(self._features, forecast.tolist()))

    # ------------------------------------------------------------------ snapshots

    def to_bytes(self) -> bytes:
        """Settings and learnt state as a pickle-free snapshot (see `from_bytes`)."""
        arrays = {}
        if self._engine is not None:
            arrays["engine"] = np.frombuffer(self._engine.to_bytes(), dtype=np.uint8)
        meta = {"kind": "LSTMDetector", "params": self._get_params(), "features": self._features,
                "last_flag": self.last_flag, "last_score": self.last_score}
        return snapshot.pack(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> LSTMDetector:
        arrays, meta = snapshot.unpack(data)
        if meta.get("kind") != "LSTMDetector":
            raise snapshot.SnapshotError(f"not an LSTMDetector snapshot: {meta.get('kind')!r}")
        det = cls(**meta["params"])
        det._features = meta["features"]
        det.last_flag, det.last_score = meta["last_flag"], meta["last_score"]
        if "engine" in arrays:
            det._engine = MultiStreamDetector.from_bytes(arrays["engine"].tobytes())
        return det

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> LSTMDetector:
        return cls.from_bytes(Path(path).read_bytes())
