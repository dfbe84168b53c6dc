"""benchmarks/baselines.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_cleanlab_baseline_leaves_the_warning_filters_as_they_were():
    """Importing cleanlab adds an 'ignore every Warning' filter for good: after a cleanlab prune no warning of the
    trainers that retrain on the kept rows reached the benchmark's log."""
    pytest.importorskip("cleanlab")
    code = (
        "import warnings, numpy as np\n"
        "from benchmarks.baselines import cleanlab_issues\n"
        "p = np.tile([[0.9, 0.1], [0.1, 0.9]], (10, 1))\n"
        "print(int(cleanlab_issues(labels=np.tile([0, 1], 10), pred_probs=p).sum()))\n"
        "warnings.warn('still heard')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"
    assert "UserWarning: still heard" in done.stderr
