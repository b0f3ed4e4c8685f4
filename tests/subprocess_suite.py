"""Test folders that must run in a Python process of their own, started in the background.

A wrapper test module (tests/test_cuda_sim.py, tests/test_cuda_ptx.py) defines
``SUBPROCESS_SUITE = Suite(folder, env)`` and one test that asserts on ``SUBPROCESS_SUITE.result()``:
``pytest -q FOLDER`` in a fresh interpreter with `env` added to the environment.

conftest.py starts the suites the selected tests need as soon as collection ends, one after
another in a background thread, and moves their wrapper tests to the end of the run: the
suites' CPU time (PTX compilation, the CUDA simulator) then overlaps the main process's
waits (Kafka group joins, CLI subprocesses) instead of adding to them. A wrapper test whose
suite was not started in the background (e.g. when it is run alone) runs it in the foreground.

Each suite keeps its own Numba cache (FOLDER/__pycache__/numba, via NUMBA_CACHE_DIR), as these
processes compile while the main one does: numba's on-disk cache is not safe for processes
compiling into it at the same time (each picks a data file name from the index it read, so two
can write different signatures to one file; cf. numba/numba#10128). The suites share little
with the main cache anyway (the simulator compiles its own specialisations; PTX is not cached).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TIMEOUT_S = 600


class Suite:
    def __init__(self, folder: str, env: dict[str, str]):
        self.folder = TESTS / folder
        self.env = env
        self.started = False
        self._done = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._result: subprocess.CompletedProcess | None = None
        self._error: BaseException | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(self.folder)]

    def _run(self) -> None:
        try:
            env = {**os.environ, "NUMBA_CACHE_DIR": str(self.folder / "__pycache__" / "numba"), **self.env}
            self._proc = subprocess.Popen(self.command, env=env, cwd=TESTS.parent,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = self._proc.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                out, err = self._proc.communicate()
                raise AssertionError(f"{self.folder.name} ran past {TIMEOUT_S} s:\n{out[-6000:]}{err[-2000:]}")
            self._result = subprocess.CompletedProcess(self.command, self._proc.returncode, out, err)
        except BaseException as exc:  # handed to the test that waits for the result
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> subprocess.CompletedProcess:
        """The finished run (running it now if it was not started in the background)."""
        if not self.started:
            self.started = True
            self._run()
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result

    def stop(self) -> None:
        """Kill the process if it still runs (the session ended early)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()


def start_in_background(suites: list[Suite]) -> None:
    """Run the suites not yet started one after another in a daemon thread."""
    pending = [s for s in suites if not s.started]
    for s in pending:
        s.started = True
    if pending:
        threading.Thread(target=lambda: [s._run() for s in pending], name="subprocess-suites", daemon=True).start()


def assert_passed(result: subprocess.CompletedProcess) -> None:
    """The suite passed and skipped nothing (a skip would mean it did not really run)."""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1], result.stdout[-2000:]
