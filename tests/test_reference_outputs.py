"""Every output and the final state of the runs in reference_runs.py are bit for bit those
the code before the river path's judgement cache wrote (tests/data/reference_outputs.npz),
for process(), process_one/score_one and LSTMDetector's score_one/learn_one orders."""

from pathlib import Path

import numpy as np
import pytest
from reference_runs import all_runs

REFERENCE = np.load(Path(__file__).parent / "data" / "reference_outputs.npz")


@pytest.fixture(scope="module")
def runs():
    return all_runs()


def test_the_runs_give_the_stored_arrays(runs):
    assert sorted(runs) == sorted(REFERENCE.files)


@pytest.mark.parametrize("name", REFERENCE.files)
def test_bit_for_bit(runs, name):
    np.testing.assert_array_equal(runs[name], REFERENCE[name], strict=True)
    assert runs[name].tobytes() == REFERENCE[name].tobytes()  # -0.0 and NaN payloads too
