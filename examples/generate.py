"""Writes examples/server_temperature.csv: a bundled example stream with known anomalies.

Five-minute readings over about 12 days: a daily cycle plus noise, with a spike, a sensor
dropout to a flat line, a noise burst and a lasting level shift (the labels column marks
them; `streamlstm score` ignores no column, so the labels live in a separate file).
"""

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

N = 3500
ANOMALIES = {"spike": (1500, 1501), "flatline": (2000, 2040), "noise_burst": (2500, 2560), "level_shift": (3000, N)}


def main() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(N)
    day = 288  # five-minute readings per day
    x = 60 + 8 * np.sin(2 * np.pi * t / day) + 2 * np.sin(2 * np.pi * t / (day / 3)) + rng.normal(0, 0.6, N)
    x[1500] += 15
    x[2000:2040] = x[2000]
    x[2500:2560] += rng.normal(0, 5, 60)
    x[3000:] += 10
    start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    here = Path(__file__).parent
    with open(here / "server_temperature.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for i, v in enumerate(x):
            w.writerow([(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"), f"{v:.3f}"])
    with open(here / "server_temperature.labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "first_row", "last_row"])
        for kind, (a, b) in ANOMALIES.items():
            w.writerow([kind, a, b - 1])


if __name__ == "__main__":
    main()
