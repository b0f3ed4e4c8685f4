"""How long a first run waits for Numba's compiler, and a later one for its cache.

    python bench/bench_compile.py [--rounds 1]

Each entry point, in a fresh process with an empty NUMBA_CACHE_DIR (cold: compiled), then
in a fresh process with that cache (warm: loaded from it, the baseline in the same run):

- batch: `MultiStreamDetector.process` of one event, the kernel that `streamlstm run`,
  `score` and the Kafka daemon use (`kernels_cpu.process_batch`);
- river: `LSTMDetector.learn_one`, `score_one`, `learn_one`, the river API's first
  events (`judge_one` and `learn_one`);
- warm-up: `pool.warm_up(Config())`, what the Kafka daemon does before it joins its group.

Seconds of wall clock of those calls alone (the imports before them not counted), for the
host CPU (as a user's first run compiles; the tests compile for Numba's generic target).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETUP = "import time, numpy as np\n"
ENTRIES = {
    "batch": ("from streamlstm import MultiStreamDetector\n"
              "det = MultiStreamDetector(1)\n"
              "t = time.perf_counter(); det.process(['s'], np.zeros((1, 1)))\n"),
    "river": ("from streamlstm import LSTMDetector\n"
              "det = LSTMDetector()\n"
              "t = time.perf_counter(); det.learn_one({'x': 0.0}); det.score_one({'x': 1.0}); det.learn_one({'x': 1.0})\n"),
    "warm-up": ("from streamlstm import pool\nfrom streamlstm.config import Config\n"
                "t = time.perf_counter(); pool.warm_up(Config())\n"),
}
REPORT = "print(time.perf_counter() - t)\n"


def timed(code: str, cache: str) -> float:
    """Seconds the entry's calls took in a fresh interpreter using Numba cache `cache`."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    env.pop("NUMBA_CPU_NAME", None)
    out = subprocess.run([sys.executable, "-c", SETUP + code + REPORT], env=env, capture_output=True, text=True,
                         check=True, timeout=900)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1, help="cold and warm runs of each entry (each cold one compiles)")
    args = ap.parse_args()
    print(f"{'entry':<10} {'cold s':>8} {'warm s':>8}   (rounds: {args.rounds}; cold compiles, warm loads the cache)")
    for name, code in ENTRIES.items():
        cold, warm = [], []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
                cold.append(timed(code, cache))
                warm.append(timed(code, cache))
        print(f"{name:<10} {min(cold):>8.1f} {min(warm):>8.2f}", flush=True)


if __name__ == "__main__":
    main()
