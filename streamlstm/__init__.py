"""streamlstm: streaming, online-learning LSTM/GRU anomaly detection."""

from importlib import import_module

__all__ = ["BatchResult", "LSTMDetector", "MultiStreamDetector", "__version__"]

# Imported on first use: numba and the detector take ~0.5 s to load, and the `streamlstm`
# command (streamlstm.launcher, streamlstm.signals) must catch signals before that.
_LAZY = {"BatchResult": ".multistream", "LSTMDetector": ".detector", "MultiStreamDetector": ".multistream"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("streamlstm")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
