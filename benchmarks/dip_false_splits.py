"""How often `find_label_issues`' automatic split cuts ONE group of scores in two (what it does on clean labels).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dip_false_splits.py --draws 2000

Draws ``--draws`` samples of ``n`` scores from one unimodal shape (flat, bell-shaped, J-shaped, skewed) and applies
`automatic_threshold` to each: the share of samples it splits (it should refuse: there is one group) with its
standard error, and how many rows a split flags. No training; about two minutes of one core at 2,000 draws.
Prints a markdown table and writes one JSON record to ``benchmarks/results/label_issues/dip_false_splits.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS_DIR, command_line, hardware_info, markdown_table, write_json

import numpy as np
from hf_lilaw.analysis import automatic_threshold

SHAPES = {
    "uniform (flat)": lambda rng, n: rng.uniform(size=n),
    "normal": lambda rng, n: rng.normal(size=n),
    "exponential (J-shaped)": lambda rng, n: rng.exponential(size=n),
    "gamma, shape 2": lambda rng, n: rng.gamma(2.0, size=n),
}


def false_splits(shape: str, n: int, *, draws: int, seed: int) -> dict[str, float | int]:
    rng = np.random.default_rng([seed, n, list(SHAPES).index(shape)])
    flagged = []
    for _ in range(draws):
        split = automatic_threshold(SHAPES[shape](rng, n))
        if not split.refused:
            flagged.append(split.upper_fraction)
    rate = len(flagged) / draws
    return {
        "shape": shape,
        "n": n,
        "draws": draws,
        "split_rate": rate,
        "standard_error": float(np.sqrt(rate * (1 - rate) / draws)),
        "flagged_min": min(flagged, default=float("nan")),
        "flagged_median": float(np.median(flagged)) if flagged else float("nan"),
        "flagged_max": max(flagged, default=float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 300, 1000, 3000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cells = [false_splits(shape, n, draws=args.draws, seed=args.seed) for shape in SHAPES for n in args.sizes]
    rows = []
    for shape in SHAPES:
        mine = [c for c in cells if c["shape"] == shape]
        made = [c for c in mine if c["split_rate"] > 0]
        low = min((c["flagged_min"] for c in made), default=float("nan"))
        high = max((c["flagged_max"] for c in made), default=float("nan"))
        rows.append(
            [shape]
            + [f"{c['split_rate']:.1%} ± {c['standard_error']:.1%}" for c in mine]
            + [f"{low:.0%}–{high:.0%}" if made else "–"]
        )
    print(markdown_table(["one group of n scores"] + [f"n = {n:,}" for n in args.sizes] + ["rows flagged"], rows))
    path = write_json(
        RESULTS_DIR / "label_issues" / "dip_false_splits.json",
        {"command": command_line(), "hardware": hardware_info(), "cells": cells},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
