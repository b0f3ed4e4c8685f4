"""How much the defaults' exact values matter: NAB and SKAB with one setting moved by a
factor up and down, and with every setting moved at random, against the defaults, in one run.

    python bench/sensitivity.py ../shared/nab/data ../shared/nab/labels/combined_windows.json \
        ../shared/skab/data [--factor 1.5] [--seeds 10] [--split dev] [--draws 10] [--only NAME ...]

A setting chosen on one corpus that loses much when moved by half its value again is a
constant fitted to that corpus more than a mechanism, and a user's data will sit elsewhere.
Each row: the setting's value divided and multiplied by `--factor` (integers rounded), NAB's
standard score (mean over the seeds, `evaluate nab`'s runner) and SKAB's outlier F1 and
changepoint score (`evaluate skab`'s runner, the same seeds), each less the defaults' figure
of this run. The regime's settings do not touch the alerts NAB scores, so their NAB cells are
blank. Then `--draws` configurations that move every setting but `threshold` by the
factor, up or down at random (draw d uses numpy's generator seeded d). The threshold is the
operating point a user sets (how strong an alert must be), not a constant of the design: its
own row shows what it does, and in random draws it decides the figure alone (moved on every
draw, it took NAB's development half to 50.7-69.0 on ten draws, measured 2026-12-05).
`--only` with no names skips the one-at-a-time rows.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from streamlstm.config import load_config
from streamlstm.engine.hyperparams import DEFAULTS, check
from streamlstm.engine.scoring import CYCLE_MAX_AUTO
from streamlstm.evaluate.nab import run_nab
from streamlstm.evaluate.skab import run_skab
from streamlstm.evaluate.splits import SPLITS

# The numeric settings that change what is detected with the default optimiser and loss
# (Adam's betas, the Huber delta, and the settings whose default is 0 cannot move).
SETTINGS = ("hidden_size", "k2", "learning_rate", "momentum", "clip_norm", "scaler_halflife", "input_clip",
            "warmup", "short_window", "long_halflife", "seasonal_bins", "cycle_max", "range_novelty",
            "range_tolerance", "error_weight", "threshold", "alert_cooldown", "alert_penalty", "penalty_halflife",
            "anomaly_weight", "regime_enter", "regime_exit", "regime_learn_weight")
REGIME_ONLY = ("regime_enter", "regime_exit", "regime_learn_weight")
DRAWN = tuple(n for n in SETTINGS if n != "threshold")


def moved(name: str, factor: float) -> int | float:
    """Setting `name`'s default times `factor`: an integer setting rounded (at least 1)."""
    default = CYCLE_MAX_AUTO if name == "cycle_max" else DEFAULTS[name]
    value = default * factor
    return check(name, max(round(value), 1) if isinstance(default, int) else value)


def figures(overrides: dict, nab: tuple[str, str], skab: str, seeds: int, split: str,
            with_nab: bool = True) -> tuple[float, float, float]:
    """NAB's standard score (NaN without `with_nab`), SKAB's outlier F1 and changepoint
    score (standard), means over seeds 0..seeds-1."""
    nab_scores = []
    with tempfile.TemporaryDirectory() as results_dir:
        for seed in range(seeds if with_nab else 0):
            config = load_config(None, overrides={**overrides, "model.seed": seed})
            nab_scores.append(run_nab(config, *nab, results_dir, split).results["standard"].normalized_score)
    run = run_skab(load_config(None, overrides=overrides), skab, split=split, seeds=list(range(seeds)))
    ours = run.rows[0]
    return (float(np.mean(nab_scores)) if nab_scores else float("nan"), ours.outlier["f1"],
            ours.changepoint.scores["standard"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("nab_data")
    ap.add_argument("nab_labels")
    ap.add_argument("skab_data")
    ap.add_argument("--factor", type=float, default=1.5)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--split", choices=SPLITS, default="dev")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--only", nargs="*", choices=SETTINGS, default=SETTINGS)
    args = ap.parse_args()
    nab, f = (args.nab_data, args.nab_labels), args.factor

    def run(overrides: dict, with_nab: bool = True) -> tuple[float, float, float]:
        return figures(overrides, nab, args.skab_data, args.seeds, args.split, with_nab)

    base = run({})
    print(f"split {args.split}, {args.seeds} seeds; defaults: NAB standard {base[0]:.2f}, "
          f"SKAB F1 {base[1]:.3f}, changepoints {base[2]:.2f}\n")
    print(f"{'setting':20s} {'default':>9s} {'/' + format(f, 'g'):>9s} {'x' + format(f, 'g'):>9s}   "
          f"{'NAB':>15s} {'SKAB F1':>15s} {'SKAB changepts':>15s}   (figure - defaults', moved down / up)")

    def delta(got: float, i: int, fmt: str) -> str:
        return "" if np.isnan(got) else format(got - base[i], fmt)

    for name in args.only:
        lo, hi = moved(name, 1 / f), moved(name, f)
        with_nab = name not in REGIME_ONLY
        down, up = run({f"model.{name}": lo}, with_nab), run({f"model.{name}": hi}, with_nab)
        cells = [f"{delta(down[i], i, fmt):>7s}/{delta(up[i], i, fmt):<7s}"
                 for i, fmt in ((0, "+.2f"), (1, "+.3f"), (2, "+.2f"))]
        print(f"{name:20s} {moved(name, 1.0):>9.4g} {lo:>9.4g} {hi:>9.4g}   " + " ".join(f"{c:>15s}" for c in cells),
              flush=True)

    if args.draws:
        print(f"\nevery setting but threshold moved by {f:g}, up or down at random:")
        print(f"{'draw':>4s} {'NAB':>8s} {'SKAB F1':>8s} {'changepts':>9s}   moved up")
        got = []
        for d in range(args.draws):
            up = np.random.default_rng(d).random(len(DRAWN)) < 0.5
            overrides = {f"model.{n}": moved(n, f if u else 1 / f) for n, u in zip(DRAWN, up)}
            got.append(run(overrides))
            print(f"{d:4d} {got[-1][0]:8.2f} {got[-1][1]:8.3f} {got[-1][2]:9.2f}   "
                  + ", ".join(n for n, u in zip(DRAWN, up) if u), flush=True)
        g = np.array(got)
        for label, fn in (("mean", np.mean), ("min", np.min), ("max", np.max)):
            print(f"{label:>4s} {fn(g[:, 0]):8.2f} {fn(g[:, 1]):8.3f} {fn(g[:, 2]):9.2f}")


if __name__ == "__main__":
    main()
