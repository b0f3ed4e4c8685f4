"""The development / held-out split of a benchmark's files, one rule for SKAB and NAB.

Within each folder (a SKAB folder, a NAB category) the files, in the benchmark's order,
alternate, the first going to ``dev``: each half sees every kind of file, and no choice
of ours decides which file lands where. Tune on ``dev``; ``held-out`` says whether the
choice generalises; ``all`` is what the published figures are over.

>>> split_names(["a/1.csv", "a/2.csv", "a/3.csv", "b/1.csv", "b/2.csv"], "dev")
['a/1.csv', 'a/3.csv', 'b/1.csv']
"""

from __future__ import annotations

from typing import Callable, Iterable

SPLITS = ("dev", "held-out", "all")


def split_names(names: Iterable[str], split: str, key: Callable[[str], object] | None = None) -> list[str]:
    """The names (``<folder>/<file>``) in ``split``, in name order: within each folder,
    sorted by ``key`` (default: the name), the first, third, ... are ``dev``, the others
    ``held-out``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    folders: dict[str, list[str]] = {}
    for name in names:
        folders.setdefault(name.split("/", 1)[0], []).append(name)
    return sorted(name for files in folders.values() for i, name in enumerate(sorted(files, key=key))
                  if split == "all" or (i % 2 == 0) == (split == "dev"))
