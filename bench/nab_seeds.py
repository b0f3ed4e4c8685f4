"""NAB scores across model seeds: how much of a NAB figure is the draw of the LSTM's
initial weights (the seed also drives input dropout, when on).

    python bench/nab_seeds.py ../shared/nab/data ../shared/nab/labels/combined_windows.json \
        [--config FILE] [--seeds 10] [--split dev|held-out|all]

Runs `streamlstm evaluate nab` (the same runner) once per seed 0..N-1 of the given
configuration and prints each seed's three profile scores, windows detected and false
positives (standard profile), then their mean, minimum and maximum. A NAB difference
between two settings smaller than this spread, measured on one seed, is noise; compare
the means, seed by seed. `--split` scores one half of the corpus on its own, as
`evaluate nab --split` does.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from streamlstm.config import load_config
from streamlstm.evaluate.nab import run_nab
from streamlstm.evaluate.nab_scoring import PROFILES
from streamlstm.evaluate.splits import SPLITS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("labels")
    ap.add_argument("--config", default=None)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--split", choices=SPLITS, default="all")
    args = ap.parse_args()
    names = list(PROFILES)
    print(f"{'seed':>4s} " + " ".join(f"{p:>18s}" for p in names) + f" {'windows':>8s} {'FP':>4s}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as results_dir:
        for seed in range(args.seeds):
            config = load_config(args.config, overrides={"model.seed": seed})
            run = run_nab(config, args.data_dir, args.labels, results_dir, args.split)
            std = run.results["standard"]
            rows.append([run.results[p].normalized_score for p in names] + [std.tp, std.fp])
            print(f"{seed:4d} " + " ".join(f"{v:18.1f}" for v in rows[-1][:3])
                  + f" {std.tp:4d}/{std.tp + std.fn:<3d} {std.fp:4d}", flush=True)
    r = np.array(rows, dtype=float)
    for label, f in (("mean", np.mean), ("min", np.min), ("max", np.max)):
        v = f(r, axis=0)
        print(f"{label:>4s} " + " ".join(f"{x:18.2f}" for x in v[:3]) + f" {v[3]:8.1f} {v[4]:4.0f}")


if __name__ == "__main__":
    main()
