"""streamlstm: streaming, online-learning LSTM/GRU anomaly detection."""

from importlib.metadata import PackageNotFoundError, version

from .detector import LSTMDetector
from .multistream import BatchResult, MultiStreamDetector

try:
    __version__ = version("streamlstm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["BatchResult", "LSTMDetector", "MultiStreamDetector", "__version__"]
