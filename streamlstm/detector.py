"""`LSTMDetector`: one stream, river's `AnomalyDetector` interface."""

from __future__ import annotations

import inspect
import math
import numbers
from pathlib import Path

import numpy as np
from river import base

from .engine import hyperparams, snapshot
from .multistream import MultiStreamDetector

_STREAM = ""  # the detector's single stream in its engine
# The parameters: the model's settings, the backend and the threads, declared in
# engine/hyperparams.py.
_PARAMETERS = {**hyperparams.MODEL, "backend": hyperparams.BACKEND, "threads": hyperparams.THREADS}


def _as_float(value) -> float:
    """A feature value as float; anything non-numeric (a string too, as the filter rejects
    one) or non-finite (an integer beyond a double's range too) counts as missing."""
    if isinstance(value, (str, bytes)):
        return math.nan
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _plain(name):
    """A feature name as a snapshot's JSON keeps it: numpy's bools, str, integers and floats
    as Python's, which compare and hash alike, so that the restored detector finds them in
    the same dicts; TypeError for any other kind."""
    for test, kind in (((bool, np.bool_), bool), (str, str), (numbers.Integral, int), (numbers.Real, float)):
        if isinstance(name, test):
            return kind(name)
    raise TypeError(f"feature names must be str, int, float or bool to be saved as a snapshot (got "
                    f"{type(name).__name__} {name!r:.50}); pickle saves any")


def _feature_order(x: dict) -> list:
    """The features of a first event in a fixed order, whatever the dict's: sorted, and
    where names of several types cannot be compared, by type name, then name."""
    try:
        return sorted(x)
    except TypeError:
        return sorted(x, key=lambda f: (type(f).__name__, repr(f)))


class LSTMDetector(base.AnomalyDetector):
    """Online LSTM (or GRU) forecaster whose surprising errors are anomalies.

    Each event is forecast from the recurrent state before it is seen; the prediction
    error, how far the value is from its usual level and from its previous value, and a
    value outside the range seen so far become a calibrated score in [0, 1) (see
    streamlstm.engine.scoring). One stream has no timestamps here, so the time-of-day channel of
    the multi-stream detector is off.
    The feature set is fixed by the first `learn_one`: later missing features are treated
    as missing values (NaN), unknown ones are ignored. One stream has no parallelism to
    offer a GPU or threads; `backend` and `threads` exist so that configurations carry over.

    {parameters}

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

    def __init__(self, **settings):
        unknown = settings.keys() - _PARAMETERS.keys()
        if unknown:
            raise TypeError(f"unknown parameters: {', '.join(sorted(unknown))}")
        for name, setting in _PARAMETERS.items():  # each under its own name, as river wants
            setattr(self, name, settings.get(name, setting.default))
        # Fail at construction, not at the first event, on a bad setting.
        hyperparams.validate(self._get_params())
        self._engine: MultiStreamDetector | None = None
        self._features: list[str] | None = None
        self._x: np.ndarray | None = None  # (1, D): the event as the engine takes it, rewritten per call
        self.last_flag = False
        self.last_score = 0.0

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 8, "k2": 4, "warmup": 20}
        yield {"cell": "gru", "hidden_size": 4, "k1": 2, "k2": 3, "optimizer": "adam", "loss": "huber",
               "input_dropout": 0.1, "warmup": 5, "dtype": "float64", "on_anomaly": "skip"}

    def _vector(self, x: dict) -> np.ndarray:
        """x's values of the detector's features, in self._x (valid until the next call). A
        finite float is taken as it is, without _as_float's checks: with one feature this
        takes 0.26 us, a new array from a list of _as_float's values 0.55 us."""
        row = self._x[0]
        for i, f in enumerate(self._features):
            v = x.get(f, math.nan)
            row[i] = v if type(v) is float and math.isfinite(v) else _as_float(v)
        return self._x

    def learn_one(self, x: dict, score: bool = True) -> None:
        """Score x (`last_score`, `last_flag`), then learn it. `score=False`: x is known-good
        history (baseline priming), learnt without being scored, alerted on or counted
        toward an incident; `last_score` is then 0. An x that score_one has just scored is
        not judged again: its judgement is kept (the same score, flag and learning)."""
        if self._engine is None:
            if not x:
                raise ValueError("the first event learnt has no features: LSTMDetector takes its features from it")
            self._features = _feature_order(x)
            self._x = np.empty((1, len(self._features)))
            self._engine = MultiStreamDetector(len(self._features), max_streams=1, **self._get_params())
        self.last_score, self.last_flag = self._engine._process_one(_STREAM, self._vector(x), math.nan, score)

    def score_one(self, x: dict) -> float:
        if self._engine is None:
            return 0.0
        return self._engine._score_one(_STREAM, self._vector(x), math.nan)

    def predict_one(self, x: dict | None = None) -> dict:
        """Forecast of the next event, feature by feature ({} before anything is learnt).

        `x` is accepted for pipeline compatibility and not used: the forecast depends only
        on what has been learnt so far.
        """
        if self._engine is None or self._engine.n_streams == 0:
            return {}
        return dict(zip(self._features, self._engine.forecast_one(_STREAM).tolist()))

    # ------------------------------------------------------------------ snapshots

    def to_bytes(self) -> bytes:
        """Settings and learnt state as a pickle-free snapshot (see `from_bytes`)."""
        arrays = {}
        if self._engine is not None:
            arrays["engine"] = np.frombuffer(self._engine.to_bytes(), dtype=np.uint8)
        features = None if self._features is None else [_plain(f) for f in self._features]
        # The engine's settings, not the attributes: one changed after the first event (a
        # river `mutate`) does not change the engine, and the restored detector must say what it runs.
        params = {**self._get_params(), **(self._engine.settings if self._engine is not None else {})}
        meta = {"kind": "LSTMDetector", "params": hyperparams.validate(params), "features": features,
                "last_flag": self.last_flag, "last_score": self.last_score}
        return snapshot.pack(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> LSTMDetector:
        arrays, meta = snapshot.unpack(data)
        if meta.get("kind") != "LSTMDetector":
            raise snapshot.SnapshotError(f"not an LSTMDetector snapshot: {meta.get('kind')!r}")
        det = cls(**hyperparams.as_learnt(meta["params"]))
        det._features = meta["features"]
        if det._features is not None:
            det._x = np.empty((1, len(det._features)))
        det.last_flag, det.last_score = meta["last_flag"], meta["last_score"]
        if "engine" in arrays:
            det._engine = MultiStreamDetector.from_bytes(arrays["engine"])
        return det

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> LSTMDetector:
        return cls.from_bytes(Path(path).read_bytes())


# The signature river reads (`_get_params`, `clone`) and the docstring's parameter list,
# from the table of settings.
LSTMDetector.__init__.__signature__ = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=setting.default)
       for name, setting in _PARAMETERS.items()])
LSTMDetector.__doc__ = LSTMDetector.__doc__.replace(
    "{parameters}", hyperparams.parameters_doc(list(_PARAMETERS)).replace("\n", "\n    "))
