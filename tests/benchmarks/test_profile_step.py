"""benchmarks/profile_step.py: without pyinstrument it stops before building anything, naming the extra."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import profile_step  # noqa: E402


def test_missing_pyinstrument_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyinstrument", None)  # what an environment without it imports
    with pytest.raises(SystemExit, match=r"pip install -e '\.\[bench\]'"):
        profile_step.main(["--models", "linear_probe", "--blocks", "1", "--steps", "1"])
