"""benchmarks/training.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_has_cleanlab_leaves_the_warning_filters_as_they_were(tmp_path):
    """accuracy.py asks has_cleanlab() before a grid with prune_cleanlab, and its bare `import cleanlab` added
    cleanlab's 'ignore every Warning' filter for good: no later warning of any run in the grid was heard."""
    pytest.importorskip("cleanlab")
    code = (
        "import warnings\n"
        "from benchmarks.training import has_cleanlab\n"
        "print(has_cleanlab())\n"
        "warnings.warn('still heard', RuntimeWarning)\n"
    )
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)  # a PYTHONPATH given first
    env = {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "True"
    assert "RuntimeWarning: still heard" in done.stderr
