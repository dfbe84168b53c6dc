import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.dip_false_splits import SHAPES, false_splits  # noqa: E402


def test_false_splits_counts_the_splits_automatic_threshold_makes_on_one_group():
    flat = false_splits("uniform (flat)", 100, draws=200, seed=0)
    # the documented weakness: a flat group is cut in about a quarter of samples of 100, flagging a large share
    assert 0.15 < flat["split_rate"] < 0.40
    assert 0.25 < flat["flagged_median"] < 0.75 and flat["flagged_min"] <= flat["flagged_max"]
    peaked = false_splits("normal", 3000, draws=50, seed=0)
    assert peaked["split_rate"] == 0.0 and peaked["standard_error"] == 0.0
    assert false_splits("uniform (flat)", 100, draws=200, seed=0) == flat  # seeded per cell
    assert set(SHAPES) == {"uniform (flat)", "normal", "exponential (J-shaped)", "gamma, shape 2"}
